"""ONNX export: the graph run by onnxruntime returns what predict(obs, deterministic=True) returns."""

import json
import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import deeprl
from deeprl import A2C, DQN, PPO, Dreamer
from deeprl.cli import main
from deeprl.errors import ConfigError
from deeprl.export import TOLERANCE, ExportError, compare, ieee_float32, policy_graph

QUIET = dict(eval_freq=0, checkpoint_freq=0, log_interval=100)


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def observations(space, n=1_000, seed=123):
    """Observations the export's own check did not draw (it samples with seed 0)."""
    space.seed(seed)
    return np.stack([np.asarray(space.sample(), dtype=space.dtype) for _ in range(n)])


def exported(agent, tmp_path):
    """Export ``agent``, then run the file here on 1,000 observations of our own: (report, actions, predict's)."""
    report = agent.export(tmp_path / "policy.onnx")
    assert report["observations"] == 1_000 and report["path"] == str(tmp_path / "policy.onnx")
    obs = observations(agent.observation_space)
    inputs = {i.name: np.zeros([len(obs), *i.shape[1:]], np.float32) for i in session(report["path"]).get_inputs()}
    inputs["obs"] = obs
    return report, session(report["path"]).run(["action"], inputs)[0], agent.predict(obs)


def test_dqn_cartpole(tmp_path):
    agent = DQN("CartPole-v1", preset=None, learning_starts=100, net_arch=[32, 32], **QUIET).learn(300)
    report, actions, expected = exported(agent, tmp_path)
    assert report["max_difference"] == 0.0 and report["ties"] == 0
    assert actions.dtype == expected.dtype == np.int64
    np.testing.assert_array_equal(actions, expected)
    meta = {p.key: p.value for p in onnx.load(report["path"]).metadata_props}
    assert meta["deeprl.algo"] == "dqn" and json.loads(meta["deeprl.action_space"]) == {"type": "discrete", "n": 2,
                                                                                       "start": 0}


def test_a2c_discrete_cartpole(tmp_path):
    agent = A2C("CartPole-v1", preset=None, num_envs=4, net_arch=[32, 32], **QUIET).learn(400)
    report, actions, expected = exported(agent, tmp_path)
    assert report["max_difference"] == 0.0
    np.testing.assert_array_equal(actions, expected)


def test_ppo_continuous_pendulum_with_observation_statistics(tmp_path):
    agent = PPO("Pendulum-v1", preset=None, n_steps=64, minibatch_size=32, n_epochs=2, normalize_obs=True,
                log_std_init=-1.0, **QUIET).learn(256)
    assert agent.obs_rms.count > 100  # the statistics moved: the graph must carry them
    head = agent.net.policy_head  # means on both sides of the torque bound 2: clipping shows
    head.weight.data *= 100
    head.bias.data.fill_(1.9)
    report, actions, expected = exported(agent, tmp_path)
    assert report["max_difference"] <= TOLERANCE
    assert actions.dtype == expected.dtype == np.float32 and actions.shape == (1_000, 1)
    np.testing.assert_allclose(actions, expected, atol=TOLERANCE)
    assert actions.max() == 2.0 and actions.min() < 2.0  # clipped to Pendulum's torque bound, as predict clips
    agent.obs_rms.update(np.full((1_000, 3), 50.0))  # statistics frozen at export: a later update is not in the file
    assert np.abs(agent.predict(observations(agent.observation_space)) - actions).max() > TOLERANCE


def test_dreamer_step_function_runs_episodes_as_evaluation_does(tmp_path):
    agent = Dreamer("CartPole-v1", preset="debug", seed=1, total_steps=200, **QUIET).learn()
    assert agent.updates > 0
    report, actions, expected = exported(agent, tmp_path)
    assert report["max_difference"] == 0.0 and report["state_difference"] <= TOLERANCE
    np.testing.assert_array_equal(actions, expected)  # a first step from zeros is predict's (stateless) step
    # the documented recipe: zeros at an episode's start, each *_out fed back; against the evaluation policy
    graph, policy, env = session(report["path"]), agent._eval_policy(), agent.make_env()
    sizes = {i.name: i.shape[1] for i in graph.get_inputs() if i.name != "obs"}
    steps = 0
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        state = {name: np.zeros((1, size), np.float32) for name, size in sizes.items()}
        policy.reset(np.ones(1, bool))
        done = False
        while not done:
            action, *state_out = graph.run(None, {"obs": obs[None], **state})
            state = dict(zip(sizes, state_out))
            assert action[0] == policy(obs[None])[0]
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            done, steps = terminated or truncated, steps + 1
    assert steps > 20


