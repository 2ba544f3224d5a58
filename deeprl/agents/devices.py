"""Where an agent computes: its torch device and its CPU threads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

from deeprl.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available; use --set device=cpu")
    return device


def default_torch_threads(images: bool) -> int:
    """What ``torch_threads=0`` picks: 1 for vector observations (small MLPs run fastest on one
    thread), and for images half the cores, at most 4.  torch's idle OpenMP workers spin, so a
    thread per core starves the env and any other process; on a 2-core machine a second thread
    made the conv world model several times slower, not faster."""
    return max(1, min(4, (os.cpu_count() or 1) // 2)) if images else 1


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """``threads`` CPU threads for torch and for NumPy's BLAS (whose idle threads spin just the
    same) inside the block, the process's settings restored after: constructing or training an
    agent leaves them as it found them."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
