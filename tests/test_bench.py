"""deeprl bench: the statistics against hand-computed numbers, the report's fields, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deeprl.bench import iqm, iqm_ci, iqm_curve, markdown, stays_above, summarize, threshold_for
from deeprl.cli import main
from deeprl.runner import FINAL_FILE, Trial, config_differences, run_trial, run_trials


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
        assert c["n_seeds"] == c["n_evaluated"] == 2 and c["n_errored"] == 0 and c["errored_seeds"] == []
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


def _tiny_bench(out, *extra, settings=()):
    """A one-seed DQN bench that trains in about a second (no gradient step before 1,000 steps)."""
    return ["bench", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "1", "--set", "eval_freq=200",
            "eval_episodes=2", *settings, "--episodes", "2", "--workers", "1", "--out", str(out), *extra]


def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_rerun_with_other_settings_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(_tiny_bench(out, "--steps", "400")) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(_tiny_bench(out, "--steps", "800")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("deeprl: error:")
    assert str(out / "dqn" / "CartPole-v1" / "seed_1000") in err and "total_steps 400 -> 800" in err
    assert "--out" in err and "--retrain" in err
    assert _snapshot(out) == before          # nothing trained, evaluated or rewritten
    # another setting, given with --set, is named the same way
    assert main(_tiny_bench(out, "--steps", "400", settings=["gamma=0.9"])) == 2
    assert "gamma 0.98 -> 0.9" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_the_same_settings_rerun_reads_back_and_resumes(tmp_path):
    out = tmp_path / "b"
    args = _tiny_bench(out, "--steps", "400")
    assert main(args) == 0
    run = out / "dqn" / "CartPole-v1" / "seed_1000"
    trial = Trial("dqn", "CartPole-v1", 1000, str(run), settings={"eval_freq": "200", "eval_episodes": "2",
                                                                  "total_steps": 400}, eval_episodes=2)
    assert config_differences(trial) == []
    assert config_differences(Trial("dqn", "CartPole-v1", 1000, str(tmp_path / "none"))) is None
    assert [k for k, _, _ in config_differences(Trial("dqn", "CartPole-v1", 1000, str(run)))] == ["total_steps",
                                                                                                   "eval_freq",
                                                                                                   "eval_episodes"]
    # a setting added to deeprl after the run was written is no difference: today's default fills it
    stored = json.loads((run / "config.json").read_text())
    del stored["config"]["log_interval"]
    (run / "config.json").write_text(json.dumps(stored))
    assert config_differences(trial) == []
    final = json.loads((run / FINAL_FILE).read_text())
    model = (run / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0                                   # read back: nothing trained or judged again
    assert json.loads((run / FINAL_FILE).read_text()) == final
    assert (run / "model.safetensors").stat().st_mtime_ns == model
    report = json.loads((out / "results.json").read_text())["results"][0]
    assert report["final"] == [final["final"]] and report["env_steps"] == [400]
    # a judged run whose result is gone is judged again from its model, not retrained
    (run / FINAL_FILE).unlink()
    assert main(args) == 0
    assert json.loads((run / FINAL_FILE).read_text())["final"] == final["final"]
    assert (run / "model.safetensors").stat().st_mtime_ns == model


def test_a_trial_never_judges_a_run_trained_with_other_settings(tmp_path):
    """The runner's own defence (sweeps start trials without bench's check): an error, not the old model."""
    trial = Trial("dqn", "CartPole-v1", 0, str(tmp_path / "t"), settings={"total_steps": 300, "eval_freq": 0},
                  eval_episodes=2)
    assert run_trial(trial)["steps"] == 300
    (tmp_path / "t" / FINAL_FILE).unlink()
    longer = Trial("dqn", "CartPole-v1", 0, str(tmp_path / "t"), settings={"total_steps": 600, "eval_freq": 0},
                   eval_episodes=2)
    result = run_trial(longer)
    assert result["final"] is None and "total_steps 300 -> 600" in result["error"]
    assert not (tmp_path / "t" / FINAL_FILE).exists()


def test_retrain_deletes_the_runs_with_other_settings_and_trains_them_again(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(_tiny_bench(out, "--steps", "400")) == 0
    run = out / "dqn" / "CartPole-v1" / "seed_1000"
    (run / "stale-marker").write_text("from the 400-step run")
    assert main(_tiny_bench(out, "--steps", "800", "--retrain")) == 0
    assert not (run / "stale-marker").exists()
    final = json.loads((run / FINAL_FILE).read_text())
    assert final["steps"] == 800 and final["trial"]["settings"]["total_steps"] == 800
    assert json.loads((run / "config.json").read_text())["config"]["total_steps"] == 800
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["total_steps"] == 800 and report["results"][0]["env_steps"] == [800]
    # now the same settings: read back, not retrained, with or without --retrain
    model = (run / "model.safetensors").stat().st_mtime_ns
    assert main(_tiny_bench(out, "--steps", "800", "--retrain")) == 0
    assert (run / "model.safetensors").stat().st_mtime_ns == model


def _result(seed, final=None, evals=(), error=None):
    if final is None:
        return {"trial": {"algo": "dqn", "env": "CartPole-v1", "seed": seed}, "final": None, "error": error}
    steps = [1000 * (i + 1) for i in range(len(evals))]
    return {"trial": {"algo": "dqn", "env": "CartPole-v1", "seed": seed}, "final": final, "steps": steps[-1],
            "wall_time": 10.0 * len(evals), "curve": {"step": steps, "eval": list(evals),
                                                      "wall_time": [10.0 * (i + 1) for i in range(len(evals))]}}


def test_errored_seeds_count_in_the_summary_and_the_report():
    results = [_result(1000, 500.0, [100, 480, 500]),         # stays solved from step 2000 (20 s)
               _result(1001, 490.0, [480, 300, 490]),         # solved at the end only: stays from step 3000
               _result(1002, 480.0, [490, 470]),              # the final model passes, the last evaluation missed
               _result(1003, error="training produced NaN"),
               _result(1004, error="worker died")]
    c = summarize("dqn", "CartPole-v1", results, 475.0)
    assert c["n_seeds"] == 5 and c["n_errored"] == 2 and c["n_evaluated"] == 3
    assert c["seeds"] == [1000, 1001, 1002] and c["errored_seeds"] == [1003, 1004]
    assert c["n_solved"] == 3 and c["solved_fraction"] == pytest.approx(3 / 5)   # errored seeds are not solved
    assert c["n_stayed_solved"] == 2 and c["median_time_to_stay"] == pytest.approx(25.0)
    assert c["iqm"] == pytest.approx(iqm(np.array([500.0, 490.0, 480.0])))
    report = {"machine": {"cpus": 2, "processor": "x86_64", "platform": "Linux", "torch": "2"}, "date": "2026-01-01",
              "seeds": [1000, 1001, 1002, 1003, 1004], "eval_episodes": 20, "results": [c]}
    row = next(line for line in markdown(report).splitlines() if line.startswith("| dqn | CartPole-v1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2].endswith("(3 of 5 seeds; 2 errored)") and cells[3].endswith("(3 of 5)")
    assert cells[4] == "3/5" and cells[7] == "25 s (2 of 5 stayed solved)"
    text = markdown(report)
    assert "seed 1003 error: training produced NaN" in text and "seed 1004 error: worker died" in text
    # no errors: the counts still say over how many seeds
    clean = summarize("dqn", "CartPole-v1", results[:3], 475.0)
    assert clean["n_errored"] == 0 and "(3 of 3 seeds)" in markdown({**report, "results": [clean]})
    # every seed errored: nothing to aggregate, nothing solved
    failed = summarize("dqn", "CartPole-v1", results[3:], 475.0)
    assert failed["n_solved"] == 0 and failed["solved_fraction"] == 0.0 and failed["iqm"] is None
    assert "| 0/2 |" in markdown({**report, "results": [failed]})


def _preset_results_module():
    """benchmarks/preset_results.py, which is a script and not a package module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "preset_results.py"
    spec = importlib.util.spec_from_file_location("preset_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preset_results_count_errored_seeds_as_run_and_not_solved():
    preset_results = _preset_results_module()
    results = [_result(1000, 500.0, [100, 480, 500]), _result(1001, 490.0, [480, 300, 490]),
               _result(1002, 480.0, [490, 470]), _result(1003, error="training produced NaN"),
               _result(1004, error="worker died")]
    report = {"command": "deeprl bench", "machine": {"cpus": 2, "processor": "x86_64"}, "date": "2026-01-01",
              "eval_episodes": 20}
    line = preset_results.results_line(report, summarize("dqn", "CartPole-v1", results, 475.0))
    assert "seeds 1000-1004" in line and "(2 of 5 seeds errored)" in line and "3 of 5 at 475 or better" in line
    failed = preset_results.results_line(report, summarize("dqn", "CartPole-v1", results[3:], 475.0))
    assert "IQM - [-, -], 0 of 2 at 475 or better" in failed
    old = {**summarize("dqn", "CartPole-v1", results[:3], 475.0), "solved_fraction": 2 / 3}  # before n_solved
    del old["n_solved"], old["n_seeds"]
    assert "2 of 3 at 475 or better" in preset_results.results_line(report, old)


def test_preset_results_write_into_their_own_preset_block(tmp_path, monkeypatch):
    """A preset without a results line gains one after its description; the next preset's line is
    left alone (it once took the first results line after the preset's name, the next block's);
    a line that is there is replaced."""
    preset_results = _preset_results_module()
    monkeypatch.setattr(preset_results, "ROOT", tmp_path)
    (tmp_path / "deeprl" / "presets").mkdir(parents=True)
    yaml_file = tmp_path / "deeprl" / "presets" / "dqn.yaml"
    yaml_file.write_text("S:\n  lr: 1\nCartPole-v1:\n  description: new\n  lr: 2\n"
                         "Acrobot-v1:\n  description: old\n  results: \"old line\"\n  lr: 3\n")
    assert preset_results.update_preset("dqn", "CartPole-v1", "first")
    assert preset_results.update_preset("dqn", "Acrobot-v1", "second")
    assert not preset_results.update_preset("dqn", "MountainCar-v0", "none")
    assert yaml_file.read_text() == ("S:\n  lr: 1\nCartPole-v1:\n  description: new\n  results: \"first\"\n  lr: 2\n"
                                     "Acrobot-v1:\n  description: old\n  results: \"second\"\n  lr: 3\n")


def test_a_run_another_process_trains_is_waited_for_not_counted_as_failed(tmp_path, capsys):
    """The run of a seed is locked by another process (say a resume of it): bench says so, waits,
    and judges the run once it is free, instead of recording the seed as errored."""
    import threading

    from deeprl import ALGORITHMS
    from deeprl.bench import bench
    from deeprl.config import build_config
    from deeprl.run import RunDir
    from deeprl.runner import trial_config

    settings = {"eval_freq": 0, "log_interval": 100, "checkpoint_freq": 100, "learning_starts": 50, "net_arch": [8],
                "total_steps": 600}
    trial = Trial("dqn", "CartPole-v1", 5, str(tmp_path / "b" / "dqn" / "CartPole-v1" / "seed_5"), settings=settings,
                  eval_episodes=2)
    agent = ALGORITHMS["dqn"].from_config(build_config(ALGORITHMS["dqn"].config_cls, trial_config(trial)))

    def stop(a):
        if a.num_timesteps >= 300:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        agent.learn(run_dir=trial.path, progress=False, callback=stop)
    agent.close()
    holder = RunDir(trial.path)
    holder.lock()
    threading.Timer(3.0, holder.unlock).start()
    report = bench(["dqn"], ["CartPole-v1"], [5], tmp_path / "b", settings={k: v for k, v in settings.items()
                                                                            if k != "total_steps"},
                   steps=600, workers=1, eval_episodes=2, backend="processes")
    cell = report["results"][0]
    assert cell["n_errored"] == 0 and cell["n_evaluated"] == 1, cell["errors"]
    assert json.loads((trial.path / FINAL_FILE).read_text())["steps"] == 600
    assert "being resumed by another process; waiting for it" in capsys.readouterr().out


def test_env_in_set_is_refused_since_envs_names_them(tmp_path):
    assert main(["bench", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "1", "--out", str(tmp_path / "b"),
                 "--set", "env=Acrobot-v1"]) == 2
    assert not (tmp_path / "b").exists()


def test_preset_names_the_settings_of_every_run(tmp_path, capsys):
    """--preset NAME: every run starts from that preset (here C51's), not the env's own; an unknown
    name is refused in one line before anything trains, and so is --preset with a ladder."""
    out = tmp_path / "b"
    args = ["bench", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "1", "--steps", "300", "--preset",
            "c51-cartpole", "--set", "learning_starts=100", "eval_freq=300", "--episodes", "1", "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "dqn" / "CartPole-v1" / "seed_1000" / "config.json").read_text())["config"]
    assert config["distributional"] == "c51" and config["v_max"] == 60.0 and config["total_steps"] == 300
    assert json.loads((out / "results.json").read_text())["preset"] == "c51-cartpole"
    assert "preset 'c51-cartpole'" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "c"), "--preset", "nosuch"]) == 2
    assert "no preset 'nosuch'" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["bench", "--ladder", "dqn", "--preset", "rainbow", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
