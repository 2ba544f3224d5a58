"""Dreamer: learn behaviour by backpropagating through the dream (the lecture's last slides).

The lecture's "Train agents by backpropagating through world models", with DreamerV3's
robustness so that one configuration serves many tasks::

    world model   RSSM (h_t = GRU(h, z, a); prior p(z|h); posterior q(z|h, e)) from replayed
                  sequences: reconstruct o_t (symlog), predict r_t (two-hot symlog) and the
                  continue flag, and KL-balance prior and posterior with free bits.
    imagination   from every posterior state, H steps of a ~ π_θ(a|s), s' ~ p(s'|s, a), both
                  reparameterized, so R^λ is differentiable in θ:  θ ← θ + α ∇_θ R^λ / S
                  (the lecture's θ ← θ + α ∇_θ V_Φ(z'); S = max(1, P95 - P5) of the returns).
                  World-model parameters are frozen here: the actor's gradient passes through
                  the dynamics but does not change them.
    critic        v_ψ(s) regresses ⊥R^λ with two-hot symlog targets; the returns bootstrap
                  from a slow copy v_ψ⁻.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deeprl.agents.base import Algorithm
from deeprl.agents.persistence import Persistent
from deeprl.config import (MAX_BATCH, MAX_BUFFER, MAX_DEPTH, MAX_DREAM_STATES, MAX_HORIZON, MAX_SEQUENCE, MAX_STEPS,
                           MAX_WIDTH, RunConfig, layer_weights, setting, show_bound)
from deeprl.dreamer.actor import Actor, factor_sizes
from deeprl.dreamer.math import (ReturnNormalizer, TwoHot, kl_balanced_loss, lambda_returns, replay_lambda_returns,
                                 symexp, symlog)
from deeprl.dreamer.rssm import RSSM, State, flatten
from deeprl.dreamer.sequence_buffer import SequenceReplay
from deeprl.envs.make import check_discrete_or_box_actions, check_vector_or_image_observations
from deeprl.errors import ConfigError
from deeprl.nets import mlp
from deeprl.optim import grad_step, make_optimizer, weighted_loss
from deeprl.spaces import Packed
from deeprl.worldmodel.coders import make_coder

LOSS_SCALES = {"recon": 1.0, "reward": 1.0, "continue": 1.0, "dyn": None, "rep": None}  # None: from the config


@contextlib.contextmanager
def frozen(modules: list[nn.Module]) -> Iterator[None]:
    """Parameters that pass gradient through but receive none (the world model while the actor learns)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


