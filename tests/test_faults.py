"""Nothing lost, nothing run: interrupted runs, non-finite numbers, hostile files and paths.

Each bad input or fault ends cleanly (one line, exit 2, or the right result) and leaves what was
written before intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import deeprl
from deeprl import DQN, PPO, Dreamer
from deeprl.agents.dqn import value_bounds
from deeprl.checkpoint import CheckpointDir, load_model_file, save_model_file
from deeprl.cli import main
from deeprl.errors import CheckpointError, ConfigError, EnvError, TrainingError
from deeprl.run import RunDir
from tests.envs import ENDLESS, IDENTITY, NAN_REWARD, SLOW
from tests.resume import metrics_rows

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(preset=None, eval_freq=0, checkpoint_freq=500, log_interval=250, learning_starts=100, batch_size=16,
             train_freq=4, net_arch=[16])
QUICK_SETTINGS = ["eval_freq=0", "checkpoint_freq=500", "log_interval=100", "learning_starts=100", "batch_size=16",
                  "train_freq=4", "net_arch=[16]"]


def deeprl_cli(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "deeprl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------------- signals and restarts
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_writes_a_checkpoint_and_the_run_resumes(tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", "train", "dqn", "--steps", "200000", "--out", str(run),
                             "--no-progress", "--set", "checkpoint_freq=0", "eval_freq=0", "log_interval=200"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "checkpoint written" in err and f"--resume {run}" in err and "Traceback" not in err
    latest = CheckpointDir(run / "checkpoints").latest()
    assert latest is not None
    stopped_at = json.loads((latest / "state.json").read_text())["num_timesteps"]
    assert stopped_at > 0
    resumed = deeprl_cli("train", "--resume", str(run), "--steps", str(stopped_at + 400), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at step {stopped_at:,}" in resumed.stderr
    assert (run / "model.safetensors").exists()


def test_a_killed_dreamer_run_loses_at_most_the_checkpoint_minutes(tmp_path):
    """kill -9 leaves no chance to write anything: the time checkpoints (every 0.6 s here) bound
    what is lost, whatever checkpoint_freq says."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", "train", "dreamer", "--preset", "debug", "--steps",
                             "200000", "--out", str(run), "--no-progress", "--set", "checkpoint_freq=0", "eval_freq=0",
                             "log_interval=100", "checkpoint_minutes=0.01"],
                            cwd=ROOT, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    checkpoints = CheckpointDir(run / "checkpoints")
    deadline = time.time() + 180
    while time.time() < deadline and len(list((run / "checkpoints").glob("step_*"))) < 2:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.kill()
    proc.wait(timeout=60)
    latest = checkpoints.latest()
    assert latest is not None and 0 < time.time() - (latest / "state.json").stat().st_mtime < 0.6 + 5.0
    stopped_at = json.loads((latest / "state.json").read_text())["num_timesteps"]
    resumed = deeprl_cli("train", "--resume", str(run), "--steps", str(stopped_at + 50), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at step {stopped_at:,}" in resumed.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_evaluation_keeps_the_model_and_resume_only_evaluates(tmp_path, sig):
    run = tmp_path / "run"
    # each env step sleeps 2 ms in the first process only: 300 training steps, then a final
    # evaluation of 100 episodes x 20 steps (about 4 s) for the signal to land in
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", "train", "dqn", "--env", SLOW, "--steps", "300",
                             "--out", str(run), "--no-progress", "--set", "eval_episodes=100", *QUICK_SETTINGS],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "DEEPRL_TEST_STEP_SLEEP": "0.002"})
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "model.safetensors").exists():  # saved before evaluating
        time.sleep(0.05)
    assert (run / "model.safetensors").exists() and proc.poll() is None
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "not yet evaluated" in err or "evaluation cut short" in err, err
    assert f"--resume {run}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 2, err
    assert not (run / "eval.json").exists()
    latest = CheckpointDir(run / "checkpoints").latest()
    state = json.loads((latest / "state.json").read_text())
    assert state["num_timesteps"] == 300 and not state["finished"]
    trained = load_model_file(run / "model.safetensors")[0]

    resumed = deeprl_cli("train", "--resume", str(run), "--no-progress", "--allow-import", "tests.envs")
    assert resumed.returncode == 0, resumed.stderr
    assert "done: 300 steps" in resumed.stdout
    assert json.loads((run / "eval.json").read_text())["episodes"] == 100
    assert json.loads((CheckpointDir(run / "checkpoints").latest() / "state.json").read_text())["finished"]
    for key, value in load_model_file(run / "model.safetensors")[0].items():  # only evaluated, not retrained
        assert torch.equal(value, trained[key])
    again = deeprl_cli("train", "--resume", str(run), "--no-progress", "--allow-import", "tests.envs")
    one_line_error(again, "already finished")


