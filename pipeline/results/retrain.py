"""A found cell trained from scratch on a study's dataset and tested: the number a paper
reports, at the study's ``[retrain]`` settings (its space's protocol by default)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import atomic_write
from pipeline.config import ConfigError, StudyConfig
from pipeline.search.data import load_dataset
from pipeline.search.training import TrainResult, retrain, train_settings
from pipeline.spaces import Genotype


def retrain_cell(config: StudyConfig, genotype: Genotype, *, device: torch.device,
                 checkpoint: Path, epochs: int | None = None, progress: bool = False,
                 key: Mapping[str, Any] | None = None) -> TrainResult:
    """Train the cell's evaluation network on the study's training images and test it on
    its test images, from the study's seed; ``epochs`` replaces the settings' epochs.
    Every epoch is checkpointed to ``checkpoint``, and a rerun continues from there; the
    result is also written beside it (``result_path``), and ``key`` (what the folder
    holds: ``evaluation_key``) once the data are there.

    Raises:
        DatasetError: the study's dataset is not there.
    """
    settings = train_settings(config, genotype)
    if epochs:
        settings = dataclasses.replace(settings, epochs=epochs)
    train, test = load_dataset(config.data.dataset, config.data.root,
                               download=config.data.download)
    if key is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(checkpoint.with_name("evaluation.json"), lambda handle: handle.write(
            (json.dumps(key, indent=2, sort_keys=True) + "\n").encode()))
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
    """Where ``evaluate`` keeps a cell's training: a folder under ``out`` named by all that
    sets its result (the cell, its training settings, the dataset and, for an image
    folder, where it is, and the seed), so that the same evaluation resumes and another
    never overwrites it. The folder records that key (``evaluation.json``). A folder of an
    earlier version, named without the seed, is taken over when it trained the same seed.

    Raises:
        ConfigError: the folder holds another evaluation.
    """
    key = evaluation_key(config, genotype)
    folder = out / hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    legacy = out / hashlib.sha1(
        f"{genotype.to_str()}{train_settings(config, genotype)}{config.data.dataset}".encode()
    ).hexdigest()[:12]
    if not folder.exists() and _recorded_seed(legacy) == config.seed:
        folder = legacy
    record = folder / "evaluation.json"
    if record.exists() and json.loads(record.read_text(encoding="utf-8")) != key:
        raise ConfigError(f"{folder} holds another evaluation ({record}); it is kept: "
                          "move it away, or give another --out")
    return folder / "ckpt.pt"


def evaluation_key(config: StudyConfig, genotype: Genotype) -> dict[str, Any]:
    """Everything that sets an evaluation's result, as plain data."""
    data = config.data
    return {"cell": genotype.to_str(), "dataset": data.dataset,
            "data_root": str(Path(data.root).resolve()) if data.dataset == "imagefolder"
            else None, "seed": config.seed,  # the settings as JSON reads them back
            "settings": json.loads(json.dumps(dataclasses.asdict(train_settings(config,
                                                                                genotype))))}


def _recorded_seed(folder: Path) -> int | None:
    """The seed an evaluation folder of an earlier version trained with (its result, else
    its checkpoint), or None."""
    try:
        return int(json.loads(result_path(folder / "ckpt.pt").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return int(torch.load(folder / "ckpt.pt", map_location="cpu",
                              weights_only=True)["meta"]["seed"])
    except Exception:  # noqa: BLE001 - missing or damaged: not a folder to take over
        return None
