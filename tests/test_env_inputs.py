"""Envs beyond a bare id: a function that makes the env (a factory), a Gymnasium EnvSpec, and
wrappers by import path (deeprl/envs/sources.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import deeprl
from deeprl import DQN, PPO
from deeprl.cli import main
from deeprl.errors import ConfigError, EnvError
from tests.resume import metrics_rows

SMALL_DQN = dict(preset=None, seed=5, total_steps=1500, num_envs=2, learning_starts=200, train_freq=2,
                 target_update_interval=200, eval_freq=500, eval_episodes=2, checkpoint_freq=500, log_interval=250,
                 net_arch=[32])
SMALL_PPO = dict(preset=None, num_envs=2, n_steps=16, minibatch_size=16, n_epochs=1, net_arch=[16], eval_freq=0,
                 eval_episodes=2, checkpoint_freq=0, total_steps=128)


def _half(reward):
    return 0.5 * reward


def wrapped_cartpole() -> gym.Env:
    """A factory: CartPole with its rewards halved, so every return shows which env made it."""
    return gym.wrappers.TransformReward(gym.make("CartPole-v1"), _half)


def other_cartpole() -> gym.Env:
    return gym.make("CartPole-v1")


class DictTarget(gym.Env):
    """Dict observations: a position and a goal; reward 1 for choosing the goal, 10 steps."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32),
                                         "goal": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def _obs(self):
        self.goal = int(self.np_random.integers(3))
        return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "goal": self.goal}

    def step(self, action):
        reward = float(action == self.goal)
        return self._obs(), reward, False, False, {}


if "DictTarget-v0" not in gym.registry:
    gym.register("DictTarget-v0", entry_point=DictTarget, max_episode_steps=10)