def test_a_signal_as_training_ends_leaves_the_trained_model(tmp_path):
    """The handler's flag set during the last training step: the model is saved, not thrown away."""
    agent = DQN(IDENTITY, total_steps=300, **QUICK)

    def signal_at_the_end(a):
        if a.num_timesteps >= 300:
            os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(deeprl.errors.Interrupted, match="not yet evaluated"):
        agent.learn(run_dir=tmp_path / "run", progress=False, callback=signal_at_the_end)
    agent.close()
    assert (tmp_path / "run" / "model.safetensors").exists() and not (tmp_path / "run" / "eval.json").exists()
    resumed = DQN.resume(tmp_path / "run", allow_import=["tests.envs"])
    resumed.learn(progress=False)
    resumed.close()
    assert resumed.num_timesteps == 300 and (tmp_path / "run" / "eval.json").exists()


def test_a_run_that_crashed_before_its_first_checkpoint_starts_again(tmp_path):
    def crash(agent):
        if agent.num_timesteps >= 500:
            raise RuntimeError("env crashed")
    agent = DQN("CartPole-v1", total_steps=1000, **{**QUICK, "checkpoint_freq": 0})
    with pytest.raises(RuntimeError):
        agent.learn(run_dir=tmp_path / "r", callback=crash)
    agent.close()
    again = DQN.resume(tmp_path / "r")
    assert again.num_timesteps == 0
    again.learn()
    rows = metrics_rows(tmp_path / "r" / "metrics.csv")
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[0] == 250 and steps[-1] == 1000   # no rows of the crashed attempt left
    again.close()


def test_a_metric_without_a_column_is_an_error_not_dropped(tmp_path):
    from deeprl.run import MetricsLogger
    logger = MetricsLogger(RunDir(tmp_path), ["loss/td"], tensorboard=False)
    logger.log(1, {"loss/td": 0.5}, 0.0)
    with pytest.raises(ValueError, match=r"\['loss/typo'\] are not among this run's columns"):
        logger.log(2, {"loss/td": 0.4, "loss/typo": 1.0}, 0.0)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows == ["step,wall_time,loss/td", "1,0,0.5"]   # nothing half-written
    logger.close()


