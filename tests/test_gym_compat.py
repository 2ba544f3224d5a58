"""deeprl's envs are plain Gymnasium envs: Gymnasium's own ``check_env`` accepts every kind that
``make_env`` makes, and ``gymnasium.make(env.spec)`` rebuilds each one, wrappers and all."""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from deeprl.envs import make_env, make_vec_env
from deeprl.envs.make import make_pixel_env

# check_env makes each env again in every render mode it declares, "human" included: draw off-screen
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")


class TinyWalkEnv(gym.Env):
    """A user's own env: a walk on a line from a random start, ended at either edge; renders a dot."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, half_width: int = 4, render_mode: str | None = None):
        self.half_width, self.render_mode = half_width, render_mode
        self.observation_space = gym.spaces.Box(-half_width, half_width, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.x = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x = int(self.np_random.integers(-self.half_width + 1, self.half_width))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += 1 if int(action) == 1 else -1
        terminated = abs(self.x) >= self.half_width
        return np.array([self.x], np.float32), float(self.x > 0), terminated, False, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        frame = np.zeros((8, 4 * self.half_width + 4, 3), np.uint8)
        column = 2 * (self.x + self.half_width) + 1
        frame[3:5, column:column + 2] = 255
        return frame


USER_ID = "DeeprlCompat/TinyWalk-v0"
gym.register(id=USER_ID, entry_point=f"{__name__}:TinyWalkEnv")


# Every kind of env deeprl makes.  check_env's render check runs on all of them: it remakes the env
# from its spec in each declared render mode, so it also exercises gym.make(env.spec).
ENVS: dict[str, Callable[[], gym.Env]] = {
    "classic-control": lambda: make_env("CartPole-v1"),
    "classic-control-rgb": lambda: make_env("CartPole-v1", render_mode="rgb_array"),
    "box2d": lambda: make_env("LunarLander-v3"),
    "pixels-rgb": lambda: make_env("CartPole-v1", pixels=32),
    "pixels-gray-stacked": lambda: make_env("CartPole-v1", pixels=24, grayscale=True, frame_stack=3),
    "pixels-channels-last": lambda: make_pixel_env("CartPole-v1", size=32, stack=2),
    "atari": lambda: make_env("ALE/Pong-v5"),
    "atari-step-limit": lambda: make_env("ALE/Breakout-v5", max_episode_steps=40),
    "atari-raw": lambda: make_env("ALE/Pong-v5", atari_wrappers="off"),
    "minatar": lambda: make_env("MinAtar/Breakout-v1"),
    "minatar-rgb": lambda: make_env("MinAtar/Breakout-v1", render_mode="rgb_array"),
    "user": lambda: make_env(USER_ID),
    "user-pixels": lambda: make_env(USER_ID, pixels=8, frame_stack=2),
}


def _wrappers(env: gym.Env) -> list[str]:
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return [*names, type(env).__name__]


def _rollout(env: gym.Env, actions: np.ndarray, seed: int) -> list[tuple]:
    """Observations, rewards and ends of a seeded run; episodes that end restart unseeded."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple] = [(np.array(obs),)]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(int(a))
        out.append((np.array(obs), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((np.array(obs),))
    return out


def _assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")  # wrapped on purpose
@pytest.mark.parametrize("kind", list(ENVS))
def test_check_env_accepts_it_and_its_spec_rebuilds_it(kind):
    env = ENVS[kind]()
    check_env(env)  # the render check included: every declared mode is remade from env.spec

    # the spec is plain data (JSON) that describes the whole stack
    spec = EnvSpec.from_json(env.spec.to_json())
    remade = gym.make(spec)
    assert remade.spec == env.spec
    assert _wrappers(remade) == _wrappers(env)
    assert remade.observation_space == env.observation_space and remade.action_space == env.action_space

    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=50)
    expected = _rollout(env, actions, seed=11)
    _assert_same(_rollout(remade, actions, seed=11), expected)
    _assert_same(_rollout(env, actions, seed=11), expected)  # and again: the seed alone decides
    env.close()
    remade.close()


def test_every_deeprl_wrapper_records_its_constructor_arguments():
    found = []
    for name in ("deeprl.envs.make", "deeprl.envs.atari", "deeprl.envs.minatar", "deeprl.envs.pixels",
                 "deeprl.envs.vector"):
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, gym.Wrapper) and cls.__module__ == name:
                found.append(cls.__name__)
                assert issubclass(cls, gym.utils.RecordConstructorArgs), cls
    assert {"ChannelsFirst", "PixelObservation", "NoopReset", "MaxAndSkip", "GameStepLimit", "EpisodicLife",
            "FireReset", "WarpFrame", "ClipReward", "BinaryGrid"} <= set(found)


