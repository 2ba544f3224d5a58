"""Vector environments whose state can be checkpointed.

Each sub-environment is an :class:`~deeprl.envs.episode_log.EpisodeLog`: it resets with a seed
derived from ``(seed, env index, episode index)`` and remembers the actions taken since that
reset; restoring resets with the same seed and replays the actions, which rebuilds exactly the
state the killed run had (see that module).  The vector env's state is the list of its
sub-envs' ``state()``.

``step`` returns both ``obs`` (after automatic reset, for acting) and ``next_obs`` (the true
successor, the final observation where an episode ended), with ``terminated`` and ``truncated``
kept apart: learners bootstrap from ``next_obs`` on truncation and not on termination.
Where no episode ended the two are one array: treat both as read-only.  Envs that give action
masks (:mod:`deeprl.envs.masks`) have theirs carried the same way: ``action_mask`` for ``obs``
(after an automatic reset, the reset's), ``next_action_mask`` for ``next_obs``; ``None`` otherwise.

Gymnasium's ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` steps the same EpisodeLog envs to the
same numbers (and restores from the same states), but measured end to end on CartPole it cost
A2C 14-18% of its steps/s (DQN: within noise), over the 5% allowed, so :class:`VecEnv` stays as
the thin stepper (``benchmarks/vector_env_choice.py``, benchmarks/README.md).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from deeprl.envs.episode_log import EpisodeLog, episode_seed
from deeprl.envs.masks import stack_masks

__all__ = ["AsyncVecEnv", "EpisodeLog", "VecEnv", "VecStep", "episode_seed", "make_vec_env"]


@dataclass
class VecStep:
    """One step of every sub-environment. Arrays have leading dimension ``num_envs``."""

    obs: np.ndarray         # observation to act on next (reset observation where an episode ended)
    next_obs: np.ndarray    # true successor s' of this step (final observation where it ended)
    reward: np.ndarray      # float32
    terminated: np.ndarray  # bool: the MDP ended; nothing to bootstrap
    truncated: np.ndarray   # bool: cut short (time limit); bootstrap from next_obs
    episodes: list[tuple[int, float, int]]  # (env index, return, length) of finished episodes
    action_mask: np.ndarray | None = None       # (num_envs, n) bool: the actions valid in obs (None: no masks)
    next_action_mask: np.ndarray | None = None  # (num_envs, n) bool: the actions valid in next_obs


def _step(env: EpisodeLog, action: Any) -> tuple[Any, Any, float, bool, bool, tuple[float, int] | None, Any, Any]:
    """One sub-env step with automatic reset: ``(obs, next_obs, reward, terminated, truncated,
    (return, length) of an episode reported on this step or None, obs's mask, next_obs's mask)``."""
    next_obs, reward, terminated, truncated, info = env.step(action)
    obs, next_mask = next_obs, env.action_mask
    if terminated or truncated:
        obs, _ = env.reset()
    episode = info.get("episode")
    if episode is not None:
        episode = (float(episode["r"]), int(episode["l"]))
    return obs, next_obs, reward, terminated, truncated, episode, env.action_mask, next_mask


def _first(env: EpisodeLog, obs: Any) -> tuple[Any, Any]:
    """A reset's or a restore's observation with its mask."""
    return obs, env.action_mask


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


class VecEnv:
    """Steps ``num_envs`` environments, each wrapped in :class:`EpisodeLog`, in this process."""

    # not Gymnasium's SyncVectorEnv: its per-step batching cost A2C 14-18% of CartPole steps/s (benchmarks/README.md)

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seed: int):
        self.envs = [EpisodeLog(fn(), seed=seed, index=i) for i, fn in enumerate(env_fns)]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self._env_name = _env_name(self.envs[0])
        self._obs_dtype = self.single_observation_space.dtype or np.int64
        self.action_mask: np.ndarray | None = None  # of the observations last returned (None: no masks)

    def _stack(self, items: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(items), *(self.single_observation_space.shape or ())), dtype=self._obs_dtype)
        for i, x in enumerate(items):
            try:
                out[i] = x
            except (ValueError, TypeError):
                raise self._broken_contract(x, "reset") from None
        return out

    def _broken_contract(self, obs: Any, where: str) -> Exception:
        """The one-line error for an env whose observation is not of its own observation space."""
        from deeprl.errors import EnvError

        return EnvError(f"env {self._env_name!r} returned from {where}() an observation of shape {np.shape(obs)} "
                        f"({np.asarray(obs).dtype}), outside its own observation space "
                        f"{self.single_observation_space}; fix the env, or wrap it so its observations match the "
                        "space it declares")

    def _first_obs(self, firsts: list[tuple[Any, Any]]) -> np.ndarray:
        """The observations of a reset or restore, stacked; their masks kept as ``action_mask``."""
        self.action_mask = stack_masks([m for _, m in firsts], self.single_action_space, self._env_name)
        return self._stack([o for o, _ in firsts])

    def reset(self) -> np.ndarray:
        return self._first_obs([_first(env, env.reset()[0]) for env in self.envs])

    def step(self, actions: np.ndarray) -> VecStep:
        return self._collate([_step(env, a) for env, a in zip(self.envs, _per_env(actions))])

    def _collate(self, results: list[tuple]) -> VecStep:
        """Per-env ``_step`` results as one VecStep, written straight into the output arrays:
        this runs once per env step, and CartPole steps in ~15 µs, so stacking and converting
        tuples column by column would cost a third as much again."""
        n = len(results)
        obs = np.empty((n, *self.single_observation_space.shape), dtype=self._obs_dtype)
        reward, terminated, truncated = np.empty(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        ended, episodes = [], []
        for i, (o, final, r, te, tr, episode, _, _) in enumerate(results):
            try:
                obs[i], reward[i] = o, r
            except (ValueError, TypeError):
                raise self._broken_contract(o, "step") from None
            if te or tr:
                terminated[i], truncated[i] = te, tr
                ended.append((i, final))
            if episode is not None:
                episodes.append((i, *episode))
        next_obs = obs
        if ended:
            next_obs = obs.copy()
            for i, final in ended:
                next_obs[i] = final
        mask = next_mask = None
        if results[0][6] is not None:  # an env with masks: of the observations to act on, and of s'
            space, name = self.single_action_space, self._env_name
            mask = stack_masks([res[6] for res in results], space, name)
            next_mask = stack_masks([res[7] for res in results], space, name, acting=False) if ended else mask
        self.action_mask = mask
        return VecStep(obs=obs, next_obs=next_obs, reward=reward, terminated=terminated, truncated=truncated,
                       episodes=episodes, action_mask=mask, next_action_mask=next_mask)

    def state(self) -> list[dict[str, Any]]:
        """Each sub-env's :meth:`EpisodeLog.state` (plain JSON)."""
        return [env.state() for env in self.envs]

    def restore(self, state: list[dict[str, Any]]) -> np.ndarray:
        if not isinstance(state, list) or len(state) != self.num_envs:
            raise ValueError(f"state holds {len(state) if isinstance(state, list) else 'no list of'} envs, this "
                             f"vector env has {self.num_envs}")
        return self._first_obs([_first(env, env.restore(s)) for env, s in zip(self.envs, state)])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _per_env(actions: np.ndarray) -> Any:
    """Discrete actions as Python ints: Gymnasium's ``Discrete.contains`` checks those fastest."""
    actions = np.asarray(actions)
    if actions.ndim == 1 and actions.dtype.kind in "iu":
        return actions.tolist()
    return actions


