"""Search spaces and the searches that draw candidates from them, for ``deeprl sweep``.

A space is one ``name=kind:arguments`` entry per setting::

    lr=loguniform:1e-4:3e-3     n_steps=choice:128,256,512     gamma=uniform:0.95:0.999
    batch_size=int:32:256       n_steps=logint:16:2048         net_arch=choice:[64,64],[256,256]

:func:`check_space` checks every entry against the setting's type before anything trains: an
integer setting takes ``int``/``logint`` ranges (a ``uniform`` one would draw fractions), a
true/false or named setting only ``choice``, and every choice is read as the setting's type
(``on``/``off`` stay words for ``atari_wrappers``, ``16.0`` is 16 for ``n_steps``).  ``seed`` and
``env`` are not searched: a sweep's seeds are ``--seeds``/``--first-seed``, its env ``--env``.

A search (:func:`make_search`: random, grid, or Optuna's TPE sampler) proposes candidates in a
fixed order: ``ask(index, recorded)`` takes again a candidate recorded before the sweep stopped
(random and grid draw it again and check it; Optuna reads it from its journal), ``tell(index,
objective)`` reports its judgement.
"""

from __future__ import annotations

import itertools
import json
import math
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from deeprl.errors import ConfigError

SEARCHES = ("random", "grid", "optuna")
KINDS = ("uniform", "loguniform", "int", "logint", "choice")
INTEGER_KINDS = ("int", "logint")
OPTUNA_FILE = "optuna.journal"
OPTUNA_STUDY = "deeprl-sweep"


