"""DQN: the loss and its stop-gradient, target updates, learning on trivial envs, persistence."""

import csv

import numpy as np
import pytest
import torch

import deeprl
from deeprl import DQN
from deeprl.buffers import ReplaySamples
from deeprl.errors import CheckpointError, ConfigError, EnvError
from tests.envs import CHAIN, IDENTITY

FAST = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=500)


def batch_of(agent, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 3, generator=g)
    batch = dict(obs=obs, actions=torch.randint(0, 3, (n,), generator=g), returns=torch.rand(n, generator=g),
                 discounts=torch.full((n,), 0.9), next_obs=torch.rand(n, 3, generator=g), weights=torch.ones(n))
    return ReplaySamples(**{k: v.to(agent.device) for k, v in batch.items()}, indices=np.arange(n))


def grads(agent, batch):
    agent.q.zero_grad()
    terms, _, _ = agent.losses(batch)
    terms["td"].backward()
    return [p.grad.clone() for p in agent.q.parameters()]


def test_stop_gradient_matches_a_detached_target():
    """With ⊥ the gradient is that of (Q(s,a) - fixed label)²; without it the target moves too."""
    kw = dict(FAST, replay=False, target_update_interval=0, double_q=False, loss="mse")
    stopped = DQN(IDENTITY, stop_gradient=True, **kw)
    moving = DQN(IDENTITY, stop_gradient=False, **kw)
    moving.q.load_state_dict(stopped.q.state_dict())
    b = batch_of(stopped)

    q = stopped.q
    q.zero_grad()
    pred = q(b.obs).gather(1, b.actions[:, None]).squeeze(1)
    label = (b.returns + b.discounts * q(b.next_obs).max(1).values).detach()
    ((pred - label) ** 2).mean().backward()
    manual = [p.grad.clone() for p in q.parameters()]

    for g, m in zip(grads(stopped, b), manual):
        torch.testing.assert_close(g, m)
    assert any(not torch.allclose(g, m) for g, m in zip(grads(moving, b), manual))


def test_target_network_is_used_and_updated():
    agent = DQN(IDENTITY, target_update_interval=100, double_q=False, tau=1.0, **FAST)
    b = batch_of(agent)
    with torch.no_grad():
        for p in agent.q.parameters():
            p.add_(1.0)
    # the target still scores with the old weights
    expected = b.returns + b.discounts * agent.q_target(b.next_obs).max(1).values
    torch.testing.assert_close(agent.td_target(b), expected)
    agent.update_target()
    for t, p in zip(agent.q_target.parameters(), agent.q.parameters()):
        torch.testing.assert_close(t, p)


def test_polyak_update():
    agent = DQN(IDENTITY, target_update_interval=1, tau=0.25, **FAST)
    before = [t.clone() for t in agent.q_target.parameters()]
    with torch.no_grad():
        for p in agent.q.parameters():
            p.add_(4.0)
    agent.update_target()
    for t, b0, p in zip(agent.q_target.parameters(), before, agent.q.parameters()):
        torch.testing.assert_close(t, 0.75 * b0 + 0.25 * p)


def test_epsilon_schedule():
    agent = DQN(IDENTITY, eps_start=1.0, eps_end=0.1, eps_fraction=0.5, total_steps=1000, **FAST)
    assert agent.epsilon() == 1.0
    agent.num_timesteps = 250
    assert agent.epsilon() == pytest.approx(0.55)
    agent.num_timesteps = 900
    assert agent.epsilon() == pytest.approx(0.1)


def test_bad_spaces_and_combinations():
    with pytest.raises(EnvError, match="needs a discrete action space"):
        DQN("Pendulum-v1")
    with pytest.raises(ConfigError, match="double_q needs a target network"):
        DQN(IDENTITY, target_update_interval=0, double_q=True, **FAST)
    with pytest.raises(ConfigError, match="need replay=true"):
        DQN(IDENTITY, replay=False, n_step=3, target_update_interval=0, double_q=False, **FAST)


@pytest.mark.parametrize("variant", [
    dict(),
    dict(double_q=False),
    dict(n_step=3),
    dict(prioritized=True),
    dict(dueling=True, loss="mse", max_grad_norm=0),
])
def test_learns_identity_env(variant):
    agent = DQN(IDENTITY, seed=1, total_steps=3000, learning_starts=200, train_freq=1, target_update_interval=100,
                eps_fraction=0.3, lr=3e-3, batch_size=32, **{**FAST, **variant})
    agent.learn()
    result = agent.evaluate(10)
    assert result["mean_return"] >= 18.0  # 20 steps, reward 1 when the action names the observed target


