"""Dreamer's pure math against hand-computed numbers, naive loops and torch.distributions."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from deeprl.dreamer.math import (ReturnNormalizer, TwoHot, kl_balanced_loss, kl_categorical, kl_gaussian,
                                 lambda_returns, replay_lambda_returns, straight_through_onehot, symexp, symlog,
                                 unimix_logits)

# -- symlog / symexp


def test_symlog_values_and_round_trip():
    x = torch.tensor([-(math.e - 1), 0.0, math.e - 1, math.e ** 2 - 1])
    torch.testing.assert_close(symlog(x), torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    torch.testing.assert_close(symexp(torch.tensor([-1.0, 0.0, 1.0])), torch.tensor([-(math.e - 1), 0.0, math.e - 1]))
    x = torch.cat([-torch.logspace(-4, 6, 50, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                   torch.logspace(-4, 6, 50, dtype=torch.float64)])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-12, atol=0)


# -- two-hot


def test_twohot_on_a_bin_is_onehot():
    twohot = TwoHot(low=-2.0, high=2.0, num_bins=5)   # bins -2, -1, 0, 1, 2
    weights = twohot.encode(torch.tensor([0.0, math.e - 1, -(math.e ** 2 - 1)]))
    expected = torch.tensor([[0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)


def test_twohot_between_bins_and_outside():
    twohot = TwoHot(low=-2.0, high=2.0, num_bins=5)
    # symlog(x) = 0.25 lies a quarter of the way from bin 0 to bin 1: weights 0.75 and 0.25
    # symlog(x) = -1.6: 0.6 of the way from -1 down to -2: weights 0.6 on -2, 0.4 on -1
    # far outside the grid: all weight on the edge bin
    x = torch.tensor([math.exp(0.25) - 1, -(math.exp(1.6) - 1), 1e6, -1e6])
    expected = torch.tensor([[0, 0, 0.75, 0.25, 0], [0.6, 0.4, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]])
    torch.testing.assert_close(twohot.encode(x), expected, atol=1e-6, rtol=0)


def test_twohot_default_grid_and_decode_round_trip():
    twohot = TwoHot()
    assert twohot.bins.shape == (255,)
    assert twohot.bins[0] == -20 and twohot.bins[-1] == 20
    magnitudes = torch.logspace(-3, 4, 200)
    x = torch.cat([-magnitudes, torch.zeros(1), magnitudes])
    weights = twohot.encode(x)
    assert weights.shape == (401, 255)
    torch.testing.assert_close(weights.sum(-1), torch.ones(401))
    assert ((weights > 0).sum(-1) <= 2).all()
    decoded = twohot.decode(torch.log(weights + 1e-20))
    torch.testing.assert_close(decoded, x, rtol=1e-4, atol=1e-6)


def test_twohot_loss_is_cross_entropy_by_hand():
    twohot = TwoHot(low=-2.0, high=2.0, num_bins=5)
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0], requires_grad=True)
    loss = twohot.loss(logits, torch.tensor(math.exp(0.25) - 1))
    log_z = math.log(sum(math.exp(v) for v in [0.5, -1.0, 2.0, 0.0, 1.0]))
    expected = -(0.75 * (2.0 - log_z) + 0.25 * (0.0 - log_z))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()   # gradient of cross-entropy: softmax - target weights
    target = torch.tensor([0, 0, 0.75, 0.25, 0])
    torch.testing.assert_close(logits.grad, logits.detach().softmax(-1) - target)


# -- λ-returns


def naive_lambda_returns(rewards, next_values, continues, gamma, lam):
    """R^λ_t as the λ-weighted average of n-step returns (Sutton & Barto 12.1), truncated at T:

    R^λ_t = (1 - λ) Σ_{n=1}^{T-t-1} λ^{n-1} G^(n)_t + λ^{T-t-1} G^(T-t)_t,
    G^(n)_t = Σ_{i<n} (Π_{j<i} γ c_{t+j}) r_{t+i} + (Π_{j<n} γ c_{t+j}) V(z_{t+n}).
    """
    T, B = len(rewards), len(rewards[0])
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            G = []
            for n in range(1, T - t + 1):
                total, discount = 0.0, 1.0
                for i in range(n):
                    total += discount * rewards[t + i][b]
                    discount *= gamma * continues[t + i][b]
                G.append(total + discount * next_values[t + n - 1][b])
            N = len(G)
            out[t, b] = sum((1 - lam) * lam ** (n - 1) * G[n - 1] for n in range(1, N)) + lam ** (N - 1) * G[-1]
    return out


def test_lambda_returns_by_hand():
    # γ = λ = 0.5, r = (1, 2), V(z_1) = 4, V(z_2) = 8
    # R_1 = 2 + .5 * 8 = 6;  R_0 = 1 + .5 (.5 * 4 + .5 * 6) = 3.5
    # with c_1 = 0: R_1 = 2, R_0 = 1 + .5 (.5 * 4 + .5 * 2) = 2.5
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    next_values = torch.tensor([[4.0, 4.0], [8.0, 8.0]])
    continues = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    R = lambda_returns(rewards, next_values, continues, gamma=0.5, lam=0.5)
    torch.testing.assert_close(R, torch.tensor([[3.5, 2.5], [6.0, 2.0]]))


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_match_naive_loop(lam):
    gen = torch.Generator().manual_seed(int(lam * 100))
    T, B, gamma = 7, 5, 0.9
    rewards = torch.randn(T, B, generator=gen, dtype=torch.float64)
    next_values = torch.randn(T, B, generator=gen, dtype=torch.float64)
    continues = torch.rand(T, B, generator=gen, dtype=torch.float64)   # probabilities
    continues[2, 1] = 0.0
    R = lambda_returns(rewards, next_values, continues, gamma, lam)
    expected = naive_lambda_returns(rewards.tolist(), next_values.tolist(), continues.tolist(), gamma, lam)
    np.testing.assert_allclose(R.numpy(), expected, rtol=1e-10)
    if lam == 0.0:   # one-step targets
        torch.testing.assert_close(R, rewards + gamma * continues * next_values)


def test_replay_lambda_returns_by_hand():
    # γ = 1, λ = 1, one episode: R_2 = 1 + 10, R_1 = 1 + R_2, R_0 = 1 + R_1
    one = replay_lambda_returns(torch.tensor([[0.0, 1, 1, 1]]), torch.zeros(1, 4, dtype=torch.bool),
                                torch.zeros(1, 4, dtype=torch.bool), torch.tensor([[0.0, 0, 0, 10]]), 1.0, 1.0)
    torch.testing.assert_close(one, torch.tensor([[13.0, 12.0, 11.0]]))
    # γ = λ = 0.5; s_1 terminal, s_2 starts the next episode; V = (1, 2, 3, 4)
    # R_0 = r_1 + 0 = 1 (s_1 terminal);  R_1 = V(s_1) = 2 (boundary);  R_2 = 1 + .5 (.5 * 4 + .5 * 4) = 3
    two = replay_lambda_returns(torch.tensor([[0.0, 1, 0, 1]]), torch.tensor([[False, True, False, False]]),
                                torch.tensor([[False, False, True, False]]), torch.tensor([[1.0, 2, 3, 4]]), 0.5, 0.5)
    torch.testing.assert_close(two, torch.tensor([[1.0, 2.0, 3.0]]))


def naive_replay_lambda_returns(reward, terminal, first, values, gamma, lam):
    """Textbook form: R_t = (1-λ) Σ_{n<N} λ^(n-1) G_t^(n) + λ^(N-1) G_t^(N), N = steps to the segment's end."""
    L, out = len(values), []
    for t in range(L - 1):
        end = t
        while end < L - 1 and not first[end + 1]:
            end += 1
        N = end - t
        if N == 0:
            out.append(values[t])
            continue

        def G(n):
            total, alive = 0.0, 1.0
            for i in range(1, n + 1):
                total += gamma ** (i - 1) * alive * reward[t + i]
                alive *= 1.0 - terminal[t + i]
            return total + gamma ** n * alive * values[t + n]

        out.append((1 - lam) * sum(lam ** (n - 1) * G(n) for n in range(1, N)) + lam ** (N - 1) * G(N))
    return out


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_replay_lambda_returns_match_textbook_form(lam):
    gen = torch.Generator().manual_seed(7)
    B, L, gamma = 3, 9, 0.9
    reward = torch.randn(B, L, generator=gen, dtype=torch.float64)
    values = torch.randn(B, L, generator=gen, dtype=torch.float64)
    terminal = torch.zeros(B, L, dtype=torch.bool)
    first = torch.zeros(B, L, dtype=torch.bool)
    terminal[0, 3], first[0, 4] = True, True      # an episode ends in the window, the next starts
    first[1, 6] = True                            # a truncated episode: its last step has no successor
    R = replay_lambda_returns(reward, terminal, first, values, gamma, lam)
    for b in range(B):
        expected = naive_replay_lambda_returns(reward[b].tolist(), terminal[b].float().tolist(), first[b].tolist(),
                                               values[b].tolist(), gamma, lam)
        np.testing.assert_allclose(R[b].numpy(), expected, rtol=1e-10)


