"""Dreamer's actor π_θ(a|s) on the model's features, and the action forms it moves between.

Discrete choices (Discrete, MultiDiscrete, MultiBinary) are categorical with unimix, one per
slot (a Discrete space is one slot; a bit is a slot of two values); the model sees them one-hot,
slot after slot, and the env gets the codes.  Continuous actions are a tanh-squashed Gaussian in
[-1, 1], rescaled to the Box bounds by the agent.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deeprl.dreamer.math import straight_through_onehot, unimix_logits
from deeprl.nets import gaussian_entropy, gaussian_log_prob, mlp


def factor_sizes(space: gym.Space) -> tuple[int, ...]:
    """The number of values of each categorical slot of a discrete action space; () for a Box."""
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(int(n) for n in space.nvec)
    if isinstance(space, gym.spaces.MultiBinary):
        return (2,) * int(np.prod(space.shape))
    return ()


class Actor(nn.Module):
    """π_θ(a|s) on features [h, z]: categorical with unimix (straight-through one-hot samples) per
    slot of a discrete action space, tanh-squashed Gaussian (reparameterized) in [-1, 1] for a Box."""

    def __init__(self, feature_dim: int, action_space: gym.Space, hidden: int, layers: int, unimix: float):
        super().__init__()
        self.space = action_space
        self.nvec = factor_sizes(action_space)
        self.discrete = bool(self.nvec)
        self.factorized = not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box))
        self.n = sum(self.nvec) if self.discrete else int(np.prod(action_space.shape))
        self.unimix = unimix
        self.net = mlp(feature_dim, [hidden] * layers, self.n if self.discrete else 2 * self.n, activation=nn.SiLU,
                       layer_norm=True)

    def forward(self, feature: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(action, log π(action), entropy)``; actions are one-hot per slot (discrete) or in [-1, 1]."""
        out = self.net(feature)
        if self.discrete:
            actions, log_prob, entropy = [], 0.0, 0.0
            for slot, n in zip(out.split(list(self.nvec), dim=-1), self.nvec):
                logits = unimix_logits(slot, self.unimix) if self.unimix > 0 else slot.log_softmax(-1)
                probs = logits.exp()
                if deterministic:
                    action = F.one_hot(logits.argmax(-1), n).to(probs.dtype)
                else:  # straight-through: forward a one-hot sample, backward the gradient of the probabilities
                    action = straight_through_onehot(logits)
                actions.append(action)
                log_prob = log_prob + (logits * action.detach()).sum(-1)
                entropy = entropy - (probs * logits).sum(-1)
            return (actions[0] if len(actions) == 1 else torch.cat(actions, -1)), log_prob, entropy
        mean, raw_std = out.chunk(2, dim=-1)
        std = 2 * torch.sigmoid(raw_std / 2) + 0.1  # in (0.1, 2.1), as in DreamerV3's bounded normal
        u = mean if deterministic else mean + std * torch.randn_like(mean)  # reparameterized
        action = torch.tanh(u)
        # log π(a) as REINFORCE's score function needs it: a function of θ at the drawn sample held
        # fixed (⊥u), so ∂/∂μ keeps its (u - μ)/σ² term; the reparameterized path runs through ``action``
        sample = u.detach()
        log_prob = gaussian_log_prob(sample, mean, std.log()) - torch.log1p(-torch.tanh(sample).pow(2) + 1e-6).sum(-1)
        entropy = gaussian_entropy(std.log())  # of u: tanh's has no closed form
        return action, log_prob, entropy

    # ------------------------------------------------------------------------ discrete action forms
    def one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B,)`` (Discrete) or ``(B, slots)`` -> the model's one-hot form ``(B, Σ nvec)``."""
        if not self.factorized:
            return F.one_hot(codes.long(), self.n).float()
        return torch.cat([F.one_hot(codes[..., j].long(), n) for j, n in enumerate(self.nvec)], -1).float()

    def codes(self, action: torch.Tensor) -> np.ndarray:
        """The model's one-hot form -> env actions."""
        if not self.factorized:
            return action.argmax(-1).cpu().numpy()
        codes = torch.stack([a.argmax(-1) for a in action.split(list(self.nvec), dim=-1)], -1)
        return self.codes_to_env(codes.cpu().numpy())

    def codes_to_env(self, codes: np.ndarray) -> np.ndarray:
        """Slot codes counted from 0 -> the env's actions (MultiDiscrete codes from their start; bits)."""
        if isinstance(self.space, gym.spaces.MultiDiscrete):
            codes = codes + self.space.start
        return codes.astype(self.space.dtype)

    def env_to_codes(self, actions: torch.Tensor) -> torch.Tensor:
        if isinstance(self.space, gym.spaces.MultiDiscrete):
            return actions - torch.as_tensor(self.space.start, device=actions.device)
        return actions
