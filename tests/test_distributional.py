"""Distributional DQN (C51, QR-DQN) and noisy nets: the projection and the quantile loss by hand and
against a naive loop, noisy layers, acting, persistence, and tiny learning tests."""

import math

import numpy as np
import pytest
import torch

import deeprl
from deeprl import DQN
from deeprl.distributional import (categorical_projection, categorical_support, quantile_huber_loss,
                                   quantile_midpoints)
from deeprl.errors import ConfigError
from deeprl.noisy import NoisyLinear, mean_weights
from tests.envs import IDENTITY
from tests.resume import crash_and_resume
from tests.test_masks import PICK, PickValidEnv

FAST = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=500)


# ------------------------------------------------------------------------------------ C51 projection
def naive_projection(probs, support, returns, discounts):
    """Bellemare et al.'s Algorithm 1, one sample and one atom at a time (floor/ceil of b_j)."""
    n = len(support)
    v_min, v_max = float(support[0]), float(support[-1])
    dz = (v_max - v_min) / (n - 1)
    out = np.zeros((len(returns), n))
    for b in range(len(returns)):
        for j in range(n):
            tz = min(max(float(returns[b]) + float(discounts[b]) * float(support[j]), v_min), v_max)
            pos = (tz - v_min) / dz
            lo, hi = math.floor(pos), math.ceil(pos)
            if lo == hi:  # exactly on an atom: all its mass there
                out[b, lo] += probs[b, j]
            else:
                out[b, lo] += probs[b, j] * (hi - pos)
                out[b, hi] += probs[b, j] * (pos - lo)
    return out


def test_the_categorical_projection_by_hand():
    """Support 0..4 (Δz = 1).
    1) G = 1, γ^n = 0.5: atoms land on 1, 1.5, 2, 2.5, 3 - on support points and halfway between.
    2) G = 3, γ^n = 1: 3, then 4, 5, 6, 7 all clipped to v_max = 4.
    3) G = -2.25, γ^n = 1: -2.25, -1.25, -0.25 clipped to 0; 0.75 -> 1/4 on 0, 3/4 on 1; 1.75 likewise on 1, 2.
    4) a termination (γ^n = 0): all mass at G = 2.3 -> 0.7 on 2, 0.3 on 3."""
    support = categorical_support(0.0, 4.0, 5)
    torch.testing.assert_close(support, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2]] + [[0.2] * 5] * 3)
    m = categorical_projection(probs, support, torch.tensor([1.0, 3.0, -2.25, 2.3]),
                               torch.tensor([0.5, 1.0, 1.0, 0.0]))
    expected = torch.tensor([[0.0, 0.1 + 0.1, 0.1 + 0.3 + 0.1, 0.1 + 0.2, 0.0],
                             [0.0, 0.0, 0.0, 0.2, 0.8],
                             [0.6 + 0.05, 0.15 + 0.05, 0.15, 0.0, 0.0],
                             [0.0, 0.0, 0.7, 0.3, 0.0]])
    torch.testing.assert_close(m, expected)


def test_the_categorical_projection_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    support = categorical_support(-10.0, 10.0, 51)
    probs = torch.rand(64, 51, generator=g).softmax(dim=1)
    returns = torch.randn(64, generator=g) * 8
    returns[:8] = torch.arange(8) * 0.4 - 1.2  # on support points (Δz = 0.4)
    discounts = torch.where(torch.rand(64, generator=g) < 0.2, 0.0, 0.97 ** 3)
    discounts[:8] = 1.0
    m = categorical_projection(probs, support, returns, discounts)
    naive = naive_projection(probs.double().numpy(), support.double().numpy(), returns.double().numpy(),
                             discounts.double().numpy())
    np.testing.assert_allclose(m.numpy(), naive, atol=1e-5)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(64))


# ------------------------------------------------------------------------------------ QR loss
def test_the_quantile_huber_loss_by_hand():
    """N = 2: τ̂ = (1/4, 3/4); θ = (0, 1); target samples (0.5, 3).
    i = 1: u = (0.5, 3): L = (0.125, 2.5), weights 1/4 -> mean_j = 0.328125
    i = 2: u = (-0.5, 2): L = (0.125, 1.5), weights (|3/4 - 1|, 3/4) -> mean_j = 0.578125"""
    taus = quantile_midpoints(2)
    torch.testing.assert_close(taus, torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([1, 3, 5, 7]) / 8.0)
    theta = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = quantile_huber_loss(theta, torch.tensor([[0.5, 3.0]]), taus)
    torch.testing.assert_close(loss, torch.tensor([0.328125 + 0.578125]))
    loss.sum().backward()  # dρ/dθ_i = -mean_j |τ̂_i - 1{u<0}| clip(u, -1, 1)
    torch.testing.assert_close(theta.grad, torch.tensor([[-(0.25 * 0.5 + 0.25 * 1.0) / 2,
                                                          -(-0.25 * 0.5 + 0.75 * 1.0) / 2]]))


