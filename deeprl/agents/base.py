"""What every algorithm shares: configuration, devices, seeding, the run directory, persistence.

An algorithm subclass supplies the networks and the training loop; this class gives it the
``learn / predict / save / load`` surface users know from Stable-Baselines3, plus ``resume``.
Subclasses implement:

* ``_build()``: networks, optimizers, buffers, from ``self.config`` and the env spaces;
* ``_train(target_steps)``: the loop, calling ``self._log``, ``self._maybe_eval`` and
  ``self._maybe_checkpoint``;
* ``_act(obs, deterministic)``: a batch of actions for a batch of observations;
* ``_persistent()``: what it holds, by name (:class:`Persistent`): the modules a saved model
  needs, and what else a checkpoint needs to resume exactly (target networks, optimizers,
  replay, counters).  Saving, loading and checking them is done here, once for all.
"""

from __future__ import annotations

import contextlib
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from deeprl.agents.devices import cpu_threads, default_torch_threads, resolve_device
from deeprl.agents.loop import IntervalStats, TrainingLoop
from deeprl.agents.persistence import Persistent, restore, snapshot
from deeprl.agents.resuming import from_checkpoint
from deeprl.agents.rng import RandomStreams
from deeprl.agents.signals import StopOnSignal
from deeprl.callbacks import Callback, CallbackList, callbacks_of
from deeprl.checkpoint import load_model_file, load_module_tensors, module_tensors, save_model_file
from deeprl.config import RunConfig, build_config, config_to_dict, resolve_config
from deeprl.envs import check_env_import, is_image_space, make_vec_env
from deeprl.envs.masks import mask_batch
from deeprl.envs.sources import EnvArg, check_spaces, env_argument, factory_for, make_env_kwargs
from deeprl.errors import CheckpointError, ConfigError, one_line
from deeprl.evaluation import evaluate, record_video
from deeprl.run import MetricsLogger, Progress, RunDir
from deeprl.spaces import observation_batch, space_from_json, space_to_json


# settings a resumed run keeps as they were: the env (and so the envs' replayed logs) and the seed
FIXED_ON_RESUME = frozenset({"env", "env_kwargs", "seed", "num_envs", "vectorization", "pixels", "grayscale",
                             "frame_stack", "atari_wrappers", "max_episode_steps", "wrappers", "action_repeat"})


