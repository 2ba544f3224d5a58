"""MinAtar (Young & Tian 2019): miniature Atari games on a 10x10 grid, a small image benchmark.

Ids such as ``MinAtar/Breakout-v1`` work with every algorithm.  The games observe a 10x10xC
boolean grid, one channel per kind of object; :class:`BinaryGrid` turns it into the channels-first
uint8 image (values 0 and 1) that deeprl's convolutional torsos and the world model's VAE take.
Frames render as 160x160 RGB bytes for videos.

The ids are registered with :class:`MinAtarEnv`, the ``minatar`` package's Gymnasium env seeded the
Gymnasium way: ``reset(seed=...)`` seeds ``np_random`` and the game draws its randomness (sticky
actions included) from it, so the same seed gives the same game and Gymnasium's ``check_env`` and
``gymnasium.make(env.spec)`` work on the made env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import EnvError

FRAME_SCALE = 16  # each grid cell becomes 16x16 pixels in rendered frames


def is_minatar_id(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
ENTRY_POINT = "deeprl.envs.minatar:MinAtarEnv"


def register_minatar() -> None:
    """Register the MinAtar ids with Gymnasium (the ``minatar`` package does not on import).

    ``MinAtar/<Game>-v0`` has all six actions and ``-v1`` the game's minimal set, as the package
    registers them, but made as :class:`MinAtarEnv`.  Ids the package registered itself
    (``minatar.gym.register_envs()``) are replaced: their envs ignore ``np_random``.
    """
    if getattr(gym.registry.get("MinAtar/Breakout-v1"), "entry_point", None) == ENTRY_POINT:
        return
    try:
        import minatar.gym  # noqa: F401  (fail here, with a clear error, rather than in gym.make)
    except ImportError as e:
        raise EnvError(f"MinAtar ids need the minatar package ({e}); install it with 'pip install minatar'") from None
    for game in GAMES:
        name = game.title().replace("_", "")
        for version, minimal in ((0, False), (1, True)):
            env_id = f"MinAtar/{name}-v{version}"
            gym.registry.pop(env_id, None)
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"game": game, "use_minimal_action_set": minimal})


class MinAtarEnv(gym.Env):
    """A MinAtar game (``minatar.gym.BaseEnv``) whose randomness comes from ``np_random``.

    The package's env seeds a ``RandomState`` of its own when ``reset`` is given a seed and leaves
    ``np_random`` unset.  Here ``reset(seed=...)`` seeds ``np_random`` the Gymnasium way and the game
    (its spawns and its sticky actions) draws from that same generator, so the same seed gives the
    same game.  A reset also forgets the last action, which the package keeps across episodes
    (a sticky first action would repeat the previous episode's last one).  Keyword arguments as
    ``minatar.gym.BaseEnv``: ``game``, ``render_mode``, ``use_minimal_action_set``,
    ``sticky_action_prob``, ``difficulty_ramping``.
    """

    metadata = {"render_modes": ["human", "array", "rgb_array"], "render_fps": 20}

    def __init__(self, game: str, render_mode: str | None = None, use_minimal_action_set: bool = False,
                 **kwargs: Any):
        import minatar.gym

        self._env = minatar.gym.BaseEnv(game, render_mode=render_mode, use_minimal_action_set=use_minimal_action_set,
                                        **kwargs)
        self.render_mode = render_mode
        self.action_space = self._env.action_space
        self.observation_space = self._env.observation_space
        self._rng_of: np.random.Generator | None = None  # the generator the game draws from

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._rng_of is not self.np_random:  # seeded (a new generator), first reset, or one assigned
            game = self._env.game
            game.random = game.env.random = np.random.RandomState(self.np_random.bit_generator)
            self._rng_of = self.np_random
        self._env.game.last_action = 0
        return self._env.reset()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, float(reward), bool(terminated), truncated, info

    def render(self) -> Any:
        """``rgb_array``: 160x160x3 uint8 (each cell 16x16 pixels; the package draws 10x10 floats in
        [0, 1], which Gymnasium's checker rejects); other modes as the package renders them."""
        frame = self._env.render()
        if frame is None or self.render_mode != "rgb_array":
            return frame
        frame = np.asarray(frame, dtype=np.float64)
        frame = np.repeat(np.repeat(frame, FRAME_SCALE, axis=0), FRAME_SCALE, axis=1)
        return np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)

    def close(self) -> None:
        self._env.close()


class BinaryGrid(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """``(H, W, C)`` bool grids -> ``(C, H, W)`` uint8 in {0, 1}."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation, dtype=np.uint8), -1, 0))
