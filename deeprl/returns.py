"""Return and target math: pure functions over arrays and tensors, no environments, no networks.

Notation follows the lecture: r' is the reward after action a in state s, γ the discount,
G = r' + γ G' the discounted reward to-go.
"""

from __future__ import annotations

import numpy as np
import torch


def nstep_return(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, valid: np.ndarray,
                 gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-step returns G^(k) = Σ_{i<k} γ^i r_{t+i+1} along sampled transitions.

    All inputs are ``(B, n)``: the n transitions that start at each sampled step.  ``valid[:, i]``
    is False where transition i does not exist yet (beyond the replay buffer's write head);
    ``valid[:, 0]`` must be True.  The sum stops *after* the first transition that terminated or
    was truncated and *before* the first invalid one, so it never crosses an episode boundary.

    Returns ``(G, k, terminal)`` of shape ``(B,)``: the return, the number of rewards summed
    (1..n; the successor state to bootstrap from is that of transition k-1) and whether that
    last transition terminated (then there is nothing to bootstrap: the target is G alone).
    A truncated episode still bootstraps, from its final observation.
    """
    B, n = rewards.shape
    ended = terminated | truncated
    alive = np.empty((B, n), dtype=bool)
    alive[:, 0] = True
    for i in range(1, n):
        alive[:, i] = alive[:, i - 1] & ~ended[:, i - 1] & valid[:, i]
    discounts = gamma ** np.arange(n, dtype=np.float64)
    G = (rewards * alive * discounts).sum(axis=1)
    k = alive.sum(axis=1)
    terminal = terminated[np.arange(B), k - 1]
    return G.astype(np.float32), k.astype(np.int64), terminal


def bootstrap_discount(k: np.ndarray, terminal: np.ndarray, gamma: float) -> np.ndarray:
    """γ^k where the k-th successor is bootstrapped from, 0 where the episode terminated."""
    return np.where(terminal, 0.0, gamma ** k.astype(np.float64)).astype(np.float32)


def q_learning_target(returns: torch.Tensor, discount: torch.Tensor, next_q: torch.Tensor,
                      next_q_select: torch.Tensor | None = None) -> torch.Tensor:
    """The bootstrapped target r' + γ max_a' Q(s', a') of the Bellman optimality equation.

    ``returns`` and ``discount`` are ``(B,)`` (n-step: G^(k) and γ^k, 0 at termination);
    ``next_q`` is ``(B, A)``, the network that *scores* a' (the target network, or Q_θ itself).
    With ``next_q_select`` (double Q-learning) a' = argmax of that network (the online one)
    instead of argmax of ``next_q``: decoupling selection from evaluation removes the max's
    overestimation bias.  The caller decides whether the result carries gradient (⊥).
    """
    if next_q_select is None:
        next_v = next_q.max(dim=1).values
    else:
        best = next_q_select.argmax(dim=1, keepdim=True)
        next_v = next_q.gather(1, best).squeeze(1)
    return returns + discount * next_v


# ---------------------------------------------------------------------------------------------
# policy gradients: reward-to-go and advantages over rollouts of shape (T, N)


def _xp(array):
    """The array module of ``array``: these functions take torch tensors or NumPy arrays alike
    (NumPy is much cheaper for the short per-step loops of small CPU rollouts)."""
    return torch if isinstance(array, torch.Tensor) else np


def reward_to_go(rewards, dones, gamma: float, bootstrap=None, truncated=None):
    """G_t = r_{t+1} + γ G_{t+1}, restarting after every episode end; ``(T, N)`` -> ``(T, N)``.

    ``dones[t]`` marks that the episode ended with step t.  An episode cut off by a time limit
    (``truncated[t]``) did not really end: when a critic is available, pass ``bootstrap[t]`` =
    V(final observation) and the reward-to-go continues from it instead of from 0.  Without it
    (plain REINFORCE) a truncated episode's G_t is the rewards collected before the cut.
    Works on torch tensors and NumPy arrays.
    """
    xp = _xp(rewards)
    T = rewards.shape[0]
    out = xp.empty_like(rewards)
    G = xp.zeros_like(rewards[0])
    for t in reversed(range(T)):
        after = G * ~dones[t]
        if bootstrap is not None and truncated is not None:
            after = xp.where(truncated[t], bootstrap[t], after)
        G = rewards[t] + gamma * after
        out[t] = G
    return out


def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """Generalized advantage estimation (Schulman et al. 2016) over a ``(T, N)`` rollout.

    δ_t = r_{t+1} + γ (1 - terminated_t) V(s'_t) - V(s_t)   (the lecture's A = r' + γ V(s') - V(s))
    A_t = δ_t + γ λ (1 - done_t) A_{t+1}

    ``next_values[t]`` is V of the true successor of step t: V(s_{t+1}) inside an episode, V of
    the final observation where it was truncated (terminated steps are masked anyway).
    λ = 0 gives the one-step TD advantage, λ = 1 the n-step (rollout-to-end) advantage of A2C.
    Returns ``(advantages, value_targets)`` with value_targets = advantages + values.
    Works on torch tensors and NumPy arrays.
    """
    xp = _xp(rewards)
    T = rewards.shape[0]
    not_done = ~(terminated | truncated)
    deltas = rewards + gamma * next_values * ~terminated - values
    adv = xp.empty_like(deltas)
    running = xp.zeros_like(deltas[0])
    for t in reversed(range(T)):
        running = deltas[t] + gamma * lam * running * not_done[t]
        adv[t] = running
    return adv, adv + values


def q_lambda_returns(rewards, next_values, terminated, truncated, gamma: float, lam: float):
    """Peng's Q(λ) targets over a ``(T, N)`` rollout, computed backwards (PQN, Gallici et al. 2025)::

        G_t = r_{t+1} + γ [(1 - λ) max_a Q(s'_t, a) + λ G_{t+1}]

    ``next_values[t]`` is max_a Q(s'_t, a) of the true successor of step t: of s_{t+1} inside an
    episode, of the final observation where step t was truncated.  An episode that terminated at
    step t has nothing after it (G_t = r_{t+1}); one truncated at step t continues from its final
    observation, not from the next episode's G_{t+1} (G_t = r_{t+1} + γ max_a Q(s'_t, a)); so does
    the rollout's last step.  λ = 0 gives one-step Q-learning targets, λ = 1 the rewards to the
    end of the rollout (or episode) with a bootstrap there.  Works on torch tensors and NumPy arrays.
    """
    xp = _xp(rewards)
    T = rewards.shape[0]
    out = xp.empty_like(rewards)
    G = next_values[T - 1]  # beyond the rollout: G_T = max_a Q(s'_{T-1}, a)
    for t in reversed(range(T)):
        after = xp.where(truncated[t], next_values[t], G)  # a time limit: what s'_t is worth, not the next episode
        G = rewards[t] + gamma * ((1 - lam) * next_values[t] + lam * after) * ~terminated[t]
        out[t] = G
    return out
