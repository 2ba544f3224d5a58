"""PPO: the policy-gradient family's loss with the clipped surrogate (Schulman et al. 2017).

Collection, the estimators of Ψ, the entropy term and the update's bookkeeping are the family's
(:mod:`deeprl.agents.pg`); PPO writes what it changes: its actor loss (the clipped surrogate,
recording the KL estimate), its critic loss (optionally clipped), and its update (epochs of
shuffled minibatches over one rollout, stopped early past ``target_kl``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deeprl.agents.pg import PGConfig, PolicyGradient, Rollout
from deeprl.config import MAX_REPEATS, MAX_ROLLOUT, MAX_STEPS, setting
from deeprl.nets import Categorical, DiagGaussian, with_mask


@dataclass(frozen=True, kw_only=True)
class PPOConfig(PGConfig):
    """PPO: the clipped surrogate objective, several epochs of minibatches per rollout."""

    lr: float = setting(3e-4, "learning rate", min=0.0, exclusive_min=True)
    n_steps: int = setting(2048, "rollout length per env between updates", min=1, max=MAX_ROLLOUT)
    gae_lambda: float = setting(0.95, "λ of GAE", min=0.0, max=1.0)
    normalize_advantage: bool = setting(True, "standardize advantages within each minibatch")
    n_epochs: int = setting(10, "passes over each rollout", min=1, max=MAX_REPEATS)
    minibatch_size: int = setting(64, "minibatch size (0 = the whole rollout in one batch)", min=0, max=MAX_ROLLOUT)
    clip_range: float = setting(0.2, "ratio clip ε", min=0.0, exclusive_min=True)
    anneal_clip_range: bool = setting(False, "decay the ratio clip ε linearly to 0 over total_steps (SB3's lin_ε)")
    clip_range_vf: float = setting(0.0, "clip the value update around the old values (0 = off)", min=0.0)
    target_kl: float = setting(0.0, "stop an update's epochs when the KL estimate exceeds this (0 = off)", min=0.0)
    max_grad_norm: float = setting(0.5, "clip the gradient's global norm (0 = off)", min=0.0)
    total_steps: int = setting(1_000_000, "environment steps to train for", min=1, max=MAX_STEPS)


class PPO(PolicyGradient):
    """Proximal policy optimization with the clipped surrogate (Schulman et al. 2017).

    Per rollout, with ρ = π_θ(a|s) / π_old(a|s) and the advantages Ψ fixed at collection::

        for n_epochs, for each minibatch:
            -min(ρ Ψ, clip(ρ, 1-ε, 1+ε) Ψ)  -  β H(π_θ)  +  c_v (V_φ(s) - ⊥target)²  (V optionally clipped)

    stopping the epochs early once the KL estimate passes 1.5 · ``target_kl``.
    """

    algo = "ppo"
    config_cls = PPOConfig
    config: PPOConfig
    metrics = (*PolicyGradient.metrics, "policy/approx_kl", "policy/clip_fraction")
    schedules = {**PolicyGradient.schedules, "anneal_clip_range": "clip range"}

    def actor_loss(self, dist: Categorical | DiagGaussian, actions: torch.Tensor, psi: torch.Tensor,
                   old_log_probs: torch.Tensor | None = None, **old: torch.Tensor) -> torch.Tensor:
        """The clipped surrogate -min(ρ Ψ, clip(ρ, 1-ε, 1+ε) Ψ); records the KL estimate and the
        clipped fraction (``policy/...``) as it goes."""
        eps = self.clip_range()
        log_ratio = dist.log_prob(actions) - old_log_probs
        ratio = log_ratio.exp()
        with torch.no_grad():
            self._kl = ((ratio - 1) - log_ratio).mean()  # low-variance KL(π_old || π_θ) estimate
            self._record({"policy/approx_kl": self._kl,
                          "policy/clip_fraction": ((ratio - 1).abs() > eps).float().mean()})
        return -torch.min(ratio * psi, ratio.clamp(1 - eps, 1 + eps) * psi).mean()

    def critic_loss(self, v: torch.Tensor, target: torch.Tensor, old_values: torch.Tensor | None = None,
                    **old: torch.Tensor) -> torch.Tensor:
        """The value loss, with V clipped to ``clip_range_vf`` around the rollout's values when set."""
        c = self.config
        if c.clip_range_vf > 0:
            v = old_values + (v - old_values).clamp(-c.clip_range_vf, c.clip_range_vf)
        return (v - target).pow(2).mean()

    def clip_range(self) -> float:
        """This update's ratio clip ε: ``clip_range``, decayed linearly to 0 with ``anneal_clip_range``."""
        c = self.config
        return c.clip_range * (1.0 - self.progress()) if c.anneal_clip_range else c.clip_range

    def update(self, r: Rollout) -> None:
        """``n_epochs`` passes over the rollout in shuffled minibatches."""
        c = self.config
        old_values, psi, target = self._begin_update(r, grad=False)
        M = psi.numel()
        size = c.minibatch_size or M
        for _ in range(c.n_epochs):
            order = torch.randperm(M, device=self.device) if c.minibatch_size else torch.arange(M, device=self.device)
            for start in range(0, M, size):
                idx = order[start:start + size]
                dist, v = self.net(r.obs[idx])
                dist = with_mask(dist, None if r.action_mask is None else r.action_mask[idx])  # as it acted
                self._step_on(self.losses(dist, None if old_values is None else v, r.actions[idx], psi[idx],
                                          target[idx], old_log_probs=r.log_probs[idx],
                                          old_values=None if old_values is None else old_values[idx]))
                if c.target_kl > 0 and self._kl.item() > 1.5 * c.target_kl:
                    self.rollouts += 1
                    return
        self.rollouts += 1
