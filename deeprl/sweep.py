"""``deeprl sweep``: search an algorithm's settings, every candidate judged over several seeds.

A sweep draws *candidates* (one value per searched setting) by random search, grid search or
Optuna's TPE sampler, trains each candidate on every seed with the trial runner that ``deeprl
bench`` uses (:mod:`deeprl.runner`: ordinary run directories, one torch thread each, on a local
Ray cluster, an existing one, or worker processes), and scores it by the mean *final* evaluation
of its seeds (as rl-baselines3-zoo#204 asks: one lucky seed does not win).

Everything the sweep knows is in ``<out>/sweep.json``, written atomically as candidates are drawn
and finished, so ``deeprl sweep --resume OUT`` continues a stopped or killed sweep: the same
candidates are drawn again, finished runs are read back and stopped runs resume from their last
checkpoint.  The sweep's own state is JSON; nothing is unpickled.

With ``scheduler="asha"`` (asynchronous successive halving, Li et al. 2020) a candidate is
judged at *rungs* along its run, ``min_steps · eta^k`` env steps, and only the best 1/``eta`` of
the candidates at a rung train on to the next one; the rest stop there.  It is sound here
because a run paused at a rung continues exactly as if it had not paused (its schedules keep
the planned length, :meth:`~deeprl.agents.base.Algorithm.learn`'s ``pause_at``), so a candidate
that reaches the last rung has the very finals a plain sweep would give it.  Judging early
favours settings that learn fast: keep the first rung late enough to mean something.

Search spaces, one ``name=kind:arguments`` per setting::

    lr=loguniform:1e-4:3e-3     n_steps=choice:128,256,512     gamma=uniform:0.95:0.999
    batch_size=int:32:256       net_arch=choice:[64,64],[256,256]
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deeprl.checkpoint import atomic_write_json, read_json
from deeprl.errors import ConfigError
from deeprl.runner import Trial, TrialPool, resolve_workers, run_trials

SEARCHES = ("random", "grid", "optuna")
SCHEDULERS = ("none", "asha")
KINDS = ("uniform", "loguniform", "int", "choice")
STATE_FILE = "sweep.json"


@dataclass(frozen=True)
class Param:
    """One searched setting: ``kind`` with ``low``/``high`` (numbers) or ``choices``."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def grid(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise ConfigError(f"grid search needs a finite set of values, but {self.name} is {self.kind}; "
                          f"use {self.name}=choice:a,b,c or --search random/optuna")

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial suggests."""
        if self.kind == "choice":
            index = trial.suggest_categorical(self.name, list(range(len(self.choices))))
            return self.choices[index]
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")


def _split_top_level(text: str) -> list[str]:
    """``"[64,64],[256,256]"`` -> ``["[64,64]", "[256,256]"]``: commas inside brackets stay."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
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
    are a :class:`ConfigError` that shows the form."""
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
            choices = tuple(_choice(v) for v in _split_top_level(args) if v)
            if not choices:
                raise ConfigError(f"{item!r} lists no choices; {form}")
            params.append(Param(name, kind, choices=choices))
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
        if kind == "int" and (low != int(low) or high != int(high)):
            raise ConfigError(f"{item!r}: int bounds must be whole numbers")
        params.append(Param(name, kind, low, high))
    if not params:
        raise ConfigError(f"--space names no setting to search; {form}")
    return params


# --------------------------------------------------------------------------------------------
# searches: each proposes candidates in a fixed order, so a resumed sweep draws the same ones


class _Random:
    def __init__(self, params: list[Param], seed: int):
        self.params, self.rng = params, np.random.default_rng([seed, 0x5EE9])

    def ask(self, index: int) -> dict[str, Any]:
        return {p.name: p.sample(self.rng) for p in self.params}

    def tell(self, index: int, value: float | None) -> None:
        pass


class _Grid:
    def __init__(self, params: list[Param], seed: int):
        self.points = [dict(zip([p.name for p in params], values))
                       for values in itertools.product(*(p.grid() for p in params))]

    def __len__(self) -> int:
        return len(self.points)

    def ask(self, index: int) -> dict[str, Any]:
        return dict(self.points[index])

    def tell(self, index: int, value: float | None) -> None:
        pass


class _Optuna:
    """Optuna's TPE sampler (seeded) through its ask-and-tell interface, in memory.  A resumed
    sweep replays its history: the same asks and tells in the same order draw the same
    candidates again, so no Optuna storage file is needed."""

    def __init__(self, params: list[Param], seed: int):
        try:
            import optuna
        except ImportError:
            raise ConfigError("--search optuna needs Optuna; install it with: pip install -e \".[ray]\"") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.params = optuna, params
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self.asked: dict[int, Any] = {}

    def ask(self, index: int) -> dict[str, Any]:
        trial = self.study.ask()
        self.asked[index] = trial
        return {p.name: p.suggest(trial) for p in self.params}

    def tell(self, index: int, value: float | None) -> None:
        trial = self.asked.pop(index)
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def make_search(kind: str, params: list[Param], seed: int) -> Any:
    if kind not in SEARCHES:
        raise ConfigError(f"unknown search {kind!r}; use one of {', '.join(SEARCHES)}")
    return {"random": _Random, "grid": _Grid, "optuna": _Optuna}[kind](params, seed)


# --------------------------------------------------------------------------------------------
# the sweep


def sweep(algo: str, env: str, space: list[str], out: str | Path, *, trials: int = 16, seeds: int = 3,
          first_seed: int = 0, search: str = "random", steps: int | None = None,
          settings: dict[str, Any] | None = None, workers: int = 0, eval_episodes: int = 20,
          backend: str = "ray", address: str | None = None, search_seed: int = 0, quiet: bool = False,
          command: str | None = None, scheduler: str = "none", min_steps: int | None = None,
          eta: int = 3) -> dict[str, Any]:
    """Run a new sweep into ``out`` (see the module docstring); returns the ranked results.

    ``scheduler="asha"`` stops weak candidates early: rungs at ``min_steps · eta^k`` env steps
    (default ``min_steps``: the run's length / eta², so three rungs)."""
    out = Path(out)
    if (out / STATE_FILE).exists():
        raise ConfigError(f"{str(out)!r} already holds a sweep; continue it with 'deeprl sweep --resume {out}' "
                          "or choose another --out")
    spec = {"algo": algo, "env": env, "space": list(space), "trials": trials, "seeds": seeds,
            "first_seed": first_seed, "search": search, "steps": steps, "settings": _typed(algo, settings or {}),
            "eval_episodes": eval_episodes, "search_seed": search_seed, "command": command}
    if scheduler != "none":
        spec.update(scheduler=scheduler, min_steps=min_steps, eta=eta)
    params = _check(spec)
    if not quiet:
        print(f"sweep: {algo} on {env}, {trials} candidates x {seeds} seeds -> {out}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    state = {"spec": spec, "candidates": []}
    atomic_write_json(out / STATE_FILE, state)
    return _run(out, state, params, workers=workers, backend=backend, address=address, quiet=quiet)


def resume_sweep(out: str | Path, *, workers: int = 0, backend: str = "ray", address: str | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Continue the sweep in ``out``: candidates drawn before are drawn again, finished runs are
    read back, stopped runs resume."""
    out = Path(out)
    state = read_json(out / STATE_FILE, "sweep state")
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict) \
            or not isinstance(state.get("candidates"), list):
        raise ConfigError(f"{str(out / STATE_FILE)!r} is not a deeprl sweep state")
    params = _check(state["spec"])
    return _run(out, state, params, workers=workers, backend=backend, address=address, quiet=quiet)


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


def _check(spec: dict[str, Any]) -> list[Param]:
    """Every problem a sweep can know of before it trains: the algorithm, the space's settings
    (names and types, at both ends of every range), the env and its spaces."""
    from deeprl.agents import algorithm
    from deeprl.config import build_config, default_preset

    algo = spec["algo"]
    cls = algorithm(algo)
    for key in ("trials", "seeds"):
        if not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1:
            raise ConfigError(f"--{key} must be a positive integer, got {spec[key]!r}")
    params = parse_space(spec["space"])
    base = [default_preset(algo, spec["env"]), _fixed(spec), {"env": spec["env"]}]
    fixed_keys = set(_fixed(spec))
    for p in params:
        if p.name in fixed_keys:
            raise ConfigError(f"{p.name} is both searched (--space) and fixed (--set/--steps); drop one")
        ends = list(p.choices) if p.kind == "choice" else [p.low, p.high]
        for value in ends:
            value = int(value) if p.kind == "int" else value
            try:
                build_config(cls.config_cls, *base, {p.name: value})
            except ConfigError as e:
                raise ConfigError(f"--space {p.name}: {e}") from None
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
    search = make_search(spec["search"], params, spec["search_seed"])
    total = min(spec["trials"], len(search)) if isinstance(search, _Grid) else spec["trials"]
    seeds = list(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    done: dict[int, dict[str, Any]] = {c["index"]: c for c in state["candidates"] if c.get("status") != "running"}
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
            values = search.ask(i)
            if recorded is not None:  # drawn before the sweep stopped: it must be the same candidate again
                if recorded != _jsonable(values):
                    raise ConfigError(f"{str(out)!r} holds candidates this search does not draw again (another "
                                      "deeprl or Optuna version?); start a new sweep")
            else:
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
            errors = [r["error"] for r in mine if r.get("error")]
            objective = float(np.mean(finals)) if not errors else None
            done[i] = {"index": i, "params": _jsonable(values), "status": "error" if errors else "done",
                       "objective": objective, "finals": finals, "seeds": seeds, "errors": errors}
            state["candidates"][i] = done[i]
        for i, _ in proposed:
            search.tell(i, done[i]["objective"])
        atomic_write_json(out / STATE_FILE, state)
        index += len(proposed)
    report = _report(out, state, params, time.time() - start)
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
    search = make_search(spec["search"], params, spec["search_seed"])
    total = min(spec["trials"], len(search)) if isinstance(search, _Grid) else spec["trials"]
    seeds = list(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    eta = spec.get("eta", 3)
    steps = _rungs_of(spec)
    top = len(steps) - 1
    start = time.time()
    candidates: list[dict[str, Any]] = state["candidates"]
    values: dict[int, dict[str, Any]] = {}
    for i in range(len(candidates)):  # redraw the recorded candidates: the search's stream continues after them
        values[i] = search.ask(i)
        if _jsonable(values[i]) != candidates[i]["params"]:
            raise ConfigError(f"{str(out)!r} holds candidates this search does not draw again (another deeprl "
                              "version?); start a new sweep")

    def trial(i: int, seed: int, rung: int) -> Trial:
        return Trial(spec["algo"], spec["env"], seed, str(out / f"trial_{i:04d}" / f"seed_{seed}"),
                     settings={**_fixed(spec), **values[i]}, eval_episodes=spec["eval_episodes"],
                     pause_at=None if rung == top else steps[rung])

    queue: list[tuple[int, int, int]] = []  # (candidate, seed, rung) not yet submitted
    for c in candidates:  # what was in flight when the sweep stopped
        if c["status"] == "stopped":  # a finished sweep's verdict; bookkeeping knows it as paused
            c["status"] = "paused"
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
    atomic_write_json(out / STATE_FILE, state)
    return _report(out, state, params, time.time() - start)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


def _progress(result: dict[str, Any], where: str = "") -> None:
    t = result["trial"]
    what = f"final {result['final']:.1f}" if result.get("final") is not None else f"error: {result['error']}"
    print(f"  {Path(t['out']).parent.name} seed {t['seed']}{' ' + where if where else ''}: {what}", flush=True)


# --------------------------------------------------------------------------------------------
# the report: results.json, report.md, best_preset.yaml, objective.png


def _report(out: Path, state: dict[str, Any], params: list[Param], elapsed: float) -> dict[str, Any]:
    spec = state["spec"]
    # candidates that ran further first (ASHA stops some early), then by objective
    ranked = sorted(state["candidates"], key=lambda c: (c.get("objective") is None, -c.get("reached", 0),
                                                        -(c.get("objective") or 0.0)))
    report = {"spec": spec, "date": time.strftime("%Y-%m-%d"), "elapsed": elapsed, "ranked": ranked,
              "best": next((c for c in ranked if c.get("status") == "done"), None)}
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
        objective = f"{c['objective']:.1f}" if c.get("objective") is not None else c.get("status", "?")
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
            if p.kind == "loguniform":
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
