"""Running many training runs at once: the one place ``deeprl bench`` and ``deeprl sweep`` start trials.

A :class:`Trial` is one ordinary deeprl run: an algorithm, an env, a seed and settings, trained
into its own run directory and then judged by its *final* model on fresh evaluation episodes.
:func:`run_trials` runs a list of them in parallel, each with one torch thread:

* in a pool of worker processes on this machine (bench's default);
* on a Ray cluster (the sweep's default): a local one (``backend="ray"``,
  ``ray.init(num_cpus=workers)``) or an existing one given by ``address``.  A Ray task trains
  as fast as a process-pool worker once Ray is up (a 3,000-step DQN run: 2.4 s either way);
  starting the local cluster and its workers costs a few seconds per sweep.

Trials are idempotent: a finished one (its ``final.json`` exists) is read back, not redone; one
that was stopped resumes from its last checkpoint.  So a killed bench continues where it was.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

FINAL_FILE = "final.json"
FINAL_EVAL_SEED = 10_000_019  # final evaluations play seeds no training run or periodic evaluation uses


@dataclass(frozen=True)
class Trial:
    """One run: ``algo`` on ``env`` with ``seed``; ``settings`` override the preset."""

    algo: str
    env: str
    seed: int
    out: str                                  # the run directory
    settings: dict[str, Any] = field(default_factory=dict)
    preset: str | None = "auto"               # the tuned preset named after env, as deeprl train
    eval_episodes: int = 20                   # episodes of the final evaluation

    @property
    def path(self) -> Path:
        return Path(self.out)


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train ``trial`` (or resume it, or read back its result) and evaluate its final model.

    Returns ``{"trial": ..., "final": mean return, "returns": [...], "wall_time": s, "steps": n,
    "curve": {"step": [...], "eval": [...], "wall_time": [...]}}``, also written to
    ``<run>/final.json``."""
    import torch

    from deeprl.errors import DeepRLError

    torch.set_num_threads(1)
    try:
        return _run_trial(trial)
    except DeepRLError as e:  # a trial's own failure (say, training that went NaN) is reported, not fatal
        return {"trial": _jsonable(trial), "final": None, "error": str(e)}


def _run_trial(trial: Trial) -> dict[str, Any]:
    from deeprl import ALGORITHMS
    from deeprl.checkpoint import atomic_write_json, read_json
    from deeprl.run import RunDir

    done_file = trial.path / FINAL_FILE
    if done_file.exists():
        result = read_json(done_file, "trial result")
        if result.get("trial") == _jsonable(trial):
            return result
    cls = ALGORITHMS[trial.algo]
    run = RunDir(trial.path)
    start = time.perf_counter()
    if run.exists():
        if (run.path / "model.safetensors").exists() and (run.path / "eval.json").exists():
            agent = cls.load(run.model_file, device="cpu")   # trained, not yet judged
        else:
            agent = cls.resume(run.path)
            agent.learn(progress=False)
    else:
        settings = {"seed": trial.seed, "torch_threads": 1, "device": "cpu", **trial.settings}
        agent = cls(trial.env, preset=trial.preset, **settings)
        agent.learn(run_dir=run.path, progress=False)
    try:
        final = agent.evaluate(trial.eval_episodes, seed=FINAL_EVAL_SEED + trial.seed)
    finally:
        agent.close()
    curve = eval_curve(run.path)
    result = {"trial": _jsonable(trial), "final": final["mean_return"], "returns": final["returns"],
              "steps": agent.num_timesteps, "wall_time": curve.pop("training_time"),
              "bench_time": time.perf_counter() - start, "curve": curve}
    atomic_write_json(done_file, result)
    return result


def _jsonable(trial: Trial) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(trial)))


def eval_curve(run: Path) -> dict[str, Any]:
    """The periodic evaluations of a run: steps, mean returns and the wall time at each, and
    ``training_time``, the seconds of training its last metrics row recorded."""
    from deeprl.run import read_metrics

    cols = read_metrics(run / "metrics.csv")
    times = [t for t in cols.get("wall_time", []) if t == t]
    rows = [(s, v, t) for s, v, t in zip(cols["step"], cols.get("eval/mean_return", []), cols["wall_time"]) if v == v]
    # the final evaluation is logged twice at the last step (row and final); keep the last
    curve: dict[float, tuple[float, float]] = {}
    for s, v, t in rows:
        curve[s] = (v, t)
    steps = sorted(curve)
    return {"step": steps, "eval": [curve[s][0] for s in steps], "wall_time": [curve[s][1] for s in steps],
            "training_time": times[-1] if times else None}


def resolve_workers(workers: int) -> int:
    """How many runs go at once: ``workers``, or one per CPU core for 0."""
    return workers or os.cpu_count() or 1


def run_trials(trials: Iterable[Trial], *, workers: int = 0, address: str | None = None,
               backend: str = "auto", on_result: Callable[[dict[str, Any]], None] | None = None
               ) -> list[dict[str, Any]]:
    """Run every trial, ``workers`` at a time (0: one per CPU core), and return their results in the
    order given.  ``backend``: ``"ray"``, ``"processes"`` or ``"auto"`` (Ray when ``address`` is
    given, else processes)."""
    trials = list(trials)
    workers = resolve_workers(workers)
    if backend == "auto":  # Ray's own services cost more than they give on one small machine (see docstring)
        backend = "ray" if address else "processes"
    results: dict[int, dict[str, Any]] = {}

    def done(i: int, result: dict[str, Any]) -> None:
        results[i] = result
        if on_result is not None:
            on_result(result)

    if backend == "ray":
        _run_on_ray(trials, workers, address, done)
    elif workers == 1:
        for i, trial in enumerate(trials):
            done(i, run_trial(trial))
    else:
        import multiprocessing as mp
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_one_thread) as pool:
            futures = {pool.submit(run_trial, t): i for i, t in enumerate(trials)}
            for future in as_completed(futures):
                done(futures[future], future.result())
    return [results[i] for i in range(len(trials))]


def _one_thread() -> None:
    """Worker processes: one thread in every native pool, or side-by-side runs fight for cores."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _run_on_ray(trials: list[Trial], workers: int, address: str | None,
                done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        import ray
    except ImportError:
        from deeprl.errors import ConfigError
        raise ConfigError("the Ray backend needs Ray; install it with: pip install -e \".[ray]\"") from None

    started_here = not ray.is_initialized()
    if started_here:
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, runtime_env=env, include_dashboard=False, log_to_driver=False)
    try:
        # a worker that dies (killed, out of memory) is retried; the retry resumes from the
        # trial's last checkpoint, since run_trial is idempotent
        remote = ray.remote(num_cpus=1, max_retries=3)(run_trial)
        pending = {remote.remote(t): i for i, t in enumerate(trials)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
