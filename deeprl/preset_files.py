"""The shipped presets (``presets/<algo>.yaml``) and the lecture's ladders (``presets/ladders.yaml``),
read: a named preset's settings, an env's tuned preset, a ladder's rungs (each a named preset
``ladder/<rung>``, the previous rung's settings with one trick added).  Plain data: it imports no
algorithm, so the config machinery and the ladder's bench can both use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from deeprl.errors import ConfigError, did_you_mean

def _preset_file(algo: str) -> dict[str, dict[str, Any]]:
    try:
        text = resources.files("deeprl.presets").joinpath(f"{algo}.yaml").read_text()
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) or {}
    return data


def list_presets(algos: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{algo: {preset_name: settings}}`` for every shipped preset (of ``algos``, in that order)."""
    if algos is None:
        algos = sorted(p.name[:-5] for p in resources.files("deeprl.presets").iterdir()
                       if p.name.endswith(".yaml") and p.name != LADDERS)
    return {algo: _preset_file(algo) for algo in algos}


def _settings(preset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in preset.items() if k not in ("description", "results")}


def preset_for(algo: str, name: str) -> dict[str, Any]:
    """The settings of a named preset (a tuned env preset such as 'CartPole-v1', 'lecture-v1', or a
    ladder's rung such as 'ladder/replay')."""
    if name.startswith(PREFIX):
        return rung_preset(algo, name[len(PREFIX):])
    presets = _preset_file(algo)
    if name not in presets:
        raise ConfigError(f"no preset {name!r} for {algo}." + did_you_mean(name, presets)
                          + " Run 'deeprl presets' to list them.")
    return _settings(presets[name])


def default_preset(algo: str, env_id: str) -> dict[str, Any]:
    """The tuned preset named after ``env_id`` if one ships, else nothing."""
    presets = _preset_file(algo)
    return _settings(presets.get(env_id, {}))


PREFIX = "ladder/"
LADDERS = "ladders.yaml"  # the ladders' file among the algorithms' preset files


@dataclass(frozen=True)
class Rung:
    """One rung: ``algo`` with ``settings`` (cumulative, the ladder's shared ones included)."""

    ladder: str
    name: str
    algo: str
    adds: str
    settings: dict[str, Any] = field(default_factory=dict)


def _ladder_file() -> dict[str, Any]:
    return yaml.safe_load(resources.files("deeprl.presets").joinpath(LADDERS).read_text()) or {}


def ladder_names() -> list[str]:
    return list(_ladder_file())


def ladder(name: str) -> list[Rung]:
    """The rungs of ladder ``name``, in order, each with its cumulative settings."""
    data = _ladder_file()
    if name not in data:
        raise ConfigError(f"no ladder {name!r}." + did_you_mean(name, data) + f" Ladders: {', '.join(data)}")
    shared = dict(data[name].get("settings") or {})
    rungs: list[Rung] = []
    algo, settings = None, {}
    for spec in data[name]["rungs"]:
        algo = spec.get("algo", algo)
        if "preset" in spec:
            settings = preset_for(algo, spec["preset"])
        settings = {**settings, **(spec.get("set") or {})}
        rungs.append(Rung(name, spec["name"], algo, spec["adds"], {**settings, **shared}))
    return rungs


def all_rungs() -> list[Rung]:
    return [r for name in ladder_names() for r in ladder(name)]


def rung_preset(algo: str, name: str) -> dict[str, Any]:
    """The settings of the preset ``ladder/<name>`` for ``algo`` (what ``preset_for`` returns)."""
    rungs = {r.name: r for r in all_rungs()}
    if name not in rungs:
        raise ConfigError(f"no ladder rung {name!r}." + did_you_mean(name, rungs)
                          + f" Rungs: {', '.join(rungs)}")
    rung = rungs[name]
    if rung.algo != algo:
        raise ConfigError(f"ladder rung {name!r} trains {rung.algo}, not {algo}: "
                          f"deeprl train {rung.algo} --preset {PREFIX}{name}")
    return dict(rung.settings)


def select(rungs: list[Rung], names: list[str] | None) -> list[Rung]:
    """The rungs named in ``names`` (all of them for none), in ladder order."""
    if not names:
        return rungs
    known = [r.name for r in rungs]
    for n in names:
        if n not in known:
            raise ConfigError(f"--ladder: no rung {n!r} in ladder {rungs[0].ladder!r}." + did_you_mean(n, known)
                              + f" Rungs: {' '.join(known)}")
    return [r for r in rungs if r.name in names]
