"""``deeprl bench``: train presets over several seeds and report what their final models reach.

The report follows Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice":
per-seed final returns, the interquartile mean (IQM) with a 95% bootstrap confidence interval,
mean ± std, the fraction of seeds at or above the env's threshold, the wall time and env steps
until the evaluation curve *stays* above it, and an IQM sample-efficiency curve with its CI band.
The statistics, tables and figures are :mod:`deeprl.report`'s, which the sweep's report shares.

Results are machine-specific: the same seed does not reproduce across machines, so a claim rests
on the spread over seeds, never on one.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from deeprl.checkpoint import atomic_write_bytes, atomic_write_json
from deeprl.report import fmt, iqm, iqm_ci, iqm_curve, plot_curves, solved, stays_above, table
from deeprl.runner import Trial, config_differences, describe_differences, run_trial, run_trials

BUSY_POLL = 2.0  # seconds between looks at a run that another process is training

# Thresholds where Gymnasium's registry gives none, or a different one than the field uses
THRESHOLDS: dict[str, float] = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "LunarLander-v3": 200.0,
                                "MountainCar-v0": -110.0, "Pendulum-v1": -200.0}


def threshold_for(env_id: str) -> float | None:
    if env_id in THRESHOLDS:
        return THRESHOLDS[env_id]
    import gymnasium as gym
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    return spec.reward_threshold


def summarize(algo: str, env: str, results: list[dict[str, Any]], threshold: float | None) -> dict[str, Any]:
    """One (algo, env) cell over its seeds.  A seed that errored has no final model: it is left out
    of the return statistics (IQM, CI, mean, std, curves), which say so (``n_evaluated`` of
    ``n_seeds``, ``n_errored``), and counts as not solved (``n_solved`` of ``n_seeds``)."""
    ok = [r for r in results if r.get("final") is not None]
    failed = [r for r in results if r.get("final") is None]
    finals = np.array([r["final"] for r in ok], dtype=float)
    stayed = [stays_above(r["curve"], r["final"], threshold) for r in ok] if threshold is not None else []
    reached = [s for s in stayed if s["step"] is not None]
    n_solved, solved_fraction = solved(finals, threshold, len(results))  # an errored seed is not solved
    return {
        "algo": algo, "env": env, "seeds": [r["trial"]["seed"] for r in ok], "final": finals.tolist(),
        # how many seeds ran, how many errored, and how many the return statistics are over
        "n_seeds": len(results), "n_errored": len(failed), "n_evaluated": len(ok),
        "errored_seeds": [r["trial"]["seed"] for r in failed],
        "iqm": iqm(finals) if len(finals) else None, "iqm_ci": iqm_ci(finals) if len(finals) else None,
        "mean": float(finals.mean()) if len(finals) else None, "std": float(finals.std()) if len(finals) else None,
        "threshold": threshold,
        "n_solved": n_solved, "solved_fraction": solved_fraction,
        "steps_to_stay": [s["step"] for s in stayed], "time_to_stay": [s["wall_time"] for s in stayed],
        # the median is over the n_stayed_solved runs (of n_seeds) whose evaluations stayed solved
        "n_stayed_solved": len(reached) if threshold is not None else None,
        "median_time_to_stay": float(np.median([s["wall_time"] for s in reached])) if reached else None,
        "train_time": [r.get("wall_time") for r in ok], "env_steps": [r.get("steps") for r in ok],
        "errors": [r.get("error") or "no final evaluation" for r in failed],
        "curve": iqm_curve([r["curve"] for r in ok]),
    }


def bench(algos: list[str], envs: list[str], seeds: list[int], out: str | Path, *, steps: int | None = None,
          settings: dict[str, Any] | None = None, workers: int = 0, eval_episodes: int = 20,
          backend: str = "auto", address: str | None = None, quiet: bool = False,
          command: str | None = None, retrain: bool = False, preset: str | None = "auto") -> dict[str, Any]:
    """Train every (algo, env, seed) into ``out/<algo>/<env>/seed_<n>`` and write
    ``results.json``, ``report.md`` and ``curves.png`` there.  Each run starts from ``preset``
    (``"auto"``: the one tuned for its env; a name: that preset of every algo; ``None``: none).

    Run again into the same ``out`` with the same settings, it continues: finished runs are read
    back, stopped ones resume.  If a run there was trained with other resolved settings (its
    ``config.json``), the bench is refused before anything trains, unless ``retrain``: then
    those run directories are deleted and trained again."""
    from deeprl.agents import algorithm
    from deeprl.config import resolve_config
    from deeprl.errors import ConfigError

    out = Path(out)
    if "seed" in (settings or {}):  # it would override every trial's seed: N copies of one run
        raise ConfigError("--set seed: a bench's seeds come from --seeds and --first-seed (each one its own run); "
                          "drop seed from --set")
    if "env" in (settings or {}):  # --envs would silently win over it
        raise ConfigError("--set env: a bench's envs come from --envs; drop env from --set")
    classes = {algo: algorithm(algo) for algo in algos}
    extra = dict(settings or {})
    if steps is not None:
        extra["total_steps"] = steps
    trials = []
    for algo in algos:
        for env in envs:
            # check every cell's settings and spaces before anything trains
            classes[algo].check(resolve_config(classes[algo].config_cls, algo, env, preset=preset, overrides=[extra]))
            for seed in seeds:
                trials.append(Trial(algo, env, seed, str(out / algo / env.replace("/", "_") / f"seed_{seed}"),
                                    settings=extra, preset=preset, eval_episodes=eval_episodes))
    _check_reruns(trials, retrain=retrain, quiet=quiet)
    if not quiet:
        print(f"bench: {', '.join(algos)} on {', '.join(envs)}, seeds {seeds[0]}-{seeds[-1]} -> {out}", file=sys.stderr)
    start = time.time()

    def progress(result: dict[str, Any]) -> None:
        if not quiet:
            t = result["trial"]
            if result.get("busy"):
                what = "being resumed by another process; waiting for it"
            elif result.get("final") is not None:
                what = f"final {result['final']:.1f}"
            else:
                what = f"error: {result['error']}"
            print(f"  {t['algo']} {t['env']} seed {t['seed']}: {what}", flush=True)

    results = run_trials(trials, workers=workers, backend=backend, address=address, on_result=progress)
    for i, result in enumerate(results):  # a run another process trains is no failure: wait for it, then judge it
        while result.get("busy"):
            time.sleep(BUSY_POLL)
            result = run_trial(trials[i])
        if results[i] is not result:
            results[i] = result
            progress(result)
    cells = []
    for algo in algos:
        for env in envs:
            mine = [r for r in results if r["trial"]["algo"] == algo and r["trial"]["env"] == env]
            cells.append(summarize(algo, env, mine, threshold_for(env)))
    report = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "seeds": seeds,
              "eval_episodes": eval_episodes, "preset": preset, "settings": extra, "elapsed": time.time() - start,
              "results": cells}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", report)
    atomic_write_bytes(out / "report.md", markdown(report).encode())
    plot_curves(cells, out / "curves.png")
    return report


def _check_reruns(trials: list[Trial], *, retrain: bool, quiet: bool) -> None:
    """Refuse, before anything trains, to judge runs trained with other settings as these trials;
    with ``retrain``, delete those runs so that they train again.  A run whose config cannot be
    read is left to its trial, which reports it as that seed's error."""
    from deeprl.errors import CheckpointError, ConfigError
    from deeprl.run import RunDir

    stale = []
    for trial in trials:
        try:
            differences = config_differences(trial)
        except CheckpointError:
            continue
        if differences:
            stale.append((trial, differences))
    if not stale:
        return
    if not retrain:
        trial, differences = stale[0]
        more = f" (and {len(stale) - 1} more runs)" if len(stale) > 1 else ""
        raise ConfigError(f"run {trial.out!r}{more} was trained with other settings "
                          f"({describe_differences(differences)}); choose another --out, or add --retrain to "
                          f"delete {'those runs' if more else 'it'} and train again")
    for trial, _ in stale:
        run = RunDir(trial.path)
        run.lock()  # refused if another process is training it
        try:
            shutil.rmtree(run.path)
        finally:
            run.unlock()
        if not quiet:
            print(f"bench: deleted {trial.out} (trained with other settings) to train it again", file=sys.stderr)


