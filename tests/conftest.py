"""Shared fixtures: a tiny study on a slice of the bundled digits, CPU only."""

from __future__ import annotations

import os
import platform

# Pin ATen's x86 kernels to AVX2 (before torch loads), so that float results, and the tests
# that compare a batched population with lone searches, agree on every x86 machine: with
# AVX-512 kernels, grouped and single convolutions round differently, and a few DARTS steps
# amplify that into other cells.
if platform.machine() in ("x86_64", "AMD64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.config import StudyConfig, from_dict

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "digits", "subset": 160, "crop_padding": 1, "flip": False},
    "space": {"channels": 4, "cells_per_stage": 1},
    "search": {"epochs": 3, "batch_size": 32, "arch_lr": 3e-3},
    "start": {"directions": 2},
    "outer": {"n_trials": 3, "popsize": 4, "pruner": "none"},
}


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Put back the levels that a command's logging setup gave the root and progress loggers
    (``main`` sets them for the whole process), so that a ``--quiet`` command in one test
    does not hide the warnings that a later test reads from ``caplog``."""
    root, progress = logging.getLogger(), logging.getLogger("pipeline.progress")
    levels = root.level, progress.level
    yield
    root.setLevel(levels[0])
    progress.setLevel(levels[1])


@pytest.fixture
def device() -> torch.device:
    return torch.device(os.environ.get("TORCH_DEVICE", "cpu"))


@pytest.fixture
def tiny_dict() -> dict:
    return {key: dict(value) if isinstance(value, dict) else value
            for key, value in TINY.items()}


@pytest.fixture
def tiny_config(tiny_dict: dict) -> StudyConfig:
    return from_dict(tiny_dict)


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    """The tiny study written as a TOML file in ``tmp_path/studies``."""
    lines = [f'seed = {TINY["seed"]}']
    for section, values in TINY.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path = tmp_path / "studies" / "tiny.toml"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _run_compare(config: StudyConfig, *, root: Path, out_dir: Path, device: torch.device,
                 seeds: int = 1, only: list[str] | None = None, table_path: str | None = None,
                 retrain_epochs: int = 0, population: int = 1, jobs: int = 1,
                 images: bool = False, storage: str | None = None) -> pd.DataFrame:
    """``globaldarts compare`` through the library, its tables in ``out_dir``."""
    from pipeline.outer import run_methods
    from pipeline.outer.methods import plan_comparison
    from pipeline.results.compare import tabulate_comparison
    from pipeline.results.ground_truth import check_scored, load_table
    from pipeline.spaces import get_space

    comparison = plan_comparison(config, seeds=seeds, methods=only)
    table = None
    if table_path:
        check_scored(get_space(config.space.name))
        table = load_table(table_path)
    run_methods(comparison.all_studies, root=root, device=device, storage=storage, jobs=jobs,
                population=population)
    return tabulate_comparison(comparison, root=root, out_dir=out_dir, storage=storage,
                               table=table, retrain_epochs=retrain_epochs, device=device,
                               images=images)


@pytest.fixture
def run_compare() -> Callable[..., pd.DataFrame]:
    return _run_compare
