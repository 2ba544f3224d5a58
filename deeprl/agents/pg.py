"""Policy gradients and actor-critic: REINFORCE, actor-critic, A2C and PPO as one family.

They share one loss.  With Ψ_t the configured estimator (see :class:`~deeprl.config.PGConfig`)::

    actor:   θ ← θ + α ∇_θ Σ_t Ψ_t log π_θ(a_t|s_t)          (+ entropy bonus)
    critic:  φ ← φ - α ∇_φ Σ_t (V_φ(s_t) - ⊥ target_t)²       (target: G_t, r' + γ V_φ(s'), or λ-return)

and differ only where the lecture says they differ: which Ψ_t (G_t, G_t - V, r' + γ V(s'),
r' + γ V(s') - V(s), GAE), what data an update sees (complete episodes, or n steps of many envs;
n = 1 is the online actor-critic), and for PPO a clipped ratio π_θ/π_old over several epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from deeprl.agents.base import Algorithm
from deeprl.checkpoint import flatten_state, unflatten_state
from deeprl.config import A2CConfig, ActorCriticConfig, PGConfig, PPOConfig, ReinforceConfig
from deeprl.envs import check_observation_space
from deeprl.envs.make import check_discrete_or_box_actions
from deeprl.errors import ConfigError
from deeprl.nets import ActorCritic
from deeprl.numpy_ac import NumpyActorCritic, pg_loss_grad
from deeprl.optim import FlatOptimizer
from deeprl.returns import gae, reward_to_go


class RunningMeanStd:
    """Running mean and variance (parallel update of Chan et al.): of observations for
    ``normalize_obs`` (inputs scaled to zero mean and unit variance, clipped to ±10), and of the
    discounted return for ``normalize_reward``."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4
        self.clip = clip

    def update(self, batch: np.ndarray) -> None:
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta ** 2 * self.count * b_count / total
        self.var, self.count = m2 / total, total

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.scale(obs - self.mean)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """``x / std``, clipped, without centring (rewards keep their sign)."""
        return np.clip(x / np.sqrt(self.var + 1e-8), -self.clip, self.clip).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "var": self.var, "count": np.array([self.count])}

    def load(self, state: dict[str, np.ndarray]) -> None:
        self.mean, self.var = state["mean"].astype(np.float64), state["var"].astype(np.float64)
        self.count = float(state["count"][0])


