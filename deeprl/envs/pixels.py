"""Image observations for any env that renders: its ``rgb_array`` frame, resized, optionally stacked.

``PixelObservation(gym.make("CartPole-v1", render_mode="rgb_array"), size=64, stack=2)`` observes
``(64, 64, 6)`` uint8 images: the last two frames, oldest first, along the channel axis.  One frame
of CartPole shows where the pole is but not where it is going; two show its velocity too.
Observations are channels-last (HWC) like Gymnasium's image envs; the world model's VAE takes
either layout, and ``deeprl.envs.make.ChannelsFirst`` turns them CHW for the Q and policy networks.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.envs.resize import area_taps
from deeprl.errors import EnvError

__all__ = ["PixelObservation"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as WarpFrame


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace an env's observations by its rendered frames, area-resized to ``size`` x ``size`` uint8.

    ``grayscale`` keeps one luma channel instead of RGB; ``stack=k`` concatenates the last k frames
    along the channel axis (oldest first), giving ``(size, size, k·channels)``.  After a reset the
    stack holds k copies of the first frame.  The env must have been made with
    ``render_mode="rgb_array"``, so the wrapped env declares that one render mode only (Gymnasium's
    ``check_env`` remakes the env in every declared mode).  Resizing averages the source pixels each
    output pixel covers (NumPy only, no image library), the same method as the Atari ``WarpFrame``.
    """

    def __init__(self, env: gym.Env, size: int = 64, grayscale: bool = False, stack: int = 1):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, grayscale=grayscale, stack=stack)
        super().__init__(env)
        if size < 1 or stack < 1:
            raise ValueError(f"PixelObservation needs size >= 1 and stack >= 1, got size={size}, stack={stack}")
        modes = env.metadata.get("render_modes", [])
        if env.render_mode != "rgb_array" or "rgb_array" not in modes:
            name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise EnvError(
                f"pixel observations of {name!r} need its rgb_array render, but it was made with "
                f"render_mode={env.render_mode!r} (it supports {list(modes)}); make it with "
                f"gym.make({name!r}, render_mode='rgb_array')")
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}
        self.size = size
        self.grayscale = grayscale
        self._frames: deque[np.ndarray] = deque(maxlen=stack)
        self._taps: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        channels = (1 if grayscale else 3) * stack
        self.observation_space = gym.spaces.Box(0, 255, (size, size, channels), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        self._frames.clear()
        return super().reset(seed=seed, options=options)

    def observation(self, observation: Any) -> np.ndarray:
        frame = self._render()
        if not self._frames:
            self._frames.extend([frame] * self._frames.maxlen)
        else:
            self._frames.append(frame)
        return np.concatenate(self._frames, axis=-1)

    def _render(self) -> np.ndarray:
        """The current frame, ``(size, size, 1 or 3)`` uint8."""
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise EnvError(f"pixel observations need (H, W, 3) rgb_array frames; the env rendered "
                           f"{type(frame).__name__} {getattr(frame, 'shape', '')}")
        height, width = frame.shape[:2]
        if (height, width) not in self._taps:  # the render size is known only once the env has drawn
            self._taps[(height, width)] = (*area_taps(height, self.size), *area_taps(width, self.size))
        row_index, row_weight, col_index, col_weight = self._taps[(height, width)]
        # gather bytes, not floats: converting the whole frame first would cost more than the resize
        rows = np.einsum("ok,okwc->owc", row_weight, frame[row_index], dtype=np.float32, casting="unsafe")
        resized = np.einsum("ok,hokc->hoc", col_weight, rows[:, col_index])
        if self.grayscale:  # after resizing (both are linear), on 64x64 instead of 400x600 pixels
            resized = resized[..., 0:1] * _LUMA[0] + resized[..., 1:2] * _LUMA[1] + resized[..., 2:3] * _LUMA[2]
        return np.clip(np.rint(resized), 0, 255).astype(np.uint8)
