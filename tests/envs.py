"""Tiny hand-made environments for tests only.

Importing this module registers them, so ids such as ``tests.envs:DeeprlTest/Identity-v0`` work
through Gymnasium's ``module:Env-v0`` mechanism, exactly as a user's own env module would.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class IdentityEnv(gym.Env):
    """Observe a random one-hot target; reward 1 for the action equal to it. Optimal Q = 1/(1-γ)."""

    def __init__(self, n: int = 3, episode_length: int = 20):
        self.n, self.episode_length = n, episode_length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), np.float32)
        self.action_space = gym.spaces.Discrete(n)

    def _obs(self) -> np.ndarray:
        self.target = int(self.np_random.integers(self.n))
        return np.eye(self.n, dtype=np.float32)[self.target]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.t += 1
        return self._obs(), reward, False, self.t >= self.episode_length, {}


class CountdownEnv(gym.Env):
    """Observation is the step index; the episode terminates after ``length`` steps, reward = index.

    Deterministic, so every transition's successor is known: tests use it to check n-step returns
    and terminated/truncated bookkeeping end to end.
    """

    def __init__(self, length: int = 5, truncate_at: int | None = None):
        self.length, self.truncate_at = length, truncate_at
        self.observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.t >= self.length
        truncated = self.truncate_at is not None and self.t >= self.truncate_at and not terminated
        return np.array([float(self.t)], np.float32), float(self.t), terminated, truncated, {}


class TwoArmedChain(gym.Env):
    """Discrete observations: from state 0, action 1 leads to a rewarding terminal state.

    Observations are a ``Discrete`` space, so the Q-network one-hot encodes them.
    """

    def __init__(self):
        self.observation_space = gym.spaces.Discrete(3)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        if int(action) == 1:
            return 2, 1.0, True, False, {}
        return 1, 0.0, True, False, {}


gym.register("DeeprlTest/Identity-v0", entry_point=IdentityEnv)
gym.register("DeeprlTest/Countdown-v0", entry_point=CountdownEnv)
gym.register("DeeprlTest/Chain-v0", entry_point=TwoArmedChain)
gym.register("DeeprlTest/Continuous-v0", entry_point="gymnasium.envs.classic_control:Continuous_MountainCarEnv")

IDENTITY = "tests.envs:DeeprlTest/Identity-v0"
COUNTDOWN = "tests.envs:DeeprlTest/Countdown-v0"
CHAIN = "tests.envs:DeeprlTest/Chain-v0"


class TargetReachEnv(gym.Env):
    """One-step continuous bandit: observe a target in [-1, 1], reward -(a - target)²."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = float(self.np_random.uniform(-1, 1))
        return np.array([self.target], np.float32), {}

    def step(self, action):
        reward = -float((np.asarray(action).reshape(-1)[0] - self.target) ** 2)
        return np.array([self.target], np.float32), reward, True, False, {}


gym.register("DeeprlTest/TargetReach-v0", entry_point=TargetReachEnv)
TARGET_REACH = "tests.envs:DeeprlTest/TargetReach-v0"


class MultiDiscreteActionEnv(gym.Env):
    """Observe ``len(nvec)`` random target codes one-hot; choose all of them at once with a MultiDiscrete
    action; the reward is the fraction of slots right (20 steps: a perfect episode returns 20, a random
    policy about 20 · mean(1/nvec))."""

    def __init__(self, nvec=(3, 3, 2), episode_length: int = 20):
        self.nvec, self.episode_length = tuple(nvec), episode_length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (sum(self.nvec),), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(list(self.nvec))

    def _obs(self) -> np.ndarray:
        self.target = np.array([self.np_random.integers(n) for n in self.nvec])
        return np.concatenate([np.eye(n, dtype=np.float32)[t] for n, t in zip(self.nvec, self.target)])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action)), action
        reward = float(np.mean(np.asarray(action) == self.target))
        self.t += 1
        return self._obs(), reward, False, self.t >= self.episode_length, {}


class MultiBinaryActionEnv(MultiDiscreteActionEnv):
    """The same task with bits: observe 4 random bits, copy them with a MultiBinary(4) action."""

    def __init__(self):
        super().__init__(nvec=(2, 2, 2, 2))
        self.observation_space = gym.spaces.MultiBinary(4)
        self.action_space = gym.spaces.MultiBinary(4)

    def _obs(self) -> np.ndarray:
        self.target = self.np_random.integers(0, 2, 4).astype(np.int8)
        return self.target.copy()


