"""One module per algorithm family; each wires nets, buffers and returns into a training loop."""

from deeprl.agents.base import Algorithm
from deeprl.agents.dqn import DQN
from deeprl.agents.dreamer import Dreamer
from deeprl.agents.pg import A2C, REINFORCE, ActorCriticAgent, PolicyGradient
from deeprl.agents.ppo import PPO
from deeprl.agents.pqn import PQN
from deeprl.agents.worldmodel import WorldModel
from deeprl.errors import ConfigError, did_you_mean

ALGORITHMS: dict[str, type[Algorithm]] = {"dqn": DQN, "reinforce": REINFORCE, "actor_critic": ActorCriticAgent,
                                          "a2c": A2C, "ppo": PPO, "worldmodel": WorldModel,
                                          "dreamer": Dreamer, "pqn": PQN}


def algorithm(name: str) -> type[Algorithm]:
    """The class registered as ``name``; an unknown name is a ConfigError that lists the choices."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}." + did_you_mean(name, ALGORITHMS)
                          + f" Available: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]

__all__ = ["A2C", "ALGORITHMS", "Algorithm", "ActorCriticAgent", "DQN", "Dreamer", "PPO", "PQN", "PolicyGradient", "REINFORCE",
           "WorldModel", "algorithm"]
