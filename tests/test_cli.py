"""Every CLI command, and the bad inputs: one line on stderr, exit 2, nothing damaged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deeprl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "learning_starts=200", "eval_freq=500", "eval_episodes=2", "checkpoint_freq=500",
         "log_interval=250", "train_freq=4", "net_arch=[32,32]", "batch_size=16"]


def cli(*args, check_rc=0):
    """The real console entry point in a subprocess: what a user sees."""
    proc = subprocess.run([sys.executable, "-m", "deeprl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == check_rc, proc.stderr
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cp"
    assert main(["train", "dqn", "--env", "CartPole-v1", "--seed", "3", "--steps", "1000", "--out", str(out),
                 "--no-progress", *SMALL, "lr=5e-4", "double_q=false"]) == 0
    return out


def test_train_writes_a_complete_run_directory(trained):
    for name in ("config.json", "metrics.csv", "model.safetensors", "eval.json", "checkpoints/latest"):
        assert (trained / name).exists(), name
    assert any((trained / "tb").glob("events.out.tfevents.*"))
    config = json.loads((trained / "config.json").read_text())
    assert config["algo"] == "dqn" and config["config"]["lr"] == 5e-4 and config["config"]["double_q"] is False
    assert config["config"]["seed"] == 3 and config["config"]["total_steps"] == 1000
    header = (trained / "metrics.csv").read_text().splitlines()[0]
    assert "charts/episode_return" in header and "loss/td" in header and "eval/mean_return" in header


def test_tensorboard_events_are_readable(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(trained / "tb"))
    acc.Reload()
    assert "loss/td" in acc.Tags()["scalars"]
    assert acc.Scalars("charts/episode_return")[-1].step == 1000


def test_eval_json(trained, capsys):
    assert main(["eval", str(trained), "--episodes", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["episodes"] == 3 and {"mean_return", "std_return"} <= result.keys()


def test_eval_video_is_a_real_mp4(trained, capsys):
    assert main(["eval", str(trained), "--episodes", "1", "--video"]) == 0
    video = trained / "videos" / "eval.mp4"
    import imageio.v2 as imageio
    reader = imageio.get_reader(str(video))
    first = reader.get_data(0)
    assert first.ndim == 3 and first.shape[2] == 3 and reader.count_frames() > 5


def test_plot(trained, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", str(trained), str(trained), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_presets_lists_the_tuned_envs(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for env in ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "MountainCar-v0", "ALE/Pong-v5", "lecture-v1"):
        assert env in out
    # the ladders' rungs are presets too, listed under the algorithm each trains
    lines = out.splitlines()
    assert any(line.split()[:2] == ["dqn", "ladder/replay"] for line in lines)
    assert any(line.split()[:2] == ["actor_critic", "ladder/actor-critic"] for line in lines)
    assert main(["presets", "ppo"]) == 0
    only_ppo = capsys.readouterr().out.splitlines()
    assert "ladder/ppo" in " ".join(only_ppo) and all(line.startswith("ppo ") for line in only_ppo)


def test_help_config(capsys):
    assert main(["train", "dqn", "--help-config"]) == 0
    assert "double_q" in capsys.readouterr().out


def test_resume_continues_and_refuses_a_finished_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--steps", "500", "--out", str(out), "--no-progress", *SMALL, "anneal_lr=false"]) == 0
    assert main(["train", "--resume", str(out)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--steps", "1000", "--no-progress"]) == 0
    assert json.loads((out / "eval.json").read_text())["step"] == 1000


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    """A real SIGKILL mid-run; the resumed run picks up at the last complete checkpoint."""
    import time
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", "train", "--steps", "500000", "--out", str(out),
                             "--no-progress", "--set", "checkpoint_freq=500", "eval_freq=0", "learning_starts=100",
                             "train_freq=4", "gradient_steps=1", "net_arch=[16]", "log_interval=250"],
                            cwd=ROOT, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() >= "step_000000001000"):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    step = int(latest.read_text().strip().split("_")[1])
    assert step >= 1000
    assert main(["train", "--resume", str(out), "--steps", str(step + 500), "--no-progress"]) == 0
    assert json.loads((out / "eval.json").read_text())["step"] == step + 500
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[:-1] == sorted(set(steps[:-1])) and steps[-1] == step + 500  # no row logged twice


@pytest.mark.parametrize("args, message", [
    (["train", "dqn", "--env", "CartPol-v1"], "unknown environment 'CartPol-v1'.*Did you mean 'CartPole-v1'"),
    (["train", "dqn", "--env", "Pendulum-v1"], "needs a discrete action space"),
    (["train", "dqn", "--set", "doubel_q=true"], "unknown setting 'doubel_q'.*'double_q'"),
    (["train", "dqn", "--set", "batch_size=big"], "'batch_size' expects int"),
    (["train", "dqn", "--set", "lr"], "key=value"),
    (["train", "dqm"], "unknown algorithm 'dqm'.*'dqn'.*Available: dqn"),
    (["bench", "--algos", "ppoo", "--envs", "CartPole-v1", "--out", "/nonexistent/b"], "unknown algorithm 'ppoo'.*'ppo'"),
    (["sweep", "a2cc", "--space", "lr=loguniform:1e-4:1e-3", "--out", "/nonexistent/s"], "unknown algorithm 'a2cc'"),
    (["train", "--resume", "/nonexistent/run"], "does not exist"),
    (["eval", "/nonexistent/run"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    proc = cli(*args, check_rc=2)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    import re
    assert re.search(message, err), err


def test_non_positive_steps_is_a_usage_error():
    proc = cli("train", "--steps", "0", check_rc=2)
    assert "positive integer" in proc.stderr and "Traceback" not in proc.stderr


def test_corrupt_model_does_not_damage_the_run(trained, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "model.safetensors").write_bytes(b"garbage")
    before = sorted(p.name for p in copy.iterdir())
    proc = cli("eval", str(copy), check_rc=2)
    assert "not a readable safetensors file" in proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == before


def test_existing_run_directory_is_not_overwritten(trained):
    before = (trained / "metrics.csv").read_text()
    proc = cli("train", "--out", str(trained), "--steps", "100", check_rc=2)
    assert "already holds a run" in proc.stderr
    assert (trained / "metrics.csv").read_text() == before


@pytest.mark.parametrize("algo, env, extra", [
    ("reinforce", "CartPole-v1", ["batch_episodes=2"]),
    ("actor_critic", "CartPole-v1", []),
    ("a2c", "Pendulum-v1", ["num_envs=2"]),
    ("ppo", "CartPole-v1", ["n_steps=64", "num_envs=2", "minibatch_size=32", "n_epochs=2"]),
])
def test_train_every_policy_gradient_algorithm(algo, env, extra, tmp_path, capsys):
    out = tmp_path / algo
    assert main(["train", algo, "--env", env, "--steps", "600", "--out", str(out), "--no-progress", "--set",
                 "eval_episodes=2", "log_interval=200", *extra]) == 0
    assert json.loads((out / "config.json").read_text())["algo"] == algo
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2


def test_online_actor_critic_preset(tmp_path):
    assert main(["train", "actor_critic", "--preset", "online", "--steps", "300", "--out", str(tmp_path / "o"),
                 "--no-progress", "--set", "eval_episodes=1"]) == 0
    assert json.loads((tmp_path / "o" / "config.json").read_text())["config"]["n_steps"] == 1


def test_variance_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "variance.png"
    assert main(["variance", "--env", "CartPole-v1", "--steps", "2000", "--batches", "4", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    for name in ("REINFORCE", "baseline", "actor-critic", "advantage"):
        assert name in text


def test_dqn_refuses_continuous_actions_but_a2c_takes_them():
    proc = cli("train", "dqn", "--env", "Pendulum-v1", check_rc=2)
    assert "a2c, ppo" in proc.stderr


def test_best_model_is_kept_and_evaluable(trained, capsys):
    assert (trained / "best_model.safetensors").exists()   # eval_freq=500 in SMALL
    assert main(["eval", str(trained), "--best", "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["episodes"] == 2
    assert main(["eval", str(trained / "model.safetensors"), "--best"]) == 2
