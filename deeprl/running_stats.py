"""Running mean and variance (parallel update of Chan et al.): the policy gradients'
``normalize_obs`` and ``normalize_reward`` statistics, checkpointed like a module's tensors."""

from __future__ import annotations

import numpy as np
import torch


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

    def state_dict(self) -> dict[str, torch.Tensor]:
        """As a module's: float64 tensors, so that saved models and checkpoints hold them like weights."""
        return {"mean": torch.from_numpy(np.atleast_1d(self.mean).copy()),
                "var": torch.from_numpy(np.atleast_1d(self.var).copy()),
                "count": torch.tensor([self.count], dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"mean", "var", "count"}:
            raise KeyError(f"running statistics hold {sorted(state)}, expected ['count', 'mean', 'var']")
        shape = self.mean.shape
        mean, var = (state[k].numpy().astype(np.float64).reshape(-1) for k in ("mean", "var"))
        if mean.size != max(1, int(np.prod(shape))) or var.size != mean.size:
            raise ValueError(f"running statistics of size {mean.size} do not fit the shape {shape}")
        self.mean, self.var = mean.reshape(shape), var.reshape(shape)
        self.count = float(state["count"].reshape(-1)[0])
