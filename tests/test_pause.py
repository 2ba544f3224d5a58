"""``learn(pause_at=...)``: a run stopped partway on purpose (a sweep's early-stopping rungs)
continues exactly, for every algorithm; in memory and from its run directory."""

import pytest
import torch

from deeprl import ALGORITHMS
from tests.resume import pause_and_continue
from tests.test_save_load import TINY  # the same tiny settings per algorithm

ENV = {"dqn": "CartPole-v1", "pqn": "CartPole-v1"}


def _make(algo):
    settings = dict(TINY[algo], seed=5, total_steps=400, eval_freq=200, eval_episodes=2, checkpoint_freq=0,
                    log_interval=80)
    return lambda: ALGORITHMS[algo](ENV.get(algo, "Pendulum-v1" if algo != "reinforce" else "CartPole-v1"),
                                    **settings)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_a_paused_run_continues_exactly(algo, tmp_path):
    pause_and_continue(_make(algo), tmp_path, pause_at=150)


def test_pausing_in_memory_and_at_a_step_already_reached():
    make = _make("ppo")
    whole = make().learn()
    agent = make().learn(pause_at=100)
    at = agent.num_timesteps
    assert agent.paused and at < 400
    agent.learn(pause_at=50)  # already past it: nothing to do
    assert agent.paused and agent.num_timesteps == at
    agent.learn()
    assert not agent.paused and agent.num_timesteps == whole.num_timesteps
    for p, q in zip(whole.net.parameters(), agent.net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