@dataclass
class Rollout:
    """What one update learns from; per-step arrays are ``(T, N)``, observations flattened to T·N.

    Complete episodes (``collect=episodes``) are laid end to end as one long env (N = 1).
    """

    obs: torch.Tensor          # (T·N, *obs_shape) s_t
    actions: torch.Tensor      # (T·N, ...) a_t as sampled (before clipping to the action bounds)
    log_probs: torch.Tensor | None  # (T·N,) log π_old(a_t|s_t) at collection (PPO's ratio); None: unused
    rewards: torch.Tensor      # (T, N) r_{t+1}
    terminated: torch.Tensor   # (T, N) bool
    truncated: torch.Tensor    # (T, N) bool
    ep_time: torch.Tensor      # (T, N) t within its episode (for γ^t)
    last_obs: torch.Tensor     # (N, *obs_shape) the state after the final step (bootstraps it)
    final_obs: torch.Tensor    # (K, *obs_shape) final observations of the K truncated steps
    final_index: torch.Tensor  # (K,) flat index t·N + i of those steps


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
    """Shared by REINFORCE, ActorCritic, A2C and PPO; the config decides which one it is."""

    config: PGConfig
    metric_keys = ["charts/episode_return", "charts/episodes", "charts/sps", "loss/actor", "loss/critic",
                   "loss/entropy", "policy/approx_kl", "policy/clip_fraction", "grad/norm",
                   "eval/mean_return", "eval/std_return"]

    def _check_spaces(self) -> None:
        check_observation_space(self.observation_space, self.algo)
        obs = self.observation_space
        if self.config.normalize_obs and not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
            raise ConfigError(f"normalize_obs works on vector observations; this env observes {obs}. "
                              "Set normalize_obs=false")
        check_discrete_or_box_actions(self.action_space, self.algo)

    def _build(self) -> None:
        c = self.config
        self.net = ActorCritic(self.observation_space, self.action_space, c.net_arch, shared=c.shared_torso,
                               log_std_init=c.log_std_init).to(self.device)
        self.optimizer = FlatOptimizer(self.net.parameters(), c.optimizer, lr=c.lr, eps=c.optim_eps)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        if not self.discrete:
            self._low, self._high = self.action_space.low, self.action_space.high
        # small MLPs on the CPU act and learn through NumPy views of the same parameters (numpy_ac.py)
        self._np_net = (NumpyActorCritic(self.net, self.optimizer.grad_of()) if NumpyActorCritic.supports(self.net)
                        else None)
        self.obs_rms = RunningMeanStd(self.observation_space.shape) if c.normalize_obs else None
        self.ret_rms = RunningMeanStd(()) if c.normalize_reward else None
        self._discounted = np.zeros(c.num_envs)  # running Σ γ^k r per env, for normalize_reward
        self.updates = 0        # gradient steps (as in DQN)
        self.rollouts = 0       # collect-and-update iterations
        self._ep_time = np.zeros(c.num_envs, dtype=np.int64)
        self._stats: dict[str, list[float]] = {}

    # --------------------------------------------------------------------------------- acting
    def _sample(self, obs: np.ndarray, deterministic: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions a ~ π_θ(·|s) (or its mode) for a batch, and their log-probabilities.

        The NumPy path returns ``None`` for the latter: θ does not change while a rollout is
        collected, so :meth:`_rollout` computes log π_old for all of it in one batched pass.
        """
        if self._np_net is not None:
            return self._np_net.sample(obs, self.rng, deterministic), None
        with torch.inference_mode():
            dist = self.net.policy(torch.as_tensor(obs, device=self.device))
            actions = dist.mode() if deterministic else dist.sample()
            log_probs = dist.log_prob(actions)
        return actions.cpu().numpy(), log_probs.cpu().numpy()

    def _to_env(self, actions: np.ndarray) -> np.ndarray:
        """Gaussian samples are unbounded; the env gets them clipped to its bounds."""
        return actions if self.discrete else np.clip(actions, self._low, self._high)

    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self._to_env(self._sample(self._normalize(obs), deterministic)[0])

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
        for t in range(T):
            seen = self._observe(obs)
            actions, log_probs = self._sample(seen, False)                   # a ~ π_θ(a|s)
            step = self.envs.step(self._to_env(actions))                     # s', r' ~ p(s', r'|s, a)
            obs_buf[t] = seen
            if log_probs is not None:
                logp_buf[t] = log_probs
            act_buf.append(actions)
            rew[t], term[t], trunc[t], ep_time[t] = step.reward, step.terminated, step.truncated, self._ep_time
            done = step.terminated | step.truncated
            self._ep_time += 1
            if done.any():
                self._ep_time[done] = 0
                for i in np.flatnonzero(step.truncated):
                    finals.append((t * N + int(i), self._normalize(step.next_obs[i])))
                self._record_episodes(step.episodes)
            if self.ret_rms is not None:
                rew[t] = self._scale_rewards(step.reward, done)
            obs = step.obs                                                   # s ← s'
        self._obs = obs
        self.num_timesteps += T * N
        actions = np.stack(act_buf).reshape(T * N, *act_buf[0].shape[1:])
        return self._rollout(obs_buf.reshape(T * N, *obs.shape[1:]), actions,
                             None if self._np_net is not None else logp_buf.reshape(-1), rew, term, trunc, ep_time,
                             self._normalize(obs), finals)

    def _collect_episodes(self) -> Rollout:
        """At least ``batch_episodes`` complete episodes τ ~ p(τ|θ), laid end to end.

        Steps of episodes still running at update time are not used (their G_t is unknown);
        those envs carry on, and their next episode segment starts from the current state.
        """
        c, N = self.config, self.config.num_envs
        running: list[list[tuple]] = [[] for _ in range(N)]
        done_eps: list[list[tuple]] = []
        finals: list[np.ndarray | None] = []
        obs = self._obs
        while len(done_eps) < c.batch_episodes:
            seen = self._observe(obs)
            actions, log_probs = self._sample(seen, False)
            step = self.envs.step(self._to_env(actions))
            done = step.terminated | step.truncated
            reward = self._scale_rewards(step.reward, done)
            self.num_timesteps += N
            for i in range(N):
                logp = 0.0 if log_probs is None else log_probs[i]  # None: _rollout computes them
                running[i].append((seen[i], actions[i], logp, reward[i], step.terminated[i], step.truncated[i],
                                   self._ep_time[i]))
                if step.terminated[i] or step.truncated[i]:
                    done_eps.append(running[i])
                    finals.append(self._normalize(step.next_obs[i]) if step.truncated[i] else None)
                    running[i] = []
            self._ep_time = np.where(done, 0, self._ep_time + 1)
            self._record_episodes(step.episodes)
            obs = step.obs
        self._obs = obs
        steps = [s for ep in done_eps for s in ep]
        T = len(steps)
        ends = np.cumsum([len(ep) for ep in done_eps]) - 1
        final_list = [(int(e), f) for e, f in zip(ends, finals) if f is not None]
        col = list(zip(*steps))
        return self._rollout(np.stack(col[0]), np.stack(col[1]),
                             None if self._np_net is not None else np.asarray(col[2], np.float32),
                             np.asarray(col[3], np.float32).reshape(T, 1), np.asarray(col[4], bool).reshape(T, 1),
                             np.asarray(col[5], bool).reshape(T, 1), np.asarray(col[6], np.int64).reshape(T, 1),
                             np.zeros((1, *obs.shape[1:]), np.float32 if self.obs_rms else obs.dtype), final_list)

    def _rollout(self, obs, actions, log_probs, rew, term, trunc, ep_time, last_obs, finals) -> Rollout:
        """The collected arrays as tensors (zero-copy on the CPU); ``log_probs=None``: compute them
        here, if the update will use them (PPO's ratio, the KL and clip statistics of several epochs)."""
        c = self.config
        if log_probs is None and c.uses_old_log_probs:
            log_probs = self._np_net.log_prob(obs, actions)
        to = torch.from_numpy if self.device.type == "cpu" else (  # noqa: E731
            lambda a: torch.as_tensor(a, device=self.device))
        shape = tuple(self.observation_space.shape or ())
        final_obs = np.stack([f for _, f in finals]) if finals else np.zeros((0, *shape), obs.dtype)
        return Rollout(obs=to(obs), actions=to(actions), log_probs=None if log_probs is None else to(log_probs),
                       rewards=to(rew), terminated=to(term), truncated=to(trunc), ep_time=to(ep_time),
                       last_obs=to(last_obs), final_obs=to(final_obs),
                       final_index=to(np.asarray([i for i, _ in finals], np.int64)))

    # --------------------------------------------------------------------------------- learning
    def _values(self, r: Rollout, grad: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """V_φ(s_t) and V_φ(s'_t) as ``(T, N)``: one forward over s_t, the last state and final states.

        The third item is what the backward pass of V_φ(s_t) needs when ``grad``: on the NumPy
        path the activations of those rows, else ``None`` (autograd keeps its own).
        """
        T, N = r.rewards.shape
        M = T * N
        if self._np_net is not None:  # the same in NumPy
            v_all, acts = self._np_net.value(np.concatenate([r.obs.numpy(), r.last_obs.numpy(), r.final_obs.numpy()]))
            next_flat = np.concatenate([v_all[N:M], v_all[M:M + N]])
            next_flat[r.final_index.numpy()] = v_all[M + N:]
            return (torch.from_numpy(v_all[:M].reshape(T, N)), torch.from_numpy(next_flat.reshape(T, N)),
                    [a[:M] for a in acts] if grad else None)
        with torch.set_grad_enabled(grad):
            v_all = self.net.value(torch.cat([r.obs, r.last_obs, r.final_obs]))
        values = v_all[:T * N].view(T, N)
        flat_next = torch.cat([v_all[N:T * N], v_all[T * N:T * N + N]]).detach().clone()  # V(s_{t+1})
        if len(r.final_index):  # truncated steps bootstrap from their own final observation
            flat_next[r.final_index] = v_all[T * N + N:].detach()
        return values, flat_next.view(T, N), None

    def update(self, r: Rollout) -> None:
        c = self.config
        T, N = r.rewards.shape
        if c.anneal_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = c.lr * (1.0 - self.progress())
        use_critic = c.estimator != "reinforce"
        single_pass = c.n_epochs == 1 and c.minibatch_size == 0 and c.clip_range == 0
        value_acts = None
        if use_critic:
            values, next_values, value_acts = self._values(r, grad=single_pass)
        else:
            values = next_values = torch.zeros_like(r.rewards)
        psi, target = estimate(c, r, values, next_values)
        if c.discount_weighting:
            psi = psi * c.gamma ** r.ep_time.to(psi.dtype)
        psi, target = psi.reshape(-1), target.reshape(-1)
        old_values = values.detach().reshape(-1)
        M = T * N
        for _ in range(c.n_epochs):
            order = torch.randperm(M, device=self.device) if c.minibatch_size else None
            size = c.minibatch_size or M
            for start in range(0, M, size):
                idx = order[start:start + size] if order is not None else slice(None)
                if self._np_net is not None:
                    stop = self._step_numpy(r, idx, psi, target, old_values, use_critic, value_acts)
                    if stop:
                        break
                    continue
                if single_pass:
                    v = values.reshape(-1) if use_critic else None
                    dist = self.net.policy(r.obs)
                else:
                    dist, v = self.net(r.obs[idx])
                    v = v if use_critic else None
                old_log_probs = None if r.log_probs is None else r.log_probs[idx]
                stop = self._step(dist, v, r.actions[idx], old_log_probs, psi[idx], target[idx], old_values[idx])
                if stop:
                    break
            else:
                continue
            break
        self.rollouts += 1

    def _step_numpy(self, r: Rollout, idx: Any, psi: torch.Tensor, target: torch.Tensor, old_values: torch.Tensor,
                    use_critic: bool, value_acts: list[np.ndarray] | None) -> bool:
        """:meth:`_step` on the NumPy path (``numpy_ac.py``): the same loss, gradient and statistics.

        ``value_acts``: the critic's activations from :meth:`_values` when one pass over the
        whole rollout is the update (V(s_t) is then ``old_values``); else V is computed here."""
        c, net = self.config, self._np_net
        rows = idx.numpy() if isinstance(idx, torch.Tensor) else idx
        obs = r.obs.numpy()[rows]
        out, policy_acts = net.policy(obs)
        v = None
        if value_acts is not None:  # single pass: rows is the whole rollout
            v = old_values.numpy()
        elif use_critic:
            v, value_acts = net.value(obs)
        old_log_probs = None if r.log_probs is None else r.log_probs.numpy()[rows]
        g_out, g_log_std, g_v, stats = pg_loss_grad(
            c, net.discrete, out, None if net.discrete else net.log_std, v, r.actions.numpy()[rows], old_log_probs,
            psi.numpy()[rows], target.numpy()[rows], old_values.numpy()[rows])
        self.optimizer.zero_grad()
        net.backward_policy(policy_acts, g_out, g_log_std)
        if g_v is not None:
            net.backward_value(value_acts, g_v)
        grad_norm = self.optimizer.clip_grad_norm(c.max_grad_norm if c.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.updates += 1
        stats["grad/norm"] = float(grad_norm)
        for key, val in stats.items():
            self._stats.setdefault(key, []).append(val)
        return c.target_kl > 0 and stats.get("policy/approx_kl", 0.0) > 1.5 * c.target_kl

    def _step(self, dist, v, actions, old_log_probs, psi, target, old_values) -> bool:
        """One gradient step; returns True when PPO's KL guard says to stop the epochs."""
        c = self.config
        if c.normalize_advantage and psi.numel() > 1:
            psi = (psi - psi.mean()) / (psi.std() + 1e-8)
        log_probs = dist.log_prob(actions)
        entropy = dist.entropy().mean()
        log_ratio = log_probs - old_log_probs if c.uses_old_log_probs else None
        if c.clip_range > 0:  # PPO: pessimistic bound on the surrogate π_θ/π_old · Ψ
            ratio = log_ratio.exp()
            actor_loss = -torch.min(ratio * psi, ratio.clamp(1 - c.clip_range, 1 + c.clip_range) * psi).mean()
        else:  # the policy gradient: -Ψ_t log π_θ(a_t|s_t)
            actor_loss = -(psi * log_probs).mean()
        loss = actor_loss - c.ent_coef * entropy
        critic_loss = torch.zeros((), device=self.device)
        if v is not None:
            if c.clip_range_vf > 0:
                v = old_values + (v - old_values).clamp(-c.clip_range_vf, c.clip_range_vf)
            critic_loss = (v - target).pow(2).mean()
            loss = loss + c.vf_coef * critic_loss
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = self.optimizer.clip_grad_norm(c.max_grad_norm if c.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.updates += 1
        approx_kl = clip_frac = None
        if c.uses_old_log_probs:  # only off-policy epochs move π away from π_old
            with torch.no_grad():
                approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()  # low-variance KL(π_old || π_θ) estimate
                if c.clip_range > 0:
                    clip_frac = ((log_ratio.exp() - 1).abs() > c.clip_range).float().mean()
        for key, val in (("loss/actor", actor_loss), ("loss/critic", critic_loss if v is not None else None),
                         ("loss/entropy", entropy), ("policy/approx_kl", approx_kl),
                         ("policy/clip_fraction", clip_frac), ("grad/norm", grad_norm)):
            if val is not None:
                self._stats.setdefault(key, []).append(val.detach())
        return c.target_kl > 0 and approx_kl is not None and approx_kl.item() > 1.5 * c.target_kl

    def _train(self, target_steps: int) -> None:
        c = self.config
        collect = self._collect_episodes if c.collect == "episodes" else self._collect_steps
        while self.num_timesteps < target_steps and not self._stop:
            before = self.num_timesteps
            rollout = collect()
            self.update(rollout)
            self._progress.update(self.num_timesteps - before)
            if self._interval_due(target_steps):
                stats = {k: torch.stack(v).mean().item() if isinstance(v[0], torch.Tensor) else float(np.mean(v))
                         for k, v in self._stats.items()}
                self._stats = {}
                self._close_interval(stats)

    # --------------------------------------------------------------------------------- persistence
    def _model_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        if self.obs_rms is not None:  # the statistics are part of the policy: it sees normalized inputs
            tensors.update({f"obs_rms.{k}": torch.from_numpy(np.atleast_1d(v).copy())
                            for k, v in self.obs_rms.state().items()})
        return tensors

    def _load_model_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        if self.obs_rms is not None:
            self.obs_rms.load({k[8:]: v.numpy() for k, v in tensors.items() if k.startswith("obs_rms.")})

    def _checkpoint(self) -> tuple[dict, dict, dict]:
        opt_tensors, opt_skeleton = flatten_state(self.optimizer.state_dict(), "opt")
        return ({"model": self._model_tensors(), "optimizer": opt_tensors}, {},
                {"optimizer": opt_skeleton, "updates": self.updates, "rollouts": self.rollouts,
                 "ep_time": self._ep_time.tolist(), "discounted": self._discounted.tolist(),
                 "ret_rms": None if self.ret_rms is None else {k: np.asarray(v).tolist()
                                                               for k, v in self.ret_rms.state().items()}})

    def _restore(self, state: dict[str, Any], loader: Any) -> None:
        self._load_model_tensors(loader("model"))
        self.optimizer.load_state_dict(unflatten_state(state["optimizer"], loader("optimizer")))
        self.updates, self.rollouts = int(state["updates"]), int(state["rollouts"])
        self._ep_time = np.asarray(state["ep_time"], dtype=np.int64)
        self._discounted = np.asarray(state.get("discounted", np.zeros(self.config.num_envs)), dtype=np.float64)
        if self.ret_rms is not None and state.get("ret_rms") is not None:
            self.ret_rms.load({k: np.asarray(v, dtype=np.float64) for k, v in state["ret_rms"].items()})


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


class PPO(PolicyGradient):
    """Proximal policy optimization with the clipped surrogate (Schulman et al. 2017)."""

    algo = "ppo"
    config_cls = PPOConfig
