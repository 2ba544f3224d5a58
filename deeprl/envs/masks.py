"""Invalid-action masks: where they come from, what shape they take, and the checks on them.

An env says which of its Discrete actions are valid in an observation in one of two ways:

* ``info["action_mask"]`` of every reset and step (Gymnasium's Taxi-v4): an int8 or bool array
  of shape ``(n,)``, 1 (nonzero) where the action is valid;
* an ``"action_mask"`` entry of a Dict observation (PettingZoo, SB3-contrib's MaskablePPO):
  ``{"observation": ..., "action_mask": ...}``.  :class:`ActionMaskToInfo` (applied by
  ``make_env``) moves it into ``info["action_mask"]``, so the rest of deeprl reads masks from
  one place and the networks never see them.

The vector envs stack them as bool arrays ``(num_envs, n)`` (:func:`stack_masks`):
``VecStep.action_mask`` for the observation to act on next, ``VecStep.next_action_mask`` for s'
(DQN's target), ``VecEnv.action_mask`` for the observation the envs last returned.  Envs without
masks give ``None`` throughout.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import ConfigError, EnvError

MASK_KEY = "action_mask"
MASKING_ALGOS = "dqn, ppo, a2c, reinforce or actor_critic"


def has_mask_entry(space: gym.Space) -> bool:
    """Whether ``space`` is a Dict observation space carrying an ``"action_mask"`` entry."""
    return isinstance(space, gym.spaces.Dict) and MASK_KEY in space.spaces


class ActionMaskToInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A Dict observation's ``"action_mask"`` entry, moved into ``info["action_mask"]``.

    The observation keeps its other entries: the one entry itself where exactly one remains (its
    space becomes the observation space), else a Dict without the mask.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        if not has_mask_entry(space):
            raise EnvError(f"ActionMaskToInfo needs a Dict observation with an {MASK_KEY!r} entry; this env "
                           f"observes {space}")
        rest = {key: s for key, s in space.spaces.items() if key != MASK_KEY}
        if not rest:
            raise EnvError(f"this env's Dict observation holds only {MASK_KEY!r}: nothing is left to observe")
        self._only = next(iter(rest)) if len(rest) == 1 else None
        self.observation_space = rest[self._only] if self._only is not None else gym.spaces.Dict(rest)

    def _split(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        info = {**info, MASK_KEY: obs[MASK_KEY]}
        if self._only is not None:
            return obs[self._only], info
        return {key: value for key, value in obs.items() if key != MASK_KEY}, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        return self._split(*self.env.reset(seed=seed, options=options))

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._split(obs, info)
        return obs, reward, terminated, truncated, info


def stack_masks(masks: list[Any], action_space: gym.Space, env_name: str, acting: bool = True) -> np.ndarray | None:
    """Each sub-env's mask (``None`` where it gave none) as one bool array ``(num_envs, n)``;
    ``None`` when the env gives no masks.  An EnvError where the masks break the convention:
    given on some steps only, of the wrong shape, for actions that are not Discrete, or (for an
    observation to act on, ``acting``) allowing no action at all."""
    if masks[0] is None and all(m is None for m in masks):
        return None
    if not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(f"env {env_name!r} gives info[{MASK_KEY!r}], but action masks need Discrete actions and its "
                       f"actions are {action_space}")
    if any(m is None for m in masks):
        raise EnvError(f"env {env_name!r} gives info[{MASK_KEY!r}] on some resets and steps only; give it on all")
    out = np.asarray(masks)
    n = int(action_space.n)
    if out.shape != (len(masks), n) or out.dtype.kind not in "biuf":
        raise EnvError(f"env {env_name!r} gave an action mask of shape {np.shape(masks[0])} ({out.dtype}); "
                       f"a mask is one 0/1 (bool or number) entry per action, shape ({n},)")
    out = out.astype(bool, copy=False)
    if acting and not out.any(axis=1).all():
        raise EnvError(f"env {env_name!r} gave an action mask that allows no action for an observation to act on; "
                       "an episode whose state allows no action must end (terminated or truncated) there")
    return out


def mask_batch(mask: Any, batch_size: int, algo: str, action_space: gym.Space | None) -> dict[str, np.ndarray]:
    """``predict``'s ``action_mask`` as ``_act``'s keyword: one ``(n,)`` mask per observation
    (``(B, n)`` for a batch of B, ``(n,)`` for one), as bool; ``{}`` for no mask; a ConfigError
    naming the fix otherwise (``action_space``: the agent's, None where it cannot mask)."""
    if mask is None:
        return {}
    if action_space is None:
        raise refuse_masks(algo)
    n_actions = int(action_space.n)
    array = np.asarray(mask)
    if array.ndim == 1 and batch_size == 1:
        array = array[None]
    if array.shape != (batch_size, n_actions) or array.dtype.kind not in "biuf":
        raise ConfigError(f"predict()'s action_mask has shape {np.shape(mask)} ({array.dtype}); give 0/1 or bool "
                          f"entries of shape ({n_actions},) for one observation, ({batch_size}, {n_actions}) for "
                          f"this batch")
    array = array.astype(bool, copy=False)
    if not array.any(axis=1).all():
        raise ConfigError("predict()'s action_mask allows no action for some observation; allow at least one")
    return {"action_mask": array}


def refuse_masks(algo: str) -> ConfigError:
    """The error for an agent that cannot act under masks (worldmodel, Dreamer, continuous actions)."""
    return ConfigError(f"{algo} cannot act under invalid-action masks (info[{MASK_KEY!r}], predict's action_mask); "
                       f"use {MASKING_ALGOS} with Discrete actions, or an env without masks")


def check_allowed(mask: np.ndarray, actions: np.ndarray, algo: str, masks_actions: bool) -> None:
    """Before the envs step: refuse an agent that cannot mask (before it takes any action), and
    stop at once should an agent that masks pick an action its mask forbids (a bug)."""
    if not masks_actions:
        raise refuse_masks(algo)
    actions = np.asarray(actions)
    if not mask[np.arange(len(mask)), actions.reshape(len(mask))].all():
        raise RuntimeError(f"{algo} chose an action that the env's action mask forbids; this is a bug in deeprl")
