"""Dreamer: gradient paths through the dream, the debug preset end to end, determinism, resume."""

import numpy as np
import pytest
import torch

import deeprl
from deeprl import Dreamer
from deeprl.agents.dreamer import frozen
from deeprl.cli import main
from deeprl.dreamer.rssm import flatten
from tests.resume import crash_and_resume, metrics_rows

DEBUG = dict(preset="debug", eval_freq=0, checkpoint_freq=0, log_interval=100)


def trained(env="Pendulum-v1", steps=200, **kw):
    agent = Dreamer(env, total_steps=steps, **{**DEBUG, **kw})
    return agent.learn()


def start_states(agent):
    c = agent.config
    batch = agent.replay.sample(c.batch_size, c.batch_length, agent.rng, device=agent.device)
    with torch.no_grad():
        post, _, _ = agent.rssm.observe(agent._embed(batch["obs"]), batch["action"], batch["is_first"])
    return flatten(post)


@pytest.mark.parametrize("env", ["Pendulum-v1", "CartPole-v1"])
def test_actor_gradient_flows_through_imagined_transitions_but_not_into_the_world_model(env):
    agent = trained(env)
    start = start_states(agent)
    world = agent._world_model()

    def grad_sum(modules):
        return sum(float(p.grad.abs().sum()) for m in modules for p in m.parameters() if p.grad is not None)

    for opt in agent.optimizers.values():
        opt.zero_grad()
    with frozen(world):
        dream = agent.imagine(start, horizon=4)
        # only the LAST state's value: it depends on θ solely through a_0..a_3 fed into the dynamics
        value = agent.twohot.decode(agent.critic(dream["features"][-1])).mean()
        (-value).backward()
    assert grad_sum([agent.actor]) > 0        # reached θ through the dream
    assert grad_sum(world) == 0.0             # ψ: nothing
    assert all(p.requires_grad for m in world for p in m.parameters())   # unfrozen afterwards
    # and the same value without the dynamics in between carries no gradient to θ
    agent.optimizers["actor"].zero_grad()
    with frozen(world):
        (-agent.twohot.decode(agent.critic(start.feature())).mean()).backward()
    assert grad_sum([agent.actor]) == 0.0


def test_behaviour_step_leaves_the_world_model_unchanged():
    agent = trained()
    start = start_states(agent)
    before = [p.detach().clone() for m in agent._world_model() for p in m.parameters()]
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.train_behaviour(start, torch.zeros(start.deter.shape[0], dtype=torch.bool, device=agent.device))
    after = [p for m in agent._world_model() for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))


def test_replay_value_loss_trains_only_the_critic():
    agent = trained("CartPole-v1", steps=300, critic_replay=0.3, critic_slowreg=1.0)
    c = agent.config
    batch = agent.replay.sample(c.batch_size, c.batch_length, agent.rng, device=agent.device)
    post, _, _ = agent.rssm.observe(agent._embed(batch["obs"]), batch["action"], batch["is_first"])
    params = [p for m in [*agent._world_model(), agent.critic, agent.critic_target] for p in m.parameters()]
    for p in params:
        if p.grad is not None:
            p.grad.zero_()
    loss = agent.replay_value_loss(post, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    untouched = lambda ps: all(p.grad is None or not p.grad.any() for p in ps)  # noqa: E731
    assert untouched(p for m in agent._world_model() for p in m.parameters())
    assert untouched(agent.critic_target.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.critic.parameters())
    # and a full behaviour step with the extra critic terms still leaves ψ untouched
    before = [p.detach().clone() for m in agent._world_model() for p in m.parameters()]
    agent.train_behaviour(flatten(post).detach(), batch["is_terminal"].reshape(-1), (post, batch))
    assert all(torch.equal(a, b) for a, b in zip(before, (p for m in agent._world_model() for p in m.parameters())))


def test_debug_preset_trains_discrete_and_continuous():
    for env in ("CartPole-v1", "Pendulum-v1"):
        agent = trained(env, steps=300)
        assert agent.updates > 0 and agent.num_timesteps == 300
        result = agent.evaluate(2)
        assert np.isfinite(result["mean_return"])


def test_image_observations_smoke():
    agent = trained("MinAtar/Breakout-v1", steps=150)
    assert agent.binary and agent.updates > 0
    agent = trained("CartPole-v1", steps=150, pixels=48, grayscale=True, frame_stack=2)
    assert agent.image and not agent.binary and agent.updates > 0


def test_same_seed_same_numbers_and_resume_equals_uninterrupted(tmp_path):
    def make():
        return Dreamer("CartPole-v1", seed=4, total_steps=400, **{**DEBUG, "checkpoint_freq": 200, "eval_freq": 200,
                                                                   "eval_episodes": 2})
    make().learn(run_dir=tmp_path / "again")
    whole, _ = crash_and_resume(make, tmp_path, crash_at=300)
    assert metrics_rows(tmp_path / "whole" / "metrics.csv") == metrics_rows(tmp_path / "again" / "metrics.csv")
    loaded = deeprl.load(tmp_path / "whole" / "model.safetensors")
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), whole.predict(obs))


