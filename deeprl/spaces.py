"""Gymnasium spaces as JSON and back, exactly: a saved model names the spaces it was trained on.

A Box keeps its bounds (a policy clips to them, a network scales its input by them), not just
its shape; anything malformed read back is a :class:`~deeprl.errors.CheckpointError`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    its input by them), not just its shape; composite spaces keep their entries in order."""
    if isinstance(space, Packed):
        return {"type": "packed", "source": space_to_json(space.source)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound_to_json(space.low), "high": _bound_to_json(space.high)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "multidiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "multibinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "tuple", "spaces": [space_to_json(v) for v in space.spaces]}
    raise DeepRLError(f"cannot describe space {space}")


def _small_ints(value: Any, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.ndim > 2 or arr.size > 1 << 16:
        raise ValueError(f"{what}={value!r:.80}")
    return arr.astype(np.int64)


def _composite_from_json(d: dict[str, Any], depth: int) -> gym.Space:
    kind = d["type"]
    if kind == "packed":
        return Packed(space_from_json(d["source"], depth + 1))
    if kind == "multidiscrete":
        nvec, start = _small_ints(d["nvec"], "nvec"), _small_ints(d.get("start", 0), "start")
        if (nvec < 1).any():
            raise ValueError(f"nvec={nvec.tolist()}")
        return gym.spaces.MultiDiscrete(nvec, start=np.broadcast_to(start, nvec.shape).copy())
    if kind == "multibinary":
        n = _small_ints(d["n"], "n")
        if (n < 1).any() or n.ndim > 1:
            raise ValueError(f"n={n.tolist()}")
        return gym.spaces.MultiBinary(n.tolist() if n.ndim else int(n))
    if kind == "dict":
        if not isinstance(d["spaces"], dict) or not all(isinstance(k, str) for k in d["spaces"]):
            raise ValueError("the entries of a dict space")
        return gym.spaces.Dict({k: space_from_json(v, depth + 1) for k, v in d["spaces"].items()})
    if kind == "tuple":
        if not isinstance(d["spaces"], list):
            raise ValueError("the entries of a tuple space")
        return gym.spaces.Tuple([space_from_json(v, depth + 1) for v in d["spaces"]])
    raise ValueError(f"unknown space type {kind!r}")


def space_from_json(d: Any, depth: int = 0) -> gym.Space:
    """Inverse of :func:`space_to_json`; anything malformed is a :class:`CheckpointError`."""
    try:
        kind = d["type"]
        if depth > 8:
            raise ValueError("spaces nested more than 8 deep")
        if kind in ("packed", "multidiscrete", "multibinary", "dict", "tuple"):
            return _composite_from_json(d, depth)
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
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, DeepRLError) as e:
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
    leading axis), or a ConfigError naming ``who``, the space and what was given.  Observations of
    a :class:`Packed` space are taken as the env gives them (a dict, a tuple) and packed."""
    if isinstance(space, Packed) and (isinstance(obs, (dict, tuple, list)) or not isinstance(
            space.source, (gym.spaces.Dict, gym.spaces.Tuple))):
        try:
            obs = space.pack(obs)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ConfigError(f"{who} takes observations of {space.source}; this one does not fit it "
                              f"({type(e).__name__}: {e})") from None
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


# ---------------------------------------------------------------------------------------------
# composite observations: Dict, Tuple, MultiDiscrete and MultiBinary seen as one flat vector

NO_NETWORK = (gym.spaces.Text, gym.spaces.Sequence, gym.spaces.Graph)


@dataclass(frozen=True)
class Entry:
    """One leaf of a composite observation and where it lies in the packed vector.

    ``kind`` says how a network reads it: ``image`` (a uint8 3-D Box, channels first here; the
    CNN torso), ``vector`` (any other Box, flattened; an MLP), ``discrete`` (codes counted from 0,
    one per slot; one-hot over ``nvec``), ``binary`` (MultiBinary 0/1 entries, read as a vector).
    """

    key: str
    kind: str
    space: gym.Space
    offset: int
    size: int
    nvec: tuple[int, ...] = ()
    channels_last: bool = False

    def value(self, obs: Any) -> Any:
        for part in self.key.split("/") if self.key else ():
            obs = obs[int(part)] if isinstance(obs, (tuple, list)) else obs[part]
        return obs


def _leaves(space: gym.Space, key: str) -> Any:
    """``(key, space)`` for each leaf of a composite space, in its order (Dict keys as given)."""
    if isinstance(space, gym.spaces.Dict):
        for k, sub in space.spaces.items():
            yield from _leaves(sub, f"{key}/{k}" if key else str(k))
    elif isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _leaves(sub, f"{key}/{i}" if key else str(i))
    else:
        yield key, space


def _refuse(key: str, space: gym.Space) -> DeepRLError:
    where = f"observation entry {key!r}" if key else "the observation"
    if isinstance(space, NO_NETWORK):
        fix = ("drop it with gymnasium.wrappers.FilterObservation (--wrappers) or turn it into numbers in a "
               "wrapper of your own")
    else:
        fix = "turn it into a Box, Discrete, MultiDiscrete or MultiBinary space in a wrapper of your own"
    return ConfigError(f"{where} is a {type(space).__name__} space, which no network takes; {fix}")


def _entry(key: str, space: gym.Space, offset: int) -> Entry:
    if isinstance(space, gym.spaces.Discrete):
        return Entry(key, "discrete", space, offset, 1, (int(space.n),))
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in space.nvec.reshape(-1))
        return Entry(key, "discrete", space, offset, len(nvec), nvec)
    if isinstance(space, gym.spaces.MultiBinary):
        return Entry(key, "binary", space, offset, int(np.prod(space.shape)))
    if isinstance(space, gym.spaces.Box):
        shape = tuple(space.shape)
        if space.dtype == np.uint8 and len(shape) == 3:
            last = shape[2] <= 4 and shape[2] < shape[0]  # HWC as most image envs give them
            chw = (shape[2], shape[0], shape[1]) if last else shape
            image = gym.spaces.Box(0, int(space.high.max()), chw, np.uint8)
            return Entry(key, "image", image, offset, int(np.prod(shape)), channels_last=last)
        return Entry(key, "vector", space, offset, int(np.prod(shape)) if shape else 1)
    raise _refuse(key, space)


def is_composite(space: gym.Space) -> bool:
    """Whether observations of ``space`` are packed (:class:`Packed`) before a network sees them."""
    return isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary,
                              *NO_NETWORK))


class Packed(gym.spaces.Box):
    """A composite observation space as one flat float32 vector, entry after entry.

    Everything that stores or steps observations (vector envs, replay, rollouts, checkpoints)
    sees a plain 1-D Box; the networks read :attr:`entries` to take it apart again
    (:class:`deeprl.nets.MultiInputTorso`: images through the CNN torso, Discrete entries one-hot,
    vectors as they are).  :attr:`source` is the env's own space; :meth:`pack` turns its
    observations (one, or a batch) into rows of this one.
    """

    def __init__(self, source: gym.Space):
        if not is_composite(source) or isinstance(source, NO_NETWORK):
            raise _refuse("", source) if isinstance(source, NO_NETWORK) else DeepRLError(
                f"Packed takes a Dict, Tuple, MultiDiscrete or MultiBinary space, not {source}")
        entries, offset = [], 0
        for key, space in _leaves(source, ""):
            entries.append(_entry(key, space, offset))
            offset += entries[-1].size
        if not entries:
            raise ConfigError(f"the observation space {source} has no entries; a network needs at least one")
        self.source, self.entries = source, tuple(entries)
        low = np.concatenate([self._bound(e, "low") for e in entries])
        high = np.concatenate([self._bound(e, "high") for e in entries])
        super().__init__(low.astype(np.float32), high.astype(np.float32), (offset,), np.float32)

    @staticmethod
    def _bound(entry: Entry, which: str) -> np.ndarray:
        if entry.kind == "discrete":
            return np.zeros(entry.size) if which == "low" else np.array(entry.nvec, np.float64) - 1
        if entry.kind == "binary":
            return np.full(entry.size, 0.0 if which == "low" else 1.0)
        bound = getattr(entry.space, which).reshape(-1).astype(np.float64)
        return np.broadcast_to(bound, (entry.size,)) if bound.size == 1 else bound

    def pack(self, obs: Any) -> np.ndarray:
        """One observation of :attr:`source` -> ``(size,)``; a batch (each leaf with a leading
        axis) -> ``(B, size)``."""
        parts, batch = [], None
        for e in self.entries:
            x = np.asarray(e.value(obs))
            shape = tuple(e.space.shape or ()) if e.kind != "image" or not e.channels_last else \
                (e.space.shape[1], e.space.shape[2], e.space.shape[0])
            if batch is None:
                batch = x.ndim == len(shape) + 1
            if tuple(x.shape[int(batch):]) != shape:
                raise ConfigError(f"observation entry {e.key!r} should have shape {shape}; got {x.shape}")
            if e.kind == "image" and e.channels_last:
                x = np.moveaxis(x, -1, -3)
            elif e.kind == "discrete":
                x = x - np.asarray(e.space.start)
            parts.append(x.reshape((len(x), -1) if batch else (-1,)).astype(np.float32))
        return np.concatenate(parts, axis=-1)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Packed) and self.source == other.source

    def __hash__(self) -> int:
        return hash(("packed", repr(self.source)))

    def __repr__(self) -> str:
        return f"Packed({self.source})"
