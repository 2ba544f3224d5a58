"""Configuration: the machinery every algorithm's config uses, the shared settings, presets.

Each algorithm's config is a frozen, keyword-only dataclass beside the algorithm
(``agents/dqn.py::DQNConfig``, ``agents/pg.py::PGConfig`` and its subclasses, ...), a subclass of
:class:`RunConfig` that inherits the shared settings and changes only their defaults; its own
rules between settings are its ``check_settings``.  Every setting is a :func:`setting` field
whose ``help`` metadata is the documentation.
Values arrive as Python objects (``DQN(env, lr=1e-3)``), YAML presets or ``--set key=value``
strings; all three pass through :func:`build_config`, which rejects unknown keys (naming the
closest valid one), wrong types and out-of-range values with a :class:`ConfigError`.  A config
class built directly (``DQNConfig(num_envs=4)``, ``dataclasses.replace``) is checked the same way.

Every integer setting has a lower and an upper bound that its use implies (the ``MAX_*``
constants below): a value outside them is refused in one line that names the setting, the value
and the allowed range, before anything is allocated.  Integers are parsed as integers, never
through ``float``: ``"9007199254740993"`` is that integer exactly.  A decimal or exponent form
(``"1e5"``, ``"2.5e3"``, ``"100.0"``) is accepted where it is exactly an integer (it is read
with :mod:`decimal`, so it is exact however large); a Python or YAML float is accepted only up to
2**53, beyond which a float cannot tell neighbouring integers apart.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import json
import math
import numbers
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from deeprl.errors import ConfigError, did_you_mean
from deeprl.preset_files import default_preset, list_presets, preset_for  # noqa: F401  (list_presets: the API cli uses)

# The bounds of the integer settings, from how each is used.
MAX_SEED = 2**63 - 1        # PCG64 takes any size, torch.manual_seed up to 2**64 - 1: int64 is common ground
MAX_STEPS = 2**62 - 1       # step counts and intervals: what a checkpoint's state.json is read back with
MAX_ENVS = 4096             # parallel envs: each is a live env object (a subprocess's share with async)
MAX_THREADS = 1024          # torch.set_num_threads / BLAS threads
MIN_PIXELS = 3              # the smallest image the CNN torsos take: GridCNN's unpadded 3x3 convolution
MAX_PIXELS = 256            # the Nature CNN's flattened output grows with the square of the side (25M weights at 256)
MAX_ACTION_REPEAT = 1_000   # env steps one decision is held for
MAX_FRAME_STACK = 64        # stacked frames: channels of every stored observation
MAX_EPISODES = 10_000       # episodes per evaluation or per policy-gradient batch
MAX_BUFFER = 10**9          # replay rows: a buffer asks for rows x observation bytes when the agent is built
MAX_BATCH = 65_536          # samples per gradient step, dream starts
MAX_ROLLOUT = 2**22         # steps of one policy-gradient rollout, n_steps x num_envs (held in memory at once)
MAX_REPEATS = 100_000       # gradient steps, epochs or dreams per phase of the training loop
MAX_HORIZON = 1_000         # n-step returns, dream length
MAX_SEQUENCE = 10_000       # Dreamer's replayed sequence length
MAX_DREAM_STATES = 2**20    # Dreamer: states per world-model batch (batch_size x batch_length) and imagined per update
MAX_WIDTH = 65_536          # a layer's units, a latent's size
MAX_DEPTH = 64              # hidden layers of an MLP
MAX_WEIGHTS = 2**27         # weights between the layers the settings size (512 MiB in float32, before Adam's copies)
MAX_FLOAT_INT = 2**53       # the largest float that still tells every integer from its neighbours


LAYERS = {"item_min": 1, "item_max": MAX_WIDTH, "max_len": MAX_DEPTH}  # bounds of a list of layer widths


# make_env's own keywords: an env keyword of the same name is refused (env_kwargs)
RESERVED_ENV_KWARGS = frozenset({"render_mode", "max_episode_steps", "disable_env_checker", "atari_wrappers", "check",
                                 "pixels", "grayscale", "frame_stack", "episode_limit", "wrappers",
                                 "action_repeat"})
# a wrapper's import path: package.module.Name or package.module:Name
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*[.:][A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def setting(default: Any, help: str, **kw: Any) -> Any:
    """A config field: its default, its help text (``--help-config``) and its bounds (``min``,
    ``max``, ``exclusive_min``, ``min_on``; for lists of layer widths ``LAYERS``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Settings every algorithm shares: the environment, the budget, logging and checkpoints."""

    env: str = setting("CartPole-v1", "Gymnasium id, including 'module:Env-v0' ids and ALE/ Atari ids")
    env_kwargs: dict[str, Any] = setting({}, "keyword arguments of gymnasium.make for the env, e.g. "
                                             "{is_slippery: false, map_name: 8x8} (--env-kwargs KEY=VALUE ...)")
    wrappers: list[str] = setting([], "Gymnasium wrappers for every env made (training, evaluation, videos), in order, "
                                      "by import path (gymnasium.wrappers.FlattenObservation, module:Name); each is "
                                      "called with the env alone, no keywords (--wrappers A B ...)")
    seed: int = setting(0, "seed for networks, exploration and environment resets", min=0, max=MAX_SEED)
    total_steps: int = setting(50_000, "environment steps to train for (summed over parallel envs)", min=1, max=MAX_STEPS)
    num_envs: int = setting(1, "parallel environments", min=1, max=MAX_ENVS)
    vectorization: Literal["sync", "async"] = setting("sync", "step envs in this process or in subprocesses")
    atari_wrappers: Literal["auto", "on", "off"] = setting(
        "auto", "standard Atari preprocessing; 'auto' turns it on for ALE ids")
    pixels: int = setting(0, "observe the env's rgb_array render resized to N x N pixels instead (0 = off)",
                          min=0, max=MAX_PIXELS, min_on=MIN_PIXELS)
    grayscale: bool = setting(False, "pixel observations in grey instead of RGB (with pixels > 0)")
    frame_stack: int = setting(1, "stack this many pixel frames along the channels (with pixels > 0)",
                               min=1, max=MAX_FRAME_STACK)
    action_repeat: int = setting(1, "hold each action for this many env steps and sum their rewards (DMC is run with "
                                    "2); total_steps and every step count are the agent's decisions, the env's time "
                                    "limit stays in env steps", min=1, max=MAX_ACTION_REPEAT)
    max_episode_steps: int = setting(0, "truncate episodes after this many steps (0 = the env's own limit, or 100,000 "
                                   "for an env registered without one, so that every episode ends)",
                                   min=0, max=MAX_STEPS)
    device: str = setting("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    torch_threads: int = setting(0, "CPU threads for torch and NumPy's BLAS; 0 picks 1 for vector observations, half the cores (at most 4) for images",
                                 min=0, max=MAX_THREADS)
    eval_freq: int = setting(10_000, "evaluate every this many env steps (0 = never during training; a run directory still gets a final evaluation)",
                             min=0, max=MAX_STEPS)
    eval_episodes: int = setting(10, "episodes per evaluation", min=1, max=MAX_EPISODES)
    checkpoint_freq: int = setting(25_000, "write a checkpoint every this many env steps (0 = only at the end)",
                                   min=0, max=MAX_STEPS)
    checkpoint_minutes: float = setting(10.0, "also write a checkpoint once this many minutes of training passed "
                                        "since the last one, so a killed run loses at most that (0 = by steps only)",
                                        min=0, max=10_000)
    log_interval: int = setting(1_000, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)

    def __post_init__(self) -> None:  # a config built directly is checked as build_config checks one
        _validate(self)

    def check_settings(self) -> None:
        """Raise a ConfigError where settings contradict each other (an algorithm's config adds
        its rules); every setting alone is already typed and within its bounds."""
        taken = sorted(set(self.env_kwargs) & RESERVED_ENV_KWARGS)
        if taken:
            raise ConfigError(f"env_kwargs {', '.join(taken)} are set by deeprl itself; use the settings "
                              "max_episode_steps, pixels, atari_wrappers (and render_mode only for videos)")
        bad = [w for w in self.wrappers if not IMPORT_PATH.fullmatch(w)]
        if bad:
            raise ConfigError(f"wrappers takes import paths such as gymnasium.wrappers.FlattenObservation or "
                              f"module:Name, got {_show(bad[0])}")

    def network_weights(self) -> tuple[int, str]:
        """About how many weights the networks' layers sized by the settings alone hold (those
        that also depend on the env's observation and action sizes left out), and those settings."""
        return 0, ""


# --------------------------------------------------------------------------------------------
# building and validating


def field_names(cls: type[RunConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {typing.get_args(tp)[0].__name__}"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    """A value for a one-line error message: an integer too long to print is given by its size,
    a long text or list is cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_show(v) for v in value[:8])
        return f"[{items}{', ...' if len(value) > 8 else ''}]"
    text = repr(value) if isinstance(value, str) else " ".join(str(value).split())
    return text if len(text) <= 80 else text[:70] + "..." + text[-1]


def show_bound(n: int | float) -> str:
    if isinstance(n, int) and n >= 2**20 and (n + 1) & n == 0:  # 2**k - 1
        return f"{n} (2**{(n + 1).bit_length() - 1} - 1)"
    if isinstance(n, int) and n >= 2**20 and n & (n - 1) == 0:
        return f"{n} (2**{n.bit_length() - 1})"
    return str(n)


class _TooLong(ValueError):
    """An integer written with more digits than any setting's bound has."""


def parse_int(text: str) -> int:
    """The integer ``text`` writes, exactly: ``"9007199254740993"``, ``"-1"``, ``"20_000"``; and
    decimal or exponent forms that are exactly an integer (``"1e5"``, ``"2.5e3"``, ``"100.0"``),
    read with :mod:`decimal`, never through ``float``.  ValueError for anything else (``"32.5"``,
    ``"nan"``, ``"0x10"``, ``"lots"``) and for a number of more than 100 digits (no bound has that many)."""
    text = text.strip()
    try:
        return int(text, 10)
    except ValueError:
        pass
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"not an integer: {text!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"not an integer: {text!r}")
    if number != 0 and number.adjusted() >= 100:  # 1e1000000000 would take minutes to write out
        raise _TooLong(f"more than 100 digits: {text!r}")
    return int(number)


def _coerce(name: str, tp: Any, value: Any, f: dataclasses.Field | None = None) -> Any:
    """Turn ``value`` (a Python object or a command-line string) into type ``tp`` or raise."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"setting {name!r} expects {_type_name(tp)}, got {_show(value)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"setting {name!r} must be one of {', '.join(map(repr, choices))}, got {_show(value)}"
                              + did_you_mean(str(value), [str(c) for c in choices]))
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            value = [v for v in text.replace(",", " ").split()] if text else []
        if not isinstance(value, (list, tuple)):
            raise bad
        max_len = f.metadata.get("max_len") if f is not None else None
        if max_len is not None and len(value) > max_len:  # before reading a million items
            raise ConfigError(f"setting {name!r} has {len(value)} layers, at most {max_len} are allowed")
        return [_coerce(name, item, v, f) for v in value]
    if origin is dict:  # keyword arguments (env_kwargs): names to JSON values, so config.json keeps them exactly
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError:
                raise bad from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
            raise bad
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name!r} takes plain values (numbers, text, true/false, lists), got "
                              f"{_show(value)}") from None
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise AssertionError("optional settings are not used; encode 'off' as 0")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, numbers.Integral):  # int, and NumPy's integers
            return int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            if abs(value) > MAX_FLOAT_INT:
                raise ConfigError(f"setting {name!r} expects int, got the float {value!r}: beyond 2**53 a float "
                                  "is not exact; write the integer itself")
            return int(value)
        if isinstance(value, str):
            try:
                return parse_int(value)
            except _TooLong:
                allowed = _range_text(f) if f is not None else "an integer of at most 100 digits"
                raise ConfigError(f"setting {name!r} must be {allowed}, got {_show(value.strip())}") from None
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, numbers.Real):
            try:
                return float(value)
            except OverflowError:  # an int beyond 1.8e308
                raise ConfigError(f"setting {name!r} must be a finite number, got {_show(value)}") from None
        if isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise AssertionError(f"unsupported config type {tp}")


def _range_text(f: dataclasses.Field) -> str:
    """The allowed values of an integer setting, e.g. ``>= 1 and <= 4096``, ``0 (off) or >= 3 and <= 256``."""
    lo, hi = f.metadata.get("min", f.metadata.get("item_min")), f.metadata.get("max", f.metadata.get("item_max"))
    parts = ([f">= {f.metadata.get('min_on', lo)}"] if lo is not None else []) + \
        ([f"<= {show_bound(hi)}"] if hi is not None else [])
    return ("0 (off) or " if f.metadata.get("min_on") is not None else "") + " and ".join(parts)


def _check_range(f: dataclasses.Field, value: Any) -> None:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, int):
        on = f.metadata.get("min_on")
        if (lo is not None and value < lo) or (hi is not None and value > hi) or (on is not None and 0 < value < on):
            raise ConfigError(f"setting {f.name!r} must be {_range_text(f)}, got {_show(value)}")
        return
    if lo is not None:
        if f.metadata.get("exclusive_min") and value <= lo:
            raise ConfigError(f"setting {f.name!r} must be > {lo}, got {value}")
        if value < lo:
            raise ConfigError(f"setting {f.name!r} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"setting {f.name!r} must be <= {hi}, got {value}")


def _check_items(f: dataclasses.Field, value: list[int]) -> None:
    lo, hi, max_len = f.metadata.get("item_min"), f.metadata.get("item_max"), f.metadata.get("max_len")
    if max_len is not None and len(value) > max_len:
        raise ConfigError(f"setting {f.name!r} has {len(value)} layers, at most {max_len} are allowed")
    for item in value:
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            raise ConfigError(f"setting {f.name!r} needs layer sizes >= {lo} and <= {hi}, got {_show(item)} "
                              f"in {_show(value)}")


def _check_value(f: dataclasses.Field, tp: Any, value: Any) -> Any:
    """``value`` coerced to the setting's type and checked against its bounds, or a ConfigError."""
    value = _coerce(f.name, tp, value, f)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"setting {f.name!r} must be a finite number, got {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(f, value)
    if isinstance(value, list):
        _check_items(f, value)
    return value


@functools.cache
def _schema(cls: type[RunConfig]) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)


# Stable-Baselines3's names for settings deeprl names otherwise (the rest are the same, e.g.
# ent_coef, vf_coef, gae_lambda, n_epochs, clip_range, buffer_size): named in the error, not taken
# silently, since the meanings differ in details (PPO's batch_size is deeprl's minibatch_size).
SB3_NAMES = {"learning_rate": "lr", "n_envs": "num_envs", "total_timesteps": "total_steps",
             "exploration_initial_eps": "eps_start", "exploration_final_eps": "eps_end",
             "exploration_fraction": "eps_fraction", "batch_size": "minibatch_size", "policy_kwargs": "net_arch"}


def build_config(cls: type[RunConfig], *layers: dict[str, Any]) -> RunConfig:
    """Defaults, then each layer of overrides in order (preset, file, command line, keywords)."""
    fields, hints = _schema(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            if key not in fields:
                ours = SB3_NAMES.get(key)
                hint = (f" It is Stable-Baselines3's name; deeprl's is {ours!r}." if ours in fields
                        else did_you_mean(key, fields))
                raise ConfigError(f"unknown setting {key!r} for {cls.__name__}." + hint
                                  + " Run 'deeprl train ALGO --help-config' to list the settings.")
            values[key] = _check_value(fields[key], hints[key], raw)
    return cls(**values)  # __post_init__ checks the whole config (_validate)


def _validate(config: RunConfig) -> None:
    """Every setting of a config being constructed: typed (coerced in place, as build_config
    would), within its bounds, and consistent with the others."""
    fields, hints = _schema(type(config))
    for name, f in fields.items():
        value = getattr(config, name)
        checked = _check_value(f, hints[name], value)
        if checked is not value:
            object.__setattr__(config, name, checked)  # frozen: the one place that may
    _check_consistency(config)


def layer_weights(widths: list[int]) -> int:
    """Weights of the linear maps between consecutive layers of these widths."""
    return sum(a * b for a, b in zip(widths, widths[1:]))


def _check_consistency(config: RunConfig) -> None:
    if not config.env.strip():
        raise ConfigError("setting 'env' is empty; give a Gymnasium id such as CartPole-v1")
    weights, sizes = config.network_weights()
    if weights > MAX_WEIGHTS:
        raise ConfigError(f"{sizes} make networks of about {weights:,} weights; at most {show_bound(MAX_WEIGHTS)} "
                          "are allowed: make the layers smaller")
    config.check_settings()


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(cls: type[RunConfig], text: str) -> RunConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError("config JSON must be an object")
    return build_config(cls, data)


def describe(cls: type[RunConfig]) -> str:
    """A table of every setting: name, type, default, help and an integer's bounds (for --help-config)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        bounds = f" [{_range_text(f)}]" if hints[f.name] is int else ""
        if hints[f.name] == list[int]:
            bounds = f" [each {_range_text(f)}; at most {f.metadata['max_len']} layers]"
        lines.append(f"  {f.name:<24} {_type_name(hints[f.name]):<22} {default!r:<14} {f.metadata['help']}{bounds}")
    return "\n".join(lines)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["lr=5e-4", "double_q=false"]`` -> ``{"lr": "5e-4", "double_q": "false"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r} (example: --set lr=5e-4)")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------
# presets


def resolve_config(cls: type[RunConfig], algo: str, env: str, *, preset: str | None = "auto",
                   overrides: Iterable[dict[str, Any]] = ()) -> RunConfig:
    """The one way a run's settings are layered, for the API, the command line, bench and sweep:
    the preset (``"auto"``: the tuned one named after ``env`` if it ships; a name: that one;
    ``None``: none), then each override in order, then ``env`` itself."""
    if preset == "auto":
        base = default_preset(algo, env)
    else:
        base = preset_for(algo, preset) if preset is not None else {}
    return build_config(cls, base, *overrides, {"env": env})