def test_lambda_returns_carry_gradient_and_check_shapes():
    rewards = torch.ones(3, 2, requires_grad=True)
    R = lambda_returns(rewards, torch.zeros(3, 2), torch.ones(3, 2), gamma=0.5, lam=1.0)
    R[0].sum().backward()
    torch.testing.assert_close(rewards.grad, torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]]))
    with pytest.raises(ValueError, match="equal shapes"):
        lambda_returns(torch.ones(3, 2), torch.ones(3, 1), torch.ones(3, 2), 0.9, 0.9)


# -- KL divergences, balancing and free bits


def test_kl_categorical_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    post, prior = torch.randn(4, 3, 8, 6, generator=gen), torch.randn(4, 3, 8, 6, generator=gen)
    expected = kl_divergence(Independent(Categorical(logits=post), 1), Independent(Categorical(logits=prior), 1))
    assert expected.shape == (4, 3)
    torch.testing.assert_close(kl_categorical(post, prior), expected)


def test_kl_gaussian_matches_torch_distributions():
    gen = torch.Generator().manual_seed(1)
    mq, mp = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    sq, sp = torch.rand(5, 7, generator=gen) + 0.1, torch.rand(5, 7, generator=gen) + 0.1
    expected = kl_divergence(Independent(Normal(mq, sq), 1), Independent(Normal(mp, sp), 1))
    torch.testing.assert_close(kl_gaussian(mq, sq, mp, sp), expected)