# ------------------------------------------------------------------------------------ noisy layers
def test_a_noisy_layer_has_factorized_noise_and_mean_weights_in_eval_mode():
    torch.manual_seed(0)
    layer = NoisyLinear(6, 4, sigma0=0.5)
    assert layer.eps_in.shape == (6,) and layer.eps_out.shape == (4,)  # p + q draws, not p q
    torch.testing.assert_close(layer.weight_sigma, torch.full((4, 6), 0.5 / math.sqrt(6)))
    x = torch.randn(3, 6)
    eps_w = torch.outer(layer.eps_out, layer.eps_in)
    noisy = x @ (layer.weight_mu + layer.weight_sigma * eps_w).T + layer.bias_mu + layer.bias_sigma * layer.eps_out
    torch.testing.assert_close(layer(x), noisy)
    with mean_weights(layer):
        torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    assert layer.training  # mode restored
    before = layer.eps_in.clone()
    layer.reset_noise()
    assert not torch.equal(before, layer.eps_in)
    f = lambda v: v.sign() * v.abs().sqrt()  # noqa: E731
    torch.manual_seed(1)
    layer.reset_noise()
    torch.manual_seed(1)
    torch.testing.assert_close(layer.eps_in, f(torch.randn(6)))


def test_noisy_dqn_predicts_with_mean_weights_and_resamples_each_training_step():
    agent = DQN(IDENTITY, noisy=True, total_steps=300, learning_starts=100, train_freq=1, **FAST)
    obs = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    first = agent.predict(obs)
    np.testing.assert_array_equal(agent.predict(obs), first)
    with torch.no_grad():
        agent.q.eval()
        mean_q = agent.q(torch.from_numpy(obs).to(agent.device))
        agent.q.train()
    np.testing.assert_array_equal(first, mean_q.argmax(dim=1).cpu().numpy())
    assert agent.q.training
    layers = [m for m in agent.q.modules() if isinstance(m, NoisyLinear)]
    seen = []
    original = agent.update

    def update(batch):
        seen.append([m.eps_out.clone() for m in layers])
        original(batch)
        seen.append([m.eps_out.clone() for m in layers])
    agent.update = update
    agent.learn()
    assert len(seen) == 2 * 200
    for (a, b), (c, d) in zip(zip(seen[0], seen[1]), zip(seen[2], seen[3])):
        assert not torch.equal(a, b) and not torch.equal(c, d)  # fresh noise at every gradient step
    target = [m for m in agent.q_target.modules() if isinstance(m, NoisyLinear)]
    assert not torch.equal(target[0].eps_out, layers[0].eps_out)  # the target net draws its own


# ------------------------------------------------------------------------------------ agents
def test_settings_are_checked():
    with pytest.raises(ConfigError, match="set v_min < v_max"):
        DQN(IDENTITY, distributional="c51", v_min=5.0, v_max=5.0, **FAST)
    with pytest.raises(ConfigError, match="stop_gradient=true"):
        DQN(IDENTITY, distributional="qr", stop_gradient=False, **FAST)
    with pytest.raises(ConfigError):
        DQN(IDENTITY, distributional="iqn", **FAST)
    with pytest.raises(ConfigError):
        DQN(IDENTITY, distributional="c51", atoms=1, **FAST)


@pytest.mark.parametrize("kind", ["c51", "qr"])
def test_the_head_gives_distributions_and_q_as_their_mean(kind):
    agent = DQN(IDENTITY, distributional=kind, atoms=11, dueling=True, v_min=-2, v_max=3, **FAST)
    obs = torch.rand(5, 3, device=agent.device)
    with torch.no_grad():
        out = agent.q.outputs(obs)
        assert out.shape == (5, 3, 11)
        expected = (out.softmax(-1) * torch.linspace(-2, 3, 11)).sum(-1) if kind == "c51" else out.mean(-1)
        torch.testing.assert_close(agent.q(obs), expected)


@pytest.mark.parametrize("kind", ["c51", "qr"])
def test_everything_composes(kind):
    agent = DQN(IDENTITY, distributional=kind, noisy=True, double_q=True, dueling=True, n_step=3, prioritized=True,
                total_steps=400, learning_starts=100, train_freq=1, **FAST).learn()
    assert agent.updates == 300 and agent.buffer.max_priority > 0
    priorities = agent.buffer.tree.leaves[: len(agent.buffer)]
    assert np.isfinite(priorities).all() and len(np.unique(priorities)) > 10  # from the per-sample losses


@pytest.mark.parametrize("kind", ["c51", "qr"])
def test_learns_identity_env(kind):
    agent = DQN(IDENTITY, seed=1, distributional=kind, v_min=0.0, v_max=20.0, total_steps=3000, learning_starts=200,
                train_freq=1, target_update_interval=100, eps_fraction=0.3, lr=3e-3, batch_size=32, **FAST)
    agent.learn()
    assert agent.evaluate(10)["mean_return"] >= 18.0  # 20 steps, reward 1 when the action names the target


