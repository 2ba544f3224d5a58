"""The observation networks the world models share: encoders to features and decoders back.

:func:`make_coder` picks them from the observation space (the VAE of :mod:`deeprl.worldmodel.vae`
and Dreamer both use it): MLPs for vectors, World Models' strided convolutions for images of at
least 46 pixels a side, two stride-1 convolutions for small grids, and for composite observations
(a :class:`~deeprl.spaces.Packed` space) one coder per entry (:class:`MultiEncoder`,
:class:`MultiDecoder`): each entry is encoded by its kind and decoded with its own likelihood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import torch
from torch import nn
from torch.nn import functional as F

from deeprl.nets import MultiInputTorso, mlp
from deeprl.spaces import Packed

_MIN_STRIDED = 46  # smallest side that four 4x4 stride-2 convolutions reduce to at least 1x1

Transform = Callable[[torch.Tensor], torch.Tensor]


class _Deconvolutions(nn.Module):
    """z -> a ``(256, h, w)`` map -> four 4x4 stride-2 transposed convolutions back to ``(C, H, W)``.

    ``sizes`` are the encoder's feature-map sizes, input first; each transposed convolution is told
    the size to produce, since stride 2 maps two input sizes onto one output size.
    """

    def __init__(self, latent_dim: int, channels: int, sizes: list[tuple[int, int]]):
        super().__init__()
        self.sizes = sizes
        h, w = sizes[-1]
        self.fc = nn.Linear(latent_dim, 256 * h * w)
        widths = [256, 128, 64, 32, channels]
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride=2) for i in range(4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = self.sizes[-1]
        x = self.fc(z).reshape(-1, 256, h, w)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x, output_size=self.sizes[-2 - i])
            if i < len(self.deconvs) - 1:
                x = F.relu(x)
        return x


def _strided_coder(c: int, h: int, w: int, latent_dim: int) -> tuple[nn.Module, int, nn.Module]:
    """World Models' VAE: four 4x4 stride-2 convolutions (32-64-128-256) and their mirror."""
    sizes = [(h, w)]
    for _ in range(4):
        sizes.append(((sizes[-1][0] - 4) // 2 + 1, (sizes[-1][1] - 4) // 2 + 1))
    encoder = nn.Sequential(
        nn.Conv2d(c, 32, 4, stride=2), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),
        nn.Conv2d(128, 256, 4, stride=2), nn.ReLU(),
        nn.Flatten(),
    )
    return encoder, 256 * sizes[-1][0] * sizes[-1][1], _Deconvolutions(latent_dim, c, sizes)


def _grid_coder(c: int, h: int, w: int, latent_dim: int, hidden: list[int]) -> tuple[nn.Module, int, nn.Module]:
    """Small grids: two 3x3 stride-1 convolutions that keep every cell, then an MLP; and the mirror."""
    flat = 32 * h * w
    encoder = nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(),
        mlp(flat, hidden, activation=nn.ELU),
    )
    back = hidden[::-1]
    decoder = nn.Sequential(
        mlp(latent_dim, back, activation=nn.ELU),
        nn.Linear(back[-1] if back else latent_dim, flat), nn.ReLU(),
        nn.Unflatten(1, (32, h, w)),
        nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, c, 3, padding=1),
    )
    return encoder, hidden[-1] if hidden else flat, decoder


def _mlp_coder(dim: int, latent_dim: int, hidden: list[int]) -> tuple[nn.Module, int, nn.Module]:
    back = hidden[::-1]
    decoder = nn.Sequential(mlp(latent_dim, back, activation=nn.ELU), nn.Linear(back[-1] if back else latent_dim, dim))
    return mlp(dim, hidden, activation=nn.ELU), hidden[-1] if hidden else dim, decoder


def make_coder(observation_space: gym.spaces.Box, code_dim: int, hidden: Sequence[int], *,
               channels_last: bool = False, vector_transform: Transform | None = None
               ) -> tuple[nn.Module, int, nn.Module]:
    """``(encoder, features, decoder)`` for an observation space: the encoder maps observations in
    the networks' layout (vectors, or CHW images in [0, 1]) to ``features`` numbers; the decoder
    maps a ``code_dim`` vector back to the observation's shape (CHW for images).  MLPs for
    vectors, World Models' strided convolutions for images of at least 46 pixels a side, two
    stride-1 convolutions for small grids.  The VAE and Dreamer share them.

    A :class:`~deeprl.spaces.Packed` space gets a :class:`MultiEncoder` that takes packed rows as
    they are (it scales images and one-hot codes itself; ``vector_transform``, e.g. symlog, applies
    to its vector entries) and a :class:`MultiDecoder` that outputs each entry's likelihood
    parameters."""
    hidden = list(hidden)
    if isinstance(observation_space, Packed):
        encoder = MultiEncoder(observation_space, hidden, vector_transform)
        return encoder, encoder.out_features, MultiDecoder(observation_space, code_dim, hidden, vector_transform)
    shape = observation_space.shape
    if len(shape) == 1:
        return _mlp_coder(shape[0], code_dim, hidden)
    h, w, c = shape if channels_last else (shape[1], shape[2], shape[0])
    if min(h, w) >= _MIN_STRIDED:
        return _strided_coder(c, h, w, code_dim)
    return _grid_coder(c, h, w, code_dim, hidden)