def categorical(probs):
    return {"logits": torch.tensor(probs).log().reshape(1, 1, -1).requires_grad_()}


def test_free_bits_categorical_by_hand():
    # q = (.5, .5), p = (.25, .75): KL = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3) ≈ 0.144 < 1 nat
    post, prior = categorical([0.5, 0.5]), categorical([0.25, 0.75])
    dyn, rep, kl = kl_balanced_loss(post, prior, "categorical", free_bits=1.0)
    assert kl.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)
    assert dyn.item() == rep.item() == 1.0
    (dyn + rep).backward()
    assert not post["logits"].grad.any() and not prior["logits"].grad.any()
    # q = (.5, .5), p = (.01, .99): KL = .5 ln 50 + .5 ln(.5/.99) = .5 ln(25/.99) ≈ 1.61 > 1 nat
    post, prior = categorical([0.5, 0.5]), categorical([0.01, 0.99])
    dyn, rep, kl = kl_balanced_loss(post, prior, "categorical", free_bits=1.0)
    for value in (dyn, rep, kl):
        assert value.item() == pytest.approx(0.5 * math.log(25 / 0.99), rel=1e-5)
    (dyn + rep).backward()
    assert post["logits"].grad.abs().sum() > 0 and prior["logits"].grad.abs().sum() > 0


