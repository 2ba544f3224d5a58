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


def dense(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear → LayerNorm → SiLU, DreamerV3's hidden layer."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.LayerNorm(out_dim), nn.SiLU())


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int | None = None) -> nn.Sequential:
    """``layers`` dense layers of width ``hidden``, then a linear output (if ``out_dim``)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(dense(in_dim if i == 0 else hidden, hidden))
    if out_dim is not None:
        mods.append(nn.Linear(hidden if layers else in_dim, out_dim))
    return nn.Sequential(*mods)


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
        self.prior_net = mlp(deter, hidden, 1, stats_dim)
        self.post_net = mlp(deter + embed_dim, hidden, 1, stats_dim)

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
    def img_step(self, prev: State, action: torch.Tensor) -> State:
        """Dreaming: h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t)."""
        deter = self.gru(self.img_in(torch.cat([prev.stoch, action], dim=-1)), prev.deter)
        stats = self._stats(self.prior_net(deter))
        return State(deter, self._sample(stats), stats)

    def obs_step(self, prev: State, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor, mode: bool = False) -> tuple[State, State]:
        """Observing: the prior step, then z_t ~ q(z_t | h_t, e_t) (its mode if ``mode``: acting
        deterministically). A new episode (``is_first``) starts from the zero state and a zero
        previous action.  Returns (posterior, prior)."""
        keep = (~is_first).float().unsqueeze(-1)
        prev = State(prev.deter * keep, prev.stoch * keep, {})
        prior = self.img_step(prev, action * keep)
        stats = self._stats(self.post_net(torch.cat([prior.deter, embed], dim=-1)))
        return State(prior.deter, self._sample(stats, mode), stats), prior

    def observe(self, embeds: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None) -> tuple[State, State, State]:
        """Filter a batch of sequences: ``embeds (B, L, E)``, ``actions (B, L, A)`` (the action that
        led to each step), ``is_first (B, L)``.  Returns the posterior and prior states stacked to
        ``(B, L, ...)``, and the last posterior (to carry on from)."""
        B, L = embeds.shape[:2]
        state = state or self.initial(B, embeds.device)
        posts, priors = [], []
        for t in range(L):
            state, prior = self.obs_step(state, actions[:, t], embeds[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        return stack(posts), stack(priors), state


def stack(states: list[State], dim: int = 1) -> State:
    return State(torch.stack([s.deter for s in states], dim), torch.stack([s.stoch for s in states], dim),
                 {k: torch.stack([s.stats[k] for s in states], dim) for k in states[0].stats})


def flatten(state: State) -> State:
    """``(B, L, ...)`` -> ``(B·L, ...)``: every observed state becomes a start state of a dream."""
    n = state.deter.shape[0] * state.deter.shape[1]
    return State(state.deter.reshape(n, -1), state.stoch.reshape(n, -1),
                 {k: v.reshape(n, *v.shape[2:]) for k, v in state.stats.items()})