def test_learns_with_discrete_observations():
    agent = DQN(CHAIN, seed=0, total_steps=800, learning_starts=50, train_freq=1, target_update_interval=50,
                eps_fraction=0.5, lr=1e-2, gamma=0.9, **FAST)
    agent.learn()
    q = agent.q(torch.tensor([0], device=agent.device))
    assert q[0, 1] > q[0, 0] and q[0, 1].item() == pytest.approx(1.0, abs=0.15)
    assert agent.predict(0) == 1


@pytest.mark.parametrize("preset", ["lecture-v1", "lecture-v2"])
def test_lecture_variants_run(preset):
    agent = DQN("CartPole-v1", preset=preset, total_steps=600, eval_freq=0, checkpoint_freq=0)
    agent.learn()
    assert agent.updates == 600 and agent.buffer is None and agent.q_target is None


def test_vectorized_training_counts_steps():
    agent = DQN("CartPole-v1", num_envs=4, total_steps=2000, learning_starts=500, train_freq=8, gradient_steps=2,
                target_update_interval=100, **FAST)
    agent.learn()
    assert agent.num_timesteps == 2000
    # 1500 learning steps / 4 envs = 375 vector steps; every 2nd trains twice
    assert agent.updates == pytest.approx(375, abs=4)


def test_atari_q_network_smoke():
    agent = DQN("ALE/Pong-v5", total_steps=64, learning_starts=32, train_freq=4, batch_size=4, buffer_size=500,
                target_update_interval=16, **FAST)
    agent.learn()
    assert type(agent.q.torso).__name__ == "NatureCNN" and agent.updates == 8
    assert agent.buffer.obs.dtype == np.uint8 and agent.buffer.obs.shape[2:] == (4, 84, 84)


def test_save_load_round_trip(tmp_path):
    agent = DQN(IDENTITY, total_steps=500, learning_starts=100, dueling=True, **FAST)
    agent.learn()
    path = agent.save(tmp_path / "model")
    assert path.name == "model.safetensors"
    loaded = deeprl.load(path)
    obs = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    assert loaded.config == agent.config and isinstance(loaded, DQN)
    with torch.no_grad():
        torch.testing.assert_close(loaded.q(torch.from_numpy(obs).to(loaded.device)),
                                   agent.q(torch.from_numpy(obs).to(agent.device)))


