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
A run directory already holding a run trained with other resolved settings (its ``config.json``,
see :func:`config_differences`) is never taken for the trial: the trial is refused instead of
judging the old model.

A trial with ``pause_at`` trains only up to that step of its planned run (its schedules keep
the planned length), checkpoints, and is judged there (``rung_<step>.json``); the same trial
with a later ``pause_at``, or none, continues it exactly.  The sweep's one driver (asynchronous
successive halving; a plain sweep is its one-rung case) runs on this and on :class:`TrialPool`,
which takes trials one at a time as workers free.
"""

from __future__ import annotations

import json
import os
import signal
import threading
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
    pause_at: int | None = None               # judge the run at this step of its plan, not at its end

    @property
    def path(self) -> Path:
        return Path(self.out)

    @property
    def result_file(self) -> Path:
        return self.path / (FINAL_FILE if self.pause_at is None else f"rung_{self.pause_at}.json")


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train ``trial`` (or resume it, or read back its result) and evaluate its final model
    (or, with ``pause_at``, the model where it paused).

    Returns ``{"trial": ..., "final": mean return, "returns": [...], "wall_time": s, "steps": n,
    "curve": {"step": [...], "eval": [...], "wall_time": [...]}}``, also written to
    ``<run>/final.json`` (``<run>/rung_<pause_at>.json``).  A trial that fails returns ``"final":
    None`` and ``"error"``, and ``"busy": True`` when another process holds the run's lock (it is
    training or resuming that run: try the trial again later)."""
    import torch

    from deeprl.errors import DeepRLError

    torch.set_num_threads(1)
    try:
        return _run_trial(trial)
    except DeepRLError as e:  # a trial's own failure (say, training that went NaN) is reported, not fatal
        result = {"trial": _jsonable(trial), "final": None, "error": str(e)}
        if _locked_elsewhere(trial.path):  # another process trains the run: no failure of this trial, "busy"
            result["busy"] = True
        return result


def _locked_elsewhere(run: Path) -> bool:
    """Whether another process holds the training lock of the run directory ``run`` (RunDir.lock)."""
    try:
        import fcntl
        fh = open(run / ".lock", "rb")
    except (ImportError, OSError):
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when fh closes
        except OSError:
            return True
    return False


def trial_config(trial: Trial) -> dict[str, Any]:
    """Every resolved setting ``trial`` trains with: what ``learn`` writes to its ``config.json``
    (the preset, then the seed, one CPU thread and the trial's settings, then the env)."""
    from deeprl import ALGORITHMS
    from deeprl.config import config_to_dict, resolve_config

    config_cls = ALGORITHMS[trial.algo].config_cls
    return config_to_dict(resolve_config(config_cls, trial.algo, trial.env, preset=trial.preset,
                                         overrides=[_run_settings(trial)]))


def _run_settings(trial: Trial) -> dict[str, Any]:
    """What a trial sets over its preset: its seed, one CPU thread, then its own settings."""
    return {"seed": trial.seed, "torch_threads": 1, "device": "cpu", **trial.settings}


def config_differences(trial: Trial) -> list[tuple[str, Any, Any]] | None:
    """How the run already in ``trial``'s directory was set up differently from ``trial``:
    ``[(setting, old value, new value), ...]``, empty when it is the same run; ``None`` when the
    directory holds no run (no ``config.json``).  The stored config is rebuilt with today's
    defaults, so a setting added since it was written is no difference.  A config that cannot
    be read raises :class:`~deeprl.errors.CheckpointError`."""
    from deeprl import ALGORITHMS
    from deeprl.config import build_config, config_to_dict
    from deeprl.errors import CheckpointError, ConfigError
    from deeprl.run import RunDir

    run = RunDir(trial.path)
    if not run.exists():
        return None
    algo, stored = run.read_config()
    if algo != trial.algo:
        return [("algo", algo, trial.algo)]
    if not isinstance(stored, dict):
        raise CheckpointError(f"{str(run.config_file)!r} is damaged: its config is not an object")
    try:
        old = config_to_dict(build_config(ALGORITHMS[trial.algo].config_cls, stored))
    except ConfigError as e:
        raise CheckpointError(f"{str(run.config_file)!r} holds an invalid config: {e}") from None
    new = trial_config(trial)
    return [(key, old.get(key), value) for key, value in new.items() if old.get(key) != value]


def describe_differences(differences: list[tuple[str, Any, Any]], most: int = 4) -> str:
    """``"total_steps 1500 -> 3000, lr 0.001 -> 0.0005"`` (at most ``most``, then how many more)."""
    text = ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in differences[:most])
    if len(differences) > most:
        text += f" and {len(differences) - most} more"
    return text


