"""DeepMind Control Suite ids through shimmy (the optional ``dmc`` extra): made on demand, packed, trained."""

import sys

import gymnasium as gym
import numpy as np
import pytest

from deeprl.envs import make_env
from deeprl.errors import EnvError

ENV = "dm_control/pendulum-swingup-v0"


def test_dmc_id_without_the_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "shimmy", None)  # import shimmy now raises ImportError
    with pytest.raises(EnvError) as e:
        make_env(ENV)
    assert 'pip install "deeprl[dmc]"' in str(e.value) and "\n" not in str(e.value)


def test_dmc_proprio_task_is_a_packed_box_with_actions_in_minus_one_one():
    pytest.importorskip("shimmy")
    pytest.importorskip("dm_control")
    env = make_env(ENV, render_mode="rgb_array")
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape == (3,)
    assert isinstance(env.action_space, gym.spaces.Box)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    first, _ = env.reset(seed=3)
    assert first.dtype == np.float32 and env.observation_space.contains(first)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    env.close()


def test_ppo_and_dreamer_train_on_a_dmc_task():
    pytest.importorskip("shimmy")
    pytest.importorskip("dm_control")
    from deeprl import PPO, Dreamer

    fast = dict(eval_freq=0, checkpoint_freq=0, total_steps=256)
    ppo = PPO(ENV, n_steps=128, minibatch_size=64, n_epochs=1, **fast).learn()
    assert ppo.num_timesteps == 256
    dreamer = Dreamer(ENV, preset="debug", prefill_steps=64, **fast).learn()
    assert dreamer.num_timesteps == 256
    action = dreamer.predict(make_env(ENV).reset(seed=0)[0])
    assert np.all(np.abs(action) <= 1.0)
