"""MinAtar (Young & Tian 2019): miniature Atari games on a 10x10 grid, a small image benchmark.

Ids such as ``MinAtar/Breakout-v1`` work with every algorithm.  The games observe a 10x10xC
boolean grid, one channel per kind of object; :class:`BinaryGrid` turns it into the channels-first
uint8 image (values 0 and 1) that deeprl's convolutional torsos and the world model's VAE take,
and renders frames as 160x160 RGB bytes for videos.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from deeprl.errors import EnvError

FRAME_SCALE = 16  # each grid cell becomes 16x16 pixels in rendered frames


def is_minatar_id(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


def register_minatar() -> None:
    """Register the MinAtar ids with Gymnasium (the ``minatar`` package does not on import)."""
    if "MinAtar/Breakout-v1" in gym.registry:
        return
    try:
        import minatar.gym
    except ImportError as e:
        raise EnvError(f"MinAtar ids need the minatar package ({e}); install it with 'pip install minatar'") from None
    minatar.gym.register_envs()


class BinaryGrid(gym.ObservationWrapper):
    """``(H, W, C)`` bool grids -> ``(C, H, W)`` uint8 in {0, 1}; rgb_array frames as uint8 bytes."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation, dtype=np.uint8), -1, 0))

    def render(self) -> np.ndarray | None:
        frame = self.env.render()
        if frame is None or self.render_mode != "rgb_array":
            return frame
        frame = np.asarray(frame, dtype=np.float64)  # MinAtar draws colours in [0, 1]
        frame = np.repeat(np.repeat(frame, FRAME_SCALE, axis=0), FRAME_SCALE, axis=1)
        return np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)
