"""torch's random streams as an agent's own: swapped in while it trains or acts, saved in its checkpoints.

Constructing, training or querying an agent leaves the process's streams as it found them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from deeprl.checkpoint import check_tensor


class RandomStreams:
    """Mixed into :class:`~deeprl.agents.base.Algorithm` (which sets ``device`` and ``_torch_state``)."""

    def _cuda_devices(self) -> list[torch.device]:
        """The CUDA device whose random stream this run draws from, if any."""
        return [self.device] if self.device.type == "cuda" else []

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """The agent's torch random streams in place of the process's while it trains or acts;
        the agent's carry on where they stopped (checkpoints hold them), the process's are
        restored after."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            self._set_torch_rng(self._torch_state)
            try:
                yield
            finally:
                self._torch_state = self._torch_rng()

    def _torch_rng(self) -> dict[str, torch.Tensor]:
        """torch's random streams that training draws from: the CPU's, and the GPU's on CUDA."""
        states = {"torch": torch.get_rng_state()}
        for device in self._cuda_devices():
            states["cuda"] = torch.cuda.get_rng_state(device)
        return states

    def _checked_torch_rng(self, saved: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The saved random streams, checked against the ones they replace (a wrong-sized state is
        refused here, not when ``learn()`` sets it)."""
        current = self._torch_rng()
        unknown = set(saved) - {"torch", "cuda"}
        if unknown or "torch" not in saved:
            raise ValueError(f"the random-stream file holds {sorted(saved)}, expected 'torch' (and 'cuda' on a GPU)")
        for name, like in current.items():
            if name in saved:
                check_tensor(f"random stream {name!r}", saved[name], like, finite=False)
        return dict(saved)

    def _set_torch_rng(self, states: dict[str, torch.Tensor]) -> None:
        """Inverse of ``_torch_rng``; a CUDA stream saved on a GPU is ignored when resuming on a CPU."""
        torch.set_rng_state(states["torch"])
        for device in self._cuda_devices():
            if "cuda" in states:
                torch.cuda.set_rng_state(states["cuda"], device)
