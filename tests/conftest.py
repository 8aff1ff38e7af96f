"""Shared fixtures: a tiny study on a slice of the bundled digits, CPU only."""

from __future__ import annotations

import os
from pathlib import Path

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
