"""Rebuilding a run from its latest checkpoint (``Algorithm.resume``'s second half, after the run
directory is read and locked): counters and plans checked, then every declared part restored."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

from deeprl.agents.persistence import step_count
from deeprl.config import RunConfig
from deeprl.errors import CheckpointError, ConfigError, one_line
from deeprl.run import RunDir


def from_checkpoint(cls: Any, run: RunDir, config: RunConfig, total_steps: int | None, keep_lr: bool = False,
                env_fn: Callable[[], gym.Env] | None = None) -> Any:
    """``cls`` (an Algorithm class) rebuilt from ``run``'s latest checkpoint, the run locked by the
    caller; a run stopped before its first checkpoint starts again from step 0.  ``keep_lr``: the
    learning rates ``config`` gives, not the ones the checkpoint had reached (settings changed on
    resume)."""
    run_dir = run.path
    ckpt = run.checkpoints.latest()
    if ckpt is None:  # stopped or crashed before its first checkpoint: start it again
        self = cls.from_config(config, env_fn)
        self.run, self._resumed = run, True
        if total_steps is not None:
            self.planned_steps = self.schedule_steps = total_steps
        return self
    state, loader = run.checkpoints.read(ckpt)
    if state.get("algo") != cls.algo:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is not a {cls.algo} checkpoint")
    try:
        done = step_count(state["num_timesteps"], "num_timesteps")
        planned = step_count(state.get("planned_steps", config.total_steps), "planned_steps")
        schedule = step_count(state.get("schedule_steps", config.total_steps), "schedule_steps")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} has a malformed state.json ({e})") from None
    if total_steps is not None:
        if total_steps <= done:
            raise ConfigError(f"run {str(run_dir)!r} is at step {done:,}; --steps is the new total and must "
                              "exceed it")
        planned = total_steps
    if state.get("finished") and planned <= done:
        raise CheckpointError(f"run {str(run_dir)!r} already finished at step {done:,}; "
                              "give a larger --steps to extend it, or start a new run")
    self = cls.from_config(config, env_fn)
    self.run, self._resumed = run, True
    try:
        self._restore_common(state)
        self._torch_state = self._checked_torch_rng(loader("rng"))
        optimizers = self._persistent().optimizers
        rates = {name: [g["lr"] for g in opt.param_groups] for name, opt in optimizers.items()}
        self._restore(state, loader)
        if keep_lr:  # new settings: the learning rates they give, not the ones the checkpoint had reached
            for name, opt in optimizers.items():
                for group, lr in zip(opt.param_groups, rates[name]):
                    group["lr"] = lr
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError, OverflowError,
            AssertionError) as e:  # (Gymnasium asserts that a replayed action is in the action space)
        self.close()
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not fit this run's config ({one_line(e)}); "
                              "it may come from another run") from None
    self.planned_steps, self.schedule_steps = planned, schedule
    return self
