"""Environments: making them from ids, checkpointable (EpisodeLog) and vectorized, Atari preprocessing."""

from deeprl.envs.episode_log import EpisodeLog
from deeprl.envs.make import (check_discrete_actions, check_env_import, check_observation_space, is_image_space,
                              make_env, reward_range, use_atari_wrappers)
from deeprl.envs.vector import AsyncVecEnv, VecEnv, VecStep, make_vec_env

__all__ = ["AsyncVecEnv", "EpisodeLog", "VecEnv", "VecStep", "check_discrete_actions", "check_env_import",
           "check_observation_space", "is_image_space", "make_env", "make_vec_env", "reward_range",
           "use_atari_wrappers"]
