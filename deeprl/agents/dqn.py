"""Deep Q-learning (Mnih et al. 2015) and the tricks that make it work.

The lecture's algorithm, with each trick a setting of :class:`DQNConfig`::

    1. a ← random action with probability ε, else argmax_a' Q_θ(s, a')        (ε-greedy)
    2. s', r' ~ p(s', r' | s, a)                                              (execute action)
    3. θ ← θ - α ∇_θ (Q_θ(s, a) - ⊥(r' + γ max_a' Q_θ(s', a')))²              (bootstrapped error)
    4. s ← s'

Step 3 here runs on batches drawn from experience replay, with the target computed by a slowly
updated copy of the network (target network), optionally with double Q-learning's decoupled
argmax, multi-step returns, Huber loss and gradient-norm clipping.  With ``replay=False`` the
update uses only the transitions just made (the lecture's online v1 and v2).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from deeprl.agents.base import Algorithm
from deeprl.agents.persistence import Persistent
from deeprl.buffers import PrioritizedReplayBuffer, ReplayBuffer, ReplaySamples
from deeprl.config import (LAYERS, MAX_BATCH, MAX_BUFFER, MAX_HORIZON, MAX_REPEATS, MAX_STEPS, RunConfig,
                           layer_weights, setting)
from deeprl.distributional import (categorical_projection, categorical_support, quantile_huber_loss,
                                   quantile_midpoints)
from deeprl.envs import check_discrete_actions, check_observation_space, reward_range
from deeprl.errors import ConfigError
from deeprl.nets import QNetwork
from deeprl.noisy import mean_weights, plain_as_noisy, reset_noise
from deeprl.optim import grad_step, make_optimizer, set_lr, weighted_loss
from deeprl.returns import q_learning_target


def value_bounds(rewards: tuple[float, float] | None, gamma: float) -> tuple[float, float] | None:
    """The range of every discounted return when each reward lies in ``rewards``:
    [min(r_min, 0), max(r_max, 0)] / (1 - γ) (episodes may end at any step)."""
    if rewards is None or gamma >= 1.0:
        return None
    return min(rewards[0], 0.0) / (1.0 - gamma), max(rewards[1], 0.0) / (1.0 - gamma)


DIVERGENCE_SLACK = 1.5  # early transients overshoot the value range a little; divergence does not stop


def divergence_level(bounds: tuple[float, float] | None) -> float | None:
    """The |Q| above which DQN warns that its estimates diverge, for :func:`value_bounds` ``(lo, hi)``:
    1.5 max(|lo|, |hi|), that is 1.5 max(|r_min|, |r_max|) / (1 - γ), whether the rewards have one
    sign or both (CartPole, r = 1, γ = 0.99: 150; Acrobot, r in [-1, 0], γ = 0.99: 150; clipped
    Atari, r in [-1, 1], γ = 0.99: 150).  ``None`` (no bound) gives ``None``."""
    if bounds is None:
        return None
    return DIVERGENCE_SLACK * max(abs(bounds[0]), abs(bounds[1]))


def masked_q(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Q ``(B, A)`` with the actions ``mask`` forbids at -inf, so max and argmax see only the valid
    ones.  A row that allows nothing (an episode's last state, whose bootstrap discount is 0) is
    left whole: its -inf would turn 0 · max into NaN."""
    allowed = mask | ~mask.any(dim=1, keepdim=True)
    return q.masked_fill(~allowed, -math.inf)


def uniform_allowed(mask: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One action per row, uniform over the valid ones of ``mask`` ``(B, A)``, from uniforms
    ``u`` in [0, 1): the k-th valid action with k = ⌊u · count⌋ (all valid: ⌊u · A⌋, as unmasked)."""
    k = (u * mask.sum(axis=1)).astype(np.int64)
    return (mask.cumsum(axis=1) > k[:, None]).argmax(axis=1)


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """``start`` → ``end`` linearly over the first ``fraction`` of training, then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, progress / fraction)