def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class _ScaledImages(nn.Module):
    """An image encoder of :func:`make_coder` on pixels scaled to [0, 1]."""

    def __init__(self, space: gym.spaces.Box, hidden: list[int]):
        super().__init__()
        self.encoder, self.out_features, _ = make_coder(space, 1, hidden)
        self.scale = float(space.high.max())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x / self.scale)


class MultiEncoder(MultiInputTorso):
    """A composite observation (packed rows) -> features, as the model-free torso reads them, with
    the world models' image encoders (in [0, 1]), ELU layers and ``transform`` (Dreamer: symlog)
    on the vector entries."""

    def __init__(self, space: Packed, hidden: list[int], transform: Transform | None = None):
        super().__init__(space, hidden, nn.ELU, transform=transform)

    def image_torso(self, space: gym.spaces.Box, hidden: list[int], activation: type[nn.Module],
                    layer_norm: bool) -> nn.Module:
        return _ScaledImages(space, hidden)


class MultiDecoder(nn.Module):
    """Code -> the parameters of p(o|z) for each entry of a composite observation, laid end to end:
    image means in [0, 1] (their image decoder), vector means (in ``transform``'s space), MultiBinary
    logits and one logit per value of each Discrete slot.  :meth:`log_prob` scores an observation,
    :meth:`mode` gives the most likely one."""

    def __init__(self, space: Packed, code_dim: int, hidden: list[int], transform: Transform | None = None):
        super().__init__()
        self.entries, self.transform = space.entries, transform or _identity
        self.images = nn.ModuleDict({str(i): make_coder(e.space, code_dim, hidden)[2]
                                     for i, e in enumerate(self.entries) if e.kind == "image"})
        self.widths = [0 if e.kind == "image" else sum(e.nvec) or e.size for e in self.entries]
        back = hidden[::-1]
        self.trunk = mlp(code_dim, back, activation=nn.ELU)
        self.head = nn.Linear(back[-1] if back else code_dim, sum(self.widths)) if sum(self.widths) else None

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        flat = self.head(self.trunk(code)) if self.head is not None else code[:, :0]
        out, at = [], 0
        for i, (e, w) in enumerate(zip(self.entries, self.widths)):
            if e.kind == "image":
                out.append(self.images[str(i)](code).flatten(1))
            else:
                out.append(flat[:, at:at + w])
                at += w
        return torch.cat(out, dim=1)

    def _split(self, params: torch.Tensor) -> list[torch.Tensor]:
        sizes = [e.size if e.kind == "image" else w for e, w in zip(self.entries, self.widths)]
        return list(params.split(sizes, dim=-1))

    def log_prob(self, params: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """log p(o|z) summed over the entries, ``(...)``: unit-variance Gaussians for images (in
        [0, 1]) and vectors (up to a constant: -½ squared error), Bernoulli bits, categorical slots."""
        total = torch.zeros(params.shape[:-1], device=params.device)
        for e, p in zip(self.entries, self._split(params)):
            x = obs[..., e.offset:e.offset + e.size].float()
            if e.kind == "image":
                total = total - 0.5 * (p - x / float(e.space.high.max())).pow(2).sum(-1)
            elif e.kind == "vector":
                total = total - 0.5 * (p - self.transform(x)).pow(2).sum(-1)
            elif e.kind == "binary":
                total = total - F.binary_cross_entropy_with_logits(p, x, reduction="none").sum(-1)
            else:
                for j, logits in enumerate(p.split(list(e.nvec), dim=-1)):
                    total = total + logits.log_softmax(-1).gather(-1, x[..., j:j + 1].long()).squeeze(-1)
        return total

    def mode(self, params: torch.Tensor, inverse: Transform = _identity) -> torch.Tensor:
        """The most likely packed observation for each row of ``params`` (``inverse`` undoes ``transform``)."""
        out = []
        for e, p in zip(self.entries, self._split(params)):
            if e.kind == "image":
                out.append((p.clamp(0, 1) * float(e.space.high.max())).round())
            elif e.kind == "vector":
                out.append(inverse(p))
            elif e.kind == "binary":
                out.append((p > 0).float())
            else:
                out.append(torch.stack([g.argmax(-1) for g in p.split(list(e.nvec), dim=-1)], -1).float())
        return torch.cat(out, dim=-1)
