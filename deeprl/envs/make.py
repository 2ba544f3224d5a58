"""Making environments from ids: any Gymnasium id, ``module:Env-v0`` ids and ALE Atari ids.

Every failure a user can cause (unknown id, missing module, missing optional dependency) becomes
an :class:`EnvError` that names the id and suggests close registered ids.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from deeprl.envs.atari import is_atari_id, make_atari, register_ale
from deeprl.envs.dmc import is_dmc_id, register_dmc
from deeprl.envs.masks import ActionMaskToInfo, has_mask_entry
from deeprl.envs.minatar import BinaryGrid, is_minatar_id, register_minatar
from deeprl.envs.packed import PackObservation
from deeprl.envs.pixels import PixelObservation
from deeprl.envs.repeat import ActionRepeat
from deeprl.envs.sources import (apply_wrappers, call_factory, check_wrapper_imports, describe_factory, factory_needed,
                                 is_factory_name, load_wrappers)
from deeprl.errors import EnvError, closest
from deeprl.spaces import is_composite


class ChannelsFirst(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """(H, W, C) uint8 images -> (C, H, W), the layout torch convolutions expect."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box)
        self.observation_space = gym.spaces.Box(
            low=np.moveaxis(space.low, -1, 0), high=np.moveaxis(space.high, -1, 0), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0))


def is_image_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def _is_channels_last(space: gym.spaces.Box) -> bool:
    h, w, c = space.shape
    return c in (1, 3, 4) and h > 4 and w > 4


def _suggest(env_id: str) -> str:
    ids = list(gym.registry.keys())
    if "/" in env_id or env_id[:1].isupper():
        try:
            register_ale()
            ids = list(gym.registry.keys())
        except ImportError:
            pass
    hits = closest(env_id, ids)
    if hits:
        return " Did you mean " + " or ".join(repr(h) for h in hits) + "?"
    return " Run 'python -c \"import gymnasium; gymnasium.pprint_registry()\"' to list the registered ids."


def use_atari_wrappers(env_id: str, setting: str = "auto") -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    return is_atari_id(env_id)


# Per-step reward ranges of envs whose rewards are known to be bounded: they bound every value,
# |Q| ≤ max|r| / (1 - γ), which is how DQN tells a diverging estimate from a large one.
_REWARD_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v0": (1.0, 1.0), "CartPole-v1": (1.0, 1.0),
    "Acrobot-v1": (-1.0, 0.0), "MountainCar-v0": (-1.0, 0.0),
    "Pendulum-v1": (-16.2736044, 0.0),  # -(π² + 0.1·8² + 0.001·2²)
}


def reward_range(env_id: str, atari_wrappers: str = "auto") -> tuple[float, float] | None:
    """``(r_min, r_max)`` of one step's reward where it is known, else ``None``.  Atari with the
    standard wrappers sees sign(reward)."""
    if use_atari_wrappers(env_id, atari_wrappers):
        return (-1.0, 1.0)
    return _REWARD_RANGES.get(env_id)


DEFAULT_EPISODE_LIMIT = 100_000  # steps, for envs registered without a time limit


def check_env_import(env_id: str, allowed: Iterable[str] = (), wrappers: Any = ()) -> None:
    """Refuse an env id read from a file (a saved model, a run's config.json) whose
    ``module:Env-v0`` form would import a module that the user did not name: making such an env
    runs that module's code.  Modules already imported, or named in ``allowed`` (the CLI's
    ``--allow-import``, ``deeprl.load(..., allow_import=[...])``), pass.  The same for the
    ``wrappers`` the file names (gymnasium's and deeprl's own pass)."""
    check_wrapper_imports(wrappers, allowed)
    if not isinstance(env_id, str) or ":" not in env_id:
        return
    module = env_id.split(":", 1)[0]
    if module in sys.modules or module in set(allowed):
        return
    raise EnvError(f"the saved env id {env_id!r} would import the module {module!r}, which runs its code; if you "
                   f"trust it, pass --allow-import {module} (Python: allow_import=[{module!r}])")


