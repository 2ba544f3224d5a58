"""Slow learning tests: the shipped CartPole preset solves CartPole (fixed seed)."""

import pytest

from deeprl import DQN


@pytest.mark.slow
def test_cartpole_preset_solves_cartpole():
    solved = {}

    def check(agent):
        if agent.num_timesteps % 2000 == 0 and agent.num_timesteps >= 8000:
            result = agent.evaluate(20)
            if result["mean_return"] >= 475:
                solved["at"] = agent.num_timesteps
                return False

    agent = DQN("CartPole-v1", seed=0, log_interval=2000, eval_freq=0, checkpoint_freq=0)
    agent.learn(callback=check)
    assert "at" in solved, "the CartPole-v1 preset did not reach a 20-episode mean of 475"