@dataclass(frozen=True, kw_only=True)
class DQNConfig(RunConfig):
    """Deep Q-learning with every trick of the lecture and two beyond it (dueling, prioritized replay).

    The lecture's "Deep Q-learning v1" is ``replay=False, target_update_interval=0,
    stop_gradient=False, eps_start=0, eps_end=0``; "v2" adds ε-greedy and ``stop_gradient=True``.
    Presets ``lecture-v1`` and ``lecture-v2`` set exactly these.
    """

    lr: float = setting(1e-4, "Adam learning rate", min=0.0, exclusive_min=True)
    anneal_lr: bool = setting(False, "decay the learning rate linearly to 0 over total_steps")
    adam_eps: float = setting(1e-8, "Adam epsilon", min=0.0, exclusive_min=True)
    gamma: float = setting(0.99, "discount factor γ", min=0.0, max=1.0)
    net_arch: list[int] = setting([64, 64], "hidden layer sizes of the MLP torso (vector observations)", **LAYERS)
    dueling: bool = setting(False, "dueling head: Q = V + A - mean(A)")
    loss: Literal["huber", "mse"] = setting("huber", "regression loss on the bootstrapped error")
    max_grad_norm: float = setting(10.0, "clip the gradient's global norm to this (0 = no clipping)", min=0.0)
    batch_size: int = setting(32, "transitions per gradient step", min=1, max=MAX_BATCH)
    replay: bool = setting(True, "experience replay; off = learn from the latest transitions only (lecture v1/v2)")
    buffer_size: int = setting(100_000, "replay capacity in transitions", min=1, max=MAX_BUFFER)
    learning_starts: int = setting(1_000, "env steps collected before the first update", min=0, max=MAX_STEPS)
    train_freq: int = setting(4, "env steps between training phases", min=1, max=MAX_STEPS)
    gradient_steps: int = setting(1, "gradient steps per training phase", min=1, max=MAX_REPEATS)
    target_update_interval: int = setting(
        1_000, "env steps between target-network updates (0 = no target network: bootstrap from Q_θ)",
        min=0, max=MAX_STEPS)
    tau: float = setting(1.0, "target update rate: 1 = hard copy, <1 = Polyak averaging", min=0.0, max=1.0,
                         exclusive_min=True)
    stop_gradient: bool = setting(True, "⊥ on the target; off lets the gradient flow into the target (lecture v1)")
    double_q: bool = setting(True, "double Q-learning: online net picks a', target net scores it")
    n_step: int = setting(1, "multi-step returns: bootstrap after n rewards", min=1, max=MAX_HORIZON)
    eps_start: float = setting(1.0, "ε at step 0", min=0.0, max=1.0)
    eps_end: float = setting(0.05, "ε after the decay", min=0.0, max=1.0)
    eps_fraction: float = setting(0.1, "fraction of total_steps over which ε decays linearly", min=0.0, max=1.0)
    eval_eps: float = setting(0.0, "ε used during evaluation", min=0.0, max=1.0)
    prioritized: bool = setting(False, "prioritized replay (proportional) with importance weights")
    per_alpha: float = setting(0.6, "priority exponent α", min=0.0)
    per_beta_start: float = setting(0.4, "importance-weight exponent β at step 0 (annealed to 1)", min=0.0, max=1.0)
    per_eps: float = setting(1e-6, "added to |TD error| so no priority is zero", min=0.0, exclusive_min=True)
    distributional: Literal["none", "c51", "qr"] = setting(
        "none", "learn the return's distribution: c51 (categorical on a fixed support) or qr (quantiles)")
    atoms: int = setting(51, "C51's atoms, or QR-DQN's quantiles, per action", min=2, max=1_000)
    v_min: float = setting(-10.0, "C51 support's lowest atom")
    v_max: float = setting(10.0, "C51 support's highest atom")
    noisy: bool = setting(False, "factorized Gaussian noisy layers: every fully connected layer, torso and head "
                                 "(explore by the weights' noise, redrawn at every env step and gradient step)")
    noisy_sigma0: float = setting(0.5, "noisy layers' initial σ0 (σ = σ0 / √inputs)", min=0.0, exclusive_min=True)

    def check_settings(self) -> None:
        super().check_settings()
        if self.replay and self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size {self.batch_size} exceeds buffer_size {self.buffer_size}; "
                              "lower batch_size or raise buffer_size")
        if self.double_q and self.target_update_interval == 0:
            raise ConfigError("double_q needs a target network; set target_update_interval > 0 or double_q=false")
        if not self.replay and (self.n_step > 1 or self.prioritized):
            raise ConfigError("n_step > 1 and prioritized replay need replay=true")
        if self.distributional == "c51" and not self.v_min < self.v_max:
            raise ConfigError(f"v_min {self.v_min} must be below v_max {self.v_max}; set v_min < v_max "
                              "around the returns' range")
        if self.distributional != "none" and not self.stop_gradient:
            raise ConfigError("distributional heads learn against a fixed target; set stop_gradient=true")

    def network_weights(self) -> tuple[int, str]:
        noisy = 2 if self.noisy else 1  # a noisy layer holds μ and σ of each weight
        return 2 * noisy * layer_weights(self.net_arch), f"net_arch {self.net_arch}"  # online and target Q


