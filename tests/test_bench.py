"""deeprl bench: the statistics against hand-computed numbers, the report's fields, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deeprl.bench import iqm, iqm_ci, iqm_curve, stays_above, threshold_for
from deeprl.cli import main
from deeprl.runner import FINAL_FILE, Trial, run_trials


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 values: drop the lowest 2 and the highest 2, average the middle 4
    assert iqm(np.array([0, 1, 2, 3, 4, 5, 6, 100])) == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert iqm(np.array([7.0, 7.0, 7.0])) == 7.0


def test_iqm_ci_brackets_the_iqm_and_shrinks_with_agreement():
    rng = np.random.default_rng(0)
    spread = rng.normal(100, 30, size=10)
    lo, hi = iqm_ci(spread)
    assert lo <= iqm(spread) <= hi and hi - lo > 5
    tight_lo, tight_hi = iqm_ci(spread / 30 + 100)
    assert tight_hi - tight_lo < (hi - lo) / 10
    assert iqm_ci(np.array([500.0] * 5)) == [500.0, 500.0]


def test_time_to_stay_above_the_threshold():
    curve = {"step": [1, 2, 3, 4, 5], "eval": [100, 480, 300, 490, 500], "wall_time": [10, 20, 30, 40, 50]}
    assert stays_above(curve, 500, 475) == {"step": 4, "wall_time": 40}   # not 2: it fell back at 3
    assert stays_above(curve, 400, 475) == {"step": None, "wall_time": None}   # the final model misses
    assert stays_above({"step": [1], "eval": [400], "wall_time": [1]}, 480, 475)["step"] is None


def test_iqm_curve_over_the_steps_every_seed_has():
    curves = [{"step": [1, 2, 3], "eval": [1.0, 2.0, 3.0]}, {"step": [1, 2], "eval": [3.0, 4.0]}]
    out = iqm_curve(curves)
    assert out["step"] == [1, 2] and out["iqm"] == [2.0, 3.0]


def test_thresholds():
    assert threshold_for("CartPole-v1") == 475 and threshold_for("Pendulum-v1") == -200
    assert threshold_for("MountainCar-v0") == -110 and threshold_for("NoSuch-v9") is None


def test_bench_smoke_writes_results_report_and_curves(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["bench", "--algos", "dqn", "ppo", "--envs", "CartPole-v1", "--seeds", "2", "--steps", "1024",
            "--set", "eval_freq=512", "eval_episodes=2", "--episodes", "3", "--workers", "1", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["command"].startswith("deeprl bench --algos dqn ppo") and report["machine"]["cpus"] >= 1
    cells = {c["algo"]: c for c in report["results"]}
    for algo in ("dqn", "ppo"):
        c = cells[algo]
        assert c["env"] == "CartPole-v1" and c["seeds"] == [1000, 1001] and len(c["final"]) == 2
        assert c["threshold"] == 475 and c["iqm_ci"][0] <= c["iqm"] <= c["iqm_ci"][1]
        assert 0.0 <= c["solved_fraction"] <= 1.0 and c["curve"]["step"]
        run = out / algo / "CartPole-v1" / "seed_1000"
        assert (run / "model.safetensors").exists() and (run / FINAL_FILE).exists()
        assert main(["eval", str(run), "--episodes", "1"]) == 0        # an ordinary run directory
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| dqn | CartPole-v1 |" in (out / "report.md").read_text()
    # a second bench over the same folder reads the finished runs back: nothing is trained again
    stamp = (out / "dqn" / "CartPole-v1" / "seed_1000" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "dqn" / "CartPole-v1" / "seed_1000" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["results"][0]["final"] == cells["dqn"]["final"]


def test_an_interrupted_trial_resumes_from_its_checkpoint(tmp_path):
    from deeprl import DQN
    trial = Trial("dqn", "CartPole-v1", 1, str(tmp_path / "t"), settings={"total_steps": 1500, "checkpoint_freq": 500,
                                                                           "eval_freq": 0}, eval_episodes=2)
    agent = DQN("CartPole-v1", seed=1, **trial.settings, torch_threads=1, device="cpu")

    def stop(a):
        if a.num_timesteps >= 1000:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        agent.learn(run_dir=trial.path, callback=stop)
    agent.close()
    (result,) = run_trials([trial], workers=1)
    assert result["steps"] == 1500 and result["final"] is not None


def test_a_failing_trial_is_reported_not_fatal(tmp_path):
    (result,) = run_trials([Trial("dqn", "CartPole-v1", 0, str(tmp_path / "t"), settings={"lr": float("nan")})],
                           workers=1)
    assert result["final"] is None and "finite" in result["error"]


def test_bad_bench_input_is_one_line(tmp_path, capsys):
    assert main(["bench", "--algos", "dqm", "--out", str(tmp_path)]) == 2
    assert "did you mean 'dqn'" in capsys.readouterr().err.lower()
    assert main(["bench", "--algos", "dqn", "--envs", "Pendulum-v1", "--out", str(tmp_path)]) == 2


def test_a_killed_bench_leaves_no_orphan_runs(tmp_path):
    """SIGKILL the bench itself: its worker processes notice, stop their runs with a checkpoint
    (as SIGTERM would) and exit, instead of training on unseen."""
    import fcntl
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "b"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", "bench", "--algos", "dqn", "--seeds", "2", "--workers",
                             "2", "--backend", "processes", "--steps", "500000", "--out", str(out), "--set",
                             "checkpoint_freq=500", "eval_freq=0", "log_interval=500"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(root)})
    runs = [out / "dqn" / "CartPole-v1" / f"seed_{s}" for s in (1000, 1001)]
    deadline = time.time() + 120
    while time.time() < deadline and not all((r / "checkpoints" / "latest").exists() for r in runs):
        time.sleep(0.2)
    assert all((r / "checkpoints" / "latest").exists() for r in runs)
    proc.kill()
    proc.wait(timeout=30)

    def free(run):
        with open(run / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            return True
    deadline = time.time() + 60
    while time.time() < deadline and not all(free(r) for r in runs):
        time.sleep(0.5)
    assert all(free(r) for r in runs), "a worker kept training after its bench was killed"
    for r in runs:
        assert not (r / "model.safetensors").exists()
        state = json.loads(((r / "checkpoints") / (r / "checkpoints" / "latest").read_text().strip() / "state.json")
                           .read_text())
        assert 0 < state["num_timesteps"] < 500_000 and not state["finished"]
