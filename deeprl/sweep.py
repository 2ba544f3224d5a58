"""``deeprl sweep``: search an algorithm's settings, every candidate judged over several seeds.

A sweep draws *candidates* (one value per searched setting; the spaces and searches, random,
grid and Optuna's TPE sampler, are :mod:`deeprl.search`'s), trains each candidate on every seed
with the trial runner that ``deeprl bench`` uses (:mod:`deeprl.runner`: ordinary run
directories, one torch thread each, on a local Ray cluster, an existing one, or worker
processes), and scores it by the mean *final* evaluation of its seeds (as rl-baselines3-zoo#204
asks: one lucky seed does not win).

One driver runs every sweep: asynchronous successive halving (ASHA, Li et al. 2020).  With
``scheduler="asha"`` a candidate is judged at *rungs* along its run, ``min_steps · eta^k`` env
steps, and only the best 1/``eta`` of the candidates at a rung train on to the next one; the
rest stop there.  A plain sweep is the same driver with one rung, the run's full length, where
nothing stops early.  Pausing is sound because a run paused at a rung continues exactly as if
it had not paused (its schedules keep the planned length, :meth:`~deeprl.agents.base.Algorithm.learn`'s
``pause_at``), so a candidate that reaches the last rung has the very finals a plain sweep
gives it.  Judging early favours settings that learn fast: keep the first rung late enough to
mean something.

Everything the sweep knows is in ``<out>/sweep.json``, written atomically as candidates are drawn
and judged, so ``deeprl sweep --resume OUT`` continues a stopped or killed sweep, with any
``--workers``: the recorded candidates are taken again (random and grid search draw them again
from their seed; Optuna's study lives in an Optuna journal, ``<out>/optuna.journal``, and goes on
from the trials it holds), finished runs are read back and stopped runs resume from their last
checkpoint.  A plain sweep's candidates are kept in sweep.json as they always were (no rungs).
The sweep's own state is JSON, and so is Optuna's journal; nothing is unpickled.  One process at
a time runs a sweep folder (a lock on ``<out>/sweep.lock``); a run that another process is
training (say, ``deeprl train --resume`` on one of its run directories) leaves its candidate
unjudged ("being resumed by another process"), for a later ``--resume`` to finish.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from deeprl.checkpoint import atomic_write_json, read_json
from deeprl.config import build_config, config_to_dict, resolve_config
from deeprl.errors import ConfigError
from deeprl.report import fmt, plot_objective, table
from deeprl.run import exclusive_lock
from deeprl.runner import Trial, TrialPool
from deeprl.search import GridSearch, Param, check_space, jsonable, make_search, parse_space

SCHEDULERS = ("none", "asha")
STATE_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"
BUSY = "being resumed by another process"  # a candidate whose run another process holds: judged on a later --resume
STATUSES = ("running", "busy", "done", "error", "paused", "stopped")

__all__ = ["make_search", "markdown", "parse_space", "preset_yaml", "resume_sweep", "rungs", "sweep"]


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
        points = len(GridSearch(params, 0))
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
    """``out``'s sweep.json, as this version or an earlier one wrote it; anything else is refused."""
    state = read_json(out / STATE_FILE, "sweep state")
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict) \
            or not isinstance(state.get("candidates"), list):
        raise ConfigError(f"{str(out / STATE_FILE)!r} is not a deeprl sweep state")
    asha = state["spec"].get("scheduler", "none") == "asha"
    for i, c in enumerate(state["candidates"]):
        if not isinstance(c, dict) or c.get("index") != i or not isinstance(c.get("params"), dict) \
                or c.get("status") not in STATUSES \
                or asha and (not isinstance(c.get("rungs"), dict) or not isinstance(c.get("target"), int)):
            raise ConfigError(f"{str(out / STATE_FILE)!r} is damaged (its candidate {i}); start a new sweep")
    return state


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the sweep folder's lock: a second process that runs or resumes the same sweep is
    refused at once instead of training the same runs beside this one."""
    fh = exclusive_lock(out / LOCK_FILE, f"sweep {str(out)!r} is being run by another process; wait for it to "
                        "finish or stop it first")
    try:
        yield
    finally:
        if fh is not None:
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

    typed = config_to_dict(build_config(algorithm(algo).config_cls, settings))
    return {k: typed[k] for k in settings}


def _fixed(spec: dict[str, Any]) -> dict[str, Any]:
    fixed = dict(spec["settings"])
    if spec["steps"] is not None:
        fixed["total_steps"] = spec["steps"]
    return fixed


def _config(spec: dict[str, Any], *layers: dict[str, Any]) -> Any:
    """The config a spec's runs share (its algorithm's preset for its env, its fixed settings),
    with ``layers`` over the fixed settings."""
    from deeprl.agents import algorithm

    return resolve_config(algorithm(spec["algo"]).config_cls, spec["algo"], spec["env"],
                          overrides=[_fixed(spec), *layers])


def _check(spec: dict[str, Any]) -> list[Param]:
    """Every problem a sweep can know of before it trains: the algorithm, the space's settings
    (:func:`~deeprl.search.check_space`), the env and its spaces, the scheduler's settings.
    Returns the space with its choices typed."""
    from deeprl.agents import algorithm

    cls = algorithm(spec["algo"])
    for key in ("trials", "seeds"):
        if not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1:
            raise ConfigError(f"--{key} must be a positive integer, got {spec[key]!r}")
    _check_fixed(spec["settings"])
    params = check_space(parse_space(spec["space"]), cls.config_cls, set(_fixed(spec)),
                         lambda layer: _config(spec, layer))
    make_search(spec["search"], params, spec["search_seed"])
    config = _config(spec)
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


def _rungs_of(spec: dict[str, Any]) -> list[int]:
    """Where the driver judges candidates: a plain sweep at the run's full length only; ASHA at
    its rungs too, each rounded up to a whole log interval (a run pauses where an interval ends,
    so the paused run logs exactly the rows of an unpaused one)."""
    config = _config(spec)
    if spec.get("scheduler", "none") != "asha":
        return [config.total_steps]
    every = config.log_interval
    steps = {-(-r // every) * every for r in rungs(config.total_steps, spec.get("min_steps"), spec.get("eta", 3))}
    return sorted(r for r in steps if r < config.total_steps) + [config.total_steps]


def _run(out: Path, state: dict[str, Any], params: list[Param], *, workers: int, backend: str,
         address: str | None, quiet: bool) -> dict[str, Any]:
    """Draw, train and judge the candidates of a checked spec (:func:`_check` gave ``params``):
    asynchronous successive halving over candidates x seeds, of one rung for a plain sweep.

    Whenever a worker is free: promote the best candidate not yet promoted among the top 1/eta of
    those that completed a rung (the highest rung first); failing that, draw a new candidate for
    the first rung.  A candidate has completed a rung when every one of its seeds has been judged
    there; each seed's run pauses at the rung (a checkpoint) and continues from it if promoted.
    Optuna learns from judged candidates: it proposes as many as run at once (workers / seeds),
    then the next ones once those are judged; random and grid search propose whenever a worker is
    free.  ``state`` records every candidate's rung results and the rung it was sent to, so a
    resumed sweep rebuilds the same bookkeeping and resubmits what was in flight.
    """
    spec = state["spec"]
    asha = spec.get("scheduler", "none") == "asha"
    search = make_search(spec["search"], params, spec["search_seed"], out)
    # a grid is run whole (a new sweep refuses one larger than --trials; one started before that rule keeps its cut)
    total = min(spec["trials"], len(search)) if isinstance(search, GridSearch) else spec["trials"]
    seeds = list(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    eta = spec.get("eta", 3)
    steps = _rungs_of(spec)
    top = len(steps) - 1
    start = time.time()
    candidates = state["candidates"] if asha else [_from_plain(c, seeds) for c in state["candidates"]]
    # redraw the recorded candidates (the search's stream continues after them); tell the judged ones
    values = {c["index"]: search.ask(c["index"], c["params"]) for c in candidates}
    for c in candidates:
        if c["status"] in ("done", "error"):
            search.tell(c["index"], c.get("objective"))

    def trial(i: int, seed: int, rung: int) -> Trial:
        return Trial(spec["algo"], spec["env"], seed, str(out / f"trial_{i:04d}" / f"seed_{seed}"),
                     settings={**_fixed(spec), **values[i]}, eval_episodes=spec["eval_episodes"],
                     pause_at=None if rung == top else steps[rung])

    def save() -> None:
        state["candidates"] = candidates if asha else [_plain(c) for c in candidates]
        atomic_write_json(out / STATE_FILE, state)

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

    def next_jobs(idle: bool, batch: int) -> list[tuple[int, int, int]]:
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
        if any(c["status"] == "running" and c["index"] not in busy for c in candidates[:i // batch * batch]):
            return []  # Optuna: the candidates proposed before this batch are not all judged yet
        values[i] = search.ask(i)
        candidates.append({"index": i, "params": jsonable(values[i]), "status": "running", "target": 0,
                           "rungs": {}, "seeds": seeds})
        return [(i, seed, 0) for seed in seeds]

    with TrialPool(workers=workers, backend=backend, address=address) as pool:
        batch = max(1, pool.workers // len(seeds)) if spec["search"] == "optuna" else total
        while True:
            while pool.pending < pool.workers:
                if not queue:
                    queue = next_jobs(not pool.pending, batch)
                    save()
                    if not queue:
                        break
                i, seed, rung = queue.pop(0)
                pool.submit(trial(i, seed, rung), key=(i, seed, rung))
            if not pool.pending:
                break
            (i, seed, rung), result = pool.next_result()
            if not quiet:
                _progress(result, f"rung {rung + 1}/{top + 1} ({steps[rung]:,} steps)" if asha else "")
            c = candidates[i]
            if result.get("busy"):  # not judged: the seed is submitted again by a later --resume
                busy.add(i)
                continue
            record = c["rungs"].setdefault(str(rung), {"finals": {}})
            record["finals"][str(seed)] = result.get("final")
            record.setdefault("seconds", {})[str(seed)] = result.get("wall_time")
            if result.get("error"):
                c.setdefault("errors", []).append(result["error"])
            if len(record["finals"]) == len(seeds):
                finals = [record["finals"][str(s)] for s in seeds]
                errors = c.get("errors", [])
                record["objective"] = None if errors else float(np.mean(finals))
                c["status"] = "error" if errors else ("done" if rung == top else "paused")
                c["reached"], c["finals"], c["objective"] = steps[rung], finals, record["objective"]
                c["seconds"] = _mean_seconds([record["seconds"].get(str(s)) for s in seeds])
            save()
            if c["status"] in ("done", "error"):  # a busy candidate's Optuna trial stays open for a later --resume
                search.tell(i, c["objective"])
    for c in candidates:
        if c["status"] == "paused":
            c["status"] = "stopped"  # not among the best at its last rung
        if c["status"] == "running" and c["index"] in busy:
            c["status"] = "busy"
    save()
    return _finish(out, state, params, time.time() - start, quiet)


def _from_plain(c: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """A candidate of a plain sweep's sweep.json as the driver keeps it: one rung, rung 0.  One
    not judged yet is trained again (its finished runs are read back)."""
    if c["status"] in ("running", "busy"):
        return {"index": c["index"], "params": c["params"], "status": "running", "target": 0, "rungs": {},
                "seeds": seeds}
    return {**c, "target": 0, "rungs": {}}


def _plain(c: dict[str, Any]) -> dict[str, Any]:
    """A candidate as a plain sweep's sweep.json holds it, without the driver's rungs."""
    head = {"index": c["index"], "params": c["params"], "status": c["status"]}
    if c["status"] == "running":
        return head
    if c["status"] == "busy":
        got = c["rungs"].get("0", {}).get("finals", {})
        return {**head, "objective": None, "finals": [got.get(str(s)) for s in c["seeds"]], "seeds": c["seeds"]}
    return {**head, "objective": c["objective"], "finals": c["finals"], "seeds": c["seeds"],
            "seconds": c.get("seconds"), "errors": c.get("errors", [])}


def _mean_seconds(seconds: list[Any]) -> float | None:
    """A candidate's cost: the mean over its seeds of each run's training wall time to the step it
    was judged at (periodic evaluations included), None where a run did not record one."""
    return None if any(s is None for s in seconds) else float(np.mean(seconds))


def _finish(out: Path, state: dict[str, Any], params: list[Param], elapsed: float, quiet: bool) -> dict[str, Any]:
    """Write the report; say which candidates wait for another process's runs."""
    report = _report(out, state, params, elapsed)
    if report["busy"] and not quiet:
        print(f"sweep: candidate{'s' * (len(report['busy']) > 1)} {', '.join(map(str, report['busy']))} not "
              f"judged: {'their' if len(report['busy']) > 1 else 'its'} runs are {BUSY}; run 'deeprl sweep --resume "
              f"{out}' once it is done", file=sys.stderr)
    return report


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
    plot_objective(f"deeprl sweep: {spec['algo']} on {spec['env']}", params, ranked, out / "objective.png")
    return report


