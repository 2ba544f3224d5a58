"""The training loop's bookkeeping, written once for every algorithm (SB3's ``collect_rollouts``).

:class:`TrainingLoop` steps the envs (:meth:`~TrainingLoop._env_step`: count, record finished
episodes, move the progress bar), runs the loop (:meth:`~TrainingLoop._train`: the agent's
:meth:`~TrainingLoop._iteration` until the planned step), and closes each log interval: one
metrics row from the interval's statistics (:class:`IntervalStats`), an evaluation, a checkpoint
and the callbacks when due.  It also finishes a run (model, checkpoint, final evaluation).

An algorithm writes how it acts, collects and updates (``_iteration``), its losses as a dict
and the scales that weight them (``loss_scales``); the metrics ``loss/<term>`` follow from them.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError

from deeprl.agents.persistence import step_count
from deeprl.agents.signals import Cut, StopOnSignal
from deeprl.checkpoint import atomic_write_json
from deeprl.envs.masks import check_allowed
from deeprl.envs.vector import VecStep
from deeprl.errors import CheckpointError, Interrupted, TrainingError

# the columns every run logs, whatever its algorithm
BASE_METRICS = ("charts/episode_return", "charts/episode_length", "charts/episodes", "charts/sps",
                "charts/learning_rate", "eval/mean_return", "eval/std_return")


class IntervalStats:
    """The statistics of one log interval: each value added is summed (its mean is logged) or, for
    the names in ``maxima``, its maximum kept; tensors stay on their device until :meth:`read`,
    one host synchronization per interval rather than one per update."""

    def __init__(self, maxima: Iterable[str] = ()):
        self.maxima = frozenset(maxima)
        self._totals: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: Mapping[str, torch.Tensor | float]) -> None:
        for key, value in values.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            old = self._totals.get(key)
            if old is None:
                self._totals[key], self._counts[key] = value, 1
            elif key in self.maxima:
                self._totals[key] = torch.maximum(old, value) if isinstance(value, torch.Tensor) else max(old, value)
            else:
                self._totals[key], self._counts[key] = old + value, self._counts[key] + 1

    def read(self) -> dict[str, float]:
        """Means (maxima) of the interval, then empty for the next one."""
        tensors = [k for k, v in self._totals.items() if isinstance(v, torch.Tensor)]
        values = dict(zip(tensors, torch.stack([self._totals[k] for k in tensors]).tolist())) if tensors else {}
        out = {}
        for key, total in self._totals.items():
            value = values.get(key, total)
            out[key] = value if key in self.maxima else value / self._counts[key]
        self._totals, self._counts = {}, {}
        return out


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"elapsed is {value!r}, not a number of seconds")
    return float(value)


def _restore_envs(agent: Any, env_state: Any) -> None:
    agent._obs = agent.envs.restore(env_state)


# The loop's own state in every checkpoint's state.json, registered once by its name on disk: how
# it is read from the agent, and how it is put back, checked (None: read by resume() itself).
# What each algorithm keeps is declared beside it (Persistent); this is the base's share.
RUN_STATE: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], None] | None]] = {
    "num_timesteps": (lambda a: a.num_timesteps,
                      lambda a, v: setattr(a, "num_timesteps", step_count(v, "num_timesteps"))),
    "planned_steps": (lambda a: a.planned_steps, None),
    "schedule_steps": (lambda a: a.schedule_steps, None),
    "episodes": (lambda a: a.episodes, lambda a, v: setattr(a, "episodes", step_count(v, "episodes"))),
    "recent_returns": (lambda a: list(a.recent_returns),
                       lambda a, v: setattr(a, "recent_returns", deque(map(float, v), maxlen=20))),
    "recent_lengths": (lambda a: list(a.recent_lengths),
                       lambda a, v: setattr(a, "recent_lengths", deque(map(int, v), maxlen=20))),
    "elapsed": (lambda a: time.perf_counter() - a._t0, lambda a, v: setattr(a, "_elapsed", _seconds(v))),
    "best_eval_return": (lambda a: a.best_eval_return if a.best_eval_return > -math.inf else None,
                         lambda a, v: setattr(a, "best_eval_return", float(v))),
    "warnings": (lambda a: a.warnings,
                 lambda a, v: setattr(a, "warnings", {str(k): str(m) for k, m in (v or {}).items()})),
    "rng": (lambda a: a.rng.bit_generator.state, lambda a, v: setattr(a.rng.bit_generator, "state", v)),
    "env_state": (lambda a: a.envs.state() if a.envs else None, _restore_envs),  # last: replays the envs
}

OPTIONAL_STATE = {"best_eval_return", "warnings", "env_state", "recent_lengths"}  # None (or absent) where there is nothing to keep


class TrainingLoop:
    """Mixed into :class:`~deeprl.agents.base.Algorithm`: the loop and its bookkeeping."""

    # the algorithm's own metric columns beyond BASE_METRICS and loss/<term> of loss_scales
    metrics: tuple[str, ...] = ()
    # log-interval statistics kept as maxima, not means
    maxima: tuple[str, ...] = ()
    # whether the agent acts under invalid-action masks (deeprl.envs.masks); one that does not is refused a masked env
    masks_actions: bool = False

    @property
    def loss_scales(self) -> dict[str, float]:
        """The weight of each loss term, by name (from the config); ``{}`` for an algorithm whose
        losses are not one weighted sum."""
        return {}

    @property
    def metric_keys(self) -> list[str]:
        """Every column this run logs: the base's, ``loss/<term>`` of each scaled loss term, the
        algorithm's own."""
        return list(dict.fromkeys([*BASE_METRICS, *(f"loss/{k}" for k in self.loss_scales), *self.metrics]))

    # ------------------------------------------------------------------------------ the loop
    def _train(self, target_steps: int) -> None:
        """Iterations (:meth:`_iteration`) until ``num_timesteps`` reaches ``target_steps`` or
        something stops the run; a log interval closes whenever one is due."""
        while self.num_timesteps < target_steps and not self._stop:
            self._iteration(target_steps)
            if self._interval_due(target_steps):
                self._close_interval(self._interval_metrics(), **self._progress_info())
            # after the row (a checkpoint at a log step then holds all of it); not once stopping (a signal)
            if not self._stop and self._callbacks.on_update(self) is False:
                self._stop = True
            if self.run is not None and not self._stop and self._checkpoint_clock_due():
                self._checkpoint_here()  # by time too: a killed run loses at most checkpoint_minutes

    def _checkpoint_clock_due(self) -> bool:
        minutes = self.config.checkpoint_minutes
        return minutes > 0 and time.monotonic() - self._checkpointed_at >= 60 * minutes

    @abstractmethod
    def _iteration(self, target_steps: int) -> None:
        """One round of the algorithm: collect with :meth:`_env_step` (never past ``target_steps``
        by more than one vector step), update, :meth:`_record` the statistics."""

    def _env_step(self, actions: np.ndarray, **progress: Any) -> VecStep:
        """Step every env once: count the steps, record the episodes that ended, move the
        progress bar, keep the observations to act on next (``self._obs``; their masks are
        ``self.envs.action_mask``)."""
        if self.envs.action_mask is not None:  # before the step: no masked action is ever taken
            check_allowed(self.envs.action_mask, actions, self.algo, self.masks_actions)
        step = self.envs.step(actions)
        n = len(step.reward)
        self.num_timesteps += n
        self._record_episodes(step.episodes)
        if self._progress is not None:
            self._progress.update(n, **progress)
        self._obs = step.obs
        if self._callbacks.steps and self._callbacks.on_step(self) is False:
            self._stop = True  # the loop ends after this iteration
        return step

    def _show(self, **progress: Any) -> None:
        """Tell the progress bar (when there is one) what the run is doing, e.g. ``phase="dream"``."""
        if self._progress is not None:
            self._progress.update(0, **progress)

    def _record(self, values: Mapping[str, torch.Tensor | float] | None = None, **more: torch.Tensor | float) -> None:
        """Statistics of this interval, by metric name (a mean each, or a maximum for ``maxima``)."""
        self._stats.add({**(values or {}), **more})

    def _interval_metrics(self) -> dict[str, Any]:
        """The row of the interval that just ended: its statistics (an algorithm adds its own)."""
        return self._stats.read()

    def _progress_info(self) -> dict[str, Any]:
        """Extra fields for the progress bar at the end of an interval."""
        return {}

    def _record_episodes(self, episodes: list[tuple[int, float, int]]) -> None:
        for _, ret, length in episodes:
            self.episodes += 1
            self.recent_returns.append(ret)
            self.recent_lengths.append(length)

    def _learning_rate(self) -> float | None:
        """The learning rate the last update used (annealed ones too): the first optimizer's first group."""
        optimizers = list(self._persistent().optimizers.values())
        return float(optimizers[0].param_groups[0]["lr"]) if optimizers else None

    def _recent_return(self) -> float | None:
        return float(np.mean(self.recent_returns)) if self.recent_returns else None

    def _warn(self, key: str, message: str) -> None:
        """Tell the user once per run (on stderr, above the progress bar) and keep it for the summary."""
        if key in self.warnings:
            return
        self.warnings[key] = message
        from tqdm import tqdm
        tqdm.write(f"deeprl: warning: {message}", file=sys.stderr)

    def _log(self, metrics: dict[str, Any]) -> None:
        if self._logger is not None:
            self._logger.log(self.num_timesteps, metrics, time.perf_counter() - self._t0)

    def _interval_due(self, target_steps: int) -> bool:
        return self._crossed(self.config.log_interval, self._last_log_steps) or self.num_timesteps >= target_steps

    def _close_interval(self, metrics: dict[str, Any], **progress: Any) -> None:
        """End of a log interval: one metrics row (with an evaluation when one is due), a
        checkpoint when one is due, then the callbacks' ``on_evaluation`` and ``on_log``.

        Checkpoints are taken only here, right after a row, when the interval's statistics have
        just been emptied: a resumed run then logs exactly the rows the uninterrupted run would.
        """
        now = time.perf_counter() - self._t0
        sps = (self.num_timesteps - self._last_log_steps) / max(now - self._last_log_time, 1e-9)
        since = self._last_log_steps
        self._last_log_steps, self._last_log_time = self.num_timesteps, now
        row = {"charts/episode_return": self._recent_return(), "charts/episodes": self.episodes,
               "charts/episode_length": float(np.mean(self.recent_lengths)) if self.recent_lengths else None,
               "charts/learning_rate": self._learning_rate(), "charts/sps": round(sps, 1), **metrics}
        declared = set(self.metric_keys)
        unknown = [k for k in row if k not in declared]
        if unknown:  # a metric without a column would be lost from metrics.csv: an error with or without a run dir
            raise ValueError(f"metrics {unknown} are not declared by {type(self).__name__}; add them to its "
                             "metrics (or loss_scales)")
        self._check_finite(row)
        evaluation = self._maybe_eval(since)
        if evaluation is not None:
            row["eval/mean_return"] = evaluation["mean_return"]
            row["eval/std_return"] = evaluation["std_return"]
        self._log(row)
        if self._progress is not None:
            self._progress.update(0, ret=row["charts/episode_return"], **progress)
        self._maybe_checkpoint(since)
        stop = evaluation is not None and self._callbacks.on_evaluation(self, evaluation) is False
        if self._callbacks.on_log(self, row) is False or stop:
            self._stop = True
        if self._pause_at is not None and self.num_timesteps >= self._pause_at:
            self._stop = self.paused = True

    def _check_finite(self, row: dict[str, Any]) -> None:
        """Stop with a clear error, before anything is logged or checkpointed, once a statistic of
        the interval or a weight is NaN or infinite: what was saved before stays good."""
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        tensors = [t for t in self._model_tensors().values() if t.is_floating_point()]
        if not bad and tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
            bad = [k for k, t in self._model_tensors().items() if t.is_floating_point() and not t.isfinite().all()]
        if not bad:
            return
        kept = self.run.checkpoints.latest() if self.run is not None else None
        where = f"the last good checkpoint is {kept}" if kept else "nothing was saved"
        raise TrainingError(f"training stopped at step {self.num_timesteps:,}: {', '.join(bad[:3])} became NaN or "
                            f"infinite ({where}); lower lr, or check that the env's observations and rewards are "
                            "finite")

    def _crossed(self, every: int, since: int) -> bool:
        """True when the steps from ``since`` to now crossed a multiple of ``every``."""
        return every > 0 and self.num_timesteps // every != since // every

    def _maybe_eval(self, since: int) -> dict[str, Any] | None:
        if not self._crossed(self.config.eval_freq, since):
            return None
        self.last_eval = self.evaluate()
        # value-based agents in particular can peak and then degrade (DQN on CartPole does);
        # like SB3's EvalCallback, keep the best evaluated weights beside the final ones
        if self.run is not None and self.last_eval["mean_return"] > self.best_eval_return:
            self.best_eval_return = self.last_eval["mean_return"]
            self.save(self.run.best_model_file)
        return self.last_eval

    def _maybe_checkpoint(self, since: int) -> None:
        if self.run is not None and self._crossed(self.config.checkpoint_freq, since):
            self._write_checkpoint(finished=False)

    def _write_checkpoint(self, finished: bool) -> None:
        assert self.run is not None
        tensors, arrays, state = self._checkpoint()
        try:
            self._save_checkpoint(tensors, arrays, state, finished)
        except (OSError, SafetensorError) as e:  # safetensors raises its own type on a full disk
            kept = self.run.checkpoints.latest()
            earlier = f"the checkpoint {kept} is intact" if kept else "no earlier checkpoint exists"
            raise CheckpointError(f"could not write the checkpoint at step {self.num_timesteps:,} "
                                  f"({getattr(e, 'strerror', None) or e}); {earlier}; free space or fix permissions, "
                                  "then resume") from None

    def _save_checkpoint(self, tensors: dict, arrays: dict, state: dict, finished: bool) -> None:
        assert self.run is not None
        common = {"algo": self.algo, "finished": finished, **{name: get(self) for name, (get, _) in RUN_STATE.items()}}
        tensors.setdefault("rng", {}).update(self._torch_rng())
        self.run.checkpoints.write(self.num_timesteps, tensors=tensors, arrays=arrays, state={**common, **state})
        self._checkpointed_at = time.monotonic()

    def _checkpoint_here(self) -> None:
        """A checkpoint at this step, unless this very step's is already written."""
        assert self.run is not None
        latest = self.run.checkpoints.latest()
        if latest is None or latest.name != f"step_{self.num_timesteps:012d}":
            self._write_checkpoint(finished=False)

    def _interrupted(self, signum: int, during: str = "") -> Interrupted:
        assert self.run is not None
        return Interrupted(f"{StopOnSignal.NAMES[signum]} at step {self.num_timesteps:,}{during}: checkpoint "
                           f"written to {self.run.checkpoints.latest()}; continue with 'deeprl train --resume "
                           f"{self.run.path}'", signum)

    def _restore_common(self, state: dict[str, Any]) -> None:
        for name, (_, put) in RUN_STATE.items():
            if put is not None and not (name in OPTIONAL_STATE and state.get(name) is None):
                put(self, state[name])  # (a required entry that is missing: KeyError, a damaged checkpoint)

    def _finish_run(self, signals: "StopOnSignal | None" = None) -> None:
        """After the last training step: the trained model and a checkpoint of this step first,
        then the final evaluation, then the mark that the run is finished.

        A signal before or during the evaluation stops it (the evaluation is cut at once, since
        nothing is lost by redoing it) and leaves the model and a checkpoint on disk, so
        ``--resume`` does only the evaluation.  Saving is never cut: signals wait for it."""
        assert self.run is not None
        self.save(self.run.model_file)
        self._checkpoint_here()
        if signals is not None and signals.received:
            raise self._interrupted(signals.received, " (trained, not yet evaluated)")
        try:
            with signals.cutting() if signals is not None else contextlib.nullcontext():
                final = self.evaluate()
        except Cut:
            assert signals is not None and signals.received is not None
            raise self._interrupted(signals.received, " (trained, final evaluation cut short)") from None
        self.last_eval = final
        atomic_write_json(self.run.path / "eval.json", {**final, "step": self.num_timesteps,
                                                         "warnings": list(self.warnings.values())})
        if self._logger is not None:
            self._log({"eval/mean_return": final["mean_return"], "eval/std_return": final["std_return"]})
        self.run.checkpoints.mark_finished(self.run.checkpoints.latest(), warnings=self.warnings)

