"""Optimizers and the one gradient step every algorithm takes.

Every loss in deeprl is differentiated by autograd and stepped by a ``torch.optim`` optimizer;
this module only picks the optimizer's implementation and writes the step once::

    θ ← θ - α · optimizer(∇_θ loss), with ∇_θ loss scaled to norm ≤ max_norm

``make_optimizer`` asks torch for its multi-tensor (``foreach``) or fused kernels, which update
all parameters in a few operations instead of a loop over them: the step of a small RL network
is dominated by per-operation overhead, not arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from deeprl.errors import ConfigError

OPTIMIZERS = ("adam", "rmsprop")


def make_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict], kind: str = "adam", *, lr: float,
                   eps: float = 1e-8) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or ``torch.optim.RMSprop`` (SB3's settings: α = 0.99) over ``params``:
    parameters, or torch's parameter groups (dicts with ``"params"`` and their own ``"lr"``).

    Adam uses torch's fused kernel where the parameters' device has one (CPU and CUDA), else
    the multi-tensor one; RMSprop the multi-tensor one.
    """
    params = list(params)
    tensors = [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])]
    if kind == "adam":
        fused = bool(tensors) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in tensors)
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=fused, foreach=None if fused else True)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, eps=eps, alpha=0.99, foreach=True)
    raise ConfigError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float | list[float]) -> None:
    """Every parameter group's learning rate (annealing schedules): one rate for all, or one per group."""
    rates = lr if isinstance(lr, list) else [lr] * len(optimizer.param_groups)
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate


def grad_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float = 0.0) -> torch.Tensor:
    """One step on ``loss``: zero the gradients, backpropagate, clip their global norm to
    ``max_norm`` (0 = no clipping) and step.  Returns the norm before clipping, as a tensor (no
    device sync)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
    optimizer.step()
    return norm


def weighted_loss(losses: dict[str, torch.Tensor], scales: dict[str, float]) -> torch.Tensor:
    """Σ_k scales[k] · losses[k], the one objective a gradient step takes (danijar/dreamerv3's
    ``loss_scales``): each term has exactly one scale, so a new term cannot be left unweighted
    or a scale left without its term."""
    if losses.keys() != scales.keys():
        raise ValueError(f"loss terms {sorted(losses)} and their scales {sorted(scales)} differ")
    return sum(scales[k] * v for k, v in losses.items())