def _worker(conn: Any, env_fns: list[Callable[[], gym.Env]], seed: int, first_index: int) -> None:
    # Ctrl-C reaches the whole process group: the parent stops at a clean point and checkpoints,
    # which needs the workers' env states, so they leave SIGINT to it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        envs = [EpisodeLog(fn(), seed=seed, index=first_index + i) for i, fn in enumerate(env_fns)]
        conn.send(("ok", (envs[0].observation_space, envs[0].action_space, _env_name(envs[0]))))
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                conn.send(("ok", [_step(env, a) for env, a in zip(envs, _per_env(arg))]))
            elif cmd == "reset":
                conn.send(("ok", [_first(env, env.reset()[0]) for env in envs]))
            elif cmd == "state":
                conn.send(("ok", [env.state() for env in envs]))
            elif cmd == "restore":
                conn.send(("ok", [_first(env, env.restore(s)) for env, s in zip(envs, arg)]))
            elif cmd == "close":
                for env in envs:
                    env.close()
                conn.send(("ok", None))
                return
    except KeyboardInterrupt:
        pass
    except Exception:  # report to the parent rather than dying silently
        conn.send(("error", traceback.format_exc()))


def _start_method() -> str:
    """Workers are started fresh (forkserver/spawn) when they can re-import the main script; from
    an interactive session or stdin they cannot, and fork is the only method that works there
    (safe here: workers run env code only, never torch)."""
    import os
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and os.path.exists(main_file):
        return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