def machine() -> dict[str, Any]:
    import os

    import torch
    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}




def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    rows = []
    for c in report["results"]:
        ci = c["iqm_ci"] or [None, None]
        n, errored, evaluated = c["n_seeds"], c["n_errored"], c["n_evaluated"]
        over = f"({evaluated} of {n} seeds" + (f"; {errored} errored)" if errored else ")")
        n_solved = "-" if c["n_solved"] is None else f"{c['n_solved']}/{n}"
        median = "-" if c["median_time_to_stay"] is None else f"{c['median_time_to_stay']:.0f} s"
        stay = "-" if c["n_stayed_solved"] is None else f"{median} ({c['n_stayed_solved']} of {n} stayed solved)"
        times = [t for t in c["train_time"] if t is not None]
        rows.append([c["algo"], c["env"], f"{fmt(c['iqm'])} [{fmt(ci[0])}, {fmt(ci[1])}] {over}",
                     f"{fmt(c['mean'])} ± {fmt(c['std'])} ({evaluated} of {n})", n_solved, fmt(c["threshold"], 0),
                     ", ".join(fmt(f) for f in c["final"]), stay,
                     f"{fmt(float(np.mean(times)) if times else None, 0)} s ({len(times)} of {n})"])
        rows += [["", f"seed {seed} error: {error}", *[""] * 7] for seed, error in zip(c["errored_seeds"], c["errors"])]
    lines = [f"# deeprl bench, {report['date']}", "",
             f"{m['cpus']} CPUs, {m['processor']}, {m['platform']}, torch {m['torch']}"
             + (f", {m['cuda']}" if m.get("cuda") else "") + ".",
             ("" if report.get("preset", "auto") == "auto" else f"Every run from preset {report['preset']!r}. ")
             + f"Seeds {report['seeds']}; each run's final model over {report['eval_episodes']} fresh episodes. "
             "Results are machine-specific: the same seed gives other numbers on another machine. "
             "Each aggregate says over how many seeds it is taken; a seed that errored has no final model, "
             "so it is left out of the returns and counts as not solved.", "",
             *table(["algo", "env", "IQM [95% CI]", "mean ± std", "solved", "threshold", "per-seed finals",
                     "median time to stay solved", "train time / run"], rows)]
    return "\n".join(lines) + "\n"
