"""One Gymnasium env whose state can be checkpointed: seeded resets and a replayable action log.

Gymnasium cannot save an environment's internal state.  :class:`EpisodeLog` instead resets the
env it wraps with a seed of its own choosing, ``episode_seed(seed, index, episode)`` for the
``episode``-th reset, and remembers that seed and every action since.  :meth:`EpisodeLog.state`
is that record (plain JSON); :meth:`EpisodeLog.restore` resets a fresh copy of the env with the
same seed and replays the actions.  For any env that is deterministic given its reset seed (all
Gymnasium and ALE envs are: their randomness comes from ``np_random``) this rebuilds exactly the
state the original had, so a run resumed from a checkpoint equals an uninterrupted one.

It is a plain wrapper, so any vector env steps it: deeprl's :class:`~deeprl.envs.vector.VecEnv`,
or Gymnasium's ``SyncVectorEnv`` / ``AsyncVectorEnv`` (whose automatic resets pass no seed, which
is what picks the next episode's seed here); their checkpoint is each sub-env's ``state()``.

Atari with episodic life: a reset that only continues the game after a lost life reports
``info["real_reset"] = False`` (see :mod:`deeprl.envs.atari`); it is logged as ``None`` and the
log goes on from the game's own seeded reset.

Episode statistics: the return and length of the running episode are summed here
(``episode_return``, ``episode_length``), and the step that ends an episode carries them as
``info["episode"] = {"r": return, "l": length}``, as Gymnasium's ``RecordEpisodeStatistics``
reports them.  An env that records its own (Atari: the whole game's unclipped score, across
lives) keeps its ``info["episode"]``.

Action masks: ``action_mask`` is the ``info["action_mask"]`` of the latest observation (None for
an env without masks, :mod:`deeprl.envs.masks`); a restore re-derives it by the replay.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.envs.make import has_wrapper

__all__ = ["EpisodeLog", "episode_seed"]


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """The reset seed of episode ``episode`` (counting from 0) of sub-env ``env_index``."""
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


def _jsonable(action: Any) -> Any:
    return action.tolist() if isinstance(action, np.ndarray) else (
        action.item() if isinstance(action, np.generic) else action)


class EpisodeLog(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Seeded resets and a log of the actions since, so :meth:`restore` rebuilds the exact state.

    ``seed`` and ``index`` pick the reset seeds: a reset without a seed uses
    ``episode_seed(seed, index, episode)`` (a fresh random one, still logged, when ``seed`` is
    None), where ``episode`` counts the resets so far.  A reset with a seed uses that one and
    starts the stream again from it, as Gymnasium's envs do (the resets after
    ``reset(seed=s)`` are the same every time); the state then names that seed too.
    """

    def __init__(self, env: gym.Env, seed: int | None = None, index: int = 0):
        gym.utils.RecordConstructorArgs.__init__(self, seed=seed, index=index)
        gym.Wrapper.__init__(self, env)
        self.base_seed, self.index = seed, index
        self._constructor_seed = seed
        self.episode = 0              # resets so far (real or not) since the stream of seeds began
        self.log: list[Any] = []      # since the last real reset: its seed, then actions / None (a non-real reset)
        self.action_dtype: str | None = None  # of array actions: a replay must pass the very same numbers
        self.own_stats = not has_wrapper(env, gym.wrappers.RecordEpisodeStatistics)
        self.episode_return, self.episode_length = 0.0, 0
        self.action_mask: Any = None  # info["action_mask"] of the latest observation (None: the env gives none)

    def _next_seed(self) -> int:
        if self.base_seed is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return episode_seed(self.base_seed, self.index, self.episode)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if options:
            raise ValueError("EpisodeLog replays resets from their seed alone; reset options cannot be replayed")
        if seed is None:
            seed = self._next_seed()
        else:  # the caller's seed, and a stream of seeds from it
            self.base_seed, self.episode = int(seed), 0
        self.episode += 1
        obs, info = self.env.reset(seed=seed)
        self.action_mask = info.get("action_mask")
        if info.get("real_reset", True):
            self.log = [int(seed)]
        else:  # Atari episodic life: a life was lost but the game goes on (the seed was ignored)
            self.log.append(None)
        self.episode_return, self.episode_length = 0.0, 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.action_mask = info.get("action_mask")
        if type(action) is int:
            self.log.append(action)
        elif isinstance(action, np.integer):  # Gymnasium's vector envs pass NumPy integers: exact as ints
            self.log.append(int(action))
        else:
            self.log.append(_jsonable(action))
            # float32 and float64 torques give different physics (NumPy keeps float32 arithmetic
            # float32), so the replay restores the dtype that JSON's numbers lose
            self.action_dtype = np.asarray(action).dtype.str
        self.episode_return += float(reward)
        self.episode_length += 1
        if (terminated or truncated) and self.own_stats:
            info = {**info, "episode": {"r": self.episode_return, "l": self.episode_length}}
        return obs, reward, terminated, truncated, info

    def state(self) -> dict[str, Any]:
        """The record to restore from, as plain JSON: ``{"episode", "log", "action_dtype"}``, and
        ``"seed"`` when a reset's seed replaced the one this wrapper was made with."""
        state = {"episode": self.episode, "log": list(self.log), "action_dtype": self.action_dtype}
        if self.base_seed != self._constructor_seed:
            state["seed"] = self.base_seed
        return state

    def restore(self, state: dict[str, Any]) -> Any:
        """Put the env in the state :meth:`state` described (reset with the logged seed, replay the
        actions); returns the observation to act on next."""
        try:
            log, episode, dtype = state["log"], state["episode"], state.get("action_dtype")
        except (TypeError, KeyError) as e:
            raise ValueError(f"an env state needs 'episode' and 'log' ({e!r} missing)") from None
        if not isinstance(log, list) or not log or type(log[0]) is not int:
            raise ValueError("an env state's log starts with its reset seed (an integer)")
        if type(episode) is not int or episode < 1:
            raise ValueError(f"an env state's episode count is {episode!r}, not a positive integer")
        base_seed = state.get("seed", self._constructor_seed)
        if base_seed is not None and type(base_seed) is not int:
            raise ValueError(f"an env state's seed is {base_seed!r}, not an integer")
        try:
            dtype = np.dtype(dtype) if dtype else None
        except TypeError:
            raise ValueError(f"action dtype {state.get('action_dtype')!r}") from None
        if dtype is not None and dtype.kind not in "biuf":
            raise ValueError(f"action dtype {dtype}")
        obs, info = self.env.reset(seed=log[0])
        self.episode_return, self.episode_length = 0.0, 0
        for event in log[1:]:
            if event is None:
                obs, info = self.env.reset(seed=0)  # seed ignored by a non-real reset
                self.episode_return, self.episode_length = 0.0, 0
            else:
                if isinstance(event, list):
                    action = np.asarray(event, dtype=dtype)
                else:
                    action = event if dtype is None else dtype.type(event)
                obs, reward, _, _, info = self.env.step(action)
                self.episode_return += float(reward)
                self.episode_length += 1
        self.log = list(log)
        self.action_mask = info.get("action_mask")  # the replayed state's mask, as the killed run had it
        self.action_dtype = None if dtype is None else dtype.str
        self.base_seed, self.episode = base_seed, episode
        return obs
