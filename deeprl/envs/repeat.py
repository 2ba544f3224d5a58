"""ActionRepeat: one agent decision held for ``repeat`` env steps, their rewards summed.

The DeepMind Control Suite is run this way by Dreamer, TD-MPC2 and DrQ (an action held for two
physics steps), and its published returns count env steps, not decisions: 100k env steps there
are 50k decisions.  Atari has its own frame skip (``deeprl.envs.atari``); this is the same idea
for any env, without the max-pool over the last two frames.

The repeat stops at the first termination or truncation, so an episode never runs past its end
and a time limit below this wrapper still cuts at the env's own step count; and where the env
masks actions (``info["action_mask"]``), at the first step after which the action is invalid.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def _allowed(action: Any, mask: Any) -> bool:
    """Whether a Discrete ``action`` is valid under the env's current mask (no mask: it is)."""
    if mask is None or np.ndim(action) != 0:
        return True
    return bool(np.asarray(mask)[int(action)])


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Step the env ``repeat`` times with the same action; the reward is the sum, the
    observation and info are the last step's."""

    def __init__(self, env: gym.Env, repeat: int):
        if repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {repeat}")
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated or not _allowed(action, info.get("action_mask")):
                break
        return obs, total, terminated, truncated, info
