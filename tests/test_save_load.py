"""A saved model is the agent that was trained: same spaces (bounds included), same weights, same
actions and the same Q-values / log-probabilities, for every algorithm on a Box-action env, a
MinAtar grid and an Atari frame stack."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl import ALGORITHMS
from deeprl.spaces import space_from_json, space_to_json
from deeprl.errors import CheckpointError

COMMON = dict(eval_freq=0, checkpoint_freq=0, seed=3)
TINY = {
    "dqn": dict(preset=None, learning_starts=16, batch_size=8, buffer_size=256, train_freq=4, net_arch=[16]),
    "reinforce": dict(preset=None, batch_episodes=1, net_arch=[16]),
    "actor_critic": dict(preset=None, collect="steps", n_steps=8, net_arch=[16]),
    "a2c": dict(preset=None, num_envs=2, n_steps=8, net_arch=[16]),
    "ppo": dict(preset=None, num_envs=2, n_steps=16, minibatch_size=16, n_epochs=1, net_arch=[16]),
    "worldmodel": dict(preset=None, prefill_steps=40, collect_steps=40, vae_steps=2, model_steps=2,
                       dream_iterations=1, dream_batch=4, horizon=3, batch_size=8, latent_dim=4, vae_hidden=[16],
                       model_hidden=[16], net_arch=[16], buffer_size=256, picture_freq=0),
    "dreamer": dict(preset="debug", prefill_steps=40, buffer_size=512),
    "pqn": dict(preset=None, num_envs=2, n_steps=8, n_epochs=1, minibatch_size=8, net_arch=[16]),
}
ENVS = {"box": "Pendulum-v1", "minatar": "MinAtar/Breakout-v1", "atari": "ALE/Pong-v5"}
STEPS = {"box": 80, "minatar": 80, "atari": 48}


def _scores(agent, obs: np.ndarray) -> torch.Tensor:
    """What the agent's choice rests on: Q-values (DQN) or log π(a|s) of fixed actions."""
    x = torch.as_tensor(obs, device=agent.device)
    with torch.no_grad():
        if agent.algo in ("dqn", "pqn"):
            return agent.q(x)
        if agent.algo == "worldmodel":
            dist = agent.ac.policy(agent.encode(obs))
            return dist.log_prob(dist.mode())
        if agent.algo == "dreamer":
            memory = agent._policy_state(len(obs))
            post = agent.rssm.obs_step(memory["state"], memory["action"], agent._embed(x), memory["first"], mode=True)
            return agent.actor.net(post.feature())
        dist = agent.net.policy(torch.as_tensor(agent._normalize(obs), device=agent.device))
        return dist.log_prob(dist.mode())


def _cases():
    for algo in ALGORITHMS:
        for kind in ENVS:
            marks = [pytest.mark.slow] if kind == "atari" and algo in ("worldmodel", "dreamer") else []
            if algo in ("dqn", "pqn") and kind == "box":
                continue  # the Q-learners refuse continuous actions (tested in test_cli, test_pqn)
            yield pytest.param(algo, kind, marks=marks, id=f"{algo}-{kind}")


@pytest.mark.parametrize("algo,kind", list(_cases()))
def test_saved_model_is_the_trained_agent(algo, kind, tmp_path):
    cls = ALGORITHMS[algo]
    settings = {**COMMON, **TINY[algo]}
    if kind == "atari":
        settings["torch_threads"] = 1
    agent = cls(ENVS[kind], total_steps=STEPS[kind], **settings)
    agent.learn()
    loaded = deeprl.load(agent.save(tmp_path / algo), device="cpu")
    try:
        assert type(loaded) is cls
        assert loaded.observation_space == agent.observation_space
        assert loaded.action_space == agent.action_space
        assert space_to_json(loaded.observation_space) == space_to_json(agent.observation_space)
        rng = np.random.default_rng(0)
        obs = np.stack([agent.observation_space.sample() for _ in range(5)])
        if kind == "box":  # beyond the usual range too: actions must stay inside the bounds
            obs = (obs * rng.uniform(1, 5, size=obs.shape)).astype(agent.observation_space.dtype)
        actions = agent.predict(obs)
        np.testing.assert_array_equal(loaded.predict(obs), actions)
        assert all(agent.action_space.contains(np.asarray(a, agent.action_space.dtype)) for a in actions)
        torch.testing.assert_close(_scores(loaded, obs), _scores(agent, obs), rtol=0, atol=0)
    finally:
        agent.close()
        loaded.close()


@pytest.mark.parametrize("space", [
    gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
    gym.spaces.Box(np.array([-1.0, -np.inf, 0.0], np.float32), np.array([1.0, np.inf, 5.5], np.float32)),
    gym.spaces.Box(0, 1, (4, 10, 10), np.uint8),
    gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
    gym.spaces.Box(-np.inf, np.inf, (2, 3), np.float64),
    gym.spaces.Discrete(5, start=-1),
])
def test_space_json_round_trip_is_exact(space):
    import json
    text = json.dumps(space_to_json(space), allow_nan=False)  # valid JSON: no Infinity / NaN literals
    assert space_from_json(json.loads(text)) == space


@pytest.mark.parametrize("bad", [
    {"type": "box", "shape": [4], "dtype": "float32", "low": "x", "high": 1},
    {"type": "box", "shape": [4], "dtype": "float32", "low": [0, 1], "high": 1},
    {"type": "box", "shape": [100000, 100000, 100], "dtype": "float32"},
    {"type": "box", "shape": [4], "dtype": "object"},
    {"type": "discrete", "n": "7"},
    {"type": "tuple"},
    "box",
])
def test_malformed_space_is_a_checkpoint_error(bad):
    with pytest.raises(CheckpointError):
        space_from_json(bad)
