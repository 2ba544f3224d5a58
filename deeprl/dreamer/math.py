"""Dreamer's pure tensor math (Hafner et al. 2023, "Mastering Diverse Domains through World Models").

No networks and no environments: every function maps tensors to tensors, so each one is tested
against a naive loop, torch.distributions, or numbers worked out by hand (tests/test_dreamer_math.py).

Shapes: ``(..., S, C)`` categorical latents are S independent variables of C classes; ``(T, B)``
imagined trajectories are T steps of B starting states.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "ReturnNormalizer",
    "TwoHot",
    "kl_balanced_loss",
    "kl_categorical",
    "kl_gaussian",
    "lambda_returns",
    "straight_through_onehot",
    "symexp",
    "symlog",
    "unimix_logits",
]


def symlog(x: torch.Tensor) -> torch.Tensor:
    """symlog(x) = sign(x) ln(1 + |x|): identity near 0, logarithmic for large |x| (DreamerV3)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """symexp(x) = sign(x) (e^|x| - 1), the inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Two-hot regression over a fixed grid in symlog space (DreamerV3's reward and critic heads).

    ``bins`` is the symlog-space grid ``linspace(low, high, num_bins)``; the values it stands for
    are ``symexp(bins)`` (by default ±4.85e8).  A scalar y = symlog(x) is spread over the two
    neighbouring bins b_k <= y < b_{k+1} with weights (b_{k+1} - y, y - b_k) / (b_{k+1} - b_k), so
    Σ twohot(x) · bins = y exactly; values outside the grid go entirely to the edge bin.
    """

    def __init__(self, low: float = -20.0, high: float = 20.0, num_bins: int = 255):
        if num_bins < 2 or not low < high:
            raise ValueError(f"TwoHot needs num_bins >= 2 and low < high, got {num_bins}, {low}, {high}")
        self.low, self.high = low, high
        self.bins = torch.linspace(low, high, num_bins)

    def _bins_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.bins.to(device=x.device, dtype=x.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(...)`` targets -> ``(..., K)`` two-hot weights of symlog(x); each row sums to 1."""
        bins = self._bins_like(x)
        K = bins.shape[0]
        y = symlog(x.detach()).clamp(self.low, self.high)
        below = ((bins <= y[..., None]).sum(-1) - 1).clamp(0, K - 1)
        above = (below + 1).clamp(max=K - 1)
        # at the top edge below == above: half + half on the same bin
        equal = below == above
        to_below = torch.where(equal, 1.0, (bins[below] - y).abs())
        to_above = torch.where(equal, 1.0, (bins[above] - y).abs())
        total = to_below + to_above
        return (F.one_hot(below, K) * (to_above / total)[..., None]
                + F.one_hot(above, K) * (to_below / total)[..., None])

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` logits -> ``(...)`` prediction symexp(Σ_k softmax(logits)_k b_k)."""
        return symexp((logits.softmax(-1) * self._bins_like(logits)).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy -Σ_k twohot(target)_k log softmax(logits)_k, ``(..., K), (...) -> (...)``.

        The target carries no gradient.
        """
        return -(self.encode(target) * logits.log_softmax(-1)).sum(-1)


def lambda_returns(rewards: torch.Tensor, next_values: torch.Tensor, continues: torch.Tensor,
                   gamma: float, lam: float) -> torch.Tensor:
    """λ-returns of an imagined trajectory (DreamerV3's critic target), all ``(T, ...)`` -> ``(T, ...)``.

    From latent z_t the actor takes a_t and the model predicts z_{t+1}; with that step

    - ``rewards[t]``     = r_t, the reward received on arriving at z_{t+1},
    - ``continues[t]``   = c_t, the continue flag (or its probability) of z_{t+1},
    - ``next_values[t]`` = V(z_{t+1}),

        R_t = r_t + γ c_t ((1 - λ) V(z_{t+1}) + λ R_{t+1}),    R_T := V(z_T) = next_values[T-1],

    so the last step bootstraps fully: R_{T-1} = r_{T-1} + γ c_{T-1} V(z_T).  λ = 0 gives the
    one-step targets r_t + γ c_t V(z_{t+1}); λ = 1 the discounted sum of all rewards plus the
    discounted final value.  Differentiable in every input (the actor backpropagates through it);
    detach ``next_values`` for a critic target.
    """
    if not rewards.shape == next_values.shape == continues.shape:
        raise ValueError(f"lambda_returns needs equal shapes, got {tuple(rewards.shape)}, "
                         f"{tuple(next_values.shape)}, {tuple(continues.shape)}")
    discounts = gamma * continues
    # everything but the recursion is computed for all steps at once
    partial = rewards + discounts * (1 - lam) * next_values
    R = next_values[-1]
    out = []
    for t in reversed(range(rewards.shape[0])):
        R = partial[t] + discounts[t] * lam * R
        out.append(R)
    return torch.stack(out[::-1])


def kl_categorical(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of S independent categoricals, ``(..., S, C)`` logits -> ``(...)``.

    KL = Σ_s Σ_c q_sc (log q_sc - log p_sc), with q = softmax(post_logits), p = softmax(prior_logits).
    """
    log_q, log_p = post_logits.log_softmax(-1), prior_logits.log_softmax(-1)
    return (log_q.exp() * (log_q - log_p)).sum((-2, -1))


def kl_gaussian(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor,
                std_p: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) || N(μ_p, σ_p²)) of diagonal Gaussians, ``(..., D)`` -> ``(...)``.

    KL = Σ_d [ln(σ_p/σ_q) + (σ_q² + (μ_q - μ_p)²) / (2 σ_p²) - 1/2].
    """
    var_ratio = (std_q / std_p) ** 2
    mahalanobis = ((mean_q - mean_p) / std_p) ** 2
    return 0.5 * (var_ratio + mahalanobis - 1 - var_ratio.log()).sum(-1)


def _kl(post: dict[str, torch.Tensor], prior: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    if kind == "categorical":
        return kl_categorical(post["logits"], prior["logits"])
    if kind == "gaussian":
        return kl_gaussian(post["mean"], post["std"], prior["mean"], prior["std"])
    raise ValueError(f"unknown latent kind {kind!r}: expected 'categorical' or 'gaussian'")


def _detach(dist: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach() for name, value in dist.items()}


def kl_balanced_loss(post: dict[str, torch.Tensor], prior: dict[str, torch.Tensor], kind: str,
                     free_bits: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DreamerV3's KL balancing with free bits, returned UNSCALED: ``(dyn, rep, kl)`` scalars.

        dyn = mean max(free, KL(⊥(q) || p))     trains the prior p (dynamics) towards the posterior
        rep = mean max(free, KL(q || ⊥(p)))     trains the posterior q (representation) towards p

    Free bits clip each element (one per batch entry and time step) before the mean: an element
    whose KL is already below ``free_bits`` nats contributes the constant and no gradient.  The
    caller weights the terms, DreamerV3 uses 0.5 dyn + 0.1 rep.  ``kl`` is the mean unclipped
    KL(q || p) without gradient, for logging.

    ``post`` and ``prior`` hold ``{"logits": (..., S, C)}`` for ``kind="categorical"`` and
    ``{"mean": (..., D), "std": (..., D)}`` for ``kind="gaussian"``.
    """
    dyn = _kl(_detach(post), prior, kind)
    rep = _kl(post, _detach(prior), kind)
    kl = dyn.detach().mean()
    return dyn.clamp(min=free_bits).mean(), rep.clamp(min=free_bits).mean(), kl


def unimix_logits(logits: torch.Tensor, mix: float = 0.01) -> torch.Tensor:
    """Log-probabilities of the mixture (1 - mix) softmax(logits) + mix / C, ``(..., C)`` -> ``(..., C)``.

    DreamerV3's "unimix": every class keeps probability >= mix / C, which bounds the KL and
    log-likelihood terms of categorical latents and policies.
    """
    if mix == 0.0:
        return logits.log_softmax(-1)
    probs = (1 - mix) * logits.softmax(-1) + mix / logits.shape[-1]
    return probs.log()


def straight_through_onehot(logits: torch.Tensor,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot sample of Categorical(logits) with a straight-through gradient, ``(..., C)`` -> ``(..., C)``.

    Forward: the one-hot sample itself; backward: the gradient of softmax(logits)
    (sample + probs - ⊥(probs), Bengio et al. 2013, as in DreamerV2/V3).
    """
    probs = logits.softmax(-1)
    C = logits.shape[-1]
    # inverse-CDF sampling: one uniform number per variable (torch.multinomial costs ~3x more here)
    u = torch.rand((*logits.shape[:-1], 1), generator=generator, dtype=probs.dtype, device=probs.device)
    index = (u > probs.detach().cumsum(-1)).sum(-1).clamp(max=C - 1)
    sample = F.one_hot(index, C).to(probs.dtype)
    # probs - ⊥(probs) is exactly 0 in the forward pass, so the sample stays exactly one-hot
    return sample + (probs - probs.detach())


class ReturnNormalizer:
    """DreamerV3's return scale S = max(1, P95 - P5) of λ-returns, percentiles as EMAs.

    The actor's advantage is (R^λ - V) / S: large returns are scaled down, small ones (sparse
    rewards) are not scaled up.  Percentiles start at 0 and follow
    P ← decay P + (1 - decay) percentile(batch).
    """

    def __init__(self, decay: float = 0.99, low_percentile: float = 5.0, high_percentile: float = 95.0):
        self.decay = decay
        self.quantiles = torch.tensor([low_percentile / 100, high_percentile / 100])
        self.low, self.high = 0.0, 0.0

    def update(self, returns: torch.Tensor) -> None:
        """Fold one batch of λ-returns (any shape) into the percentile EMAs."""
        x = returns.detach().flatten().float().cpu()
        low, high = torch.quantile(x, self.quantiles).tolist()
        self.low = self.decay * self.low + (1 - self.decay) * low
        self.high = self.decay * self.high + (1 - self.decay) * high

    @property
    def scale(self) -> float:
        """max(1, P95 - P5)."""
        return max(1.0, self.high - self.low)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMAs as float64 tensors (exact for Python floats), as a module's state dict."""
        return {"low": torch.tensor(self.low, dtype=torch.float64), "high": torch.tensor(self.high, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, torch.Tensor | float]) -> None:
        if set(state) != {"low", "high"}:
            raise KeyError(f"return normalizer state has keys {sorted(state)}, expected ['high', 'low']")
        self.low, self.high = float(state["low"]), float(state["high"])


def replay_lambda_returns(reward: torch.Tensor, is_terminal: torch.Tensor, is_first: torch.Tensor,
                          values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """λ-returns along replayed real sequences, ``(B, L)`` inputs -> ``(B, L-1)`` targets for s_0..s_{L-2}.

    In the replay layout ``reward[t]`` is the reward received on arriving at s_t and ``is_terminal[t]``
    says s_t ended its episode, so

        R_t = r_{t+1} + γ (1 - term_{t+1}) ((1 - λ) V(s_{t+1}) + λ R_{t+1}),    R_{L-1} := V(s_{L-1}).

    A window may run into the next episode: where s_{t+1} starts one (``is_first``), s_t is the old
    episode's final observation and R_t := V(s_t), so no return crosses the boundary.  (The target
    at a terminal s_t is meaningless; the caller masks it out.)
    """
    terminal = is_terminal.to(values.dtype)
    R, out = values[:, -1], []
    for t in reversed(range(values.shape[1] - 1)):
        step = reward[:, t + 1] + gamma * (1.0 - terminal[:, t + 1]) * ((1.0 - lam) * values[:, t + 1] + lam * R)
        R = torch.where(is_first[:, t + 1], values[:, t], step)
        out.append(R)
    return torch.stack(out[::-1], dim=1)
