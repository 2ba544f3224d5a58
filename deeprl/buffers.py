"""Replay buffers: uniform and prioritized experience replay with n-step returns.

Storage is ``(capacity, num_envs, ...)``: row t holds the transition every env made at vector
step t, so an env's next transition is simply the next row.  n-step returns are computed when a
batch is *sampled* (:func:`deeprl.returns.nstep_return`), which keeps each stored transition
exact, lets ``n_step`` change without refilling, and handles episode ends and the write head in
one place.  Both ``terminated`` and ``truncated`` are stored: truncation bootstraps, termination
does not.  Envs with invalid-action masks (:mod:`deeprl.envs.masks`) have each observation's mask
stored beside it, in the same one stream, and the batch carries the masks of s'.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deeprl.errors import ConfigError
from deeprl.returns import bootstrap_discount, nstep_return


def allocate_observations(shape: tuple[int, ...], dtype: np.dtype, copies: int = 1) -> np.ndarray:
    """``np.zeros(shape, dtype)`` for a replay's observations, or a ConfigError that says how
    much memory ``buffer_size`` asks for when the machine cannot give it (``copies``: how many
    such arrays the buffer keeps)."""
    need = copies * math.prod(shape) * np.dtype(dtype).itemsize
    try:
        if need > physical_memory():  # np.zeros only reserves: the run would die as the buffer fills
            raise MemoryError
        return np.zeros(shape, dtype=dtype)
    except MemoryError:
        raise ConfigError(f"a replay of {shape[0] * shape[1]:,} observations of shape {tuple(shape[2:])} needs "
                          f"{need / 2**30:.1f} GiB, more memory than this machine has "
                          f"({physical_memory() / 2**30:.1f} GiB); lower buffer_size "
                          "(e.g. --set buffer_size=100000)") from None


def physical_memory() -> int:
    """Bytes of RAM on this machine (unbounded where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**63


@dataclass
class ReplaySamples:
    """A batch for the Q-learning target  G^(k) + γ^k max_a' Q(s'_k, a')."""

    obs: torch.Tensor        # (B, *obs_shape) s
    actions: torch.Tensor    # (B,) long, a (or (B, *action_shape) floats for continuous actions)
    returns: torch.Tensor    # (B,) G^(k): discounted sum of the k rewards after (s, a)
    discounts: torch.Tensor  # (B,) γ^k, or 0 where the episode terminated within the k steps
    next_obs: torch.Tensor   # (B, *obs_shape) s'_k, the state k steps later
    weights: torch.Tensor    # (B,) importance weights (ones for uniform replay)
    indices: np.ndarray      # (B,) flat storage indices, for updating priorities
    next_action_mask: torch.Tensor | None = None  # (B, A) bool: the actions valid in s'_k (None: no masks)


class ReplayBuffer:
    """Uniform experience replay.

    One stream of observations, as SB3's ``optimize_memory_usage``: the successor of row t is
    row t+1's observation, so ``next_obs`` is not stored beside ``obs`` (half the memory, which is
    what an Atari replay is made of).  Where an episode ended the successor is the episode's final
    observation, not the next row's first one: those few are kept aside (``_finals``), and so is the
    successor of the newest row, which no row holds yet (``_head_next``).
    """

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype,
                 *, n_step: int = 1, gamma: float = 0.99, device: torch.device | str = "cpu",
                 action_shape: tuple[int, ...] = (), action_dtype: np.dtype = np.int64):
        self.rows = max(1, math.ceil(capacity / num_envs))
        self.num_envs, self.n_step, self.gamma = num_envs, n_step, gamma
        self.device = torch.device(device)
        shape = (self.rows, num_envs)
        self.obs = allocate_observations(shape + tuple(obs_shape), obs_dtype)
        self.actions = np.zeros(shape + tuple(action_shape), dtype=action_dtype)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self._head_next = np.zeros((num_envs, *obs_shape), dtype=obs_dtype)  # successors of the newest row
        self._finals: dict[int, np.ndarray] = {}  # flat index -> final observation of an episode ended there
        self.masks: np.ndarray | None = None  # (rows, num_envs, A) bool, from the first add that gives masks
        self._head_next_mask: np.ndarray | None = None
        self._final_masks: dict[int, np.ndarray] = {}  # flat index -> the mask of the final observation there
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return (self.rows if self.full else self.pos) * self.num_envs

    def add(self, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, action_mask: np.ndarray | None = None,
            next_action_mask: np.ndarray | None = None) -> None:
        """One vector step: each argument has leading dimension ``num_envs`` (the masks of obs
        and next_obs: ``VecStep``'s, where the env gives them)."""
        p, E = self.pos, self.num_envs
        if self._finals:  # the row being overwritten takes its final observations with it
            for i in range(p * E, (p + 1) * E):
                self._finals.pop(i, None)
                self._final_masks.pop(i, None)
        self.obs[p], self.actions[p] = obs, actions
        self.rewards[p], self.terminated[p], self.truncated[p] = rewards, terminated, truncated
        ended = np.flatnonzero(np.logical_or(terminated, truncated))
        for e in ended:
            self._finals[p * E + int(e)] = np.array(next_obs[e])
        self._head_next[...] = next_obs
        if action_mask is not None:
            self._add_masks(p, action_mask, next_action_mask, ended)
        self._on_add(p)
        self.pos = (p + 1) % self.rows
        self.full = self.full or self.pos == 0

    def _add_masks(self, row: int, mask: np.ndarray, next_mask: np.ndarray, ended: np.ndarray) -> None:
        if self.masks is None:
            self._allocate_masks(mask.shape[1])
        self.masks[row] = mask
        for e in ended:
            self._final_masks[row * self.num_envs + int(e)] = next_mask[e].copy()
        self._head_next_mask[...] = next_mask

    def _allocate_masks(self, n_actions: int) -> None:
        self.masks = np.ones((self.rows, self.num_envs, n_actions), dtype=bool)
        self._head_next_mask = np.ones((self.num_envs, n_actions), dtype=bool)
        self.__dict__.pop("_flat_views", None)  # the flat views now include the masks

    def _on_add(self, row: int) -> None:
        pass

    def _sample_indices(self, batch_size: int, rng: np.random.Generator,
                        beta: float) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, len(self), size=batch_size)
        return idx, np.ones(batch_size, dtype=np.float32)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 1.0) -> ReplaySamples:
        """``batch_size`` transitions; ``beta`` is the importance-weight exponent (prioritized only)."""
        return self._gather(*self._sample_indices(batch_size, rng, beta))

    def next_observations(self, idx: np.ndarray) -> np.ndarray:
        """s' of the transitions at flat indices ``idx``."""
        return self._successors(idx, "obs", self._head_next, self._finals)

    def next_masks(self, idx: np.ndarray) -> np.ndarray:
        """The action masks of s' of the transitions at flat indices ``idx`` (an env with masks)."""
        return self._successors(idx, "action_mask", self._head_next_mask, self._final_masks)

    def _successors(self, idx: np.ndarray, stream: str, head: np.ndarray, finals: dict[int, np.ndarray]) -> np.ndarray:
        """What ``stream`` holds for s': the next row's entry, the newest row's successor
        (``head``), or at an episode end what ``finals`` kept aside."""
        E, flat = self.num_envs, self._flat
        row, env = idx // E, idx % E
        out = flat[stream][((row + 1) % self.rows) * E + env]
        newest = row == (self.pos - 1) % self.rows
        if newest.any():
            out[newest] = head[env[newest]]
        if finals:
            for j in np.flatnonzero(flat["terminated"][idx] | flat["truncated"][idx]):
                out[j] = finals[int(idx[j])]
        return out

    def _gather(self, idx: np.ndarray, weights: np.ndarray) -> ReplaySamples:
        E, n = self.num_envs, self.n_step
        flat = self._flat
        if n == 1:
            G, terminal, last = flat["rewards"][idx], flat["terminated"][idx], idx
            k = np.ones_like(idx)
        else:
            row, env = idx // E, idx % E
            # rows available after `row` before reaching the write head (newest data)
            ahead = (self.pos - row) % self.rows
            ahead = np.where(ahead == 0, self.rows, ahead)
            steps = np.arange(n)
            future = ((row[:, None] + steps) % self.rows) * E + env[:, None]   # flat indices, (B, n)
            G, k, terminal = nstep_return(flat["rewards"][future], flat["terminated"][future],
                                          flat["truncated"][future], steps[None, :] < ahead[:, None], self.gamma)
            last = future[np.arange(len(idx)), k - 1]
        discount = bootstrap_discount(k, terminal, self.gamma)
        to = self._to_tensor
        return ReplaySamples(obs=to(flat["obs"][idx]), actions=to(flat["actions"][idx]),
                             returns=to(np.asarray(G, dtype=np.float32)), discounts=to(discount),
                             next_obs=to(self.next_observations(last)), weights=to(weights), indices=idx,
                             next_action_mask=None if self.masks is None else to(self.next_masks(last)))

    @property
    def _flat(self) -> dict[str, np.ndarray]:
        """Views with (row, env) merged into one flat index ``row * num_envs + env``."""
        if not hasattr(self, "_flat_views"):
            self._flat_views = {name: a.reshape(self.rows * self.num_envs, *a.shape[2:])
                                for name, a in self._storage().items()}
        return self._flat_views

    def _storage(self) -> dict[str, np.ndarray]:
        masks = {} if self.masks is None else {"action_mask": self.masks}
        return {"obs": self.obs, "actions": self.actions, "rewards": self.rewards, "terminated": self.terminated,
                "truncated": self.truncated, **masks}

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)

    # -- checkpointing: arrays for safetensors, scalars for JSON; only the rows written so far
    def _filled_rows(self) -> int:
        return self.rows if self.full else self.pos

    def state_arrays(self) -> dict[str, np.ndarray]:
        n = self._filled_rows()
        finals = sorted(self._finals)
        shape = self.obs.shape[2:]
        return {**{name: a[:n] for name, a in self._storage().items()}, "head_next": self._head_next,
                "final_index": np.array(finals, dtype=np.int64),
                "final_obs": (np.stack([self._finals[i] for i in finals]) if finals
                              else np.zeros((0, *shape), self.obs.dtype)), **self._mask_arrays(finals)}

    def _mask_arrays(self, finals: list[int]) -> dict[str, np.ndarray]:
        if self.masks is None:
            return {}
        return {"head_next_mask": self._head_next_mask,
                "final_mask": np.stack([self._final_masks[i] for i in finals]) if finals
                else np.zeros((0, self.masks.shape[2]), bool)}

    def state_meta(self) -> dict[str, Any]:
        return {"pos": self.pos, "full": self.full, "rows": self.rows, "num_envs": self.num_envs}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if "action_mask" in arrays and self.masks is None and arrays["action_mask"].ndim == 3:
            self._allocate_masks(arrays["action_mask"].shape[2])  # a replay of an env with masks
        masks = {"head_next_mask", "final_mask"} if self.masks is not None else set()
        check_saved_arrays(arrays, {*self._storage(), "head_next", "final_index", "final_obs", *masks}, "replay")
        if meta["rows"] != self.rows or meta["num_envs"] != self.num_envs:
            raise ValueError("replay buffer shape differs from the configured one")
        self.pos, self.full = int(meta["pos"]), bool(meta["full"])
        if not 0 <= self.pos < self.rows:
            raise ValueError(f"replay position {self.pos} is outside the buffer")
        n = self._filled_rows()
        for name, current in self._storage().items():
            saved = arrays[name]
            if saved.shape != (n, *current.shape[1:]) or saved.dtype != current.dtype:
                raise ValueError(f"replay array {name!r} has shape {saved.shape}, expected {(n, *current.shape[1:])}")
            current[:n] = saved
        if arrays["head_next"].shape != self._head_next.shape or arrays["head_next"].dtype != self._head_next.dtype:
            raise ValueError("replay array 'head_next' does not fit this buffer")
        self._head_next[...] = arrays["head_next"]
        index, obs = arrays["final_index"], arrays["final_obs"]
        if index.ndim != 1 or index.dtype.kind not in "iu" or obs.dtype != self.obs.dtype or len(index) != len(obs) \
                or obs.shape[1:] != self.obs.shape[2:] or (len(index) and (
                index.min() < 0 or index.max() >= n * self.num_envs)):
            raise ValueError("replay final observations do not fit this buffer")
        self._finals = {int(i): o.copy() for i, o in zip(index, obs)}
        if self.masks is not None:
            head, final = arrays["head_next_mask"], arrays["final_mask"]
            if head.shape != self._head_next_mask.shape or head.dtype != bool or final.dtype != bool \
                    or final.shape != (len(index), self.masks.shape[2]):
                raise ValueError("replay action masks do not fit this buffer")
            self._head_next_mask[...] = head
            self._final_masks = {int(i): m.copy() for i, m in zip(index, final)}


