"""Imports point one way: low-level modules never import Optuna, the CLI or each other's
callers; the report never imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pipeline"
LAYERS = ["config", "spaces", "ops", "networks", "supernet", "supernet_darts", "data", "darts",
          "population",
          "start", "checkpoint", "train", "evaluate", "figures", "report", "dashboard",
          "storage", "objective", "bench", "study", "parallel", "compare", "arguments", "cli"]
NO_OPTUNA = {"config", "spaces", "ops", "networks", "supernet", "supernet_darts", "data",
             "darts", "population", "start", "checkpoint", "train", "evaluate", "figures",
             "arguments"}
NO_TORCH = {"config", "spaces", "figures", "report", "dashboard", "arguments"}


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", LAYERS)
def test_imports_point_down(module: str) -> None:
    imported = _imports(module)
    internal = {name.split(".")[1] for name in imported if name.startswith("pipeline.")}
    later = set(LAYERS[LAYERS.index(module):])
    assert not internal & later - {"__init__"}, f"{module} imports {internal & later}"
    roots = {name.split(".")[0] for name in imported}
    if module in NO_OPTUNA:
        assert "optuna" not in roots
    if module in NO_TORCH:
        assert not roots & {"torch", "torchvision"}


def test_every_module_is_layered() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules == set(LAYERS)
