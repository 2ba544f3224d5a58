"""State encoder q_ψ(z|s) and decoder p_ψ(ŝ|z): a VAE trained with the ELBO (lecture: "Train vision model").

:func:`make_vae` picks the networks from the observation space:

- **vectors** (1-D Box): MLPs;
- **images** of at least 46x46 pixels (64x64 RGB as in Ha & Schmidhuber's World Models): four
  stride-2 4x4 convolutions with 32-64-128-256 channels, and the mirrored transposed convolutions
  back (64 -> 31 -> 14 -> 6 -> 2 and back; 46 pixels is the smallest size four such layers take);
- **small grids** (MinAtar's 10x10xC): two stride-1 3x3 convolutions that keep the grid, then an
  MLP; the decoder mirrors them;
- **composite observations** (Dict, Tuple...: a :class:`~deeprl.spaces.Packed` space): one coder
  per entry (:mod:`deeprl.worldmodel.coders`), each entry scored by its own likelihood (images and
  vectors unit-variance Gaussian, bits Bernoulli, Discrete slots categorical).

Images may be channels-last (HWC, as Gymnasium and :class:`deeprl.envs.pixels.PixelObservation`
emit them) or channels-first (CHW, as ``make_env`` emits them); the networks work in CHW.

The reconstruction likelihood p_ψ(s|z):

- **Gaussian** for vectors and pixels.  Vectors learn one σ per dimension (a parameter, not a
  function of z), because their dimensions have unrelated scales (CartPole's angle vs its
  velocities); pixels, scaled to [0, 1], use a fixed σ = 1 as in Dreamer, so -log p is half the
  summed squared error (World Models' L2 loss) plus a constant.
- **Bernoulli** for binary grids (a bool Box, or an integer Box with values in {0, 1}, e.g. MinAtar):
  the decoder outputs one logit per cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deeprl.errors import ConfigError, EnvError
from deeprl.spaces import Packed
from deeprl.worldmodel.coders import make_coder
from deeprl.worldmodel.dynamics import (LOG_STD_MAX, LOG_STD_MIN, GaussianHead, gaussian_log_prob,
                                        gaussian_rsample, soft_clamp)

__all__ = ["ELBOTerms", "VAE", "bernoulli_log_prob", "elbo", "kl_standard_normal", "make_vae"]

Likelihood = Literal["gaussian", "bernoulli"]



def kl_standard_normal(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_i (μ_i² + σ_i² - 1 - 2 log σ_i), in closed form.

    ``(..., L)`` -> ``(...)``.
    """
    return 0.5 * (mean.pow(2) + torch.exp(2 * log_std) - 1.0 - 2 * log_std).sum(dim=-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) for x in {0, 1}, summed over the last dim: ``(..., D)`` -> ``(...)``."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