def make_env(env_id: str | Callable[[], gym.Env], *, render_mode: str | None = None, atari_wrappers: str = "auto",
             check: bool = True, pixels: int = 0, grayscale: bool = False, frame_stack: int = 1,
             max_episode_steps: int = 0, episode_limit: int = DEFAULT_EPISODE_LIMIT, wrappers: Sequence[str] = (),
             action_repeat: int = 1, **kwargs: Any) -> gym.Env:
    """One environment, ready for deeprl: images channels-first, Atari preprocessed.

    ``pixels=N`` replaces the observations by the env's ``rgb_array`` render resized to N x N
    (:class:`~deeprl.envs.pixels.PixelObservation`; ``grayscale``, ``frame_stack`` frames stacked
    along the channels, since one frame holds no velocity).

    ``check=False`` skips Gymnasium's passive env checker, a wrapper that costs microseconds on
    every step (vector envs check one copy, then make the rest without it).
    Episode statistics are kept by the vector env; Atari envs record whole-game scores inside.

    ``max_episode_steps`` truncates episodes after that many steps; 0 keeps the env's own limit,
    and gives an env registered without one a limit of ``episode_limit`` (``DEFAULT_EPISODE_LIMIT``),
    so that every episode ends (an evaluation waits for episodes to end); such an env carries that
    limit as ``env.deeprl_episode_limit`` (evaluations report the episodes it cut).

    ``action_repeat=K`` holds each action for K env steps and sums their rewards
    (:class:`~deeprl.envs.repeat.ActionRepeat`, as DMC is run by Dreamer and TD-MPC2); the time
    limit stays in env steps, below it.

    ``env_id`` may be a function that returns a new env (:mod:`deeprl.envs.sources`); ``wrappers``
    (import paths) wrap the env in order, after Atari preprocessing and action masks, before
    pixels, channels-first images and packed observations.
    """
    user_wrappers = load_wrappers(wrappers)  # imported and checked before any env is made
    if is_factory_name(env_id):
        raise factory_needed(env_id)
    factory, env_id = (env_id, describe_factory(env_id)) if callable(env_id) else (None, env_id)
    if not isinstance(env_id, str) or not env_id.strip():
        raise EnvError("no environment id given; pass one such as --env CartPole-v1")
    if atari_wrappers == "on" and not is_atari_id(env_id):
        raise EnvError(f"atari_wrappers=on needs an Atari env (ALE/...); {env_id!r} is not one. "
                       "Set atari_wrappers=auto")
    if ":" in env_id:
        module = env_id.split(":", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise EnvError(f"cannot import module {module!r} for env {env_id!r} ({e}); "
                           "install it or fix the 'module:Env-v0' id") from None
    if is_atari_id(env_id):
        try:
            register_ale()
        except ImportError:
            raise EnvError(f"env {env_id!r} needs ale-py; install it with 'pip install ale-py'") from None
    if is_minatar_id(env_id):
        register_minatar()
    if is_dmc_id(env_id):
        register_dmc()
    if render_mode == "rgb_array" or pixels:
        # classic-control envs draw off-screen with pygame, which still initialises SDL's display and
        # audio; on a machine with neither that prints an alarming "XDG_RUNTIME_DIR is invalid" line
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if pixels:
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"pixel observations render with rgb_array; render_mode={render_mode!r} cannot be used")
        render_mode = "rgb_array"
    try:
        if factory is not None:  # the user's function makes the env; a time limit as for a registered one
            env = call_factory(factory, render_mode, kwargs)
            if max_episode_steps or not has_wrapper(env, gym.wrappers.TimeLimit):
                env = gym.wrappers.TimeLimit(env, max_episode_steps or episode_limit)
                env.deeprl_episode_limit = None if max_episode_steps else episode_limit
        elif is_atari_id(env_id) and use_atari_wrappers(env_id, atari_wrappers):
            env = make_atari(env_id, render_mode=render_mode, max_episode_steps=max_episode_steps or None, **kwargs)
        else:
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            if not check:
                kwargs["disable_env_checker"] = True
            if max_episode_steps:
                kwargs["max_episode_steps"] = max_episode_steps
            env = gym.make(env_id, **kwargs)
            if env.spec is not None and env.spec.max_episode_steps is None and not has_wrapper(env, gym.wrappers.TimeLimit):
                env = gym.wrappers.TimeLimit(env, episode_limit)
                env.deeprl_episode_limit = episode_limit
    except gym.error.DependencyNotInstalled as e:
        raise EnvError(f"env {env_id!r} needs an optional dependency: {e}") from None
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
            gym.error.DeprecatedEnv, gym.error.UnregisteredEnv) as e:
        raise EnvError(f"unknown environment {env_id!r} ({e}).{_suggest(env_id)}") from None
    except gym.error.Error as e:
        raise EnvError(f"cannot make environment {env_id!r}: {e}") from None
    except TypeError as e:
        options = sorted(set(kwargs) - {"render_mode", "disable_env_checker", "max_episode_steps"})
        if not options:
            raise
        first = str(e).split(" was raised")[0]
        raise EnvError(f"env {env_id!r} does not take the keyword arguments {options} ({first}); check "
                       "--env-kwargs / env_kwargs") from None
    if has_mask_entry(env.observation_space):  # first: the mask goes to info before anything reads observations
        env = ActionMaskToInfo(env)
    if action_repeat > 1:  # above the mask, so that a repeat stops where the env forbids the action
        env = ActionRepeat(env, action_repeat)
    env = apply_wrappers(env, user_wrappers)
    if pixels:
        if env.metadata.get("render_modes") and "rgb_array" not in env.metadata["render_modes"]:
            env.close()
            raise EnvError(f"env {env_id!r} cannot render rgb_array frames, so it has no pixel observations; "
                           "set pixels=0")
        return ChannelsFirst(PixelObservation(env, size=pixels, grayscale=grayscale, stack=frame_stack))
    if is_minatar_id(env_id):
        return BinaryGrid(env)
    if is_image_space(env.observation_space) and _is_channels_last(env.observation_space):
        env = ChannelsFirst(env)
    if is_composite(env.observation_space):
        env = PackObservation(env)
    return env


