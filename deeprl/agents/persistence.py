"""What an agent keeps, declared once, and the checks that a saved copy fits it.

Each agent names what it holds in a :class:`Persistent`; :func:`snapshot` turns that into the
files of a checkpoint and :func:`restore` puts a checkpoint back, refusing (ValueError, which the
caller reports as a one-line CheckpointError) anything that does not fit: a tensor of another
shape or dtype, a NaN, an optimizer state of another kind or size, a counter of another type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deeprl.checkpoint import check_tensor, flatten_state, load_module_tensors, module_tensors, unflatten_state


@dataclass
class Persistent:
    """What an agent holds, by name, for :meth:`Algorithm.save` and checkpoints.

    * ``model``: what a saved model needs to act: ``nn.Module`` s, or any object with a
      ``state_dict()`` of tensors and ``load_state_dict()`` (running observation statistics);
    * ``training``: more of those that only a resumed run needs (target networks);
    * ``optimizers``: ``torch.optim`` optimizers;
    * ``buffers``: replay buffers (``state_arrays() / state_meta() / load_state()``);
    * ``counters``: attributes to restore as they were (numbers, JSON values, NumPy arrays,
      tensors, or dicts and lists of them), as ``{name on disk: attribute}``: the names a
      checkpoint holds are declared, so renaming an attribute keeps old checkpoints readable.
    """

    model: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    buffers: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group in (self.model, self.training, self.optimizers, self.buffers):
            for name in [k for k, v in group.items() if v is None]:  # optional parts that this config lacks
                del group[name]


def as_stored(value: Any) -> Any:
    """A counter as :func:`~deeprl.checkpoint.flatten_state` stores it: arrays become tensors."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    return value


def like_current(current: Any, saved: Any, name: str) -> Any:
    """``saved`` in the type and shape of ``current``; raises ValueError where they do not fit."""
    if isinstance(current, np.ndarray):
        check_tensor(name, saved, torch.from_numpy(np.ascontiguousarray(current)))
        return saved.numpy()
    if isinstance(current, torch.Tensor):
        check_tensor(name, saved, current.detach().cpu())
        return saved.to(current.device)
    if isinstance(current, bool) or current is None:
        return saved
    if isinstance(current, (int, float)):
        if isinstance(saved, bool) or not isinstance(saved, (int, float)) or not math.isfinite(saved):
            raise ValueError(f"{name} is {saved!r}, not a finite number")
        return type(current)(saved)
    if isinstance(current, dict):
        if not isinstance(saved, dict) or set(saved) != set(current):
            raise ValueError(f"{name} holds {sorted(saved) if isinstance(saved, dict) else saved!r}, expected keys "
                             f"{sorted(current)}")
        return {k: like_current(current[k], saved[k], f"{name}.{k}") for k in current}
    if isinstance(current, list):
        if not isinstance(saved, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  and math.isfinite(v) for v in saved):
            raise ValueError(f"{name} is {saved!r:.100}, not a list of finite numbers")
        return saved
    return saved


