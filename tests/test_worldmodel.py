"""The world-model agent: the collect-fit-dream loop, dreaming, persistence, the CLI."""

import numpy as np
import pytest
import torch

import deeprl
from deeprl import WorldModel
from deeprl.cli import main
from deeprl.errors import EnvError
from tests.envs import LINE_WALK, MULTI_DISCRETE
from tests.resume import crash_and_resume

TINY = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=200, prefill_steps=100, collect_steps=100,
            vae_steps=5, model_steps=5, dream_iterations=2, dream_batch=16, horizon=5, batch_size=32,
            latent_dim=4, vae_hidden=[32], model_hidden=[32], net_arch=[16])


def test_smoke_trains_every_phase():
    agent = WorldModel("CartPole-v1", total_steps=300, **TINY)
    agent.learn()
    assert agent.num_timesteps == 300 and len(agent.buffer) == 300
    assert agent.updates == {"vae": 15, "model": 15, "dream": 6}  # 3 iterations of the loop


class CountingEnvs:
    def __init__(self, envs):
        self.envs, self.steps = envs, 0

    def step(self, actions):
        self.steps += 1
        return self.envs.step(actions)

    def __getattr__(self, name):
        return getattr(self.envs, name)


def test_dreaming_touches_no_environment_and_leaves_the_world_model_alone():
    agent = WorldModel("CartPole-v1", total_steps=200, **TINY)
    agent.learn()
    agent.envs = counting = CountingEnvs(agent.envs)
    frozen = {name: [p.detach().clone() for p in m.parameters()] for name, m in agent._persistent().model.items()
              if name not in ("ac", "ac_target")}
    actor_before = [p.detach().clone() for p in agent.ac.parameters()]
    steps_before = agent.num_timesteps
    for opt in agent.optimizers.values():
        opt.zero_grad()
    agent.train_in_dreams(3)
    assert counting.steps == 0 and agent.num_timesteps == steps_before
    for name, params in frozen.items():  # no gradient from the actor-critic losses reaches ψ
        assert all(torch.equal(p, q) for p, q in zip(params, agent._persistent().model[name].parameters())), name
    for name in ("vae", "model"):  # not even a gradient was left on them
        assert all(p.grad is None or not p.grad.any() for g in agent.optimizers[name].param_groups for p in g["params"])
    assert any(not torch.equal(p, q) for p, q in zip(actor_before, agent.ac.parameters()))


def test_a_dream_of_length_T_has_T_rewards():
    agent = WorldModel("Pendulum-v1", total_steps=200, **TINY)
    agent.learn()
    start = agent.buffer.sample(3, np.random.default_rng(0)).obs
    dream = agent.imagine(start, horizon=7)
    assert dream["latents"].shape == (8, 3, 4)
    assert dream["rewards"].shape == (7, 3) and dream["continues"].shape == (7, 3)
    assert dream["actions"].shape == (7, 3, 1)
    given = torch.zeros(7, 3, 1)
    replay = agent.imagine(start, horizon=7, actions=given)
    assert torch.equal(replay["actions"].cpu(), given)


def test_dynamics_fit_lowers_the_loss():
    agent = WorldModel("CartPole-v1", total_steps=500, **{**TINY, "prefill_steps": 500})
    agent.learn()  # 500 random steps, one fit of 5 steps each
    batch = agent.buffer.sample(256, np.random.default_rng(1))
    torch.manual_seed(0)
    before = sum(agent.dynamics_loss(batch).values()).item()
    agent.fit_dynamics(150)
    torch.manual_seed(0)
    after = sum(agent.dynamics_loss(batch).values()).item()
    assert after < before - 1.0


def test_bad_spaces():
    with pytest.raises(EnvError, match="Discrete and 1-D Box"):
        WorldModel(MULTI_DISCRETE, **TINY)


def test_pixel_observations_smoke():
    agent = WorldModel("CartPole-v1", total_steps=200, pixels=48, grayscale=True, frame_stack=2,
                       **{**TINY, "batch_size": 8, "dream_batch": 8})
    agent.learn()
    assert agent.observation_space.shape == (2, 48, 48)
    assert agent.vae.image and agent.updates["dream"] == 4


def test_save_load_and_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    whole, _ = crash_and_resume(lambda: WorldModel("CartPole-v1", seed=3, total_steps=600, **{
        **TINY, "checkpoint_freq": 200, "eval_freq": 300, "eval_episodes": 2}), tmp_path, crash_at=400)
    loaded = deeprl.load(tmp_path / "whole" / "model.safetensors")
    assert isinstance(loaded, WorldModel)
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), whole.predict(obs))
    pictures = tmp_path / "whole" / "pictures"
    assert (pictures / "rollout_error.png").stat().st_size > 0 and (pictures / "rollout_error.json").exists()


def test_learns_line_walk():
    """The reward sits in the next state (as p(r'|z') assumes): the dreams must teach 'go right'."""
    agent = WorldModel(LINE_WALK, seed=0, total_steps=1500, **{**TINY, "dream_iterations": 20, "horizon": 8,
                                                                  "latent_dim": 4, "model_steps": 30,
                                                                  "vae_steps": 30, "dream_batch": 64})
    agent.learn()
    result = agent.evaluate(5)
    assert result["mean_return"] == 1.0 and result["mean_length"] == 4.0


def test_cli_train_then_dream_writes_videos_and_pictures(tmp_path, capsys):
    run = tmp_path / "wm"
    settings = [f"{k}={v}" for k, v in TINY.items() if k != "preset"]
    settings = [s.replace("[", "").replace("]", "") for s in settings]
    assert main(["train", "worldmodel", "--env", "CartPole-v1", "--steps", "300", "--out", str(run),
                 "--no-progress", "--set", *settings, "picture_freq=200"]) == 0
    assert list((run / "pictures").glob("reconstruction_*.png"))
    assert main(["dream", str(run), "--steps", "20"]) == 0
    video = run / "videos" / "dream.mp4"
    assert video.stat().st_size > 1000 and video.read_bytes()[4:8] == b"ftyp"
    assert "dream (right, real actions)" in capsys.readouterr().out
    assert main(["dream", str(run), "--policy", "--out", str(tmp_path / "d.mp4")]) == 0


def test_dream_refuses_a_model_free_run(tmp_path, capsys):
    path = deeprl.PPO("CartPole-v1", preset=None, n_steps=16, minibatch_size=16, n_epochs=1, eval_freq=0,
                      total_steps=16).learn().save(tmp_path / "ppo")
    assert main(["dream", str(path)]) == 2
    assert "no world model" in capsys.readouterr().err


def test_dreams_move_a_gaussian_policys_mean():
    """The dreamed action is data for A ∇ log π(a|z): a sample that kept its reparameterized graph
    would cancel the gradient to the mean, leaving only σ to learn (a regression)."""
    agent = WorldModel("Pendulum-v1", total_steps=200, **TINY)
    agent.learn()
    head = agent.ac.policy_head.weight.detach().clone()
    agent.train_in_dreams(2)
    assert not torch.equal(head, agent.ac.policy_head.weight)
