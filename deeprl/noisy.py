"""Noisy linear layers (Fortunato et al. 2018, "Noisy Networks for Exploration"), factorized Gaussian.

    y = (μ_w + σ_w ⊙ ε_w) x + μ_b + σ_b ⊙ ε_b,    ε_w = f(ε_out) f(ε_in)ᵀ,  ε_b = f(ε_out),  f(x) = sgn(x) √|x|

with ε_in ~ N(0, I_p), ε_out ~ N(0, I_q): p + q draws per layer instead of p q.  The noise is held
in buffers (so checkpoints keep it and a resumed run acts as the uninterrupted one would) and is
redrawn only by :func:`reset_noise`; in ``eval()`` mode the layer uses its mean weights μ.

:func:`noisify` makes every fully connected layer of a network noisy, as NoisyNet-DQN and Rainbow
have them (the convolutions stay plain): noise on the torso's features as well as on the output
layer, which a large Q gap between two actions cannot drown out as easily.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F


class NoisyLinear(nn.Module):
    """A linear layer ``in_features`` -> ``out_features`` with learned, factorized Gaussian noise."""

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # the paper's factorized init: μ ~ U[-1/√p, 1/√p], σ = σ0/√p
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound)) if bias else None
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_noise()

    @staticmethod
    def _f(x: torch.Tensor) -> torch.Tensor:
        return x.sign() * x.abs().sqrt()

    def reset_noise(self) -> None:
        """Draw new ε_in, ε_out from torch's current random stream (the agent's own while it trains)."""
        with torch.no_grad():
            self.eps_in.copy_(self._f(torch.randn(self.in_features, device=self.eps_in.device)))
            self.eps_out.copy_(self._f(torch.randn(self.out_features, device=self.eps_out.device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = None if self.bias_mu is None else self.bias_mu + self.bias_sigma * self.eps_out
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias_mu is not None}"


def noisify(net: nn.Module, sigma0: float) -> nn.Module:
    """``net`` with each of its ``nn.Linear`` layers replaced by a :class:`NoisyLinear` of the same
    shape (freshly initialised, as the paper's), in place; returns ``net``."""
    for name, child in net.named_children():
        if isinstance(child, nn.Linear):
            setattr(net, name, NoisyLinear(child.in_features, child.out_features, sigma0, bias=child.bias is not None))
        else:
            noisify(child, sigma0)
    return net


def plain_as_noisy(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` (module name + state-dict key) with each noisy layer that they hold as a plain
    ``nn.Linear`` (``weight``, ``bias``) read as a :class:`NoisyLinear` with σ = 0, the same function:
    models saved while only the Q-network's head was noisy load into one noisy throughout."""
    out = dict(tensors)
    for name, module in modules.items():
        for path, layer in module.named_modules():
            prefix = f"{name}.{path}." if path else f"{name}."
            if not isinstance(layer, NoisyLinear) or prefix + "weight_mu" in out or prefix + "weight" not in out:
                continue
            weight = out.pop(prefix + "weight")
            out[prefix + "weight_mu"], out[prefix + "weight_sigma"] = weight, torch.zeros_like(weight)
            out[prefix + "eps_in"] = torch.zeros(weight.shape[1], dtype=weight.dtype)
            out[prefix + "eps_out"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
            if prefix + "bias" in out:
                bias = out.pop(prefix + "bias")
                out[prefix + "bias_mu"], out[prefix + "bias_sigma"] = bias, torch.zeros_like(bias)
    return out


def reset_noise(net: nn.Module | None) -> None:
    """Redraw the noise of every noisy layer in ``net`` (none: nothing)."""
    if net is None:
        return
    for m in net.modules():
        if isinstance(m, NoisyLinear):
            m.reset_noise()


@contextlib.contextmanager
def mean_weights(net: nn.Module) -> Iterator[None]:
    """``net`` with its noisy layers at their mean weights μ (``eval()``) for the duration, for
    deterministic acting; its mode is restored after."""
    was = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was)
