"""The package's shape: no import cycles between deeprl's modules, one version."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import deeprl

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deeprl"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the deeprl modules it imports, read from the source (imports inside functions
    count too: a lazy import that closes a cycle is still a cycle to a reader)."""
    files = {_module_name(f): f for f in PACKAGE.rglob("*.py")}

    def known(name: str) -> str | None:  # deeprl.nets.mlp -> deeprl.nets
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            deps |= {m for m in map(known, names) if m and m != module}
        graph[module] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_find_cycles_finds_one():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert {"deeprl.agents.pg", "deeprl.nets", "deeprl.run"} <= graph.keys()
    assert "deeprl.nets" in graph["deeprl.agents.pg"]   # the reader sees imports at all
    assert find_cycles(graph) == [], " ; ".join(" -> ".join(c) for c in find_cycles(graph))


def test_the_version_is_the_one_pyproject_declares():
    declared = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared and deeprl.__version__ == declared.group(1)


def test_a_toy_algorithm_is_a_subclass_a_config_and_a_loss_dict(tmp_path, monkeypatch):
    """Adding an algorithm (docs/architecture.md): a config, a class with its losses as a dict and
    their scales, one registry line; the loop, logging, checkpoints, resume, save and load come
    from the base."""
    from dataclasses import dataclass

    import numpy as np
    import torch

    from deeprl.agents import ALGORITHMS, Algorithm
    from deeprl.agents.persistence import Persistent
    from deeprl.config import RunConfig
    from deeprl.optim import grad_step, weighted_loss
    from tests.envs import IDENTITY
    from tests.resume import metrics_rows

    @dataclass(frozen=True, kw_only=True)
    class BanditConfig(RunConfig):
        lr: float = 0.05
        ent_coef: float = 0.01

    class BanditPG(Algorithm):
        """Policy gradient on the immediate reward: -r log π(a|s) - β H(π(·|s))."""

        algo = "toy_bandit"
        config_cls = BanditConfig

        @property
        def loss_scales(self):
            return {"actor": 1.0, "entropy": self.config.ent_coef}

        def _build(self):
            self.net = torch.nn.Linear(int(np.prod(self.observation_space.shape)), int(self.action_space.n))
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

        def _dist(self, obs):
            return torch.distributions.Categorical(logits=self.net(torch.as_tensor(obs).float()))

        def _act(self, obs, deterministic):
            with torch.no_grad():
                dist = self._dist(obs)
                return (dist.probs.argmax(-1) if deterministic else dist.sample()).numpy()

        def _iteration(self, target_steps):
            obs = self._obs
            actions = self._act(obs, deterministic=False)
            step = self._env_step(actions)
            dist = self._dist(obs)
            terms = {"actor": -(torch.as_tensor(step.reward) * dist.log_prob(torch.as_tensor(actions))).mean(),
                     "entropy": -dist.entropy().mean()}
            grad_step(self.optimizer, weighted_loss(terms, self.loss_scales))
            self._record({f"loss/{k}": v for k, v in terms.items()})

        def _persistent(self):
            return Persistent(model={"net": self.net}, optimizers={"optimizer": self.optimizer})

    monkeypatch.setitem(ALGORITHMS, "toy_bandit", BanditPG)  # the registry line
    run = tmp_path / "run"
    settings = dict(preset=None, num_envs=4, eval_freq=0, log_interval=400, checkpoint_freq=800, eval_episodes=4)
    agent = BanditPG(IDENTITY, total_steps=1600, **settings)
    agent.learn(run_dir=run, progress=False)
    agent.close()
    rows = [r for r in metrics_rows(run / "metrics.csv") if r["loss/actor"]]
    assert float(rows[-1]["loss/entropy"]) < 0 and int(rows[-1]["step"]) == 1600 and len(rows) == 4
    resumed = BanditPG.resume(run, total_steps=4000, allow_import=["tests.envs"])
    resumed.learn(progress=False)
    resumed.close()
    assert resumed.last_eval["mean_return"] >= 18  # 20 steps an episode, reward 1 for naming the target
    loaded = deeprl.load(run / "model.safetensors", allow_import=["tests.envs"])
    assert type(loaded) is BanditPG
    obs = np.eye(3, dtype=np.float32)
    assert (loaded.predict(obs) == np.arange(3)).all()
