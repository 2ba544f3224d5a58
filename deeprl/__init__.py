"""deeprl: deep reinforcement learning, correct, readable and fast.

>>> from deeprl import DQN
>>> agent = DQN("CartPole-v1").learn(50_000)
>>> agent.save("cartpole")
>>> agent = deeprl.load("cartpole.safetensors")
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deeprl.agents import A2C, ALGORITHMS, DQN, PPO, PQN, REINFORCE, ActorCriticAgent, Algorithm, Dreamer, WorldModel
from deeprl.callbacks import Callback, CheckpointCallback, EvalCallback, StopOnRewardThreshold
from deeprl.errors import CheckpointError, ConfigError, DeepRLError, EnvError
from deeprl.version import __version__


def load(path: str | Path, *, device: str = "auto", allow_import: Iterable[str] = (), env: Any = None) -> Algorithm:
    """Load any saved deeprl model (a ``.safetensors`` file or a finished run directory).

    Loading never imports a module the caller did not name: a model of a ``module:Env-v0`` env
    (or of wrappers from a module other than gymnasium's and deeprl's) needs ``module`` imported
    already or listed in ``allow_import``.  A model trained on an env function predicts as it is;
    to evaluate or train it, pass that function again as ``env``."""
    from deeprl.checkpoint import load_model_file

    _, meta = load_model_file(path)
    algo = meta.get("algo")
    if not isinstance(algo, str) or algo not in ALGORITHMS:
        raise CheckpointError(f"{str(path)!r} holds an unknown algorithm {algo!r}")
    return ALGORITHMS[algo].load(path, device=device, allow_import=allow_import, env=env)


__all__ = ["A2C", "ALGORITHMS", "ActorCriticAgent", "DQN", "Dreamer", "PPO", "PQN", "REINFORCE", "Algorithm", "CheckpointError", "ConfigError", "DeepRLError", "EnvError",
           "WorldModel", "load", "__version__", "Callback", "CheckpointCallback", "EvalCallback",
           "StopOnRewardThreshold"]
