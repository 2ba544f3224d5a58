"""``learn(pause_at=...)``: a run stopped partway on purpose (a sweep's early-stopping rungs)
continues exactly, for every algorithm; in memory and from its run directory."""

import pytest
import torch

from deeprl import ALGORITHMS
from tests.resume import pause_and_continue

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
}
ENV = {"dqn": "CartPole-v1"}


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
