"""NumPy forward and backward passes of a small CPU actor-critic: fast acting and updates.

On a CPU, an A2C update of a 64-64 MLP on a 40-step CartPole batch is a few dozen PyTorch
operations and as many autograd nodes, each costing 10-30 µs of dispatch for a few µs of
arithmetic: 2-3 ms per update, more than collecting the batch.  In NumPy the whole update
(values, advantages, the loss of :meth:`deeprl.agents.pg.PolicyGradient._step`, the chain rule
through the Linear and ReLU layers, the optimizer step) takes about 0.45 ms on the same 2-core
machine.  This module is that path, for the networks it can express: an
:class:`~deeprl.nets.ActorCritic` with MLP torsos on float vectors, in float32 on the CPU.

Every array here is a zero-copy *view*: weights of the torch parameters, gradients of the
:class:`~deeprl.optim.FlatOptimizer`'s flat gradient buffer.  The torch module, the optimizer
(which clips and steps that buffer) and checkpoints therefore see one set of numbers, and the
view is current after every in-place optimizer step or ``load_state_dict``.  Build it after the
optimizer, which re-homes the parameters into its buffer.

Backward, for a layer ``h' = relu(h W^T + b)`` with upstream gradient ``g`` (w.r.t. ``h'``)::

    g ← g ⊙ [h' > 0]        ∂L/∂W = gᵀ h        ∂L/∂b = Σ_rows g        ∂L/∂h = g W

``tests/test_pg.py`` checks every gradient against autograd on the torch path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deeprl.nets import _LOG_2PI, ActorCritic, VectorTorso

Layer = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # W (out, in), b, ∂L/∂W, ∂L/∂b


class NumpyActorCritic:
    """Views of a CPU :class:`ActorCritic` (MLP torsos) and of its gradient buffer.

    ``grads`` maps every parameter of ``net`` to the tensor that holds its gradient (the
    optimizer's views).  Gradients are *accumulated* into those arrays: zero them first.
    """

    def __init__(self, net: ActorCritic, grads: dict[nn.Parameter, torch.Tensor]):
        def layer(m: nn.Linear) -> Layer:
            return (m.weight.detach().numpy(), m.bias.detach().numpy(),
                    grads[m.weight].numpy(), grads[m.bias].numpy())

        def torso(t: VectorTorso) -> list[Layer]:
            return [layer(m) for m in t.body if isinstance(m, nn.Linear)]

        self.discrete = net.discrete
        self.actor_torso = torso(net.actor_torso)
        self.critic_torso = self.actor_torso if net.shared else torso(net.critic_torso)
        self.policy_head, self.value_head = layer(net.policy_head), layer(net.value_head)
        if not self.discrete:
            self.log_std, self.log_std_grad = net.log_std.detach().numpy(), grads[net.log_std].numpy()

    @staticmethod
    def supports(net: nn.Module) -> bool:
        """An :class:`ActorCritic` of Linear+ReLU MLPs over float vectors, float32 on the CPU."""
        def mlp(t: nn.Module) -> bool:
            return (isinstance(t, VectorTorso) and not t.one_hot
                    and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in t.body))

        return (isinstance(net, ActorCritic) and mlp(net.actor_torso) and mlp(net.critic_torso)
                and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in net.parameters()))

    # ---------------------------------------------------------------------------- forward
    @staticmethod
    def _torso(layers: list[Layer], x: np.ndarray) -> list[np.ndarray]:
        """Inputs and activations of every layer: ``[x, h1, h2, ...]``; the last one is the features."""
        acts = [x]
        for W, b, _, _ in layers:
            h = x @ W.T
            h += b
            np.maximum(h, 0.0, out=h)
            acts.append(h)
            x = h
        return acts

    @staticmethod
    def _input(obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)

    def policy(self, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (discrete) or means (continuous) ``(B, A)``, and the activations for :meth:`backward_policy`."""
        acts = self._torso(self.actor_torso, self._input(obs))
        W, b, _, _ = self.policy_head
        return acts[-1] @ W.T + b, acts

    def value(self, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """V(s) ``(B,)`` and the activations for :meth:`backward_value`."""
        acts = self._torso(self.critic_torso, self._input(obs))
        W, b, _, _ = self.value_head
        return (acts[-1] @ W.T + b)[:, 0], acts

    # ---------------------------------------------------------------------------- backward
    @staticmethod
    def _backward(layers: list[Layer], acts: list[np.ndarray], head: Layer, g: np.ndarray) -> None:
        """Accumulate ∂L/∂params of ``layers`` and ``head`` given ``g`` = ∂L/∂(head output)."""
        ones = np.ones(len(g), np.float32)  # Σ_rows g as 1ᵀ g: one BLAS call, 4x faster than a column sum
        W, _, gW, gb = head
        gW += g.T @ acts[-1]
        gb += ones @ g
        g = g @ W
        for k in range(len(layers) - 1, -1, -1):
            W, _, gW, gb = layers[k]
            g *= acts[k + 1] > 0  # ReLU: the gradient passes where the output is positive
            gW += g.T @ acts[k]
            gb += ones @ g
            if k:
                g = g @ W

    def backward_policy(self, acts: list[np.ndarray], g_out: np.ndarray, g_log_std: np.ndarray | None = None) -> None:
        self._backward(self.actor_torso, acts, self.policy_head, np.asarray(g_out, np.float32))
        if g_log_std is not None:
            self.log_std_grad += g_log_std

    def backward_value(self, acts: list[np.ndarray], g_v: np.ndarray) -> None:
        self._backward(self.critic_torso, acts, self.value_head, np.asarray(g_v, np.float32)[:, None])

    # ---------------------------------------------------------------------------- acting
    def sample(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        """Actions a ~ π(·|s) (or its mode) for a batch; discrete ones by the Gumbel-max trick,
        argmax(logits + Gumbel noise), which needs no normalisation.  Their log-probabilities
        come from :meth:`log_prob`, batched over a whole rollout."""
        out = self.policy(obs)[0]
        if self.discrete:
            return (out if deterministic else out + rng.gumbel(size=out.shape)).argmax(axis=1)
        if deterministic:
            return out
        return (out + np.exp(self.log_std) * rng.standard_normal(out.shape)).astype(np.float32)

    def log_prob(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """log π(a|s) ``(B,)``, float32."""
        out = self.policy(obs)[0]
        if self.discrete:
            return _log_softmax(out)[np.arange(len(out)), actions]
        return _gaussian_log_prob(out, self.log_std, actions)[0]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.add.reduce(np.exp(logp), axis=1, keepdims=True))
    return logp


def _gaussian_log_prob(mean: np.ndarray, log_std: np.ndarray, actions: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log N(a; μ, σ²) summed over dimensions, z = (a - μ)/σ, σ)``."""
    std = np.exp(log_std)
    z = (actions - mean) / std
    return np.add.reduce(-0.5 * z ** 2 - log_std - 0.5 * _LOG_2PI, axis=1), z, std


def pg_loss_grad(c: Any, discrete: bool, out: np.ndarray, log_std: np.ndarray | None, v: np.ndarray | None,
                 actions: np.ndarray, old_log_probs: np.ndarray | None, psi: np.ndarray, target: np.ndarray,
                 old_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, float]]:
    """The loss of :meth:`PolicyGradient._step` and its gradient, in NumPy.

    ``c`` is the :class:`~deeprl.config.PGConfig`.  With B rows, Ψ (optionally normalised),
    ρ = π_θ/π_old and H the entropy::

        L = -1/B Σ Ψ log π(a|s)   (PPO: -1/B Σ min(ρ Ψ, clip(ρ, 1±ε) Ψ))
            - c_H · 1/B Σ H(π(·|s)) + c_V · 1/B Σ (V(s) - target)²

    Returns ``(∂L/∂out, ∂L/∂log σ or None, ∂L/∂V or None, stats)`` where ``out`` is the policy
    head's output (logits or means).  Ties and clip boundaries take the gradients PyTorch gives
    ``minimum`` (half to each side) and ``clamp`` (passes at the bounds).
    """
    B = len(psi)
    total = np.add.reduce  # ndarray.sum/mean/std wrap this in Python; at B = 40 the wrapper is the cost
    if c.normalize_advantage and B > 1:
        centred = psi - total(psi) / B
        psi = centred / (np.sqrt(np.dot(centred, centred) / (B - 1)) + 1e-8)
    if discrete:
        logp = _log_softmax(out)
        p = np.exp(logp)
        rows = np.arange(B)
        log_probs = logp[rows, actions]
        ent = -total(p * logp, axis=1)
        entropy = total(ent) / B
    else:
        log_probs, z, std = _gaussian_log_prob(out, log_std, actions)
        entropy = (log_std + 0.5 * (1.0 + _LOG_2PI)).sum()
    needs_old = c.uses_old_log_probs  # else old_log_probs may be None
    log_ratio = log_probs - old_log_probs if needs_old else None
    stats: dict[str, float] = {}
    if c.clip_range > 0:
        ratio = np.exp(log_ratio)
        surr1, surr2 = ratio * psi, np.clip(ratio, 1 - c.clip_range, 1 + c.clip_range) * psi
        actor_loss = -total(np.minimum(surr1, surr2)) / B
        inside = (ratio >= 1 - c.clip_range) & (ratio <= 1 + c.clip_range)
        d_ratio = np.where(surr1 < surr2, psi, np.where(surr1 > surr2, psi * inside, 0.5 * psi * (1 + inside)))
        g_logp = -d_ratio * ratio / B                                         # ∂L/∂ log π(a|s)
    else:
        actor_loss = -np.dot(psi, log_probs) / B
        g_logp = -psi / B
    if discrete:  # ∂ log π(a)/∂z = onehot(a) - p;  ∂H/∂z = -p (log p + H)
        g_out = -g_logp[:, None] * p
        g_out[rows, actions] += g_logp
        g_out += (c.ent_coef / B) * p * (logp + ent[:, None])
        g_log_std = None
    else:         # ∂ log π/∂μ = z/σ;  ∂ log π/∂ log σ = z² - 1;  ∂H/∂ log σ = 1
        g_out = g_logp[:, None] * z / std
        g_log_std = total(g_logp[:, None] * (z ** 2 - 1), axis=0) - c.ent_coef
    g_v = None
    if v is not None:
        if c.clip_range_vf > 0:
            delta = v - old_values
            v_used = old_values + np.clip(delta, -c.clip_range_vf, c.clip_range_vf)
            passes = np.abs(delta) <= c.clip_range_vf
        else:
            v_used, passes = v, True
        err = v_used - target
        stats["loss/critic"] = float(np.dot(err, err)) / B
        g_v = (2.0 * c.vf_coef / B) * err * passes
    stats.update({"loss/actor": float(actor_loss), "loss/entropy": float(entropy)})
    if needs_old:
        ratio_m1 = np.exp(log_ratio) - 1
        stats["policy/approx_kl"] = float(total(ratio_m1 - log_ratio)) / B
        if c.clip_range > 0:
            stats["policy/clip_fraction"] = np.count_nonzero(np.abs(ratio_m1) > c.clip_range) / B
    return g_out, g_log_std, g_v, stats
