"""A found cell trained from scratch on a study's dataset and tested: the number a paper
reports, at the study's ``[retrain]`` settings (its space's protocol by default)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from pipeline.config import StudyConfig
from pipeline.search.data import load_dataset
from pipeline.search.training import TrainResult, retrain, train_settings
from pipeline.spaces import Genotype


def retrain_cell(config: StudyConfig, genotype: Genotype, *, device: torch.device,
                 checkpoint: Path, epochs: int | None = None,
                 progress: bool = False) -> TrainResult:
    """Train the cell's evaluation network on the study's training images and test it on
    its test images, from the study's seed; ``epochs`` replaces the settings' epochs.
    Every epoch is checkpointed to ``checkpoint``, and a rerun continues from there; the
    result is also written beside it (``result_path``).

    Raises:
        DatasetError: the study's dataset is not there.
    """
    settings = train_settings(config, genotype)
    if epochs:
        settings = dataclasses.replace(settings, epochs=epochs)
    train, test = load_dataset(config.data.dataset, config.data.root,
                               download=config.data.download)
    result = retrain(genotype, train, test, settings=settings, device=device,
                     checkpoint=checkpoint, seed=config.seed, progress=progress)
    record = {"cell": genotype.to_str(), "dataset": config.data.dataset, "seed": config.seed,
              "settings": dataclasses.asdict(settings), **dataclasses.asdict(result)}
    result_path(checkpoint).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result


def result_path(checkpoint: Path) -> Path:
    """Where a training's result is written: ``result.json`` beside its checkpoint."""
    return checkpoint.with_name("result.json")


def evaluation_checkpoint(out: Path, config: StudyConfig, genotype: Genotype) -> Path:
    """Where ``evaluate`` keeps a cell's training: a folder under ``out`` named by the cell,
    its training settings and dataset, so that the same evaluation resumes."""
    settings = train_settings(config, genotype)
    text = f"{genotype.to_str()}{settings}{config.data.dataset}"
    return out / hashlib.sha1(text.encode()).hexdigest()[:12] / "ckpt.pt"
