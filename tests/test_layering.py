"""The layer order of docs/architecture.md, enforced over ``worldmodels``, ``planners`` and ``envs``.

    core < models < envs < data < planners < viz < evaluation < training < methods < cli

A module may import its own layer and the layers below it, never one above; the project's import
graph (top-level *and* deferred imports) has no circle; and an import placed inside a function is
allowed only where the reason is written down here (heavy libraries after argument parsing,
optional simulator suites).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worldmodels", "planners", "envs")
LAYERS = ("core", "models", "envs", "data", "planners", "viz", "evaluation", "training", "methods", "cli")

DEFERRED_ALLOWED = {
    # The root package re-exports the contract on first use (PEP 562), so that importing it (and
    # `worldmodels --help`) does not import torch.
    "worldmodels": {"worldmodels.core.keys", "worldmodels.core.interface", "worldmodels.core.config"},
    # The CLI parses arguments before importing torch and the library, so `--help` and argument
    # errors answer at once.
    "worldmodels.cli.main": "*",
    # Simulator suites load MuJoCo / dm_control only when a suite is asked for.
    "envs": {"envs.dmc", "envs.goals", "envs.two_rooms"},
    "envs.goals": {"envs.dmc"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("envs", "planners"):
        return parts[0]
    if len(parts) == 1:
        return "core"  # the root package re-exports the contract only
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported project module, line, deferred)`` for every import statement in ``path``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node, deferred: bool):
        for child in ast.iter_child_nodes(node):
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only, never executed
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = resolve(alias.name)
                    if target:
                        found.append((target, child.lineno, deferred))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    target = resolve(f"{base}.{alias.name}") if base else None
                    if target:
                        found.append((target, child.lineno, deferred))
            visit(child, inner)

    visit(tree, False)
    return [(t, line, d) for t, line, d in found if t != module]


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    modules = project_modules()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in project_modules():
        assert layer_of(name) in LAYERS, f"{name} is in no layer of {LAYERS}; add its folder to docs/architecture.md"


def test_no_upward_import():
    upward = []
    for name, imports in graph().items():
        rank = LAYERS.index(layer_of(name))
        for target, line, _ in imports:
            if LAYERS.index(layer_of(target)) > rank:
                upward.append(f"{name}:{line} imports {target} ({layer_of(name)} < {layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_circle():
    edges = {name: sorted({t for t, _, _ in imports}) for name, imports in graph().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            dfs(node)


def test_deferred_imports_only_where_documented():
    undocumented = []
    for name, imports in graph().items():
        allowed = DEFERRED_ALLOWED.get(name, set())
        for target, line, deferred in imports:
            if deferred and allowed != "*" and target not in allowed:
                undocumented.append(f"{name}:{line} imports {target} inside a function")
    assert not undocumented, "deferred project imports without a documented reason:\n" + "\n".join(undocumented)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: an upward import written into a module is found."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from worldmodels.training import online\n")
    found = imports_of(path, "worldmodels.models.bad", set(project_modules()))
    assert found == [("worldmodels.training.online", 2, True)]
    assert LAYERS.index(layer_of(found[0][0])) > LAYERS.index(layer_of("worldmodels.models.bad"))