def test_cli_debug_preset(tmp_path, capsys):
    run = tmp_path / "d"
    assert main(["train", "dreamer", "--preset", "debug", "--env", "CartPole-v1", "--steps", "200", "--out", str(run),
                 "--no-progress", "--set", "eval_freq=0"]) == 0
    assert (run / "model.safetensors").exists()
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0


def test_dream_video_for_a_dreamer_run(tmp_path, capsys):
    agent = trained("CartPole-v1", steps=200)
    path = agent.save(tmp_path / "dreamer")
    assert main(["dream", str(path), "--steps", "15", "--out", str(tmp_path / "d.mp4")]) == 0
    assert (tmp_path / "d.mp4").read_bytes()[4:8] == b"ftyp"
    decoded, _ = agent.decode_dream(np.zeros((1, 4), np.float32), np.array([0, 1, 0]), use_real_actions=True)
    assert decoded.shape == (4, 4)


def test_evaluating_does_not_change_training():
    quiet = trained("CartPole-v1", steps=300, seed=5)
    evaluated = Dreamer("CartPole-v1", total_steps=300, seed=5, **DEBUG)
    evaluated.learn(callback=lambda a: a.evaluate(2))  # the policy samples latents: its own random stream
    for p, q in zip(quiet.actor.parameters(), evaluated.actor.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_reinforce_score_function_of_continuous_actions():
    """∂ log π(a|s) / ∂μ at a drawn sample is (u - μ)/σ², the term REINFORCE rests on: the sample
    is held fixed (a reparameterized sample would cancel it to 0)."""
    import gymnasium as gym
    from torch import nn

    from deeprl.agents.dreamer import Actor

    actor = Actor(2, gym.spaces.Box(-1.0, 1.0, (1,), np.float32), hidden=8, layers=1, unimix=0.0)
    class Fixed(nn.Module):  # the net's output: mean μ and raw σ, as one parameter
        def __init__(self):
            super().__init__()
            self.out = nn.Parameter(torch.tensor([[0.3, -0.4]]))

        def forward(self, feature):
            return self.out

    actor.net = Fixed()
    out = actor.net.out
    torch.manual_seed(0)
    _, log_prob, _ = actor(torch.zeros(1, 2))
    log_prob.sum().backward()
    mean, std = 0.3, 2 * torch.sigmoid(torch.tensor(-0.4 / 2)).item() + 0.1
    torch.manual_seed(0)
    u = mean + std * torch.randn(1, 1).item()
    # the tanh correction depends on the fixed sample only, so it adds nothing to ∂/∂μ
    assert out.grad[0, 0].item() == pytest.approx((u - mean) / std ** 2, rel=1e-4)
    assert abs(out.grad[0, 0].item()) > 0.05
