"""Composite observations (Dict, Tuple, MultiDiscrete, MultiBinary) packed into one flat vector.

:class:`PackObservation` is the last wrapper :func:`~deeprl.envs.make.make_env` puts on an env
whose observations are composite: from there on, vector envs, replay buffers, rollouts and
checkpoints handle one float32 array, and the networks take it apart again by the entries of
its :class:`~deeprl.spaces.Packed` space.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.spaces import Packed


class PackObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations of a composite space as rows of its :class:`Packed` space."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = Packed(env.observation_space)

    def observation(self, observation: Any) -> np.ndarray:
        return self.observation_space.pack(observation)