class AsyncVecEnv(VecEnv):
    """Steps environments in ``num_workers`` subprocesses, several envs per worker.

    Worth it when one env step costs more than a pipe round trip (Atari, Box2D); for CartPole
    the in-process :class:`VecEnv` is faster.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seed: int, num_workers: int | None = None):
        self.num_envs = len(env_fns)
        num_workers = min(num_workers or mp.cpu_count(), self.num_envs)
        bounds = np.linspace(0, self.num_envs, num_workers + 1).astype(int)
        self._splits = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        ctx = mp.get_context(_start_method())
        self._conns, self._procs = [], []
        for a, b in self._splits:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, env_fns[a:b], seed, a), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        spaces = self._gather(None)
        self.single_observation_space, self.single_action_space, self._env_name = spaces[0]
        self._obs_dtype = self.single_observation_space.dtype or np.int64
        self.action_mask = None

    def _gather(self, cmd_args: list[tuple[str, Any]] | None) -> list[Any]:
        if cmd_args is not None:
            for conn, msg in zip(self._conns, cmd_args):
                conn.send(msg)
        out = []
        for conn in self._conns:
            try:
                status, payload = conn.recv()
            except EOFError:
                self.close()
                raise RuntimeError("an environment worker process died; run with vectorization=sync to see "
                                   "the env's own error") from None
            if status == "error":
                self.close()
                raise RuntimeError(f"environment worker failed:\n{payload}")
            out.append(payload)
        return out

    def _all(self, cmd: str, per_worker: list[Any] | None = None) -> list[Any]:
        args = per_worker or [None] * len(self._conns)
        parts = self._gather([(cmd, a) for a in args])
        return [item for part in parts for item in part]

    def reset(self) -> np.ndarray:
        return self._first_obs(self._all("reset"))

    def step(self, actions: np.ndarray) -> VecStep:
        return self._collate(self._all("step", [actions[a:b] for a, b in self._splits]))

    def state(self) -> list[dict[str, Any]]:
        return self._all("state")

    def restore(self, state: list[dict[str, Any]]) -> np.ndarray:
        if not isinstance(state, list) or len(state) != self.num_envs:
            raise ValueError(f"state holds {len(state) if isinstance(state, list) else 'no list of'} envs, this "
                             f"vector env has {self.num_envs}")
        return self._first_obs(self._all("restore", [state[a:b] for a, b in self._splits]))

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs):
            try:
                conn.send(("close", None))
                conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self._conns, self._procs = [], []


class _EnvFactory:
    """A picklable ``() -> env`` (subprocess workers are spawned, so lambdas will not do)."""

    def __init__(self, env_id: str | Callable[[], gym.Env], kwargs: dict[str, Any]):
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gym.Env:
        from deeprl.envs.make import make_env
        return make_env(self.env_id, **self.kwargs)


def make_vec_env(env_id: str | Callable[[], gym.Env], num_envs: int, seed: int, *, vectorization: str = "sync",
                 **kwargs: Any) -> VecEnv:
    """``num_envs`` copies of ``make_env(env_id, **kwargs)``, stepped together (``env_id`` may be
    a function that makes the env: it is called once per env)."""
    from deeprl.envs.make import make_env
    from deeprl.envs.sources import check_picklable

    make_env(env_id, **kwargs).close()  # fail here, with a clear error (and Gymnasium's env checker) once
    if vectorization == "async" and callable(env_id):
        check_picklable(env_id)
    fns = [_EnvFactory(env_id, {**kwargs, "check": False}) for _ in range(num_envs)]
    if vectorization == "async":
        return AsyncVecEnv(fns, seed)
    return VecEnv(fns, seed)