@dataclass(frozen=True)
class Param:
    """One searched setting: ``kind`` with ``low``/``high`` (numbers) or ``choices`` (and the
    text each choice was written as, ``texts``)."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    texts: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "logint":  # uniform in log over the cells [k, k+1): each whole number as Optuna's log int
            k = int(math.floor(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))))
            return min(max(k, int(self.low)), int(self.high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def grid(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind in INTEGER_KINDS:
            return list(range(int(self.low), int(self.high) + 1))
        raise ConfigError(f"grid search needs a finite set of values, but {self.name} is {self.kind}; "
                          f"use {self.name}=choice:a,b,c or --search random/optuna")

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial suggests."""
        if self.kind == "choice":
            index = trial.suggest_categorical(self.name, list(range(len(self.choices))))
            return self.choices[index]
        if self.kind in INTEGER_KINDS:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.kind == "logint")
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")

    def distribution(self) -> Any:
        """The Optuna distribution :meth:`suggest` draws from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(range(len(self.choices))))
        if self.kind in INTEGER_KINDS:
            return IntDistribution(int(self.low), int(self.high), log=self.kind == "logint")
        return FloatDistribution(self.low, self.high, log=self.kind == "loguniform")

    def to_optuna(self, value: Any) -> Any:
        """A candidate's value as Optuna's trial holds it (a choice's index); ``None`` if it is not in the space."""
        if self.kind == "choice":
            jsonable = [jsonable_value(c) for c in self.choices]
            return jsonable.index(value) if value in jsonable else None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if number and self.low <= value <= self.high else None

    def from_optuna(self, value: Any) -> Any:
        if self.kind == "choice":
            return self.choices[value] if isinstance(value, int) and 0 <= value < len(self.choices) else None
        return value


def _split_top_level(text: str) -> list[str]:
    """``"[64,64],[256,256]"`` -> ``["[64,64]", "[256,256]"]``: commas inside brackets stay.  Unbalanced
    brackets are a ValueError."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if depth < 0:
            raise ValueError("a closing bracket without its opening one")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise ValueError("a bracket left open")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _choice(text: str) -> Any:
    """One choice as YAML reads it, except that numbers YAML 1.1 leaves as text (``1e-4``, with no
    decimal point) are numbers."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_space(items: list[str]) -> list[Param]:
    """``["lr=loguniform:1e-4:3e-3", "n_steps=choice:128,256"]`` -> parameters; malformed specs
    are a :class:`ConfigError` that names the entry and shows the form."""
    form = "write name=kind:args, e.g. lr=loguniform:1e-4:3e-3 or n_steps=choice:128,256 (kinds: " + \
        ", ".join(KINDS) + ")"
    params: list[Param] = []
    for item in items:
        name, sep, rest = item.partition("=")
        kind, sep2, args = rest.partition(":")
        name, kind = name.strip(), kind.strip()
        if not sep or not sep2 or not name or kind not in KINDS:
            raise ConfigError(f"cannot read the search space {item!r}; {form}")
        if any(p.name == name for p in params):
            raise ConfigError(f"{name} is searched twice in --space")
        if kind == "choice":
            try:
                texts = tuple(v for v in _split_top_level(args) if v)
            except ValueError as e:
                raise ConfigError(f"cannot read the choices of {item!r}: {e}; write lists in brackets, "
                                  f"e.g. net_arch=choice:[64,64],[256,256]") from None
            choices = []
            for text in texts:
                try:
                    choices.append(_choice(text))
                except yaml.YAMLError as e:
                    problem = getattr(e, "problem", None) or "not a value"
                    raise ConfigError(f"cannot read the choice {text!r} of {item!r} ({problem}); write values "
                                      "separated by commas, lists in brackets: net_arch=choice:[64,64],[256,256]"
                                      ) from None
            if not choices:
                raise ConfigError(f"{item!r} lists no choices; {form}")
            params.append(Param(name, kind, choices=tuple(choices), texts=texts))
            continue
        bounds = args.split(":")
        try:
            low, high = (float(b) for b in bounds)
        except ValueError:
            raise ConfigError(f"{item!r} needs two numbers, low:high; {form}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ConfigError(f"{item!r}: low must be below high")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{item!r}: loguniform needs low > 0")
        if kind in INTEGER_KINDS and (low != int(low) or high != int(high)):
            raise ConfigError(f"{item!r}: {kind} bounds must be whole numbers")
        if kind == "logint" and low < 1:
            raise ConfigError(f"{item!r}: logint needs low >= 1")
        params.append(Param(name, kind, low, high))
    if not params:
        raise ConfigError(f"--space names no setting to search; {form}")
    return params


# --------------------------------------------------------------------------------------------
# the searches


class RandomSearch:
    """Independent draws from each setting's distribution.  Where every setting is a choice or an
    integer the space is finite, and a draw equal to an earlier candidate is drawn again (up to
    ``REDRAWS`` times, then one of the points not drawn yet is picked with the same generator), so
    a sweep does not train one point twice until it has tried them all.  What is drawn depends
    only on the candidates before it, so a resumed sweep draws the same ones."""

    REDRAWS = 1000

    def __init__(self, params: list[Param], seed: int):
        self.params, self.rng = params, np.random.default_rng([seed, 0x5EE9])
        finite = all(p.kind == "choice" or p.kind in INTEGER_KINDS for p in params)
        self.size = math.prod(len(p.grid()) for p in params) if finite else None
        self.seen: set[str] = set()

    def _draw(self) -> tuple[dict[str, Any], str]:
        values = {p.name: p.sample(self.rng) for p in self.params}
        return values, _key(values)

    def ask(self, index: int, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        values, key = self._draw()
        # a sweep recorded before repeats were redrawn holds its repeat, drawn once: take it as it was
        if self.size is not None and key in self.seen and len(self.seen) < self.size \
                and (recorded is None or key != _key(recorded)):
            for _ in range(self.REDRAWS):
                values, key = self._draw()
                if key not in self.seen:
                    break
            else:  # a nearly full space: pick among the points not drawn yet
                unseen = [point for point in GridSearch(self.params, 0).points if _key(point) not in self.seen]
                values = unseen[int(self.rng.integers(len(unseen)))]
                key = _key(values)
        self.seen.add(key)
        return _same(recorded, values)

    def tell(self, index: int, value: float | None) -> None:
        pass


def _key(values: dict[str, Any]) -> str:
    return json.dumps(jsonable(values), sort_keys=True)


class GridSearch:
    def __init__(self, params: list[Param], seed: int):
        self.points = [dict(zip([p.name for p in params], values))
                       for values in itertools.product(*(p.grid() for p in params))]

    def __len__(self) -> int:
        return len(self.points)

    def ask(self, index: int, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        return _same(recorded, dict(self.points[index]))

    def tell(self, index: int, value: float | None) -> None:
        pass


def _same(recorded: dict[str, Any] | None, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` drawn again for a candidate recorded as ``recorded``: it must be the same one."""
    if recorded is not None and recorded != jsonable(values):
        raise ConfigError("the sweep holds candidates this search does not draw again (another deeprl version?); "
                          "start a new sweep")
    return values


class OptunaSearch:
    """Optuna's TPE sampler (seeded) through its ask-and-tell interface.  With ``storage`` (a path)
    the study lives in an Optuna journal file (JSON lines) there, so a resumed sweep goes on with
    the trials it holds, whatever its ``--workers``.  Each trial carries its candidate's index
    (user attribute ``candidate``); a candidate recorded in ``sweep.json`` that the study lacks (a
    sweep from before the journal) is added to it as it is judged."""

    def __init__(self, params: list[Param], seed: int, storage: str | Path | None = None):
        try:
            import optuna
        except ImportError:
            raise ConfigError("--search optuna needs Optuna; install it with: pip install -e \".[ray]\"") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.params = optuna, params
        journal = None
        if storage is not None:
            journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
        self.study = optuna.create_study(study_name=OPTUNA_STUDY, storage=journal, direction="maximize",
                                         load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed))
        trials = self.study.get_trials(deepcopy=False)
        if trials:  # a resumed study draws from a stream of its own: not its first candidates again
            session = int(np.random.SeedSequence([seed, len(trials)]).generate_state(1)[0])
            self.study.sampler = optuna.samplers.TPESampler(seed=session)
        self.trial_of: dict[int, Any] = {}   # candidate -> its (latest) trial in the study
        for t in trials:
            index = t.user_attrs.get("candidate")
            if isinstance(index, int):
                self.trial_of[index] = t
        self.open: dict[int, int] = {}          # candidate -> number of its running trial, told when judged
        self.missing: dict[int, dict[str, Any]] = {}  # recorded candidates the study lacks, added when judged

    def _values(self, trial: Any) -> dict[str, Any] | None:
        if set(trial.params) != {p.name for p in self.params}:
            return None
        values = {p.name: p.from_optuna(trial.params[p.name]) for p in self.params}
        return None if any(v is None for v in values.values()) else values

    def ask(self, index: int, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        running = self.optuna.trial.TrialState.RUNNING
        trial = self.trial_of.get(index)
        values = self._values(trial) if trial is not None else None
        if trial is not None and values is None and trial.state == running:
            self.study.tell(trial.number, state=self.optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if values is not None:  # asked before (the sweep may have stopped before recording it): the same candidate
            if recorded is not None and recorded != jsonable(values):
                raise ConfigError(f"the sweep's sweep.json and {OPTUNA_FILE} disagree on candidate {index}; "
                                  "start a new sweep")
            if trial.state == running:
                self.open[index] = trial.number
            return values
        if recorded is not None:
            self.missing[index] = recorded
            return dict(recorded)
        trial = self.study.ask()
        trial.set_user_attr("candidate", index)
        values = {p.name: p.suggest(trial) for p in self.params}
        self.open[index] = trial.number
        return values

    def tell(self, index: int, value: float | None) -> None:
        state = self.optuna.trial.TrialState
        if index in self.open:
            number = self.open.pop(index)
            if value is None:
                self.study.tell(number, state=state.FAIL, skip_if_finished=True)
            else:
                self.study.tell(number, value, skip_if_finished=True)
        elif index in self.missing:
            values = self.missing.pop(index)
            internal = {p.name: p.to_optuna(values.get(p.name)) for p in self.params}
            if any(v is None for v in internal.values()):
                raise ConfigError(f"candidate {index} of the sweep lies outside its search space; start a new sweep")
            self.study.add_trial(self.optuna.trial.create_trial(
                params=internal, distributions={p.name: p.distribution() for p in self.params},
                value=value, state=state.FAIL if value is None else state.COMPLETE,
                user_attrs={"candidate": index}))


def make_search(kind: str, params: list[Param], seed: int, out: str | Path | None = None) -> Any:
    """The search ``kind`` over ``params``; with ``out`` (the sweep's folder) Optuna keeps its study there."""
    if kind not in SEARCHES:
        raise ConfigError(f"unknown search {kind!r}; use one of {', '.join(SEARCHES)}")
    if kind == "optuna":
        return OptunaSearch(params, seed, None if out is None else Path(out) / OPTUNA_FILE)
    return {"random": RandomSearch, "grid": GridSearch}[kind](params, seed)


def _integer_form(p: Param) -> str:
    """The ``int``/``logint`` entry that searches an integer setting over ``p``'s range."""
    low, high = math.ceil(p.low), math.floor(p.high)
    kind = "logint" if p.kind == "loguniform" else "int"
    return f"{p.name}={kind}:{max(low, 1) if kind == 'logint' else low}:{high}"


def _fit_to_type(p: Param, tp: Any, build: Any) -> Param:
    """``p`` checked against its setting's type ``tp``: a range only for a number setting (an
    integer one only from ``int``/``logint``), every choice read as the type (from its YAML value,
    else from its text: ``on`` is a word for a named setting).  ``build(value)`` builds a config
    with the value, or raises."""
    origin = typing.get_origin(tp)
    if p.kind != "choice":
        if tp is int and p.kind not in INTEGER_KINDS:
            raise ConfigError(f"--space {p.name}: {p.name} is an integer setting, but {p.kind} draws fractions; "
                              f"write {_integer_form(p)}")
        if tp is bool:
            raise ConfigError(f"--space {p.name}: {p.name} is true or false, not a number range; write "
                              f"{p.name}=choice:true,false")
        if origin is typing.Literal:
            names = [str(a) for a in typing.get_args(tp)]
            raise ConfigError(f"--space {p.name}: {p.name} is one of {', '.join(names)}, not a number range; write "
                              f"{p.name}=choice:{','.join(names)}")
        if origin is list:
            raise ConfigError(f"--space {p.name}: {p.name} is a list, not a number range; write "
                              f"{p.name}=choice:[64,64],[256,256]")
        if tp not in (int, float):
            raise ConfigError(f"--space {p.name}: {p.name} is text, not a number range; write {p.name}=choice:a,b")
        return p
    choices = []
    for value, text in zip(p.choices, p.texts or [str(c) for c in p.choices]):
        try:
            config = build(value)
        except ConfigError as e:
            try:
                config = build(text)
            except ConfigError:
                raise ConfigError(f"--space {p.name}: the choice {text!r} does not fit: {e}") from None
        choices.append(getattr(config, p.name))
    return replace(p, choices=tuple(choices))


def check_space(params: list[Param], config_cls: type, fixed: set[str], build: Callable[..., Any]) -> list[Param]:
    """``params`` checked against the settings of ``config_cls`` (names, and types: a range fits an
    integer setting only as int or logint, every choice is read as its setting's type; values at
    both ends of every range), none of them ``seed``, ``env`` or one of the ``fixed`` settings.
    ``build(layer)`` builds the sweep's config with ``layer`` over it, or raises.  Returns the space
    with its choices typed."""
    hints = typing.get_type_hints(config_cls)
    typed = []
    for p in params:
        if p.name == "seed":
            raise ConfigError("--space seed: a sweep's seeds come from --seeds and --first-seed (every candidate "
                              "runs each of them); drop seed from --space")
        if p.name == "env":
            raise ConfigError("--space env: a sweep searches settings on one env, its --env; run a sweep per env")
        if p.name in fixed:
            raise ConfigError(f"{p.name} is both searched (--space) and fixed (--set/--steps); drop one")

        def build_with(value: Any, name: str = p.name) -> Any:
            return build({name: value})

        if p.name not in hints:  # build_config names the closest setting
            try:
                build_with(None)
            except ConfigError as e:
                raise ConfigError(f"--space {p.name}: {e}") from None
        p = _fit_to_type(p, hints[p.name], build_with)
        if p.kind != "choice":
            for value in (p.low, p.high):
                try:
                    build_with(int(value) if p.kind in INTEGER_KINDS else value)
                except ConfigError as e:
                    raise ConfigError(f"--space {p.name}: {e}") from None
        typed.append(p)
    return typed


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: jsonable_value(v) for k, v in values.items()}


def jsonable_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