def test_dreamer_continuous_fresh(tmp_path):
    agent = Dreamer("Pendulum-v1", preset="debug", **QUIET)
    report, actions, expected = exported(agent, tmp_path)
    assert report["max_difference"] <= TOLERANCE and actions.shape == expected.shape == (1_000, 1)
    np.testing.assert_allclose(actions, expected, atol=TOLERANCE)
    assert [i.name for i in session(report["path"]).get_inputs()] == ["obs", "deter", "stoch", "prev_action"]


def test_discrete_observations_and_images(tmp_path):
    for agent in (PPO("FrozenLake-v1", preset=None, **QUIET), DQN("MinAtar/Breakout-v1", preset=None, **QUIET)):
        report, actions, expected = exported(agent, tmp_path)
        np.testing.assert_array_equal(actions, expected)
        assert report["inputs"]["obs"][1] == str(agent.observation_space.dtype)  # int64 codes, uint8 images as given


def test_cli_exports_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "dqn", "--env", "CartPole-v1", "--steps", "300", "--out", str(run), "--no-progress",
                 "--preset", "lecture-v2", "--set", "eval_freq=0", "log_interval=100"]) == 0
    capsys.readouterr()
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'policy.onnx'}" in out and "max difference 0" in out
    obs = observations(gym.make("CartPole-v1").observation_space)
    np.testing.assert_array_equal(session(run / "policy.onnx").run(["action"], {"obs": obs})[0],
                                  deeprl.load(run).predict(obs))
    assert main(["export", str(run / "model.safetensors"), "--out", str(tmp_path / "p.onnx")]) == 0
    assert (tmp_path / "p.onnx").exists()


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], "unknown export format 'tflite'"),
    (["--format", "onx"], "Did you mean 'onnx'?"),
])
def test_cli_refuses_an_unknown_format_in_one_line(tmp_path, capsys, args, message):
    path = DQN("CartPole-v1", preset=None, **QUIET).save(tmp_path / "m")
    assert main(["export", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.tflite"))


def test_cli_refuses_a_missing_run_in_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_missing_runtime_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ExportError, match=r'pip install "deeprl\[export\]"'):
        DQN("CartPole-v1", preset=None, **QUIET).export(tmp_path / "p.onnx")


@pytest.mark.parametrize("obs_space, action_space, message", [
    (gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))}), gym.spaces.Discrete(2), "observes Dict"),
    (gym.spaces.Box(-1, 1, (2,)), gym.spaces.MultiDiscrete([2, 3]), "actions are MultiDiscrete"),
])
def test_spaces_it_cannot_export_are_refused_in_one_line(obs_space, action_space, message):
    agent = SimpleNamespace(algo="ppo", observation_space=obs_space, action_space=action_space)
    with pytest.raises(ExportError, match=message) as error:
        policy_graph(agent)
    assert "\n" not in str(error.value)


def test_unknown_format_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Available: onnx"):
        DQN("CartPole-v1", preset=None, **QUIET).export(tmp_path / "p.onnx", format="torchscript")


def test_a_graph_that_disagrees_with_predict_is_not_written(tmp_path, monkeypatch):
    agent = A2C("CartPole-v1", preset=None, **QUIET)
    monkeypatch.setattr(agent, "predict", lambda obs, deterministic=True: 1 - A2C.predict(agent, obs))
    with pytest.raises(ExportError, match="differ from predict's on"):
        agent.export(tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()


def test_compare_forgives_ties_only():
    scores = np.array([[[1.0, 1.0 + 1e-6]], [[0.0, 5.0]]])          # row 0: a tie; row 1: a clear choice
    expected = np.array([1, 1])
    assert compare(np.array([0, 1]), expected, scores).ties == 1      # the tie broken the other way: allowed
    assert compare(np.array([1, 0]), expected, scores).wrong == 1     # the clear choice missed: wrong
    assert compare(np.array([1, 1], np.int32), expected, scores).wrong == 2  # another dtype: all wrong
    far = compare(np.array([[0.5], [2.0]], np.float32), np.array([[0.5], [2.0 + 1e-3]], np.float32))
    assert far.wrong == 1 and far.difference == pytest.approx(1e-3, rel=1e-3)


def test_ieee_float32_restores_the_precision_settings():
    settings = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [s.fp32_precision for s in settings]
    with ieee_float32():
        assert [s.fp32_precision for s in settings] == ["ieee", "ieee"]
    assert [s.fp32_precision for s in settings] == before