def test_load_rejects_foreign_and_corrupt_files(tmp_path):
    from safetensors.torch import save_file
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        deeprl.load(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a deeprl model"):
        deeprl.load(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        deeprl.load(tmp_path / "missing.safetensors")


def _rows(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in ("wall_time", "charts/sps")} for r in rows]


def _run(run_dir, **kw):
    cfg = dict(preset=None, seed=5, total_steps=3000, learning_starts=300, train_freq=2, target_update_interval=200,
               eval_freq=1000, eval_episodes=3, checkpoint_freq=1000, log_interval=500, n_step=2, prioritized=True)
    return DQN("CartPole-v1", **{**cfg, **kw})


def test_same_seed_same_numbers(tmp_path):
    a = _run(None).learn(run_dir=tmp_path / "a")
    b = _run(None).learn(run_dir=tmp_path / "b")
    assert _rows(tmp_path / "a" / "metrics.csv") == _rows(tmp_path / "b" / "metrics.csv")
    for p, q in zip(a.q.parameters(), b.q.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    whole = _run(None).learn(run_dir=tmp_path / "whole")

    def crash(agent):
        if agent.num_timesteps >= 2500:
            raise KeyboardInterrupt  # killed between the checkpoint at 2000 and the end
    crashed = _run(None)
    with pytest.raises(KeyboardInterrupt):
        crashed.learn(run_dir=tmp_path / "crashed", callback=crash)
    crashed.close()
    assert (tmp_path / "crashed" / "checkpoints" / "step_000000002000").is_dir()
    resumed = DQN.resume(tmp_path / "crashed")
    assert resumed.num_timesteps == 2000
    resumed.learn()
    assert _rows(tmp_path / "whole" / "metrics.csv") == _rows(tmp_path / "crashed" / "metrics.csv")
    for p, q in zip(whole.q.parameters(), resumed.q.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="already finished"):
        DQN.resume(tmp_path / "crashed")


def test_resume_rejects_missing_and_corrupt(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        DQN.resume(tmp_path / "nope")
    _run(None, total_steps=1000).learn(run_dir=tmp_path / "r")
    state = tmp_path / "r" / "checkpoints" / "step_000000001000" / "state.json"
    state.write_text("{ truncated")
    with pytest.raises(CheckpointError, match="corrupt"):
        DQN.resume(tmp_path / "r", total_steps=2000)


# --------------------------------------------------------------------------- the divergence warning
def test_divergence_level_is_one_and_a_half_times_the_largest_value_for_either_sign():
    """docs/dqn.md: DQN warns when |Q| passes 1.5 max|r| / (1 - γ), rewards of one sign or both."""
    from deeprl.agents.dqn import divergence_level, value_bounds
    assert divergence_level(value_bounds((1.0, 1.0), 0.99)) == pytest.approx(150.0)     # CartPole
    assert divergence_level(value_bounds((-1.0, 0.0), 0.9)) == pytest.approx(15.0)      # Acrobot, γ = 0.9
    assert divergence_level(value_bounds((-1.0, 1.0), 0.99)) == pytest.approx(150.0)    # clipped Atari
    assert divergence_level(value_bounds((-2.0, 1.0), 0.9)) == pytest.approx(30.0)
    assert divergence_level(value_bounds((0.5, 3.0), 0.5)) == pytest.approx(9.0)
    assert divergence_level(None) is None
    agent = DQN("CartPole-v1", total_steps=300, **FAST)
    agent.q_bounds = value_bounds((-1.0, 1.0), 0.99)                                    # both signs: 150, not 200
    agent._check_divergence(149.0)
    assert not agent.warnings
    agent._check_divergence(151.0)
    assert "beyond 1.5x the largest possible value 100 " in agent.warnings["q_divergence"]


def test_a_healthy_frozenlake_run_does_not_warn():
    """Its |Q| climbs fourfold (0.04 to 0.2) as the goal's reward of 1 propagates, yet stays far below
    1.5 max|r| / (1 - γ) = 150 for the rewards collected: no divergence warning."""
    agent = DQN("FrozenLake8x8-v1", seed=3, total_steps=16_000, eval_freq=0, checkpoint_freq=0, log_interval=500)
    agent.learn()
    assert not agent.warnings, agent.warnings
    assert agent.q_bounds is None and agent._rewards_seen == [0.0, 1.0]
    assert max(agent._q_history) < 1.0 and max(agent._q_history[-10:]) > 4 * min(agent._q_history)


def test_unknown_reward_ranges_warn_beyond_what_the_collected_rewards_allow():
    agent = DQN(IDENTITY, total_steps=100, eps_fraction=0.0, **FAST)
    agent.num_timesteps = 2000
    agent._see_rewards(np.array([0.0, np.nan], np.float32))        # a step with a NaN reward is left out
    agent._see_rewards(np.array([0.0, 1.0], np.float32))
    agent._see_rewards(np.array([0.5], np.float32))
    assert agent.q_bounds is None and agent._rewards_seen == [0.0, 1.0]  # values within [0, 100] (γ = 0.99)
    for q in [1.0] * 20 + [20.0, 140.0]:                           # 4x growth, yet within 1.5 x 100
        agent._check_divergence(q)
    assert not agent.warnings
    agent._check_divergence(600.0)                                 # 4x growth, beyond 150
    assert "q_divergence" in agent.warnings and "collected" in agent.warnings["q_divergence"]


def test_the_collected_reward_range_survives_a_resume(tmp_path):
    cfg = dict(preset=None, total_steps=1000, learning_starts=100, checkpoint_freq=500, eval_freq=0, log_interval=250)

    def crash(agent):
        if agent.num_timesteps >= 750:
            raise KeyboardInterrupt
    crashed = DQN(IDENTITY, **cfg)
    with pytest.raises(KeyboardInterrupt):
        crashed.learn(run_dir=tmp_path / "r", callback=crash)
    crashed.close()
    resumed = DQN.resume(tmp_path / "r")
    assert resumed.num_timesteps == 500 and resumed._rewards_seen == [0.0, 1.0]
