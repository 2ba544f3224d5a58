"""Adam and RMSprop over one flat parameter buffer: a handful of tensor ops per gradient step.

RL networks are small, so a gradient step is dominated by per-op overhead, not arithmetic:
``torch.optim`` walks its parameter groups, per-parameter state and hooks on every ``step()``
(hundreds of microseconds on a CPU, for a 64-64 MLP more than forward and backward together).
Here every parameter is re-homed as a view into one contiguous tensor ``flat`` and its gradient
as a view into one tensor ``grad``; autograd accumulates into those views in place.  Clipping,
zeroing and the update are then a few ops on two long vectors, with the same arithmetic as
``torch.optim.Adam`` / ``torch.optim.RMSprop``::

    RMSprop:  v ← α v + (1-α) g²                       θ ← θ - lr · g / (√v + ε)
    Adam:     m ← β₁ m + (1-β₁) g,  v ← β₂ v + (1-β₂) g²,
              θ ← θ - lr / (1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε)

On the CPU the same arithmetic runs in NumPy on views of the buffers: a NumPy call costs about
a microsecond of overhead where a torch op costs five to ten, and a small network's step is
nothing but overhead.

Build the optimizer after the module is on its device, and do not ``.to()`` it afterwards:
a move would give the parameters new storage outside ``flat``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from deeprl.errors import CheckpointError


class FlatOptimizer:
    """Adam (``kind="adam"``) or RMSprop (``kind="rmsprop"``) over one flat parameter buffer.

    ``param_groups[0]`` holds the hyperparameters as in ``torch.optim`` (``lr`` may be changed
    between steps, e.g. for annealing).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], kind: str = "adam", lr: float = 1e-3,
                 eps: float = 1e-8, betas: tuple[float, float] = (0.9, 0.999), alpha: float = 0.99):
        if kind not in ("adam", "rmsprop"):
            raise ValueError(f"unknown optimizer {kind!r}; use 'adam' or 'rmsprop'")
        self.params = list(params)
        self.kind = kind
        hyper = {"lr": lr, "eps": eps}
        hyper.update({"betas": tuple(betas)} if kind == "adam" else {"alpha": alpha})
        self.param_groups = [hyper]
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        self._grad_views = []
        offset = 0
        for p in self.params:  # every parameter and its gradient become views into the flat buffers
            n = p.numel()
            p.data = self.flat[offset:offset + n].view_as(p)
            p.grad = self.grad[offset:offset + n].view_as(p)
            self._grad_views.append(p.grad)
            offset += n
        self.steps = 0
        self.exp_avg_sq = torch.zeros_like(self.flat)                                  # v
        self.exp_avg = torch.zeros_like(self.flat) if kind == "adam" else None        # m
        self._np = None  # NumPy views (θ, g, v, m, scratch) on the CPU
        if self.flat.device.type == "cpu" and self.flat.dtype in (torch.float32, torch.float64):
            self._np = (self.flat.numpy(), self.grad.numpy(), self.exp_avg_sq.numpy(),
                        None if self.exp_avg is None else self.exp_avg.numpy(), np.empty_like(self.flat.numpy()))

    def grad_of(self) -> dict[torch.nn.Parameter, torch.Tensor]:
        """Every parameter's gradient view into the flat ``grad`` buffer."""
        return dict(zip(self.params, self._grad_views))

    def zero_grad(self) -> None:
        self.grad.zero_()
        for p, view in zip(self.params, self._grad_views):
            if p.grad is not view:  # someone set it to None (``module.zero_grad()``): re-link it
                p.grad = view

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to L2 norm ≤ ``max_norm`` (as ``clip_grad_norm_``); returns the norm before."""
        if self._np is not None:
            g = self._np[1]
            norm = math.sqrt(float(np.dot(g, g)))
            if math.isfinite(max_norm) and max_norm < norm + 1e-6:
                g *= np.float32(max_norm / (norm + 1e-6))
            return torch.tensor(norm)
        norm = torch.linalg.vector_norm(self.grad)
        if math.isfinite(max_norm):
            self.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def step(self) -> None:
        group = self.param_groups[0]
        self.steps += 1
        if self._np is not None:
            self._step_numpy(group["lr"], group["eps"])
            return
        with torch.no_grad():
            self._step_torch(group["lr"], group["eps"])

    def _step_torch(self, lr: float, eps: float) -> None:
        group, g = self.param_groups[0], self.grad
        if self.kind == "rmsprop":
            alpha = group["alpha"]
            self.exp_avg_sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
            self.flat.addcdiv_(g, self.exp_avg_sq.sqrt().add_(eps), value=-lr)
            return
        beta1, beta2 = group["betas"]
        self.exp_avg.lerp_(g, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias1, bias2 = 1 - beta1 ** self.steps, 1 - beta2 ** self.steps
        denom = self.exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / bias1)

    def _step_numpy(self, lr: float, eps: float) -> None:
        """:meth:`step`'s arithmetic, in place on the NumPy views."""
        flat, g, v, m, tmp = self._np
        decay = self.param_groups[0]["alpha"] if self.kind == "rmsprop" else self.param_groups[0]["betas"][1]
        np.multiply(g, g, out=tmp)                      # v ← decay v + (1 - decay) g²
        tmp *= np.float32(1 - decay)
        v *= np.float32(decay)
        v += tmp
        np.sqrt(v, out=tmp)
        if self.kind == "rmsprop":                      # θ ← θ - lr g / (√v + ε)
            tmp += np.float32(eps)
            np.divide(g, tmp, out=tmp)
            tmp *= np.float32(lr)
            flat -= tmp
            return
        beta1, beta2 = self.param_groups[0]["betas"]
        bias1, bias2 = 1 - beta1 ** self.steps, 1 - beta2 ** self.steps
        tmp *= np.float32(1 / math.sqrt(bias2))          # √v / √(1-β₂ᵗ) + ε
        tmp += np.float32(eps)
        m += np.float32(1 - beta1) * (g - m)            # m ← m + (1-β₁)(g - m)
        np.divide(m, tmp, out=tmp)                      # θ ← θ - lr/(1-β₁ᵗ) · m / denom
        tmp *= np.float32(lr / bias1)
        flat -= tmp

    # ------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Tensors plus JSON-able scalars, for :func:`deeprl.checkpoint.flatten_state`."""
        state = {"kind": self.kind, "steps": self.steps, "size": self.flat.numel(),
                 "hyper": {k: list(v) if isinstance(v, tuple) else v for k, v in self.param_groups[0].items()},
                 "exp_avg_sq": self.exp_avg_sq}
        if self.exp_avg is not None:
            state["exp_avg"] = self.exp_avg
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind or state.get("size") != self.flat.numel():
            raise CheckpointError(f"the checkpoint's optimizer ({state.get('kind')}, {state.get('size')} "
                                  f"parameters) does not match this model's ({self.kind}, {self.flat.numel()}); "
                                  "load it with the config it was trained with")
        self.steps = int(state["steps"])
        self.param_groups[0].update({k: tuple(v) if isinstance(v, list) else v for k, v in state["hyper"].items()})
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        if self.exp_avg is not None:
            self.exp_avg.copy_(state["exp_avg"])
