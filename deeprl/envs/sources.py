"""Where a run's env comes from besides an id: an ``EnvSpec``, a factory, and the user's wrappers.

``Algorithm(env=...)`` takes a Gymnasium id, an ``EnvSpec`` or a zero-argument function that
returns a new ``gym.Env`` (called once per parallel env and per evaluation env).  The config
stays plain JSON: a spec registered under its id becomes that id plus its ``env_kwargs`` (and
time limit); a factory, or a spec that its id alone cannot rebuild, is held on the agent, and
the config names it by a description, ``<factory mymod.make_env>``.  A file cannot hold a
function, so a model trained on a factory loads for ``predict`` anywhere, while evaluating it
or resuming its run needs the factory again (``load(path, env=f)``, ``resume(run_dir, env=f)``);
:func:`make_env` refuses a description in one line that says so.

``wrappers`` are import paths (``gymnasium.wrappers.FlattenObservation``, ``module:Name``) of
``gym.Wrapper`` subclasses or functions ``env -> env``, called with the env alone.  Each is
imported and checked before any env is made; read from a file (a model, a run's config.json),
a module outside gymnasium and deeprl is imported only when the user names it (--allow-import).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import pickle
import sys
from collections.abc import Iterable
from typing import Any, Callable, Union

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from deeprl.config import IMPORT_PATH
from deeprl.errors import ConfigError, EnvError, did_you_mean, one_line

EnvFactory = Callable[[], gym.Env]
EnvArg = Union[str, EnvSpec, EnvFactory]  # what Algorithm(env=...) takes
_FACTORY = "<factory "
_TRUSTED = ("gymnasium", "deeprl")  # wrapper modules a file may name without --allow-import


class SpecFactory:
    """``gym.make(spec)`` as a factory, for a spec that its id alone cannot rebuild (an entry
    point registered under no id, wrappers of its own); picklable for subprocess workers."""

    def __init__(self, spec: EnvSpec):
        self.spec = spec

    def __call__(self) -> gym.Env:
        return gym.make(self.spec)


def describe_factory(factory: EnvFactory) -> str:
    """The name config.json gives a factory: ``<factory mymod.make_env>``."""
    if isinstance(factory, SpecFactory):
        return f"{_FACTORY}EnvSpec {factory.spec.id}>"
    target = factory.func if isinstance(factory, functools.partial) else factory
    owner = target if hasattr(target, "__qualname__") else type(target)
    return f"{_FACTORY}{owner.__module__}.{owner.__qualname__}>"


def is_factory_name(env_id: Any) -> bool:
    return isinstance(env_id, str) and env_id.startswith(_FACTORY)


def factory_needed(env_id: str) -> EnvError:
    return EnvError(f"the env {env_id} was made by a Python function, which no file can hold; pass it again: "
                    "Algorithm.resume(run_dir, env=make) continues the run, deeprl.load(path, env=make) evaluates the "
                    "model (predict needs no env)")


def _plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compare element-wise
        return False


def _by_id(spec: EnvSpec) -> tuple[dict[str, Any], int] | None:
    """``(env_kwargs, max_episode_steps or 0)`` that rebuild ``spec`` from its registered id, or
    None where the id alone cannot (another entry point, wrappers, options that are not plain)."""
    registered = gym.registry.get(spec.id)
    if registered is None or (spec.max_episode_steps is None and registered.max_episode_steps is not None):
        return None
    # what gym.make(id, **kwargs) cannot change must match; reward_threshold and friends are labels only
    if dataclasses.replace(spec, kwargs=registered.kwargs, max_episode_steps=registered.max_episode_steps,
                           reward_threshold=registered.reward_threshold, nondeterministic=registered.nondeterministic,
                           disable_env_checker=registered.disable_env_checker) != registered:
        return None
    if set(registered.kwargs) - set(spec.kwargs) or not _plain(spec.kwargs):
        return None
    kwargs = {k: v for k, v in spec.kwargs.items() if k not in registered.kwargs or not _same(v, registered.kwargs[k])}
    limit = spec.max_episode_steps if spec.max_episode_steps != registered.max_episode_steps else 0
    return kwargs, limit


def env_argument(env: Any, settings: dict[str, Any]) -> tuple[str, dict[str, Any], EnvFactory | None]:
    """What ``Algorithm(env=...)`` was given, as ``(the config's env, the settings, the factory)``:
    an id as it is; a spec registered under its id as that id, its kwargs merged under the
    settings' ``env_kwargs`` and its time limit as ``max_episode_steps`` (unless set); anything
    else as a factory and its description."""
    if isinstance(env, str):
        return env, settings, None
    if isinstance(env, EnvSpec):
        by_id = _by_id(env)
        if by_id is None:
            env = SpecFactory(env)
        else:
            kwargs, limit = by_id
            extra: dict[str, Any] = {}
            if kwargs and isinstance(settings.get("env_kwargs", {}), dict):
                extra["env_kwargs"] = {**kwargs, **settings.get("env_kwargs", {})}
            if limit and "max_episode_steps" not in settings:
                extra["max_episode_steps"] = limit
            return env.id, {**settings, **extra}, None
    if isinstance(env, gym.Env):
        raise ConfigError("env= got an env object; deeprl makes one env per parallel env and per evaluation, so pass "
                          "a function that makes a new one (env=lambda: MyEnv()) or an id")
    if not callable(env):
        raise ConfigError(f"env= takes a Gymnasium id, an EnvSpec or a function that returns a new env, got "
                          f"{type(env).__name__}")
    try:
        inspect.signature(env).bind()
    except TypeError:
        raise ConfigError(f"the env factory {describe_factory(env)} needs arguments, and deeprl calls it with none; "
                          "bind them first (functools.partial, or lambda: ...)") from None
    except ValueError:  # no signature to read (some builtins): called as it is
        pass
    return describe_factory(env), settings, env


def factory_for(env: Any, run_env: str, *, resume: bool) -> EnvFactory | None:
    """The factory given to ``load(env=)`` (evaluation) or ``resume(env=)``, checked against the
    env the saved config names (``run_env``)."""
    if env is None:
        return None
    name, _, factory = env_argument(SpecFactory(env) if isinstance(env, EnvSpec) else env, {})
    if factory is None:
        raise ConfigError(f"env= here takes the function that makes the env; the id {name!r} is not one (an id run "
                          "is rebuilt from its saved config: drop env=)")
    if resume and name != run_env:
        if not is_factory_name(run_env):
            raise ConfigError(f"this run trains on {run_env!r}, which its config.json rebuilds; resume it without env=")
        raise ConfigError(f"this run was trained on {run_env}, not {name}; pass that function (if it was renamed, "
                          f"set \"env\" in the run's config.json to {name!r})")
    return factory


def call_factory(factory: EnvFactory, render_mode: str | None, options: dict[str, Any]) -> gym.Env:
    """One env from ``factory``; ``options`` (env_kwargs) cannot reach it, and a ``render_mode``
    (videos, pixels) must be the one it makes."""
    name = describe_factory(factory)
    if options:
        raise EnvError(f"env_kwargs {sorted(options)} cannot reach the env factory {name}; give them to the "
                       "factory itself (functools.partial)")
    env = factory()
    if not isinstance(env, gym.Env):
        raise EnvError(f"the env factory {name} returned {type(env).__name__}, not a gymnasium.Env")
    if render_mode is not None and env.render_mode != render_mode:
        env.close()
        raise EnvError(f"the env factory {name} makes envs with render_mode={env.render_mode!r}; videos and pixel "
                       f"observations need render_mode={render_mode!r}: make the factory's env with it")
    return env


def check_picklable(factory: EnvFactory) -> None:
    """vectorization=async sends the factory to worker processes, which pickle it."""
    try:
        pickle.dumps(factory)
    except Exception as e:  # noqa: BLE001 - pickling raises many kinds (PicklingError, AttributeError, TypeError)
        raise EnvError(f"vectorization=async sends the env factory {describe_factory(factory)} to worker processes, "
                       f"which cannot take it ({one_line(e)}); define it at module level (no lambda or closure), "
                       "or use vectorization=sync") from None


# --------------------------------------------------------------------------------------------
# wrappers by import path


def _split(path: str) -> tuple[str, str]:
    """``"a.b:C.D"`` -> ``("a.b", "C.D")``; ``"a.b.C"`` -> ``("a.b", "C")``."""
    module, sep, attr = path.partition(":")
    return (module, attr) if sep else tuple(path.rsplit(".", 1))  # type: ignore[return-value]


def is_import_path(path: Any) -> bool:
    return isinstance(path, str) and IMPORT_PATH.fullmatch(path) is not None


def check_wrapper_imports(paths: Any, allowed: Iterable[str] = ()) -> None:
    """Refuse a wrapper read from a file whose module the user did not name: importing it runs its
    code.  gymnasium's and deeprl's own, modules already imported, and modules (or their packages)
    named in ``allowed`` pass."""
    allowed = set(allowed)
    for path in paths if isinstance(paths, list) else []:
        if not is_import_path(path):
            continue  # the config's own check refuses it
        module = _split(path)[0]
        parts = module.split(".")
        if parts[0] in _TRUSTED or module in sys.modules or any(
                ".".join(parts[:i]) in allowed for i in range(1, len(parts) + 1)):
            continue
        raise EnvError(f"the saved wrapper {path!r} would import the module {module!r}, which runs its code; if you "
                       f"trust it, pass --allow-import {module} (Python: allow_import=[{module!r}])")


def load_wrapper(path: str) -> Callable[[gym.Env], gym.Env]:
    """The wrapper class or function ``path`` names, imported and checked: a ``gym.Wrapper``
    subclass or a function, either called with the env alone."""
    if not is_import_path(path):
        raise EnvError(f"wrapper {path!r} is not an import path such as gymnasium.wrappers.FlattenObservation")
    module_name, attr = _split(path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise EnvError(f"cannot import the module {module_name!r} of wrapper {path!r} ({one_line(e)}); install it or "
                       "fix the path") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            wrappers = [n for n, v in vars(obj).items() if isinstance(v, type) and issubclass(v, gym.Wrapper)]
            raise EnvError(f"{path!r} names nothing: {getattr(obj, '__name__', module_name)!r} has no {part!r}."
                           + did_you_mean(part, wrappers))
        obj = getattr(obj, part)
    if (isinstance(obj, type) and not issubclass(obj, gym.Wrapper)) or not callable(obj):
        what = "a class but not a gymnasium.Wrapper" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise EnvError(f"{path!r} is {what}, so it cannot wrap an env; give a gymnasium.Wrapper subclass or a "
                       "function env -> env")
    try:
        inspect.signature(obj).bind(None)
    except TypeError as e:
        raise EnvError(f"wrapper {path!r} needs more than the env ({one_line(e)}); wrappers are called with the env "
                       "alone: write a subclass or a function env -> env that sets the rest") from None
    except ValueError:  # no signature to read: tried as it is
        pass
    return obj


def load_wrappers(paths: Iterable[str]) -> list[tuple[str, Callable[[gym.Env], gym.Env]]]:
    return [(path, load_wrapper(path)) for path in paths]


def apply_wrappers(env: gym.Env, wrappers: list[tuple[str, Callable[[gym.Env], gym.Env]]]) -> gym.Env:
    """``env`` inside each wrapper in order (the first is innermost)."""
    for path, wrap in wrappers:
        try:
            wrapped = wrap(env)
        except (TypeError, ValueError, KeyError, AttributeError, AssertionError, gym.error.Error) as e:
            env.close()
            raise EnvError(f"wrapper {path!r} cannot wrap this env ({type(e).__name__}: {one_line(e)}); check that it "
                           "fits the env's spaces and the order of wrappers") from None
        if not isinstance(wrapped, gym.Env):
            env.close()
            raise EnvError(f"wrapper {path!r} returned {type(wrapped).__name__}, not a gymnasium.Env")
        env = wrapped
    return env


def make_env_kwargs(config: Any) -> dict[str, Any]:
    """``make_env``'s keywords for the env a run's config trains on."""
    c = config
    return {**c.env_kwargs, "atari_wrappers": c.atari_wrappers, "pixels": c.pixels, "grayscale": c.grayscale,
            "frame_stack": c.frame_stack, "max_episode_steps": c.max_episode_steps, "wrappers": tuple(c.wrappers),
            "action_repeat": c.action_repeat}


def check_spaces(env: gym.Env, spaces: tuple[gym.Space, gym.Space]) -> None:
    """The env a function given to ``load(env=)`` makes, against the spaces the model was trained on."""
    made = (env.observation_space, env.action_space)
    env.close()
    if made != tuple(spaces):
        raise EnvError(f"the env function makes observations {made[0]} and actions {made[1]}, but the model was "
                       f"trained on {spaces[0]} and {spaces[1]}; pass the function it was trained with")