def test_free_bits_clip_each_element_before_the_mean():
    # unit Gaussians 1 and 2 apart: KL = .5 and 2; clipped per element: mean(1, 2) = 1.5
    # (clipping the batch mean instead would give max(1, 1.25) = 1.25)
    post = {"mean": torch.zeros(2, 1), "std": torch.ones(2, 1)}
    prior = {"mean": torch.tensor([[1.0], [2.0]], requires_grad=True), "std": torch.ones(2, 1)}
    dyn, rep, kl = kl_balanced_loss(post, prior, "gaussian", free_bits=1.0)
    assert dyn.item() == pytest.approx(1.5) and rep.item() == pytest.approx(1.5)
    assert kl.item() == pytest.approx(1.25)
    dyn.backward()   # d/dμ_p of mean(.5 (μ_p - 0)²) over the element above free bits only: (0, 2/2)
    torch.testing.assert_close(prior["mean"].grad, torch.tensor([[0.0], [1.0]]))


def test_dyn_trains_prior_and_rep_trains_posterior():
    gen = torch.Generator().manual_seed(2)

    def logits():
        return {"logits": (3 * torch.randn(4, 2, 5, generator=gen)).requires_grad_()}

    post, prior = logits(), logits()
    dyn, _, _ = kl_balanced_loss(post, prior, "categorical", free_bits=0.0)
    dyn.backward()
    assert post["logits"].grad is None and prior["logits"].grad.abs().sum() > 0
    post, prior = logits(), logits()
    _, rep, _ = kl_balanced_loss(post, prior, "categorical", free_bits=0.0)
    rep.backward()
    assert prior["logits"].grad is None and post["logits"].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown latent kind"):
        kl_balanced_loss(post, prior, "beta")


# -- unimix, straight-through samples


def test_unimix_floor_and_normalization():
    logits = torch.tensor([[100.0, -100.0, 0.0, -50.0], [0.0, 0.0, 0.0, 0.0]])
    probs = unimix_logits(logits, mix=0.01).exp()
    assert (probs >= 0.01 / 4 - 1e-9).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    torch.testing.assert_close(probs[0, 0], torch.tensor(0.99 + 0.0025))
    torch.testing.assert_close(unimix_logits(logits, mix=0.0), logits.log_softmax(-1))


def test_straight_through_forward_onehot_backward_softmax():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 3, 4, generator=gen, requires_grad=True)
    weights = torch.randn(6, 3, 4, generator=gen)
    sample = straight_through_onehot(logits, generator=gen)
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(6, 3), rtol=0, atol=0)
    (sample * weights).sum().backward()
    reference = logits.detach().clone().requires_grad_()
    (reference.softmax(-1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_straight_through_samples_follow_the_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.7])
    logits = probs.log().expand(20000, 3)
    counts = straight_through_onehot(logits, generator=torch.Generator().manual_seed(4)).detach().mean(0)
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)
    again = straight_through_onehot(logits[:10], generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(again, straight_through_onehot(logits[:10], generator=torch.Generator().manual_seed(4)))


# -- return normalization


def test_return_normalizer_by_hand():
    returns = torch.arange(101, dtype=torch.float32)   # P5 = 5, P95 = 95
    norm = ReturnNormalizer()
    assert norm.scale == 1.0
    norm.update(returns)          # EMAs from 0: low = .01 * 5 = .05, high = .01 * 95 = .95
    assert (norm.low, norm.high) == pytest.approx((0.05, 0.95))
    assert norm.scale == 1.0      # .9 < 1: small returns are not scaled up
    norm.update(returns)          # low = .99 * .05 + .05 = .0995, high = .99 * .95 + .95 = 1.8905
    assert norm.scale == pytest.approx(1.8905 - 0.0995)
    state = norm.state_dict()
    assert all(v.dtype == torch.float64 and v.dim() == 0 for v in state.values())  # saved like weights, exactly
    restored = ReturnNormalizer()
    restored.load_state_dict(state)
    assert restored.scale == norm.scale
    instant = ReturnNormalizer(decay=0.0)
    instant.update(returns.reshape(101, 1) * 2)
    assert instant.scale == pytest.approx(180.0)
