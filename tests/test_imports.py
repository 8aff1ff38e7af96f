"""Imports point one way, package by package: spaces, variants -> config -> search ->
outer -> results -> cli, with checkpoint beneath them all. The inner search never sees
Optuna, results never run a search, and the report's modules never load torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pipeline"
# Each part of the package and what it may import from the package (itself included).
MAY_IMPORT = {
    "checkpoint": set(),
    "spaces": {"spaces"},
    "variants": {"variants"},
    "config": {"spaces", "variants"},
    "search": {"config", "checkpoint", "spaces", "variants", "search"},
    "outer": {"config", "checkpoint", "spaces", "variants", "search", "outer"},
    "bench": {"config", "spaces", "variants", "search", "outer"},
    "results": {"config", "checkpoint", "spaces", "variants", "search", "outer", "results"},
    "cli": {"config", "checkpoint", "spaces", "variants", "search", "outer", "results",
            "bench", "cli"},
}
NO_OPTUNA = {"config", "checkpoint", "spaces", "variants", "search"}
# Names that run a search: results read finished studies and never call them.
RUNS_A_SEARCH = {"run_study", "run_methods", "run_trials", "run_side_by_side", "DartsSearch",
                 "Population", "build_search", "TrialSteps"}
NO_TORCH = {"config.py", "results/report.py", "results/figures.py", "results/tables.py",
            "results/dashboard.py", "spaces/nb201/genotype.py", "spaces/darts/genotype.py"}
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def _part(module: str) -> str:
    """The part of the package a module (a path under ``pipeline/``) belongs to."""
    return module.split("/")[0].removesuffix(".py")


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names imported from it) for every import in a module."""
    tree = ast.parse((PACKAGE / module).read_text())
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("module", [m for m in MODULES if _part(m) not in ("__init__",
                                                                         "__main__")])
def test_imports_point_down(module: str) -> None:
    part = _part(module)
    imported = _imports(module)
    internal = {name.split(".")[1] for name, _ in imported
                if name.startswith("pipeline.") and name != "pipeline.__init__"}
    assert internal <= MAY_IMPORT[part], f"{module} imports {internal - MAY_IMPORT[part]}"
    roots = {name.split(".")[0] for name, _ in imported}
    if part in NO_OPTUNA:
        assert not roots & {"optuna", "optuna_dashboard"}, f"{module} imports Optuna"
    if part == "results":
        names = {n for name, names in imported if name.startswith("pipeline.") for n in names}
        assert not names & RUNS_A_SEARCH, f"{module} runs a search: {names & RUNS_A_SEARCH}"
    if module in NO_TORCH:
        assert not roots & {"torch", "torchvision"}, f"{module} imports torch"


def test_every_module_belongs_to_a_part() -> None:
    parts = {_part(m) for m in MODULES} - {"__init__", "__main__"}
    assert parts == set(MAY_IMPORT)