def make_pixel_env(env_id: str, *, size: int = 64, grayscale: bool = False, stack: int = 1,
                   **kwargs: Any) -> gym.Env:
    """``env_id`` made with ``render_mode="rgb_array"`` and wrapped in :class:`PixelObservation`
    (channels last, as rendered)."""
    return PixelObservation(make_env(env_id, render_mode="rgb_array", **kwargs), size=size,
                            grayscale=grayscale, stack=stack)


def has_wrapper(env: gym.Env, wrapper: type[gym.Wrapper]) -> bool:
    """Whether a ``wrapper`` sits somewhere in ``env``'s wrapper chain."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper):
            return True
        env = env.env
    return False


def check_discrete_actions(space: gym.Space, algo: str) -> int:
    """Number of actions, or an EnvError saying why ``algo`` cannot act in ``space``."""
    if isinstance(space, gym.spaces.Discrete):
        if space.start != 0:
            raise EnvError(f"{algo} needs actions numbered from 0; this env's Discrete space starts at "
                           f"{space.start}")
        return int(space.n)
    if isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        raise EnvError(f"{algo} needs one Discrete action space, but this env's actions are {space}; reinforce, "
                       "actor_critic, a2c and ppo handle MultiDiscrete and MultiBinary actions")
    raise EnvError(f"{algo} needs a discrete action space, but this env's actions are {space}; "
                   "use an env with Discrete actions (continuous-action algorithms: a2c, ppo, dreamer)")


def check_discrete_or_box_actions(space: gym.Space, algo: str, bounded: bool = False,
                                  factorized: bool = False) -> None:
    """An EnvError unless ``space`` is Discrete (numbered from 0) or a 1-D Box (finite if ``bounded``),
    or with ``factorized`` a 1-D MultiDiscrete or MultiBinary space (one independent choice per slot)."""
    if isinstance(space, gym.spaces.Discrete):
        if space.start != 0:
            raise EnvError(f"{algo} needs actions numbered from 0; this env's start at {space.start}")
        return
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and (
            not bounded or (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))):
        return
    if factorized and isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)) and len(space.shape) == 1:
        return
    kind = "bounded 1-D Box" if bounded else "1-D Box"
    kinds = f"Discrete, {kind}, 1-D MultiDiscrete and MultiBinary" if factorized else f"Discrete and {kind}"
    hint = ""
    if not factorized and isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        hint = "; reinforce, actor_critic, a2c and ppo handle MultiDiscrete and MultiBinary actions"
    elif isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary, gym.spaces.Box)):
        hint = "; flatten it to one dimension in a wrapper of your own"
    raise EnvError(f"{algo} handles {kinds} action spaces; this env's actions are {space}{hint}")


def check_vector_or_image_observations(space: gym.Space, algo: str) -> None:
    """An EnvError unless ``space`` is a 1-D Box (vectors) or a 3-D Box (images, grids)."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (1, 3):
        raise EnvError(f"{algo} handles vector and image observations; this env observes {space}")


def check_observation_space(space: gym.Space, algo: str) -> None:
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Box) and (len(space.shape) == 1 or is_image_space(space)):
        return
    raise EnvError(f"{algo} handles vector, image and Discrete observations; this env observes {space}. "
                   "Flatten it with gymnasium.wrappers.FlattenObservation in a registered env")
