"""Sweeps and trials on a local Ray cluster, started once for this module: the same results as
without Ray, and a worker killed with SIGKILL is retried from its run's last checkpoint."""

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from deeprl.runner import Trial, run_trial, run_trials
from deeprl.sweep import sweep

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": threads})
    yield
    ray.shutdown()


def test_a_sweep_on_ray_gives_the_results_of_one_without(tmp_path, cluster):
    kw = dict(trials=2, seeds=2, steps=256, search="random", eval_episodes=2, quiet=True,
              settings=dict(num_envs=2, minibatch_size=32, n_epochs=1, eval_freq=0))
    space = ["lr=loguniform:1e-4:3e-3", "n_steps=choice:16,32"]
    on_ray = sweep("ppo", "CartPole-v1", space, tmp_path / "ray", backend="ray", workers=2, **kw)
    local = sweep("ppo", "CartPole-v1", space, tmp_path / "local", backend="processes", workers=1, **kw)
    assert [(c["params"], c["finals"]) for c in on_ray["ranked"]] == [(c["params"], c["finals"])
                                                                      for c in local["ranked"]]


def test_asha_on_ray_gives_the_results_of_asha_without(tmp_path, cluster):
    kw = dict(trials=3, seeds=1, steps=768, search="grid", eval_episodes=2, quiet=True, scheduler="asha",
              min_steps=256, settings=dict(num_envs=2, n_steps=16, minibatch_size=32, n_epochs=1, eval_freq=0,
                                           log_interval=64, checkpoint_freq=128))
    space = ["lr=choice:1e-4,1e-3,1e-2"]
    on_ray = sweep("ppo", "CartPole-v1", space, tmp_path / "ray", backend="ray", workers=2, **kw)
    local = sweep("ppo", "CartPole-v1", space, tmp_path / "local", backend="processes", workers=1, **kw)
    summary = lambda report: [(c["index"], c["rungs"]["0"]["objective"], c.get("reached")) for c in report["ranked"]]  # noqa: E731
    assert sorted(summary(on_ray)) == sorted(summary(local))
    assert on_ray["best"]["finals"] == local["best"]["finals"]


def _holder_of(lock: Path) -> int | None:
    """The process that has ``lock`` open (the run's trainer)."""
    target = str(lock.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the worker through /proc")
def test_a_killed_worker_is_retried_from_its_last_checkpoint(tmp_path, cluster):
    trial = Trial("dqn", "CartPole-v1", 0, str(tmp_path / "run"), preset=None, eval_episodes=2,
                  settings=dict(total_steps=8000, learning_starts=500, buffer_size=5000, checkpoint_freq=1000,
                                log_interval=500, eval_freq=0))
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(result=run_trials([trial], workers=2, backend="ray")[0]))
    thread.start()
    run = Path(trial.out)
    deadline, pid = time.time() + 120, None
    while time.time() < deadline and pid is None:  # a checkpoint is written: kill the trainer now
        if (run / "checkpoints" / "latest").exists():
            pid = _holder_of(run / ".lock")
        time.sleep(0.05)
    assert pid is not None and not (run / "final.json").exists()
    killed_at = (run / "checkpoints" / "latest").read_text().strip()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    result = out["result"]
    assert result["final"] is not None and result["steps"] == 8000
    assert killed_at != "step_000000008000"  # it was killed before the end, and finished on a retry
    # exact resume: the retried run ends as the same trial run without interruption
    reference = run_trial(dataclasses.replace(trial, out=str(tmp_path / "reference")))
    assert result["returns"] == reference["returns"]
