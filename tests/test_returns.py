"""n-step returns and Q-learning targets against hand-computed numbers and a naive loop."""

import numpy as np
import pytest
import torch

from deeprl.returns import bootstrap_discount, nstep_return, q_learning_target


def naive_nstep(rewards, terminated, truncated, valid, gamma):
    """The textbook loop: add γ^i r_i until an episode end or the end of the data."""
    out = []
    for r, te, tr, v in zip(rewards, terminated, truncated, valid):
        G, k = 0.0, 0
        for i in range(len(r)):
            if not v[i]:
                break
            G += gamma ** i * r[i]
            k += 1
            if te[i] or tr[i]:
                break
        out.append((G, k, bool(te[k - 1])))
    return out


def test_nstep_hand_computed():
    gamma = 0.5
    rewards = np.array([[1.0, 2.0, 4.0],    # no episode end: 1 + .5*2 + .25*4 = 3, k=3
                        [1.0, 2.0, 4.0],    # terminates after the 2nd: 1 + 1 = 2, k=2, terminal
                        [1.0, 2.0, 4.0],    # truncated after the 1st: 1, k=1, not terminal
                        [1.0, 2.0, 4.0]])   # 3rd not written yet: 1 + 1 = 2, k=2
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]], bool)
    truncated = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]], bool)
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]], bool)
    G, k, terminal = nstep_return(rewards, terminated, truncated, valid, gamma)
    np.testing.assert_allclose(G, [3.0, 2.0, 1.0, 2.0])
    np.testing.assert_array_equal(k, [3, 2, 1, 2])
    np.testing.assert_array_equal(terminal, [False, True, False, False])
    np.testing.assert_allclose(bootstrap_discount(k, terminal, gamma), [0.125, 0.0, 0.5, 0.25])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_nstep_matches_naive_loop(n):
    rng = np.random.default_rng(n)
    B, gamma = 200, 0.9
    rewards = rng.normal(size=(B, n))
    terminated = rng.random((B, n)) < 0.15
    truncated = rng.random((B, n)) < 0.1
    valid = np.ones((B, n), bool)
    cut = rng.integers(1, n + 1, size=B)
    valid[np.arange(n)[None, :] >= cut[:, None]] = False
    G, k, terminal = nstep_return(rewards, terminated, truncated, valid, gamma)
    expected = naive_nstep(rewards, terminated, truncated, valid, gamma)
    np.testing.assert_allclose(G, [e[0] for e in expected], rtol=1e-5)
    np.testing.assert_array_equal(k, [e[1] for e in expected])
    np.testing.assert_array_equal(terminal, [e[2] for e in expected])


def test_q_learning_target_max_and_double():
    returns = torch.tensor([1.0, 0.5])
    discount = torch.tensor([0.9, 0.0])          # second transition terminated
    next_q_target = torch.tensor([[1.0, 3.0], [10.0, 20.0]])
    next_q_online = torch.tensor([[5.0, 2.0], [0.0, 1.0]])
    # plain: r + γ max_a' Q_target(s', a') = 1 + .9*3
    plain = q_learning_target(returns, discount, next_q_target)
    torch.testing.assert_close(plain, torch.tensor([1.0 + 0.9 * 3.0, 0.5]))
    # double: a' = argmax Q_online = action 0, scored by Q_target: 1 + .9*1
    double = q_learning_target(returns, discount, next_q_target, next_q_online)
    torch.testing.assert_close(double, torch.tensor([1.0 + 0.9 * 1.0, 0.5]))
