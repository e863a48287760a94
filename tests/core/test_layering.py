"""The shape of the code: apps import only the apps below them, no import cycles,
no oversized modules, one list of executor kinds (docs/development.md, "Layout")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lowest first: each app may import only the ones before it.
LAYERS = [
    "core",
    "clusters",
    "catalog",
    "runs",
    "scheduling",
    "alerts",
    "resident",
    "diagnosis",
    "actions",
    "gating",
    "dashboard",
    "postrun",
]
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "apps").rglob("*.py"):
        if "migrations" in path.parts or path.parent == ROOT / "apps":
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, bool]]:
    """(imported module, whether at module level) for every import of apps code."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            # `from package import module` imports the module too.
            targets = [base] + [
                f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known
            ]
        else:
            continue
        for target in targets:
            if target.startswith("apps."):
                yield target, id(node) in top


def app_of(module: str) -> str:
    return module.split(".")[1]


def test_apps_import_only_the_apps_below_them() -> None:
    known = modules()
    assert {app_of(m) for m in known} <= set(LAYERS), "a new app needs a layer"
    upward = [
        f"{name} imports {target}"
        for name, path in known.items()
        for target, _ in imports(name, path, known)
        if app_of(name) in LAYERS
        and app_of(target) in LAYERS
        and LAYERS.index(app_of(target)) > LAYERS.index(app_of(name))
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, at_top in imports(name, path, known):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if at_top and target in known and target != name:
                graph[name].add(target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_module_is_oversized() -> None:
    big = {
        str(path.relative_to(ROOT)): count
        for path in modules().values()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


@pytest.mark.django_db
def test_every_executor_kind_has_its_class_and_no_other() -> None:
    from apps.clusters.models import Executor as ExecutorKind
    from apps.runs.executors import get_executor
    from apps.runs.executors.base import registry

    for kind in ExecutorKind.values:
        assert get_executor(kind).name == kind
    assert set(registry) == set(ExecutorKind.values)
