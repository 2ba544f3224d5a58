"""How noisy is each policy-gradient estimator?  The lecture's central claim, measured.

At one fixed set of parameters (θ, φ), draw many independent batches of episodes, compute the
actor gradient ∇_θ Σ_t Ψ_t log π_θ(a_t|s_t) of each estimator on the *same* batches, and compare
their spread: the total variance (trace of the covariance over batches) and its ratio to the
squared norm of the mean gradient.  REINFORCE should be noisiest; the baseline should cut the
variance without moving the mean; critics cut it further at the price of bias.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from deeprl.agents.pg import PolicyGradient, Rollout, estimate
from deeprl.optim import grad_step, make_optimizer
from deeprl.plotting import figure_path, save_figure

ESTIMATORS = ("reinforce", "baseline", "q", "advantage")
LABELS = {"reinforce": "REINFORCE  G_t", "baseline": "baseline  G_t - V(s_t)", "q": "actor-critic  r' + γV(s')",
          "advantage": "advantage  r' + γV(s') - V(s)", "gae": "GAE(λ)"}


def actor_gradients(agent: PolicyGradient, rollout: Rollout, estimators: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Each estimator's flattened actor gradient on one batch (no parameter update).

    V_φ and log π_θ are evaluated once; only Ψ differs between estimators.
    """
    values, next_values = agent.values(rollout)
    params = agent.net.actor_parameters()
    log_probs = agent.net.policy(rollout.obs).log_prob(rollout.actions)
    # sum over the batch's steps, divided by its episodes: the lecture's per-trajectory estimator
    episodes = int((rollout.terminated | rollout.truncated).sum().clamp(min=1))
    out = {}
    for i, estimator in enumerate(estimators):
        config = dataclasses.replace(agent.config, estimator=estimator, collect="episodes",
                                     critic_target="bootstrap", normalize_advantage=False)
        psi, _ = estimate(config, rollout, values, next_values)
        if config.discount_weighting:
            psi = psi * config.gamma ** rollout.ep_time.to(psi.dtype)
        objective = (psi.reshape(-1) * log_probs).sum() / episodes
        grads = torch.autograd.grad(objective, params, retain_graph=i < len(estimators) - 1)
        out[estimator] = torch.cat([g.reshape(-1) for g in grads]).detach()
    return out


def fit_critic(agent: PolicyGradient, *, iterations: int = 40, episodes: int = 8, epochs: int = 10,
               lr: float = 1e-3) -> float:
    """Policy evaluation at frozen θ: regress V_φ on this policy's reward-to-go.

    A critic trained alongside a changing policy lags behind it; the estimators are compared at
    one θ, so V_φ is first fitted to V^{π_θ} (Monte Carlo targets, bootstrapped only where a
    time limit cut an episode).  Returns the final fraction of G's variance V_φ leaves unexplained.
    """
    from deeprl.returns import reward_to_go

    optimizer = make_optimizer(agent.net.critic_parameters(), lr=lr)
    unexplained = 1.0
    for _ in range(iterations):
        rollout = agent.collect(episodes=episodes)
        _, next_values = agent.values(rollout)
        G = reward_to_go(rollout.rewards, rollout.terminated | rollout.truncated, agent.config.gamma,
                         bootstrap=next_values, truncated=rollout.truncated).reshape(-1)
        for _ in range(epochs):
            loss = (agent.net.value(rollout.obs) - G).pow(2).mean()
            grad_step(optimizer, loss)
        unexplained = float(loss.detach() / G.var().clamp(min=1e-8))
    return unexplained


def measure(agent: PolicyGradient, *, batches: int = 64, episodes_per_batch: int = 1,
            estimators: tuple[str, ...] = ESTIMATORS) -> dict[str, dict[str, float]]:
    """Mean and variance of each estimator's gradient over ``batches`` shared batches."""
    samples: dict[str, list[torch.Tensor]] = {e: [] for e in estimators}
    for _ in range(batches):
        rollout = agent.collect(episodes=episodes_per_batch)
        for e, g in actor_gradients(agent, rollout, estimators).items():
            samples[e].append(g)
    out: dict[str, dict[str, float]] = {}
    for e, gs in samples.items():
        g = torch.stack(gs)                                   # (batches, n_params)
        mean = g.mean(0)
        variance = g.var(0, unbiased=True).sum()              # trace of the covariance
        out[e] = {"variance": float(variance), "mean_norm": float(mean.norm()),
                  "relative_variance": float(variance / mean.pow(2).sum().clamp(min=1e-12))}
    return out


def plot(results: dict[str, dict[str, float]], path: str | Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    for ax, key, label in ((axes[0], "variance", "total gradient variance (trace of covariance)"),
                           (axes[1], "relative_variance", "variance / ‖mean gradient‖²")):
        vals = [results[n][key] for n in names]
        ax.barh([LABELS.get(n, n) for n in names], vals, color=["#c44e52", "#dd8452", "#55a868", "#4c72b0"][:len(names)])
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.invert_yaxis()
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def run_variance(env_id: str, *, out: str | Path = "variance.png", train_steps: int = 20_000, batches: int = 64,
                 seed: int = 0, run: str | Path | None = None) -> dict[str, Any]:
    """Train (or load) an actor and critic, then measure each estimator's gradient variance there."""
    out = figure_path(out)  # a bad path fails now, not after the training
    import deeprl
    from deeprl.agents.pg import ActorCriticAgent

    if run is not None:
        agent = deeprl.load(run)
        if not isinstance(agent, PolicyGradient):
            from deeprl.errors import DeepRLError
            raise DeepRLError(f"{str(run)!r} holds a {agent.algo} model; the variance study needs a policy-gradient run")
    else:
        # the critic must be trained for the critic-based estimators to mean anything
        agent = ActorCriticAgent(env_id, preset=None, seed=seed, estimator="gae", gae_lambda=0.95, collect="steps",
                                 n_steps=16, num_envs=4, lr=1e-3, eval_freq=0, checkpoint_freq=0)
        agent.learn(train_steps, progress=False)
    unexplained = fit_critic(agent)
    results = measure(agent, batches=batches)
    path = plot(results, out, f"{agent.config.env}: policy-gradient estimators at the same θ, φ "
                             f"({batches} batches, {agent.num_timesteps:,} training steps)")
    agent.close()
    return {"figure": str(path), "results": results, "critic_unexplained_variance": unexplained}