def test_atari_step_limit_stays_above_the_frame_skip():
    """The limit counts agent steps (of 4 frames), in the made env and in the one its spec makes:
    7 of them, the two FIRE presses of the reset included."""
    env = make_env("ALE/Breakout-v5", max_episode_steps=7, episodic_life=False)
    remade = gym.make(env.spec)
    for e in (env, remade):
        e.reset(seed=0)
        ends = [e.step(0)[3] for _ in range(5)]
        assert ends == [False] * 4 + [True]
        assert e.spec.max_episode_steps is None  # not a limit on the base env's frames
        e.close()


def test_minatar_seeds_np_random_and_draws_the_game_from_it():
    env = make_env("MinAtar/Breakout-v1")
    env.reset(seed=5)
    assert env.unwrapped.np_random_seed == 5
    # the game's start (where the ball comes from) was drawn from np_random
    assert env.unwrapped.np_random.bit_generator.state != np.random.default_rng(5).bit_generator.state
    actions = np.random.default_rng(1).integers(0, env.action_space.n, size=300)
    first = _rollout(env, actions, seed=5)
    # the same env after other episodes, and a fresh one: the seed alone decides the game, even the
    # sticky first action (the package keeps the previous episode's last action across resets)
    _rollout(env, actions[::-1], seed=6)
    _assert_same(_rollout(env, actions, seed=5), first)
    fresh = make_env("MinAtar/Breakout-v1")
    _assert_same(_rollout(fresh, actions, seed=5), first)
    other = _rollout(fresh, actions, seed=6)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    env.close()
    fresh.close()


def test_minatar_seeded_reset_forgets_the_previous_episode():
    """Sticky actions repeat the last action; the package keeps it across resets, so a seeded game
    depended on how the episode before it ended (a restored run replays onto a fresh env)."""
    for seed in range(20):
        runs = []
        for previous_action in (0, 2):
            env = make_env("MinAtar/Breakout-v1")
            env.reset(seed=1000)
            env.step(previous_action)
            env.reset(seed=seed)
            runs.append([env.step(0)[0] for _ in range(3)])
            env.close()
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)


def test_minatar_vector_env_restores_the_exact_state():
    rng = np.random.default_rng(0)
    envs = make_vec_env("MinAtar/Breakout-v1", 2, seed=7)
    envs.reset()
    for a in rng.integers(0, 3, size=(200, 2)):
        envs.step(a)
    state = envs.state()
    future = rng.integers(0, 3, size=(100, 2))
    fresh = make_vec_env("MinAtar/Breakout-v1", 2, seed=7)
    fresh.restore(state)
    for a in future:
        s1, s2 = envs.step(a), fresh.step(a)
        np.testing.assert_array_equal(s1.obs, s2.obs)
        np.testing.assert_array_equal(s1.reward, s2.reward)
        np.testing.assert_array_equal(s1.terminated, s2.terminated)
    envs.close()
    fresh.close()


@pytest.mark.filterwarnings("ignore:.*Overriding environment", "ignore:.*is out of date")
def test_minatar_ids_the_package_registered_are_replaced():
    import minatar.gym

    minatar.gym.register_envs()  # a user who registered the package's envs first
    env = make_env("MinAtar/Asterix-v0")
    assert type(env.unwrapped).__name__ == "MinAtarEnv" and env.action_space.n == 6
    env.close()
