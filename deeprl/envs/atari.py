"""Atari (ALE) preprocessing: the standard DQN-style wrapper stack, written for ale-py 0.12.

:func:`make_atari` builds an environment whose observations are ``(frame_stack, 84, 84)`` uint8
stacks of grayscale frames and whose ``info["episode"]`` reports the real game score.  The
individual wrappers are public so they can be tested, or reused in a different stack.  Each
records its constructor arguments (``gymnasium.utils.RecordConstructorArgs``), so ``env.spec``
describes the whole stack and ``gymnasium.make(env.spec)`` rebuilds it, as Gymnasium's own
``check_env`` and other tools expect.

Wrapper order, innermost (closest to the emulator) first::

    AtariEnv(frameskip=1)        raw 210x160 RGB frames, sticky actions as registered
    NoopReset                    1..noop_max raw-frame no-ops after every real reset
    MaxAndSkip                   one agent step = frame_skip emulator frames
    GameStepLimit                only if max_episode_steps is given (a TimeLimit counting agent steps)
    RecordEpisodeStatistics      info["episode"] = unclipped score / length of a whole game
    EpisodicLife                 a lost life ends the agent's episode, not the game
    FireReset                    press FIRE after each reset (games that need it)
    WarpFrame                    grayscale, resize to screen_size x screen_size
    ClipReward                   reward -> sign(reward)
    FrameStackObservation        stack the last frame_stack frames -> (frame_stack, H, W)

Resets follow one rule that the vector environment relies on: with EpisodicLife in the stack
every ``reset`` returns ``info["real_reset"]``, True when the game itself was restarted (and then
seeded with the seed passed, if any) and False when it only went on after a lost life, ignoring
the seed (see :class:`EpisodicLife`).  Without EpisodicLife every reset is real and the key is
absent.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from deeprl.envs.resize import area_taps

__all__ = [
    "ClipReward",
    "EpisodicLife",
    "FireReset",
    "GameStepLimit",
    "MaxAndSkip",
    "NoopReset",
    "WarpFrame",
    "is_atari_id",
    "make_atari",
    "register_ale",
    "wrap_atari",
]

NOOP = 0  # ALE's minimal and full action sets both put NOOP at index 0
FIRE = 1  # in games that have a FIRE action, the minimal action set puts it at index 1

_ale_registered = False


def register_ale() -> None:
    """Register the ALE environments (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ...) with gymnasium.

    Safe to call any number of times.  Raises ImportError if ale-py is not installed.
    """
    global _ale_registered
    if _ale_registered:
        return
    import ale_py  # importing ale_py registers its ids as a side effect

    gym.register_envs(ale_py)  # explicit, and keeps linters from calling the import unused
    _ale_registered = True


def is_atari_id(env_id: str) -> bool:
    """True for ids of ALE Atari games.

    That is every id in the ``ALE/`` namespace (``ALE/Pong-v5``) and the old-style ids that ale-py
    registers outside it (``PongNoFrameskip-v4``, ``Breakout-v4``, ``Pong-v0``, ...).  An optional
    ``module:`` prefix, as accepted by ``gymnasium.make``, is ignored.
    """
    if not isinstance(env_id, str):
        return False
    env_id = env_id.split(":", 1)[-1]
    if env_id.startswith("ALE/"):
        return True
    # Old-style ids cannot be told from other ids by their spelling (``Pong-v0`` looks like
    # ``CartPole-v0``), so ask the registry which entry point they were registered with.
    try:
        register_ale()
    except ImportError:
        return False
    spec = gym.registry.get(env_id)
    if spec is None:
        return False
    entry_point = spec.entry_point
    module = entry_point if isinstance(entry_point, str) else getattr(entry_point, "__module__", "")
    return module.split(".", 1)[0].split(":", 1)[0] == "ale_py"


def _action_meanings(env: gym.Env) -> list[str] | None:
    get = getattr(env.unwrapped, "get_action_meanings", None)
    return list(get()) if get is not None else None


def _lives(env: gym.Env) -> int:
    return int(env.unwrapped.ale.lives())


class NoopReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """After each reset, do a random number (1..noop_max) of no-op actions.

    This makes the start states of an otherwise deterministic game differ.  The number is drawn
    from ``self.np_random`` (the base env's generator, re-seeded by ``reset(seed=...)``), so a
    seeded reset stays reproducible.  Put this wrapper below any frame skipping so that the
    no-ops are single emulator frames.
    """

    def __init__(self, env: gym.Env, noop_max: int = 30):
        gym.utils.RecordConstructorArgs.__init__(self, noop_max=noop_max)
        super().__init__(env)
        if noop_max < 1:
            raise ValueError(f"noop_max must be >= 1, got {noop_max}")
        meanings = _action_meanings(env)
        if meanings is not None and meanings[NOOP] != "NOOP":
            raise ValueError(f"action {NOOP} is {meanings[NOOP]!r}, not 'NOOP'")
        self.noop_max = noop_max

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        # Draw *after* the reset: the reset is what re-seeds np_random.
        n = int(self.np_random.integers(1, self.noop_max + 1))
        for _ in range(n):
            obs, _, terminated, truncated, step_info = self.env.step(NOOP)
            info = {**info, **step_info}
            if terminated or truncated:
                # Not with the seed again: that would replay the same draw and the same no-ops.
                obs, info = self.env.reset(options=options)
        return obs, info


class FireReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Press FIRE (then action 2) after each reset, for games that wait for FIRE to start.

    Only for games whose action 1 means 'FIRE' (see :meth:`applies_to`).  The rewards of these
    two steps are not passed on (wrappers below, such as RecordEpisodeStatistics, still count
    them).  If one of them ends the episode the env is reset and the presses are repeated; should
    that end the whole game, its ``info["episode"]`` is lost with the step's info (in practice a
    press right after a reset does not end a game).

    ``info["real_reset"]``, if the wrapped env reports it, is True when any of the resets done
    here was real, so a real reset is never hidden from the caller.
    """

    max_attempts = 8  # resets tried before giving up on starting without an episode end

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        if not self.applies_to(env):
            raise ValueError(f"FireReset needs action {FIRE} to be 'FIRE'; actions: {_action_meanings(env)}")

    @staticmethod
    def applies_to(env: gym.Env) -> bool:
        meanings = _action_meanings(env)
        return meanings is not None and len(meanings) >= 3 and meanings[FIRE] == "FIRE"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        real: bool | None = None  # stays None if the wrapped env does not report real resets
        seeded = False
        for _ in range(self.max_attempts):
            # Pass the seed on until a real reset has used it.  A seed given to a continuing
            # reset (after a lost life) is ignored, and if a press then ends the game, the real
            # reset that follows must still be seeded with it: the caller will take this call
            # for a real reset with this seed and may replay it as one.  After a seeded real
            # reset, later resets go unseeded (re-using the seed would repeat the same start).
            obs, info = self.env.reset(seed=None if seeded else seed, options=options)
            if info.get("real_reset", True):  # no such key: every reset is a real one
                seeded = True
            if "real_reset" in info:
                real = bool(real) or bool(info["real_reset"])
            ended = False
            for action in (FIRE, 2):
                obs, _, terminated, truncated, step_info = self.env.step(action)
                if terminated or truncated:
                    ended = True
                    break
                info = {**info, **step_info}
            if not ended:
                break
        else:
            raise RuntimeError(f"FireReset: the episode ended right after {self.max_attempts} resets")
        if real is not None:
            info["real_reset"] = real
        return obs, info


class MaxAndSkip(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action ``skip`` times; return the summed reward and the pixel-wise max frame.

    The max is over the last two emulator frames of the step.  Atari games often draw some
    sprites only on every other frame (flicker), and the max keeps them visible.  The repetition
    stops early if the episode ends; the returned frame is then the max of the last two frames
    of this step (just the last one if the step lasted one frame).
    """

    def __init__(self, env: gym.Env, skip: int = 4):
        gym.utils.RecordConstructorArgs.__init__(self, skip=skip)
        super().__init__(env)
        if skip < 1:
            raise ValueError(f"skip must be >= 1, got {skip}")
        self.skip = skip

    def step(self, action):
        total_reward = 0.0
        previous = last = None
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            previous, last = last, obs
            if terminated or truncated:
                break
        # Frames from earlier steps are never used: a step cut short must not mix in an old frame.
        frame = last if previous is None else np.maximum(previous, last)
        return frame, total_reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the agent's episode when a life is lost, without restarting the game.

    ``step`` returns ``terminated=True`` when ``ale.lives()`` drops (the DQN trick: losing a life
    is made to look like the end).  The ``reset`` that follows does not restart the game: it takes
    one no-op step and returns that observation with ``info["real_reset"] = False``; the game,
    its lives and its score go on.  The game is restarted (``info["real_reset"] = True``) when the
    game really ended (inner terminated or truncated), when that no-op step ends it, on the first
    reset, and when ``reset`` is called while no life was just lost.

    The seed passed to a continuing reset is ignored: the game is not restarted, so there is
    nothing to seed.  (The vector env passes a seed to every reset and relies on this.)
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self._lives = 0
        self._life_lost = False  # the last step ended the agent's episode only by losing a life

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _lives(self.env)
        game_over = terminated or truncated
        # Some games report 0 lives throughout (Pong); 0 < lives keeps those unaffected.  A game
        # over is already terminated and needs a real reset, so it is not a "life lost" here.
        if 0 < lives < self._lives:
            terminated = True
            self._life_lost = not game_over
        else:
            self._life_lost = False
        self._lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._life_lost:
            self._life_lost = False
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if not (terminated or truncated):
                self._lives = _lives(self.env)
                info["real_reset"] = False
                return obs, info
            # The no-op step ended the game: fall through to a real reset.
        self._life_lost = False
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = _lives(self.env)
        info["real_reset"] = True
        return obs, info


class GameStepLimit(gym.wrappers.TimeLimit):
    """Gymnasium's ``TimeLimit``, kept where it stands in the wrapper stack when the env is remade.

    ``TimeLimit`` records itself in ``env.spec`` as ``max_episode_steps``, and ``gym.make(env.spec)``
    puts that limit straight on the base env, where it would count emulator frames.  In the Atari
    stack the limit sits above the frame skip and counts agent steps, so this records itself as an
    ordinary wrapper (``spec.additional_wrappers``) and is rebuilt in the same place.
    """

    @property
    def spec(self) -> gym.envs.registration.EnvSpec | None:
        return gym.Wrapper.spec.fget(self)


class ClipReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Replace each reward by its sign: -1.0, 0.0 or 1.0."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))


class WarpFrame(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Grayscale and resize frames to ``size`` x ``size`` uint8, with numpy only.

    Grayscale uses the ITU-R 601 luma weights (0.299 R + 0.587 G + 0.114 B).  Resizing is an area
    average, computed separably (rows, then columns) from a few precomputed taps per output
    pixel.  It needs no image library, and deliberately avoids matrix products: those go to
    a multi-threaded BLAS, which slows down badly when the cores are busy with other work
    (e.g. one process per sub-environment).  Accepts (H, W, 3), (H, W, 1) and (H, W) frames.
    """

    def __init__(self, env: gym.Env, size: int = 84):
        gym.utils.RecordConstructorArgs.__init__(self, size=size)
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
            raise ValueError(f"WarpFrame needs an image Box observation space, got {space}")
        if len(space.shape) == 3 and space.shape[2] not in (1, 3):
            raise ValueError(f"WarpFrame needs 1 or 3 channels last, got shape {space.shape}")
        height, width = space.shape[:2]
        self.size = size
        self._row_index, self._row_weight = area_taps(height, size)
        self._col_index, self._col_weight = area_taps(width, size)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        frame = np.asarray(observation, dtype=np.float32)
        if frame.ndim == 3:
            if frame.shape[2] == 3:
                frame = (frame[..., 0] * np.float32(0.299) + frame[..., 1] * np.float32(0.587)
                         + frame[..., 2] * np.float32(0.114))
            else:
                frame = frame[..., 0]
        # rows: (size, k) weights x (size, k, W) gathered rows -> (size, W)
        rows = np.einsum("ok,okw->ow", self._row_weight, frame[self._row_index])
        # columns: (size, k) weights x (size_rows, size, k) gathered columns -> (size, size)
        resized = np.einsum("ok,hok->ho", self._col_weight, rows[:, self._col_index])
        # Round, don't truncate: truncation would darken every pixel by half a level on average.
        return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def wrap_atari(
    env: gym.Env,
    *,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    max_episode_steps: int | None = None,
) -> gym.Env:
    """Apply the Atari wrapper stack of :func:`make_atari` to ``env``.

    ``env`` must step one emulator frame at a time (``frameskip=1``) and expose ALE's
    ``unwrapped.ale.lives()`` (for ``episodic_life``) and ``unwrapped.get_action_meanings()``.
    See :func:`make_atari` for the order and the reasons for it.
    """
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if noop_max > 0:
        env = NoopReset(env, noop_max=noop_max)
    if frame_skip > 1:
        env = MaxAndSkip(env, skip=frame_skip)
    if max_episode_steps is not None:
        env = GameStepLimit(env, max_episode_steps=max_episode_steps)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if episodic_life:
        env = EpisodicLife(env)
    if FireReset.applies_to(env):
        env = FireReset(env)
    env = WarpFrame(env, size=screen_size)
    if clip_rewards:
        env = ClipReward(env)
    env = gym.wrappers.FrameStackObservation(env, frame_stack)
    return env


def make_atari(
    env_id: str,
    *,
    render_mode: str | None = None,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    full_action_space: bool = False,
    max_episode_steps: int | None = None,
) -> gym.Env:
    """Make an ALE Atari env with the standard preprocessing.

    Observations are uint8 arrays of shape ``(frame_stack, screen_size, screen_size)``; actions
    are ``Discrete``.  The game runs with ``frameskip=1`` (skipping is done by MaxAndSkip, which
    also takes the max over the last two frames) and with the id's own
    ``repeat_action_probability`` (0.25 sticky actions for v5 ids, 0 for ``NoFrameskip-v4``).
    ``render()`` returns the full-size RGB screen when ``render_mode="rgb_array"``.

    Wrappers, innermost first, and why they are in that order:

    1. ``NoopReset`` (if ``noop_max > 0``): below the frame skip, so the random start offset is
       1..noop_max single frames.
    2. ``MaxAndSkip`` (if ``frame_skip > 1``): one agent step = ``frame_skip`` frames.
    3. ``GameStepLimit`` (if ``max_episode_steps``): a ``TimeLimit`` that counts agent steps and
       truncates the whole game.
       (ALE itself truncates a game after 108000 frames.)
    4. ``RecordEpisodeStatistics``: below EpisodicLife, so an "episode" is a whole game, not one
       life; below ClipReward, so ``info["episode"]["r"]`` is the real score; and below
       FireReset and EpisodicLife, so rewards earned during their internal steps are counted
       too.  ``info["episode"]["l"]`` counts agent steps, including those internal steps.
       ``info["episode"]`` appears on the step where the game ends.
    5. ``EpisodicLife`` (if ``episodic_life``): a lost life returns ``terminated=True``; the next
       reset continues the game.  Every reset reports ``info["real_reset"]``.
    6. ``FireReset`` (if action 1 is FIRE): above EpisodicLife, so FIRE is also pressed after a
       lost life (Breakout needs it to serve the next ball).
    7. ``WarpFrame``: grayscale, ``screen_size`` x ``screen_size``.  Nothing below looks at pixels
       except MaxAndSkip, which works on the raw RGB frames.
    8. ``ClipReward`` (if ``clip_rewards``): the agent sees sign(reward).
    9. ``FrameStackObservation``: the last ``frame_stack`` frames, oldest first; after any reset
       (real or not) the stack is filled with copies of the reset frame.

    A reset with a seed makes everything deterministic: same seed and same actions give the same
    observations and rewards (ALE's sticky actions and the no-op count are both seeded by it).
    """
    if not is_atari_id(env_id):
        raise ValueError(f"{env_id!r} is not an ALE Atari id (expected e.g. 'ALE/Pong-v5')")
    register_ale()
    env = gym.make(env_id, render_mode=render_mode, frameskip=1, full_action_space=full_action_space)
    return wrap_atari(
        env,
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        frame_stack=frame_stack,
        episodic_life=episodic_life,
        clip_rewards=clip_rewards,
        max_episode_steps=max_episode_steps,
    )
