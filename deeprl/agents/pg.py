"""Policy gradients and actor-critic: REINFORCE, actor-critic, A2C and PPO as one family.

They share one loss.  With Ψ_t the configured estimator (see :class:`PGConfig`)::

    actor:   θ ← θ + α ∇_θ Σ_t Ψ_t log π_θ(a_t|s_t)          (+ entropy bonus)
    critic:  φ ← φ - α ∇_φ Σ_t (V_φ(s_t) - ⊥ target_t)²       (target: G_t, r' + γ V_φ(s'), or λ-return)

and differ only where the lecture says they differ: which Ψ_t (G_t, G_t - V, r' + γ V(s'),
r' + γ V(s') - V(s), GAE), what data an update sees (complete episodes, or n steps of many envs;
n = 1 is the online actor-critic), and for PPO a clipped ratio π_θ/π_old over several epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from deeprl.agents.base import Algorithm
from deeprl.agents.persistence import Persistent
from deeprl.config import (LAYERS, MAX_ENVS, MAX_EPISODES, MAX_ROLLOUT, MAX_STEPS, RunConfig,
                           layer_weights, setting, show_bound)
from deeprl.envs import check_observation_space
from deeprl.envs.make import check_discrete_or_box_actions
from deeprl.errors import ConfigError
from deeprl.nets import ACTIVATIONS, ActorCritic, Categorical, DiagGaussian, with_mask
from deeprl.optim import grad_step, make_optimizer, set_lr, weighted_loss
from deeprl.returns import gae, reward_to_go
from deeprl.running_stats import RunningMeanStd


@dataclass(frozen=True, kw_only=True)
class PGConfig(RunConfig):
    """The policy-gradient family: one loss, with the lecture's estimators of "how good was a_t".

    ``estimator`` chooses the weight Ψ_t in  ∇_θ J ≈ Σ_t Ψ_t ∇_θ log π_θ(a_t|s_t):

    * ``reinforce``: G_t, the discounted reward to-go (Monte Carlo; needs complete episodes)
    * ``baseline``:  G_t - V_φ(s_t) (unbiased, lower variance)
    * ``q``:         r_{t+1} + γ V_φ(s_{t+1}), a learned critic's Q estimate in place of G_t
    * ``advantage``: r_{t+1} + γ V_φ(s_{t+1}) - V_φ(s_t), the advantage actor-critic
    * ``gae``:       GAE(λ), which interpolates between ``advantage`` (λ=0) and n-step returns (λ=1)
    """

    lr: float = setting(7e-4, "learning rate (one optimizer over actor and critic)", min=0.0, exclusive_min=True)
    critic_lr: float = setting(0.0, "the critic's own learning rate α_c, the actor keeping lr as α_a (0 = lr for both; "
                               "needs shared_torso=false)", min=0.0)
    optimizer: Literal["adam", "rmsprop"] = setting("adam", "optimizer")
    optim_eps: float = setting(1e-5, "optimizer epsilon", min=0.0, exclusive_min=True)
    anneal_lr: bool = setting(False, "decay the learning rate linearly to 0 over total_steps")
    gamma: float = setting(0.99, "discount factor γ", min=0.0, max=1.0)
    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = setting("gae", "the weight Ψ_t of ∇ log π")
    critic_target: Literal["bootstrap", "rollout"] = setting(
        "bootstrap", "V_φ regresses on ⊥(r' + γ V_φ(s')) or on the rollout's G_t (baseline estimator)")
    gae_lambda: float = setting(1.0, "λ of GAE (1 = n-step returns, 0 = one-step TD advantage)", min=0.0, max=1.0)
    collect: Literal["steps", "episodes"] = setting(
        "steps", "update after n_steps steps of every env, or after batch_episodes complete episodes")
    n_steps: int = setting(5, "rollout length per env between updates (collect=steps; 1 = online)", min=1, max=MAX_ROLLOUT)
    batch_episodes: int = setting(1, "complete episodes per update (collect=episodes)", min=1, max=MAX_EPISODES)
    discount_weighting: bool = setting(False, "multiply Ψ_t by γ^t as in the lecture's estimator (usually dropped)")
    normalize_advantage: bool = setting(False, "standardize Ψ within each batch")
    normalize_obs: bool = setting(False, "scale vector observations by running mean and std (clipped to ±10)")
    normalize_reward: bool = setting(False, "divide rewards by the running std of the discounted return (clipped to ±10)")
    ent_coef: float = setting(0.0, "entropy bonus coefficient", min=0.0)
    vf_coef: float = setting(0.5, "critic loss coefficient", min=0.0)
    max_grad_norm: float = setting(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    net_arch: list[int] = setting([64, 64], "hidden layers of each MLP torso", **LAYERS)
    activation: Literal["relu", "tanh"] = setting("relu", "the MLP torsos' activation (SB3's and CleanRL's PPO and A2C use tanh)")
    shared_torso: bool = setting(False, "actor and critic share one torso")
    log_std_init: float = setting(0.0, "initial log σ of Gaussian policies")

    def check_settings(self) -> None:
        super().check_settings()
        if self.estimator in ("reinforce", "baseline") and self.collect != "episodes":
            raise ConfigError(f"estimator '{self.estimator}' needs complete episodes for G_t; set collect=episodes")
        if self.critic_target == "rollout" and self.collect != "episodes":
            raise ConfigError("critic_target 'rollout' needs complete episodes for G_t; set collect=episodes")
        if self.collect == "steps" and self.n_steps * self.num_envs > MAX_ROLLOUT:
            raise ConfigError(f"n_steps {self.n_steps} x num_envs {self.num_envs} = "
                              f"{self.n_steps * self.num_envs} steps per rollout; at most "
                              f"{show_bound(MAX_ROLLOUT)} are held in memory at once: lower n_steps or num_envs")
        if self.critic_lr > 0 and self.shared_torso:
            raise ConfigError("critic_lr gives the critic its own learning rate, but with shared_torso=true actor "
                              "and critic share their torso; set shared_torso=false or critic_lr=0")

    def network_weights(self) -> tuple[int, str]:
        return (1 if self.shared_torso else 2) * layer_weights(self.net_arch), f"net_arch {self.net_arch}"


@dataclass(frozen=True, kw_only=True)
class ReinforceConfig(PGConfig):
    """REINFORCE: Monte Carlo policy gradient over complete episodes (``estimator=baseline`` adds V_φ)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = setting("reinforce", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = setting("episodes", "update after complete episodes")
    batch_episodes: int = setting(4, "complete episodes per update", min=1, max=MAX_EPISODES)
    lr: float = setting(1e-3, "learning rate", min=0.0, exclusive_min=True)
    max_grad_norm: float = setting(0.0, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = setting(100_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class ActorCriticConfig(PGConfig):
    """Advantage actor-critic as the lecture states it: batch mode over whole trajectories
    (``collect=episodes``) or online, one update per step (``collect=steps n_steps=1``)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = setting("advantage", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = setting("episodes", "batch mode (episodes) or online (steps, n_steps=1)")
    batch_episodes: int = setting(1, "complete episodes per update (batch mode)", min=1, max=MAX_EPISODES)
    lr: float = setting(1e-3, "learning rate", min=0.0, exclusive_min=True)
    total_steps: int = setting(100_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class A2CConfig(PGConfig):
    """A2C: many synchronous envs, n-step advantages, entropy bonus (Stable-Baselines3's defaults)."""

    num_envs: int = setting(8, "parallel environments", min=1, max=MAX_ENVS)
    optimizer: Literal["adam", "rmsprop"] = setting("rmsprop", "optimizer")
    total_steps: int = setting(500_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass
class Rollout:
    """What one update learns from; per-step arrays are ``(T, N)``, observations flattened to T·N.

    Complete episodes (``collect=episodes``) are laid end to end as one long env (N = 1).
    """

    obs: torch.Tensor          # (T·N, *obs_shape) s_t
    actions: torch.Tensor      # (T·N, ...) a_t as sampled (before clipping to the action bounds)
    log_probs: torch.Tensor    # (T·N,) log π_old(a_t|s_t) at collection (PPO's ratio)
    rewards: torch.Tensor      # (T, N) r_{t+1}
    terminated: torch.Tensor   # (T, N) bool
    truncated: torch.Tensor    # (T, N) bool
    ep_time: torch.Tensor      # (T, N) t within its episode (for γ^t)
    last_obs: torch.Tensor     # (N, *obs_shape) the state after the final step (bootstraps it)
    final_obs: torch.Tensor    # (K, *obs_shape) final observations of the K truncated steps
    final_index: torch.Tensor  # (K,) flat index t·N + i of those steps
    action_mask: torch.Tensor | None = None  # (T·N, A) bool: the actions valid in s_t (None: the env has no masks)


def estimate(config: PGConfig, r: Rollout, values: torch.Tensor, next_values: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Ψ, critic_target)``, both ``(T, N)`` and free of gradient (⊥), from V(s_t) and V(s'_t).

    On the CPU the arithmetic runs in NumPy on zero-copy views: the loops over t are dozens of
    tiny operations, each far cheaper in NumPy than a torch dispatch.
    """
    c = config
    cpu = r.rewards.device.type == "cpu"
    arr = (lambda t: t.detach().numpy()) if cpu else (lambda t: t.detach())  # noqa: E731
    rew, term, trunc, v, nv = arr(r.rewards), arr(r.terminated), arr(r.truncated), arr(values), arr(next_values)
    dones = term | trunc
    td_target = rew + c.gamma * nv * ~term                            # r' + γ V(s'), 0 after termination
    needs_G = c.estimator in ("reinforce", "baseline") or c.critic_target == "rollout"
    G = None
    if needs_G:  # with a critic, a time-limit cut continues from V(final observation), not from 0
        with_critic = c.estimator != "reinforce" or c.critic_target == "rollout"
        G = reward_to_go(rew, dones, c.gamma, bootstrap=nv if with_critic else None, truncated=trunc)
    if c.estimator == "gae":
        psi, lambda_return = gae(rew, v, nv, term, trunc, c.gamma, c.gae_lambda)
    else:
        lambda_return = td_target
        psi = {"reinforce": G, "baseline": G - v if G is not None else None, "q": td_target,
               "advantage": td_target - v}[c.estimator]
    target = G if c.critic_target == "rollout" else lambda_return
    to = (lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))) if cpu else (lambda a: a)  # noqa: E731
    return to(psi), to(target)


class PolicyGradient(Algorithm):
    """What REINFORCE, actor-critic, A2C and PPO share: acting, collecting rollouts, V_φ, the
    estimators Ψ_t, persistence.  :meth:`update` is the lecture's one-step policy gradient; PPO
    replaces it with its own."""

    config: PGConfig
    metrics = ("grad/norm", "value/explained_variance", "policy/std")

    def _check_spaces(self) -> None:
        check_observation_space(self.observation_space, self.algo)
        obs = self.observation_space
        if self.config.normalize_obs and not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
            raise ConfigError(f"normalize_obs works on vector observations; this env observes {obs}. "
                              "Set normalize_obs=false")
        check_discrete_or_box_actions(self.action_space, self.algo, factorized=True)

    def _build(self) -> None:
        c = self.config
        self.net = ActorCritic(self.observation_space, self.action_space, c.net_arch, shared=c.shared_torso,
                               log_std_init=c.log_std_init, activation=ACTIVATIONS[c.activation]).to(self.device)
        # α_a for θ and α_c for φ, as the lecture's actor-critic writes them (one rate unless critic_lr is set)
        if c.critic_lr == 0:
            self.lrs, params = [c.lr], self.net.parameters()
        else:
            self.lrs = [c.lr, c.critic_lr]
            params = [{"params": self.net.actor_parameters(), "lr": c.lr},
                      {"params": self.net.critic_parameters(), "lr": c.critic_lr}]
        self.optimizer = make_optimizer(params, c.optimizer, lr=c.lr, eps=c.optim_eps)
        self.discrete = not isinstance(self.action_space, gym.spaces.Box)  # Discrete, MultiDiscrete, MultiBinary
        self.masks_actions = isinstance(self.action_space, gym.spaces.Discrete)  # masked actions get the min logit
        if not self.discrete:
            self._low, self._high = self.action_space.low, self.action_space.high
        self.obs_rms = RunningMeanStd(self.observation_space.shape) if c.normalize_obs else None
        self.ret_rms = RunningMeanStd(()) if c.normalize_reward else None
        self._discounted = np.zeros(c.num_envs)  # running Σ γ^k r per env, for normalize_reward
        self.updates = 0        # gradient steps (as in DQN)
        self.rollouts = 0       # collect-and-update iterations
        self._ep_time = np.zeros(c.num_envs, dtype=np.int64)

    # --------------------------------------------------------------------------------- acting
    @torch.inference_mode()
    def _sample(self, obs: np.ndarray, deterministic: bool, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Actions a ~ π_θ(·|s) (or its mode) for a batch, over the actions ``mask`` allows where
        there is one, and their log-probabilities."""
        dist = with_mask(self.net.policy(torch.as_tensor(obs, device=self.device)), mask)
        actions = dist.mode() if deterministic else dist.sample()
        return actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy()

    def _to_env(self, actions: np.ndarray) -> np.ndarray:
        """Gaussian samples are unbounded; the env gets them clipped to its bounds."""
        if self.discrete:
            if isinstance(self.action_space, gym.spaces.Discrete):
                return actions
            if isinstance(self.action_space, gym.spaces.MultiDiscrete):  # codes count from each slot's start
                actions = actions + self.action_space.start
            return actions.astype(self.action_space.dtype, copy=False)  # MultiBinary bits are sampled as floats
        return np.clip(actions, self._low, self._high)

    def _act(self, obs: np.ndarray, deterministic: bool, action_mask: np.ndarray | None = None) -> np.ndarray:
        return self._to_env(self._sample(self._normalize(obs), deterministic, action_mask)[0])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the networks see them; training observations update the statistics."""
        if self.obs_rms is None:
            return obs
        self.obs_rms.update(obs)
        return self._normalize(obs)

    def _scale_rewards(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """``normalize_reward``: r / std(R) with R the running discounted return of each env
        (as SB3's VecNormalize), so that value targets keep a similar scale across tasks."""
        if self.ret_rms is None:
            return reward
        self._discounted = self._discounted * self.config.gamma + reward
        self.ret_rms.update(self._discounted)
        self._discounted[done] = 0.0
        return self.ret_rms.scale(reward)

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_rms is None:
            return obs
        return self.obs_rms.normalize(obs)

    # --------------------------------------------------------------------------------- collecting
    def collect(self, episodes: int | None = None) -> Rollout:
        """The data of one update, as the config says (``collect``), or ``episodes`` complete
        episodes whatever the config (the variance study draws batches this way)."""
        if self.envs is None:
            self._open_envs()
        if self._obs is None:
            self._obs = self.envs.reset()
        if episodes is not None:
            return self._collect_episodes(episodes)
        if self.config.collect == "episodes":
            return self._collect_episodes(self.config.batch_episodes)
        return self._collect_steps()

    def _collect_steps(self) -> Rollout:
        """``n_steps`` steps of every env (A2C, PPO; n_steps = 1 is the online actor-critic)."""
        T, N = self.config.n_steps, self.config.num_envs
        obs = self._obs
        obs_buf = np.empty((T, N, *obs.shape[1:]), dtype=np.float32 if self.obs_rms else obs.dtype)
        act_buf: list[np.ndarray] = []
        logp_buf = np.empty((T, N), np.float32)
        rew, term, trunc = np.empty((T, N), np.float32), np.empty((T, N), bool), np.empty((T, N), bool)
        ep_time = np.empty((T, N), np.int64)
        finals: list[tuple[int, np.ndarray]] = []
        masks: list[np.ndarray | None] = []                                  # of each s_t (None: no masks)
        for t in range(T):
            seen = self._observe(obs)
            masks.append(self.envs.action_mask)
            actions, logp_buf[t] = self._sample(seen, False, masks[-1])      # a ~ π_θ(a|s)
            step = self._env_step(self._to_env(actions))                     # s', r' ~ p(s', r'|s, a)
            obs_buf[t] = seen
            act_buf.append(actions)
            rew[t], term[t], trunc[t], ep_time[t] = step.reward, step.terminated, step.truncated, self._ep_time
            done = step.terminated | step.truncated
            self._ep_time += 1
            if done.any():
                self._ep_time[done] = 0
                for i in np.flatnonzero(step.truncated):
                    finals.append((t * N + int(i), self._normalize(step.next_obs[i])))
            if self.ret_rms is not None:
                rew[t] = self._scale_rewards(step.reward, done)
            obs = step.obs                                                   # s ← s'
        actions = np.stack(act_buf).reshape(T * N, *act_buf[0].shape[1:])
        return self._rollout(obs_buf.reshape(T * N, *obs.shape[1:]), actions, logp_buf.reshape(-1), rew, term, trunc,
                             ep_time, self._normalize(obs), finals, masks)

    def _collect_episodes(self, count: int) -> Rollout:
        """At least ``count`` complete episodes τ ~ p(τ|θ), laid end to end.

        Steps of episodes still running at update time are not used (their G_t is unknown);
        those envs carry on, and their next episode segment starts from the current state.
        """
        N = self.config.num_envs
        running: list[list[tuple]] = [[] for _ in range(N)]
        done_eps: list[list[tuple]] = []
        finals: list[np.ndarray | None] = []
        obs = self._obs
        while len(done_eps) < count:
            seen, mask = self._observe(obs), self.envs.action_mask
            actions, log_probs = self._sample(seen, False, mask)
            step = self._env_step(self._to_env(actions))
            done = step.terminated | step.truncated
            reward = self._scale_rewards(step.reward, done)
            for i in range(N):
                running[i].append((seen[i], actions[i], log_probs[i], reward[i], step.terminated[i],
                                   step.truncated[i], self._ep_time[i], None if mask is None else mask[i]))
                if step.terminated[i] or step.truncated[i]:
                    done_eps.append(running[i])
                    finals.append(self._normalize(step.next_obs[i]) if step.truncated[i] else None)
                    running[i] = []
            self._ep_time = np.where(done, 0, self._ep_time + 1)
            obs = step.obs
        steps = [s for ep in done_eps for s in ep]
        T = len(steps)
        ends = np.cumsum([len(ep) for ep in done_eps]) - 1
        final_list = [(int(e), f) for e, f in zip(ends, finals) if f is not None]
        col = list(zip(*steps))
        return self._rollout(np.stack(col[0]), np.stack(col[1]), np.asarray(col[2], np.float32),
                             np.asarray(col[3], np.float32).reshape(T, 1), np.asarray(col[4], bool).reshape(T, 1),
                             np.asarray(col[5], bool).reshape(T, 1), np.asarray(col[6], np.int64).reshape(T, 1),
                             np.zeros((1, *obs.shape[1:]), np.float32 if self.obs_rms else obs.dtype), final_list,
                             col[7])

    def _rollout(self, obs, actions, log_probs, rew, term, trunc, ep_time, last_obs, finals, masks) -> Rollout:
        """The collected arrays as tensors (zero-copy on the CPU)."""
        to = torch.from_numpy if self.device.type == "cpu" else (  # noqa: E731
            lambda a: torch.as_tensor(a, device=self.device))
        shape = tuple(self.observation_space.shape or ())
        final_obs = np.stack([f for _, f in finals]) if finals else np.zeros((0, *shape), obs.dtype)
        return Rollout(obs=to(obs), actions=to(actions), log_probs=to(log_probs), rewards=to(rew),
                       terminated=to(term), truncated=to(trunc), ep_time=to(ep_time), last_obs=to(last_obs),
                       final_obs=to(final_obs), final_index=to(np.asarray([i for i, _ in finals], np.int64)),
                       action_mask=None if masks[0] is None else to(np.stack(masks).reshape(len(obs), -1)))

    # --------------------------------------------------------------------------------- learning
    def values(self, r: Rollout, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """V_φ(s_t) and ⊥V_φ(s'_t), both ``(T, N)``: one forward pass over the states, the last
        state and the final states of truncated steps (which bootstrap from their own)."""
        T, N = r.rewards.shape
        M = T * N
        with torch.set_grad_enabled(grad):
            v_all = self.net.value(torch.cat([r.obs, r.last_obs, r.final_obs]))
        flat_next = torch.cat([v_all[N:M], v_all[M:M + N]]).detach().clone()  # V(s_{t+1})
        if len(r.final_index):
            flat_next[r.final_index] = v_all[M + N:].detach()
        return v_all[:M].view(T, N), flat_next.view(T, N)

    def advantages(self, r: Rollout, values: torch.Tensor, next_values: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Ψ, critic target)`` flattened to ``(T·N,)``, without gradient; Ψ weighted by γ^t
        with ``discount_weighting``."""
        psi, target = estimate(self.config, r, values, next_values)
        if self.config.discount_weighting:
            psi = psi * self.config.gamma ** r.ep_time.to(psi.dtype)
        return psi.reshape(-1), target.reshape(-1)

    @property
    def uses_critic(self) -> bool:
        return self.config.estimator != "reinforce"

    @property
    def loss_scales(self) -> dict[str, float]:
        """The weight of each term of :meth:`losses`: the policy gradient's 1, β, c_v."""
        c = self.config
        return {"actor": 1.0, "entropy": c.ent_coef, **({"critic": c.vf_coef} if self.uses_critic else {})}

    def losses(self, dist: Categorical | DiagGaussian, v: torch.Tensor | None, actions: torch.Tensor,
               psi: torch.Tensor, target: torch.Tensor, **old: torch.Tensor) -> dict[str, torch.Tensor]:
        """The lecture's loss, one term per entry, weighted by :attr:`loss_scales`::

            actor    -Ψ_t log π_θ(a_t|s_t)
            entropy  -H(π_θ(·|s_t))             (a loss: lower is more exploration, SB3's sign)
            critic   (V_φ(s_t) - ⊥target_t)²     (with a critic)

        ``old`` holds what the rollout recorded (PPO's ``old_log_probs``, ``old_values``).
        """
        if self.config.normalize_advantage and psi.numel() > 1:
            psi = (psi - psi.mean()) / (psi.std() + 1e-8)
        terms = {"actor": self.actor_loss(dist, actions, psi, **old), "entropy": -dist.entropy().mean()}
        with torch.no_grad():
            if isinstance(dist, DiagGaussian):
                self._record({"policy/std": dist.log_std.exp().mean()})
            if v is not None and target.numel() > 1:  # 1 - Var(target - V) / Var(target), SB3's explained_variance
                self._record({"value/explained_variance": 1 - (target - v).var() / target.var().clamp_min(1e-8)})
        if v is not None:
            terms["critic"] = self.critic_loss(v, target, **old)
        return terms

    def actor_loss(self, dist: Categorical | DiagGaussian, actions: torch.Tensor, psi: torch.Tensor,
                   **old: torch.Tensor) -> torch.Tensor:
        """-Ψ_t log π_θ(a_t|s_t), averaged: its gradient is the policy gradient estimate."""
        return -(psi * dist.log_prob(actions)).mean()

    def critic_loss(self, v: torch.Tensor, target: torch.Tensor, **old: torch.Tensor) -> torch.Tensor:
        """(V_φ(s_t) - ⊥target_t)², averaged (the target carries no gradient)."""
        return (v - target).pow(2).mean()

    def _step_on(self, terms: dict[str, torch.Tensor]) -> None:
        """One gradient step on the weighted sum of ``terms``; each term is logged as ``loss/<name>``."""
        grad = grad_step(self.optimizer, weighted_loss(terms, self.loss_scales), self.config.max_grad_norm)
        self.updates += 1
        self._record({f"loss/{k}": v for k, v in terms.items()}, **{"grad/norm": grad})

    def _begin_update(self, r: Rollout, grad: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The learning rate for this update; then ``(V(s_t) or None without a critic, Ψ, target)``,
        all ``(T·N,)``; V keeps its graph with ``grad``."""
        c = self.config
        if c.anneal_lr:
            set_lr(self.optimizer, [lr * (1.0 - self.progress()) for lr in self.lrs])
        if not self.uses_critic:
            zeros = torch.zeros_like(r.rewards)
            return None, *self.advantages(r, zeros, zeros)
        values, next_values = self.values(r, grad=grad)
        return values.reshape(-1), *self.advantages(r, values, next_values)

    def update(self, r: Rollout) -> None:
        """One gradient step on the whole rollout."""
        values, psi, target = self._begin_update(r, grad=True)
        self._step_on(self.losses(with_mask(self.net.policy(r.obs), r.action_mask), values, r.actions, psi, target))
        self.rollouts += 1

    def _iteration(self, target_steps: int) -> None:
        self.update(self.collect())

    # --------------------------------------------------------------------------------- persistence
    def _persistent(self) -> Persistent:
        # the observation statistics are part of the policy: it sees normalized inputs
        return Persistent(model={"net": self.net, "obs_rms": self.obs_rms}, training={"ret_rms": self.ret_rms},
                          optimizers={"optimizer": self.optimizer},
                          counters={"updates": "updates", "rollouts": "rollouts", "episode_time": "_ep_time",
                                    "discounted_return": "_discounted"})


class REINFORCE(PolicyGradient):
    """Monte Carlo policy gradient; ``estimator="baseline"`` subtracts a learned V_φ(s_t)."""

    algo = "reinforce"
    config_cls = ReinforceConfig


class ActorCriticAgent(PolicyGradient):
    """The lecture's advantage actor-critic, in batch mode or online (``collect=steps n_steps=1``)."""

    algo = "actor_critic"
    config_cls = ActorCriticConfig


class A2C(PolicyGradient):
    """Advantage actor-critic with many synchronous environments (Mnih et al. 2016, synchronous)."""

    algo = "a2c"
    config_cls = A2CConfig
