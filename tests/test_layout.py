"""The layout tells the layers, and no module of backend/ imports another that (directly or not) imports it back.

The graph counts every ``import`` in a module, those inside functions too: a lazy import hides a circle from the
interpreter, not from a reader who has to know which layer depends on which.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

BACKEND = REPO / "backend"
#: which layer may import which (a layer also imports itself); everything may import the model contract.
CONTRACT = {"backend", "backend.base", "backend.options", "backend.registry", "backend.text", "backend.devices",
            "backend.jobs", "backend.results", "backend.families"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Backend modules ``path`` imports (``from backend.x import y`` counts ``backend.x.y`` when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("backend")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backend") and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return {m for m in out if m in known}


def graph() -> dict[str, set[str]]:
    files = sorted(BACKEND.rglob("*.py"))
    known = {module_name(f) for f in files}
    g = {module_name(f): imports_of(f, known) for f in files}
    # A package's __init__ is imported with each of its modules: an edge from a module to its own package's
    # __init__ is how Python loads it, not a dependency.
    return {m: {d for d in deps if d != m and not m.startswith(d + ".")} for m, deps in g.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle_in_backend():
    g = graph()
    assert len(g) > 40  # the walk found the package
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_folders_name_the_layers_and_the_lower_layers_do_not_import_the_upper():
    g = graph()
    for layer in ("serving", "files", "lab", "server", "families"):
        assert (BACKEND / layer / "__init__.py").exists()
    # the model contract and families never reach up into serving, files, the lab or the server
    for m, deps in g.items():
        if m in CONTRACT or m.startswith("backend.families"):
            up = {d for d in deps if d.startswith(("backend.serving", "backend.files", "backend.lab", "backend.server"))}
            assert not up, f"{m} imports {sorted(up)}"
    # files and the lab never import the server
    for m, deps in g.items():
        if m.startswith(("backend.files", "backend.lab")):
            assert not {d for d in deps if d.startswith("backend.server")}, m
    assert not (BACKEND / "service.py").exists()
