"""Vector environments whose state can be checkpointed.

Gymnasium cannot save an environment's internal state, so a resumed run would start every
episode afresh.  Instead each sub-environment is reset with a seed derived from
``(seed, env index, episode index)`` and remembers the actions taken since that reset; restoring
resets with the same seed and replays the actions.  For any environment that is deterministic
given its reset seed (all Gymnasium and ALE envs are: their randomness comes from ``np_random``)
this rebuilds exactly the state the killed run had, so a resumed run equals an uninterrupted one.

``step`` returns both ``obs`` (after automatic reset, for acting) and ``next_obs`` (the true
successor, the final observation where an episode ended), with ``terminated`` and ``truncated``
kept apart: learners bootstrap from ``next_obs`` on truncation and not on termination.
Where no episode ended the two are one array: treat both as read-only.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from deeprl.envs.make import has_wrapper


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


@dataclass
class VecStep:
    """One step of every sub-environment. Arrays have leading dimension ``num_envs``."""

    obs: np.ndarray         # observation to act on next (reset observation where an episode ended)
    next_obs: np.ndarray    # true successor s' of this step (final observation where it ended)
    reward: np.ndarray      # float32
    terminated: np.ndarray  # bool: the MDP ended; nothing to bootstrap
    truncated: np.ndarray   # bool: cut short (time limit); bootstrap from next_obs
    episodes: list[tuple[int, float, int]]  # (env index, return, length) of finished episodes


def _jsonable(action: Any) -> Any:
    return action.tolist() if isinstance(action, np.ndarray) else (
        action.item() if isinstance(action, np.generic) else action)


def _records_episodes(env: gym.Env) -> bool:
    return has_wrapper(env, gym.wrappers.RecordEpisodeStatistics)


class _Slot:
    """One sub-environment with seeded resets, a replayable action log and episode statistics.

    Returns and lengths are summed here (cheaper than a wrapper per step) unless the env records
    them itself (Atari: the whole game's unclipped score, across lives), in which case its
    ``info["episode"]`` is reported instead.
    """

    def __init__(self, env: gym.Env, seed: int, index: int):
        self.env, self.seed, self.index = env, seed, index
        self.episode = 0        # resets done so far (real or not)
        self.log: list[Any] = []  # events since the last real reset: seed first, then actions / None
        self.action_dtype: str | None = None  # of array actions: a replay must pass the very same numbers
        self.own_stats = not _records_episodes(env)
        self.ep_return, self.ep_length = 0.0, 0

    def reset(self) -> np.ndarray:
        s = episode_seed(self.seed, self.index, self.episode)
        self.episode += 1
        obs, info = self.env.reset(seed=s)
        if info.get("real_reset", True):
            self.log = [s]
        else:  # Atari episodic life: a life was lost but the game goes on
            self.log.append(None)
        self.ep_return, self.ep_length = 0.0, 0
        return obs

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, float, bool, bool, tuple | None]:
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        if type(action) is int:
            self.log.append(action)
        else:
            self.log.append(_jsonable(action))
            # float32 and float64 torques give different physics (NumPy keeps float32 arithmetic
            # float32), so the replay restores the dtype that JSON's numbers lose
            self.action_dtype = np.asarray(action).dtype.str
        reward = float(reward)
        self.ep_return += reward
        self.ep_length += 1
        episode = None
        if not self.own_stats:
            if "episode" in info:
                episode = (self.index, float(info["episode"]["r"]), int(info["episode"]["l"]))
        elif terminated or truncated:
            episode = (self.index, self.ep_return, self.ep_length)
        obs = next_obs
        if terminated or truncated:
            obs = self.reset()
        return obs, next_obs, reward, bool(terminated), bool(truncated), episode

    def state(self) -> dict[str, Any]:
        return {"episode": self.episode, "log": list(self.log), "action_dtype": self.action_dtype}

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        log = state["log"]
        dtype = np.dtype(state["action_dtype"]) if state.get("action_dtype") else None
        if dtype is not None and dtype.kind not in "biuf":
            raise ValueError(f"action dtype {dtype}")
        obs, _ = self.env.reset(seed=int(log[0]))
        self.ep_return, self.ep_length = 0.0, 0
        for event in log[1:]:
            if event is None:
                obs, _ = self.env.reset(seed=0)  # seed ignored by a non-real reset
            else:
                action = np.asarray(event, dtype=dtype) if isinstance(event, list) else event
                obs, reward, _, _, _ = self.env.step(action)
                self.ep_return += float(reward)
                self.ep_length += 1
        self.log = list(log)
        self.action_dtype = None if dtype is None else dtype.str
        self.episode = int(state["episode"])
        return obs


class VecEnv:
    """Steps ``num_envs`` environments in this process."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seed: int):
        self.slots = [_Slot(fn(), seed, i) for i, fn in enumerate(env_fns)]
        self.num_envs = len(self.slots)
        self.single_observation_space = self.slots[0].env.observation_space
        self.single_action_space = self.slots[0].env.action_space
        self._obs_dtype = self.single_observation_space.dtype or np.int64

    def _stack(self, items: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(items), *(self.single_observation_space.shape or ())), dtype=self._obs_dtype)
        for i, x in enumerate(items):
            try:
                out[i] = x
            except (ValueError, TypeError):
                raise self._broken_contract(i, x, "reset") from None
        return out

    def _broken_contract(self, i: int, obs: Any, where: str) -> Exception:
        """The one-line error for an env whose observation is not of its own observation space."""
        from deeprl.errors import EnvError

        env = self.slots[i].env
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        return EnvError(f"env {name!r} returned from {where}() an observation of shape {np.shape(obs)} "
                        f"({np.asarray(obs).dtype}), outside its own observation space {env.observation_space}; "
                        "fix the env, or wrap it so its observations match the space it declares")

    def reset(self) -> np.ndarray:
        return self._stack([slot.reset() for slot in self.slots])

    def step(self, actions: np.ndarray) -> VecStep:
        return self._collate([slot.step(a) for slot, a in zip(self.slots, _per_env(actions))])

    def _collate(self, results: list[tuple]) -> VecStep:
        """Per-env ``_Slot.step`` results as one VecStep, written straight into the output arrays:
        this runs once per env step, and CartPole steps in ~15 µs, so stacking and converting
        tuples column by column would cost a third as much again."""
        n = len(results)
        obs = np.empty((n, *self.single_observation_space.shape), dtype=self._obs_dtype)
        reward, terminated, truncated = np.empty(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        ended, episodes = [], []
        for i, (o, final, r, te, tr, episode) in enumerate(results):
            try:
                obs[i], reward[i] = o, r
            except (ValueError, TypeError):
                raise self._broken_contract(i, o, "step") from None
            if te or tr:
                terminated[i], truncated[i] = te, tr
                ended.append((i, final))
            if episode is not None:
                episodes.append(episode)
        next_obs = obs
        if ended:
            next_obs = obs.copy()
            for i, final in ended:
                next_obs[i] = final
        return VecStep(obs=obs, next_obs=next_obs, reward=reward, terminated=terminated, truncated=truncated,
                       episodes=episodes)

    def state(self) -> list[dict[str, Any]]:
        return [slot.state() for slot in self.slots]

    def restore(self, state: list[dict[str, Any]]) -> np.ndarray:
        if len(state) != len(self.slots):
            raise ValueError(f"state holds {len(state)} envs, this vector env has {len(self.slots)}")
        return self._stack([slot.restore(s) for slot, s in zip(self.slots, state)])

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()


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
        slots = [_Slot(fn(), seed, first_index + i) for i, fn in enumerate(env_fns)]
        conn.send(("ok", (slots[0].env.observation_space, slots[0].env.action_space)))
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                conn.send(("ok", [slot.step(a) for slot, a in zip(slots, _per_env(arg))]))
            elif cmd == "reset":
                conn.send(("ok", [slot.reset() for slot in slots]))
            elif cmd == "state":
                conn.send(("ok", [slot.state() for slot in slots]))
            elif cmd == "restore":
                conn.send(("ok", [slot.restore(s) for slot, s in zip(slots, arg)]))
            elif cmd == "close":
                for slot in slots:
                    slot.env.close()
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
        self.single_observation_space, self.single_action_space = spaces[0]
        self._obs_dtype = self.single_observation_space.dtype or np.int64

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
        return self._stack(self._all("reset"))

    def step(self, actions: np.ndarray) -> VecStep:
        return self._collate(self._all("step", [actions[a:b] for a, b in self._splits]))

    def state(self) -> list[dict[str, Any]]:
        return self._all("state")

    def restore(self, state: list[dict[str, Any]]) -> np.ndarray:
        return self._stack(self._all("restore", [state[a:b] for a, b in self._splits]))

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

    def __init__(self, env_id: str, kwargs: dict[str, Any]):
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gym.Env:
        from deeprl.envs.make import make_env
        return make_env(self.env_id, **self.kwargs)


def make_vec_env(env_id: str, num_envs: int, seed: int, *, vectorization: str = "sync",
                 **kwargs: Any) -> VecEnv:
    """``num_envs`` copies of ``make_env(env_id, **kwargs)``, stepped together."""
    from deeprl.envs.make import make_env

    make_env(env_id, **kwargs).close()  # fail here, with a clear error (and Gymnasium's env checker) once
    fns = [_EnvFactory(env_id, {**kwargs, "check": False}) for _ in range(num_envs)]
    if vectorization == "async":
        return AsyncVecEnv(fns, seed)
    return VecEnv(fns, seed)