def _wrapper_module(tmp_path, monkeypatch, name: str) -> None:
    """A module of the user's own wrappers, importable from tmp_path."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import gymnasium as gym

        def double_reward(env):
            return gym.wrappers.TransformReward(env, lambda r: 2 * r)

        def plus_one_reward(env):
            return gym.wrappers.TransformReward(env, lambda r: r + 1)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


# ------------------------------------------------------------------------------------------ factories


def test_a_factory_trains_evaluates_and_resumes_exactly_with_the_factory(tmp_path):
    whole = DQN(wrapped_cartpole, **SMALL_DQN).learn(run_dir=tmp_path / "whole")
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert config["config"]["env"] == "<factory tests.test_env_inputs.wrapped_cartpole>"
    ev = whole.last_eval  # the final evaluation ran on the factory's envs: returns are half the lengths
    assert ev["mean_return"] == pytest.approx(0.5 * ev["mean_length"])

    def crash(agent):
        if agent.num_timesteps >= 1250:
            raise KeyboardInterrupt  # between the checkpoint at 1000 and the end
    crashed = DQN(wrapped_cartpole, **SMALL_DQN)
    with pytest.raises(KeyboardInterrupt):
        crashed.learn(run_dir=tmp_path / "crashed", callback=crash)
    crashed.close()
    with pytest.raises(EnvError, match=r"resume\(run_dir, env=make\)"):
        DQN.resume(tmp_path / "crashed")  # refused in one line, the run left as it was
    resumed = DQN.resume(tmp_path / "crashed", env=wrapped_cartpole)
    assert resumed.num_timesteps == 1000
    resumed.learn()
    assert metrics_rows(tmp_path / "whole" / "metrics.csv") == metrics_rows(tmp_path / "crashed" / "metrics.csv")
    for p, q in zip(whole.q.parameters(), resumed.q.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())


def test_without_its_factory_a_run_predicts_but_refuses_eval_and_resume_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    DQN(wrapped_cartpole, **{**SMALL_DQN, "total_steps": 400, "eval_freq": 0}).learn(run_dir=run).close()
    model = deeprl.load(run)  # no env needed to act
    assert model.predict(np.zeros(4, np.float32)) in (0, 1)
    with pytest.raises(EnvError, match=r"deeprl.load\(path, env=make\)"):
        model.evaluate(2)
    result = deeprl.load(run, env=wrapped_cartpole).evaluate(2)
    assert result["mean_return"] == pytest.approx(0.5 * result["mean_length"])
    assert main(["eval", str(run), "--episodes", "2"]) == 2
    assert main(["train", "--resume", str(run), "--steps", "600", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("was made by a Python function" in line and "env=make" in line for line in err)


def test_load_and_resume_check_the_function_they_are_given(tmp_path):
    run = tmp_path / "run"
    DQN(wrapped_cartpole, **{**SMALL_DQN, "total_steps": 600, "eval_freq": 0}).learn(run_dir=run, pause_at=500).close()
    with pytest.raises(ConfigError, match="not <factory tests.test_env_inputs.other_cartpole>"):
        DQN.resume(run, env=other_cartpole)
    with pytest.raises(ConfigError, match="drop env="):
        DQN.resume(run, env="CartPole-v1")
    DQN(**{**SMALL_DQN, "total_steps": 600, "eval_freq": 0}).learn(run_dir=tmp_path / "by_id", pause_at=500).close()
    with pytest.raises(ConfigError, match="resume it without env="):
        DQN.resume(tmp_path / "by_id", env=wrapped_cartpole)
    with pytest.raises(EnvError, match="trained on Box"):  # a model evaluated on the wrong env's spaces
        deeprl.load(DQN(wrapped_cartpole, **SMALL_DQN).save(tmp_path / "m"), env=lambda: gym.make("Acrobot-v1"))


def test_env_refuses_an_env_object_and_a_function_that_needs_arguments():
    with pytest.raises(ConfigError, match="env=lambda: MyEnv"):
        DQN(gym.make("CartPole-v1"))
    with pytest.raises(ConfigError, match="needs arguments"):
        DQN(lambda size: gym.make("CartPole-v1"))
    with pytest.raises(ConfigError, match="takes a Gymnasium id, an EnvSpec or a function"):
        DQN(42)
    with pytest.raises(EnvError, match="returned int, not a gymnasium.Env"):
        DQN(lambda: 3)


def test_a_factory_takes_no_env_kwargs_and_async_needs_a_picklable_one():
    with pytest.raises(EnvError, match="functools.partial"):
        PPO(wrapped_cartpole, env_kwargs={"sutton_barto_reward": True}, **SMALL_PPO)
    with pytest.raises(EnvError, match="define it at module level"):
        PPO(lambda: gym.make("CartPole-v1"), vectorization="async", **SMALL_PPO)
    PPO(wrapped_cartpole, vectorization="async", **SMALL_PPO).learn().close()  # a module-level one goes to workers
    agent = PPO(wrapped_cartpole, max_episode_steps=7, **SMALL_PPO)  # deeprl's settings still apply
    assert agent.evaluate(2)["mean_length"] == 7
    with pytest.raises(EnvError, match="render_mode='rgb_array'"):  # videos need the factory to render frames
        agent.record_video("never.mp4")
    agent.close()


# ------------------------------------------------------------------------------------------ EnvSpec


def test_an_env_spec_becomes_its_id_and_kwargs(tmp_path):
    spec = dataclasses.replace(gym.spec("FrozenLake-v1"), kwargs={"map_name": "8x8", "is_slippery": False},
                               max_episode_steps=50)
    agent = PPO(spec, **SMALL_PPO).learn(run_dir=tmp_path / "run")
    c = agent.config
    assert (c.env, c.env_kwargs, c.max_episode_steps) == ("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}, 50)
    assert agent.observation_space == gym.spaces.Discrete(64)
    agent.close()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["env_kwargs"] == {"map_name": "8x8", "is_slippery": False}
    # the user's env_kwargs win over the spec's; an id run evaluates from its saved config alone
    assert PPO(spec, env_kwargs={"is_slippery": True}, **SMALL_PPO).config.env_kwargs["is_slippery"] is True
    assert deeprl.load(tmp_path / "run").evaluate(1)["episodes"] == 1


def test_an_unregistered_env_spec_is_held_like_a_factory():
    spec = gym.envs.registration.EnvSpec("DictTargetCopy-v0", entry_point=DictTarget, max_episode_steps=10)
    agent = PPO(spec, wrappers=["gymnasium.wrappers.FlattenObservation"], **SMALL_PPO)
    assert agent.config.env == "<factory EnvSpec DictTargetCopy-v0>"
    assert agent.learn().evaluate(2)["mean_length"] == 10
    agent.close()


# ------------------------------------------------------------------------------------------ wrappers


def test_wrappers_flatten_a_dict_observation_env_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--env", "DictTarget-v0", "--wrappers", "gymnasium.wrappers.FlattenObservation",
                 "--steps", "128", "--out", str(out), "--no-progress", "--set", "num_envs=2", "n_steps=16",
                 "minibatch_size=16", "n_epochs=1", "net_arch=[16]", "eval_episodes=2", "eval_freq=0"]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["wrappers"] == ["gymnasium.wrappers.FlattenObservation"]
    assert deeprl.load(out).observation_space.shape == (5,)  # flattened: pos (2) + one-hot goal (3)
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0  # gymnasium's wrappers need no --allow-import
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mean_length"] == 10


def test_wrappers_wrap_training_and_evaluation_envs_in_order(tmp_path, monkeypatch):
    _wrapper_module(tmp_path, monkeypatch, "order_wrappers")
    agent = DQN(preset=None, total_steps=300, learning_starts=100, eval_freq=0, net_arch=[16],
                wrappers=["order_wrappers.double_reward", "order_wrappers:plus_one_reward"])
    agent.learn()
    ev = agent.evaluate(2)
    assert ev["mean_return"] == pytest.approx(3 * ev["mean_length"])  # (1 * 2) + 1, not (1 + 1) * 2
    assert agent.recent_returns and all(r % 3 == 0 for r in agent.recent_returns)
    assert agent.q_bounds is None  # CartPole's known reward range no longer holds under the user's wrappers
    agent.close()


@pytest.mark.parametrize("path, message", [
    ("gymnasium.spaces.Box", "is a class but not a gymnasium.Wrapper"),
    ("gymnasium.wrappers.TransformReward", "needs more than the env"),
    ("gymnasium.wrappers.FlattenObservatio", "Did you mean 'FlattenObservation'"),
    ("no_such_module_here.Wrapper", "cannot import the module 'no_such_module_here'"),
    ("gymnasium.__version__", "is a str, so it cannot wrap an env"),
])
def test_bad_wrappers_are_refused_in_one_line_before_any_env_is_made(path, message, tmp_path, capsys):
    made = []

    def factory():
        made.append(1)
        return gym.make("CartPole-v1")
    with pytest.raises(EnvError, match=message):
        DQN(factory, wrappers=[path])
    assert made == []
    assert main(["train", "--wrappers", path, "--steps", "100", "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.split("'")[0] in err[0]


def test_a_wrapper_that_does_not_fit_the_env_and_a_path_that_is_no_path():
    with pytest.raises(EnvError, match="cannot wrap this env"):
        DQN(wrappers=["gymnasium.wrappers.ClipAction"])  # Box actions only; CartPole's are Discrete
    with pytest.raises(ConfigError, match="import paths such as"):
        DQN(wrappers=["not a path"])


def test_a_wrapper_module_named_by_a_file_needs_allow_import(tmp_path, monkeypatch, capsys):
    _wrapper_module(tmp_path, monkeypatch, "file_wrappers")
    run = tmp_path / "run"
    DQN(preset=None, total_steps=400, learning_starts=100, eval_freq=0, eval_episodes=1, log_interval=100,
        net_arch=[16], wrappers=["file_wrappers.double_reward"]).learn(run_dir=run, pause_at=200).close()
    model = DQN(preset=None, wrappers=["file_wrappers.double_reward"]).save(tmp_path / "m")
    monkeypatch.delitem(sys.modules, "file_wrappers")
    with pytest.raises(EnvError, match="--allow-import file_wrappers"):
        DQN.resume(run)
    with pytest.raises(EnvError, match="--allow-import file_wrappers"):
        deeprl.load(model)
    assert deeprl.load(model, allow_import=["file_wrappers"]).evaluate(1)["episodes"] == 1
    monkeypatch.delitem(sys.modules, "file_wrappers")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "file_wrappers" not in sys.modules  # never imported because a file named it
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["train", "--resume", str(run), "--no-progress", "--allow-import", "file_wrappers"]) == 0
    assert main(["eval", str(run), "--episodes", "1", "--allow-import", "file_wrappers"]) == 0


def test_wrappers_stay_with_a_resumed_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--wrappers", "gymnasium.wrappers.NormalizeObservation", "--steps", "400", "--out",
                 str(run), "--no-progress", "--set", "learning_starts=100", "eval_freq=0", "eval_episodes=1",
                 "checkpoint_freq=200", "net_arch=[16]"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--wrappers", "gymnasium.wrappers.FlattenObservation"]) == 2
    assert main(["train", "--wrappers", "gymnasium.wrappers.FlattenObservation", "--set",
                 "wrappers=gymnasium.wrappers.NormalizeObservation", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "drop --wrappers" in err[0] and "given both as a flag and in --set" in err[1]
    with pytest.raises(ConfigError, match="wrappers cannot change"):
        DQN.resume(run, settings={"wrappers": []})
