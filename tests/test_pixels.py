"""Pixel observations from rgb_array renders (deeprl.envs.pixels): shapes, resizing, stacking, resets, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from deeprl.envs.make import make_pixel_env
from deeprl.envs.pixels import PixelObservation
from deeprl.errors import EnvError


class FrameEnv(gym.Env):
    """Renders ``frames[t]`` at step t (cycling); observes nothing of interest."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, frames: list[np.ndarray], render_mode: str | None = "rgb_array"):
        self.frames, self.render_mode = frames, render_mode
        self.observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 0.0, False, False, {}

    def render(self):
        return self.frames[self.t % len(self.frames)]


def solid(value: int | tuple[int, int, int], shape: tuple[int, int] = (8, 12)) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8), (*shape, 3)).copy()


def test_cartpole_pixels_shape_dtype_and_content():
    env = make_pixel_env("CartPole-v1", size=64)
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs in env.observation_space
    assert obs.std() > 1  # the cart and pole are drawn, not a blank frame
    for _ in range(5):
        nxt, reward, terminated, truncated, _ = env.step(1)
        assert nxt.shape == (64, 64, 3) and nxt.dtype == np.uint8 and reward == 1.0
    assert not np.array_equal(obs, nxt)  # pushing right moved the cart
    env.close()


def test_cartpole_grayscale_and_determinism():
    env = make_pixel_env("CartPole-v1", size=32, grayscale=True)
    assert env.observation_space.shape == (32, 32, 1)
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    assert a.shape == (32, 32, 1) and np.array_equal(a, b)
    env.close()


def test_cartpole_stack_shifts_and_reset_refills():
    """stack=3: after reset three copies of the first frame; each step drops the oldest frame."""
    env = make_pixel_env("CartPole-v1", size=32, stack=3)
    single = make_pixel_env("CartPole-v1", size=32)  # the same episode, one frame at a time
    assert env.observation_space.shape == (32, 32, 9)
    obs, _ = env.reset(seed=1)
    frames = [single.reset(seed=1)[0]]
    assert np.array_equal(obs, np.concatenate(frames * 3, axis=-1))
    for action in [1, 1, 0, 1]:
        obs = env.step(action)[0]
        frames.append(single.step(action)[0])
        assert np.array_equal(obs, np.concatenate(([frames[0]] * 3 + frames)[-3:], axis=-1))
    obs, _ = env.reset(seed=2)
    assert np.array_equal(obs[..., 0:3], obs[..., 3:6]) and np.array_equal(obs[..., 3:6], obs[..., 6:9])
    assert np.array_equal(obs[..., 6:9], single.reset(seed=2)[0])
    env.close()
    single.close()


def test_area_resize_averages_blocks_by_hand():
    # an 8x12 frame of 2x3 blocks, block (i, j) = 10·(4i + j); resized to 4x4 each block is one pixel
    blocks = (10 * np.arange(16).reshape(4, 4)).astype(np.uint8)
    frame = np.repeat(np.repeat(blocks, 2, axis=0), 3, axis=1)[..., None].repeat(3, axis=-1)
    obs, _ = PixelObservation(FrameEnv([frame]), size=4).reset()
    assert np.array_equal(obs[..., 0], blocks) and np.array_equal(obs[..., 2], blocks)
    # 2 rows of 0 and 255 in a 2x2 frame -> 1x1 is their mean, 127.5, rounded half to even: 128
    half = np.array([[[0] * 3, [0] * 3], [[255] * 3, [255] * 3]], np.uint8)
    assert PixelObservation(FrameEnv([half]), size=1).reset()[0].tolist() == [[[128, 128, 128]]]
    # upscaling repeats pixels
    up = PixelObservation(FrameEnv([blocks[:2, :2, None].repeat(3, axis=-1)]), size=4).reset()[0]
    assert up[..., 0].tolist() == [[0, 0, 10, 10], [0, 0, 10, 10], [40, 40, 50, 50], [40, 40, 50, 50]]


def test_grayscale_is_luma():
    # pure red, green, blue, white: 0.299·255 = 76.2, 0.587·255 = 149.7, 0.114·255 = 29.1, 255
    env = PixelObservation(FrameEnv([solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255)), solid(255)]),
                           size=2, grayscale=True)
    values = [env.reset()[0]] + [env.step(0)[0] for _ in range(3)]
    assert [int(v[0, 0, 0]) for v in values] == [76, 150, 29, 255]
    assert all(v.shape == (2, 2, 1) for v in values)


def test_errors_name_the_fix():
    with pytest.raises(EnvError, match="render_mode='rgb_array'"):
        PixelObservation(gym.make("CartPole-v1"))
    with pytest.raises(EnvError, match="render_mode=None"):
        PixelObservation(FrameEnv([solid(0)], render_mode=None))
    with pytest.raises(EnvError, match=r"\(H, W, 3\)"):
        PixelObservation(FrameEnv([np.zeros((8, 8), np.uint8)])).reset()
    with pytest.raises(EnvError, match="CartPole-v1"):
        make_pixel_env("CartPol-v1")
    with pytest.raises(ValueError, match="stack"):
        PixelObservation(FrameEnv([solid(0)]), stack=0)
