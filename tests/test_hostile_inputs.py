"""Ordinary and hostile input from Python and the command line: each is the right behaviour or
one line naming the problem (a deeprl error in Python, exit 2 on the command line), raised at the
call, never a traceback from deep inside and never after training has started."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import deeprl
from deeprl import DQN, PPO
from deeprl.cli import main
from deeprl.errors import CheckpointError, ConfigError, EnvError
from deeprl.run import RunDir, read_metrics

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(preset=None, eval_freq=0, checkpoint_freq=200, log_interval=100, learning_starts=50, batch_size=8,
             train_freq=4, net_arch=[8], eval_episodes=2)


class ShiftedDiscreteEnv(gym.Env):
    """Observations are Discrete(5, start=10): a state index counted from 10."""

    observation_space = gym.spaces.Discrete(5, start=10)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 10
        return self.s, {}

    def step(self, action):
        reward = float(int(action) == (self.s % 2))
        self.s = 10 + (self.s - 9) % 5
        return self.s, reward, False, False, {}


class WrongShapeEnv(gym.Env):
    """Declares Box(4,) but its step returns 3 numbers: a user env that breaks its own contract."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


class NoRenderEnv(ShiftedDiscreteEnv):
    metadata = {"render_modes": []}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def render(self):
        assert self.render_mode in self.metadata["render_modes"]


gym.register("DeeprlHostile/Shifted-v0", entry_point=ShiftedDiscreteEnv, max_episode_steps=20)
gym.register("DeeprlHostile/WrongShape-v0", entry_point=WrongShapeEnv, max_episode_steps=20)
gym.register("DeeprlHostile/NoRender-v0", entry_point=NoRenderEnv, max_episode_steps=20)
SHIFTED = "tests.test_hostile_inputs:DeeprlHostile/Shifted-v0"


@pytest.mark.parametrize("cls", [DQN, PPO])
def test_discrete_observations_that_start_above_zero_train_and_predict(cls):
    agent = cls("DeeprlHostile/Shifted-v0", **({**QUICK} if cls is DQN else
                                                dict(preset=None, eval_freq=0, n_steps=16, num_envs=2,
                                                     minibatch_size=16, net_arch=[8])), total_steps=200)
    agent.learn(progress=False)
    assert agent.predict(14) in (0, 1)
    assert agent.predict(np.array([10, 11, 12])).shape == (3,)
    assert np.isfinite(agent.evaluate(2)["mean_return"])
    agent.close()


@pytest.mark.parametrize("obs,fragment", [
    (np.zeros(3), "shape (3,)"), (np.zeros((2, 2, 4)), "shape (2, 2, 4)"), ("hello", "<U5"),
    (np.array([object(), 1, 2, 3], dtype=object), "object"),
])
def test_predict_refuses_observations_of_another_space(obs, fragment):
    agent = DQN("CartPole-v1", **QUICK)
    with pytest.raises(ConfigError, match="predict") as info:
        agent.predict(obs)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    agent.close()


def test_predict_refuses_discrete_observations_outside_the_space():
    agent = DQN("DeeprlHostile/Shifted-v0", **QUICK)
    for bad in (3, 15, 10.5, [10, 20]):
        with pytest.raises(ConfigError, match=r"\[10, 15\)"):
            agent.predict(bad)
    agent.close()


def test_a_list_of_callbacks_runs_each_and_a_bad_one_is_refused_at_the_call():
    seen = []
    agent = DQN("CartPole-v1", **QUICK, total_steps=400)
    agent.learn(progress=False, callback=[lambda a: seen.append(("f", a.num_timesteps)),
                                          lambda a: seen.append(("g", a.num_timesteps))])
    assert [k for k, _ in seen[:2]] == ["f", "g"] and len(seen) == 8
    before = agent.num_timesteps
    with pytest.raises(ConfigError, match="callback"):
        agent.learn(100, progress=False, callback=[print, "not callable"])
    with pytest.raises(ConfigError, match="callback"):
        agent.learn(100, progress=False, callback=42)
    assert agent.num_timesteps == before  # refused before a single step
    stops = []
    agent.learn(1000, progress=False, callback=[lambda a: stops.append(1), lambda a: False])
    assert len(stops) == 1  # the second callback stopped training after the first interval
    agent.close()


def test_an_env_that_returns_the_wrong_shape_is_named():
    with pytest.raises(EnvError) as info:
        DQN("DeeprlHostile/WrongShape-v0", **QUICK, total_steps=200).learn(progress=False)
    message = str(info.value)
    assert "WrongShape" in message and "(3,)" in message and "(4,)" in message and "\n" not in message


