"""Configuration: presets, overrides, and the errors for bad keys and values."""

import pytest

from deeprl.agents.dqn import DQNConfig
from deeprl.config import build_config, describe, list_presets, parse_assignments, preset_for
from deeprl.errors import ConfigError


def test_overrides_from_strings_are_typed():
    c = build_config(DQNConfig, parse_assignments(["lr=5e-4", "double_q=false", "net_arch=[32,16]",
                                                   "total_steps=20_000", "loss=mse"]))
    assert c.lr == 5e-4 and c.double_q is False and c.net_arch == [32, 16]
    assert c.total_steps == 20000 and isinstance(c.total_steps, int) and c.loss == "mse"


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError, match="unknown setting 'doubel_q'.*Did you mean 'double_q'"):
        build_config(DQNConfig, {"doubel_q": True})
    with pytest.raises(ConfigError, match="unknown setting 'batchsize'.*Did you mean 'batch_size'"):
        build_config(DQNConfig, {"batchsize": 3})


def test_ill_typed_values():
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        build_config(DQNConfig, {"batch_size": "lots"})
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        build_config(DQNConfig, {"batch_size": "32.5"})
    with pytest.raises(ConfigError, match="'double_q' expects bool"):
        build_config(DQNConfig, {"double_q": "maybe"})
    with pytest.raises(ConfigError, match="'loss' must be one of"):
        build_config(DQNConfig, {"loss": "hubber"})


def test_ranges():
    with pytest.raises(ConfigError, match="'total_steps' must be >= 1"):
        build_config(DQNConfig, {"total_steps": 0})
    with pytest.raises(ConfigError, match="'gamma' must be <= 1"):
        build_config(DQNConfig, {"gamma": 1.5})
    with pytest.raises(ConfigError, match="'lr' must be > 0"):
        build_config(DQNConfig, {"lr": 0})
    with pytest.raises(ConfigError, match="batch_size 64 exceeds buffer_size 10"):
        build_config(DQNConfig, {"batch_size": 64, "buffer_size": 10})


def test_set_syntax_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["lr"])


def test_config_is_frozen():
    c = build_config(DQNConfig)
    with pytest.raises(Exception):
        c.lr = 1.0  # type: ignore[misc]


def test_every_shipped_preset_is_valid():
    presets = list_presets()["dqn"]
    for env in ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "MountainCar-v0", "ALE/Pong-v5",
                "lecture-v1", "lecture-v2"):
        assert env in presets
        build_config(DQNConfig, preset_for("dqn", env))
    with pytest.raises(ConfigError, match="no preset 'CartPole'.*'CartPole-v1'"):
        preset_for("dqn", "CartPole")


def test_lecture_presets_are_what_the_lecture_says():
    v1 = build_config(DQNConfig, preset_for("dqn", "lecture-v1"))
    assert (v1.replay, v1.target_update_interval, v1.stop_gradient, v1.eps_start, v1.eps_end) == \
        (False, 0, False, 0.0, 0.0)
    v2 = build_config(DQNConfig, preset_for("dqn", "lecture-v2"))
    assert v2.stop_gradient and v2.eps_start > 0 and not v2.replay


def test_describe_lists_every_setting():
    text = describe(DQNConfig)
    for name in ("lr", "double_q", "n_step", "prioritized", "env", "total_steps"):
        assert f"  {name} " in text


def test_every_algorithm_preset_builds():
    from deeprl import ALGORITHMS
    presets = list_presets()
    assert set(presets) <= set(ALGORITHMS)  # every preset file belongs to an algorithm
    for algo in ("a2c", "ppo"):
        for env in ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1", "ALE/Pong-v5"):
            assert env in presets[algo], (algo, env)
    for algo, named in presets.items():
        for name in named:
            build_config(ALGORITHMS[algo].config_cls, preset_for(algo, name))


def test_policy_gradient_consistency_checks():
    from deeprl.agents.pg import A2CConfig, ReinforceConfig
    with pytest.raises(ConfigError, match="needs complete episodes"):
        build_config(A2CConfig, {"estimator": "baseline"})
    with pytest.raises(ConfigError, match="needs complete episodes"):
        build_config(A2CConfig, {"critic_target": "rollout"})
    assert build_config(ReinforceConfig).collect == "episodes"


def test_torch_threads_default_is_one_for_vectors_and_half_the_cores_for_images(monkeypatch):
    from deeprl.agents import base

    for cores, images_threads in ((1, 1), (2, 1), (8, 4), (64, 4)):
        monkeypatch.setattr(base.os, "cpu_count", lambda cores=cores: cores)
        assert base.default_torch_threads(images=False) == 1
        assert base.default_torch_threads(images=True) == images_threads
