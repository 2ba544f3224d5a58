"""Callbacks: code of the user's that the training loop calls at documented points.

``learn(callback=...)`` takes a plain callable ``(agent) -> bool``, a :class:`Callback`, or a list
or tuple mixing them. A plain callable runs after each log interval (it is a callback's
:meth:`~Callback.on_log`). Any hook that returns ``False`` stops training cleanly: the run then
finishes as one that reached its planned step does (model, checkpoint, final evaluation).

Callbacks are not saved in checkpoints: a resumed run (``Algorithm.resume``, ``--resume``) has
only the callbacks its ``learn`` is given, and their state (an :class:`EvalCallback`'s results,
say) starts again.

Stock callbacks: :class:`CheckpointCallback` (a checkpoint every N steps), :class:`EvalCallback`
(evaluate on another env, keep the best model, stop when evaluation stops improving) and
:class:`StopOnRewardThreshold`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from deeprl.envs import make_env
from deeprl.errors import ConfigError
from deeprl.evaluation import evaluate

HOOKS = ("on_training_start", "on_step", "on_update", "on_log", "on_evaluation", "on_training_end")


class Callback:
    """Hooks the training loop calls; override the ones you need, each is optional.

    ``agent`` is the training :class:`~deeprl.agents.base.Algorithm` (``agent.num_timesteps``,
    ``agent.run``, ``agent.save(...)``, ...). A hook that returns ``False`` stops training; any
    other value (``None`` included) lets it go on.  In the order they come:
    """

    def on_training_start(self, agent: Any) -> bool | None:
        """When ``learn`` starts, before the first step: envs open, nothing trained yet."""

    def on_step(self, agent: Any) -> bool | None:
        """After each step of all envs (``agent.num_timesteps`` grew by ``num_envs``), possibly in
        the middle of a rollout. Called only when a callback overrides it; keep it cheap."""

    def on_update(self, agent: Any) -> bool | None:
        """After each iteration of the algorithm: one update (DQN: one step of every env and its
        gradient steps), one rollout and its update (policy gradients), one world-model round.
        A clean point: nothing is in flight, so a checkpoint or an evaluation may be taken here.
        Not called once training is stopping (a hook returned ``False``, a signal, ``pause_at``)."""

    def on_log(self, agent: Any, metrics: dict[str, Any]) -> bool | None:
        """After each log interval's row (``metrics``: the row as logged, by column name, e.g.
        ``metrics["charts/episode_return"]``), after its evaluation and checkpoint when due."""

    def on_evaluation(self, agent: Any, result: dict[str, Any]) -> bool | None:
        """When the loop's periodic evaluation (``eval_freq``) ran, just before :meth:`on_log`;
        ``result`` as :meth:`~deeprl.agents.base.Algorithm.evaluate` returns it."""

    def on_training_end(self, agent: Any) -> bool | None:
        """When ``learn`` returns normally: the planned step reached (the model and the final
        evaluation, ``agent.last_eval``, are then written), a hook stopped it, or ``pause_at``.
        Not called when training raises (an error, or an interruption by a signal)."""


class FunctionCallback(Callback):
    """A plain callable ``(agent) -> bool`` as a callback: it runs after each log interval."""

    def __init__(self, function: Callable[[Any], Any]):
        self.function = function

    def on_log(self, agent: Any, metrics: dict[str, Any]) -> Any:
        return self.function(agent)


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class CallbackList(Callback):
    """Several callbacks as one, each hook called on every callback that overrides it, in order.
    Every one runs even after another returned ``False``; the list then returns ``False``."""

    def __init__(self, callbacks: list[Callback] | tuple[Callback, ...] = ()):
        self.callbacks = list(callbacks)
        self._hooked = {hook: [getattr(c, hook) for c in self.callbacks if _overrides(c, hook)] for hook in HOOKS}
        self.steps = bool(self._hooked["on_step"])  # the loop calls on_step only when this is true

    def _call(self, hook: str, *args: Any) -> bool | None:
        results = [method(*args) for method in self._hooked[hook]]
        return False if any(r is False for r in results) else None

    def on_training_start(self, agent: Any) -> bool | None:
        return self._call("on_training_start", agent)

    def on_step(self, agent: Any) -> bool | None:
        return self._call("on_step", agent)

    def on_update(self, agent: Any) -> bool | None:
        return self._call("on_update", agent)

    def on_log(self, agent: Any, metrics: dict[str, Any]) -> bool | None:
        return self._call("on_log", agent, metrics)

    def on_evaluation(self, agent: Any, result: dict[str, Any]) -> bool | None:
        return self._call("on_evaluation", agent, result)

    def on_training_end(self, agent: Any) -> bool | None:
        return self._call("on_training_end", agent)


ACCEPTED = "a callable (agent) -> bool, a deeprl.callbacks.Callback, or a list or tuple of them"


def callbacks_of(callback: Any) -> CallbackList:
    """``learn``'s ``callback`` as one :class:`CallbackList`, checked at the call: None, a callable,
    a :class:`Callback`, or a list or tuple mixing them."""
    if callback is None:
        return CallbackList()
    found = list(callback) if isinstance(callback, (list, tuple)) else [callback]
    for c in found:
        if isinstance(c, type):  # a class is callable too, but calling it with the agent is not what was meant
            raise ConfigError(f"callback got the class {c.__name__}, not an instance; pass {c.__name__}(...)")
        if not isinstance(c, Callback) and not callable(c):
            raise ConfigError(f"callback must be {ACCEPTED}; got {c!r:.80} ({type(c).__name__})")
        if isinstance(c, Callback):
            unknown = [name for name in dir(type(c)) if name.startswith("on_") and name not in HOOKS]
            if unknown:  # a misspelt hook would silently never run
                raise ConfigError(f"{type(c).__name__} defines {unknown[0]}, which is not a hook; the hooks are "
                                  f"{', '.join(HOOKS)}")
    return CallbackList([c if isinstance(c, Callback) else FunctionCallback(c) for c in found])


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _crossed(every: int, since: int, now: int) -> bool:
    """True when the steps from ``since`` to ``now`` crossed a multiple of ``every``."""
    return now // every != since // every


class CheckpointCallback(Callback):
    """A checkpoint at the first update at or after every multiple of ``every_steps`` env steps.

    With a run directory, into its ``checkpoints/`` folder, as the loop's own checkpoints
    (``--resume`` continues from the newest; the folder keeps the newest two, or ``keep``).
    With ``save_path`` (a folder), a saved model ``step_<N>.safetensors`` there too; without a
    run directory, ``save_path`` is needed. ``self.steps`` lists the steps saved.

    Training resumed from a checkpoint taken between two log rows goes on exactly as it would
    have, but its first row covers only the steps since the checkpoint.
    """

    def __init__(self, every_steps: int, *, save_path: str | Path | None = None, keep: int | None = None):
        self.every_steps = _positive_int("every_steps", every_steps)
        self.save_path = None if save_path is None else Path(save_path)
        self.keep = None if keep is None else _positive_int("keep", keep)
        self.steps: list[int] = []

    def on_training_start(self, agent: Any) -> None:
        if agent.run is None and self.save_path is None:
            raise ConfigError("CheckpointCallback needs a run directory (learn(run_dir=...)) or save_path=FOLDER")
        if agent.run is not None and self.keep is not None:
            agent.run.checkpoints.keep = max(agent.run.checkpoints.keep, self.keep)
        self._since = agent.num_timesteps

    def on_update(self, agent: Any) -> None:
        now = agent.num_timesteps
        if not _crossed(self.every_steps, self._since, now):
            return
        self._since = now
        if agent.run is not None:
            agent._checkpoint_here()
        if self.save_path is not None:
            agent.save(self.save_path / f"step_{now:012d}.safetensors")
        self.steps.append(now)


class EvalCallback(Callback):
    """Evaluates the current agent on ``env`` (an env id, made with the agent's own wrappers and
    ``env_kwargs`` unless overridden) at the first update at or after every multiple of
    ``every_steps``: ``episodes`` greedy episodes, seeded from ``seed`` (the same episodes each
    time, so evaluations compare), without touching training's random streams.

    ``self.results`` lists ``(step, mean return, std)``; ``self.best_mean_return`` is the best
    mean so far, saved as a model to ``best_model_path`` when given. With
    ``stop_after_no_improvement=N`` training stops after N evaluations in a row without a new best.
    """

    def __init__(self, env: str, every_steps: int, *, episodes: int = 5, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None, best_model_path: str | Path | None = None,
                 stop_after_no_improvement: int | None = None):
        self.env = env
        self.every_steps = _positive_int("every_steps", every_steps)
        self.episodes = _positive_int("episodes", episodes)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.env_kwargs = dict(env_kwargs or {})
        self.best_model_path = best_model_path
        self.patience = None if stop_after_no_improvement is None else _positive_int(
            "stop_after_no_improvement", stop_after_no_improvement)
        self.results: list[tuple[int, float, float]] = []
        self.best_mean_return = -math.inf
        self._without_improvement = 0

    def on_training_start(self, agent: Any) -> None:
        kwargs = self._kwargs(agent)
        probe = make_env(self.env, **kwargs)
        spaces = (probe.observation_space, probe.action_space)
        probe.close()
        if spaces != (agent.observation_space, agent.action_space):
            raise ConfigError(f"EvalCallback's env {self.env!r} has spaces {spaces[0]} -> {spaces[1]}, the agent "
                              f"{agent.observation_space} -> {agent.action_space}; evaluate on an env of the same spaces")
        self._since = agent.num_timesteps

    def _kwargs(self, agent: Any) -> dict[str, Any]:
        return {**agent._env_kwargs(), **self.env_kwargs}

    def on_update(self, agent: Any) -> bool | None:
        if not _crossed(self.every_steps, self._since, agent.num_timesteps):
            return None
        self._since = agent.num_timesteps
        with torch.random.fork_rng(devices=agent._cuda_devices()):  # training's random streams go on untouched
            result = evaluate(agent._eval_policy(), self.env, self.episodes, self.seed, env_kwargs=self._kwargs(agent))
        mean = result["mean_return"]
        self.results.append((agent.num_timesteps, mean, result["std_return"]))
        if mean > self.best_mean_return:
            self.best_mean_return, self._without_improvement = mean, 0
            if self.best_model_path is not None:
                agent.save(self.best_model_path)
        else:
            self._without_improvement += 1
        return False if self.patience is not None and self._without_improvement >= self.patience else None


class StopOnRewardThreshold(Callback):
    """Stops training once the mean return reaches ``threshold``: the training episodes' as the
    last log row gives it (``charts/episode_return``, the last 20 episodes), or, with
    ``eval_callback``, that :class:`EvalCallback`'s latest evaluation (put it after the
    EvalCallback in the list to stop at the very update that evaluated, not the next).
    ``self.reached_at`` is the step where it stopped training (None until then)."""

    def __init__(self, threshold: float, *, eval_callback: EvalCallback | None = None):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or math.isnan(threshold):
            raise ConfigError(f"threshold must be a number, got {threshold!r}")
        if eval_callback is not None and not isinstance(eval_callback, EvalCallback):
            raise ConfigError(f"eval_callback must be an EvalCallback, got {eval_callback!r:.80}")
        self.threshold = float(threshold)
        self.eval_callback = eval_callback
        self.reached_at: int | None = None
        self._evaluations_seen = 0

    def _reached(self, agent: Any, mean_return: float | None) -> bool | None:
        if mean_return is None or mean_return < self.threshold:
            return None
        self.reached_at = agent.num_timesteps
        return False

    def on_log(self, agent: Any, metrics: dict[str, Any]) -> bool | None:
        if self.eval_callback is None:
            return self._reached(agent, metrics.get("charts/episode_return"))
        return None

    def on_update(self, agent: Any) -> bool | None:
        results = self.eval_callback.results if self.eval_callback is not None else []
        if len(results) == self._evaluations_seen:  # no new evaluation since the last look
            return None
        self._evaluations_seen = len(results)
        return self._reached(agent, results[-1][1])