def test_masks_hold_with_a_distributional_head():
    """PickValid: half the actions are masked (the env counts any taken); random valid play earns 1/2."""
    before = PickValidEnv.invalid
    agent = DQN(PICK, **FAST, distributional="c51", v_min=0.0, v_max=10.0, total_steps=2000, learning_starts=200,
                train_freq=1, eps_fraction=0.3, target_update_interval=100, lr=1e-3).learn(progress=False)
    assert agent.evaluate(20)["mean_return"] >= 8.0 and PickValidEnv.invalid == before


def test_save_load_round_trip(tmp_path):
    agent = DQN(IDENTITY, distributional="qr", noisy=True, dueling=True, total_steps=400, learning_starts=100,
                **FAST).learn()
    loaded = deeprl.load(agent.save(tmp_path / "model"))
    obs = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    assert loaded.config == agent.config
    for (name, p), (_, q) in zip(agent.q.state_dict().items(), loaded.q.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)  # noise buffers too


def test_resume_is_exact_with_noisy_c51(tmp_path):
    crash_and_resume(lambda: DQN(IDENTITY, distributional="c51", noisy=True, prioritized=True, n_step=2,
                                 total_steps=1000, learning_starts=200, train_freq=1, checkpoint_freq=500,
                                 eval_freq=500, log_interval=250, preset=None),
                     tmp_path, crash_at=750)


def test_the_rainbow_preset_resolves():
    agent = DQN(IDENTITY, preset="rainbow", total_steps=300, learning_starts=100, eval_freq=0, checkpoint_freq=0)
    c = agent.config
    assert (c.distributional, c.noisy, c.double_q, c.dueling, c.prioritized, c.n_step) == ("c51", True, True, True,
                                                                                          True, 3)
    agent.learn()


def test_onnx_export_takes_the_mean_weights_and_expected_q(tmp_path):
    pytest.importorskip("onnxruntime")
    agent = DQN(IDENTITY, distributional="c51", noisy=True, dueling=True, total_steps=300, learning_starts=100,
                **FAST).learn(progress=False)
    report = agent.export(tmp_path / "c51.onnx")
    assert report["max_difference"] == 0.0 and report["outputs"] == ["action"]  # checked against predict


def test_noisy_nets_make_every_fully_connected_layer_noisy_and_keep_convolutions_plain():
    import gymnasium as gym

    from deeprl.nets import QNetwork
    grid = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8)  # a MinAtar-sized image: GridCNN torso
    for space, hidden in ((gym.spaces.Box(-1, 1, (3,), np.float32), [8, 8]), (grid, [8])):
        q = QNetwork(space, 2, hidden, dueling=True, noisy_sigma0=0.5)
        assert not [m for m in q.modules() if type(m) is torch.nn.Linear]
        noisy = [m for m in q.modules() if isinstance(m, NoisyLinear)]
        assert len(noisy) == (4 if space is not grid else 3)  # torso layers + value + advantage
        assert len([m for m in q.modules() if type(m) is torch.nn.Conv2d]) == (1 if space is grid else 0)
    q = QNetwork(grid, 2, [8], noisy_sigma0=0.5)
    x = torch.randint(0, 2, (5, 4, 10, 10), dtype=torch.uint8)
    torso = q.torso(x)
    q.torso.fc[0].reset_noise()
    assert not torch.equal(q.torso(x), torso)  # the torso's features carry noise of their own


def test_noisy_dqn_acts_with_fresh_noise_at_every_env_step_before_learning_starts():
    # with epsilon 0 the only exploration is the noise: one draw held over the warm-up steps would
    # act by one fixed policy until the first update (the failure on CartPole it replaced)
    agent = DQN(IDENTITY, noisy=True, eps_start=0.0, eps_end=0.0, total_steps=50, learning_starts=100, **FAST)
    drawn = []
    original = agent._epsilon_greedy

    def act(obs, eps, rng=None, mask=None):
        drawn.append(agent.q.head.eps_out.clone())
        return original(obs, eps, rng, mask)
    agent._epsilon_greedy = act
    agent.learn()
    assert len(drawn) == 50 and all(not torch.equal(a, b) for a, b in zip(drawn, drawn[1:]))


def test_a_model_saved_with_a_noisy_head_only_loads_with_the_same_greedy_policy(tmp_path):
    # such a file holds the torso's layers as plain Linear tensors (weight, bias): read as σ = 0
    from deeprl.checkpoint import load_model_file, save_model_file
    agent = DQN(IDENTITY, noisy=True, net_arch=[8], **FAST)
    agent.save(tmp_path / "m")
    tensors, meta = load_model_file(tmp_path / "m.safetensors")
    old = {}
    for key, value in tensors.items():
        if ".torso." in key and key.endswith(("weight_mu", "bias_mu")):
            old[key.replace("_mu", "")] = value
        elif not (".torso." in key and key.endswith(("_sigma", "eps_in", "eps_out"))):
            old[key] = value
    assert any(k.endswith("torso.body.0.weight") for k in old)
    save_model_file(tmp_path / "old.safetensors", old, meta)
    loaded = DQN.load(tmp_path / "old.safetensors")
    obs = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    sigma = [m.weight_sigma for m in loaded.q.torso.modules() if isinstance(m, NoisyLinear)]
    assert sigma and all(not s.any() for s in sigma)
