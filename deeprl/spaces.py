"""Gymnasium spaces as JSON and back, exactly: a saved model names the spaces it was trained on.

A Box keeps its bounds (a policy clips to them, a network scales its input by them), not just
its shape; anything malformed read back is a :class:`~deeprl.errors.CheckpointError`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import CheckpointError, ConfigError, DeepRLError


def _bound_to_json(bound: np.ndarray) -> Any:
    """A Box bound as JSON: one number when every entry is the same, else a nested list; ±inf as
    the strings ``"inf"`` / ``"-inf"`` (JSON has no infinity)."""
    def number(x: Any) -> Any:
        x = x.item() if isinstance(x, np.generic) else x
        if isinstance(x, float) and not np.isfinite(x):
            if np.isnan(x):
                raise DeepRLError("cannot save a space with a NaN bound")
            return "inf" if x > 0 else "-inf"
        return x

    flat = np.asarray(bound).reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return number(flat[0])
    return np.vectorize(number, otypes=[object])(bound).tolist() if flat.size else []


def _bound_from_json(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def number(x: Any) -> float:
        if x in ("inf", "-inf"):
            return float(x)
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise CheckpointError(f"space bound {x!r} is not a number; the file is corrupt or not from deeprl")
        return x

    if isinstance(value, list):
        arr = np.array(np.vectorize(number, otypes=[np.float64])(np.array(value, dtype=object)))
        if arr.shape != shape:
            raise CheckpointError(f"space bound of shape {arr.shape} does not match the space's shape {shape}")
    else:
        arr = np.full(shape, number(value), dtype=np.float64)
    return arr.astype(dtype)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A space as JSON, exactly: a Box keeps its bounds (a policy clips to them, a network scales
    its input by them), not just its shape."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound_to_json(space.low), "high": _bound_to_json(space.high)}
    raise DeepRLError(f"cannot describe space {space}")


def space_from_json(d: Any) -> gym.Space:
    """Inverse of :func:`space_to_json`; anything malformed is a :class:`CheckpointError`."""
    try:
        kind = d["type"]
        if kind == "discrete":
            n, start = d["n"], d.get("start", 0)
            if not (isinstance(n, int) and isinstance(start, int)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"n={n!r}, start={start!r}")
            return gym.spaces.Discrete(n, start=start)
        if kind != "box":
            raise ValueError(f"unknown space type {kind!r}")
        shape = tuple(d["shape"])
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 < x <= 1 << 16 for x in shape) \
                or len(shape) > 4 or int(np.prod(shape)) > 1 << 24:
            raise ValueError(f"implausible shape {list(shape)}")
        dtype = np.dtype(d["dtype"])
        if dtype.kind not in "biuf":
            raise ValueError(f"dtype {dtype}")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"the saved space {d!r:.200} is malformed ({e}); the file is corrupt or not from "
                              "deeprl") from None
    if "low" not in d:  # written before bounds were saved: the old, lossy reading
        if dtype == np.uint8:
            return gym.spaces.Box(0, 255, shape, dtype)
        return gym.spaces.Box(-np.inf, np.inf, shape, dtype)
    return gym.spaces.Box(_bound_from_json(d["low"], shape, dtype), _bound_from_json(d["high"], shape, dtype),
                          shape, dtype)


def observation_batch(space: gym.Space, obs: Any, who: str) -> tuple[np.ndarray, bool]:
    """``(batch, single)``: ``obs`` as a batch of observations of ``space`` (one observation gets a
    leading axis), or a ConfigError naming ``who``, the space and what was given."""
    shape = tuple(space.shape or ())
    try:
        obs = np.asarray(obs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{who} takes observations of {space}; this one is not an array ({e})") from None
    if obs.dtype.kind not in "biuf" or obs.shape[obs.ndim - len(shape):] != shape or obs.ndim not in (
            len(shape), len(shape) + 1):
        raise ConfigError(f"{who} takes an observation of {space} or a batch of them; got a {obs.dtype} array of "
                          f"shape {obs.shape}")
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start) + int(space.n)
        if (obs != np.round(obs)).any() or (obs < low).any() or (obs >= high).any():
            raise ConfigError(f"{who} takes observations of {space}: integers in [{low}, {high}); got {obs!r:.80}")
    single = obs.ndim == len(shape)
    return (obs[None] if single else obs), single