def test_a_second_process_cannot_train_the_same_run(tmp_path):
    first, second = RunDir(tmp_path), RunDir(tmp_path)
    first.lock()
    with pytest.raises(ConfigError, match="being trained by another process"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


# --------------------------------------------------------------------------- schedules and extensions
def test_resume_keeps_the_planned_length_and_extension_holds_the_schedules(tmp_path):
    def crash_at(step):
        def crash(agent):
            if agent.num_timesteps >= step:
                raise KeyboardInterrupt
        return crash
    agent = DQN("CartPole-v1", **QUICK)                    # config total_steps: 50,000
    with pytest.raises(KeyboardInterrupt):
        agent.learn(2000, run_dir=tmp_path / "r", callback=crash_at(1500))
    eps_at_1500 = agent.epsilon()
    agent.close()
    resumed = DQN.resume(tmp_path / "r")
    assert (resumed.num_timesteps, resumed.planned_steps, resumed.schedule_steps) == (1500, 2000, 2000)
    assert resumed.epsilon() == eps_at_1500             # ε continues, it does not jump back up
    resumed.learn()
    resumed.close()
    # extend the finished run to 4,000 steps, killed at 3,000: it resumes as 3,000 of 4,000
    extended = DQN.resume(tmp_path / "r", total_steps=4000)
    assert extended.epsilon() == pytest.approx(0.05)   # ε stays at its end value (eps_end)
    with pytest.raises(KeyboardInterrupt):
        extended.learn(callback=crash_at(3000))
    extended.close()
    again = DQN.resume(tmp_path / "r")
    assert (again.num_timesteps, again.planned_steps, again.schedule_steps) == (3000, 4000, 2000)
    again.learn()
    assert again.num_timesteps == 4000
    again.close()
    with pytest.raises(ConfigError, match="must exceed"):
        DQN.resume(tmp_path / "r", total_steps=3000)


def test_extending_an_annealed_run_is_refused(tmp_path):
    agent = PPO("CartPole-v1", preset=None, n_steps=64, minibatch_size=64, n_epochs=1, total_steps=128,
                anneal_lr=True, eval_freq=0, checkpoint_freq=0)
    agent.learn()
    with pytest.raises(ConfigError, match="anneals its learning rate"):
        agent.learn(128)


def test_learn_and_evaluate_take_integers_only():
    agent = DQN("CartPole-v1", **QUICK)
    with pytest.raises(ConfigError):
        agent.learn(True)
    agent.learn(np.int64(50))
    assert agent.num_timesteps == 50
    with pytest.raises(ConfigError):
        agent.evaluate(0)


# --------------------------------------------------------------------------- non-finite numbers
@pytest.mark.parametrize("setting", ["lr=nan", "gamma=nan", "lr=inf", "max_grad_norm=-inf"])
def test_non_finite_settings_are_refused(setting):
    proc = deeprl_cli("train", "dqn", "--steps", "100", "--set", setting, "--out", "/nonexistent/never")
    one_line_error(proc, setting.split("=")[0])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_rewards_stop_training_and_keep_the_checkpoint(tmp_path, value):
    import gymnasium as gym
    agent = DQN(NAN_REWARD, **QUICK, total_steps=2000)
    agent.envs.close()
    agent.envs = None
    gym.registry["DeeprlTest/NaNReward-v0"].kwargs = {"after": 1100, "value": value}
    try:
        with pytest.raises(TrainingError, match="NaN or infinite") as info:
            agent.learn(run_dir=tmp_path / "r")
    finally:
        gym.registry["DeeprlTest/NaNReward-v0"].kwargs = {}
    agent.close()
    assert "step_000000001000" in str(info.value)
    latest = CheckpointDir(tmp_path / "r" / "checkpoints").latest()
    assert latest.name == "step_000000001000"
    json.loads((latest / "state.json").read_text())   # valid JSON, nothing non-finite in it
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_json_outputs_are_valid_json():
    from deeprl.checkpoint import json_safe
    assert json.dumps(json_safe({"a": float("nan"), "b": [1.0, float("inf")]}), allow_nan=False) == \
        '{"a": null, "b": [1.0, null]}'


# --------------------------------------------------------------------------- envs that never end
def test_an_env_without_a_time_limit_gets_one():
    from deeprl.envs import make_env
    from deeprl.envs.make import DEFAULT_EPISODE_LIMIT
    env = make_env(ENDLESS)
    assert env.spec is not None and env._max_episode_steps == DEFAULT_EPISODE_LIMIT
    env.close()
    agent = DQN(ENDLESS, max_episode_steps=30, **QUICK)
    result = agent.evaluate(3)                           # ends, where it used to wait forever
    assert result["episodes"] == 3 and result["mean_length"] == 30


# --------------------------------------------------------------------------- crafted files
def _evil_model(tmp_path: Path) -> Path:
    """A real model whose header names an env in a module beside it that must never be imported."""
    (tmp_path / "evilmod.py").write_text("open('IMPORTED', 'w').write('ran')\n")
    model = DQN("CartPole-v1", **QUICK).save(tmp_path / "m")
    tensors, meta = load_model_file(model)
    meta["config"]["env"] = "evilmod:Evil-v0"
    save_model_file(model, tensors, meta)
    return model


def test_a_model_file_cannot_make_deeprl_import_code(tmp_path):
    model = _evil_model(tmp_path)
    proc = deeprl_cli("eval", str(model), cwd=tmp_path)
    one_line_error(proc, "evilmod", "--allow-import evilmod")
    assert not (tmp_path / "IMPORTED").exists()
    with pytest.raises(EnvError, match="allow_import"):
        deeprl.load(model)
    assert "evilmod" not in sys.modules


def test_a_crafted_config_cannot_make_resume_import_code(tmp_path):
    run = tmp_path / "r"
    DQN("CartPole-v1", **QUICK, total_steps=600).learn(run_dir=run).close()
    data = json.loads((run / "config.json").read_text())
    data["config"]["env"] = "evilmod:Evil-v0"
    (run / "config.json").write_text(json.dumps(data))
    (tmp_path / "evilmod.py").write_text("open('IMPORTED', 'w').write('ran')\n")
    proc = deeprl_cli("train", "--resume", str(run), "--steps", "900", cwd=tmp_path)
    one_line_error(proc, "--allow-import evilmod")
    assert not (tmp_path / "IMPORTED").exists()


@pytest.mark.parametrize("field,value", [("num_timesteps", "many"), ("episodes", None), ("rng", 7),
                                         ("recent_returns", 3), ("planned_steps", [1])])
def test_wrong_typed_checkpoint_fields_are_one_line_errors(tmp_path, field, value):
    run = tmp_path / "r"
    agent = DQN("CartPole-v1", **QUICK, total_steps=1200)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(run_dir=run, callback=lambda a: (_ for _ in ()).throw(KeyboardInterrupt) if a.num_timesteps >= 1000 else None)
    agent.close()
    state_file = CheckpointDir(run / "checkpoints").latest() / "state.json"
    state = json.loads(state_file.read_text())
    state[field] = value
    state_file.write_text(json.dumps(state))
    proc = deeprl_cli("train", "--resume", str(run))
    one_line_error(proc, "checkpoint")


def test_wrong_typed_model_metadata_is_a_one_line_error(tmp_path):
    model = DQN("CartPole-v1", **QUICK).save(tmp_path / "m")
    tensors, meta = load_model_file(model)
    for change in ({"config": {**meta["config"], "buffer_size": 10 ** 15}},
                   {"observation_space": {"type": "box", "shape": [10 ** 9, 10 ** 9], "dtype": "float32"}},
                   {"config": "x"}, {"num_timesteps": "many"}):
        save_model_file(model, tensors, {**meta, **change})
        proc = deeprl_cli("eval", str(model), "--episodes", "1")
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr


def test_a_damaged_metrics_file_does_not_block_a_resume(tmp_path):
    run = tmp_path / "r"
    agent = DQN("CartPole-v1", **QUICK, total_steps=1500)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(run_dir=run, callback=lambda a: (_ for _ in ()).throw(KeyboardInterrupt) if a.num_timesteps >= 1000 else None)
    agent.close()
    with open(run / "metrics.csv", "a") as f:
        f.write("garbage,\x00,1\nstep,,\n12")
    resumed = DQN.resume(run)
    resumed.learn()
    resumed.close()
    rows = metrics_rows(run / "metrics.csv")
    assert [int(r["step"]) for r in rows][-1] == 1500
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 0


def test_checkpoint_pointers_and_symlinks_never_lead_outside_the_run(tmp_path):
    run = tmp_path / "r"
    outside = tmp_path / "precious"
    (outside / "step_000000000001").mkdir(parents=True)
    DQN("CartPole-v1", **QUICK, total_steps=600).learn(run_dir=run).close()
    ckpts = CheckpointDir(run / "checkpoints")
    (run / "checkpoints" / "latest").write_text("../../precious/step_000000000001\n")
    assert ckpts.latest().parent == (run / "checkpoints")            # the pointer is not followed outside
    os.symlink(outside / "step_000000000001", run / "checkpoints" / "step_000000000000")
    ckpts.keep = 1
    ckpts._prune(keep_name="none")
    assert (outside / "step_000000000001").exists()                 # pruning never deletes outside
    run2 = tmp_path / "r2"
    run2.mkdir()
    (run2 / "checkpoints").symlink_to(outside)
    with pytest.raises(CheckpointError, match="symlink"):
        CheckpointDir(run2 / "checkpoints").latest()


@pytest.mark.parametrize("error", ["oserror", "safetensors"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch, error):
    """Python raises OSError on a full disk; safetensors raises its own SafetensorError."""
    from safetensors import SafetensorError
    run = tmp_path / "r"
    agent = DQN("CartPole-v1", **QUICK, total_steps=1200)
    real_write = CheckpointDir.write

    def write(self, step, **kw):
        if step > 500:
            raise OSError(28, "No space left on device") if error == "oserror" else \
                SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        return real_write(self, step, **kw)
    monkeypatch.setattr(CheckpointDir, "write", write)
    with pytest.raises(CheckpointError, match="No space left on device.*step_000000000500 is intact"):
        agent.learn(run_dir=run)
    agent.close()
    monkeypatch.setattr(CheckpointDir, "write", real_write)
    assert DQN.resume(run).num_timesteps == 500


# --------------------------------------------------------------------------- CLI surprises
@pytest.mark.parametrize("args,fragment", [
    (["train", "--steps", "inf"], "positive integer"),
    (["train", "--seed", "-1"], "seed"),
    (["train", "--env", ""], "env"),
    (["train", "--steps", "100", "--set", "atari_wrappers=on"], "atari_wrappers=on needs an Atari env"),
    (["eval", "x", "--seed", "-3"], "seed"),
])
def test_more_bad_input_is_one_line_exit_2(args, fragment, tmp_path):
    proc = deeprl_cli(*args, "--out", str(tmp_path / "o")) if args[0] == "train" else deeprl_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr


def test_out_on_an_existing_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    one_line_error(deeprl_cli("train", "--steps", "100", "--out", str(target)), "is a file")
    assert target.read_text() == "mine"


def test_output_paths_of_plot_and_variance(tmp_path, capsys):
    run = tmp_path / "r"
    DQN("CartPole-v1", **QUICK, total_steps=600).learn(run_dir=run).close()
    assert main(["plot", str(run), "--out", str(tmp_path / "base")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'base.png'}"
    assert (tmp_path / "base.png").exists()
    assert main(["plot", str(run), "--out", str(tmp_path / "x.nope")]) == 2
    start = time.time()
    assert main(["variance", "--out", str(tmp_path), "--steps", "100000"]) == 2   # refused before training
    assert time.time() - start < 10


def test_save_into_a_folder(tmp_path):
    (tmp_path / "dir").mkdir()
    path = DQN("CartPole-v1", **QUICK).save(str(tmp_path / "dir") + "/")
    assert path == tmp_path / "dir" / "model.safetensors" and path.exists()


def test_dqn_evaluation_with_exploration_does_not_change_training():
    def trained(evaluate):
        agent = DQN("CartPole-v1", **{**QUICK, "eval_eps": 0.3}, total_steps=1000, seed=4)
        agent.learn(callback=(lambda a: a.evaluate(2)) if evaluate else None)
        return agent
    quiet, evaluated = trained(False), trained(True)
    for p, q in zip(quiet.q.parameters(), evaluated.q.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_dream_video_of_a_state_the_renderer_cannot_draw():
    from deeprl.envs import make_env
    from deeprl.worldmodel.pictures import _render_state, _state_setter
    env = make_env("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = _render_state(env, _state_setter(env), np.array([1e30, -1e30, np.nan, np.inf]))
    assert frame is not None and frame.dtype == np.uint8
    env.close()


# --------------------------------------------------------------------------- divergence is visible
def test_value_bounds_from_the_reward_range():
    assert value_bounds((1.0, 1.0), 0.99) == pytest.approx((0.0, 100.0))
    assert value_bounds((-1.0, 0.0), 0.9) == pytest.approx((-10.0, 0.0))
    assert value_bounds(None, 0.99) is None and value_bounds((0.0, 1.0), 1.0) is None


def test_diverging_q_values_warn_once_in_the_log_and_the_summary(tmp_path, capsys):
    agent = DQN("CartPole-v1", **QUICK, total_steps=300)
    agent._check_divergence(120.0)
    assert not agent.warnings                                      # within the slack of a transient
    agent._check_divergence(400.0)
    agent._check_divergence(900.0)
    assert list(agent.warnings) == ["q_divergence"]
    assert capsys.readouterr().err.count("Q estimates diverge") == 1
    unknown = DQN(IDENTITY, **QUICK, total_steps=100, eps_fraction=0.0)
    unknown.q_bounds = None
    unknown.num_timesteps = 200
    for q in [1.0] * 20 + [2.0, 3.0, 4.5]:
        unknown._check_divergence(q)
    assert "q_divergence" in unknown.warnings                      # 4.5 > 4 x the 1.0 of 10-20 intervals ago


def test_the_run_summary_holds_the_warning(tmp_path):
    agent = DQN("CartPole-v1", **QUICK, total_steps=600, lr=0.05, gamma=0.999)
    agent.q_bounds = (0.0, 1.0)                                    # any Q above 1.5 warns
    agent.learn(run_dir=tmp_path / "r")
    agent.close()
    assert any("Q estimates diverge" in w for w in json.loads((tmp_path / "r" / "eval.json").read_text())["warnings"])
    assert "q/max" in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0]


def test_dreamer_reinforce_actor_gradient_trains_continuous_actions():
    agent = Dreamer("Pendulum-v1", preset="debug", actor_grad="reinforce", total_steps=160, prefill_steps=100,
                    eval_freq=0, checkpoint_freq=0)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.learn()
    assert agent.updates > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters()))