@dataclass(frozen=True, kw_only=True)
class DreamerConfig(RunConfig):
    """Dreamer: an RSSM world model learned from replayed sequences, and an actor that maximizes
    λ-returns of imagined trajectories by backpropagating through the learned dynamics.  Model
    sizes are named presets (``--preset debug``, ``S``, ``M``); the defaults are ``S``."""

    total_steps: int = setting(50_000, "environment steps to train for", min=1, max=MAX_STEPS)
    eval_freq: int = setting(5_000, "evaluate every this many env steps (0 = never during training)", min=0, max=MAX_STEPS)
    log_interval: int = setting(1_000, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)
    # model size
    latent: Literal["categorical", "gaussian"] = setting("categorical", "stochastic state: one-hot classes (V2/V3) or Gaussian (V1)")
    deter: int = setting(128, "GRU (deterministic) state size", min=1, max=MAX_WIDTH)
    stoch: int = setting(16, "stochastic variables (categorical) or dimensions (Gaussian)", min=1, max=MAX_WIDTH)
    classes: int = setting(8, "classes per categorical variable", min=2, max=MAX_WIDTH)
    hidden: int = setting(128, "width of every MLP layer", min=1, max=MAX_WIDTH)
    layers: int = setting(2, "layers of the reward, continue, actor and critic MLPs and the vector encoder",
                          min=1, max=MAX_DEPTH)
    unimix: float = setting(0.01, "uniform mixture in categorical latents and discrete actions", min=0.0, max=1.0)
    bins: int = setting(255, "two-hot bins (symlog space, ±20) of the reward and value heads", min=3, max=MAX_WIDTH)
    # world-model learning
    batch_size: int = setting(16, "sequences per gradient step", min=1, max=MAX_BATCH)
    batch_length: int = setting(64, "steps per sequence", min=2, max=MAX_SEQUENCE)
    buffer_size: int = setting(1_000_000, "replay capacity in steps", min=1, max=MAX_BUFFER)
    prefill_steps: int = setting(2_500, "env steps with uniformly random actions before the first update",
                                 min=0, max=MAX_STEPS)
    replay_ratio: float = setting(0.25, "gradient steps per env step (e.g. 0.25 = one every 4 steps)", min=0.0,
                                  exclusive_min=True)
    model_lr: float = setting(3e-4, "world-model learning rate (Adam)", min=0.0, exclusive_min=True)
    free_bits: float = setting(1.0, "KL below this many nats is not penalized", min=0.0)
    dyn_scale: float = setting(0.5, "weight of the dynamics KL: prior towards the (⊥) posterior", min=0.0)
    rep_scale: float = setting(0.1, "weight of the representation KL: posterior towards the (⊥) prior", min=0.0)
    model_grad_norm: float = setting(1000.0, "clip the world model's gradient norm", min=0.0, exclusive_min=True)
    # behaviour learning in imagination
    horizon: int = setting(45, "imagined steps per start state (DreamerV3: 15; 45 keeps CartPole from falling back, "
                          "benchmarks/README.md)", min=1, max=MAX_HORIZON)
    imagine_starts: int = setting(256, "posterior states of each batch that start a dream (0 = all batch_size x "
                                  "batch_length, as DreamerV3; fewer cost less on a CPU)", min=0, max=MAX_BATCH)
    gamma: float = setting(0.997, "discount factor γ (1 - 1/333, DreamerV3's horizon)", min=0.0, max=1.0)
    lam: float = setting(0.95, "λ of the λ-returns", min=0.0, max=1.0)
    actor_grad: Literal["dynamics", "reinforce"] = setting(
        "dynamics", "actor gradient: backprop through the dream (reparameterized) or REINFORCE")
    actor_lr: float = setting(8e-5, "actor learning rate (Adam)", min=0.0, exclusive_min=True)
    critic_lr: float = setting(8e-5, "critic learning rate (Adam)", min=0.0, exclusive_min=True)
    ent_coef: float = setting(3e-4, "entropy bonus η", min=0.0)
    critic_tau: float = setting(0.02, "slow target critic V_ψ⁻ ← τ V_ψ + (1-τ) V_ψ⁻ after each critic step", min=0.0,
                                max=1.0, exclusive_min=True)
    critic_slowreg: float = setting(0.0, "weight of the critic's pull towards the slow critic's prediction "
                                    "(DreamerV3: 1)", min=0.0)
    critic_replay: float = setting(0.0, "weight of a second critic loss on λ-returns of the replayed real sequences, "
                                   "which grounds V in real states (DreamerV3's repval: 0.3)", min=0.0)
    return_norm: bool = setting(True, "divide returns by max(1, P95 - P5) (EMA of percentiles), DreamerV3")
    ac_grad_norm: float = setting(100.0, "clip the actor's and the critic's gradient norms", min=0.0, exclusive_min=True)

    def check_settings(self) -> None:
        super().check_settings()
        batch = self.batch_size * self.batch_length
        if batch > MAX_DREAM_STATES:
            raise ConfigError(f"batch_size {self.batch_size} x batch_length {self.batch_length} = {batch:,} "
                              f"steps per world-model batch; at most {show_bound(MAX_DREAM_STATES)} are allowed")
        starts = self.imagine_starts if 0 < self.imagine_starts < batch else batch
        if starts * self.horizon > MAX_DREAM_STATES:
            raise ConfigError(f"{starts:,} imagined starts (imagine_starts {self.imagine_starts}, of batch_size x "
                              f"batch_length) x horizon {self.horizon} = {starts * self.horizon:,} imagined "
                              f"states per update; at most {show_bound(MAX_DREAM_STATES)} are allowed: lower "
                              "imagine_starts or horizon")
        rows = -(-self.buffer_size // self.num_envs)
        if self.batch_length > rows:
            raise ConfigError(f"batch_length {self.batch_length} exceeds the {rows:,} steps the replay keeps per "
                              f"env (buffer_size {self.buffer_size} / num_envs {self.num_envs}), so training "
                              "would never start; lower batch_length or raise buffer_size")

    def network_weights(self) -> tuple[int, str]:
        d, h, layers = self.deter, self.hidden, self.layers
        s = self.stoch * self.classes if self.latent == "categorical" else self.stoch
        stats = s if self.latent == "categorical" else 2 * s
        feature = d + s
        rssm = s * h + 3 * h * d + 3 * d * d + 2 * (d * h + h * stats)   # input layer, GRU, prior, posterior
        heads = 7 * layer_weights([feature, *[h] * layers]) + 3 * h * self.bins  # decoder, encoder, 5 heads; 3 two-hot
        return rssm + heads, (f"deter {d}, stoch {self.stoch}, classes {self.classes}, hidden {h}, layers "
                              f"{layers} and bins {self.bins}")


class Dreamer(Algorithm):
    """DreamerV3-style agent on vector, image and MinAtar observations, discrete or continuous actions."""

    algo = "dreamer"
    config_cls = DreamerConfig
    config: DreamerConfig
    metrics = ("loss/kl", "loss/model", "loss/actor", "loss/critic", "loss/entropy", "dream/return", "dream/value",
               "dream/continue", "dream/return_scale", "grad/model", "grad/actor", "updates/gradient_steps")

    @property
    def loss_scales(self) -> dict[str, float]:
        """The world model's loss terms and their weights (DreamerV3's ``loss_scales``)."""
        return {**LOSS_SCALES, "dyn": self.config.dyn_scale, "rep": self.config.rep_scale}

    def _check_spaces(self) -> None:
        check_vector_or_image_observations(self.observation_space, self.algo)
        check_discrete_or_box_actions(self.action_space, self.algo, bounded=True, factorized=True)

    def _build(self) -> None:
        c, obs, act = self.config, self.observation_space, self.action_space
        self.discrete = not isinstance(act, gym.spaces.Box)  # one or several categorical choices
        self.action_dim = sum(factor_sizes(act)) if self.discrete else int(np.prod(act.shape))
        self.image = len(obs.shape) == 3
        self.obs_scale = float(obs.high.max()) if self.image else 1.0
        self.binary = self.image and self.obs_scale == 1.0  # MinAtar grids: Bernoulli pixels
        feature_dim = c.deter + (c.stoch * c.classes if c.latent == "categorical" else c.stoch)
        self.packed = isinstance(obs, Packed)  # composite observations: each entry coded by its kind
        self.encoder, embed_dim, self.decoder = make_coder(obs, feature_dim, [c.hidden] * c.layers,
                                                           vector_transform=symlog)
        self.rssm = RSSM(embed_dim, self.action_dim, deter=c.deter, hidden=c.hidden, stoch=c.stoch, classes=c.classes,
                         latent=c.latent, unimix=c.unimix)
        hidden = [c.hidden] * c.layers  # DreamerV3's heads: Linear → LayerNorm → SiLU layers
        self.reward_head = mlp(feature_dim, hidden, c.bins, activation=nn.SiLU, layer_norm=True)
        self.continue_head = mlp(feature_dim, hidden, 1, activation=nn.SiLU, layer_norm=True)
        self.actor = Actor(feature_dim, act, c.hidden, c.layers, c.unimix)
        self.critic = mlp(feature_dim, hidden, c.bins, activation=nn.SiLU, layer_norm=True)
        for head in (self.reward_head[-1], self.critic[-1]):  # predict 0 at first (DreamerV3)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        for m in self._modules_by_name().values():
            m.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(num_bins=c.bins)
        self.normalizer = ReturnNormalizer()
        self.optimizers = {
            "model": make_optimizer([p for m in self._world_model() for p in m.parameters()], lr=c.model_lr, eps=1e-8),
            "actor": make_optimizer(self.actor.parameters(), lr=c.actor_lr, eps=1e-5),
            "critic": make_optimizer(self.critic.parameters(), lr=c.critic_lr, eps=1e-5),
        }
        self.replay = SequenceReplay(c.buffer_size, c.num_envs, tuple(obs.shape), obs.dtype, (self.action_dim,),
                                     np.float32)
        self.updates = 0
        self._update_credit = 0.0
        self._acting = self._policy_state(c.num_envs)
        self._prev_action = np.zeros((c.num_envs, self.action_dim), np.float32)  # a_{t-1} (0 at a first step)
        self._prev_reward = np.zeros(c.num_envs, np.float32)                     # r_t
        self._first = np.ones(c.num_envs, bool)                                   # o_t starts an episode

    def _world_model(self) -> list[nn.Module]:
        return [self.encoder, self.decoder, self.rssm, self.reward_head, self.continue_head]

    def _modules_by_name(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder, "rssm": self.rssm, "reward": self.reward_head,
                "continue": self.continue_head, "actor": self.actor, "critic": self.critic}

    # --------------------------------------------------------------------------------- observations
    def _preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        """Vectors in symlog (any scale becomes tame); images in [0, 1]; packed rows as they are (the
        multi-entry coders scale each entry)."""
        if self.packed:
            return obs.float()
        return obs.float() / self.obs_scale if self.image else symlog(obs.float())

    def _embed(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: obs.dim() - len(self.observation_space.shape)]
        x = self._preprocess(obs).reshape(-1, *self.observation_space.shape)
        return self.encoder(x).reshape(*lead, -1)

    def _recon_loss(self, feature: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """-log p(o|s): squared error in symlog / [0, 1] space (Bernoulli for binary grids), per step."""
        lead = feature.shape[:-1]
        pred = self.decoder(feature.reshape(-1, feature.shape[-1])).reshape(*lead, -1)
        if self.packed:
            return -self.decoder.log_prob(pred, obs.float())
        target = self._preprocess(obs).reshape(*lead, -1)
        if self.binary:
            return F.binary_cross_entropy_with_logits(pred, target, reduction="none").sum(-1)
        return 0.5 * (pred - target).pow(2).sum(-1)

    # --------------------------------------------------------------------------------- acting
    def _policy_state(self, n: int) -> dict[str, Any]:
        return {"state": self.rssm.initial(n, self.device), "action": torch.zeros(n, self.action_dim, device=self.device),
                "first": torch.ones(n, dtype=torch.bool, device=self.device)}

    @torch.no_grad()
    def _policy_step(self, memory: dict[str, Any], obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Filter the new observation into the recurrent state, then act on its features
        (``deterministic``: the posterior's and the actor's modes, no random draw at all)."""
        embed = self._embed(torch.as_tensor(obs, device=self.device))
        post = self.rssm.obs_step(memory["state"], memory["action"], embed, memory["first"], mode=deterministic)
        action = self.actor(post.feature(), deterministic)[0]
        memory.update(state=post, action=action, first=torch.zeros_like(memory["first"]))
        return self._to_env(action)

    def _to_env(self, action: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return self.actor.codes(action)
        low, high = self.action_space.low, self.action_space.high
        return (low + (action.cpu().numpy() + 1) / 2 * (high - low)).astype(np.float32)

    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Stateless: each call starts from a fresh state (use the evaluation policy for episodes)."""
        return self._policy_step(self._policy_state(len(obs)), obs, deterministic)

    def _eval_policy(self) -> Any:
        agent = self

        class RecurrentPolicy:
            memory: dict[str, Any] | None = None

            def __call__(self, obs: np.ndarray) -> np.ndarray:
                if self.memory is None or len(self.memory["first"]) != len(obs):
                    self.memory = agent._policy_state(len(obs))
                return agent._policy_step(self.memory, obs, True)

            def reset(self, mask: np.ndarray) -> None:
                if self.memory is not None:
                    self.memory["first"] |= torch.as_tensor(mask, device=agent.device)

        return RecurrentPolicy()

    def _random_actions(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform actions for prefilling: (env actions, their one-hot / [-1, 1] form for the model)."""
        if self.discrete:
            if not self.actor.factorized:
                idx = self.rng.integers(0, self.action_dim, size=n)
                return idx, np.eye(self.action_dim, dtype=np.float32)[idx]
            codes = self.rng.integers(0, self.actor.nvec, size=(n, len(self.actor.nvec)))
            return self.actor.codes_to_env(codes), self.actor.one_hot(torch.as_tensor(codes)).numpy()
        u = self.rng.uniform(-1, 1, size=(n, self.action_dim)).astype(np.float32)
        low, high = self.action_space.low, self.action_space.high
        return (low + (u + 1) / 2 * (high - low)).astype(np.float32), u

    # --------------------------------------------------------------------------------- world model
    def train_world_model(self, batch: dict[str, torch.Tensor]) -> State:
        """One gradient step on the world model; returns the posterior states (B, L) for imagination."""
        c = self.config
        embed = self._embed(batch["obs"])
        post, prior, _ = self.rssm.observe(embed, batch["action"], batch["is_first"])
        feature = post.feature()
        dyn, rep, kl = kl_balanced_loss(post.stats, prior, c.latent, c.free_bits)
        losses = {"recon": self._recon_loss(feature, batch["obs"]).mean(),
                  "reward": self.twohot.loss(self.reward_head(feature), batch["reward"]).mean(),
                  "continue": F.binary_cross_entropy_with_logits(self.continue_head(feature).squeeze(-1),
                                                                 1.0 - batch["is_terminal"].float()),
                  "dyn": dyn, "rep": rep}
        loss = weighted_loss(losses, self.loss_scales)
        norm = grad_step(self.optimizers["model"], loss, c.model_grad_norm)
        self._record(**{f"loss/{k}": v for k, v in losses.items()}, **{"loss/kl": kl, "loss/model": loss,
                                                                        "grad/model": norm})
        return post

    # --------------------------------------------------------------------------------- behaviour
    def imagine(self, start: State, horizon: int) -> dict[str, torch.Tensor]:
        """Dream ``horizon`` steps from ``start`` with the actor: features ``(H+1, N, F)``, actions,
        log-probs and entropies ``(H, N, ...)``.  Differentiable in the actor's parameters."""
        state = start
        features, actions, log_probs, entropies = [state.feature()], [], [], []
        for _ in range(horizon):
            action, log_prob, entropy = self.actor(features[-1].detach() if self.config.actor_grad == "reinforce"
                                                   else features[-1])
            state = self.rssm.img_step(state, action)                  # s' ~ p(s'|s, a), reparameterized
            features.append(state.feature())
            actions.append(action)
            log_probs.append(log_prob)
            entropies.append(entropy)
        return {"features": torch.stack(features), "actions": torch.stack(actions),
                "log_probs": torch.stack(log_probs), "entropies": torch.stack(entropies)}

    @torch.no_grad()
    def decode_dream(self, real_obs: np.ndarray, actions: np.ndarray, use_real_actions: bool = True
                     ) -> tuple[np.ndarray, float]:
        """For ``deeprl dream``: filter real_obs[0] into the posterior, then dream open loop with the
        real (env) actions or the actor's; returns the decoded observations ``(T+1, ...)`` in the
        env's layout and the dream's predicted return."""
        memory = self._policy_state(1)
        self._policy_step(memory, real_obs[:1], True)
        state, features, total = memory["state"], [memory["state"].feature()], 0.0
        for t in range(len(actions)):
            action = self._from_env(actions[t:t + 1]) if use_real_actions else self.actor(features[-1], True)[0]
            state = self.rssm.img_step(state, action)
            features.append(state.feature())
            total += float(self.twohot.decode(self.reward_head(features[-1])))
        out = self.decoder(torch.cat(features))
        if self.packed:
            out = self.decoder.mode(out, symexp)
        elif self.image:
            out = torch.sigmoid(out) if self.binary else out
            out = (out.clamp(0, 1) * self.obs_scale)
            out = (out > 0.5 * self.obs_scale).float() * self.obs_scale if self.binary else out.round()
        else:
            out = symexp(out)
        shape = self.observation_space.shape
        return out.reshape(-1, *shape).cpu().numpy().astype(self.observation_space.dtype), total

    def _from_env(self, actions: np.ndarray) -> torch.Tensor:
        """Env actions -> the model's form: one-hot, or rescaled to [-1, 1]."""
        if self.discrete:
            return self.actor.one_hot(self.actor.env_to_codes(torch.as_tensor(actions, device=self.device)))
        low, high = self.action_space.low, self.action_space.high
        return torch.as_tensor(2 * (actions - low) / (high - low) - 1, device=self.device, dtype=torch.float32)

    def replay_value_loss(self, post: State, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The critic on real data: two-hot regression of V(s_t) towards λ-returns along the replayed
        sequences (rewards and terminations from the data, bootstrapped from the slow critic).  A
        window may cross into a new episode; the step before it (the old episode's final
        observation) bootstraps from its own value, and terminal steps carry no loss."""
        c = self.config
        features = post.feature().detach()                                  # (B, L, F)
        with torch.no_grad():
            values = self.twohot.decode(self.critic_target(features))       # (B, L)
            returns = replay_lambda_returns(batch["reward"], batch["is_terminal"], batch["is_first"], values,
                                            c.gamma, c.lam)                  # (B, L-1)
        mask = 1.0 - batch["is_terminal"][:, :-1].float()
        return (mask * self.twohot.loss(self.critic(features[:, :-1]), returns)).sum() / mask.sum().clamp(min=1.0)

    def train_behaviour(self, start: State, is_terminal: torch.Tensor,
                        replay: tuple[State, dict[str, torch.Tensor]] | None = None) -> None:
        """Actor: maximize R^λ of dreams by backprop through them; critic: regress ⊥R^λ (and, with
        ``critic_replay``, λ-returns of the replayed real sequences ``replay = (posterior, batch)``)."""
        c = self.config
        with frozen(self._world_model() + [self.critic_target]):  # ψ passes gradient on but takes none
            dream = self.imagine(start.detach(), c.horizon)
            features = dream["features"]
            rewards = self.twohot.decode(self.reward_head(features[1:]))
            continues = torch.sigmoid(self.continue_head(features[1:]).squeeze(-1))
            values = self.twohot.decode(self.critic_target(features))
            returns = lambda_returns(rewards, values[1:], continues, c.gamma, c.lam)        # R^λ_t, (H, N)
            # the probability that the dream is still running at each step (a start may be terminal)
            alive = torch.cat([(1.0 - is_terminal.float())[None], continues[:-1]]).detach()
            weight = torch.cumprod(alive, dim=0)
            if c.return_norm:
                self.normalizer.update(returns)
            scale = self.normalizer.scale if c.return_norm else 1.0
            if c.actor_grad == "dynamics":  # θ ← θ + α ∇_θ R^λ: the gradient flows through the dream
                objective = returns / scale
            else:  # REINFORCE: ⊥((R^λ - v) / S) ∇ log π(a|s)
                objective = ((returns - values[:-1]) / scale).detach() * dream["log_probs"]
            actor_loss = -(weight * (objective + c.ent_coef * dream["entropies"])).mean()
            actor_norm = grad_step(self.optimizers["actor"], actor_loss, c.ac_grad_norm)
        critic_logits = self.critic(features[:-1].detach())
        critic_loss = (weight * self.twohot.loss(critic_logits, returns.detach())).mean()
        if c.critic_slowreg > 0:  # stay near the slow critic: damps the critic's chase of its own targets
            critic_loss = critic_loss + c.critic_slowreg * (
                weight * self.twohot.loss(critic_logits, values[:-1].detach())).mean()
        if replay is not None and c.critic_replay > 0:
            critic_loss = critic_loss + c.critic_replay * self.replay_value_loss(*replay)
        grad_step(self.optimizers["critic"], critic_loss, c.ac_grad_norm)
        with torch.no_grad():  # v_ψ⁻ ← τ v_ψ + (1 - τ) v_ψ⁻
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), c.critic_tau)
        self._record(**{"loss/actor": actor_loss, "loss/critic": critic_loss, "loss/entropy": -dream["entropies"].mean(),
                        "dream/return": returns.mean(), "dream/value": values.mean(),
                        "dream/continue": continues.mean(),
                        "dream/return_scale": torch.tensor(scale), "grad/actor": actor_norm})

    def train_step(self) -> None:
        c = self.config
        batch = self.replay.sample(c.batch_size, c.batch_length, self.rng, device=self.device)
        post = self.train_world_model(batch)
        start, is_terminal = flatten(post), batch["is_terminal"].reshape(-1)
        if 0 < c.imagine_starts < len(is_terminal):
            pick = torch.as_tensor(self.rng.choice(len(is_terminal), c.imagine_starts, replace=False),
                                   device=self.device)
            start = State(start.deter[pick], start.stoch[pick], {})
            is_terminal = is_terminal[pick]
        self.train_behaviour(start, is_terminal, (post, batch))
        self.updates += 1

    # --------------------------------------------------------------------------------- the loop
    def _iteration(self, target_steps: int) -> None:
        """One step of every env, then as many gradient steps as the replay ratio has earned."""
        c, n = self.config, self.config.num_envs
        obs = self._obs
        # o_t is stored with the action a_{t-1} and reward r_t that led to it
        self.replay.add(obs, self._prev_action, self._prev_reward, self._first, np.zeros(n, bool))
        if self.num_timesteps < c.prefill_steps:
            env_actions, model_actions = self._random_actions(n)
            self._policy_step(self._acting, obs, False)  # keeps the recurrent state in step with the env
            self._acting["action"] = torch.as_tensor(model_actions, device=self.device)
        else:
            env_actions = self._policy_step(self._acting, obs, False)
            model_actions = self._acting["action"].cpu().numpy()
        step = self._env_step(env_actions)
        done = step.terminated | step.truncated
        for i in np.flatnonzero(done):  # the final observation is a step of its own, terminal or not
            self.replay.add_one(int(i), step.next_obs[i], model_actions[i], float(step.reward[i]), False,
                                bool(step.terminated[i]))
        self._prev_action = np.where(done[:, None], 0.0, model_actions).astype(np.float32)
        self._prev_reward = np.where(done, 0.0, step.reward).astype(np.float32)
        self._first = done
        self._acting["first"] = torch.as_tensor(done, device=self.device)
        if self.num_timesteps >= c.prefill_steps and self.replay.can_sample(c.batch_length):
            self._update_credit += c.replay_ratio * n          # replay ratio: gradient steps per env step
            while self._update_credit >= 1.0:
                self.train_step()
                self._update_credit -= 1.0

    def _interval_metrics(self) -> dict[str, Any]:
        return {**super()._interval_metrics(), "updates/gradient_steps": self.updates}

    # --------------------------------------------------------------------------------- persistence
    def _persistent(self) -> Persistent:
        return Persistent(model={**self._modules_by_name(), "critic_target": self.critic_target},
                          training={"normalizer": self.normalizer}, optimizers=self.optimizers,
                          buffers={"replay": self.replay},
                          counters={"updates": "updates", "update_credit": "_update_credit",
                                    "prev_action": "_prev_action", "prev_reward": "_prev_reward", "first": "_first",
                                    "acting_state": "_acting_state"})

    @property
    def _acting_state(self) -> dict[str, torch.Tensor]:
        """The recurrent state the policy acts from, as tensors (for checkpoints)."""
        memory = self._acting
        return {"deter": memory["state"].deter, "stoch": memory["state"].stoch, "action": memory["action"],
                "first": memory["first"].clone()}  # (it may share memory with _first, which is saved too)

    @_acting_state.setter
    def _acting_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self._acting = {"state": State(tensors["deter"], tensors["stoch"], {}), "action": tensors["action"],
                        "first": tensors["first"]}
