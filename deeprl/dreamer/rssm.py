"""The recurrent state-space model (RSSM) of Dreamer: a world model with memory.

State s_t = (h_t, z_t): a deterministic GRU state h_t that carries the past, and a stochastic
latent z_t, either categorical (``stoch`` one-hot variables of ``classes`` classes, DreamerV2/V3)
or a diagonal Gaussian (``stoch`` numbers, Dreamer V1)::

    h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}]))       deterministic path
    prior      p(z_t | h_t)                           what the model expects: used to dream
    posterior  q(z_t | h_t, e_t),  e_t = enc(o_t)     what it saw: used to learn and to act

Both samples are reparameterized (Gaussian: μ + σ·ε; categorical: straight-through one-hot), so
a dream is differentiable end to end: the actor's gradient can flow back through z, h and a.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from deeprl.dreamer.math import straight_through_onehot, unimix_logits
from deeprl.nets import dense, mlp


@dataclass
class State:
    """An RSSM state for a batch: ``deter (..., D)``, ``stoch (..., S·C or S)`` and the statistics
    of the distribution ``stoch`` was drawn from (``logits (..., S, C)`` or ``mean``/``std (..., S)``)."""

    deter: torch.Tensor
    stoch: torch.Tensor
    stats: dict[str, torch.Tensor]

    def feature(self) -> torch.Tensor:
        """[h, z]: what every head (decoder, reward, continue, actor, critic) reads."""
        return torch.cat([self.deter, self.stoch], dim=-1)

    def detach(self) -> "State":
        return State(self.deter.detach(), self.stoch.detach(), {k: v.detach() for k, v in self.stats.items()})


class RSSM(nn.Module):
    def __init__(self, embed_dim: int, action_dim: int, *, deter: int = 256, hidden: int = 256, stoch: int = 16,
                 classes: int = 16, latent: str = "categorical", unimix: float = 0.01, min_std: float = 0.1):
        super().__init__()
        self.latent, self.unimix, self.min_std = latent, unimix, min_std
        self.deter_dim, self.stoch, self.classes = deter, stoch, classes
        self.stoch_dim = stoch * classes if latent == "categorical" else stoch
        stats_dim = stoch * classes if latent == "categorical" else 2 * stoch
        self.img_in = dense(self.stoch_dim + action_dim, hidden)
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = mlp(deter, [hidden], stats_dim, activation=nn.SiLU, layer_norm=True)
        self.post_net = mlp(deter + embed_dim, [hidden], stats_dim, activation=nn.SiLU, layer_norm=True)

    @property
    def feature_dim(self) -> int:
        return self.deter_dim + self.stoch_dim

    def initial(self, batch: int, device: torch.device) -> State:
        zeros = torch.zeros(batch, self.deter_dim, device=device)
        return State(zeros, torch.zeros(batch, self.stoch_dim, device=device), {})

    # ------------------------------------------------------------------ distributions over z
    def _stats(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.latent == "categorical":  # 1% uniform mixed in: no class is ever impossible (V3's unimix)
            logits = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
            return {"logits": unimix_logits(logits, self.unimix) if self.unimix > 0 else logits}
        mean, std = raw.chunk(2, dim=-1)
        return {"mean": mean, "std": F.softplus(std) + self.min_std}

    def _sample(self, stats: dict[str, torch.Tensor], mode: bool = False) -> torch.Tensor:
        """A reparameterized draw of z (or its mode), flattened to ``(..., stoch_dim)``."""
        if mode:
            if self.latent == "categorical":
                logits = stats["logits"]
                return F.one_hot(logits.argmax(-1), self.classes).to(logits.dtype).flatten(-2)
            return stats["mean"]
        if self.latent == "categorical":
            return straight_through_onehot(stats["logits"]).flatten(-2)
        return stats["mean"] + stats["std"] * torch.randn_like(stats["std"])

    # ------------------------------------------------------------------ one step
    def _deter_step(self, prev: State, action: torch.Tensor) -> torch.Tensor:
        """h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}])): the deterministic path, shared by both steps."""
        return self.gru(self.img_in(torch.cat([prev.stoch, action], dim=-1)), prev.deter)

    def prior(self, deter: torch.Tensor) -> dict[str, torch.Tensor]:
        """The statistics of p(z_t | h_t), for any leading shape of ``deter``."""
        return self._stats(self.prior_net(deter))

    def img_step(self, prev: State, action: torch.Tensor) -> State:
        """Dreaming: h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t)."""
        deter = self._deter_step(prev, action)
        stats = self.prior(deter)
        return State(deter, self._sample(stats), stats)

    def obs_step(self, prev: State, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor, mode: bool = False) -> State:
        """Observing: h_t from the deterministic path, then z_t ~ q(z_t | h_t, e_t) (its mode if
        ``mode``: acting deterministically).  A new episode (``is_first``) starts from the zero
        state and a zero previous action.  Returns the posterior state."""
        keep = (~is_first).float().unsqueeze(-1)
        return self._post_step(State(prev.deter * keep, prev.stoch * keep, {}), action * keep, embed, mode)

    def _post_step(self, prev: State, action: torch.Tensor, embed: torch.Tensor, mode: bool = False) -> State:
        deter = self._deter_step(prev, action)
        stats = self._stats(self.post_net(torch.cat([deter, embed], dim=-1)))
        return State(deter, self._sample(stats, mode), stats)

    def observe(self, embeds: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None) -> tuple[State, dict[str, torch.Tensor], State]:
        """Filter a batch of sequences: ``embeds (B, L, E)``, ``actions (B, L, A)`` (the action that
        led to each step), ``is_first (B, L)``.  Returns the posterior states stacked to
        ``(B, L, ...)``, the prior's statistics p(z_t | h_t) at the same steps, and the last
        posterior (to carry on from).

        Only the posterior feeds the recurrence, so the loop over time computes it alone; the
        prior, needed for the KL term only, is computed afterwards for all steps at once (on a
        GPU, where small kernels cost their launch, this halves the work inside the loop)."""
        B, L = embeds.shape[:2]
        state = state or self.initial(B, embeds.device)
        keep = (~is_first).float().unsqueeze(-1)   # (B, L, 1): 0 where an episode starts
        actions = actions * keep
        posts = []
        for t in range(L):
            k = keep[:, t]
            state = self._post_step(State(state.deter * k, state.stoch * k, {}), actions[:, t], embeds[:, t])
            posts.append(state)
        post = stack(posts)
        return post, self.prior(post.deter), state


def stack(states: list[State], dim: int = 1) -> State:
    return State(torch.stack([s.deter for s in states], dim), torch.stack([s.stoch for s in states], dim),
                 {k: torch.stack([s.stats[k] for s in states], dim) for k in states[0].stats})


def flatten(state: State) -> State:
    """``(B, L, ...)`` -> ``(B·L, ...)``: every observed state becomes a start state of a dream."""
    n = state.deter.shape[0] * state.deter.shape[1]
    return State(state.deter.reshape(n, -1), state.stoch.reshape(n, -1),
                 {k: v.reshape(n, *v.shape[2:]) for k, v in state.stats.items()})