class GoalLineEnv(gym.Env):
    """A goal-conditioned task with a Dict observation: positions 0..8 on a line, a goal drawn each
    episode; ``{"position": Discrete(9), "goal": Discrete(9), "time": Box(0, 1, (1,))}``.  Each step costs
    0.1; reaching the goal pays 1 and ends the episode (20 steps truncate).  A policy that reads both
    entries returns 1 - 0.1 (d - 1) for a start d steps away (about 0.75 on average); one that ignores
    the goal cannot do better than about -0.4."""

    def __init__(self, size: int = 9, max_steps: int = 20):
        self.size, self.max_steps = size, max_steps
        self.observation_space = gym.spaces.Dict({"position": gym.spaces.Discrete(size),
                                                  "goal": gym.spaces.Discrete(size),
                                                  "time": gym.spaces.Box(0.0, 1.0, (1,), np.float32)})
        self.action_space = gym.spaces.Discrete(2)  # left, right

    def _obs(self) -> dict:
        return {"position": self.pos, "goal": self.goal, "time": np.array([self.t / self.max_steps], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = (int(x) for x in self.np_random.choice(self.size, 2, replace=False))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = min(self.size - 1, max(0, self.pos + (1 if int(action) == 1 else -1)))
        self.t += 1
        goal = self.pos == self.goal
        return self._obs(), (1.0 if goal else -0.1), goal, self.t >= self.max_steps and not goal, {}


gym.register("DeeprlTest/MultiDiscrete-v0", entry_point=MultiDiscreteActionEnv)
gym.register("DeeprlTest/MultiBinary-v0", entry_point=MultiBinaryActionEnv)
gym.register("DeeprlTest/GoalLine-v0", entry_point=GoalLineEnv)
MULTI_BINARY = "tests.envs:DeeprlTest/MultiBinary-v0"
GOAL_LINE = "tests.envs:DeeprlTest/GoalLine-v0"
MULTI_DISCRETE = "tests.envs:DeeprlTest/MultiDiscrete-v0"


class LineWalkEnv(gym.Env):
    """Positions 0..4 observed one-hot; left/right moves; reaching 4 pays 1 and ends the episode.

    The reward is a function of the next state, as the lecture's reward model p(r'|z') assumes, so a
    world model can learn it.  Going right every step is optimal (4 steps); 20 steps truncate.
    """

    def __init__(self, size: int = 5, max_steps: int = 20):
        self.size, self.max_steps = size, max_steps
        self.observation_space = gym.spaces.Box(0.0, 1.0, (size,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.eye(self.size, dtype=np.float32)[self.pos]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.pos = min(self.size - 1, max(0, self.pos + (1 if int(action) == 1 else -1)))
        self.t += 1
        goal = self.pos == self.size - 1
        return self._obs(), float(goal), goal, self.t >= self.max_steps and not goal, {}


gym.register("DeeprlTest/LineWalk-v0", entry_point=LineWalkEnv)
LINE_WALK = "tests.envs:DeeprlTest/LineWalk-v0"


class BrokenRewardEnv(IdentityEnv):
    """IdentityEnv whose reward turns NaN (or infinite) from step ``after`` on: a user env bug."""

    def __init__(self, after: int = 300, value: float = float("nan")):
        super().__init__()
        self.after, self.value, self.total = after, value, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.total += 1
        return obs, (self.value if self.total > self.after else reward), terminated, truncated, info


class EndlessEnv(IdentityEnv):
    """IdentityEnv that never ends an episode, registered without a time limit."""

    def step(self, action):
        obs, reward, _, _, info = super().step(action)
        return obs, reward, False, False, info


gym.register("DeeprlTest/NaNReward-v0", entry_point=BrokenRewardEnv)
NAN_REWARD = "tests.envs:DeeprlTest/NaNReward-v0"
gym.register("DeeprlTest/Endless-v0", entry_point=EndlessEnv)
ENDLESS = "tests.envs:DeeprlTest/Endless-v0"


class SlowEnv(IdentityEnv):
    """IdentityEnv whose every step sleeps ``DEEPRL_TEST_STEP_SLEEP`` seconds (0 when unset): gives a
    test time to send a signal during a chosen phase of a run, then runs at full speed on resume."""

    def step(self, action):
        import os
        import time

        time.sleep(float(os.environ.get("DEEPRL_TEST_STEP_SLEEP", "0")))
        return super().step(action)


gym.register("DeeprlTest/Slow-v0", entry_point=SlowEnv)
SLOW = "tests.envs:DeeprlTest/Slow-v0"
