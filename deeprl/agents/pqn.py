"""Parallel Q-learning (PQN; Gallici et al., "Simplifying Deep Temporal Difference Learning", ICLR 2025).

The lecture's two cures for correlated samples are a replay buffer (DQN) and many synchronous
actors (A2C).  PQN gives Q-learning A2C's cure and drops the replay buffer and the target
network; a LayerNorm before each hidden activation keeps the bootstrapped regression stable::

    repeat:
        for t < T, in N envs at once:  a_t ← random with probability ε, else argmax_a Q_θ(s_t, a)
                                        s_{t+1}, r_{t+1} ~ p(·|s_t, a_t); keep max_a Q_θ(s_{t+1}, a)
        G_t = r_{t+1} + γ [(1 - λ) max_a Q_θ(s_{t+1}, a) + λ G_{t+1}]     (Q(λ), backwards over the rollout)
        for n_epochs, for each shuffled minibatch:  θ ← θ - α ∇_θ (Q_θ(s_t, a_t) - ⊥G_t)²

Terminations end G (nothing to bootstrap); a time limit bootstraps from the final observation's
max Q, not from the next episode's start (:func:`deeprl.returns.q_lambda_returns`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from deeprl.agents.base import Algorithm
from deeprl.agents.dqn import linear_schedule
from deeprl.agents.persistence import Persistent
from deeprl.config import LAYERS, MAX_ENVS, MAX_REPEATS, MAX_ROLLOUT, MAX_STEPS, RunConfig, layer_weights, setting, show_bound
from deeprl.envs import check_discrete_actions, check_observation_space
from deeprl.envs.masks import refuse_masks
from deeprl.errors import ConfigError
from deeprl.nets import QNetwork
from deeprl.optim import grad_step, make_optimizer, set_lr, weighted_loss
from deeprl.returns import q_lambda_returns


@dataclass(frozen=True, kw_only=True)
class PQNConfig(RunConfig):
    """PQN: N synchronous envs, a LayerNorm Q-network, Q(λ) targets over each rollout, epochs of
    minibatches; no replay buffer, no target network."""

    num_envs: int = setting(32, "parallel environments", min=1, max=MAX_ENVS)
    total_steps: int = setting(500_000, "environment steps to train for (summed over parallel envs)", min=1,
                               max=MAX_STEPS)
    lr: float = setting(1e-4, "Adam learning rate", min=0.0, exclusive_min=True)
    anneal_lr: bool = setting(True, "decay the learning rate linearly to 0 over total_steps")
    adam_eps: float = setting(1e-8, "Adam epsilon", min=0.0, exclusive_min=True)
    gamma: float = setting(0.99, "discount factor γ", min=0.0, max=1.0)
    reward_scale: float = setting(1.0, "rewards are multiplied by this before the targets (Q then has that scale)",
                                  min=0.0, exclusive_min=True)
    q_lambda: float = setting(0.65, "λ of the Q(λ) targets (0 = one-step Q-learning, 1 = rollout returns)",
                              min=0.0, max=1.0)
    n_steps: int = setting(64, "rollout length T per env between updates", min=1, max=MAX_ROLLOUT)
    n_epochs: int = setting(4, "passes over each rollout", min=1, max=MAX_REPEATS)
    minibatch_size: int = setting(128, "transitions per gradient step (0 = the whole rollout)", min=0,
                                  max=MAX_ROLLOUT)
    net_arch: list[int] = setting([256, 256], "hidden layer sizes of the MLP torso (vector observations)", **LAYERS)
    layer_norm: bool = setting(True, "LayerNorm before each hidden activation (PQN's stabilizer; off = a plain MLP)")
    loss: Literal["mse", "huber"] = setting("mse", "regression loss of Q_θ(s, a) on its Q(λ) target")
    max_grad_norm: float = setting(10.0, "clip the gradient's global norm to this (0 = no clipping)", min=0.0)
    eps_start: float = setting(1.0, "ε at step 0", min=0.0, max=1.0)
    eps_end: float = setting(0.05, "ε after the decay", min=0.0, max=1.0)
    eps_fraction: float = setting(0.2, "fraction of total_steps over which ε decays linearly", min=0.0, max=1.0)

    def check_settings(self) -> None:
        super().check_settings()
        if self.n_steps * self.num_envs > MAX_ROLLOUT:
            raise ConfigError(f"n_steps {self.n_steps} x num_envs {self.num_envs} = {self.n_steps * self.num_envs} "
                              f"steps per rollout; at most {show_bound(MAX_ROLLOUT)} are held in memory at once: "
                              "lower n_steps or num_envs")

    def network_weights(self) -> tuple[int, str]:
        return layer_weights(self.net_arch), f"net_arch {self.net_arch}"


class PQN(Algorithm):
    """Parallel Q-learning for discrete actions.

    >>> agent = PQN("CartPole-v1").learn()
    >>> action = agent.predict(obs)
    """

    algo = "pqn"
    config_cls = PQNConfig
    config: PQNConfig
    metrics = ("charts/epsilon", "q/mean", "q/max", "q/target_mean", "grad/norm")
    loss_scales = {"td": 1.0}

    def _check_spaces(self) -> None:
        check_observation_space(self.observation_space, self.algo)
        check_discrete_actions(self.action_space, self.algo)

    def _build(self) -> None:
        c = self.config
        self.n_actions = int(self.action_space.n)
        self.q = QNetwork(self.observation_space, self.n_actions, c.net_arch, layer_norm=c.layer_norm).to(self.device)
        self.optimizer = make_optimizer(self.q.parameters(), "adam", lr=c.lr, eps=c.adam_eps)
        self.rollouts = 0   # collect-and-update iterations
        self.updates = 0    # gradient steps

    # --------------------------------------------------------------------------------- acting
    def epsilon(self) -> float:
        c = self.config
        return linear_schedule(c.eps_start, c.eps_end, c.eps_fraction, self.progress())

    @torch.inference_mode()
    def _q_values(self, obs: np.ndarray) -> torch.Tensor:
        return self.q(torch.as_tensor(obs, device=self.device))

    def _explore(self, greedy: np.ndarray, eps: float) -> np.ndarray:
        """ε-greedy: each env independently takes a uniformly random action with probability ε."""
        if eps <= 0.0:
            return greedy
        u = self.rng.random((2, len(greedy)))  # one draw for "explore?", one for the random action
        return np.where(u[0] < eps, (u[1] * self.n_actions).astype(np.int64), greedy)

    def _act(self, obs: np.ndarray, deterministic: bool, action_mask: np.ndarray | None = None) -> np.ndarray:
        if action_mask is not None:  # (an env with masks is refused at its first training step)
            raise refuse_masks(self.algo)
        greedy = self._q_values(obs).argmax(dim=1).cpu().numpy()
        return greedy if deterministic else self._explore(greedy, self.epsilon())

    # --------------------------------------------------------------------------------- collecting
    def collect(self, steps: int) -> dict[str, torch.Tensor]:
        """``steps`` steps of every env, ε-greedy; returns the flattened ``(T·N, ...)`` states
        ``obs`` and ``actions``, and ``(T, N)`` ``rewards``, ``terminated``, ``truncated`` and
        ``next_values`` = max_a Q_θ(s'_t, a) of each step's true successor (⊥: recorded while acting)."""
        T, N = steps, self.config.num_envs
        obs = self._obs
        obs_buf = np.empty((T, N, *obs.shape[1:]), dtype=obs.dtype)
        act_buf = np.empty((T, N), np.int64)
        rew, term, trunc = np.empty((T, N), np.float32), np.empty((T, N), bool), np.empty((T, N), bool)
        max_q = torch.empty((T + 1, N), device=self.device)  # max_a Q(s_t, a) of the states acted in, then of s_T
        finals: list[tuple[int, int, np.ndarray]] = []        # (t, env, final observation) of truncated steps
        eps = self.epsilon()
        for t in range(T):
            q = self._q_values(obs)
            best = q.max(dim=1)
            max_q[t] = best.values
            actions = self._explore(best.indices.cpu().numpy(), eps)   # a ← ε-greedy(Q_θ(s, ·))
            step = self._env_step(actions)                              # s', r' ~ p(s', r'|s, a)
            obs_buf[t], act_buf[t] = obs, actions
            rew[t], term[t], trunc[t] = step.reward * self.config.reward_scale, step.terminated, step.truncated
            for i in np.flatnonzero(step.truncated):
                finals.append((t, int(i), step.next_obs[i]))
            obs = step.obs                                              # s ← s' (reset where an episode ended)
        with torch.inference_mode():
            ends = np.concatenate([obs, np.stack([f for _, _, f in finals])]) if finals else obs  # s_T, finals
            end_q = self.q(torch.as_tensor(ends, device=self.device)).max(dim=1).values
            max_q[T] = end_q[:N]
            next_values = max_q[1:].clone()                             # max_a Q(s_{t+1}, a)
            if finals:                                                  # ... or of the observation a time limit cut
                next_values[[t for t, _, _ in finals], [i for _, i, _ in finals]] = end_q[N:]
        to = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        return {"obs": to(obs_buf.reshape(T * N, *obs.shape[1:])), "actions": to(act_buf.reshape(-1)),
                "rewards": to(rew), "terminated": to(term), "truncated": to(trunc), "next_values": next_values}

    # --------------------------------------------------------------------------------- learning
    def targets(self, r: dict[str, torch.Tensor]) -> torch.Tensor:
        """⊥G_t, the Q(λ) targets of the rollout, flattened to ``(T·N,)``."""
        c = self.config
        G = q_lambda_returns(r["rewards"], r["next_values"], r["terminated"], r["truncated"], c.gamma, c.q_lambda)
        return G.reshape(-1)

    def losses(self, obs: torch.Tensor, actions: torch.Tensor, target: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``({"td": loss}, Q_θ(s, a))``: the regression of Q_θ(s_t, a_t) on the fixed label ⊥G_t
        (squared error, or Huber with ``loss=huber``), as the terms weighted by :attr:`loss_scales`."""
        q = self.q(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        target = target.detach()  # ⊥: no gradient through the bootstrapped values
        td = F.mse_loss(q, target) if self.config.loss == "mse" else F.smooth_l1_loss(q, target)
        return {"td": td}, q

    def update(self, r: dict[str, torch.Tensor]) -> None:
        """``n_epochs`` passes over the rollout in shuffled minibatches, each one gradient step."""
        c = self.config
        target = self.targets(r)
        M = target.numel()
        size = min(c.minibatch_size or M, M)
        for _ in range(c.n_epochs):
            order = torch.randperm(M, device=self.device)
            for start in range(0, M, size):
                idx = order[start:start + size]
                terms, q = self.losses(r["obs"][idx], r["actions"][idx], target[idx])
                grad = grad_step(self.optimizer, weighted_loss(terms, self.loss_scales), c.max_grad_norm)
                self.updates += 1
                q = q.detach()
                self._record({f"loss/{k}": v for k, v in terms.items()},
                             **{"q/mean": q.mean(), "q/max": q.max(), "grad/norm": grad})
        self._record({"q/target_mean": target.mean()})

    def _iteration(self, target_steps: int) -> None:
        """One rollout of every env (no further than ``target_steps``), then its update."""
        c = self.config
        if c.anneal_lr:  # the rollout's update learns at the rate of the step it began at
            set_lr(self.optimizer, c.lr * (1.0 - self.progress()))
        steps = min(c.n_steps, math.ceil((target_steps - self.num_timesteps) / c.num_envs))
        self.update(self.collect(steps))
        self.rollouts += 1

    def _interval_metrics(self) -> dict[str, Any]:
        return {"charts/epsilon": self.epsilon(), **super()._interval_metrics()}

    def _progress_info(self) -> dict[str, Any]:
        return {"eps": round(self.epsilon(), 3)}

    # --------------------------------------------------------------------------------- persistence
    def _persistent(self) -> Persistent:
        return Persistent(model={"q": self.q}, optimizers={"optimizer": self.optimizer},
                          counters={"rollouts": "rollouts", "updates": "updates"})
