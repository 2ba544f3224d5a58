"""Configuration: one frozen dataclass per algorithm, presets, and validated overrides.

Every setting is a keyword-only dataclass field whose ``help`` metadata is the documentation.
Values arrive as Python objects (``DQN(env, lr=1e-3)``), YAML presets or ``--set key=value``
strings; all three pass through :func:`build_config`, which rejects unknown keys (naming the
closest valid one), wrong types and out-of-range values with a :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml

from deeprl.errors import ConfigError, did_you_mean


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Settings every algorithm shares: the environment, the budget, logging and checkpoints."""

    env: str = _f("CartPole-v1", "Gymnasium id, including 'module:Env-v0' ids and ALE/ Atari ids")
    seed: int = _f(0, "seed for networks, exploration and environment resets", min=0)
    total_steps: int = _f(50_000, "environment steps to train for (summed over parallel envs)", min=1)
    num_envs: int = _f(1, "parallel environments", min=1)
    vectorization: Literal["sync", "async"] = _f("sync", "step envs in this process or in subprocesses")
    atari_wrappers: Literal["auto", "on", "off"] = _f(
        "auto", "standard Atari preprocessing; 'auto' turns it on for ALE ids")
    pixels: int = _f(0, "observe the env's rgb_array render resized to N x N pixels instead (0 = off)", min=0)
    grayscale: bool = _f(False, "pixel observations in grey instead of RGB (with pixels > 0)")
    frame_stack: int = _f(1, "stack this many pixel frames along the channels (with pixels > 0)", min=1)
    max_episode_steps: int = _f(0, "truncate episodes after this many steps (0 = the env's own limit, or 100,000 "
                                   "for an env registered without one, so that every episode ends)", min=0)
    device: str = _f("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    torch_threads: int = _f(0, "CPU threads for torch and NumPy's BLAS; 0 picks 1 for vector observations, half the cores (at most 4) for images", min=0)
    eval_freq: int = _f(10_000, "evaluate every this many env steps (0 = never during training; a run directory still gets a final evaluation)", min=0)
    eval_episodes: int = _f(10, "episodes per evaluation", min=1)
    checkpoint_freq: int = _f(25_000, "write a checkpoint every this many env steps (0 = only at the end)", min=0)
    log_interval: int = _f(1_000, "write a metrics row every this many env steps", min=1)


@dataclass(frozen=True, kw_only=True)
class DQNConfig(RunConfig):
    """Deep Q-learning with every trick of the lecture and two beyond it (dueling, prioritized replay).

    The lecture's "Deep Q-learning v1" is ``replay=False, target_update_interval=0,
    stop_gradient=False, eps_start=0, eps_end=0``; "v2" adds ε-greedy and ``stop_gradient=True``.
    Presets ``lecture-v1`` and ``lecture-v2`` set exactly these.
    """

    lr: float = _f(1e-4, "Adam learning rate", min=0.0, exclusive_min=True)
    anneal_lr: bool = _f(False, "decay the learning rate linearly to 0 over total_steps")
    adam_eps: float = _f(1e-8, "Adam epsilon", min=0.0, exclusive_min=True)
    gamma: float = _f(0.99, "discount factor γ", min=0.0, max=1.0)
    net_arch: list[int] = _f([64, 64], "hidden layer sizes of the MLP torso (vector observations)")
    dueling: bool = _f(False, "dueling head: Q = V + A - mean(A)")
    loss: Literal["huber", "mse"] = _f("huber", "regression loss on the bootstrapped error")
    max_grad_norm: float = _f(10.0, "clip the gradient's global norm to this (0 = no clipping)", min=0.0)
    batch_size: int = _f(32, "transitions per gradient step", min=1)
    replay: bool = _f(True, "experience replay; off = learn from the latest transitions only (lecture v1/v2)")
    buffer_size: int = _f(100_000, "replay capacity in transitions", min=1)
    learning_starts: int = _f(1_000, "env steps collected before the first update", min=0)
    train_freq: int = _f(4, "env steps between training phases", min=1)
    gradient_steps: int = _f(1, "gradient steps per training phase", min=1)
    target_update_interval: int = _f(
        1_000, "env steps between target-network updates (0 = no target network: bootstrap from Q_θ)", min=0)
    tau: float = _f(1.0, "target update rate: 1 = hard copy, <1 = Polyak averaging", min=0.0, max=1.0,
                    exclusive_min=True)
    stop_gradient: bool = _f(True, "⊥ on the target; off lets the gradient flow into the target (lecture v1)")
    double_q: bool = _f(True, "double Q-learning: online net picks a', target net scores it")
    n_step: int = _f(1, "multi-step returns: bootstrap after n rewards", min=1)
    eps_start: float = _f(1.0, "ε at step 0", min=0.0, max=1.0)
    eps_end: float = _f(0.05, "ε after the decay", min=0.0, max=1.0)
    eps_fraction: float = _f(0.1, "fraction of total_steps over which ε decays linearly", min=0.0, max=1.0)
    eval_eps: float = _f(0.0, "ε used during evaluation", min=0.0, max=1.0)
    prioritized: bool = _f(False, "prioritized replay (proportional) with importance weights")
    per_alpha: float = _f(0.6, "priority exponent α", min=0.0)
    per_beta_start: float = _f(0.4, "importance-weight exponent β at step 0 (annealed to 1)", min=0.0, max=1.0)
    per_eps: float = _f(1e-6, "added to |TD error| so no priority is zero", min=0.0, exclusive_min=True)


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

    lr: float = _f(7e-4, "learning rate (one optimizer over actor and critic)", min=0.0, exclusive_min=True)
    critic_lr: float = _f(0.0, "the critic's own learning rate α_c, the actor keeping lr as α_a (0 = lr for both; "
                          "needs shared_torso=false)", min=0.0)
    optimizer: Literal["adam", "rmsprop"] = _f("adam", "optimizer")
    optim_eps: float = _f(1e-5, "optimizer epsilon", min=0.0, exclusive_min=True)
    anneal_lr: bool = _f(False, "decay the learning rate linearly to 0 over total_steps")
    gamma: float = _f(0.99, "discount factor γ", min=0.0, max=1.0)
    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = _f("gae", "the weight Ψ_t of ∇ log π")
    critic_target: Literal["bootstrap", "rollout"] = _f(
        "bootstrap", "V_φ regresses on ⊥(r' + γ V_φ(s')) or on the rollout's G_t (baseline estimator)")
    gae_lambda: float = _f(1.0, "λ of GAE (1 = n-step returns, 0 = one-step TD advantage)", min=0.0, max=1.0)
    collect: Literal["steps", "episodes"] = _f(
        "steps", "update after n_steps steps of every env, or after batch_episodes complete episodes")
    n_steps: int = _f(5, "rollout length per env between updates (collect=steps; 1 = online)", min=1)
    batch_episodes: int = _f(1, "complete episodes per update (collect=episodes)", min=1)
    discount_weighting: bool = _f(False, "multiply Ψ_t by γ^t as in the lecture's estimator (usually dropped)")
    normalize_advantage: bool = _f(False, "standardize Ψ within each batch")
    normalize_obs: bool = _f(False, "scale vector observations by running mean and std (clipped to ±10)")
    normalize_reward: bool = _f(False, "divide rewards by the running std of the discounted return (clipped to ±10)")
    ent_coef: float = _f(0.0, "entropy bonus coefficient", min=0.0)
    vf_coef: float = _f(0.5, "critic loss coefficient", min=0.0)
    max_grad_norm: float = _f(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    net_arch: list[int] = _f([64, 64], "hidden layers of each MLP torso")
    activation: Literal["relu", "tanh"] = _f("relu", "the MLP torsos' activation (SB3's and CleanRL's PPO and A2C use tanh)")
    shared_torso: bool = _f(False, "actor and critic share one torso")
    log_std_init: float = _f(0.0, "initial log σ of Gaussian policies")


@dataclass(frozen=True, kw_only=True)
class ReinforceConfig(PGConfig):
    """REINFORCE: Monte Carlo policy gradient over complete episodes (``estimator=baseline`` adds V_φ)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = _f("reinforce", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = _f("episodes", "update after complete episodes")
    batch_episodes: int = _f(4, "complete episodes per update", min=1)
    lr: float = _f(1e-3, "learning rate", min=0.0, exclusive_min=True)
    max_grad_norm: float = _f(0.0, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = _f(100_000, "environment steps to train for", min=1)


@dataclass(frozen=True, kw_only=True)
class ActorCriticConfig(PGConfig):
    """Advantage actor-critic as the lecture states it: batch mode over whole trajectories
    (``collect=episodes``) or online, one update per step (``collect=steps n_steps=1``)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = _f("advantage", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = _f("episodes", "batch mode (episodes) or online (steps, n_steps=1)")
    batch_episodes: int = _f(1, "complete episodes per update (batch mode)", min=1)
    lr: float = _f(1e-3, "learning rate", min=0.0, exclusive_min=True)
    total_steps: int = _f(100_000, "environment steps to train for", min=1)


@dataclass(frozen=True, kw_only=True)
class A2CConfig(PGConfig):
    """A2C: many synchronous envs, n-step advantages, entropy bonus (Stable-Baselines3's defaults)."""

    num_envs: int = _f(8, "parallel environments", min=1)
    optimizer: Literal["adam", "rmsprop"] = _f("rmsprop", "optimizer")
    total_steps: int = _f(500_000, "environment steps to train for", min=1)


@dataclass(frozen=True, kw_only=True)
class PPOConfig(PGConfig):
    """PPO: the clipped surrogate objective, several epochs of minibatches per rollout."""

    lr: float = _f(3e-4, "learning rate", min=0.0, exclusive_min=True)
    n_steps: int = _f(2048, "rollout length per env between updates", min=1)
    gae_lambda: float = _f(0.95, "λ of GAE", min=0.0, max=1.0)
    normalize_advantage: bool = _f(True, "standardize advantages within each minibatch")
    n_epochs: int = _f(10, "passes over each rollout", min=1)
    minibatch_size: int = _f(64, "minibatch size (0 = the whole rollout in one batch)", min=0)
    clip_range: float = _f(0.2, "ratio clip ε", min=0.0, exclusive_min=True)
    anneal_clip_range: bool = _f(False, "decay the ratio clip ε linearly to 0 over total_steps (SB3's lin_ε)")
    clip_range_vf: float = _f(0.0, "clip the value update around the old values (0 = off)", min=0.0)
    target_kl: float = _f(0.0, "stop an update's epochs when the KL estimate exceeds this (0 = off)", min=0.0)
    max_grad_norm: float = _f(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = _f(1_000_000, "environment steps to train for", min=1)


@dataclass(frozen=True, kw_only=True)
class WorldModelConfig(RunConfig):
    """World models: collect with the current policy, fit the VAE, fit the latent dynamics, train an
    advantage actor-critic in dreams, repeat.  Every phase's budget is a setting.
    """

    total_steps: int = _f(20_000, "environment steps to train for", min=1)
    eval_freq: int = _f(2_000, "evaluate every this many env steps (0 = never during training)", min=0)
    log_interval: int = _f(500, "write a metrics row every this many env steps", min=1)
    # 1. collect
    prefill_steps: int = _f(1_000, "env steps with uniformly random actions before the first fit", min=0)
    collect_steps: int = _f(500, "env steps with the current policy per iteration of the loop", min=1)
    buffer_size: int = _f(100_000, "real transitions kept for fitting", min=1)
    # 2. VAE q_ψ(z|s), p_ψ(ŝ|z)
    latent_dim: int = _f(16, "size of the latent state z", min=1)
    vae_hidden: list[int] = _f([256, 256], "hidden layers of the VAE's MLPs (vector observations)")
    vae_steps: int = _f(200, "VAE gradient steps per iteration", min=0)
    vae_lr: float = _f(1e-3, "VAE learning rate (Adam)", min=0.0, exclusive_min=True)
    beta: float = _f(0.1, "weight of KL(q(z|s) || N(0, I)) in the VAE loss (1 = the ELBO; below 1 keeps more "
                     "of s in z: at 1 a VAE with a learned σ leaves Pendulum's sin θ out of z)", min=0.0)
    free_nats: float = _f(0.0, "do not push an observation's KL below this many nats", min=0.0)
    # 3. transition p_ψ(z'|z,a), reward p_ψ(r'|z'), continue p_ψ(c|z')
    model_hidden: list[int] = _f([256, 256], "hidden layers of the transition, reward and continue MLPs")
    transition_residual: bool = _f(True, "the transition MLP predicts the change z' - z (else z' itself)")
    model_steps: int = _f(200, "dynamics gradient steps per iteration", min=0)
    model_lr: float = _f(1e-3, "dynamics learning rate (Adam)", min=0.0, exclusive_min=True)
    batch_size: int = _f(256, "real transitions per VAE or dynamics gradient step", min=1)
    # 4. actor-critic in the dream
    dream_iterations: int = _f(50, "dreams per iteration; each is horizon online actor-critic updates", min=0)
    dream_batch: int = _f(256, "dreams run in parallel, each from an encoded real state", min=1)
    horizon: int = _f(15, "dream length T in steps", min=1)
    gamma: float = _f(0.99, "discount factor γ", min=0.0, max=1.0)
    net_arch: list[int] = _f([64, 64], "hidden layers of the actor π_θ(a|z) and the critic V_Φ(z)")
    actor_lr: float = _f(3e-4, "actor learning rate α_a (Adam)", min=0.0, exclusive_min=True)
    critic_lr: float = _f(1e-3, "critic learning rate α_c (Adam)", min=0.0, exclusive_min=True)
    critic_tau: float = _f(1.0, "bootstrap from a slow copy V_Φ⁻ ← τ V_Φ + (1-τ) V_Φ⁻ updated every dream step "
                                "(1 = from V_Φ itself, as the lecture)", min=0.0, max=1.0, exclusive_min=True)
    ent_coef: float = _f(1e-3, "entropy bonus coefficient", min=0.0)
    max_grad_norm: float = _f(10.0, "clip each optimizer's gradient norm (0 = off)", min=0.0)
    normalize_advantage: bool = _f(False, "standardize the advantages of each dream step")
    picture_freq: int = _f(5_000, "write a reconstruction grid to the run directory every this many env steps (0 = off)", min=0)


@dataclass(frozen=True, kw_only=True)
class DreamerConfig(RunConfig):
    """Dreamer: an RSSM world model learned from replayed sequences, and an actor that maximizes
    λ-returns of imagined trajectories by backpropagating through the learned dynamics.  Model
    sizes are named presets (``--preset debug``, ``S``, ``M``); the defaults are ``S``."""

    total_steps: int = _f(50_000, "environment steps to train for", min=1)
    eval_freq: int = _f(5_000, "evaluate every this many env steps (0 = never during training)", min=0)
    log_interval: int = _f(1_000, "write a metrics row every this many env steps", min=1)
    # model size
    latent: Literal["categorical", "gaussian"] = _f("categorical", "stochastic state: one-hot classes (V2/V3) or Gaussian (V1)")
    deter: int = _f(128, "GRU (deterministic) state size", min=1)
    stoch: int = _f(16, "stochastic variables (categorical) or dimensions (Gaussian)", min=1)
    classes: int = _f(8, "classes per categorical variable", min=2)
    hidden: int = _f(128, "width of every MLP layer", min=1)
    layers: int = _f(2, "layers of the reward, continue, actor and critic MLPs and the vector encoder", min=1)
    unimix: float = _f(0.01, "uniform mixture in categorical latents and discrete actions", min=0.0, max=1.0)
    bins: int = _f(255, "two-hot bins (symlog space, ±20) of the reward and value heads", min=3)
    # world-model learning
    batch_size: int = _f(16, "sequences per gradient step", min=1)
    batch_length: int = _f(64, "steps per sequence", min=2)
    buffer_size: int = _f(1_000_000, "replay capacity in steps", min=1)
    prefill_steps: int = _f(2_500, "env steps with uniformly random actions before the first update", min=0)
    replay_ratio: float = _f(0.25, "gradient steps per env step (e.g. 0.25 = one every 4 steps)", min=0.0,
                             exclusive_min=True)
    model_lr: float = _f(3e-4, "world-model learning rate (Adam)", min=0.0, exclusive_min=True)
    free_bits: float = _f(1.0, "KL below this many nats is not penalized", min=0.0)
    dyn_scale: float = _f(0.5, "weight of the dynamics KL: prior towards the (⊥) posterior", min=0.0)
    rep_scale: float = _f(0.1, "weight of the representation KL: posterior towards the (⊥) prior", min=0.0)
    model_grad_norm: float = _f(1000.0, "clip the world model's gradient norm", min=0.0, exclusive_min=True)
    # behaviour learning in imagination
    horizon: int = _f(45, "imagined steps per start state (DreamerV3: 15; 45 keeps CartPole from falling back, "
                          "benchmarks/README.md)", min=1)
    imagine_starts: int = _f(256, "posterior states of each batch that start a dream (0 = all batch_size x "
                                  "batch_length, as DreamerV3; fewer cost less on a CPU)", min=0)
    gamma: float = _f(0.997, "discount factor γ (1 - 1/333, DreamerV3's horizon)", min=0.0, max=1.0)
    lam: float = _f(0.95, "λ of the λ-returns", min=0.0, max=1.0)
    actor_grad: Literal["dynamics", "reinforce"] = _f(
        "dynamics", "actor gradient: backprop through the dream (reparameterized) or REINFORCE")
    actor_lr: float = _f(8e-5, "actor learning rate (Adam)", min=0.0, exclusive_min=True)
    critic_lr: float = _f(8e-5, "critic learning rate (Adam)", min=0.0, exclusive_min=True)
    ent_coef: float = _f(3e-4, "entropy bonus η", min=0.0)
    critic_tau: float = _f(0.02, "slow target critic V_ψ⁻ ← τ V_ψ + (1-τ) V_ψ⁻ after each critic step", min=0.0,
                           max=1.0, exclusive_min=True)
    critic_slowreg: float = _f(0.0, "weight of the critic's pull towards the slow critic's prediction "
                                    "(DreamerV3: 1)", min=0.0)
    critic_replay: float = _f(0.0, "weight of a second critic loss on λ-returns of the replayed real sequences, "
                                   "which grounds V in real states (DreamerV3's repval: 0.3)", min=0.0)
    return_norm: bool = _f(True, "divide returns by max(1, P95 - P5) (EMA of percentiles), DreamerV3")
    ac_grad_norm: float = _f(100.0, "clip the actor's and the critic's gradient norms", min=0.0, exclusive_min=True)


# --------------------------------------------------------------------------------------------
# building and validating


def field_names(cls: type[RunConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Turn ``value`` (a Python object or a command-line string) into type ``tp`` or raise."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"setting {name!r} expects {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"setting {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}"
                              + did_you_mean(str(value), [str(c) for c in choices]))
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            value = [v for v in text.replace(",", " ").split()] if text else []
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(name, item, v) for v in value]
    if origin in (typing.Union, types.UnionType):
        raise AssertionError("optional settings are not used; encode 'off' as 0")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                raise bad from None
            if number.is_integer():
                return int(number)
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise AssertionError(f"unsupported config type {tp}")


def _check_range(f: dataclasses.Field, value: Any) -> None:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None:
        if f.metadata.get("exclusive_min") and value <= lo:
            raise ConfigError(f"setting {f.name!r} must be > {lo}, got {value}")
        if value < lo:
            raise ConfigError(f"setting {f.name!r} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"setting {f.name!r} must be <= {hi}, got {value}")


def build_config(cls: type[RunConfig], *layers: dict[str, Any]) -> RunConfig:
    """Defaults, then each layer of overrides in order (preset, file, command line, keywords)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {key!r} for {cls.__name__}." + did_you_mean(key, fields)
                                  + " Run 'deeprl train ALGO --help-config' to list the settings.")
            value = _coerce(key, hints[key], raw)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"setting {key!r} must be a finite number, got {value}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _check_range(fields[key], value)
            values[key] = value
    config = cls(**values)
    _check_consistency(config)
    return config


def _check_consistency(config: RunConfig) -> None:
    if not config.env.strip():
        raise ConfigError("setting 'env' is empty; give a Gymnasium id such as CartPole-v1")
    if isinstance(config, PGConfig):
        if config.estimator in ("reinforce", "baseline") and config.collect != "episodes":
            raise ConfigError(f"estimator '{config.estimator}' needs complete episodes for G_t; set collect=episodes")
        if config.critic_target == "rollout" and config.collect != "episodes":
            raise ConfigError("critic_target 'rollout' needs complete episodes for G_t; set collect=episodes")
    if isinstance(config, WorldModelConfig):
        for name in ("vae_hidden", "model_hidden", "net_arch"):
            if any(h < 1 for h in getattr(config, name)):
                raise ConfigError(f"setting {name!r} needs positive layer sizes, got {getattr(config, name)}")
    if isinstance(config, DQNConfig):
        if any(h < 1 for h in config.net_arch):
            raise ConfigError(f"setting 'net_arch' needs positive layer sizes, got {config.net_arch}")
        if config.replay and config.batch_size > config.buffer_size:
            raise ConfigError(f"batch_size {config.batch_size} exceeds buffer_size {config.buffer_size}; "
                              "lower batch_size or raise buffer_size")


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(cls: type[RunConfig], text: str) -> RunConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError("config JSON must be an object")
    return build_config(cls, data)


def describe(cls: type[RunConfig]) -> str:
    """A table of every setting: name, type, default, help (for --help-config)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name:<24} {_type_name(hints[f.name]):<22} {default!r:<14} {f.metadata['help']}")
    return "\n".join(lines)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["lr=5e-4", "double_q=false"]`` -> ``{"lr": "5e-4", "double_q": "false"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r} (example: --set lr=5e-4)")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------
# presets


def _preset_file(algo: str) -> dict[str, dict[str, Any]]:
    try:
        text = resources.files("deeprl.presets").joinpath(f"{algo}.yaml").read_text()
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) or {}
    return data


def list_presets(algos: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{algo: {preset_name: settings}}`` for every shipped preset (of ``algos``, in that order)."""
    if algos is None:
        algos = sorted(p.name[:-5] for p in resources.files("deeprl.presets").iterdir() if p.name.endswith(".yaml"))
    return {algo: _preset_file(algo) for algo in algos}


def _settings(preset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in preset.items() if k not in ("description", "results")}


def preset_for(algo: str, name: str) -> dict[str, Any]:
    """The settings of a named preset (a tuned env preset such as 'CartPole-v1', or 'lecture-v1')."""
    presets = _preset_file(algo)
    if name not in presets:
        raise ConfigError(f"no preset {name!r} for {algo}." + did_you_mean(name, presets)
                          + " Run 'deeprl presets' to list them.")
    return _settings(presets[name])


def default_preset(algo: str, env_id: str) -> dict[str, Any]:
    """The tuned preset named after ``env_id`` if one ships, else nothing."""
    presets = _preset_file(algo)
    return _settings(presets.get(env_id, {}))
