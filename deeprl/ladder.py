"""The lecture's ladders of tricks (``presets/ladders.yaml``) and ``deeprl bench --ladder``.

A ladder is an ordered list of rungs; each rung is an algorithm and its settings, the previous
rung's with one trick added.  Every rung is a named preset (``ladder/<rung>``, resolved by
:func:`deeprl.preset_files.preset_for`, which reads the rungs), and ``bench_ladder`` trains every rung x env x seed through the
runner, then draws one figure per env (each rung's IQM curve with its CI band, in rung order) and
tabulates what each rung buys.  A rung whose settings its algorithm does not have yet (a trick
still being written) is reported as such and skipped, never a crash.
"""

from __future__ import annotations

import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from deeprl.errors import ConfigError
from deeprl.preset_files import PREFIX, Rung, ladder, select  # noqa: F401  (the ladders, read)


def unknown_settings(rung: Rung) -> list[str]:
    """The settings ``rung.algo`` does not have (yet): the rung cannot run until they land."""
    from deeprl.agents import algorithm
    known = {f.name for f in fields(algorithm(rung.algo).config_cls)}
    return [k for k in rung.settings if k not in known]


# --------------------------------------------------------------------------------------------
# deeprl bench --ladder


def bench_ladder(name: str, envs: list[str], seeds: list[int], out: str | Path, *, rungs: list[str] | None = None,
                 settings: dict[str, Any] | None = None, workers: int = 0, eval_episodes: int = 20,
                 backend: str = "auto", address: str | None = None, quiet: bool = False,
                 command: str | None = None, retrain: bool = False) -> dict[str, Any]:
    """Train every rung x env x seed of ladder ``name`` into ``out/<rung>/<env>/seed_<n>``; write
    ``results.json``, ``report.md`` and one figure ``ladder_<name>_<env>.png`` per env there.
    ``settings`` (``--set``) override every rung's.  Rungs whose settings their algorithm lacks
    are listed in the report as not run."""
    from deeprl.agents import algorithm
    from deeprl.bench import BUSY_POLL, _check_reruns, machine, summarize, threshold_for
    from deeprl.config import resolve_config
    from deeprl.report import plot_ladder
    from deeprl.runner import Trial, run_trial, run_trials

    out = Path(out)
    extra = dict(settings or {})
    for key in ("seed", "env"):
        if key in extra:
            raise ConfigError(f"--set {key}: a ladder's seeds and envs come from --seeds/--first-seed and --envs; "
                              f"drop {key} from --set")
    chosen = select(ladder(name), rungs)
    runnable = [r for r in chosen if not unknown_settings(r)]
    trials = []
    for rung in runnable:
        for env in envs:
            cls = algorithm(rung.algo)
            cls.check(resolve_config(cls.config_cls, rung.algo, env, preset=None, overrides=[rung.settings, extra]))
            for seed in seeds:
                trials.append(Trial(rung.algo, env, seed, str(out / rung.name / env.replace("/", "_") / f"seed_{seed}"),
                                    settings={**rung.settings, **extra}, preset=None, eval_episodes=eval_episodes))
    _check_reruns(trials, retrain=retrain, quiet=quiet)
    if not quiet:
        for rung in chosen:
            if unknown_settings(rung):
                print(f"ladder {name}: rung {rung.name} not run: {rung.algo} has no setting "
                      f"{', '.join(unknown_settings(rung))} yet", file=sys.stderr)
        print(f"ladder {name}: {' -> '.join(r.name for r in runnable)} on {', '.join(envs)}, "
              f"seeds {seeds[0]}-{seeds[-1]} -> {out}", file=sys.stderr)
    start = time.time()

    def progress(result: dict[str, Any]) -> None:
        if not quiet and not result.get("busy"):
            t = result["trial"]
            what = f"final {result['final']:.1f}" if result.get("final") is not None else f"error: {result['error']}"
            print(f"  {Path(t['out']).parent.parent.name} {t['env']} seed {t['seed']}: {what}", flush=True)

    results = run_trials(trials, workers=workers, backend=backend, address=address, on_result=progress)
    for i, result in enumerate(results):  # a run another process trains: wait for it, as bench does
        while result.get("busy"):
            time.sleep(BUSY_POLL)
            result = run_trial(trials[i])
        results[i] = result
    cells = []
    for rung in chosen:
        for env in envs:
            if unknown_settings(rung):
                cell = {"algo": rung.algo, "env": env, "not_run": unknown_settings(rung)}
            else:
                prefix = str(out / rung.name) + "/"
                mine = [r for r in results if r["trial"]["env"] == env and r["trial"]["out"].startswith(prefix)]
                cell = summarize(rung.algo, env, mine, threshold_for(env))
                stayed = [s for s in cell["steps_to_stay"] if s is not None]
                cell["median_steps_to_stay"] = float(np.median(stayed)) if stayed else None
            cells.append({**cell, "rung": rung.name, "adds": rung.adds})
    report = {"command": command, "ladder": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "seeds": seeds, "eval_episodes": eval_episodes, "settings": extra, "elapsed": time.time() - start,
              "results": cells}
    from deeprl.checkpoint import atomic_write_bytes, atomic_write_json
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", report)
    atomic_write_bytes(out / "report.md", markdown(report).encode())
    report["figures"] = [str(plot_ladder([c for c in cells if c["env"] == env],
                                         out / f"ladder_{name}_{env.replace('/', '_')}.png",
                                         f"{name} ladder on {env}, IQM over {len(seeds)} seeds (95% CI)"))
                         for env in envs]
    return report