class DQN(Algorithm):
    """Deep Q-network agent for discrete actions.

    >>> agent = DQN("CartPole-v1", double_q=True).learn(50_000)
    >>> action = agent.predict(obs)
    """

    algo = "dqn"
    config_cls = DQNConfig
    config: DQNConfig
    metrics = ("charts/epsilon", "q/mean", "q/max", "grad/norm")
    maxima = ("q/max", "q/abs")  # q/abs: the largest |Q| of the interval, for the divergence check (not logged)
    loss_scales = {"td": 1.0}
    masks_actions = True  # invalid-action masks: in the greedy action, the random one and the target's max

    def _check_spaces(self) -> None:
        check_observation_space(self.observation_space, "dqn")
        check_discrete_actions(self.action_space, "dqn")

    def _build(self) -> None:
        c = self.config
        self.n_actions = int(self.action_space.n)
        support = categorical_support(c.v_min, c.v_max, c.atoms) if c.distributional == "c51" else None  # q.support
        self.q = QNetwork(self.observation_space, self.n_actions, c.net_arch, dueling=c.dueling,
                          atoms=None if c.distributional == "none" else c.atoms, support=support,
                          noisy_sigma0=c.noisy_sigma0 if c.noisy else 0.0).to(self.device)
        self.q_target = None
        if c.target_update_interval > 0:
            self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = make_optimizer(self.q.parameters(), "adam", lr=c.lr, eps=c.adam_eps)
        self.buffer = None
        if c.replay:
            shape = tuple(self.observation_space.shape or ())
            dtype = self.observation_space.dtype if shape else np.int64
            kwargs = dict(n_step=c.n_step, gamma=c.gamma, device=self.device)
            if c.prioritized:
                self.buffer = PrioritizedReplayBuffer(c.buffer_size, c.num_envs, shape, dtype, alpha=c.per_alpha,
                                                      eps=c.per_eps, **kwargs)
            else:
                self.buffer = ReplayBuffer(c.buffer_size, c.num_envs, shape, dtype, **kwargs)
        self._eval_rng = np.random.default_rng([c.seed, 0xE7A1])  # predict()'s ε draws
        self.iteration = 0      # vector steps taken
        self.updates = 0        # gradient steps taken
        known = reward_range(c.env, c.atari_wrappers)
        if c.wrappers:  # the user's wrappers may change rewards
            known = None
        elif known is not None and c.action_repeat > 1:  # one decision's reward sums that many steps'
            known = (known[0] * c.action_repeat, known[1] * c.action_repeat)
        self.q_bounds = value_bounds(known, c.gamma)
        self._q_history: list[float] = []  # the largest |Q| of each log interval (divergence check)
        self._rewards_seen: list[float] = []  # [r_min, r_max] of every reward collected, where the env's is unknown

    # --------------------------------------------------------------------------------- acting
    def epsilon(self) -> float:
        c = self.config
        return linear_schedule(c.eps_start, c.eps_end, c.eps_fraction, self.progress())

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    def _greedy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """argmax_a Q_θ(s, a), over the actions ``mask`` allows where there is one."""
        with torch.inference_mode():
            q = self.q(self._obs_tensor(obs))
            if mask is not None:
                q = masked_q(q, self._obs_tensor(mask))
            return q.argmax(dim=1).cpu().numpy()

    def _act(self, obs: np.ndarray, deterministic: bool, action_mask: np.ndarray | None = None) -> np.ndarray:
        if deterministic:  # evaluation's ε draws from its own stream, never from training's; noisy layers at μ
            with mean_weights(self.q):
                return self._epsilon_greedy(obs, self.config.eval_eps, self._eval_rng, action_mask)
        return self._epsilon_greedy(obs, self.epsilon(), mask=action_mask)

    def _eval_policy(self):
        """Each evaluation's ε-greedy draws come from a stream of its own, seeded by the run's seed
        and step: evaluating neither shifts training's stream nor depends on earlier evaluations."""
        rng = np.random.default_rng([self.config.seed, self.num_timesteps, 0xE7A1])

        def policy(obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
            with mean_weights(self.q):  # noisy layers at their mean weights μ, as predict(deterministic=True)
                return self._epsilon_greedy(obs, self.config.eval_eps, rng, action_mask)
        return policy

    def _epsilon_greedy(self, obs: np.ndarray, eps: float, rng: np.random.Generator | None = None,
                        mask: np.ndarray | None = None) -> np.ndarray:
        """ε-greedy; with ``mask`` (B, A), both the random and the greedy action are valid ones."""
        n = len(obs)
        if eps <= 0.0:
            return self._greedy(obs, mask)
        u = (rng or self.rng).random((2, n))  # one draw for "explore?", one for the random action
        explore = u[0] < eps
        random_actions = (u[1] * self.n_actions).astype(np.int64) if mask is None else uniform_allowed(mask, u[1])
        if explore.all():  # skip the forward pass while acting at random
            return random_actions
        return np.where(explore, random_actions, self._greedy(obs, mask))

    # --------------------------------------------------------------------------------- learning
    def td_target(self, batch: ReplaySamples) -> torch.Tensor:
        """G^(k) + γ^k max_a' Q(s'_k, a') with the configured network(s) for selecting and scoring a'
        (a' among the actions valid in s'_k, where the env masks actions)."""
        c = self.config
        scorer = self.q_target if self.q_target is not None else self.q
        next_q = scorer(batch.next_obs)
        select = self.q(batch.next_obs) if c.double_q else None
        if batch.next_action_mask is not None:
            next_q = masked_q(next_q, batch.next_action_mask)
            select = None if select is None else masked_q(select, batch.next_action_mask)
        return q_learning_target(batch.returns, batch.discounts, next_q, select)

    def losses(self, batch: ReplaySamples) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """``({"td": loss}, td_error, q)``: the (importance-weighted) regression of Q_θ(s, a) on its
        target, as the terms weighted by :attr:`loss_scales`, with the TD errors (priorities) and Q."""
        c = self.config
        if c.distributional != "none":
            return self.distributional_losses(batch)
        q = self.q(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)  # Q_θ(s, a)
        if c.stop_gradient:
            with torch.no_grad():  # ⊥: the target is a fixed regression label
                target = self.td_target(batch)
        else:  # lecture v1: the gradient also moves the target ("moving target")
            target = self.td_target(batch)
        td = q - target
        per_sample = F.smooth_l1_loss(q, target, reduction="none") if c.loss == "huber" else td.pow(2)
        return {"td": (batch.weights * per_sample).mean()}, td, q

    def distributional_losses(self, batch: ReplaySamples) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                                                    torch.Tensor]:
        """``({"td": loss}, per_sample, q)`` for a distributional head: the return distribution of
        (s, a) fitted to ⊥(G + γ^n Z(s', a*)), a* = argmax over the valid actions of Q(s', ·) (the
        online net's with double_q), Q = E[Z]; C51's cross-entropy with the projected target, or
        QR-DQN's quantile Huber loss, importance-weighted; ``per_sample`` are the priorities."""
        c = self.config
        rows = torch.arange(len(batch.actions), device=self.device)
        out = self.q.outputs(batch.obs)                                   # (B, A, N)
        q = self.q.q_of(out)[rows, batch.actions.long()]                 # Q_θ(s, a), for the metrics
        pred = out[rows, batch.actions.long()]                           # (B, N): logits or quantiles of Z(s, a)
        with torch.no_grad():  # ⊥: the target distribution is a fixed label
            scorer = self.q_target if self.q_target is not None else self.q
            next_out = scorer.outputs(batch.next_obs)
            select = self.q(batch.next_obs) if c.double_q else scorer.q_of(next_out)
            if batch.next_action_mask is not None:
                select = masked_q(select, batch.next_action_mask)
            next_z = next_out[rows, select.argmax(dim=1)]                 # (B, N) of a*
            if c.distributional == "c51":
                target = categorical_projection(next_z.softmax(dim=-1), self.q.support, batch.returns,
                                                batch.discounts)
            else:
                target = batch.returns[:, None] + batch.discounts[:, None] * next_z
        if c.distributional == "c51":
            per_sample = -(target * pred.log_softmax(dim=-1)).sum(dim=-1)
        else:
            per_sample = quantile_huber_loss(pred, target, quantile_midpoints(c.atoms, self.device))
        return {"td": (batch.weights * per_sample).mean()}, per_sample.detach(), q

    def _load_model_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.config.noisy:  # a model saved when only the head was noisy: its torso's layers with σ = 0
            tensors = plain_as_noisy(self._persistent().model, tensors)
        super()._load_model_tensors(tensors)

    def update(self, batch: ReplaySamples) -> None:
        """One gradient step: θ ← θ - α ∇_θ loss, with the gradient's norm clipped (noisy layers:
        fresh noise for the online and the target net first)."""
        if self.config.noisy:
            reset_noise(self.q)
            reset_noise(self.q_target)
        terms, td, q = self.losses(batch)
        grad_norm = grad_step(self.optimizer, weighted_loss(terms, self.loss_scales), self.config.max_grad_norm)
        self.updates += 1
        if isinstance(self.buffer, PrioritizedReplayBuffer):
            self.buffer.update_priorities(batch.indices, td.detach().cpu().numpy())
        q = q.detach()
        self._record({f"loss/{k}": v for k, v in terms.items()}, **{"q/mean": q.mean(), "q/max": q.max(),
                                                                    "q/abs": q.abs().max(), "grad/norm": grad_norm})

    def update_target(self) -> None:
        """θ⁻ ← τ θ + (1 - τ) θ⁻ (τ = 1: a hard copy)."""
        if self.q_target is None:
            return
        with torch.no_grad():
            if self.config.tau >= 1.0:
                for t, p in zip(self.q_target.parameters(), self.q.parameters()):
                    t.copy_(p)
            else:
                torch._foreach_lerp_(list(self.q_target.parameters()), list(self.q.parameters()), self.config.tau)

    def _online_batch(self, obs: np.ndarray, actions: np.ndarray, step: Any) -> ReplaySamples:
        """The transitions just made, as a batch (no replay: lecture v1 / v2)."""
        to = self._obs_tensor
        discount = np.where(step.terminated, 0.0, self.config.gamma).astype(np.float32)
        return ReplaySamples(obs=to(obs), actions=to(actions), returns=to(step.reward), discounts=to(discount),
                             next_obs=to(step.next_obs), weights=torch.ones(len(obs), device=self.device),
                             indices=np.arange(len(obs)),
                             next_action_mask=None if step.next_action_mask is None else to(step.next_action_mask))

    def _beta(self) -> float:
        c = self.config
        return c.per_beta_start + (1.0 - c.per_beta_start) * self.progress()

    def _iteration(self, target_steps: int) -> None:
        """One step of every env, and the gradient steps and target update that fall due."""
        c = self.config
        n_envs = c.num_envs
        obs, mask = self._obs, self.envs.action_mask                        # (mask: None where the env has none)
        if c.noisy:                                                          # (noisy nets: a fresh draw to act by)
            reset_noise(self.q)
        actions = self._epsilon_greedy(obs, self.epsilon(), mask=mask)       # 1. ε-greedy (over valid actions)
        step = self._env_step(actions)                                       # 2. s', r' ~ p(s', r'|s, a); s ← s'
        self.iteration += 1
        if self.buffer is not None:
            self.buffer.add(obs, step.next_obs, actions, step.reward, step.terminated, step.truncated, mask,
                            step.next_action_mask)
        if self.q_bounds is None:
            self._see_rewards(step.reward)
        if self.num_timesteps > c.learning_starts and self.iteration % max(1, c.train_freq // n_envs) == 0:
            if c.anneal_lr:
                set_lr(self.optimizer, c.lr * (1.0 - self.progress()))
            for _ in range(c.gradient_steps):                                # 3. θ ← θ - α ∇ (Q - ⊥target)²
                if self.buffer is not None:
                    batch = self.buffer.sample(c.batch_size, self.rng, beta=self._beta())
                else:
                    batch = self._online_batch(obs, actions, step)
                self.update(batch)
        if self.q_target is not None and self.iteration % max(1, c.target_update_interval // n_envs) == 0:
            self.update_target()

    def _interval_metrics(self) -> dict[str, Any]:
        stats = super()._interval_metrics()
        q_abs = stats.pop("q/abs", None)
        if q_abs is not None:
            self._check_divergence(q_abs)
        return {"charts/epsilon": self.epsilon(), **stats}

    def _progress_info(self) -> dict[str, Any]:
        return {"eps": round(self.epsilon(), 3)}

    def _see_rewards(self, reward: np.ndarray) -> None:
        """Widen the range of rewards collected so far (non-finite rewards are left out)."""
        lo, hi = float(reward.min()), float(reward.max())
        seen = self._rewards_seen
        if math.isfinite(lo) and math.isfinite(hi) and (not seen or lo < min(seen) or hi > max(seen)):
            self._rewards_seen = [min([lo, *seen]), max([hi, *seen])]

    def _check_divergence(self, q_abs: float) -> None:
        """Warn (once) when the Q estimates diverge, before the greedy policy collapses.

        Where the env's reward range is known (:func:`~deeprl.envs.reward_range`), when the largest
        |Q| of a log interval passes :func:`divergence_level`: 1.5 max|r| / (1 - γ).

        Where it is unknown, when both hold: the largest |Q| after exploration has ended has grown
        past 4x its level of 10-20 intervals ago, and it is beyond 1.5 max|r| / (1 - γ) for the
        rewards collected so far.  Every target is built from collected rewards, so no estimate
        that the updates converge to lies beyond that; values that climb towards their true level
        (FrozenLake's from 0.01 to 0.9) grow fourfold too, but stay within it.  With γ = 1 there is
        no such level, and the growth alone decides."""
        c = self.config
        self._q_history = [*self._q_history[-19:], q_abs]
        if self.q_bounds is not None:
            level = divergence_level(self.q_bounds)
            if q_abs > level:
                self._warn("q_divergence", f"Q estimates diverge: |Q| reached {q_abs:.4g} at step "
                           f"{self.num_timesteps:,}, beyond 1.5x the largest possible value "
                           f"{level / DIVERGENCE_SLACK:.4g} (= max|r| / (1 - gamma)); lower lr, "
                           "train_freq/gradient_steps, or use double_q")
            return
        seen = self._rewards_seen
        level = divergence_level(value_bounds((min(seen), max(seen)), c.gamma)) if seen else 0.0
        past = self._q_history[-20:-10]
        explored = self.progress() > c.eps_fraction and self.num_timesteps > c.learning_starts
        if explored and len(past) == 10 and q_abs > 4 * max(past) > 0 and (level is None or q_abs > level):
            self._warn("q_divergence", f"Q estimates keep growing: the largest |Q| is {q_abs:.4g} at step "
                       f"{self.num_timesteps:,}, over 4x its {max(past):.4g} of 10-20 log intervals ago and "
                       f"beyond 1.5x the {(level or 0.0) / DIVERGENCE_SLACK:.4g} (= max|r| / (1 - gamma)) that "
                       "the rewards collected so far allow; the values may be diverging (lower lr or "
                       "gradient_steps, or use double_q)")

    # --------------------------------------------------------------------------------- persistence
    def _persistent(self) -> Persistent:
        return Persistent(model={"q": self.q}, training={"target": self.q_target},
                          optimizers={"optimizer": self.optimizer}, buffers={"replay": self.buffer},
                          counters={"iteration": "iteration", "updates": "updates", "q_history": "_q_history",
                                    "rewards_seen": "_rewards_seen"})

    def _loaded_model(self) -> None:
        if self.q_target is not None:
            self.q_target.load_state_dict(self.q.state_dict())
