"""One module per algorithm family; each wires nets, buffers and returns into a training loop."""

from deeprl.agents.base import Algorithm
from deeprl.agents.dqn import DQN

ALGORITHMS: dict[str, type[Algorithm]] = {"dqn": DQN}

__all__ = ["ALGORITHMS", "Algorithm", "DQN"]