def bench_ladder_cli(name: str, envs: list[str], seeds: list[int], out: str, rungs: list[str], steps: int | None,
                     **kwargs: Any) -> int:
    """``deeprl bench --ladder NAME [RUNG ...]``: ``--steps`` is every rung's total_steps."""
    if steps is not None:
        kwargs["settings"] = {**kwargs["settings"], "total_steps": steps}
    report = bench_ladder(name, envs, seeds, out, rungs=rungs, **kwargs)
    print(markdown(report))
    print(f"wrote {Path(out) / 'results.json'}, report.md and {', '.join(Path(f).name for f in report['figures'])}")
    return 0


def markdown(report: dict[str, Any]) -> str:
    """The ladder's table per env: rung, what it adds, final IQM [CI], solved, steps and time to stay solved."""
    from deeprl.report import fmt, table

    m = report["machine"]
    lines = [f"# deeprl ladder {report['ladder']}, {report['date']}", "",
             (f"{m['cpus']} CPUs, {m['processor']}, torch {m['torch']}. Seeds {report['seeds']}; each run's final "
              f"model over {report['eval_episodes']} fresh episodes; steps and time to stay solved are medians over "
              "the seeds whose evaluations stayed at or above the threshold. Machine-specific."), ""]
    for env in dict.fromkeys(c["env"] for c in report["results"]):
        rows = []
        for c in (c for c in report["results"] if c["env"] == env):
            if "not_run" in c:
                rows.append([c["rung"], c["adds"], f"not run: {c['algo']} has no {', '.join(c['not_run'])} yet",
                             "-", "-", "-", "-"])
                continue
            ci = c["iqm_ci"] or [None, None]
            n = c["n_seeds"]
            stayed = "" if c["n_stayed_solved"] is None else f" ({c['n_stayed_solved']} of {n})"
            times = [t for t in c["train_time"] if t is not None]
            rows.append([c["rung"], c["adds"], f"{fmt(c['iqm'])} [{fmt(ci[0])}, {fmt(ci[1])}]",
                         "-" if c["n_solved"] is None else f"{c['n_solved']}/{n}",
                         fmt(c["median_steps_to_stay"], 0) + stayed,
                         ("-" if c["median_time_to_stay"] is None else f"{c['median_time_to_stay']:.0f} s") + stayed,
                         f"{fmt(float(np.mean(times)) if times else None, 0)} s"])
        lines += [f"## {env}", "", *table(["rung", "adds", "final IQM [95% CI]", "solved", "steps to stay solved",
                                           "time to stay solved", "train time / run"], rows), ""]
    return "\n".join(lines)
