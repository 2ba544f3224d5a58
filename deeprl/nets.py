"""Network torsos and heads. Networks know nothing of optimizers or losses."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn


def mlp(in_dim: int, hidden: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), activation()]
        in_dim = h
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """The Atari DQN torso (Mnih et al. 2015): three convolutions and a 512-unit layer.

    Input ``(B, C, H, W)`` uint8 in [0, 255]; scaled to [0, 1] here so replay can store bytes.
    """

    def __init__(self, in_shape: tuple[int, int, int], features: int = 512):
        super().__init__()
        c = in_shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *in_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, features), nn.ReLU())
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x.float() / 255.0))


class VectorTorso(nn.Module):
    """MLP over float vectors, or over one-hot codes of a Discrete observation (FrozenLake, Taxi)."""

    def __init__(self, space: gym.Space, hidden: list[int]):
        super().__init__()
        self.one_hot = isinstance(space, gym.spaces.Discrete)
        self.in_dim = int(space.n) if self.one_hot else int(np.prod(space.shape))
        self.body = mlp(self.in_dim, hidden)
        self.out_features = hidden[-1] if hidden else self.in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            x = nn.functional.one_hot(x.long(), self.in_dim).float()
        else:
            x = x.float().flatten(1)
        return self.body(x)


def make_torso(space: gym.Space, hidden: list[int]) -> nn.Module:
    """CNN for images (uint8, channels first), MLP otherwise. ``.out_features`` tells the width."""
    if isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3:
        return NatureCNN(tuple(space.shape))
    return VectorTorso(space, hidden)


class QNetwork(nn.Module):
    """Q_θ(s, ·): a torso, then one linear output per action (the lecture's Atari Q-network).

    With ``dueling`` the head splits into a state value V(s) and advantages A(s, a) and recombines
    them as Q = V + A - mean_a A, which makes V identifiable (Wang et al. 2016).
    """

    def __init__(self, obs_space: gym.Space, n_actions: int, hidden: list[int], dueling: bool = False):
        super().__init__()
        self.torso = make_torso(obs_space, hidden)
        self.dueling = dueling
        f = self.torso.out_features
        if dueling:
            self.value = nn.Linear(f, 1)
            self.advantage = nn.Linear(f, n_actions)
        else:
            self.head = nn.Linear(f, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, *obs_shape)`` -> ``(B, n_actions)``."""
        h = self.torso(obs)
        if not self.dueling:
            return self.head(h)
        adv = self.advantage(h)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


class NumpyQ:
    """A NumPy view of a CPU :class:`QNetwork` with an MLP torso, for acting one step at a time.

    A torch forward pass of a small MLP costs tens of microseconds of dispatch overhead, more
    than the environment step itself; the same three matrix products in NumPy cost a few.  The
    arrays are zero-copy views of the parameters (``Tensor.numpy()`` shares storage), and the
    optimizer updates parameters in place, so this view is always current.
    """

    def __init__(self, net: QNetwork):
        linears = [m for m in net.torso.body if isinstance(m, nn.Linear)]
        self.layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]
        if net.dueling:
            self.heads = [(net.value.weight.detach().numpy().T, net.value.bias.detach().numpy()),
                          (net.advantage.weight.detach().numpy().T, net.advantage.bias.detach().numpy())]
        else:
            self.heads = [(net.head.weight.detach().numpy().T, net.head.bias.detach().numpy())]

    @staticmethod
    def supports(net: nn.Module) -> bool:
        torso = getattr(net, "torso", None)
        return (isinstance(net, QNetwork) and isinstance(torso, VectorTorso) and not torso.one_hot
                and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in net.parameters())
                and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in torso.body))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(B, obs_dim)`` -> ``(B, n_actions)`` Q-values."""
        h = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        for w, b in self.layers:
            h = h @ w
            h += b
            np.maximum(h, 0.0, out=h)
        if len(self.heads) == 1:
            w, b = self.heads[0]
            return h @ w + b
        (wv, bv), (wa, ba) = self.heads
        adv = h @ wa + ba
        return (h @ wv + bv) + adv - adv.mean(axis=1, keepdims=True)
