"""Sequence replay for a recurrent world model: contiguous windows of one env's step stream.

Storage is ``(rows, num_envs, ...)`` like :class:`deeprl.buffers.ReplayBuffer`, but every env
column is its own ring with its own write position: an env whose episode ended stores one extra
step (its final observation, then its reset observation), so the envs drift apart by a step now
and then.

Each stored step t follows DreamerV3's convention:

- ``obs``          o_t, the observation arrived at,
- ``action``       a_{t-1}, the action that led to o_t (zeros where ``is_first``),
- ``reward``       r_t, received on arriving at o_t (0 where ``is_first``),
- ``is_first``     o_t starts an episode (the model resets its recurrent state there),
- ``is_terminal``  o_t ends the episode for good (the continue target is 0); a truncated
                   episode's final step is stored with ``is_terminal=False``, and the next
                   step's ``is_first`` ends it.

Store discrete actions one-hot, so that the zeros at ``is_first`` mean "no action".  A sampled
window may span episode boundaries (``is_first`` marks where), but it never crosses an env's
write head, where time jumps from the newest step back to the oldest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from deeprl.buffers import allocate_observations, check_saved_arrays


class SequenceReplay:
    """Uniform replay of ``(B, L)`` windows of consecutive steps of one env."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype,
                 action_shape: tuple[int, ...], action_dtype: np.dtype = np.float32):
        self.rows = max(1, math.ceil(capacity / num_envs))
        self.num_envs = num_envs
        shape = (self.rows, num_envs)
        self.obs = allocate_observations(shape + tuple(obs_shape), obs_dtype)
        self.action = np.zeros(shape + tuple(action_shape), dtype=action_dtype)
        self.reward = np.zeros(shape, dtype=np.float32)
        self.is_first = np.zeros(shape, dtype=bool)
        self.is_terminal = np.zeros(shape, dtype=bool)
        self.pos = np.zeros(num_envs, dtype=np.int64)     # next row each env writes
        self.filled = np.zeros(num_envs, dtype=np.int64)  # rows each env holds, <= rows

    def __len__(self) -> int:
        return int(self.filled.sum())

    def add(self, obs: np.ndarray, prev_action: np.ndarray, reward: np.ndarray, is_first: np.ndarray,
            is_terminal: np.ndarray, env_ids: np.ndarray | None = None) -> None:
        """One step for each env in ``env_ids`` (default: all, in order); leading dimension ``len(env_ids)``.

        After an episode ends: add the final observation for every env (others add their next
        step), then add the reset observations with ``is_first`` for just the envs that ended; or,
        as Dreamer's loop does, :meth:`add_one` each final observation right after the vector step.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"env_ids must not repeat, got {ids.tolist()}")
        rows = self.pos[ids]
        first = np.asarray(is_first, dtype=bool)
        self.obs[rows, ids] = obs
        self.action[rows, ids] = prev_action
        self.reward[rows, ids] = reward
        self.is_first[rows, ids] = first
        self.is_terminal[rows, ids] = is_terminal
        self.action[rows[first], ids[first]] = 0
        self.reward[rows[first], ids[first]] = 0.0
        self.pos[ids] = (rows + 1) % self.rows
        self.filled[ids] = np.minimum(self.filled[ids] + 1, self.rows)

    def add_one(self, env: int, obs: np.ndarray, prev_action: np.ndarray, reward: float, is_first: bool,
                is_terminal: bool) -> None:
        """One step of env ``env`` alone (unbatched arguments), e.g. the final observation of its episode."""
        self.add(np.asarray(obs)[None], np.asarray(prev_action)[None], np.array([reward], np.float32),
                 np.array([is_first]), np.array([is_terminal]), env_ids=np.array([env]))

    def can_sample(self, length: int) -> bool:
        """Whether some env holds ``length`` consecutive steps."""
        return bool((self.filled >= length).any())

    def sample(self, batch_size: int, length: int, rng: np.random.Generator,
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``length`` consecutive steps, uniform over all valid windows.

        Returns tensors ``(B, L, ...)`` on ``device`` keyed ``obs, action, reward, is_first,
        is_terminal`` in the stored dtypes.  Raises ValueError while no env holds ``length`` steps.
        """
        windows = np.maximum(self.filled - length + 1, 0)   # valid start positions per env
        total = int(windows.sum())
        if total == 0:
            raise ValueError(f"no env holds {length} steps yet (most: {int(self.filled.max())})")
        u = rng.integers(0, total, size=batch_size)
        ends = np.cumsum(windows)
        env = np.searchsorted(ends, u, side="right")
        offset = u - (ends[env] - windows[env])              # steps after the env's oldest stored step
        oldest = (self.pos[env] - self.filled[env]) % self.rows
        rows = (oldest + offset)[:, None] + np.arange(length)
        rows %= self.rows
        cols = env[:, None]
        return {name: torch.from_numpy(array[rows, cols]).to(device, non_blocking=True)
                for name, array in self._storage().items()}

    def _storage(self) -> dict[str, np.ndarray]:
        return {"obs": self.obs, "action": self.action, "reward": self.reward, "is_first": self.is_first,
                "is_terminal": self.is_terminal}

    # -- checkpointing: arrays for safetensors, scalars for JSON; only the rows written so far
    # (every env fills its column from row 0, so rows at or past the fullest column are empty)
    def state_arrays(self) -> dict[str, np.ndarray]:
        n = int(self.filled.max(initial=0))
        return {name: array[:n] for name, array in self._storage().items()}

    def state_meta(self) -> dict[str, Any]:
        return {"rows": self.rows, "num_envs": self.num_envs, "pos": self.pos.tolist(),
                "filled": self.filled.tolist()}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        check_saved_arrays(arrays, set(self._storage()), "sequence replay")
        if meta["rows"] != self.rows or meta["num_envs"] != self.num_envs:
            raise ValueError("sequence replay shape differs from the configured one")
        filled = np.asarray(meta["filled"], dtype=np.int64)
        if filled.shape != self.filled.shape or filled.min(initial=0) < 0 or filled.max(initial=0) > self.rows:
            raise ValueError("sequence replay fill levels do not fit this buffer")
        n = int(filled.max(initial=0))
        for name, current in self._storage().items():
            expected = (n, *current.shape[1:])
            if arrays[name].shape != expected or arrays[name].dtype != current.dtype:
                raise ValueError(f"sequence replay array {name!r} has shape {arrays[name].shape} "
                                 f"{arrays[name].dtype}, expected {expected} {current.dtype}")
            current[:n] = arrays[name]
        self.pos[:] = meta["pos"]
        self.filled[:] = filled
