"""World models: learn the environment, then train the agent in its dreams (the lecture's third part).

The complete loop (lecture: "Complete algorithm"), one iteration of :meth:`WorldModel._iteration`::

    1. collect    act in the env with π_θ(a|z), z = mean of q_ψ(z|s)       -> replay of (s, a, r', s')
    2. fit VAE    maximize the ELBO  E_q[log p_ψ(s|z)] - β KL(q_ψ(z|s) || N(0, I))
    3. fit model  z ~ q_ψ(z|s), z' ~ q_ψ(z'|s') (⊥: the encoder is not trained here);
                  maximize log p_ψ(z'|z,a) + log p_ψ(r'|z') + log p_ψ(c|z')
    4. dream      from z ~ q_ψ(z|s) of real states, T steps of  a ~ π_θ(a|z), z' ~ p_ψ(z'|z,a),
                  r' = E p_ψ(r'|z'), and after every step the online advantage actor-critic update:
                  Φ ← Φ - α_c ∇_Φ (V_Φ(z) - ⊥(r' + γ c' V_Φ(z')))²
                  θ ← θ + α_a ⊥A_Φ(z, r', z') ∇_θ log π_θ(a|z),   A = r' + γ c' V_Φ(z') - V_Φ(z)

Beyond the lecture: episodes end, so a continue model c' = P(continue|z') discounts the
bootstrap, and a dream's later steps count with the probability that it is still running.  The
world model is frozen while dreaming: no gradient of the actor-critic losses reaches ψ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from deeprl.agents.base import Algorithm
from deeprl.agents.persistence import Persistent
from deeprl.buffers import ReplayBuffer
from deeprl.config import (LAYERS, MAX_BATCH, MAX_BUFFER, MAX_HORIZON, MAX_REPEATS, MAX_STEPS, MAX_WIDTH, RunConfig,
                           layer_weights, setting)
from deeprl.envs.make import check_discrete_or_box_actions, check_vector_or_image_observations
from deeprl.errors import ConfigError
from deeprl.nets import ActorCritic
from deeprl.optim import grad_step, make_optimizer, weighted_loss
from deeprl.worldmodel import ContinueModel, GaussianReward, GaussianTransition, elbo, make_vae


@dataclass(frozen=True, kw_only=True)
class WorldModelConfig(RunConfig):
    """World models: collect with the current policy, fit the VAE, fit the latent dynamics, train an
    advantage actor-critic in dreams, repeat.  Every phase's budget is a setting.
    """

    total_steps: int = setting(20_000, "environment steps to train for", min=1, max=MAX_STEPS)
    eval_freq: int = setting(2_000, "evaluate every this many env steps (0 = never during training)", min=0, max=MAX_STEPS)
    log_interval: int = setting(500, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)
    # 1. collect
    prefill_steps: int = setting(1_000, "env steps with uniformly random actions before the first fit", min=0, max=MAX_STEPS)
    collect_steps: int = setting(500, "env steps with the current policy per iteration of the loop", min=1, max=MAX_STEPS)
    buffer_size: int = setting(100_000, "real transitions kept for fitting", min=1, max=MAX_BUFFER)
    # 2. VAE q_ψ(z|s), p_ψ(ŝ|z)
    latent_dim: int = setting(16, "size of the latent state z", min=1, max=MAX_WIDTH)
    vae_hidden: list[int] = setting([256, 256], "hidden layers of the VAE's MLPs (vector observations)", **LAYERS)
    vae_steps: int = setting(200, "VAE gradient steps per iteration", min=0, max=MAX_REPEATS)
    vae_lr: float = setting(1e-3, "VAE learning rate (Adam)", min=0.0, exclusive_min=True)
    beta: float = setting(0.1, "weight of KL(q(z|s) || N(0, I)) in the VAE loss (1 = the ELBO; below 1 keeps more "
                          "of s in z: at 1 a VAE with a learned σ leaves Pendulum's sin θ out of z)", min=0.0)
    free_nats: float = setting(0.0, "do not push an observation's KL below this many nats", min=0.0)
    # 3. transition p_ψ(z'|z,a), reward p_ψ(r'|z'), continue p_ψ(c|z')
    model_hidden: list[int] = setting([256, 256], "hidden layers of the transition, reward and continue MLPs", **LAYERS)
    transition_residual: bool = setting(True, "the transition MLP predicts the change z' - z (else z' itself)")
    model_steps: int = setting(200, "dynamics gradient steps per iteration", min=0, max=MAX_REPEATS)
    model_lr: float = setting(1e-3, "dynamics learning rate (Adam)", min=0.0, exclusive_min=True)
    batch_size: int = setting(256, "real transitions per VAE or dynamics gradient step", min=1, max=MAX_BATCH)
    # 4. actor-critic in the dream
    dream_iterations: int = setting(50, "dreams per iteration; each is horizon online actor-critic updates",
                                    min=0, max=MAX_REPEATS)
    dream_batch: int = setting(256, "dreams run in parallel, each from an encoded real state", min=1, max=MAX_BATCH)
    horizon: int = setting(15, "dream length T in steps", min=1, max=MAX_HORIZON)
    gamma: float = setting(0.99, "discount factor γ", min=0.0, max=1.0)
    net_arch: list[int] = setting([64, 64], "hidden layers of the actor π_θ(a|z) and the critic V_Φ(z)", **LAYERS)
    actor_lr: float = setting(3e-4, "actor learning rate α_a (Adam)", min=0.0, exclusive_min=True)
    critic_lr: float = setting(1e-3, "critic learning rate α_c (Adam)", min=0.0, exclusive_min=True)
    critic_tau: float = setting(1.0, "bootstrap from a slow copy V_Φ⁻ ← τ V_Φ + (1-τ) V_Φ⁻ updated every dream step "
                                "(1 = from V_Φ itself, as the lecture)", min=0.0, max=1.0, exclusive_min=True)
    ent_coef: float = setting(1e-3, "entropy bonus coefficient", min=0.0)
    max_grad_norm: float = setting(10.0, "clip each optimizer's gradient norm (0 = off)", min=0.0)
    normalize_advantage: bool = setting(False, "standardize the advantages of each dream step")
    picture_freq: int = setting(5_000, "write a reconstruction grid to the run directory every this many env steps (0 = off)",
                                min=0, max=MAX_STEPS)

    def check_settings(self) -> None:
        super().check_settings()
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size {self.batch_size} exceeds buffer_size {self.buffer_size}; "
                              "lower batch_size or raise buffer_size")

    def network_weights(self) -> tuple[int, str]:
        z, vae, model, ac = self.latent_dim, self.vae_hidden, self.model_hidden, self.net_arch
        n = 2 * layer_weights(vae) + 3 * z * (vae[-1] if vae else 0)                  # encoder, decoder
        n += 3 * (layer_weights([z, *model]) + (model[-1] if model else z) * 2 * z)   # transition, reward, continue
        n += 4 * layer_weights([z, *ac])                                              # actor, critic, slow critic
        return n, f"latent_dim {z}, vae_hidden {vae}, model_hidden {model} and net_arch {ac}"


class WorldModel(Algorithm):
    """Collect, fit the VAE, fit the latent dynamics, train an actor-critic in dreams; repeat."""

    algo = "worldmodel"
    config_cls = WorldModelConfig
    config: WorldModelConfig
    metrics = ("loss/vae", "loss/recon", "loss/kl", "loss/transition", "loss/reward", "loss/continue", "loss/actor",
               "loss/critic", "loss/entropy", "dream/return", "dream/value")

    def _check_spaces(self) -> None:
        check_vector_or_image_observations(self.observation_space, self.algo)
        check_discrete_or_box_actions(self.action_space, self.algo)

    def _build(self) -> None:
        c = self.config
        obs, act = self.observation_space, self.action_space
        self.discrete = isinstance(act, gym.spaces.Discrete)
        # make_env hands images over channels-first (pixels, MinAtar and Atari alike)
        self.vae = make_vae(obs, c.latent_dim, c.vae_hidden,
                            channels_last=False if len(obs.shape) == 3 else None).to(self.device)
        self.transition = GaussianTransition(c.latent_dim, act, c.model_hidden,
                                             residual=c.transition_residual).to(self.device)
        self.reward_model = GaussianReward(c.latent_dim, c.model_hidden).to(self.device)
        self.continue_model = ContinueModel(c.latent_dim, c.model_hidden).to(self.device)
        latent_space = gym.spaces.Box(-np.inf, np.inf, (c.latent_dim,), np.float32)
        self.ac = ActorCritic(latent_space, act, c.net_arch, shared=False).to(self.device)
        # beyond the lecture: a slow critic for the bootstrap, against the divergence of online TD
        self.ac_target = copy.deepcopy(self.ac).requires_grad_(False) if c.critic_tau < 1 else None
        dynamics = [*self.transition.parameters(), *self.reward_model.parameters(),
                    *self.continue_model.parameters()]
        self.optimizers = {
            "vae": make_optimizer(self.vae.parameters(), lr=c.vae_lr),
            "model": make_optimizer(dynamics, lr=c.model_lr),
            "actor": make_optimizer(self.ac.actor_parameters(), lr=c.actor_lr),
            "critic": make_optimizer(self.ac.critic_parameters(), lr=c.critic_lr),
        }
        action_shape = () if self.discrete else tuple(act.shape)
        self.buffer = ReplayBuffer(c.buffer_size, c.num_envs, tuple(obs.shape), obs.dtype, n_step=1, gamma=1.0,
                                   device=self.device, action_shape=action_shape,
                                   action_dtype=np.int64 if self.discrete else np.float32)
        if not self.discrete:
            self._low = torch.as_tensor(act.low, device=self.device)
            self._high = torch.as_tensor(act.high, device=self.device)
        self.iterations = 0
        self.updates = {"vae": 0, "model": 0, "dream": 0}
        self._next_picture = c.picture_freq

    # --------------------------------------------------------------------------------- acting
    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    def encode(self, obs: np.ndarray | torch.Tensor, sample: bool = False) -> torch.Tensor:
        """z for a batch of observations: the mean of q_ψ(z|s), or a sample z ~ q_ψ(z|s)."""
        obs = self._obs_tensor(obs)  # arrays, and tensors on another device, come to the model's device
        return self.vae.sample(obs) if sample else self.vae.encode(obs)[0]

    def _to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """Gaussian samples are unbounded; the env and the transition model get them clipped."""
        return actions if self.discrete else torch.maximum(torch.minimum(actions, self._high), self._low)

    @torch.inference_mode()
    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        dist = self.ac.policy(self.encode(obs))
        actions = self._to_env(dist.mode() if deterministic else dist.sample())
        return actions.cpu().numpy()

    def _random_actions(self, n: int) -> np.ndarray:
        if self.discrete:
            return self.rng.integers(0, int(self.action_space.n), size=n)
        space = self.action_space
        return self.rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)

    # --------------------------------------------------------------------------------- 1. collect
    def collect(self, steps: int, random: bool = False) -> None:
        """About ``steps`` env steps (whole vector steps) with π_θ acting on encoded states."""
        n = self.config.num_envs
        for _ in range(max(1, -(-steps // n))):
            obs = self._obs
            actions = self._random_actions(n) if random else self._act(obs, deterministic=False)
            step = self._env_step(actions, phase="collect")
            self.buffer.add(obs, step.next_obs, actions, step.reward, step.terminated, step.truncated)

    # --------------------------------------------------------------------------------- 2. VAE
    def fit_vae(self, steps: int) -> None:
        """Maximize the ELBO on observed states (lecture: "Train VAE to reconstruct states")."""
        c, opt = self.config, self.optimizers["vae"]
        for _ in range(steps):
            obs = self.buffer.sample(c.batch_size, self.rng).obs
            terms = elbo(self.vae, obs, beta=c.beta, free_nats=c.free_nats)
            grad_step(opt, terms.loss, c.max_grad_norm)
            self.updates["vae"] += 1
            self._record(**{"loss/vae": terms.loss, "loss/recon": -terms.log_likelihood, "loss/kl": terms.kl})
        self._show(phase="vae")

    # --------------------------------------------------------------------------------- 3. dynamics
    def dynamics_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """-log p_ψ(z'|z,a), -log p_ψ(r'|z') and -log p_ψ(c|z') on encoded real transitions."""
        with torch.no_grad():  # ⊥: fitting the dynamics does not move the encoder
            z, next_z = self.vae.sample(batch.obs), self.vae.sample(batch.next_obs)
        cont = batch.discounts  # n_step=1, γ=1 replay: 0 where the episode terminated, else 1
        return {"transition": -self.transition.log_prob(z, batch.actions, next_z).mean(),
                "reward": -self.reward_model.log_prob(next_z, batch.returns).mean(),
                "continue": -self.continue_model.log_prob(next_z, cont).mean()}

    def fit_dynamics(self, steps: int) -> None:
        """Lecture: "Train dynamics model", on replayed transitions (s, a, r', s')."""
        c, opt = self.config, self.optimizers["model"]
        for _ in range(steps):
            losses = self.dynamics_loss(self.buffer.sample(c.batch_size, self.rng))
            grad_step(opt, sum(losses.values()), c.max_grad_norm)
            self.updates["model"] += 1
            self._record(**{f"loss/{k}": v for k, v in losses.items()})
        self._show(phase="dynamics")

    # --------------------------------------------------------------------------------- 4. dream
    @torch.no_grad()
    def imagine_step(self, z: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One dreamed step: z' ~ p_ψ(z'|z,a), r' = E p_ψ(r'|z'), c' = P(continue|z'); no env involved."""
        next_z = self.transition.sample(z, self._to_env(actions))
        reward = self.reward_model(next_z)[0]
        cont = torch.sigmoid(self.continue_model(next_z))
        return next_z, reward, cont

    @torch.no_grad()
    def predict_latent(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The transition model's mean of z' given z and a (actions clipped as the env would)."""
        return self.transition(z, self._to_env(actions))[0]

    @torch.no_grad()
    def imagine(self, start_obs: torch.Tensor, horizon: int, actions: torch.Tensor | None = None,
                deterministic: bool = False) -> dict[str, torch.Tensor]:
        """A dream without learning: from z₀ = mean of q_ψ(z|s₀), ``horizon`` steps of the world model.

        The agent picks the actions (a ~ π_θ(a|z), its mode if ``deterministic``) unless
        ``actions`` ``(T, B, ...)`` are given, e.g. a real episode's, to compare dream and reality.
        Returns ``latents (T+1, B, L)``, ``actions (T, B, ...)``, ``rewards (T, B)``, ``continues (T, B)``.
        """
        z = self.encode(start_obs)
        if actions is not None:
            actions = torch.as_tensor(actions, device=self.device)
        latents, taken, rewards, continues = [z], [], [], []
        for t in range(horizon):
            if actions is not None:
                a = actions[t]
            else:
                dist = self.ac.policy(z)
                a = dist.mode() if deterministic else dist.sample()
            z, reward, cont = self.imagine_step(z, a)
            latents.append(z)
            taken.append(a)
            rewards.append(reward)
            continues.append(cont)
        return {"latents": torch.stack(latents), "actions": torch.stack(taken), "rewards": torch.stack(rewards),
                "continues": torch.stack(continues)}

    @torch.no_grad()
    def decode_dream(self, real_obs: np.ndarray, actions: np.ndarray, use_real_actions: bool = True
                     ) -> tuple[np.ndarray, float]:
        """For ``deeprl dream``: the dream from real_obs[0], decoded to observations ``(T+1, ...)``, and
        its predicted return.  It replays the real (env) actions, or lets the agent act."""
        start = torch.as_tensor(real_obs[:1], device=self.device)
        given = torch.as_tensor(actions[:, None], device=self.device) if use_real_actions else None
        dream = self.imagine(start, len(actions), actions=given, deterministic=True)
        return self.vae.observation(dream["latents"][:, 0]).cpu().numpy(), float(dream["rewards"].sum())

    def dream(self, start_obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """T steps of online advantage actor-critic in latent imagination, from encoded real states."""
        c = self.config
        with torch.no_grad():
            z = self.vae.sample(start_obs)                                     # z ~ q_ψ(z|s)
        alive = torch.ones(z.shape[0], device=self.device)  # P(the dream has not terminated yet)
        dream_return = torch.zeros_like(alive)
        discount = 1.0
        for _ in range(c.horizon):
            dist = self.ac.policy(z)
            actions = dist.sample()                                            # a ~ π_θ(a|z)
            next_z, reward, cont = self.imagine_step(z, actions)               # z', r', c'
            if self.ac_target is None:
                values = self.ac.value(torch.cat([z, next_z]))
                v, next_v = values[:len(z)], values[len(z):].detach()
            else:
                v = self.ac.value(z)
                with torch.no_grad():
                    next_v = self.ac_target.value(next_z)
            target = reward + c.gamma * cont * next_v                          # ⊥(r' + γ V_Φ(z'))
            advantage = target - v.detach()                                    # A_Φ(z, r', z'), ⊥
            if c.normalize_advantage:
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            critic_loss = (alive * (v - target).pow(2)).mean()
            actor_terms = {"actor": -(alive * advantage * dist.log_prob(actions)).mean(),
                           "entropy": -(alive * dist.entropy()).mean()}
            # disjoint parameters and graphs: each loss reaches only its own optimizer's
            grad_step(self.optimizers["actor"], weighted_loss(actor_terms, {"actor": 1.0, "entropy": c.ent_coef}),
                      c.max_grad_norm)
            grad_step(self.optimizers["critic"], critic_loss, c.max_grad_norm)
            if self.ac_target is not None:  # V_Φ⁻ ← τ V_Φ + (1 - τ) V_Φ⁻
                with torch.no_grad():
                    torch._foreach_lerp_(list(self.ac_target.parameters()), list(self.ac.parameters()), c.critic_tau)
            self._record(**{"loss/actor": actor_terms["actor"], "loss/critic": critic_loss,
                            "loss/entropy": actor_terms["entropy"], "dream/value": v.mean()})
            dream_return = dream_return + discount * alive * reward
            discount *= c.gamma
            alive = alive * cont
            z = next_z                                                         # z ← z'
        self.updates["dream"] += 1
        return {"return": dream_return.mean()}

    def train_in_dreams(self, dreams: int) -> None:
        for _ in range(dreams):
            start = self.buffer.sample(self.config.dream_batch, self.rng).obs  # initial states s
            self._record(**{"dream/return": self.dream(start)["return"]})
        self._show(phase="dream")

    # --------------------------------------------------------------------------------- the loop
    def _iteration(self, target_steps: int) -> None:
        c = self.config
        prefill = self.num_timesteps < c.prefill_steps
        budget = c.prefill_steps - self.num_timesteps if prefill else c.collect_steps
        self.collect(min(budget, target_steps - self.num_timesteps), random=prefill)  # 1.
        if len(self.buffer) >= c.batch_size:
            self.fit_vae(c.vae_steps)                                                   # 2.
            self.fit_dynamics(c.model_steps)                                            # 3.
            self.train_in_dreams(c.dream_iterations)                                    # 4.
        self.iterations += 1
        self._maybe_pictures()

    def _progress_info(self) -> dict[str, Any]:
        return {"phase": "collect"}

    def _maybe_pictures(self) -> None:
        c = self.config
        if self.run is None or c.picture_freq == 0 or self.num_timesteps < self._next_picture or not len(self.buffer):
            return
        from deeprl.worldmodel.pictures import reconstruction_grid

        self._next_picture = (self.num_timesteps // c.picture_freq + 1) * c.picture_freq
        obs = self.buffer.sample(8, np.random.default_rng(self.num_timesteps)).obs
        reconstruction_grid(self, obs, self.run.path / "pictures" / f"reconstruction_{self.num_timesteps:08d}.png")

    def _finish_run(self, signals=None) -> None:
        super()._finish_run(signals)
        from deeprl.checkpoint import atomic_write_json
        from deeprl.worldmodel.pictures import plot_rollout_error, rollout_error

        result = rollout_error(self, horizon=min(30, self.config.horizon * 2))
        if result is not None:  # how far the dream stays faithful, with the model as trained
            (self.run.path / "pictures").mkdir(exist_ok=True)
            atomic_write_json(self.run.path / "pictures" / "rollout_error.json", result)
            plot_rollout_error(result, self.run.path / "pictures" / "rollout_error.png",
                               title=f"{self.config.env}: dream error vs horizon at step {self.num_timesteps:,}")

    # --------------------------------------------------------------------------------- persistence
    def _persistent(self) -> Persistent:
        return Persistent(model={"vae": self.vae, "transition": self.transition, "reward": self.reward_model,
                                 "continue": self.continue_model, "ac": self.ac, "ac_target": self.ac_target},
                          optimizers=self.optimizers, buffers={"replay": self.buffer},
                          counters={"iterations": "iterations", "updates": "updates", "next_picture": "_next_picture"})
