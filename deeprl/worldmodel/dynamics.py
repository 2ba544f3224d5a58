"""Latent dynamics of the world model: transition p_ψ(z'|z,a), reward p_ψ(r|z'), continue p_ψ(c|z').

The lecture's "Train dynamics model": for each (s, a, r', s') encode z ~ q_ψ(z|s) and
z' ~ q_ψ(z'|s'), then maximize log p_ψ(z'|z,a) (:class:`GaussianTransition`) and log p_ψ(r'|z')
(:class:`GaussianReward`).  Episodes end, which the lecture leaves out, so :class:`ContinueModel`
adds p_ψ(c|z') with c = 1 - terminated, a Bernoulli.

Every model returns its distribution's parameters from ``forward``, scores a target with
``log_prob`` (conditioning first, target last, as in p(target | conditioning)) and draws with
``sample``.  Gaussian samples are reparameterized, mean + σ·ε with ε ~ N(0, I), so a sample carries
gradient to the mean and the log-std; that is what "dreaming" back-propagates through.

Standard deviations are bounded with :func:`soft_clamp` to [e^-5, e^2] ≈ [0.0067, 7.4]: without a
floor a model that fits deterministic data drives σ → 0 and its log-likelihood to +∞.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deeprl.errors import EnvError
from deeprl.nets import gaussian_log_prob, mlp

__all__ = [
    "ContinueModel",
    "GaussianHead",
    "GaussianReward",
    "GaussianTransition",
    "action_dim",
    "action_input",
    "gaussian_log_prob",
    "gaussian_rsample",
    "soft_clamp",
]

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smoothly squash ``x`` into about (low, high), near identity in between (Chua et al. 2018, PETS).

    The lower bound is exact; the upper one overshoots by softplus(low - high) (0.0009 for [-5, 2]).

    Unlike ``clamp`` it keeps a gradient at the bounds; unlike ``low + (high - low) * sigmoid(x)``
    it maps 0 to about 0, so a freshly initialized head starts at σ ≈ 1.
    """
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


def gaussian_rsample(mean: torch.Tensor, log_std: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A reparameterized draw μ + σ·ε, ε ~ N(0, I): differentiable in μ and log σ.

    ``generator`` must live on the tensors' device; ``None`` uses torch's global RNG.
    """
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(log_std) * eps


class GaussianHead(nn.Module):
    """A linear layer to the mean and bounded log-std of a diagonal Gaussian over ``dim`` variables."""

    def __init__(self, in_features: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., in_features)`` -> (mean, log_std), each ``(..., dim)``."""
        mean, raw = self.linear(h).chunk(2, dim=-1)
        return mean, soft_clamp(raw, LOG_STD_MIN, LOG_STD_MAX)


def action_dim(space: gym.Space) -> int:
    """Width of :func:`action_input`: n for Discrete(n) (one-hot), the flattened size for a Box."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise EnvError(f"the world model handles Discrete and Box actions; this env's actions are {space}")


def action_input(actions: torch.Tensor, space: gym.Space, lead: torch.Size) -> torch.Tensor:
    """Actions as network input: one-hot for Discrete (indices counted from ``space.start``), Box as-is.

    ``lead`` is the batch shape (e.g. ``z.shape[:-1]``); returns ``(*lead, action_dim(space))`` floats.
    """
    if isinstance(space, gym.spaces.Discrete):
        index = actions.long().reshape(lead) - int(space.start)
        return F.one_hot(index, int(space.n)).float()
    return actions.float().reshape(*lead, -1)


class GaussianTransition(nn.Module):
    """Transition model p_ψ(z'|z,a) = N(μ_ψ(z,a), diag σ_ψ(z,a)²), an MLP on concat(z, a).

    With ``residual`` (the default) the MLP predicts the change, μ_ψ(z,a) = z + f_ψ(z,a): most
    latents move little in one step, and a near-zero initial f starts the model at "nothing
    changes" instead of at noise.
    """

    def __init__(self, latent_dim: int, action_space: gym.Space, hidden: Sequence[int] = (200, 200), *,
                 residual: bool = True):
        super().__init__()
        self.action_space = action_space
        self.residual = residual
        in_dim = latent_dim + action_dim(action_space)
        self.body = mlp(in_dim, hidden, activation=nn.ELU)
        self.head = GaussianHead(hidden[-1] if hidden else in_dim, latent_dim)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (..., L)``, ``action (...)`` indices or ``(..., *action_shape)`` -> (mean, log_std) of z'."""
        a = action_input(action, self.action_space, z.shape[:-1])
        mean, log_std = self.head(self.body(torch.cat([z, a], dim=-1)))
        return (z + mean if self.residual else mean), log_std

    def log_prob(self, z: torch.Tensor, action: torch.Tensor, next_z: torch.Tensor) -> torch.Tensor:
        """log p_ψ(z'|z,a), the quantity the lecture maximizes; ``(...)``."""
        return gaussian_log_prob(next_z, *self(z, action))

    def sample(self, z: torch.Tensor, action: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """z' ~ p_ψ(z'|z,a), reparameterized (dreaming's "Transition" step)."""
        return gaussian_rsample(*self(z, action), generator=generator)


class GaussianReward(nn.Module):
    """Reward model p_ψ(r|z) = N(μ_ψ(z), σ_ψ(z)²), a univariate Gaussian from an MLP.

    Condition it on the *next* latent z' (the lecture's p_ψ(r'|z')).
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (200, 200)):
        super().__init__()
        self.body = mlp(latent_dim, hidden, activation=nn.ELU)
        self.head = GaussianHead(hidden[-1] if hidden else latent_dim, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., L)`` -> (mean, log_std), each ``(...)``."""
        mean, log_std = self.head(self.body(z))
        return mean.squeeze(-1), log_std.squeeze(-1)

    def log_prob(self, z: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """log p_ψ(r'|z'), the quantity the lecture maximizes; ``(...)``."""
        mean, log_std = self(z)
        return gaussian_log_prob(reward.unsqueeze(-1), mean.unsqueeze(-1), log_std.unsqueeze(-1))

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """r' ~ p_ψ(r'|z'), reparameterized (dreaming's "Reward" step); ``(...)``."""
        return gaussian_rsample(*self(z), generator=generator)


class ContinueModel(nn.Module):
    """Continue model p_ψ(c|z') = Bernoulli(σ(logit_ψ(z'))), c = 1 - terminated (beyond the lecture).

    A truncated episode did not end in the MDP, so its last transition has c = 1.  A dream should
    discount by the probability ``sigmoid(logit)`` rather than a sample, which carries no gradient.
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (200, 200)):
        super().__init__()
        self.body = mlp(latent_dim, hidden, activation=nn.ELU)
        self.head = nn.Linear(hidden[-1] if hidden else latent_dim, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., L)`` -> logits ``(...)`` of P(continue)."""
        return self.head(self.body(z)).squeeze(-1)

    def log_prob(self, z: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """log p_ψ(c|z') for c in {0, 1}; ``(...)``."""
        return -F.binary_cross_entropy_with_logits(self(z), cont.float(), reduction="none")

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """c ~ p_ψ(c|z') as 0./1. floats; ``(...)``.  Not differentiable (see the class note)."""
        return torch.bernoulli(torch.sigmoid(self(z)), generator=generator)
