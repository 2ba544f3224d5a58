"""Distributional RL's target and loss math, pure functions over tensors.

C51 (Bellemare et al. 2017): Z(s, a) is a categorical distribution on N fixed atoms
z_i = v_min + i Δz, Δz = (v_max - v_min) / (N - 1).  The n-step target distribution puts the mass
p_j of atom z_j at G + γ^n z_j (γ^n = 0 after a termination), which :func:`categorical_projection`
spreads back onto the support; the loss is the cross-entropy -Σ_i m_i log p_θ,i(s, a).

QR-DQN (Dabney et al. 2018): Z(s, a) is N quantiles θ_i at the fractions τ̂_i = (2i - 1) / 2N
(:func:`quantile_midpoints`), fitted by the quantile Huber loss (:func:`quantile_huber_loss`).
"""

from __future__ import annotations

import torch


def categorical_support(v_min: float, v_max: float, atoms: int, device: torch.device | str | None = None
                        ) -> torch.Tensor:
    """The C51 atoms z_i = v_min + i Δz, i = 0 .. N-1, ``(N,)``."""
    return torch.linspace(v_min, v_max, atoms, device=device)


def categorical_projection(probs: torch.Tensor, support: torch.Tensor, returns: torch.Tensor,
                           discounts: torch.Tensor) -> torch.Tensor:
    """Φ T̂Z: the distribution putting p_j at G + γ^n z_j, projected onto ``support`` (Bellemare et
    al. 2017, eq. 7)::

        (Φ T̂Z)_i = Σ_j [1 - |clip(G + γ^n z_j, v_min, v_max) - z_i| / Δz]_0^1  p_j

    Each target atom splits its mass between its two neighbouring support points in proportion to
    closeness (all of it to one point when it falls exactly on it); atoms beyond the support are
    clipped to its ends.  ``probs`` ``(B, N)``, ``support`` ``(N,)`` evenly spaced, ``returns`` and
    ``discounts`` ``(B,)`` (discount 0: the target is G alone).  Returns ``(B, N)``, rows sum to 1.
    """
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / (support.numel() - 1)
    target_atoms = (returns[:, None] + discounts[:, None] * support[None, :]).clamp(v_min, v_max)  # (B, N_j)
    closeness = (1.0 - (target_atoms[:, None, :] - support[None, :, None]).abs() / dz).clamp(min=0.0)  # (B, N_i, N_j)
    return (closeness * probs[:, None, :]).sum(dim=2)


def quantile_midpoints(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """τ̂_i = (2i - 1) / 2N, i = 1 .. N: the quantile fractions QR-DQN's N outputs estimate, ``(N,)``."""
    return (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n


def quantile_huber_loss(quantiles: torch.Tensor, target: torch.Tensor, taus: torch.Tensor,
                        kappa: float = 1.0) -> torch.Tensor:
    """QR-DQN's loss per sample, ``(B,)``, for ``quantiles`` θ_i ``(B, N)`` at fractions ``taus``
    ``(N,)`` and target samples T θ_j ``(B, N')`` (⊥ is the caller's)::

        Σ_i (1/N') Σ_j ρ^κ_τ̂i(T θ_j - θ_i),   ρ^κ_τ(u) = |τ - 1{u < 0}| L_κ(u) / κ,
        L_κ(u) = u²/2 if |u| <= κ else κ (|u| - κ/2)
    """
    u = target[:, None, :] - quantiles[:, :, None]  # (B, N_i, N'_j)
    huber = torch.where(u.abs() <= kappa, 0.5 * u.pow(2), kappa * (u.abs() - 0.5 * kappa))
    weight = (taus[None, :, None] - (u.detach() < 0).float()).abs()
    return (weight * huber / kappa).mean(dim=2).sum(dim=1)
