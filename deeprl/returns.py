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