class VAE(nn.Module):
    """q_ψ(z|s) = N(μ_ψ(s), diag σ_ψ(s)²) and p_ψ(s|z) for one observation space; build with :func:`make_vae`.

    Observations go in as the env emits them, ``(*batch, *observation_shape)`` (uint8 pixels, bool
    grids, float vectors); latents are ``(*batch, latent_dim)``.
    """

    def __init__(self, observation_space: gym.spaces.Box, latent_dim: int, encoder: nn.Module, features: int,
                 decoder: nn.Module, *, likelihood: Likelihood, channels_last: bool, learn_obs_std: bool,
                 obs_std: float):
        super().__init__()
        self.obs_shape = tuple(observation_space.shape)
        self.packed = isinstance(observation_space, Packed)  # one likelihood per entry: MultiDecoder's
        self.obs_dtype = torch.from_numpy(np.zeros(0, observation_space.dtype)).dtype
        self.image = len(self.obs_shape) == 3
        self.channels_last = channels_last
        integer = np.issubdtype(observation_space.dtype, np.integer)
        self.scale = float(observation_space.high.max()) if integer else 1.0  # pixels -> [0, 1]
        if self.image:
            h, w, c = self.obs_shape if channels_last else (self.obs_shape[1], self.obs_shape[2], self.obs_shape[0])
            self.model_shape: tuple[int, ...] = (c, h, w)
        else:
            self.model_shape = self.obs_shape
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.encoder = encoder
        self.head = GaussianHead(features, latent_dim)
        self.decoder = decoder
        self.learn_obs_std = learn_obs_std
        if likelihood == "gaussian":
            log_std = torch.full(self.model_shape, math.log(obs_std))
            if learn_obs_std:
                self.obs_log_std = nn.Parameter(log_std)
            else:
                self.register_buffer("obs_log_std", log_std)

    def _to_model(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """Env observations -> float ``(N, *model_shape)`` in [0, 1] for pixels, and the batch shape."""
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        x = obs.reshape(-1, *self.obs_shape).float()
        if self.image:
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)
            x = x / self.scale
        return x, lead

    def encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_ψ(z|s): ``(*batch, *observation_shape)`` -> (mean, log_std), each ``(*batch, latent_dim)``."""
        x, lead = self._to_model(obs)
        mean, log_std = self.head(self.encoder(x))
        return mean.reshape(*lead, -1), log_std.reshape(*lead, -1)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ q_ψ(z|s), reparameterized (the lecture's "VAE Encoder" step)."""
        return gaussian_rsample(*self.encode(obs), generator=generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p_ψ(ŝ|z)'s parameters, ``(*batch, *model_shape)``: Gaussian means or Bernoulli logits.

        ``model_shape`` is CHW for images, scaled to [0, 1] for pixels.
        """
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*z.shape[:-1], *((-1,) if self.packed else self.model_shape))

    def log_likelihood(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_ψ(s|z), summed over the observation's dimensions: ``(*batch)``."""
        x, lead = self._to_model(obs)
        if self.packed:
            return self.decoder.log_prob(self.decode(z).reshape(len(x), -1), x).reshape(lead)
        params = self.decode(z).reshape(x.shape).flatten(1)
        x = x.flatten(1)
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(x, params).reshape(lead)
        log_std = self.obs_log_std.flatten()
        if self.learn_obs_std:
            log_std = soft_clamp(log_std, LOG_STD_MIN, LOG_STD_MAX)
        return gaussian_log_prob(x, params, log_std).reshape(lead)

    def observation(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded observation ŝ in the env's layout and dtype, e.g. for pictures of a dream.

        The Gaussian mean, or the most likely value of each Bernoulli cell; integer observations
        (pixels) are rounded and clipped to their dtype's range.
        """
        params = self.decode(z)
        if self.packed:
            return self.decoder.mode(params)
        lead = params.shape[: params.dim() - len(self.model_shape)]
        x = params.reshape(-1, *self.model_shape)
        if self.likelihood == "bernoulli":
            x = (x > 0).float()
        if self.image:
            x = x * self.scale
            if self.channels_last:
                x = x.permute(0, 2, 3, 1)
        if not self.obs_dtype.is_floating_point and self.obs_dtype != torch.bool:
            info = torch.iinfo(self.obs_dtype)  # a cast would wrap 256 around to 0
            x = x.round().clamp(info.min, info.max)
        return x.to(self.obs_dtype).reshape(*lead, *self.obs_shape)


@dataclass(frozen=True)
class ELBOTerms:
    """The VAE's loss and the terms it is made of, batch means (log them by name)."""

    loss: torch.Tensor  # scalar to minimize: -(log p_ψ(s|z) - β·max(KL, free_nats))
    log_likelihood: torch.Tensor  # log p_ψ(s|z) in nats per observation
    kl: torch.Tensor  # KL(q_ψ(z|s) ‖ N(0, I)) in nats per observation, before free nats

    def metrics(self) -> dict[str, float]:
        return {"loss/vae": self.loss.item(), "loss/recon": -self.log_likelihood.item(), "loss/kl": self.kl.item()}


def elbo(vae: VAE, obs: torch.Tensor, *, beta: float = 1.0, free_nats: float = 0.0,
         generator: torch.Generator | None = None) -> ELBOTerms:
    """The ELBO E_q[log p_ψ(s|z)] - β·KL(q_ψ(z|s) ‖ N(0, I)), estimated with one reparameterized z per s.

    ``beta`` weighs the KL (β-VAE; 1 is the ELBO).  ``free_nats`` stops pushing an observation's KL
    below that many nats (World Models' ``kl_tolerance``, Dreamer's free nats), so the latent keeps
    information instead of collapsing onto the prior; the reported ``kl`` is the unclipped value.
    """
    mean, log_std = vae.encode(obs)
    z = gaussian_rsample(mean, log_std, generator=generator)
    log_lik = vae.log_likelihood(obs, z)
    kl = kl_standard_normal(mean, log_std)
    loss = -(log_lik - beta * kl.clamp(min=free_nats)).mean()
    return ELBOTerms(loss=loss, log_likelihood=log_lik.mean(), kl=kl.mean())


def _is_binary(space: gym.spaces.Box) -> bool:
    if space.dtype == np.bool_:
        return True
    return bool(np.issubdtype(space.dtype, np.integer) and np.all(space.low == 0) and np.all(space.high == 1))


def make_vae(observation_space: gym.Space, latent_dim: int = 32, hidden: Sequence[int] = (256,), *,
             likelihood: Likelihood | None = None, learn_obs_std: bool | None = None, obs_std: float = 1.0,
             channels_last: bool | None = None) -> VAE:
    """A VAE for ``observation_space`` (see the module docstring for the networks and likelihoods).

    ``hidden`` sizes the MLPs (vectors; the dense part of the small-grid network); the strided
    image network follows World Models and has none.  ``likelihood`` defaults to Bernoulli for
    binary observations and Gaussian otherwise; ``learn_obs_std`` defaults to True for vectors and
    False for images, ``obs_std`` is the fixed σ (or the learned one's start).  ``channels_last``
    defaults to taking the shortest axis of an image as its channels (the last on a tie, e.g.
    10x10x10), so pass it for CHW images with more channels than rows.
    """
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be at least 1, got {latent_dim}")
    if likelihood not in (None, "gaussian", "bernoulli"):
        raise ConfigError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}")
    if not obs_std > 0:
        raise ConfigError(f"obs_std must be positive, got {obs_std}")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) not in (1, 3):
        raise EnvError("the world model's VAE handles vector (1-D Box) and image (3-D Box) observations; "
                       f"this env observes {observation_space}")
    shape = observation_space.shape
    if len(shape) == 3 and channels_last is None:
        channels_last = shape[2] <= min(shape[0], shape[1])
    encoder, features, decoder = make_coder(observation_space, latent_dim, hidden, channels_last=bool(channels_last))
    return VAE(observation_space, latent_dim, encoder, features, decoder,
               likelihood=likelihood or ("bernoulli" if _is_binary(observation_space) else "gaussian"),
               channels_last=bool(channels_last),
               learn_obs_std=(len(shape) == 1 and not isinstance(observation_space, Packed)) if learn_obs_std is None
               else learn_obs_std, obs_std=obs_std)
