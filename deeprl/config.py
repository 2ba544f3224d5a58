"""Configuration: one frozen dataclass per algorithm, presets, and validated overrides.

Every setting is a keyword-only dataclass field whose ``help`` metadata is the documentation.
Values arrive as Python objects (``DQN(env, lr=1e-3)``), YAML presets or ``--set key=value``
strings; all three pass through :func:`build_config`, which rejects unknown keys (naming the
closest valid one), wrong types and out-of-range values with a :class:`ConfigError`.  A config
class built directly (``DQNConfig(num_envs=4)``, ``dataclasses.replace``) is checked the same way.

Every integer setting has a lower and an upper bound that its use implies (the ``MAX_*``
constants below): a value outside them is refused in one line that names the setting, the value
and the allowed range, before anything is allocated.  Integers are parsed as integers, never
through ``float``: ``"9007199254740993"`` is that integer exactly.  A decimal or exponent form
(``"1e5"``, ``"2.5e3"``, ``"100.0"``) is accepted where it is exactly an integer (it is read
with :mod:`decimal`, so it is exact however large); a Python or YAML float is accepted only up to
2**53, beyond which a float cannot tell neighbouring integers apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import dataclasses
import decimal
import functools
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml

from deeprl.errors import ConfigError, did_you_mean


# The bounds of the integer settings, from how each is used.
MAX_SEED = 2**63 - 1        # PCG64 takes any size, torch.manual_seed up to 2**64 - 1: int64 is common ground
MAX_STEPS = 2**62 - 1       # step counts and intervals: what a checkpoint's state.json is read back with
MAX_ENVS = 4096             # parallel envs: each is a live env object (a subprocess's share with async)
MAX_THREADS = 1024          # torch.set_num_threads / BLAS threads
MIN_PIXELS = 3              # the smallest image the CNN torsos take: GridCNN's unpadded 3x3 convolution
MAX_PIXELS = 256            # the Nature CNN's flattened output grows with the square of the side (25M weights at 256)
MAX_FRAME_STACK = 64        # stacked frames: channels of every stored observation
MAX_EPISODES = 10_000       # episodes per evaluation or per policy-gradient batch
MAX_BUFFER = 10**9          # replay rows: a buffer asks for rows x observation bytes when the agent is built
MAX_BATCH = 65_536          # samples per gradient step, dream starts
MAX_ROLLOUT = 2**22         # steps of one policy-gradient rollout, n_steps x num_envs (held in memory at once)
MAX_REPEATS = 100_000       # gradient steps, epochs or dreams per phase of the training loop
MAX_HORIZON = 1_000         # n-step returns, dream length
MAX_SEQUENCE = 10_000       # Dreamer's replayed sequence length
MAX_DREAM_STATES = 2**20    # Dreamer: states per world-model batch (batch_size x batch_length) and imagined per update
MAX_WIDTH = 65_536          # a layer's units, a latent's size
MAX_DEPTH = 64              # hidden layers of an MLP
MAX_WEIGHTS = 2**27         # weights between the layers the settings size (512 MiB in float32, before Adam's copies)
MAX_FLOAT_INT = 2**53       # the largest float that still tells every integer from its neighbours


_LAYERS = {"item_min": 1, "item_max": MAX_WIDTH, "max_len": MAX_DEPTH}  # bounds of a list of layer widths


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Settings every algorithm shares: the environment, the budget, logging and checkpoints."""

    env: str = _f("CartPole-v1", "Gymnasium id, including 'module:Env-v0' ids and ALE/ Atari ids")
    seed: int = _f(0, "seed for networks, exploration and environment resets", min=0, max=MAX_SEED)
    total_steps: int = _f(50_000, "environment steps to train for (summed over parallel envs)", min=1, max=MAX_STEPS)
    num_envs: int = _f(1, "parallel environments", min=1, max=MAX_ENVS)
    vectorization: Literal["sync", "async"] = _f("sync", "step envs in this process or in subprocesses")
    atari_wrappers: Literal["auto", "on", "off"] = _f(
        "auto", "standard Atari preprocessing; 'auto' turns it on for ALE ids")
    pixels: int = _f(0, "observe the env's rgb_array render resized to N x N pixels instead (0 = off)",
                     min=0, max=MAX_PIXELS, min_on=MIN_PIXELS)
    grayscale: bool = _f(False, "pixel observations in grey instead of RGB (with pixels > 0)")
    frame_stack: int = _f(1, "stack this many pixel frames along the channels (with pixels > 0)",
                          min=1, max=MAX_FRAME_STACK)
    max_episode_steps: int = _f(0, "truncate episodes after this many steps (0 = the env's own limit, or 100,000 "
                                   "for an env registered without one, so that every episode ends)",
                                   min=0, max=MAX_STEPS)
    device: str = _f("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    torch_threads: int = _f(0, "CPU threads for torch and NumPy's BLAS; 0 picks 1 for vector observations, half the cores (at most 4) for images",
                            min=0, max=MAX_THREADS)
    eval_freq: int = _f(10_000, "evaluate every this many env steps (0 = never during training; a run directory still gets a final evaluation)",
                        min=0, max=MAX_STEPS)
    eval_episodes: int = _f(10, "episodes per evaluation", min=1, max=MAX_EPISODES)
    checkpoint_freq: int = _f(25_000, "write a checkpoint every this many env steps (0 = only at the end)",
                              min=0, max=MAX_STEPS)
    log_interval: int = _f(1_000, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)

    def __post_init__(self) -> None:  # a config built directly is checked as build_config checks one
        _validate(self)


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
    net_arch: list[int] = _f([64, 64], "hidden layer sizes of the MLP torso (vector observations)", **_LAYERS)
    dueling: bool = _f(False, "dueling head: Q = V + A - mean(A)")
    loss: Literal["huber", "mse"] = _f("huber", "regression loss on the bootstrapped error")
    max_grad_norm: float = _f(10.0, "clip the gradient's global norm to this (0 = no clipping)", min=0.0)
    batch_size: int = _f(32, "transitions per gradient step", min=1, max=MAX_BATCH)
    replay: bool = _f(True, "experience replay; off = learn from the latest transitions only (lecture v1/v2)")
    buffer_size: int = _f(100_000, "replay capacity in transitions", min=1, max=MAX_BUFFER)
    learning_starts: int = _f(1_000, "env steps collected before the first update", min=0, max=MAX_STEPS)
    train_freq: int = _f(4, "env steps between training phases", min=1, max=MAX_STEPS)
    gradient_steps: int = _f(1, "gradient steps per training phase", min=1, max=MAX_REPEATS)
    target_update_interval: int = _f(
        1_000, "env steps between target-network updates (0 = no target network: bootstrap from Q_θ)",
        min=0, max=MAX_STEPS)
    tau: float = _f(1.0, "target update rate: 1 = hard copy, <1 = Polyak averaging", min=0.0, max=1.0,
                    exclusive_min=True)
    stop_gradient: bool = _f(True, "⊥ on the target; off lets the gradient flow into the target (lecture v1)")
    double_q: bool = _f(True, "double Q-learning: online net picks a', target net scores it")
    n_step: int = _f(1, "multi-step returns: bootstrap after n rewards", min=1, max=MAX_HORIZON)
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
    n_steps: int = _f(5, "rollout length per env between updates (collect=steps; 1 = online)", min=1, max=MAX_ROLLOUT)
    batch_episodes: int = _f(1, "complete episodes per update (collect=episodes)", min=1, max=MAX_EPISODES)
    discount_weighting: bool = _f(False, "multiply Ψ_t by γ^t as in the lecture's estimator (usually dropped)")
    normalize_advantage: bool = _f(False, "standardize Ψ within each batch")
    normalize_obs: bool = _f(False, "scale vector observations by running mean and std (clipped to ±10)")
    normalize_reward: bool = _f(False, "divide rewards by the running std of the discounted return (clipped to ±10)")
    ent_coef: float = _f(0.0, "entropy bonus coefficient", min=0.0)
    vf_coef: float = _f(0.5, "critic loss coefficient", min=0.0)
    max_grad_norm: float = _f(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    net_arch: list[int] = _f([64, 64], "hidden layers of each MLP torso", **_LAYERS)
    activation: Literal["relu", "tanh"] = _f("relu", "the MLP torsos' activation (SB3's and CleanRL's PPO and A2C use tanh)")
    shared_torso: bool = _f(False, "actor and critic share one torso")
    log_std_init: float = _f(0.0, "initial log σ of Gaussian policies")


@dataclass(frozen=True, kw_only=True)
class ReinforceConfig(PGConfig):
    """REINFORCE: Monte Carlo policy gradient over complete episodes (``estimator=baseline`` adds V_φ)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = _f("reinforce", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = _f("episodes", "update after complete episodes")
    batch_episodes: int = _f(4, "complete episodes per update", min=1, max=MAX_EPISODES)
    lr: float = _f(1e-3, "learning rate", min=0.0, exclusive_min=True)
    max_grad_norm: float = _f(0.0, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = _f(100_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class ActorCriticConfig(PGConfig):
    """Advantage actor-critic as the lecture states it: batch mode over whole trajectories
    (``collect=episodes``) or online, one update per step (``collect=steps n_steps=1``)."""

    estimator: Literal["reinforce", "baseline", "q", "advantage", "gae"] = _f("advantage", "the weight Ψ_t of ∇ log π")
    collect: Literal["steps", "episodes"] = _f("episodes", "batch mode (episodes) or online (steps, n_steps=1)")
    batch_episodes: int = _f(1, "complete episodes per update (batch mode)", min=1, max=MAX_EPISODES)
    lr: float = _f(1e-3, "learning rate", min=0.0, exclusive_min=True)
    total_steps: int = _f(100_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class A2CConfig(PGConfig):
    """A2C: many synchronous envs, n-step advantages, entropy bonus (Stable-Baselines3's defaults)."""

    num_envs: int = _f(8, "parallel environments", min=1, max=MAX_ENVS)
    optimizer: Literal["adam", "rmsprop"] = _f("rmsprop", "optimizer")
    total_steps: int = _f(500_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class PPOConfig(PGConfig):
    """PPO: the clipped surrogate objective, several epochs of minibatches per rollout."""

    lr: float = _f(3e-4, "learning rate", min=0.0, exclusive_min=True)
    n_steps: int = _f(2048, "rollout length per env between updates", min=1, max=MAX_ROLLOUT)
    gae_lambda: float = _f(0.95, "λ of GAE", min=0.0, max=1.0)
    normalize_advantage: bool = _f(True, "standardize advantages within each minibatch")
    n_epochs: int = _f(10, "passes over each rollout", min=1, max=MAX_REPEATS)
    minibatch_size: int = _f(64, "minibatch size (0 = the whole rollout in one batch)", min=0, max=MAX_ROLLOUT)
    clip_range: float = _f(0.2, "ratio clip ε", min=0.0, exclusive_min=True)
    anneal_clip_range: bool = _f(False, "decay the ratio clip ε linearly to 0 over total_steps (SB3's lin_ε)")
    clip_range_vf: float = _f(0.0, "clip the value update around the old values (0 = off)", min=0.0)
    target_kl: float = _f(0.0, "stop an update's epochs when the KL estimate exceeds this (0 = off)", min=0.0)
    max_grad_norm: float = _f(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = _f(1_000_000, "environment steps to train for", min=1, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class WorldModelConfig(RunConfig):
    """World models: collect with the current policy, fit the VAE, fit the latent dynamics, train an
    advantage actor-critic in dreams, repeat.  Every phase's budget is a setting.
    """

    total_steps: int = _f(20_000, "environment steps to train for", min=1, max=MAX_STEPS)
    eval_freq: int = _f(2_000, "evaluate every this many env steps (0 = never during training)", min=0, max=MAX_STEPS)
    log_interval: int = _f(500, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)
    # 1. collect
    prefill_steps: int = _f(1_000, "env steps with uniformly random actions before the first fit", min=0, max=MAX_STEPS)
    collect_steps: int = _f(500, "env steps with the current policy per iteration of the loop", min=1, max=MAX_STEPS)
    buffer_size: int = _f(100_000, "real transitions kept for fitting", min=1, max=MAX_BUFFER)
    # 2. VAE q_ψ(z|s), p_ψ(ŝ|z)
    latent_dim: int = _f(16, "size of the latent state z", min=1, max=MAX_WIDTH)
    vae_hidden: list[int] = _f([256, 256], "hidden layers of the VAE's MLPs (vector observations)", **_LAYERS)
    vae_steps: int = _f(200, "VAE gradient steps per iteration", min=0, max=MAX_REPEATS)
    vae_lr: float = _f(1e-3, "VAE learning rate (Adam)", min=0.0, exclusive_min=True)
    beta: float = _f(0.1, "weight of KL(q(z|s) || N(0, I)) in the VAE loss (1 = the ELBO; below 1 keeps more "
                     "of s in z: at 1 a VAE with a learned σ leaves Pendulum's sin θ out of z)", min=0.0)
    free_nats: float = _f(0.0, "do not push an observation's KL below this many nats", min=0.0)
    # 3. transition p_ψ(z'|z,a), reward p_ψ(r'|z'), continue p_ψ(c|z')
    model_hidden: list[int] = _f([256, 256], "hidden layers of the transition, reward and continue MLPs", **_LAYERS)
    transition_residual: bool = _f(True, "the transition MLP predicts the change z' - z (else z' itself)")
    model_steps: int = _f(200, "dynamics gradient steps per iteration", min=0, max=MAX_REPEATS)
    model_lr: float = _f(1e-3, "dynamics learning rate (Adam)", min=0.0, exclusive_min=True)
    batch_size: int = _f(256, "real transitions per VAE or dynamics gradient step", min=1, max=MAX_BATCH)
    # 4. actor-critic in the dream
    dream_iterations: int = _f(50, "dreams per iteration; each is horizon online actor-critic updates",
                               min=0, max=MAX_REPEATS)
    dream_batch: int = _f(256, "dreams run in parallel, each from an encoded real state", min=1, max=MAX_BATCH)
    horizon: int = _f(15, "dream length T in steps", min=1, max=MAX_HORIZON)
    gamma: float = _f(0.99, "discount factor γ", min=0.0, max=1.0)
    net_arch: list[int] = _f([64, 64], "hidden layers of the actor π_θ(a|z) and the critic V_Φ(z)", **_LAYERS)
    actor_lr: float = _f(3e-4, "actor learning rate α_a (Adam)", min=0.0, exclusive_min=True)
    critic_lr: float = _f(1e-3, "critic learning rate α_c (Adam)", min=0.0, exclusive_min=True)
    critic_tau: float = _f(1.0, "bootstrap from a slow copy V_Φ⁻ ← τ V_Φ + (1-τ) V_Φ⁻ updated every dream step "
                                "(1 = from V_Φ itself, as the lecture)", min=0.0, max=1.0, exclusive_min=True)
    ent_coef: float = _f(1e-3, "entropy bonus coefficient", min=0.0)
    max_grad_norm: float = _f(10.0, "clip each optimizer's gradient norm (0 = off)", min=0.0)
    normalize_advantage: bool = _f(False, "standardize the advantages of each dream step")
    picture_freq: int = _f(5_000, "write a reconstruction grid to the run directory every this many env steps (0 = off)",
                           min=0, max=MAX_STEPS)


@dataclass(frozen=True, kw_only=True)
class DreamerConfig(RunConfig):
    """Dreamer: an RSSM world model learned from replayed sequences, and an actor that maximizes
    λ-returns of imagined trajectories by backpropagating through the learned dynamics.  Model
    sizes are named presets (``--preset debug``, ``S``, ``M``); the defaults are ``S``."""

    total_steps: int = _f(50_000, "environment steps to train for", min=1, max=MAX_STEPS)
    eval_freq: int = _f(5_000, "evaluate every this many env steps (0 = never during training)", min=0, max=MAX_STEPS)
    log_interval: int = _f(1_000, "write a metrics row every this many env steps", min=1, max=MAX_STEPS)
    # model size
    latent: Literal["categorical", "gaussian"] = _f("categorical", "stochastic state: one-hot classes (V2/V3) or Gaussian (V1)")
    deter: int = _f(128, "GRU (deterministic) state size", min=1, max=MAX_WIDTH)
    stoch: int = _f(16, "stochastic variables (categorical) or dimensions (Gaussian)", min=1, max=MAX_WIDTH)
    classes: int = _f(8, "classes per categorical variable", min=2, max=MAX_WIDTH)
    hidden: int = _f(128, "width of every MLP layer", min=1, max=MAX_WIDTH)
    layers: int = _f(2, "layers of the reward, continue, actor and critic MLPs and the vector encoder",
                     min=1, max=MAX_DEPTH)
    unimix: float = _f(0.01, "uniform mixture in categorical latents and discrete actions", min=0.0, max=1.0)
    bins: int = _f(255, "two-hot bins (symlog space, ±20) of the reward and value heads", min=3, max=MAX_WIDTH)
    # world-model learning
    batch_size: int = _f(16, "sequences per gradient step", min=1, max=MAX_BATCH)
    batch_length: int = _f(64, "steps per sequence", min=2, max=MAX_SEQUENCE)
    buffer_size: int = _f(1_000_000, "replay capacity in steps", min=1, max=MAX_BUFFER)
    prefill_steps: int = _f(2_500, "env steps with uniformly random actions before the first update",
                            min=0, max=MAX_STEPS)
    replay_ratio: float = _f(0.25, "gradient steps per env step (e.g. 0.25 = one every 4 steps)", min=0.0,
                             exclusive_min=True)
    model_lr: float = _f(3e-4, "world-model learning rate (Adam)", min=0.0, exclusive_min=True)
    free_bits: float = _f(1.0, "KL below this many nats is not penalized", min=0.0)
    dyn_scale: float = _f(0.5, "weight of the dynamics KL: prior towards the (⊥) posterior", min=0.0)
    rep_scale: float = _f(0.1, "weight of the representation KL: posterior towards the (⊥) prior", min=0.0)
    model_grad_norm: float = _f(1000.0, "clip the world model's gradient norm", min=0.0, exclusive_min=True)
    # behaviour learning in imagination
    horizon: int = _f(45, "imagined steps per start state (DreamerV3: 15; 45 keeps CartPole from falling back, "
                          "benchmarks/README.md)", min=1, max=MAX_HORIZON)
    imagine_starts: int = _f(256, "posterior states of each batch that start a dream (0 = all batch_size x "
                                  "batch_length, as DreamerV3; fewer cost less on a CPU)", min=0, max=MAX_BATCH)
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


def _show(value: Any) -> str:
    """A value for a one-line error message: an integer too long to print is given by its size,
    a long text or list is cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_show(v) for v in value[:8])
        return f"[{items}{', ...' if len(value) > 8 else ''}]"
    text = repr(value) if isinstance(value, str) else " ".join(str(value).split())
    return text if len(text) <= 80 else text[:70] + "..." + text[-1]


def _show_bound(n: int | float) -> str:
    if isinstance(n, int) and n >= 2**20 and (n + 1) & n == 0:  # 2**k - 1
        return f"{n} (2**{(n + 1).bit_length() - 1} - 1)"
    if isinstance(n, int) and n >= 2**20 and n & (n - 1) == 0:
        return f"{n} (2**{n.bit_length() - 1})"
    return str(n)


class _TooLong(ValueError):
    """An integer written with more digits than any setting's bound has."""


def parse_int(text: str) -> int:
    """The integer ``text`` writes, exactly: ``"9007199254740993"``, ``"-1"``, ``"20_000"``; and
    decimal or exponent forms that are exactly an integer (``"1e5"``, ``"2.5e3"``, ``"100.0"``),
    read with :mod:`decimal`, never through ``float``.  ValueError for anything else (``"32.5"``,
    ``"nan"``, ``"0x10"``, ``"lots"``) and for a number of more than 100 digits (no bound has that many)."""
    text = text.strip()
    try:
        return int(text, 10)
    except ValueError:
        pass
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"not an integer: {text!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"not an integer: {text!r}")
    if number != 0 and number.adjusted() >= 100:  # 1e1000000000 would take minutes to write out
        raise _TooLong(f"more than 100 digits: {text!r}")
    return int(number)


def _coerce(name: str, tp: Any, value: Any, f: dataclasses.Field | None = None) -> Any:
    """Turn ``value`` (a Python object or a command-line string) into type ``tp`` or raise."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"setting {name!r} expects {_type_name(tp)}, got {_show(value)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"setting {name!r} must be one of {', '.join(map(repr, choices))}, got {_show(value)}"
                              + did_you_mean(str(value), [str(c) for c in choices]))
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            value = [v for v in text.replace(",", " ").split()] if text else []
        if not isinstance(value, (list, tuple)):
            raise bad
        max_len = f.metadata.get("max_len") if f is not None else None
        if max_len is not None and len(value) > max_len:  # before reading a million items
            raise ConfigError(f"setting {name!r} has {len(value)} layers, at most {max_len} are allowed")
        return [_coerce(name, item, v, f) for v in value]
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
        if isinstance(value, numbers.Integral):  # int, and NumPy's integers
            return int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            if abs(value) > MAX_FLOAT_INT:
                raise ConfigError(f"setting {name!r} expects int, got the float {value!r}: beyond 2**53 a float "
                                  "is not exact; write the integer itself")
            return int(value)
        if isinstance(value, str):
            try:
                return parse_int(value)
            except _TooLong:
                allowed = _range_text(f) if f is not None else "an integer of at most 100 digits"
                raise ConfigError(f"setting {name!r} must be {allowed}, got {_show(value.strip())}") from None
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, numbers.Real):
            try:
                return float(value)
            except OverflowError:  # an int beyond 1.8e308
                raise ConfigError(f"setting {name!r} must be a finite number, got {_show(value)}") from None
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


def _range_text(f: dataclasses.Field) -> str:
    """The allowed values of an integer setting, e.g. ``>= 1 and <= 4096``, ``0 (off) or >= 3 and <= 256``."""
    lo, hi = f.metadata.get("min", f.metadata.get("item_min")), f.metadata.get("max", f.metadata.get("item_max"))
    parts = ([f">= {f.metadata.get('min_on', lo)}"] if lo is not None else []) + \
        ([f"<= {_show_bound(hi)}"] if hi is not None else [])
    return ("0 (off) or " if f.metadata.get("min_on") is not None else "") + " and ".join(parts)


def _check_range(f: dataclasses.Field, value: Any) -> None:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, int):
        on = f.metadata.get("min_on")
        if (lo is not None and value < lo) or (hi is not None and value > hi) or (on is not None and 0 < value < on):
            raise ConfigError(f"setting {f.name!r} must be {_range_text(f)}, got {_show(value)}")
        return
    if lo is not None:
        if f.metadata.get("exclusive_min") and value <= lo:
            raise ConfigError(f"setting {f.name!r} must be > {lo}, got {value}")
        if value < lo:
            raise ConfigError(f"setting {f.name!r} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"setting {f.name!r} must be <= {hi}, got {value}")


def _check_items(f: dataclasses.Field, value: list[int]) -> None:
    lo, hi, max_len = f.metadata.get("item_min"), f.metadata.get("item_max"), f.metadata.get("max_len")
    if max_len is not None and len(value) > max_len:
        raise ConfigError(f"setting {f.name!r} has {len(value)} layers, at most {max_len} are allowed")
    for item in value:
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            raise ConfigError(f"setting {f.name!r} needs layer sizes >= {lo} and <= {hi}, got {_show(item)} "
                              f"in {_show(value)}")


def _check_value(f: dataclasses.Field, tp: Any, value: Any) -> Any:
    """``value`` coerced to the setting's type and checked against its bounds, or a ConfigError."""
    value = _coerce(f.name, tp, value, f)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"setting {f.name!r} must be a finite number, got {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(f, value)
    if isinstance(value, list):
        _check_items(f, value)
    return value


@functools.cache
def _schema(cls: type[RunConfig]) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)


def build_config(cls: type[RunConfig], *layers: dict[str, Any]) -> RunConfig:
    """Defaults, then each layer of overrides in order (preset, file, command line, keywords)."""
    fields, hints = _schema(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {key!r} for {cls.__name__}." + did_you_mean(key, fields)
                                  + " Run 'deeprl train ALGO --help-config' to list the settings.")
            values[key] = _check_value(fields[key], hints[key], raw)
    return cls(**values)  # __post_init__ checks the whole config (_validate)


def _validate(config: RunConfig) -> None:
    """Every setting of a config being constructed: typed (coerced in place, as build_config
    would), within its bounds, and consistent with the others."""
    fields, hints = _schema(type(config))
    for name, f in fields.items():
        value = getattr(config, name)
        checked = _check_value(f, hints[name], value)
        if checked is not value:
            object.__setattr__(config, name, checked)  # frozen: the one place that may
    _check_consistency(config)


def _weights(widths: list[int]) -> int:
    """Weights of the linear maps between consecutive layers of these widths."""
    return sum(a * b for a, b in zip(widths, widths[1:]))


def _network_weights(config: RunConfig) -> tuple[int, str]:
    """About how many weights the networks' layers sized by the settings alone hold (those that
    also depend on the env's observation and action sizes are left out), and the settings."""
    if isinstance(config, DQNConfig):
        return 2 * _weights(config.net_arch), f"net_arch {config.net_arch}"  # online and target Q
    if isinstance(config, PGConfig):
        return (1 if config.shared_torso else 2) * _weights(config.net_arch), f"net_arch {config.net_arch}"
    if isinstance(config, WorldModelConfig):
        z, vae, model, ac = config.latent_dim, config.vae_hidden, config.model_hidden, config.net_arch
        n = 2 * _weights(vae) + 3 * z * (vae[-1] if vae else 0)                  # encoder, decoder
        n += 3 * (_weights([z, *model]) + (model[-1] if model else z) * 2 * z)   # transition, reward, continue
        n += 4 * _weights([z, *ac])                                              # actor, critic, slow critic
        return n, f"latent_dim {z}, vae_hidden {vae}, model_hidden {model} and net_arch {ac}"
    if isinstance(config, DreamerConfig):
        d, h, layers = config.deter, config.hidden, config.layers
        s = config.stoch * config.classes if config.latent == "categorical" else config.stoch
        stats = s if config.latent == "categorical" else 2 * s
        feature = d + s
        rssm = s * h + 3 * h * d + 3 * d * d + 2 * (d * h + h * stats)   # input layer, GRU, prior, posterior
        heads = 7 * _weights([feature, *[h] * layers]) + 3 * h * config.bins  # decoder, encoder, 5 heads; 3 two-hot
        return rssm + heads, (f"deter {d}, stoch {config.stoch}, classes {config.classes}, hidden {h}, layers "
                              f"{layers} and bins {config.bins}")
    return 0, ""


def _check_consistency(config: RunConfig) -> None:
    if not config.env.strip():
        raise ConfigError("setting 'env' is empty; give a Gymnasium id such as CartPole-v1")
    weights, sizes = _network_weights(config)
    if weights > MAX_WEIGHTS:
        raise ConfigError(f"{sizes} make networks of about {weights:,} weights; at most {_show_bound(MAX_WEIGHTS)} "
                          "are allowed: make the layers smaller")
    if isinstance(config, PGConfig):
        if config.estimator in ("reinforce", "baseline") and config.collect != "episodes":
            raise ConfigError(f"estimator '{config.estimator}' needs complete episodes for G_t; set collect=episodes")
        if config.critic_target == "rollout" and config.collect != "episodes":
            raise ConfigError("critic_target 'rollout' needs complete episodes for G_t; set collect=episodes")
        if config.collect == "steps" and config.n_steps * config.num_envs > MAX_ROLLOUT:
            raise ConfigError(f"n_steps {config.n_steps} x num_envs {config.num_envs} = "
                              f"{config.n_steps * config.num_envs} steps per rollout; at most "
                              f"{_show_bound(MAX_ROLLOUT)} are held in memory at once: lower n_steps or num_envs")
    if isinstance(config, (DQNConfig, WorldModelConfig)):
        if (not isinstance(config, DQNConfig) or config.replay) and config.batch_size > config.buffer_size:
            raise ConfigError(f"batch_size {config.batch_size} exceeds buffer_size {config.buffer_size}; "
                              "lower batch_size or raise buffer_size")
    if isinstance(config, DreamerConfig):
        batch = config.batch_size * config.batch_length
        if batch > MAX_DREAM_STATES:
            raise ConfigError(f"batch_size {config.batch_size} x batch_length {config.batch_length} = {batch:,} "
                              f"steps per world-model batch; at most {_show_bound(MAX_DREAM_STATES)} are allowed")
        starts = config.imagine_starts if 0 < config.imagine_starts < batch else batch
        if starts * config.horizon > MAX_DREAM_STATES:
            raise ConfigError(f"{starts:,} imagined starts (imagine_starts {config.imagine_starts}, of batch_size x "
                              f"batch_length) x horizon {config.horizon} = {starts * config.horizon:,} imagined "
                              f"states per update; at most {_show_bound(MAX_DREAM_STATES)} are allowed: lower "
                              "imagine_starts or horizon")
        rows = -(-config.buffer_size // config.num_envs)
        if config.batch_length > rows:
            raise ConfigError(f"batch_length {config.batch_length} exceeds the {rows:,} steps the replay keeps per "
                              f"env (buffer_size {config.buffer_size} / num_envs {config.num_envs}), so training "
                              "would never start; lower batch_length or raise buffer_size")


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
    """A table of every setting: name, type, default, help and an integer's bounds (for --help-config)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        bounds = f" [{_range_text(f)}]" if hints[f.name] is int else ""
        if hints[f.name] == list[int]:
            bounds = f" [each {_range_text(f)}; at most {f.metadata['max_len']} layers]"
        lines.append(f"  {f.name:<24} {_type_name(hints[f.name]):<22} {default!r:<14} {f.metadata['help']}{bounds}")
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


def resolve_config(cls: type[RunConfig], algo: str, env: str, *, preset: str | None = "auto",
                   overrides: Iterable[dict[str, Any]] = ()) -> RunConfig:
    """The one way a run's settings are layered, for the API, the command line, bench and sweep:
    the preset (``"auto"``: the tuned one named after ``env`` if it ships; a name: that one;
    ``None``: none), then each override in order, then ``env`` itself."""
    if preset == "auto":
        base = default_preset(algo, env)
    else:
        base = preset_for(algo, preset) if preset is not None else {}
    return build_config(cls, base, *overrides, {"env": env})