class Algorithm(TrainingLoop, RandomStreams, ABC):
    algo: ClassVar[str]
    config_cls: ClassVar[type[RunConfig]]
    # boolean settings that decay something to 0 over the planned run -> what they decay
    schedules: ClassVar[dict[str, str]] = {"anneal_lr": "learning rate"}

    def __init__(self, env: EnvArg = "CartPole-v1", *, preset: str | None = "auto", **settings: Any):
        """``env``: an id, an ``EnvSpec`` or a function that returns a new env (:mod:`deeprl.envs.sources`).
        ``preset='auto'`` uses the tuned preset named after ``env`` when one ships (``deeprl presets``); ``None``
        starts from the defaults; another name picks that preset.  Keyword settings override the preset."""
        env, settings, factory = env_argument(env, settings)
        self._init(resolve_config(self.config_cls, self.algo, env, preset=preset, overrides=[settings]), env_fn=factory)

    # Every agent is made by _init: __init__ (from settings), from_config, load (spaces from the
    # file, no env opened), resume (from_config, then the checkpoint), check (spaces only, nothing built).
    @classmethod
    def from_config(cls, config: RunConfig, env_fn: Callable[[], gym.Env] | None = None) -> "Algorithm":
        self = cls.__new__(cls)
        self._init(config, env_fn=env_fn)
        return self

    @classmethod
    def check(cls, config: RunConfig) -> None:
        """Raise the error that training ``config`` would raise at once (an env that cannot be
        made, spaces the algorithm cannot handle), without building networks or buffers."""
        from deeprl.envs import make_env

        env = make_env(config.env, **make_env_kwargs(config))
        spaces = (env.observation_space, env.action_space)
        env.close()
        cls.__new__(cls)._init(config, spaces, build=False)

    def _init(self, config: RunConfig, spaces: tuple[gym.Space, gym.Space] | None = None, *,
              build: bool = True, env_fn: Callable[[], gym.Env] | None = None) -> None:
        """The one construction path: the run's state, the env spaces (from ``spaces``, else from
        envs opened here), the algorithm's check of them, then (with ``build``) its networks,
        optimizers and buffers, seeded from the config."""
        self.config = config
        self._env_source = env_fn or config.env  # what envs are made from: the id, or the user's function
        self.device = resolve_device(config.device)
        self.num_timesteps = 0
        self.planned_steps = config.total_steps   # train until this many steps
        self.schedule_steps = config.total_steps  # the length ε, β and lr schedules run over
        self._resumed = False                     # rebuilt by resume(): logs continue, not restart
        self.paused = False                       # the last learn() stopped at its pause_at
        self._pause_at: int | None = None
        self.episodes = 0
        self.recent_returns: deque[float] = deque(maxlen=20)  # of the last 20 episodes (charts/episode_return)
        self.recent_lengths: deque[int] = deque(maxlen=20)
        self.rng = np.random.Generator(np.random.PCG64(config.seed))
        self.run: RunDir | None = None
        self.envs = None
        self._obs: np.ndarray | None = None
        self._elapsed = 0.0
        self.last_eval: dict[str, Any] | None = None
        self.best_eval_return = -float("inf")  # best periodic evaluation so far (best_model.safetensors)
        self._logger: MetricsLogger | None = None
        self.warnings: dict[str, str] = {}  # what the run warned about, once each (also in eval.json)
        self._stats = IntervalStats(self.maxima)  # this log interval's statistics
        self._progress: Progress | None = None
        self._callbacks = CallbackList()  # learn()'s, while it runs
        self._stop = False
        if spaces is None:
            self._open_envs()
            spaces = (self.envs.single_observation_space, self.envs.single_action_space)
        self.observation_space, self.action_space = spaces
        self._check_spaces()
        if not build:
            return
        # torch's random streams are the agent's own: seeded here for the networks' initial
        # weights, swapped in while it trains or acts (_own_rng), the process's left as they were
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(config.seed)
            self._build()
            self._torch_state = self._torch_rng()

    def _env_kwargs(self) -> dict[str, Any]:
        return make_env_kwargs(self.config)

    def _open_envs(self) -> None:
        c = self.config
        self.envs = make_vec_env(self._env_source, c.num_envs, c.seed, vectorization=c.vectorization, **self._env_kwargs())

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        """The CPU threads of ``torch_threads`` while training (0: :func:`default_torch_threads`)."""
        return cpu_threads(self.config.torch_threads or default_torch_threads(is_image_space(self.observation_space)))

    # ------------------------------------------------------------------------------ subclass hooks
    def _eval_policy(self) -> Callable[[np.ndarray], np.ndarray]:
        """The deterministic policy that evaluations and videos run (agents with memory return an
        object that also has ``reset(mask)``, see :mod:`deeprl.evaluation`)."""
        return lambda obs, **mask: self._act(obs, True, **mask)  # (mask: evaluation's action_mask, if any)

    def _check_spaces(self) -> None:
        """Raise an EnvError for spaces the algorithm cannot handle (default: accept)."""

    @abstractmethod
    def _build(self) -> None:
        """Networks, optimizers and buffers, from ``self.config`` and the env spaces."""

    @abstractmethod
    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """A batch of env actions for a batch of observations."""

    @abstractmethod
    def _persistent(self) -> "Persistent":
        """What this agent holds, by name: see :class:`Persistent`."""

    def _loaded_model(self) -> None:
        """Called after a saved model's weights were loaded (e.g. to copy them into a target network)."""

    # ------------------------------------------------------------------------------ persistence
    def _model_tensors(self) -> dict[str, torch.Tensor]:
        """The weights a saved model holds: ``{"module.key": tensor}``."""
        return module_tensors(self._persistent().model)

    def _load_model_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_module_tensors(self._persistent().model, tensors)
        self._loaded_model()

    def _checkpoint(self) -> tuple[dict, dict, dict]:
        """``(tensor files, array files, JSON state)`` of what :meth:`_persistent` names."""
        return snapshot(self._persistent(), self)

    def _restore(self, state: dict[str, Any], loader: Any) -> None:
        """Inverse of :meth:`_checkpoint`; anything that does not fit raises (a ``CheckpointError``
        to the user, see :meth:`resume`)."""
        restore(self._persistent(), self, state, loader)

    # ------------------------------------------------------------------------------ public API
    def learn(self, total_steps: int | None = None, *, run_dir: str | Path | None = None,
              progress: bool | None = None,
              callback: Callback | Callable[["Algorithm"], Any] | list | tuple | None = None,
              pause_at: int | None = None, total_timesteps: int | None = None) -> "Algorithm":
        """Train for ``total_steps`` more environment steps (default: up to ``config.total_steps``).

        With ``run_dir`` the run writes its config, metrics, TensorBoard events, checkpoints and
        final model there (the CLI always gives one); without, nothing touches the disk.
        ``callback``: a callable ``(agent) -> bool``, run after every log interval, a
        :class:`~deeprl.callbacks.Callback` (hooks at the start, each step, each update, each log
        row and evaluation, the end), or a list or tuple of them; one returning ``False`` stops
        training, which then finishes as a complete run does. Callbacks are not checkpointed.

        Schedules (ε, PER β, learning-rate annealing) are laid over the length the run was first
        planned for; a later ``learn`` that extends the run holds them at their final values.
        With a run directory, SIGINT (Ctrl-C) and SIGTERM stop training at the next clean point
        and write a checkpoint first; :class:`~deeprl.errors.Interrupted` then says how to resume.

        ``pause_at`` stops early without finishing, as an interruption does: at the first log
        interval that ends at or after that step, with a checkpoint written (with a run
        directory) and no final evaluation; a later ``learn()`` (or ``resume``) continues the
        planned run exactly (a sweep's early-stopping scheduler pauses runs at its rungs).
        ``self.paused`` says whether it stopped there.
        """
        if total_timesteps is not None:  # Stable-Baselines3's name for the same thing
            if total_steps is not None:
                raise ConfigError("give total_steps or total_timesteps (Stable-Baselines3's name), not both")
            total_steps = total_timesteps
        self._callbacks = callbacks_of(callback)
        self._stop = False
        self.paused = False
        if pause_at is not None and (isinstance(pause_at, bool) or not isinstance(pause_at, (int, np.integer))):
            raise ConfigError(f"pause_at must be a step count, got {pause_at!r}")
        self._pause_at = None if pause_at is None else int(pause_at)
        if total_steps is not None:
            if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
                raise ConfigError(f"total_steps must be a positive integer, got {total_steps!r}")
            self.planned_steps = self.num_timesteps + int(total_steps)
            if self.num_timesteps == 0 and not self._resumed:
                self.schedule_steps = self.planned_steps
        self._check_extension()
        if run_dir is not None and self.run is None:
            run = RunDir(run_dir)
            if run.exists():
                raise ConfigError(f"run directory {str(run_dir)!r} already holds a run; resume it with "
                                  f"'deeprl train --resume {run_dir}' or choose another --out")
            run.create()
            self.run = run
            self.run.lock()
            self.run.write_config(self.algo, config_to_dict(self.config))
        elif self.run is not None:
            self.run.lock()
        try:
            with self._threads(), self._own_rng():
                self._learn(progress)
        finally:
            self._callbacks = CallbackList()
            if self.run is not None:
                self.run.unlock()
        return self

    def _learn(self, progress: bool | None) -> None:
        if self.envs is None:
            self._open_envs()
        if self._obs is None:
            self._obs = self.envs.reset()
        if self.run is not None and self._logger is None:
            self._logger = MetricsLogger(self.run, self.metric_keys,
                                         resume_step=self.num_timesteps if self._resumed else None)
        self._progress = Progress(self.planned_steps, self.num_timesteps, f"{self.algo} {self.config.env}", progress)
        self._t0, self._checkpointed_at = time.perf_counter() - self._elapsed, time.monotonic()
        self._last_log_steps, self._last_log_time = self.num_timesteps, self._elapsed
        signals = StopOnSignal(self) if self.run is not None else None
        # the handlers stay in place until the run is saved and judged: a signal at any moment,
        # the final evaluation included, leaves a run that --resume completes
        with signals or contextlib.nullcontext():
            try:
                if self._callbacks.on_training_start(self) is False:
                    self._stop = True
                if self._pause_at is not None and self.num_timesteps >= self._pause_at:
                    self.paused = True  # already there (a resumed run paused at this step)
                else:
                    self._train(self.planned_steps)
            finally:
                self._elapsed = time.perf_counter() - self._t0
                self._progress.close()
                self._progress = None
            if signals is not None and signals.received and self.num_timesteps < self.planned_steps:
                self._checkpoint_here()
                raise self._interrupted(signals.received)
            if self.paused and self.num_timesteps < self.planned_steps:
                if self.run is not None:
                    self._checkpoint_here()
            elif self.run is not None:
                self.paused = False
                self._finish_run(signals)
        self._callbacks.on_training_end(self)

    def _check_extension(self) -> None:
        c = self.config
        annealed = [what for key, what in self.schedules.items() if getattr(c, key, False)]
        if annealed and self.planned_steps > self.schedule_steps:
            raise ConfigError(f"this run anneals its {' and '.join(annealed)} to 0 over its first "
                              f"{self.schedule_steps:,} steps, "
                              f"so training it to {self.planned_steps:,} would change nothing; continue it "
                              "with a schedule of its own (deeprl train --resume RUN --steps N --set anneal_lr=false "
                              "lr=...) or start a new run with more steps")

    def progress(self) -> float:
        """How far through its schedules the run is: steps done over the planned length, at most 1."""
        return min(1.0, self.num_timesteps / max(1, self.schedule_steps))

    def predict(self, obs: Any, deterministic: bool = True, action_mask: Any = None) -> np.ndarray:
        """Action(s) for one observation or a batch (leading dimension); an observation that is not
        of the agent's observation space is a :class:`ConfigError` naming both.  ``action_mask`` (Discrete
        actions): the valid actions, ``(n,)`` or ``(B, n)`` bool or 0/1; a masked action is never returned."""
        batch, single = observation_batch(self.observation_space, obs, "predict()")
        mask = mask_batch(action_mask, len(batch), self.algo, self.action_space if self.masks_actions else None)
        with self._own_rng():
            actions = self._act(batch, deterministic, **mask)
        return actions[0] if single else actions

    def save(self, path: str | Path) -> Path:
        """One safetensors file with the weights, the config and the spaces: ``deeprl.load`` reads it."""
        text = str(path)
        path = Path(path)
        if path.is_dir() or text.endswith(("/", os.sep)):
            path = path / "model.safetensors"   # save("dir/") saves into the folder
        elif path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        meta = {"algo": self.algo, "config": config_to_dict(self.config),
                "observation_space": space_to_json(self.observation_space),
                "action_space": space_to_json(self.action_space), "num_timesteps": self.num_timesteps}
        save_model_file(path, self._model_tensors(), meta)
        return path

    def export(self, path: str | Path, format: str = "onnx") -> dict[str, Any]:
        """The deterministic policy as a file other runtimes run: observations in, the actions
        ``predict`` returns out, checked against ``predict`` before it is written (:mod:`deeprl.export`)."""
        from deeprl.export import export

        return export(self, path, format)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", allow_import: Iterable[str] = (),
             env: EnvArg | None = None) -> "Algorithm":
        """A saved model (file or run directory), ready to ``predict``; its envs open on ``learn``.

        A model whose env id (``module:Env-v0``) or wrappers name a module does not import it unless it is
        already imported or named in ``allow_import``: a model file must not be able to run code.  A model
        trained on an env function needs it again (``env=``) to evaluate or train, not to predict."""
        tensors, meta = load_model_file(path)
        if meta.get("algo") != cls.algo:
            raise CheckpointError(f"{str(path)!r} holds a {meta.get('algo')!r} model, not {cls.algo!r}; "
                                  f"load it with deeprl.load()")
        if not isinstance(meta.get("config"), dict):
            raise CheckpointError(f"{str(path)!r} has no config in its header; it is damaged or not a deeprl model")
        check_env_import(meta["config"].get("env"), allow_import, meta["config"].get("wrappers"))
        try:
            config = build_config(cls.config_cls, {**meta["config"], "device": device})
        except ConfigError as e:
            raise CheckpointError(f"{str(path)!r} holds an invalid config: {e}") from None
        self = cls.__new__(cls)
        spaces = (space_from_json(meta.get("observation_space")), space_from_json(meta.get("action_space")))
        self._init(config, spaces=spaces, env_fn=factory_for(env, config.env, resume=False))
        if env is not None:  # the function must make the envs the model was trained on
            check_spaces(self.make_env(), spaces)
        try:
            self._load_model_tensors(tensors)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"{str(path)!r} does not match the {cls.algo} network it describes "
                                  f"({one_line(e)})") from None
        steps = meta.get("num_timesteps", 0)
        self.num_timesteps = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0
        return self

    @classmethod
    def resume(cls, run_dir: str | Path, *, total_steps: int | None = None,
               allow_import: Iterable[str] = (), settings: dict[str, Any] | None = None,
               env: EnvArg | None = None) -> "Algorithm":
        """Rebuild a run from its latest checkpoint; ``learn()`` then continues it.  A run trained on an
        env function needs that function again (``env=``): its config.json only names it.

        ``total_steps`` extends (or shortens) the run to that many steps in all; otherwise it
        trains to the total it was last told.  A run stopped before its first checkpoint starts
        again from step 0 with its saved settings, in the same directory.

        ``settings`` change settings for the rest of the run (a new learning-rate schedule, say:
        ``{"anneal_lr": False, "lr": 1e-4}``) and are saved in its ``config.json``; the env and
        seed stay (:data:`FIXED_ON_RESUME`), and a setting that changes a network's shape is
        refused by the checkpoint's own check.
        """
        run = RunDir(run_dir)
        algo, config_dict = run.read_config()
        if algo != cls.algo:
            raise CheckpointError(f"{str(run_dir)!r} is a {algo!r} run, not {cls.algo!r}")
        if not isinstance(config_dict, dict):
            raise CheckpointError(f"{str(run.config_file)!r} is damaged: its config is not an object")
        check_env_import(config_dict.get("env"), allow_import, config_dict.get("wrappers"))
        try:
            config = build_config(cls.config_cls, config_dict)
        except ConfigError as e:
            raise CheckpointError(f"{str(run.config_file)!r} holds an invalid config: {e}") from None
        fixed = sorted(FIXED_ON_RESUME & set(settings or {}))
        if fixed:
            raise ConfigError(f"{', '.join(fixed)} cannot change when a run is resumed (its env and its replay "
                              "depend on them); start a new run instead")
        if settings:
            config = build_config(cls.config_cls, config_to_dict(config), settings)
        env_fn = factory_for(env, config.env, resume=True)
        run.lock()  # before the checkpoint is read: a second resume is told that another process trains the run
        try:
            agent = from_checkpoint(cls, run, config, total_steps, keep_lr=bool(settings), env_fn=env_fn)
        except BaseException:
            run.unlock()
            raise
        if settings:
            run.write_config(cls.algo, config_to_dict(config))  # the run goes on with them
        return agent

    def evaluate(self, episodes: int | None = None, *, seed: int | None = None,
                 num_envs: int | None = None) -> dict[str, Any]:
        """Greedy (``eval_eps``) returns over ``episodes`` fresh episodes, seeded from ``seed``."""
        c = self.config
        episodes = c.eval_episodes if episodes is None else episodes
        if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
            raise ConfigError(f"episodes must be a positive integer, got {episodes!r}")
        with torch.random.fork_rng(devices=self._cuda_devices()):  # evaluating never shifts training's random stream
            result = evaluate(self._eval_policy(), self._env_source, int(episodes),
                              c.seed if seed is None else seed, num_envs=num_envs, env_kwargs=self._env_kwargs())
        if result["capped_episodes"]:
            self._warn("eval_cap", f"{result['capped_episodes']} of {result['episodes']} evaluation episodes were cut "
                       f"at {result['episode_cap']:,} steps (the env has no time limit of its own; the policy may "
                       "loop); set max_episode_steps to choose the limit")
        return result

    def make_env(self, **overrides: Any) -> gym.Env:
        """One env as this agent trains on (wrappers, pixels, time limit), e.g. ``render_mode="rgb_array"``."""
        from deeprl.envs import make_env

        return make_env(self._env_source, **{**self._env_kwargs(), **overrides})

    def record_video(self, path: str | Path, *, episodes: int = 1, seed: int | None = None) -> dict[str, Any]:
        return record_video(self._eval_policy(), self._env_source, path,
                            self.config.seed if seed is None else seed, episodes=episodes, env_kwargs=self._env_kwargs())

    def close(self) -> None:
        if self.run is not None:
            self.run.unlock()
        if self.envs is not None:
            self.envs.close()
            self.envs = None
        if self._logger is not None:
            self._logger.close()
            self._logger = None