def _run_trial(trial: Trial) -> dict[str, Any]:
    from deeprl import ALGORITHMS
    from deeprl.checkpoint import atomic_write_json, read_json
    from deeprl.errors import ConfigError
    from deeprl.run import RunDir

    differences = config_differences(trial)
    if differences:  # another run lives there: never judge its model as this trial's
        raise ConfigError(f"run {trial.out!r} was trained with other settings ({describe_differences(differences)});"
                          " its model is not judged as this trial's: choose another folder, or delete the run")
    done_file = trial.result_file
    if done_file.exists():
        result = read_json(done_file, "trial result")
        if result.get("trial") == _jsonable(trial):
            return result
    cls = ALGORITHMS[trial.algo]
    run = RunDir(trial.path)
    start = time.perf_counter()
    if run.exists() and (run.path / "model.safetensors").exists() and (run.path / "eval.json").exists():
        run.lock()  # trained, not yet judged: nobody else may be resuming it meanwhile
        try:
            agent = cls.load(run.model_file, device="cpu")
        except BaseException:
            run.unlock()
            raise
        agent.run = run  # close() releases the lock
    else:
        existing = run.exists()
        agent = cls.resume(run.path) if existing else cls(trial.env, preset=trial.preset, **_run_settings(trial))
        try:
            agent.learn(run_dir=None if existing else run.path, progress=False, pause_at=trial.pause_at)
        except BaseException:
            agent.close()
            raise
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
    d = asdict(trial)
    if d["pause_at"] is None:  # a whole run is described as before pausing existed: old results still match
        del d["pause_at"]
    return json.loads(json.dumps(d))


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
    results: dict[int, dict[str, Any]] = {}
    with TrialPool(workers=workers, backend=backend, address=address) as pool:
        for i, trial in enumerate(trials):
            pool.submit(trial, key=i)
        while pool.pending:
            i, result = pool.next_result()
            results[i] = result
            if on_result is not None:
                on_result(result)
    return [results[i] for i in range(len(trials))]


class TrialPool:
    """Trials submitted one at a time and their results as each finishes, on ``workers`` worker
    processes, a Ray cluster (``backend="ray"``: a local one of ``workers`` CPUs, or the one at
    ``address``), or in this process (``workers=1`` with processes: one trial at a time).

    ``submit(trial, key)`` queues a trial; ``next_result()`` blocks until one is done and returns
    ``(key, result)``.  Use it as a context manager: leaving shuts the workers down."""

    def __init__(self, *, workers: int = 0, backend: str = "processes", address: str | None = None):
        self.workers = resolve_workers(workers)
        if backend == "auto":  # Ray's own services cost more than they give on one small machine (see docstring)
            backend = "ray" if address else "processes"
        self.backend, self.address = backend, address
        self._futures: dict[Any, Any] = {}   # future or Ray ref -> key
        self._inline: list[tuple[Any, Trial]] = []
        self._executor: Any = None
        self._ray: Any = None
        self._ray_started_here = False
        if backend == "ray":
            self._start_ray()
        elif self.workers > 1:
            import multiprocessing as mp
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                                 initializer=_worker_init)

    @property
    def pending(self) -> int:
        """Trials submitted whose results have not been taken yet."""
        return len(self._futures) + len(self._inline)

    def submit(self, trial: Trial, key: Any = None) -> None:
        if self._ray is not None:
            self._futures[self._remote.remote(trial)] = key
        elif self._executor is not None:
            self._futures[self._executor.submit(_run_in_worker, trial)] = key
        else:
            self._inline.append((key, trial))

    def next_result(self) -> tuple[Any, dict[str, Any]]:
        if self._inline:
            key, trial = self._inline.pop(0)
            return key, run_trial(trial)
        if not self._futures:
            raise RuntimeError("next_result() with no trial pending")
        if self._ray is not None:
            ready, _ = self._ray.wait(list(self._futures), num_returns=1)
            return self._futures.pop(ready[0]), self._ray.get(ready[0])
        future = next(as_completed(list(self._futures)))
        return self._futures.pop(future), future.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._ray is not None and self._ray_started_here:
            self._ray.shutdown()
        self._ray = None

    def __enter__(self) -> "TrialPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start_ray(self) -> None:
        try:
            import ray
        except ImportError:
            from deeprl.errors import ConfigError
            raise ConfigError("the Ray backend needs Ray; install it with: pip install -e \".[ray]\"") from None
        self._ray_started_here = not ray.is_initialized()
        if self._ray_started_here:
            env = {"env_vars": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, runtime_env=env, include_dashboard=False, log_to_driver=False)
        self._ray = ray
        # a worker that dies (killed, out of memory) is retried; the retry resumes from the
        # trial's last checkpoint, since run_trial is idempotent
        self._remote = ray.remote(num_cpus=1, max_retries=3)(run_trial)


def _worker_init() -> None:
    """A pool worker: one thread in every native pool, or side-by-side runs fight for cores; and
    no orphans: a worker whose driver is gone (killed, even with SIGKILL) stops its trial as
    SIGTERM would, with a checkpoint, so a rerun of the bench resumes it."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="deeprl-orphan-watch", daemon=True).start()


def _run_in_worker(trial: Trial) -> dict[str, Any]:
    """:func:`run_trial` in a pool worker.  A trial stopped by a signal has written its checkpoint;
    the worker then exits instead of taking the next queued trial (the driver is stopping)."""
    from deeprl.errors import Interrupted

    try:
        return run_trial(trial)
    except Interrupted:
        os._exit(1)