def markdown(report: dict[str, Any]) -> str:
    spec = report["spec"]
    names = [p.split("=", 1)[0].strip() for p in spec["space"]]
    seeds = f"{spec['first_seed']}-{spec['first_seed'] + spec['seeds'] - 1}"
    asha = spec.get("scheduler") == "asha"
    how = (f"; ASHA (eta {spec.get('eta', 3)}) stopped candidates early, each judged at the last step it reached"
           if asha else "")
    rows = []
    for rank, c in enumerate(report["ranked"], 1):
        objective = fmt(c["objective"]) if c.get("objective") is not None else \
            BUSY if c.get("status") == "busy" else c.get("status", "?")
        reached = [f"{c.get('reached', 0):,}" + (" (stopped)" if c.get("status") == "stopped" else "")] if asha else []
        seconds = f"{c['seconds']:.0f}" if isinstance(c.get("seconds"), (int, float)) else "-"
        rows.append([rank, c["index"], *(_value(c["params"].get(n)) for n in names), *reached, objective,
                     " / ".join(fmt(f) for f in c.get("finals", [])), seconds])
    lines = [f"# deeprl sweep: {spec['algo']} on {spec['env']}", "",
             f"{spec['search']} search, {len(report['ranked'])} candidates, seeds {seeds}; objective: the mean "
             f"final evaluation ({spec['eval_episodes']} episodes) over the seeds{how}; s per run: the mean "
             f"training wall time to that step (periodic evaluations included), what the candidate costs. "
             f"{report['date']}.", "",
             *table(["rank", "candidate", *names, *(["steps"] if asha else []), "objective", "per-seed finals",
                     "s per run"], rows)]
    if spec.get("command"):
        lines += ["", f"Command: `{spec['command']}`"]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
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
