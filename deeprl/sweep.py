"""``deeprl sweep``: search an algorithm's settings, every candidate judged over several seeds.

A sweep draws *candidates* (one value per searched setting) by random search, grid search or
Optuna's TPE sampler, trains each candidate on every seed with the trial runner that ``deeprl
bench`` uses (:mod:`deeprl.runner`: ordinary run directories, one torch thread each, on a local
Ray cluster, an existing one, or worker processes), and scores it by the mean *final* evaluation
of its seeds (as rl-baselines3-zoo#204 asks: one lucky seed does not win).

Everything the sweep knows is in ``<out>/sweep.json``, written atomically as candidates are drawn
and finished, so ``deeprl sweep --resume OUT`` continues a stopped or killed sweep, with any
``--workers``: the recorded candidates are taken again (random and grid search draw them again
from their seed; Optuna's study lives in an Optuna journal, ``<out>/optuna.journal``, and goes on
from the trials it holds), finished runs are read back and stopped runs resume from their last
checkpoint.  The sweep's own state is JSON, and so is Optuna's journal; nothing is unpickled.
One process at a time runs a sweep folder (a lock on ``<out>/sweep.lock``); a run that another
process is training (say, ``deeprl train --resume`` on one of its run directories) leaves its
candidate unjudged ("being resumed by another process"), for a later ``--resume`` to finish.

With ``scheduler="asha"`` (asynchronous successive halving, Li et al. 2020) a candidate is
judged at *rungs* along its run, ``min_steps · eta^k`` env steps, and only the best 1/``eta`` of
the candidates at a rung train on to the next one; the rest stop there.  It is sound here
because a run paused at a rung continues exactly as if it had not paused (its schedules keep
the planned length, :meth:`~deeprl.agents.base.Algorithm.learn`'s ``pause_at``), so a candidate
that reaches the last rung has the very finals a plain sweep would give it.  Judging early
favours settings that learn fast: keep the first rung late enough to mean something.

Search spaces, one ``name=kind:arguments`` per setting::

    lr=loguniform:1e-4:3e-3     n_steps=choice:128,256,512     gamma=uniform:0.95:0.999
    batch_size=int:32:256       n_steps=logint:16:2048         net_arch=choice:[64,64],[256,256]

Every entry is checked against the setting's type before anything trains: an integer setting
takes ``int``/``logint`` ranges (a ``uniform`` one would draw fractions), a true/false or named
setting only ``choice``, and every choice is read as the setting's type (``on``/``off`` stay
words for ``atari_wrappers``, ``16.0`` is 16 for ``n_steps``).  ``seed`` and ``env`` are not
searched: the seeds are ``--seeds``/``--first-seed``, the env ``--env``.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from deeprl.checkpoint import atomic_write_json, read_json
from deeprl.errors import ConfigError
from deeprl.runner import Trial, TrialPool, resolve_workers, run_trials

SEARCHES = ("random", "grid", "optuna")
SCHEDULERS = ("none", "asha")
KINDS = ("uniform", "loguniform", "int", "logint", "choice")
INTEGER_KINDS = ("int", "logint")
STATE_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"
OPTUNA_FILE = "optuna.journal"
OPTUNA_STUDY = "deeprl-sweep"
BUSY = "being resumed by another process"  # a candidate whose run another process holds: judged on a later --resume


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
            jsonable = [_jsonable_value(c) for c in self.choices]
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
# searches: each proposes candidates in a fixed order; ask(index, recorded) takes a candidate
# recorded before the sweep stopped again (random and grid draw it again and check it)


class _Random:
    def __init__(self, params: list[Param], seed: int):
        self.params, self.rng = params, np.random.default_rng([seed, 0x5EE9])

    def ask(self, index: int, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        return _same(recorded, {p.name: p.sample(self.rng) for p in self.params})

    def tell(self, index: int, value: float | None) -> None:
        pass


class _Grid:
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
    if recorded is not None and recorded != _jsonable(values):
        raise ConfigError("the sweep holds candidates this search does not draw again (another deeprl version?); "
                          "start a new sweep")
    return values


class _Optuna:
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
            if recorded is not None and recorded != _jsonable(values):
                raise ConfigError(f"the sweep's {STATE_FILE} and {OPTUNA_FILE} disagree on candidate {index}; "
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
        return _Optuna(params, seed, None if out is None else Path(out) / OPTUNA_FILE)
    return {"random": _Random, "grid": _Grid}[kind](params, seed)


# --------------------------------------------------------------------------------------------
# the sweep


def sweep(algo: str, env: str, space: list[str], out: str | Path, *, trials: int = 16, seeds: int = 3,
          first_seed: int = 0, search: str = "random", steps: int | None = None,
          settings: dict[str, Any] | None = None, workers: int = 0, eval_episodes: int = 20,
          backend: str = "ray", address: str | None = None, search_seed: int = 0, quiet: bool = False,
          command: str | None = None, scheduler: str = "none", min_steps: int | None = None,
          eta: int = 3) -> dict[str, Any]:
    """Run a new sweep into ``out`` (see the module docstring); returns the ranked results.

    A grid search runs its whole grid: a grid of more points than ``trials`` is refused, never cut.
    ``scheduler="asha"`` stops weak candidates early: rungs at ``min_steps · eta^k`` env steps
    (default ``min_steps``: the run's length / eta², so three rungs)."""
    out = Path(out)
    if (out / STATE_FILE).exists():
        raise ConfigError(f"{str(out)!r} already holds a sweep; continue it with 'deeprl sweep --resume {out}' "
                          "or choose another --out")
    _check_fixed(settings or {})
    spec = {"algo": algo, "env": env, "space": list(space), "trials": trials, "seeds": seeds,
            "first_seed": first_seed, "search": search, "steps": steps, "settings": _typed(algo, settings or {}),
            "eval_episodes": eval_episodes, "search_seed": search_seed, "command": command}
    if scheduler != "none":
        spec.update(scheduler=scheduler, min_steps=min_steps, eta=eta)
    params = _check(spec)
    if search == "grid":
        points = len(_Grid(params, 0))
        if points > trials:
            raise ConfigError(f"the grid holds {points} points, more than --trials {trials}, and a grid is run "
                              f"whole, never cut: give --trials {points}, or search fewer values")
        plan = f"grid search, all {points} points (a grid is run whole, never cut to --trials)"
    else:
        plan = f"{search} search, {trials} candidates"
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        if (out / STATE_FILE).exists():  # another process started a sweep here meanwhile
            raise ConfigError(f"{str(out)!r} already holds a sweep; continue it with 'deeprl sweep --resume {out}' "
                              "or choose another --out")
        if not quiet:
            print(f"sweep: {algo} on {env}, {plan} x {seeds} seeds -> {out}", file=sys.stderr)
        state = {"spec": spec, "candidates": []}
        atomic_write_json(out / STATE_FILE, state)
        return _run(out, state, params, workers=workers, backend=backend, address=address, quiet=quiet)


def resume_sweep(out: str | Path, *, workers: int = 0, backend: str = "ray", address: str | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Continue the sweep in ``out``, with any number of ``workers``: the recorded candidates are
    taken again (Optuna's from its study in ``out``), finished runs are read back, stopped runs
    resume, and the search goes on from there."""
    out = Path(out)
    _read_state(out)
    with _locked(out):
        state = _read_state(out)  # as the last process to hold the lock left it
        params = _check(state["spec"])
        return _run(out, state, params, workers=workers, backend=backend, address=address, quiet=quiet)


def _read_state(out: Path) -> dict[str, Any]:
    state = read_json(out / STATE_FILE, "sweep state")
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict) \
            or not isinstance(state.get("candidates"), list):
        raise ConfigError(f"{str(out / STATE_FILE)!r} is not a deeprl sweep state")
    return state


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the sweep folder's lock: a second process that runs or resumes the same sweep is
    refused at once instead of training the same runs beside this one."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    fh = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ConfigError(f"sweep {str(out)!r} is being run by another process; wait for it to finish or stop it "
                          "first") from None
    try:
        yield
    finally:
        fh.close()  # closing the file releases the lock


def _check_fixed(settings: dict[str, Any]) -> None:
    """Fixed settings a sweep cannot honour: its seeds and its env are its own arguments."""
    if "seed" in settings:
        raise ConfigError("--set seed: a sweep's seeds come from --seeds and --first-seed (every candidate runs "
                          "each of them); drop seed from --set")
    if "env" in settings:
        raise ConfigError("--set env: a sweep's env is --env; drop env from --set")


def _typed(algo: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``--set`` strings as the config types them (``"2"`` -> 2), for sweep.json and the preset block."""
    from deeprl.agents import algorithm
    from deeprl.config import build_config, config_to_dict

    typed = config_to_dict(build_config(algorithm(algo).config_cls, settings))
    return {k: typed[k] for k in settings}


def _fixed(spec: dict[str, Any]) -> dict[str, Any]:
    fixed = dict(spec["settings"])
    if spec["steps"] is not None:
        fixed["total_steps"] = spec["steps"]
    return fixed


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


def _check(spec: dict[str, Any]) -> list[Param]:
    """Every problem a sweep can know of before it trains: the algorithm, the space's settings
    (names, and types: a range fits an integer setting only as int or logint, every choice is
    read as its setting's type; values at both ends of every range), the env and its spaces.
    Returns the space with its choices typed."""
    from deeprl.agents import algorithm
    from deeprl.config import build_config, default_preset

    algo = spec["algo"]
    cls = algorithm(algo)
    for key in ("trials", "seeds"):
        if not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1:
            raise ConfigError(f"--{key} must be a positive integer, got {spec[key]!r}")
    _check_fixed(spec["settings"])
    params = parse_space(spec["space"])
    base = [default_preset(algo, spec["env"]), _fixed(spec), {"env": spec["env"]}]
    fixed_keys = set(_fixed(spec))
    hints = typing.get_type_hints(cls.config_cls)
    typed = []
    for p in params:
        if p.name == "seed":
            raise ConfigError("--space seed: a sweep's seeds come from --seeds and --first-seed (every candidate "
                              "runs each of them); drop seed from --space")
        if p.name == "env":
            raise ConfigError("--space env: a sweep searches settings on one env, its --env; run a sweep per env")
        if p.name in fixed_keys:
            raise ConfigError(f"{p.name} is both searched (--space) and fixed (--set/--steps); drop one")

        def build(value: Any, name: str = p.name) -> Any:
            return build_config(cls.config_cls, *base, {name: value})

        if p.name not in hints:  # build_config names the closest setting
            try:
                build(None)
            except ConfigError as e:
                raise ConfigError(f"--space {p.name}: {e}") from None
        p = _fit_to_type(p, hints[p.name], build)
        if p.kind != "choice":
            for value in (p.low, p.high):
                try:
                    build(int(value) if p.kind in INTEGER_KINDS else value)
                except ConfigError as e:
                    raise ConfigError(f"--space {p.name}: {e}") from None
        typed.append(p)
    params = typed
    make_search(spec["search"], params, spec["search_seed"])
    config = build_config(cls.config_cls, *base)
    cls.check(config)
    scheduler = spec.get("scheduler", "none")
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    if scheduler == "asha":
        if spec["search"] == "optuna":
            raise ConfigError("--scheduler asha works with --search random or grid (Optuna learns from whole "
                              "runs here); drop one of them")
        if any(p.name == "total_steps" for p in params):
            raise ConfigError("--scheduler asha needs one run length for every candidate; fix it with --steps "
                              "instead of searching total_steps")
        eta, min_steps = spec.get("eta", 3), spec.get("min_steps")
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise ConfigError(f"--eta must be an integer of at least 2, got {eta!r}")
        if min_steps is not None and (isinstance(min_steps, bool) or not isinstance(min_steps, int)
                                      or not 0 < min_steps < config.total_steps):
            raise ConfigError(f"--min-steps must be a step count below the run's {config.total_steps:,} steps, "
                              f"got {min_steps!r}")
    return params


def rungs(total_steps: int, min_steps: int | None, eta: int) -> list[int]:
    """ASHA's rungs: ``min_steps · eta^k`` up to ``total_steps / eta``, then ``total_steps`` itself
    (a rung closer to the end than that would judge almost the whole run twice)."""
    first = min_steps or max(1, total_steps // eta**2)
    out, step = [], first
    while step * eta <= total_steps:
        out.append(step)
        step *= eta
    return out + [total_steps]


def _run(out: Path, state: dict[str, Any], params: list[Param], *, workers: int, backend: str,
         address: str | None, quiet: bool) -> dict[str, Any]:
    """Draw, train and score the candidates of a checked spec (:func:`_check` gave ``params``)."""
    spec = state["spec"]
    if spec.get("scheduler", "none") == "asha":
        return _run_asha(out, state, params, workers=workers, backend=backend, address=address, quiet=quiet)
    search = make_search(spec["search"], params, spec["search_seed"], out)
    # a grid is run whole (a new sweep refuses one larger than --trials; one started before that rule keeps its cut)
    total = min(spec["trials"], len(search)) if isinstance(search, _Grid) else spec["trials"]
    seeds = list(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    done: dict[int, dict[str, Any]] = {c["index"]: c for c in state["candidates"]
                                       if c.get("status") not in ("running", "busy")}
    start = time.time()

    def runs_of(index: int, values: dict[str, Any]) -> list[Trial]:
        settings = {**_fixed(spec), **values}
        return [Trial(spec["algo"], spec["env"], seed, str(out / f"trial_{index:04d}" / f"seed_{seed}"),
                      settings=settings, eval_episodes=spec["eval_episodes"]) for seed in seeds]

    # Optuna learns from finished candidates: propose in batches of as many candidates as run at once;
    # random and grid propose everything up front
    batch = max(1, resolve_workers(workers) // len(seeds)) if spec["search"] == "optuna" else total
    index = 0
    while index < total:
        proposed = []
        for i in range(index, min(total, index + batch)):
            recorded = state["candidates"][i]["params"] if i < len(state["candidates"]) else None
            values = search.ask(i, recorded)  # a recorded candidate is taken again, the same one
            if recorded is None:
                state["candidates"].append({"index": i, "params": _jsonable(values), "status": "running"})
            proposed.append((i, values))
        atomic_write_json(out / STATE_FILE, state)
        pending = [(i, values) for i, values in proposed if i not in done]
        trials = [t for i, values in pending for t in runs_of(i, values)]
        results = run_trials(trials, workers=workers, backend=backend, address=address,
                             on_result=None if quiet else _progress) if trials else []
        for k, (i, values) in enumerate(pending):
            mine = results[k * len(seeds):(k + 1) * len(seeds)]
            finals = [r.get("final") for r in mine]
            if any(r.get("busy") for r in mine):  # not a failure: judged when a later --resume finds the runs free
                state["candidates"][i] = {"index": i, "params": _jsonable(values), "status": "busy",
                                          "objective": None, "finals": finals, "seeds": seeds}
                continue
            errors = [r["error"] for r in mine if r.get("error")]
            objective = float(np.mean(finals)) if not errors else None
            done[i] = {"index": i, "params": _jsonable(values), "status": "error" if errors else "done",
                       "objective": objective, "finals": finals, "seeds": seeds, "errors": errors}
            state["candidates"][i] = done[i]
        atomic_write_json(out / STATE_FILE, state)
        for i, _ in proposed:
            if i in done:  # a busy candidate's Optuna trial stays open for the resume that judges it
                search.tell(i, done[i]["objective"])
        index += len(proposed)
    return _finish(out, state, params, time.time() - start, quiet)


def _finish(out: Path, state: dict[str, Any], params: list[Param], elapsed: float, quiet: bool) -> dict[str, Any]:
    """Write the report; say which candidates wait for another process's runs."""
    report = _report(out, state, params, elapsed)
    if report["busy"] and not quiet:
        print(f"sweep: candidate{'s' * (len(report['busy']) > 1)} {', '.join(map(str, report['busy']))} not "
              f"judged: {'their' if len(report['busy']) > 1 else 'its'} runs are {BUSY}; run 'deeprl sweep --resume "
              f"{out}' once it is done", file=sys.stderr)
    return report


def _rungs_of(spec: dict[str, Any]) -> list[int]:
    """The spec's ASHA rungs, each rounded up to a whole log interval (a run pauses where an
    interval ends, so the paused run logs exactly the rows of an unpaused one)."""
    from deeprl import ALGORITHMS
    from deeprl.config import build_config, default_preset

    cls = ALGORITHMS[spec["algo"]]
    config = build_config(cls.config_cls, default_preset(spec["algo"], spec["env"]), _fixed(spec),
                          {"env": spec["env"]})
    every = config.log_interval
    steps = {-(-r // every) * every for r in rungs(config.total_steps, spec.get("min_steps"), spec.get("eta", 3))}
    return sorted(r for r in steps if r < config.total_steps) + [config.total_steps]


def _run_asha(out: Path, state: dict[str, Any], params: list[Param], *, workers: int, backend: str,
              address: str | None, quiet: bool) -> dict[str, Any]:
    """Asynchronous successive halving over candidates x seeds.

    Whenever a worker is free: promote the best candidate not yet promoted among the top 1/eta of
    those that completed a rung (the highest rung first); failing that, draw a new candidate for
    the first rung.  A candidate has completed a rung when every one of its seeds has been judged
    there; each seed's run pauses at the rung (a checkpoint) and continues from it if promoted.
    ``state`` records every candidate's rung results and the rung it was sent to, so a resumed
    sweep rebuilds the same bookkeeping and resubmits what was in flight.
    """
    spec = state["spec"]
    search = make_search(spec["search"], params, spec["search_seed"], out)
    total = min(spec["trials"], len(search)) if isinstance(search, _Grid) else spec["trials"]
    seeds = list(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    eta = spec.get("eta", 3)
    steps = _rungs_of(spec)
    top = len(steps) - 1
    start = time.time()
    candidates: list[dict[str, Any]] = state["candidates"]
    values: dict[int, dict[str, Any]] = {}
    for i in range(len(candidates)):  # redraw the recorded candidates: the search's stream continues after them
        values[i] = search.ask(i, candidates[i]["params"])

    def trial(i: int, seed: int, rung: int) -> Trial:
        return Trial(spec["algo"], spec["env"], seed, str(out / f"trial_{i:04d}" / f"seed_{seed}"),
                     settings={**_fixed(spec), **values[i]}, eval_episodes=spec["eval_episodes"],
                     pause_at=None if rung == top else steps[rung])

    queue: list[tuple[int, int, int]] = []  # (candidate, seed, rung) not yet submitted
    busy: set[int] = set()  # candidates with a run another process holds: they wait for a later --resume
    for c in candidates:  # what was in flight when the sweep stopped
        if c["status"] == "stopped":  # a finished sweep's verdict; bookkeeping knows it as paused
            c["status"] = "paused"
        if c["status"] == "busy":
            c["status"] = "running"
        if c["status"] == "running":
            done_seeds = c["rungs"].get(str(c["target"]), {}).get("finals", {})
            queue += [(c["index"], seed, c["target"]) for seed in seeds if str(seed) not in done_seeds]

    def completed(rung: int) -> list[dict[str, Any]]:
        return [c for c in candidates if c["rungs"].get(str(rung), {}).get("objective") is not None]

    def next_jobs(idle: bool) -> list[tuple[int, int, int]]:
        for rung in range(top - 1, -1, -1):  # promote from the highest rung that allows it
            ranked = sorted(completed(rung), key=lambda c: -c["rungs"][str(rung)]["objective"])
            for c in ranked[:len(ranked) // eta]:
                if c["target"] == rung and c["status"] == "paused":
                    c["target"], c["status"] = rung + 1, "running"
                    return [(c["index"], seed, rung + 1) for seed in seeds]
        i = len(candidates)
        if i >= total:
            if idle and not any(c["status"] == "done" for c in candidates):
                # the candidates ran out before any reached the last rung (fewer than eta^rungs of
                # them): finish the best one of the highest rung anyway, so the sweep names a winner
                paused = [c for c in candidates if c["status"] == "paused"]
                if paused:
                    c = max(paused, key=lambda c: (c["target"], c["rungs"][str(c["target"])]["objective"]))
                    c["target"], c["status"] = c["target"] + 1, "running"
                    return [(c["index"], seed, c["target"]) for seed in seeds]
            return []
        values[i] = search.ask(i)
        candidates.append({"index": i, "params": _jsonable(values[i]), "status": "running", "target": 0,
                           "rungs": {}, "seeds": seeds})
        return [(i, seed, 0) for seed in seeds]

    with TrialPool(workers=workers, backend=backend, address=address) as pool:
        while True:
            while pool.pending < pool.workers:
                if not queue:
                    queue = next_jobs(idle=not pool.pending)
                    atomic_write_json(out / STATE_FILE, state)
                    if not queue:
                        break
                i, seed, rung = queue.pop(0)
                pool.submit(trial(i, seed, rung), key=(i, seed, rung))
            if not pool.pending:
                break
            (i, seed, rung), result = pool.next_result()
            if not quiet:
                _progress(result, f"rung {rung + 1}/{top + 1} ({steps[rung]:,} steps)")
            c = candidates[i]
            if result.get("busy"):  # not judged: the seed is submitted again by a later --resume
                busy.add(i)
                continue
            record = c["rungs"].setdefault(str(rung), {"finals": {}})
            record["finals"][str(seed)] = result.get("final")
            if result.get("error"):
                c.setdefault("errors", []).append(result["error"])
            if len(record["finals"]) == len(seeds):
                finals = [record["finals"][str(s)] for s in seeds]
                errors = c.get("errors", [])
                record["objective"] = None if errors else float(np.mean(finals))
                c["status"] = "error" if errors else ("done" if rung == top else "paused")
                c["reached"], c["finals"], c["objective"] = steps[rung], finals, record["objective"]
            atomic_write_json(out / STATE_FILE, state)
    for c in candidates:
        if c["status"] == "paused":
            c["status"] = "stopped"  # not among the best at its last rung
        if c["status"] == "running" and c["index"] in busy:
            c["status"] = "busy"
    atomic_write_json(out / STATE_FILE, state)
    return _finish(out, state, params, time.time() - start, quiet)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable_value(v) for k, v in values.items()}


def _jsonable_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _progress(result: dict[str, Any], where: str = "") -> None:
    t = result["trial"]
    what = f"final {result['final']:.1f}" if result.get("final") is not None else \
        BUSY if result.get("busy") else f"error: {result['error']}"
    print(f"  {Path(t['out']).parent.name} seed {t['seed']}{' ' + where if where else ''}: {what}", flush=True)


# --------------------------------------------------------------------------------------------
# the report: results.json, report.md, best_preset.yaml, objective.png


def _report(out: Path, state: dict[str, Any], params: list[Param], elapsed: float) -> dict[str, Any]:
    spec = state["spec"]
    # candidates that ran further first (ASHA stops some early), then by objective
    ranked = sorted(state["candidates"], key=lambda c: (c.get("objective") is None, -c.get("reached", 0),
                                                        -(c.get("objective") or 0.0)))
    report = {"spec": spec, "date": time.strftime("%Y-%m-%d"), "elapsed": elapsed, "ranked": ranked,
              "best": next((c for c in ranked if c.get("status") == "done"), None),
              "busy": [c["index"] for c in state["candidates"] if c.get("status") == "busy"]}
    atomic_write_json(out / "results.json", report)
    (out / "report.md").write_text(markdown(report))
    if report["best"] is not None:
        (out / "best_preset.yaml").write_text(preset_yaml(report))
    plot_objective(report, params, out / "objective.png")
    return report


def markdown(report: dict[str, Any]) -> str:
    spec = report["spec"]
    names = [p.split("=", 1)[0].strip() for p in spec["space"]]
    seeds = f"{spec['first_seed']}-{spec['first_seed'] + spec['seeds'] - 1}"
    asha = spec.get("scheduler") == "asha"
    how = (f"; ASHA (eta {spec.get('eta', 3)}) stopped candidates early, each judged at the last step it reached"
           if asha else "")
    lines = [f"# deeprl sweep: {spec['algo']} on {spec['env']}", "",
             f"{spec['search']} search, {len(report['ranked'])} candidates, seeds {seeds}; objective: the mean "
             f"final evaluation ({spec['eval_episodes']} episodes) over the seeds{how}. {report['date']}.", "",
             "| rank | candidate | " + " | ".join(names) + (" | steps" if asha else "") + " | objective | per-seed finals |",
             "| --- | --- | " + " | ".join("---" for _ in names) + (" | ---" if asha else "") + " | --- | --- |"]
    for rank, c in enumerate(report["ranked"], 1):
        objective = f"{c['objective']:.1f}" if c.get("objective") is not None else \
            BUSY if c.get("status") == "busy" else c.get("status", "?")
        finals = " / ".join("-" if f is None else f"{f:.1f}" for f in c.get("finals", []))
        values = " | ".join(_fmt(c["params"].get(n)) for n in names)
        reached = f" | {c.get('reached', 0):,}" + (" (stopped)" if c.get("status") == "stopped" else "") if asha else ""
        lines.append(f"| {rank} | {c['index']} | {values}{reached} | {objective} | {finals} |")
    if spec.get("command"):
        lines += ["", f"Command: `{spec['command']}`"]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def preset_yaml(report: dict[str, Any]) -> str:
    """The best candidate as a block for ``deeprl/presets/<algo>.yaml``."""
    spec, best = report["spec"], report["best"]
    seeds = f"{spec['first_seed']}-{spec['first_seed'] + spec['seeds'] - 1}"
    finals = ", ".join(f"{f:.1f}" for f in best["finals"])
    block = {spec["env"]: {
        "description": f"from deeprl sweep ({spec['search']} search, {len(report['ranked'])} candidates)",
        "results": f"sweep objective {best['objective']:.1f}: mean final evaluation over seeds {seeds} "
                   f"({finals}), {report['date']}; tuned on these seeds, so confirm with deeprl bench",
        **_fixed(spec), **best["params"]}}
    return yaml.safe_dump(block, sort_keys=False, default_flow_style=False, width=10_000)


def plot_objective(report: dict[str, Any], params: list[Param], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [c for c in report["ranked"] if c.get("objective") is not None]
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.4), dpi=110, squeeze=False)
    for ax, p in zip(axes[0], params):
        y = [c["objective"] for c in scored]
        if p.kind == "choice":
            labels = [str(v) for v in p.choices]
            x = [labels.index(str(c["params"][p.name])) for c in scored]
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        else:
            x = [c["params"][p.name] for c in scored]
            if p.kind in ("loguniform", "logint"):
                ax.set_xscale("log")
        finished = np.array([c.get("status") != "stopped" for c in scored], dtype=bool)
        x, y = np.asarray(x), np.asarray(y)
        ax.scatter(x[finished], y[finished], s=22, alpha=0.8, label="whole run")
        if not finished.all():  # ASHA: judged at the rung where it stopped
            ax.scatter(x[~finished], y[~finished], s=22, facecolors="none", edgecolors="grey", label="stopped early")
            ax.legend(fontsize=7)
        ax.set_xlabel(p.name)
        ax.set_ylabel("objective (mean final return)")
        ax.grid(alpha=0.3)
    spec = report["spec"]
    fig.suptitle(f"deeprl sweep: {spec['algo']} on {spec['env']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
