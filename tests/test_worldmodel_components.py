"""World-model components: the ELBO's terms and Gaussian likelihoods against numbers worked out by
hand, shapes through encode -> transition -> decode, reparameterized gradients, and tiny fits."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl.errors import ConfigError, EnvError
from deeprl.worldmodel import (VAE, ContinueModel, GaussianReward, GaussianTransition, elbo, gaussian_log_prob,
                               gaussian_rsample, kl_standard_normal, make_vae)
from deeprl.worldmodel.dynamics import LOG_STD_MAX, LOG_STD_MIN, soft_clamp
from deeprl.worldmodel.vae import bernoulli_log_prob

HALF_LOG_2PI = 0.9189385332046727  # ½ log 2π

VECTOR = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
PIXELS_HWC = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
PIXELS_CHW = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
GRID = gym.spaces.Box(0, 1, (10, 10, 4), np.bool_)  # MinAtar's layout


def batch(space: gym.Space, n: int, seed: int = 0) -> torch.Tensor:
    space.seed(seed)
    return torch.from_numpy(np.stack([space.sample() for _ in range(n)]))


# ------------------------------------------------------------------------- pure math, by hand


def test_gaussian_log_prob_by_hand():
    # log N(1; 0, e^0) = -½ log 2π - ½
    assert gaussian_log_prob(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0])).item() \
        == pytest.approx(-HALF_LOG_2PI - 0.5)
    # a second dimension, N(0; 0, 2²): -½ log 2π - log 2; dimensions add
    x, mean, log_std = torch.tensor([1.0, 0.0]), torch.zeros(2), torch.tensor([0.0, math.log(2.0)])
    assert gaussian_log_prob(x, mean, log_std).item() == pytest.approx(-1.4189385 - 1.6120857, abs=1e-6)
    # N(3; 1, 2²): -½ log 2π - log 2 - ½ (2/2)² = -2.1120857; batch dims are kept
    out = gaussian_log_prob(torch.tensor([[3.0], [1.0]]), torch.tensor([[1.0], [1.0]]), torch.full((2, 1), math.log(2)))
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([-2.1120857, -1.6120857], abs=1e-6)


def test_kl_standard_normal_by_hand():
    # ½ Σ (μ² + σ² - 1 - 2 log σ): dim 1 (μ=1, σ=1): ½; dim 2 (μ=0, σ=2): ½ (4 - 1 - 2 log 2) = 0.8068528
    kl = kl_standard_normal(torch.tensor([1.0, 0.0]), torch.tensor([0.0, math.log(2.0)]))
    assert kl.item() == pytest.approx(1.3068528, abs=1e-6)
    assert kl_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]
    # and against torch.distributions on random values
    mean, log_std = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)).chunk(2, dim=-1)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, log_std.exp()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mean, log_std), expected)


def test_bernoulli_log_prob_by_hand():
    # logit 0: p = ½ for either value, log ½ = -0.6931472; logit log 3: p(1) = ¾, p(0) = ¼
    out = bernoulli_log_prob(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, math.log(3), math.log(3)]))
    assert out.item() == pytest.approx(2 * math.log(0.5) + math.log(0.75) + math.log(0.25), abs=1e-6)


def test_soft_clamp_bounds_and_gradient():
    x = torch.tensor([-100.0, 0.0, 100.0], requires_grad=True)
    y = soft_clamp(x, LOG_STD_MIN, LOG_STD_MAX)
    # the upper bound is soft by softplus(low - high) = softplus(-7) ≈ 0.0009
    assert y[0].item() == pytest.approx(LOG_STD_MIN, abs=1e-5) and y[2].item() == pytest.approx(LOG_STD_MAX, abs=1e-3)
    assert -0.2 < y[1].item() < 0  # about the identity in between: σ ≈ 1 at initialization
    y.sum().backward()
    assert x.grad[1] > 0.8


def test_elbo_terms_by_hand():
    """A 1-D VAE whose encoder gives q = N((1, 0), diag(1, 2²)) and whose decoder predicts ŝ = 0 for
    every z, with fixed σ = 1: log p(s=1|z) = -½ log 2π - ½ whatever z is sampled."""
    vae = make_vae(gym.spaces.Box(-1, 1, (1,), np.float32), latent_dim=2, hidden=[], learn_obs_std=False)
    vae.encode = lambda obs: (torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.zero_()
    obs = torch.tensor([[1.0]])
    terms = elbo(vae, obs)
    assert terms.log_likelihood.item() == pytest.approx(-HALF_LOG_2PI - 0.5, abs=1e-6)
    assert terms.kl.item() == pytest.approx(1.3068528, abs=1e-6)
    assert terms.loss.item() == pytest.approx(1.4189385 + 1.3068528, abs=1e-6)
    # β = ½ and 2 free nats: the KL counts as max(1.307, 2) = 2, weighed by ½; the reported KL is unclipped
    terms = elbo(vae, obs, beta=0.5, free_nats=2.0)
    assert terms.loss.item() == pytest.approx(1.4189385 + 1.0, abs=1e-6)
    assert terms.kl.item() == pytest.approx(1.3068528, abs=1e-6)
    assert terms.metrics() == pytest.approx({"loss/vae": 2.4189385, "loss/recon": 1.4189385, "loss/kl": 1.3068528})


def test_free_nats_stop_the_kl_gradient():
    vae = make_vae(VECTOR, latent_dim=3, hidden=[8])
    obs = batch(VECTOR, 4)
    elbo(vae, obs, beta=1.0, free_nats=1e6, generator=torch.Generator().manual_seed(0)).loss.backward()
    with_free = vae.head.linear.weight.grad.clone()
    vae.zero_grad()
    elbo(vae, obs, beta=0.0, generator=torch.Generator().manual_seed(0)).loss.backward()
    torch.testing.assert_close(with_free, vae.head.linear.weight.grad)


# ------------------------------------------------------------------------------- components


@pytest.mark.parametrize("space, likelihood", [
    (VECTOR, "gaussian"), (PIXELS_HWC, "gaussian"), (PIXELS_CHW, "gaussian"), (GRID, "bernoulli"),
    (gym.spaces.Box(0, 1, (4, 10, 10), np.uint8), "bernoulli"),  # a 0/1 uint8 grid, channels first
])
@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-2, 2, (2,), np.float32)])
def test_shapes_encode_transition_decode(space: gym.spaces.Box, likelihood: str, action_space: gym.Space):
    torch.manual_seed(0)
    latent, n = 8, 5
    vae = make_vae(space, latent_dim=latent, hidden=[32])
    assert vae.likelihood == likelihood
    transition = GaussianTransition(latent, action_space, hidden=[16])
    reward, cont = GaussianReward(latent, hidden=[16]), ContinueModel(latent, hidden=[16])
    obs = batch(space, n)
    actions = batch(action_space, n)
    mean, log_std = vae.encode(obs)
    assert mean.shape == log_std.shape == (n, latent)
    z = vae.sample(obs)
    next_mean, next_log_std = transition(z, actions)
    assert next_mean.shape == next_log_std.shape == (n, latent)
    next_z = transition.sample(z, actions)
    assert next_z.shape == (n, latent)
    assert transition.log_prob(z, actions, next_z).shape == (n,)
    assert reward.sample(next_z).shape == reward.log_prob(next_z, torch.zeros(n)).shape == (n,)
    assert cont(next_z).shape == cont.log_prob(next_z, torch.ones(n)).shape == (n,)
    assert set(cont.sample(next_z).unique().tolist()) <= {0.0, 1.0}
    model_shape = (space.shape[2], *space.shape[:2]) if vae.channels_last else space.shape  # CHW or (D,)
    assert vae.decode(next_z).shape == (n, *model_shape)
    decoded = vae.observation(next_z)
    assert decoded.shape == obs.shape and decoded.dtype == obs.dtype
    assert vae.log_likelihood(obs, z).shape == (n,)
    # leading (time, batch) dimensions pass through
    seq = obs.reshape(1, n, *space.shape).expand(2, n, *space.shape)
    assert vae.encode(seq)[0].shape == (2, n, latent)
    assert vae.log_likelihood(seq, vae.sample(seq)).shape == (2, n)


def test_layouts_agree():
    """The same pixels, channels-last or channels-first, meet the same network."""
    hwc, chw = make_vae(PIXELS_HWC, latent_dim=4), make_vae(PIXELS_CHW, latent_dim=4)
    assert hwc.channels_last and not chw.channels_last
    chw.load_state_dict(hwc.state_dict())
    obs = batch(PIXELS_HWC, 2)
    torch.testing.assert_close(hwc.encode(obs), chw.encode(obs.permute(0, 3, 1, 2)))
    z = torch.zeros(2, 4)
    torch.testing.assert_close(hwc.observation(z), chw.observation(z).permute(0, 2, 3, 1))


def test_strided_network_is_the_world_models_one():
    vae = make_vae(PIXELS_HWC, latent_dim=32)
    convs = [m for m in vae.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (32, (4, 4), (2, 2)), (64, (4, 4), (2, 2)), (128, (4, 4), (2, 2)), (256, (4, 4), (2, 2))]
    assert vae.head.linear.in_features == 1024  # 256 x 2 x 2
    grid = make_vae(GRID, latent_dim=8, hidden=[64])
    assert all(m.stride == (1, 1) for m in grid.encoder.modules() if isinstance(m, torch.nn.Conv2d))


def test_make_vae_rejects_what_it_cannot_model():
    with pytest.raises(EnvError, match="vector .* and image"):
        make_vae(gym.spaces.Discrete(4), latent_dim=4)
    with pytest.raises(EnvError):
        make_vae(gym.spaces.Box(0, 1, (3, 4), np.float32), latent_dim=4)
    with pytest.raises(ConfigError, match="latent_dim"):
        make_vae(VECTOR, latent_dim=0)
    with pytest.raises(ConfigError, match="likelihood"):
        make_vae(VECTOR, latent_dim=2, likelihood="laplace")
    with pytest.raises(EnvError, match="Discrete and Box"):
        GaussianTransition(4, gym.spaces.MultiDiscrete([2, 2]))


def test_discrete_actions_are_one_hot():
    """Discrete(3, start=1): action 2 is the second one-hot code, whatever the batch shape."""
    transition = GaussianTransition(2, gym.spaces.Discrete(3, start=1), hidden=[])
    with torch.no_grad():
        transition.head.linear.weight.zero_()
        transition.head.linear.weight[0, 2:] = torch.tensor([10.0, 20.0, 30.0])  # mean[0] += 10·onehot
    z = torch.zeros(2, 3, 2)
    mean, _ = transition(z, torch.tensor([[1, 2, 3], [3, 2, 1]]))
    torch.testing.assert_close(mean[..., 0] - transition.head.linear.bias[0],
                               torch.tensor([[10.0, 20.0, 30.0], [30.0, 20.0, 10.0]]))


def test_reparameterized_samples_carry_gradient():
    """d(μ + σ ε)/dμ = 1 and d/d log σ = σ ε, with ε the draw the same seed gives."""
    mean = torch.tensor([0.5, -1.0], requires_grad=True)
    log_std = torch.tensor([0.0, math.log(3.0)], requires_grad=True)
    sample = gaussian_rsample(mean, log_std, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(sample.detach(), torch.tensor([0.5, -1.0]) + torch.tensor([1.0, 3.0]) * eps)
    sample.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones(2))
    torch.testing.assert_close(log_std.grad, torch.tensor([1.0, 3.0]) * eps)

    # through the models: every parameter of the transition and reward nets gets a gradient
    torch.manual_seed(0)
    transition, reward = GaussianTransition(3, gym.spaces.Discrete(2), hidden=[8]), GaussianReward(3, hidden=[8])
    z = torch.randn(4, 3, requires_grad=True)
    reward.sample(transition.sample(z, torch.tensor([0, 1, 1, 0]))).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    for p in [*transition.parameters(), *reward.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_sampling_is_seeded():
    torch.manual_seed(0)
    transition, cont = GaussianTransition(3, gym.spaces.Discrete(2), hidden=[8]), ContinueModel(3, hidden=[8])
    vae = make_vae(VECTOR, latent_dim=3, hidden=[8])
    z, a, obs = torch.randn(16, 3), torch.randint(0, 2, (16,)), batch(VECTOR, 16)

    def draws(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [vae.sample(obs, g), transition.sample(z, a, g), cont.sample(z, g), elbo(vae, obs, generator=g).loss]

    for x, y in zip(draws(1), draws(1), strict=True):
        torch.testing.assert_close(x, y)
    assert not torch.equal(draws(1)[1], draws(2)[1])


# -------------------------------------------------------------------------------- tiny fits


def _fit(params, loss_fn, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    opt = torch.optim.Adam(params, lr=lr)
    first = None
    for _ in range(steps):
        loss = loss_fn()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss_fn().item()


def test_dynamics_fit_a_deterministic_toy():
    """z' = z + a, r' = z'_0 + z'_1, continue = z'_0 > -1 on fixed random data: 200 Adam steps make
    each negative log-likelihood fall far below where it started."""
    torch.manual_seed(0)
    latent, n = 4, 256
    space = gym.spaces.Box(-1, 1, (latent,), np.float32)
    z = torch.randn(n, latent)
    a = torch.rand(n, latent) * 2 - 1
    next_z = z + a
    r = next_z[:, 0] + next_z[:, 1]
    c = (next_z[:, 0] > -1).float()
    transition = GaussianTransition(latent, space, hidden=[64, 64])
    reward, cont = GaussianReward(latent, hidden=[64, 64]), ContinueModel(latent, hidden=[64, 64])

    start, end = _fit(transition.parameters(), lambda: -transition.log_prob(z, a, next_z).mean(), 200)
    # start ≈ 4 dims x (½ log 2π + ...) ≈ 4; a fit to within σ ≈ 0.05 is about 4 x (-2) = -8
    assert start > 3 and end < -6, (start, end)
    start, end = _fit(reward.parameters(), lambda: -reward.log_prob(next_z, r).mean(), 200)
    assert end < start - 2, (start, end)
    start, end = _fit(cont.parameters(), lambda: -cont.log_prob(next_z, c).mean(), 200)
    assert end < 0.25 * start, (start, end)


@pytest.mark.parametrize("space, steps, min_gain", [
    (VECTOR, 150, 15.0),  # 37 -> 7 nats with learned σ
    (gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), 30, 500.0),  # ½ SSE over 12288 pixels: 1770 -> 690
    (GRID, 60, 50.0),  # Bernoulli over 400 cells: 278 -> 159
])
def test_vae_reconstruction_improves(space: gym.spaces.Box, steps: int, min_gain: float):
    """On 16 fixed observations (a 2-D manifold for vectors, blocky images) a few Adam steps raise
    the reconstruction log-likelihood by ``min_gain`` nats (about half of what they reach) and the ELBO."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if len(space.shape) == 1:
        u = torch.randn(16, 2, generator=g)
        obs = torch.cat([u, u.sum(1, keepdim=True), u[:, :1] - u[:, 1:]], dim=1) * 3
    else:
        coarse = torch.rand(16, space.shape[2], 4, 4, generator=g)
        up = torch.nn.functional.interpolate(coarse, size=space.shape[:2], mode="nearest").permute(0, 2, 3, 1)
        obs = (up > 0.5) if space.dtype == np.bool_ else (up * 255).round().to(torch.uint8)
    vae = make_vae(space, latent_dim=8, hidden=[64])
    before = elbo(vae, obs, generator=torch.Generator().manual_seed(1))
    _fit(vae.parameters(), lambda: elbo(vae, obs, generator=g).loss, steps, lr=1e-3)
    after = elbo(vae, obs, generator=torch.Generator().manual_seed(1))
    assert after.log_likelihood - before.log_likelihood > min_gain, (before.metrics(), after.metrics())
    assert after.loss < before.loss


def test_learned_observation_std_moves():
    vae = make_vae(VECTOR, latent_dim=2, hidden=[8])
    assert isinstance(vae, VAE) and vae.obs_log_std.requires_grad
    elbo(vae, torch.full((4, 4), 100.0)).loss.backward()  # far-off data asks for a wider σ
    assert (vae.obs_log_std.grad < 0).all()
    assert not make_vae(PIXELS_HWC, latent_dim=2).obs_log_std.requires_grad  # fixed σ = 1 for pixels


def test_decoded_pixels_are_clipped_not_wrapped():
    vae = make_vae(PIXELS_HWC, latent_dim=2)
    with torch.no_grad():
        vae.decoder.deconvs[-1].bias.copy_(torch.tensor([2.0, -1.0, 0.5]))  # 510, -255, 127.5 before clipping
        vae.decoder.deconvs[-1].weight.zero_()
    img = vae.observation(torch.zeros(1, 2))
    assert img.dtype == torch.uint8 and img[0, 0, 0].tolist() == [255, 0, 128]