def load_optimizer(optimizer: torch.optim.Optimizer, state: Any, name: str = "optimizer") -> None:
    """``optimizer.load_state_dict`` with the checks torch leaves out, so a damaged file is refused
    before it is used: the saved state is of the same kind of optimizer (the same hyperparameter
    names, so Adam's moments never land in RMSprop), every hyperparameter number is finite, and
    each parameter's state holds exactly the entries this optimizer keeps, each of its parameter's
    shape and dtype (a step count: a finite number), finite.  torch checks none of the last: a
    moment with too few rows made the fused Adam kernel read past its end and crash the process."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    per_param = state.get("state") if isinstance(state, dict) else None
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups) or not isinstance(per_param, dict):
        raise ValueError(f"the {name} state has another number of parameter groups")
    params: dict[Any, torch.Tensor] = {}
    for saved, group in zip(groups, optimizer.param_groups):
        if not isinstance(saved, dict) or set(saved) != set(group):
            raise ValueError(f"the saved {name} is not a {type(optimizer).__name__}")
        if not isinstance(saved["params"], list) or len(saved["params"]) != len(group["params"]):
            raise ValueError(f"the saved {name} has another number of parameters")
        for key, value in saved.items():
            bad = isinstance(value, float) and not math.isfinite(value)
            if bad or (isinstance(value, list) and key != "params"
                       and any(isinstance(v, float) and not math.isfinite(v) for v in value)):
                raise ValueError(f"the saved {name}'s {key} is {value!r}")
        if isinstance(saved.get("betas"), list):
            saved["betas"] = tuple(saved["betas"])
        params.update(zip(saved["params"], group["params"]))
    expected = optimizer_state_entries(optimizer)
    for index, entry in per_param.items():
        if index not in params or not isinstance(entry, dict):
            raise ValueError(f"the saved {name} holds state for a parameter it does not have ({index!r})")
        if expected is not None and set(entry) != set(expected):
            raise ValueError(f"the saved {name}'s state for parameter {index} holds {sorted(entry)}, expected "
                             f"{sorted(expected)}")
        for key, value in entry.items():
            what = f"{name} state {index}.{key}"
            if key == "step":  # a count: as the optimizer keeps it (Adam: a 0-d float tensor), finite, >= 0
                if expected is not None and isinstance(expected["step"], torch.Tensor):
                    check_tensor(what, value, expected["step"])
                number = value.item() if isinstance(value, torch.Tensor) and value.ndim == 0 else value
                if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < 2 ** 53:
                    raise ValueError(f"{what} is not a step count")
            else:
                check_tensor(what, value, params[index])
    optimizer.load_state_dict(state)


def optimizer_state_entries(optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """What ``optimizer`` keeps per parameter once it has stepped (Adam: step, exp_avg, exp_avg_sq),
    as one parameter's entries, found by stepping a copy over zero-valued stand-ins; None if that
    cannot be done."""
    stand_ins = [[torch.zeros_like(p, requires_grad=True) for p in g["params"]] for g in optimizer.param_groups]
    if not any(stand_ins):
        return None
    try:
        probe = type(optimizer)([{**{k: v for k, v in g.items() if k != "params"}, "params": s}
                                 for g, s in zip(optimizer.param_groups, stand_ins)])
        for p in (p for s in stand_ins for p in s):
            p.grad = torch.zeros_like(p)
        probe.step()
    except (TypeError, ValueError, RuntimeError):
        return None
    entries = [probe.state[p] for s in stand_ins for p in s if probe.state.get(p)]
    return dict(entries[0]) if entries else None


def step_count(value: Any, name: str) -> int:
    """A step count read from a checkpoint: a non-negative integer, whole floats accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not 0 <= value < 2 ** 62:
        raise ValueError(f"{name} is {value!r}, not a step count")
    return int(value)


def snapshot(p: Persistent, owner: Any) -> tuple[dict, dict, dict]:
    """``(tensor files, array files, JSON state)`` of what ``p`` names; counters are read from ``owner``."""
    opt_tensors, opt_skeleton = flatten_state({k: o.state_dict() for k, o in p.optimizers.items()}, "opt")
    counters = {disk: as_stored(getattr(owner, attr)) for disk, attr in p.counters.items()}
    counter_tensors, counter_skeleton = flatten_state(counters, "c")
    tensors = {"model": module_tensors({**p.model, **p.training}), "optimizer": opt_tensors,
               "counters": counter_tensors}
    arrays = {name: b.state_arrays() for name, b in p.buffers.items()}  # one file each, named after it
    state = {"optimizer": opt_skeleton, "counters": counter_skeleton,
             "buffers": {name: b.state_meta() for name, b in p.buffers.items()}}
    return tensors, arrays, state


def restore(p: Persistent, owner: Any, state: dict[str, Any], loader: Any) -> None:
    """Inverse of :func:`snapshot`; anything that does not fit raises."""
    load_module_tensors({**p.model, **p.training}, loader("model"))
    opt_states = unflatten_state(state["optimizer"], loader("optimizer"))
    if set(opt_states) != set(p.optimizers):
        raise ValueError(f"optimizers {sorted(opt_states)} where {sorted(p.optimizers)} were expected")
    for name, opt in p.optimizers.items():
        load_optimizer(opt, opt_states[name], name)
    for name, buffer in p.buffers.items():
        buffer.load_state(loader(name, numpy=True), state["buffers"][name])
    counters = unflatten_state(state["counters"], loader("counters"))
    for disk, attr in p.counters.items():
        saved = counters[disk] if disk in counters else counters[attr]  # (checkpoints named them by attribute)
        setattr(owner, attr, like_current(getattr(owner, attr), saved, disk))
