"""The crash-and-resume check every algorithm's tests share: a run killed after a checkpoint and
resumed must log the same metrics rows and end with bit-identical weights as one never stopped."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import pytest
import torch

from deeprl import Algorithm


def metrics_rows(path: Path) -> list[dict[str, str]]:
    """metrics.csv without the columns that depend on the clock."""
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "charts/sps")} for r in csv.DictReader(f)]


def crash_and_resume(make: Callable[[], Algorithm], tmp_path: Path, crash_at: int) -> tuple[Algorithm, Algorithm]:
    """Train ``make()`` once whole and once crashed at ``crash_at`` steps then resumed; assert both
    logged the same rows and hold identical weights; return ``(whole, resumed)``."""
    whole = make().learn(run_dir=tmp_path / "whole")

    def crash(agent: Algorithm) -> None:
        if agent.num_timesteps >= crash_at:
            raise KeyboardInterrupt
    crashed = make()
    with pytest.raises(KeyboardInterrupt):
        crashed.learn(run_dir=tmp_path / "crashed", callback=crash)
    crashed.close()
    resumed = type(whole).resume(tmp_path / "crashed")
    resumed.learn()
    assert metrics_rows(tmp_path / "whole" / "metrics.csv") == metrics_rows(tmp_path / "crashed" / "metrics.csv")
    for (name, p), (_, q) in zip(whole._model_tensors().items(), resumed._model_tensors().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")
    return whole, resumed


def pause_and_continue(make: Callable[[], Algorithm], tmp_path: Path, pause_at: int) -> Algorithm:
    """Train ``make()`` once whole and once paused at ``pause_at`` (``learn(pause_at=...)``, as a
    sweep's scheduler does) then resumed from the run directory; assert the pause left a
    checkpoint and no final model, and that both runs logged the same rows and hold identical
    weights.  Returns the paused-and-continued agent."""
    whole = make().learn(run_dir=tmp_path / "whole")
    paused = make().learn(run_dir=tmp_path / "paused", pause_at=pause_at)
    assert paused.paused and pause_at <= paused.num_timesteps < whole.num_timesteps
    assert not (tmp_path / "paused" / "model.safetensors").exists()  # paused, not finished
    paused.close()
    resumed = type(whole).resume(tmp_path / "paused")
    assert resumed.num_timesteps == paused.num_timesteps
    resumed.learn()
    assert not resumed.paused and (tmp_path / "paused" / "model.safetensors").exists()
    assert metrics_rows(tmp_path / "whole" / "metrics.csv") == metrics_rows(tmp_path / "paused" / "metrics.csv")
    for (name, p), (_, q) in zip(whole._model_tensors().items(), resumed._model_tensors().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")
    return resumed