def test_python_api_misuse_is_a_deeprl_error(tmp_path):
    with pytest.raises(CheckpointError, match="path"):
        deeprl.load(None)
    with pytest.raises(CheckpointError, match="path"):
        DQN.load(42)
    agent = DQN("CartPole-v1", **QUICK)
    with pytest.raises(CheckpointError, match="/proc/x"):
        agent.save("/proc/x")
    os.mkfifo(tmp_path / "fifo.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        agent.save(tmp_path / "fifo.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))
    agent.close()


def test_video_of_an_env_that_cannot_render_is_one_line(tmp_path):
    agent = DQN("DeeprlHostile/NoRender-v0", **QUICK)
    path = agent.save(tmp_path / "m")
    agent.close()
    proc = subprocess.run([sys.executable, "-c", "import tests.test_hostile_inputs, sys; from deeprl.cli import main;"
                           f"sys.exit(main(['eval', {str(path)!r}, '--episodes', '1', '--video']))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "rgb_array" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _special(tmp_path: Path, kind: str, name: str) -> str:
    """A special file of the test's own (never the system's /dev nodes, which a failing test would replace)."""
    target = tmp_path / name
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a null device node
    else:
        target.mkdir()
    return str(target)


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_video_never_writes_through_a_special_file(tmp_path, kind):
    agent = DQN("CartPole-v1", **QUICK)
    path = agent.save(tmp_path / "m")
    agent.close()
    target = _special(tmp_path, kind, "target")
    before = os.stat(target)
    assert main(["eval", str(path), "--episodes", "1", "--video", target]) == 2
    after = os.stat(target)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def _stopped_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    agent = DQN("CartPole-v1", **QUICK, total_steps=600)

    def stop(a):
        if a.num_timesteps >= 400:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        agent.learn(run_dir=run, progress=False, callback=stop)
    agent.close()
    return run


@pytest.mark.parametrize("damage", [
    b"\xff\xfe\x00garbage\x80\x81\n",                       # bytes that are not UTF-8
    None,                                                     # the header cut short
])
def test_damaged_metrics_never_block_resume_or_plot(tmp_path, damage):
    run = _stopped_run(tmp_path)
    data = (run / "metrics.csv").read_bytes()
    if damage is None:
        (run / "metrics.csv").write_bytes(data[:12])  # "step,wall_ti"
    else:
        (run / "metrics.csv").write_bytes(data + damage)
    resumed = DQN.resume(run)
    resumed.learn(progress=False)
    resumed.close()
    cols = read_metrics(run / "metrics.csv")
    assert cols["step"][-1] == 600 and "loss/td" in cols
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 0


def test_plot_of_a_metrics_file_without_its_columns_is_one_line(tmp_path):
    run = _stopped_run(tmp_path)
    (run / "metrics.csv").write_bytes(b"\xff\xfe\nnot,a,header\n1,2,3\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 2


def test_a_second_resume_is_told_another_process_trains_the_run(tmp_path):
    run = _stopped_run(tmp_path)
    holder = RunDir(run)
    holder.lock()
    try:
        with pytest.raises(ConfigError, match="being trained by another process"):
            DQN.resume(run)
        # even with its checkpoint pointer mid-write (the other process checkpointing): the lock speaks first
        (run / "checkpoints" / "latest").write_text("step_999999999999\n")
        with pytest.raises(ConfigError, match="being trained by another process"):
            DQN.resume(run)
    finally:
        holder.unlock()


def test_an_out_path_that_is_not_utf8_is_refused(tmp_path):
    out = os.fsencode(str(tmp_path)) + b"/run-\xff"
    proc = subprocess.run([sys.executable, "-m", "deeprl", "train", "dqn", "--steps", "200", "--no-progress",
                           "--out", out], cwd=ROOT, capture_output=True, timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "UTF-8" in stderr


def test_evaluation_episodes_are_capped_and_the_cap_is_reported(tmp_path):
    from tests.envs import ENDLESS
    agent = DQN(ENDLESS, **{**QUICK, "eval_episodes": 2}, total_steps=200)
    agent.learn(run_dir=tmp_path / "run", progress=False)
    agent.close()
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["episodes"] == 2 and result["capped_episodes"] == 2
    assert result["mean_length"] == result["episode_cap"] and result["episode_cap"] <= 10_000
    assert any("were cut at 10,000 steps" in w for w in result["warnings"])


@pytest.mark.parametrize("kind,name", [("device", "null"), ("device", "null.png"), ("fifo", "fifo.png")])
def test_plot_never_writes_through_a_special_file(tmp_path, kind, name):
    run = _stopped_run(tmp_path)
    target = _special(tmp_path, kind, name)
    before = os.stat(target)
    assert main(["plot", str(run), "--out", target]) == 2
    after = os.stat(target)
    assert (before.st_mode, before.st_ino, before.st_rdev) == (after.st_mode, after.st_ino, after.st_rdev)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".") and p.name != ".lock"]
    assert not Path(target + ".png").exists()


def _signal_when(proc: subprocess.Popen, ready, sig: int, timeout: float = 180) -> tuple[int, str]:
    import time
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.parametrize("command", ["bench", "sweep"])
def test_a_signal_during_bench_or_sweep_keeps_the_runs_and_a_rerun_continues(tmp_path, command):
    """SIGTERM while a bench (or sweep) trains its runs in this process: exit 143 with one line, the
    interrupted run has a checkpoint, and the same command run again finishes every run."""
    import signal
    out = tmp_path / "out"
    settings = ["eval_freq=0", "log_interval=250", "checkpoint_freq=250", "learning_starts=100", "net_arch=[16]"]
    if command == "bench":
        args = ["bench", "--algos", "dqn", "--envs", "CartPole-v1", "--seeds", "2", "--steps", "3000", "--episodes",
                "2", "--workers", "1", "--backend", "processes", "--out", str(out), "--set", *settings]
    else:
        args = ["sweep", "dqn", "--env", "CartPole-v1", "--space", "lr=choice:0.001,0.0005", "--search", "grid",
                "--trials", "2", "--seeds", "1", "--steps", "3000", "--episodes", "2", "--workers", "1",
                "--backend", "processes", "--out", str(out), "--set", *settings]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "deeprl", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    code, err = _signal_when(proc, lambda: any(p.stat().st_size > 200 for p in out.rglob("metrics.csv")),
                             signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert "checkpoint written" in err, err
    assert list(out.rglob("checkpoints/latest")), "the interrupted run left no checkpoint"
    rerun = args if command == "bench" else ["sweep", "--resume", str(out)]  # a sweep continues with --resume
    again = subprocess.run([sys.executable, "-m", "deeprl", *rerun], cwd=ROOT, capture_output=True, text=True,
                           env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    finals = list(out.rglob("final.json"))
    assert len(finals) == 2 and all(json.loads(f.read_text())["steps"] == 3000 for f in finals)


def test_a_replay_larger_than_the_machine_is_refused_before_training(monkeypatch):
    """np.zeros only reserves memory, so a replay the machine cannot hold used to "succeed" and
    kill the run as it filled; it is refused at once, naming buffer_size."""
    import deeprl.buffers
    monkeypatch.setattr(deeprl.buffers, "physical_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(ConfigError, match="buffer_size"):
        DQN("CartPole-v1", **{**QUICK, "buffer_size": 100_000})
    DQN("CartPole-v1", **{**QUICK, "buffer_size": 1_000}).close()  # 16 kB of observations fit


def test_stable_baselines3_habits(tmp_path, capsys):
    """learn(total_timesteps=), save("x") then load("x"), SB3's setting names named in the error,
    NumPy scalars as settings, `deeprl --version`, the algorithms in `deeprl train --help`."""
    import numpy as np

    agent = DQN("CartPole-v1", **{**QUICK, "batch_size": np.int64(8), "eval_episodes": np.int32(2)})
    agent.learn(total_timesteps=120, progress=False)
    assert agent.num_timesteps == 120
    with pytest.raises(ConfigError, match="not both"):
        agent.learn(100, total_timesteps=100)
    agent.save(tmp_path / "x")
    assert (tmp_path / "x.safetensors").exists()
    assert deeprl.load(tmp_path / "x").num_timesteps == 120 and DQN.load(str(tmp_path / "x")).num_timesteps == 120
    agent.close()
    for algo, sb3, ours in [("ppo", "learning_rate", "lr"), ("ppo", "batch_size", "minibatch_size"),
                            ("dqn", "exploration_final_eps", "eps_end"), ("a2c", "n_envs", "num_envs")]:
        with pytest.raises(ConfigError, match=f"'{sb3}'.*Stable-Baselines3's name; deeprl's is '{ours}'"):
            deeprl.ALGORITHMS[algo]("CartPole-v1", **{sb3: 1})
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("deeprl ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(name in shown for name in deeprl.ALGORITHMS), shown


def test_env_kwargs_reach_gymnasium_and_are_saved_with_the_run(tmp_path):
    """`--env-kwargs` / env_kwargs= go to gymnasium.make, live in config.json, and every rebuild of
    the env (evaluation, resume, a loaded model) passes them again."""
    agent = PPO("LunarLander-v3", preset=None, env_kwargs={"continuous": True}, num_envs=1, n_steps=32,
                minibatch_size=32, n_epochs=1, eval_freq=0, eval_episodes=1, max_episode_steps=50, net_arch=[8])
    assert isinstance(agent.action_space, gym.spaces.Box)  # the continuous lander
    agent.learn(64, run_dir=tmp_path / "lander", progress=False)
    agent.close()
    assert json.loads((tmp_path / "lander" / "config.json").read_text())["config"]["env_kwargs"] == {"continuous": True}
    assert isinstance(deeprl.load(tmp_path / "lander").action_space, gym.spaces.Box)
    run = tmp_path / "lake"
    assert main(["train", "dqn", "--env", "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "map_name=8x8",
                 "--steps", "300", "--out", str(run), "--no-progress", "--set", "eval_freq=0", "eval_episodes=1",
                 "learning_starts=50"]) == 0
    saved = json.loads((run / "config.json").read_text())["config"]["env_kwargs"]
    assert saved == {"is_slippery": False, "map_name": "8x8"}
    assert deeprl.load(run).make_env().unwrapped.spec.kwargs["map_name"] == "8x8"
    assert deeprl.load(run).observation_space.n == 64  # the 8x8 map
    for bad in ({"render_mode": "human"}, {"max_episode_steps": 5}):
        with pytest.raises(ConfigError, match="set by deeprl itself"):
            DQN("FrozenLake-v1", env_kwargs=bad)
    with pytest.raises(ConfigError, match="env_kwargs"):
        DQN("FrozenLake-v1", env_kwargs={"bad key": 1})
    assert main(["train", "dqn", "--env", "FrozenLake-v1", "--env-kwargs", "no_such_option=1", "--steps", "100",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2


def test_a_users_env_module_in_the_current_folder_trains_from_the_command_line(tmp_path):
    (tmp_path / "mybandit.py").write_text(
        "import gymnasium as gym\nimport numpy as np\n\n"
        "class Bandit(gym.Env):\n"
        "    observation_space = gym.spaces.Box(0, 1, (2,), np.float32)\n"
        "    action_space = gym.spaces.Discrete(2)\n\n"
        "    def __init__(self, good=1):\n        self.good = good\n\n"
        "    def reset(self, *, seed=None, options=None):\n"
        "        super().reset(seed=seed)\n        self.t = 0\n        return np.ones(2, np.float32), {}\n\n"
        "    def step(self, a):\n        self.t += 1\n"
        "        return np.ones(2, np.float32), float(a == self.good), False, self.t >= 10, {}\n\n"
        "gym.register('My/Bandit-v0', entry_point=Bandit)\n")
    deeprl_bin = [sys.executable, "-c", "import sys; from deeprl.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    train = subprocess.run([*deeprl_bin, "train", "ppo", "--env", "mybandit:My/Bandit-v0", "--env-kwargs", "good=0",
                            "--steps", "1024", "--out", "run", "--no-progress", "--set", "n_steps=64",
                            "minibatch_size=64", "eval_episodes=2"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert train.returncode == 0, train.stderr
    refused = subprocess.run([*deeprl_bin, "eval", "run"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env=env)
    assert refused.returncode == 2 and "--allow-import mybandit" in refused.stderr  # a file never imports code
    allowed = subprocess.run([*deeprl_bin, "eval", "run", "--allow-import", "mybandit", "--json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["mean_return"] == 10.0  # it learned the env_kwargs' good arm


def test_an_annealed_run_continues_with_a_schedule_of_its_own(tmp_path):
    """The README's `--resume RUN --steps N`: a run that anneals its lr to 0 cannot just be extended
    (nothing would change), so the refusal names the way on, `--set anneal_lr=false lr=...`,
    which works and is saved with the run; the env and seed stay as they were."""
    run = tmp_path / "run"
    args = ["--no-progress"]
    assert main(["train", "a2c", "--steps", "400", "--out", str(run), *args, "--set", "anneal_lr=true", "n_steps=8",
                 "num_envs=2", "eval_freq=0", "eval_episodes=1"]) == 0
    with pytest.raises(ConfigError, match="--set anneal_lr=false lr="):
        deeprl.A2C.resume(run, total_steps=800).learn(progress=False)
    assert main(["train", "--resume", str(run), "--steps", "800", *args, "--set", "anneal_lr=false", "lr=1e-4"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["anneal_lr"] is False and config["lr"] == 1e-4
    rows = [r for r in metrics_rows_of(run) if r["charts/learning_rate"]]
    assert float(rows[-1]["charts/learning_rate"]) == pytest.approx(1e-4) and int(rows[-1]["step"]) == 800
    assert main(["train", "--resume", str(run), "--steps", "900", *args, "--set", "seed=3"]) == 2
    assert main(["train", "--resume", str(run), "--steps", "900", *args, "--set", "net_arch=[7]"]) == 2  # shapes


def metrics_rows_of(run: Path) -> list[dict[str, str]]:
    import csv
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
