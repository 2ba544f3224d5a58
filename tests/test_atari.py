"""Tests for the Atari wrappers in deeprl.envs.atari (ALE/Pong-v5, ALE/Breakout-v5 and fakes)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from deeprl.envs.atari import (ClipReward, EpisodicLife, FireReset, MaxAndSkip, NoopReset, WarpFrame,
                               is_atari_id, make_atari, register_ale, wrap_atari)


# ----------------------------------------------------------------------------------- fakes


class FrameListEnv(gym.Env):
    """Steps through a fixed list of (frame, reward) pairs; terminates after the last one."""

    def __init__(self, frames: list[np.ndarray], rewards: list[float], terminate_at: int | None = None):
        self.frames, self.rewards = frames, rewards
        self.terminate_at = len(frames) if terminate_at is None else terminate_at
        self.observation_space = gym.spaces.Box(0, 255, frames[0].shape, np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0
        self.steps_taken = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros_like(self.frames[0]), {}

    def step(self, action):
        frame, reward = self.frames[self.t], self.rewards[self.t]
        self.t += 1
        self.steps_taken += 1
        return frame, reward, self.t >= self.terminate_at, False, {}


class _FakeAle:
    def __init__(self):
        self.lives_left = 0

    def lives(self) -> int:
        return self.lives_left


class FakeAtari(gym.Env):
    """A tiny ALE look-alike: RGB frames, lives, action meanings, a known reward per frame.

    Each life lasts ``life_frames`` emulator frames (or ``life_frames[i]`` for life i); rewards alternate +5, -3 (so clipping is
    visible); the game ends when the last life is lost.  Counts resets and no-ops for the tests.
    """

    metadata = {"render_modes": []}

    def __init__(self, lives: int = 3, life_frames: int | list[int] = 10, fire: bool = True):
        self.observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
        self.meanings = ["NOOP", "FIRE", "RIGHT", "LEFT"] if fire else ["NOOP", "UP", "DOWN"]
        self.action_space = gym.spaces.Discrete(len(self.meanings))
        self.ale = _FakeAle()
        self.start_lives, self.life_frames = lives, life_frames
        self.resets = 0
        self.raw_total = 0.0

    def get_action_meanings(self) -> list[str]:
        return list(self.meanings)

    def _obs(self) -> np.ndarray:
        return np.full((210, 160, 3), self.frame % 256, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.frame = 0
        self.in_life = 0
        self.ale.lives_left = self.start_lives
        return self._obs(), {"lives": self.ale.lives_left}

    def step(self, action):
        reward = 5.0 if self.frame % 2 == 0 else -3.0
        self.raw_total += reward
        self.frame += 1
        self.in_life += 1
        life = self.start_lives - self.ale.lives_left
        length = self.life_frames if isinstance(self.life_frames, int) else self.life_frames[life]
        if self.in_life == length:
            self.in_life = 0
            self.ale.lives_left -= 1
        terminated = self.ale.lives_left == 0
        return self._obs(), reward, terminated, False, {"lives": self.ale.lives_left}


class RewardSpy(gym.Wrapper):
    """Sums the raw rewards of the wrapped env since the last reset."""

    def reset(self, **kwargs):
        self.total = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total += float(reward)
        return obs, reward, terminated, truncated, info


# ------------------------------------------------------------------------------ is_atari_id


@pytest.mark.parametrize("env_id, expected", [
    ("ALE/Pong-v5", True),
    ("ALE/Breakout-v5", True),
    ("PongNoFrameskip-v4", True),
    ("BreakoutNoFrameskip-v4", True),
    ("Breakout-v4", True),
    ("Pong-v0", True),
    ("ale_py:ALE/Pong-v5", True),
    ("CartPole-v1", False),
    ("MountainCar-v0", False),
    ("LunarLander-v3", False),
    ("NotAGame-v0", False),
    ("", False),
])
def test_is_atari_id(env_id, expected):
    assert is_atari_id(env_id) is expected


# ------------------------------------------------------------------------------ full stack


def test_make_atari_spaces_and_render():
    env = make_atari("ALE/Pong-v5", render_mode="rgb_array")
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.action_space.n == 6
    assert env.observation_space.shape == (4, 84, 84)
    assert env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=1)
    assert info["real_reset"] is True
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert obs.max() > obs.min()  # a real picture, not a blank
    assert env.render().shape == (210, 160, 3)
    # The raw game steps one frame at a time; the frame skip is MaxAndSkip's.
    assert env.unwrapped._frameskip == 1
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    env.close()


def test_make_atari_options():
    env = make_atari("ALE/Breakout-v5", screen_size=42, frame_stack=2, full_action_space=True)
    assert env.observation_space.shape == (2, 42, 42)
    assert env.action_space.n == 18
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 42, 42)
    env.close()


def _rollout(env: gym.Env, seed: int, actions: np.ndarray):
    obs, _ = env.reset(seed=seed)
    observations, rewards, dones = [obs], [], []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(int(a))
        observations.append(obs)
        rewards.append(reward)
        dones.append((terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            observations.append(obs)
    return np.stack(observations), np.array(rewards), dones


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "ALE/Breakout-v5"])
def test_seeded_reset_is_deterministic(env_id):
    actions = np.random.default_rng(0).integers(0, 4, size=200)
    a = make_atari(env_id)
    b = make_atari(env_id)
    obs_a, rew_a, done_a = _rollout(a, 123, actions)
    obs_b, rew_b, done_b = _rollout(b, 123, actions)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert done_a == done_b
    # Re-seeding the same env reproduces it too, even after it has been played.
    obs_c, rew_c, _ = _rollout(a, 123, actions)
    np.testing.assert_array_equal(obs_a, obs_c)
    np.testing.assert_array_equal(rew_a, rew_c)
    # And the seed matters (different no-op starts and sticky-action draws).
    obs_d, _, _ = _rollout(b, 124, actions)
    assert obs_d.shape != obs_a.shape or not np.array_equal(obs_a, obs_d)


def test_stack_records_unclipped_whole_game_and_clips_agent_rewards():
    """On a fake game of 3 lives x 10 frames with rewards +5/-3, the agent sees clipped per-life
    episodes while info["episode"] has the raw score of the whole game, FIRE presses included."""
    fake = FakeAtari(lives=3, life_frames=10)
    env = wrap_atari(fake, noop_max=0, frame_skip=1)
    obs, info = env.reset(seed=0)
    assert info["real_reset"] is True
    rewards, terminations, episodes, steps = [], 0, [], 0
    while True:
        obs, reward, terminated, truncated, info = env.step(0)
        steps += 1
        rewards.append(reward)
        if "episode" in info:
            episodes.append(info["episode"])
        if terminated or truncated:
            terminations += 1
            if info["lives"] == 0:
                break
            obs, info = env.reset(seed=99)  # the vector env seeds every reset; ignored here
            assert info["real_reset"] is False
    assert set(rewards) <= {-1.0, 0.0, 1.0} and -1.0 in rewards and 1.0 in rewards
    assert terminations == 3  # two lost lives and the game over
    assert len(episodes) == 1  # one episode = one game
    # 30 frames alternating +5/-3 = 30 points, and every frame was one inner step.
    assert episodes[0]["r"] == pytest.approx(30.0) == pytest.approx(fake.raw_total)
    # The agent's steps, FireReset's 2 presses after each of the 3 resets and EpisodicLife's
    # no-op at each of the 2 continuing resets.
    assert episodes[0]["l"] == 30 == steps + 3 * 2 + 2
    obs, info = env.reset(seed=1)
    assert info["real_reset"] is True and fake.ale.lives() == 3


def test_episode_return_is_real_breakout_score():
    """A whole Breakout game played by a paddle-follows-ball policy (read from RAM): it breaks
    higher bricks worth 4 or 7 points, so clipped and real scores differ."""
    register_ale()  # gym.make alone: another test may not have registered the ALE ids in this process
    spy = RewardSpy(gym.make("ALE/Breakout-v5", frameskip=1))
    env = wrap_atari(spy)
    ale = env.unwrapped.ale
    env.reset(seed=0)
    life_returns = [0.0]  # clipped rewards the agent saw, per life
    for _ in range(3000):
        ram = ale.getRAM()
        ball_x, paddle_x = int(ram[99]), int(ram[72]) + 8
        action = 1 if ball_x == 0 else 2 if paddle_x < ball_x else 3 if paddle_x > ball_x else 0
        obs, reward, terminated, truncated, info = env.step(action)
        life_returns[-1] += reward
        if terminated or truncated:
            if "episode" in info:
                break
            env.reset(seed=0)
            life_returns.append(0.0)
    else:
        pytest.fail("Breakout game did not end")
    assert ale.lives() == 0 and len(life_returns) == 5
    assert info["episode"]["r"] == spy.total  # the real score of the whole game
    assert spy.total > sum(life_returns)  # some bricks were worth more than 1
    assert spy.total > max(life_returns)  # more than one life scored


# ----------------------------------------------------------------------------- EpisodicLife


def test_episodic_life_on_breakout():
    env = make_atari("ALE/Breakout-v5")
    ale = env.unwrapped.ale
    obs, info = env.reset(seed=0)
    assert info["real_reset"] is True and ale.lives() == 5
    lives_seen = []
    for _ in range(3000):
        obs, reward, terminated, truncated, info = env.step(0)  # NOOP: the ball is soon lost
        if terminated or truncated:
            if ale.lives() == 0:
                assert "episode" in info  # the real game over ends a whole-game episode
                break
            assert terminated and not truncated
            assert "episode" not in info  # a lost life is not the end of the game
            lives_now = ale.lives()
            frame_before = info["episode_frame_number"]
            obs, info = env.reset(seed=12345)
            assert info["real_reset"] is False
            assert ale.lives() == lives_now  # the game went on, lives not back to 5
            assert info["episode_frame_number"] > frame_before  # same game, later frames
            lives_seen.append(lives_now)
    else:
        pytest.fail("Breakout game did not end")
    assert lives_seen == [4, 3, 2, 1]
    obs, info = env.reset(seed=0)
    assert info["real_reset"] is True and ale.lives() == 5
    assert info["episode_frame_number"] < 200  # a new game: only the no-op and FIRE frames


def test_episodic_life_real_reset_when_no_life_was_lost():
    env = make_atari("ALE/Breakout-v5")
    env.reset(seed=0)
    for _ in range(5):
        env.step(0)
    _, info = env.reset(seed=0)  # not after a lost life: restart the game
    assert info["real_reset"] is True


def test_episodic_life_noop_ending_the_game_gives_real_reset():
    # Lives of one frame: the continuing reset's no-op itself loses the next life.
    fake = FakeAtari(lives=2, life_frames=1)
    env = EpisodicLife(fake)
    _, info = env.reset(seed=0)
    assert info["real_reset"] is True and fake.resets == 1
    _, _, terminated, _, _ = env.step(0)
    assert terminated and fake.ale.lives() == 1
    _, info = env.reset()  # the no-op step loses the last life -> game over -> real reset
    assert info["real_reset"] is True and fake.resets == 2 and fake.ale.lives() == 2


# ---------------------------------------------------------------------------- MaxAndSkip


def _frames(*rows):
    return [np.array(r, dtype=np.uint8).reshape(2, 2) for r in rows]


def test_max_and_skip_takes_max_of_last_two_frames_and_sums_rewards():
    frames = _frames([9, 9, 9, 9], [0, 0, 0, 0], [1, 7, 3, 0], [5, 2, 3, 4],
                     [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [2, 0, 0, 0])
    inner = FrameListEnv(frames, rewards=[1, 2, 3, 4, 10, 20, 30, 40])
    env = MaxAndSkip(inner, skip=4)
    env.reset()
    obs, reward, terminated, truncated, _ = env.step(0)
    # frame 0 (all 9s) is not one of the last two, so it must not show through
    np.testing.assert_array_equal(obs, np.array([[5, 7], [3, 4]]))
    assert reward == 10.0 and isinstance(reward, float)
    assert not terminated and inner.steps_taken == 4
    obs, reward, terminated, truncated, _ = env.step(0)
    np.testing.assert_array_equal(obs, np.array([[2, 0], [0, 1]]))
    assert reward == 100.0 and terminated


def test_max_and_skip_stops_when_the_episode_ends():
    frames = _frames([1, 1, 1, 1], [0, 5, 0, 0], [3, 0, 0, 0], [9, 9, 9, 9])
    inner = FrameListEnv(frames, rewards=[1, 2, 4, 8], terminate_at=2)
    env = MaxAndSkip(inner, skip=4)
    env.reset()
    obs, reward, terminated, _, _ = env.step(0)
    assert terminated and inner.steps_taken == 2 and reward == 3.0
    np.testing.assert_array_equal(obs, np.array([[1, 5], [1, 1]]))
    # A step that lasts one frame returns that frame, not a max with a frame of an older step.
    inner2 = FrameListEnv(frames, rewards=[1, 2, 4, 8], terminate_at=1)
    env2 = MaxAndSkip(inner2, skip=4)
    env2.reset()
    obs, reward, terminated, _, _ = env2.step(0)
    assert terminated and reward == 1.0
    np.testing.assert_array_equal(obs, frames[0])


# -------------------------------------------------------------------- other wrappers


def test_noop_reset_is_seeded_and_in_range():
    def count_noops(seed):
        fake = FakeAtari(lives=3, life_frames=1000, fire=False)
        env = NoopReset(fake, noop_max=30)
        env.reset(seed=seed)
        return fake.frame

    counts = [count_noops(s) for s in range(40)]
    assert counts == [count_noops(s) for s in range(40)]  # same seed, same number of no-ops
    assert min(counts) >= 1 and max(counts) <= 30
    assert len(set(counts)) > 5  # and it really is random


def test_noop_reset_resets_again_if_the_game_ends():
    fake = FakeAtari(lives=1, life_frames=2, fire=False)
    env = NoopReset(fake, noop_max=30)
    for seed in range(10):
        env.reset(seed=seed)
        assert fake.ale.lives() == 1  # never handed back a finished game


def test_fire_reset_presses_fire_and_reports_real_reset():
    assert not FireReset.applies_to(FakeAtari(fire=False))
    with pytest.raises(ValueError):
        FireReset(FakeAtari(fire=False))
    fake = FakeAtari(lives=3, life_frames=[4, 2, 10])
    env = FireReset(EpisodicLife(fake))
    _, info = env.reset(seed=0)
    assert fake.frame == 2 and info["real_reset"] is True  # FIRE and action 2 were pressed
    env.step(0)
    _, _, terminated, _, _ = env.step(0)
    assert terminated and fake.ale.lives() == 2
    # Continuing reset: no-op, then FIRE loses the 2-frame life 2, so FireReset resets again
    # (another continuation, into life 3) and presses again.  No reset was real; it says so.
    _, info = env.reset()
    assert info["real_reset"] is False
    assert fake.ale.lives() == 1 and fake.resets == 1 and fake.in_life == 3
    # A real reset followed by a continuing one (action 2 loses the 2-frame first life) is
    # still reported as real: the caller must learn that the game was restarted.
    fake = FakeAtari(lives=3, life_frames=[2, 10, 10])
    env = FireReset(EpisodicLife(fake))
    _, info = env.reset(seed=0)
    assert fake.resets == 1 and fake.ale.lives() == 2 and fake.in_life == 3
    assert info["real_reset"] is True


def test_clip_reward():
    env = ClipReward(FrameListEnv(_frames([0, 0, 0, 0]) * 4, rewards=[7.5, -0.2, 0.0, 3]))
    env.reset()
    assert [env.step(0)[1] for _ in range(4)] == [1.0, -1.0, 0.0, 1.0]


def test_warp_frame():
    fake = FakeAtari()
    env = WarpFrame(fake, size=84)
    assert env.observation_space == gym.spaces.Box(0, 255, (84, 84), np.uint8)
    obs = env.observation(np.full((210, 160, 3), (200, 100, 50), np.uint8))
    assert obs.shape == (84, 84) and obs.dtype == np.uint8
    assert np.all(obs == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50))
    # Area averaging: a 210x160 frame whose left half is white becomes half white, with one
    # blended column where the edge (x = 80 of 160 -> 42 of 84) falls... exactly on a border.
    frame = np.zeros((210, 160, 3), np.uint8)
    frame[:, :80] = 255
    obs = env.observation(frame)
    assert np.all(obs[:, :42] == 255) and np.all(obs[:, 42:] == 0)
    # Top 2 of 210 rows white: output row 0 covers rows [0, 2.5) -> 2/2.5 of 255 = 204.
    frame = np.zeros((210, 160, 3), np.uint8)
    frame[:2] = 255
    obs = env.observation(frame)
    assert np.all(obs[0] == 204) and np.all(obs[1:] == 0)
    # Random frame against a brute-force area average: 210 = 84 * 5/2 and 160 = 84 * 40/21, so
    # repeating rows 2x and columns 21x makes each output pixel a plain 5 x 40 block mean.
    frame = np.random.default_rng(0).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    gray = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    fine = np.repeat(np.repeat(gray, 2, axis=0), 21, axis=1)
    expected = fine.reshape(84, 5, 84, 40).mean(axis=(1, 3))
    assert np.abs(env.observation(frame) - expected).max() <= 0.5 + 1e-3


def test_real_reset_inside_a_continuing_reset_uses_the_seed():
    """The vector env seeds every reset and replays one reported as real with
    ``reset(seed=...)`` on a fresh env.  Here the continuing reset's FIRE press ends the game
    (the last life lasts 2 frames), so the reset becomes real inside FireReset: it must then be
    seeded like a fresh reset with that seed, no-op count included."""
    def make():
        fake = FakeAtari(lives=2, life_frames=[40, 2])
        return fake, wrap_atari(fake, noop_max=30, frame_skip=1)

    for seed in range(5):
        fake, env = make()
        env.reset(seed=1000 + seed)
        while not env.step(0)[2]:
            pass
        assert fake.ale.lives() == 1
        obs, info = env.reset(seed=seed)
        assert info["real_reset"] is True and fake.resets == 2
        fresh, fresh_env = make()
        fresh_obs, _ = fresh_env.reset(seed=seed)
        assert fake.frame == fresh.frame  # same number of no-ops
        np.testing.assert_array_equal(obs, fresh_obs)
