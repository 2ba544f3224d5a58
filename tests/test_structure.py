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