def check_saved_arrays(arrays: dict[str, np.ndarray], names: set[str], what: str) -> None:
    """Raise ValueError unless a checkpoint's arrays are exactly ``names`` and hold no NaN or
    infinity (shapes and dtypes are checked by the buffer that knows them)."""
    if set(arrays) != names:
        raise ValueError(f"{what} arrays are {sorted(arrays)}, expected {sorted(names)}")
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{what} array {name!r} holds NaN or infinite values")


class SumTree:
    """Binary tree whose internal nodes hold the sum of their leaves: O(log N) proportional sampling."""

    def __init__(self, size: int):
        self.size = size
        self.leaf0 = 1 << max(0, (size - 1).bit_length())
        self.tree = np.zeros(2 * self.leaf0, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    @property
    def leaves(self) -> np.ndarray:
        return self.tree[self.leaf0:self.leaf0 + self.size]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(idx) + self.leaf0
        self.tree[nodes] = values
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index i for each value in ``mass`` such that cumsum[i-1] <= mass < cumsum[i]."""
        nodes = np.ones(len(mass), dtype=np.int64)
        mass = np.asarray(mass, dtype=np.float64).copy()
        while nodes[0] < self.leaf0:
            left = self.tree[2 * nodes]
            go_right = mass >= left
            mass -= np.where(go_right, left, 0.0)
            nodes = 2 * nodes + go_right
        return np.minimum(nodes - self.leaf0, self.size - 1)


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016).

    P(i) = p_i^α / Σ_j p_j^α with p_i = |δ_i| + ε; new transitions get the largest priority seen
    so they are replayed at least once.  The sampling bias is corrected by importance weights
    w_i = (N P(i))^-β / max_j w_j, with β annealed towards 1.
    """

    def __init__(self, *args: Any, alpha: float = 0.6, eps: float = 1e-6, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(self.rows * self.num_envs)
        self.max_priority = 1.0

    def _on_add(self, row: int) -> None:
        idx = row * self.num_envs + np.arange(self.num_envs)
        self.tree.set(idx, np.full(self.num_envs, self.max_priority ** self.alpha))

    def _sample_indices(self, batch_size: int, rng: np.random.Generator,
                        beta: float) -> tuple[np.ndarray, np.ndarray]:
        total = self.tree.total
        # stratified: one draw from each of batch_size equal slices of the total mass
        bounds = np.arange(batch_size) * (total / batch_size)
        idx = self.tree.find(bounds + rng.random(batch_size) * (total / batch_size))
        # rounding can walk past the last written leaf (priority 0) while the buffer fills
        idx = np.minimum(idx, len(self) - 1)
        probs = self.tree.leaves[idx] / total
        weights = (len(self) * probs) ** (-beta)
        return idx, (weights / weights.max()).astype(np.float32)

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(td_errors) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.set(idx, priorities ** self.alpha)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), "priorities": self.tree.leaves.copy()}

    def state_meta(self) -> dict[str, Any]:
        return {**super().state_meta(), "max_priority": self.max_priority}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        priorities = arrays.pop("priorities", None)
        super().load_state(arrays, meta)
        if priorities is None or priorities.shape != (self.tree.size,) or priorities.dtype != np.float64 \
                or not np.isfinite(priorities).all() or (priorities < 0).any():
            raise ValueError("prioritized replay checkpoint lacks its priorities, or they are damaged")
        self.tree.set(np.arange(self.tree.size), priorities)
        self.max_priority = float(meta["max_priority"])
