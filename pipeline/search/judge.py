"""Judging a cell by training it: its network at a small size, trained from scratch on
training images that no search saw and measured on as many more, each rung of a selection
continuing the same training (one cosine schedule over the last rung's epochs); and its
zero-cost scores, which need no training."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from pipeline.checkpoint import save_checkpoint
from pipeline.config import SelectConfig, StudyConfig
from pipeline.search.data import (
    DatasetError,
    DeviceBatches,
    ImageSet,
    SearchData,
    channel_stats,
    load_dataset,
    outside_search,
    stratified_halves,
)
from pipeline.search.proxies import PROXIES
from pipeline.search.training import (
    CellTraining,
    evaluate_network,
    resume_training,
    short_training_accuracy,
)
from pipeline.spaces import Genotype, TrainSettings, get_space, space_of

PROXY_IMAGES = 64  # the batch a zero-cost score looks at


@dataclass(frozen=True, slots=True)
class JudgeData:
    """The images a selection trains its candidates on and measures them on, on the
    device: both outside the search's subset and its held-out images."""

    train: DeviceBatches
    valid: DeviceBatches
    num_classes: int
    in_channels: int
    fingerprint: str  # of the images and labels: a training on them is known by it


class CheckpointMirror(Protocol):
    """A second home of the judge's checkpoints (a shared artifact store): a training
    begun on one machine is taken up on another, and one made for a trial objective is
    reused by a selection elsewhere."""

    def fetch(self, path: Path, *, meta: Mapping[str, Any], keys: tuple[str, ...],
              epochs: int, after: int) -> bool:
        """Bring its copy of the checkpoint to ``path`` if that copy is further on than
        epoch ``after``; whether it did."""
        ...

    def upload(self, path: Path) -> None:
        """Keep a copy of the checkpoint at ``path``."""
        ...


@dataclass(frozen=True, slots=True)
class RungResult:
    """A candidate after ``epochs`` epochs: its validation accuracy (%) and the sum of its
    epochs' mean training losses, each averaged over the repeats."""

    epochs: int
    val_acc: float
    train_loss_sum: float


def judge_data(config: StudyConfig, device: torch.device) -> JudgeData:
    """The selection's images: ``select.train_images`` and ``select.valid_images``
    training images (class-balanced) that neither the search nor ``data.holdout`` holds.

    Raises:
        DatasetError: the search keeps every training image (``data.subset`` = 0), or too
            few are left outside it.
    """
    data, select = config.data, config.select
    if not data.subset:
        raise DatasetError("select needs data.subset > 0: with every training image in the "
                           "search, none is left that the search did not see")
    train, _ = load_dataset(data.dataset, data.root, download=data.download)
    unseen = outside_search(train, subset=data.subset, holdout=data.holdout, seed=config.seed)
    wanted = select.train_images + select.valid_images
    if wanted > len(unseen):
        raise DatasetError(f"select.train_images + select.valid_images = {wanted} exceed the "
                           f"{len(unseen)} training images outside the search")
    pool_index, _ = stratified_halves(unseen.labels, wanted / len(unseen), seed=config.seed + 3)
    pool = unseen.subset(pool_index)
    train_index, valid_index = stratified_halves(pool.labels, select.train_images / len(pool),
                                                 seed=config.seed + 4)
    return _on_device(pool.subset(train_index), pool.subset(valid_index), config, device)


def _on_device(train: ImageSet, valid: ImageSet, config: StudyConfig,
               device: torch.device) -> JudgeData:
    mean, std = channel_stats(train)
    batch = config.select.batch_size
    digest = hashlib.sha256()
    for tensor in (train.images, train.labels, valid.images, valid.labels):
        digest.update(tensor.contiguous().numpy().tobytes())
    return JudgeData(fingerprint=digest.hexdigest()[:16],
        train=DeviceBatches(train, batch_size=batch, device=device, mean=mean, std=std,
                            crop_padding=config.data.crop_padding, flip=config.data.flip),
        valid=DeviceBatches(valid, batch_size=256, device=device, mean=mean, std=std),
        num_classes=len(train.classes), in_channels=train.shape[0])


def judge_settings(select: SelectConfig, genotype: Genotype) -> TrainSettings:
    """How a selection trains a cell: its space's protocol at the selection's size, batch
    and learning rate, over the last rung's epochs, without its regularisers."""
    return dataclasses.replace(space_of(genotype).protocol, epochs=select.rungs[-1],
                               batch_size=select.batch_size, lr=select.lr,
                               channels=select.channels, cells=select.cells,
                               auxiliary_weight=0.0, drop_path=0.0, cutout=0)


def train_rung(genotype: Genotype, data: JudgeData, select: SelectConfig, *, epochs: int,
               seeds: list[int], folder: Path, mirror: CheckpointMirror | None = None
               ) -> RungResult:
    """Train the cell under each seed on to ``epochs`` and measure it. Each training is
    checkpointed every epoch in ``folder`` (and in ``mirror``), in a file named by what it
    is (the cell, its settings, seed and images), and resumed from there or from the
    mirror's copy, whichever is further on: a folder shared by selections and trial
    objectives trains a cell once however many of them judge it."""
    runs = [_trained(genotype, data, select, epochs=epochs, seed=seed, folder=folder,
                     mirror=mirror) for seed in seeds]
    accuracies = [evaluate_network(run.net, data.valid) for run in runs]
    # a cell cut off from its input learns nothing: no loss of it counts as low
    loss_sums = [sum(run.losses[:epochs]) if genotype.connected else math.inf for run in runs]
    return RungResult(epochs=epochs, val_acc=sum(accuracies) / len(accuracies),
                      train_loss_sum=sum(loss_sums) / len(loss_sums))


def _trained(genotype: Genotype, data: JudgeData, select: SelectConfig, *, epochs: int,
             seed: int, folder: Path, mirror: CheckpointMirror | None) -> CellTraining:
    """The cell's training under ``seed``, resumed from its checkpoint in ``folder`` and
    carried on to ``epochs`` (a cut-off cell is not trained: it answers one class whatever
    it learns)."""
    settings = judge_settings(select, genotype)
    run = CellTraining(genotype, settings, seed=seed, device=data.train.labels.device,
                       num_classes=data.num_classes, in_channels=data.in_channels)
    meta = {"genotype": genotype.to_str(), "settings": dataclasses.asdict(settings),
            "seed": seed, "images": data.fingerprint}
    name = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:20]
    checkpoint = folder / f"{name}.pt"
    start = resume_training(checkpoint, meta, run)
    if not genotype.connected or start >= epochs:
        return run
    if mirror is not None and mirror.fetch(checkpoint, meta=meta, keys=CellTraining.STATE_KEYS,
                                           epochs=settings.epochs, after=start):
        start = resume_training(checkpoint, meta, run)

    def save(state: dict[str, Any]) -> None:
        save_checkpoint(checkpoint, state, meta=meta)
        if mirror is not None:
            mirror.upload(checkpoint)

    if start < epochs:
        run.fit(data.train, start=start, stop=epochs, after_epoch=save)
    return run


def cell_key(cell: str) -> str:
    """A short name for a cell's files (its trainings' checkpoints, its measurements)."""
    return hashlib.sha1(cell.encode()).hexdigest()[:12]


def trained_accuracy(config: StudyConfig, data: SearchData, genotype: Genotype, *,
                     seed: int) -> float:
    """The ``trained`` trial objective: the cell's network, at the supernet's size,
    trained from scratch on the weights' half for ``search.train_epochs`` epochs; its
    accuracy on the held-out images (``data.holdout``), else on the other half."""
    space, search = config.space, config.search
    settings = TrainSettings(epochs=search.train_epochs, batch_size=search.batch_size,
                             channels=space.channels, cells=get_space(space.name).depth(space))
    return short_training_accuracy(
        genotype, data.weight_batches, data.holdout_batches or data.arch_batches,
        settings=settings, seed=seed, num_classes=data.num_classes,
        in_channels=data.in_channels)


def judge_seed(config: StudyConfig, repeat: int = 0) -> int:
    """The seed of a judge's training (repeat ``repeat``): the study's, so that a cell's
    first rung as a trial objective is the selection's first rung of it."""
    return config.seed * 1_000 + repeat


def judged_objective(config: StudyConfig, data: JudgeData, genotype: Genotype, *,
                     folder: Path, mirror: CheckpointMirror | None = None) -> float:
    """The cheap judge ``search.objective`` names, of one cell: its validation accuracy
    after the selection's first rung (``rung``), minus its training losses' sum over it
    (``train-loss``), or its zero-cost score ``select.zero_cost`` (``zero-cost``); the
    training is checkpointed in ``folder`` and ``mirror``."""
    objective, select = config.search.accuracy_objective, config.select
    if objective == "zero-cost":
        return zero_cost_score(select.zero_cost, genotype, data, select,
                               seed=judge_seed(config))
    result = train_rung(genotype, data, select, epochs=select.rungs[0],
                        seeds=[judge_seed(config)], folder=folder, mirror=mirror)
    return result.val_acc if objective == "rung" else -result.train_loss_sum


def zero_cost_score(name: str, genotype: Genotype, data: JudgeData, select: SelectConfig, *,
                    seed: int) -> float:
    """The zero-cost score ``name`` of the cell's untrained network (built from ``seed``
    at the selection's size) on the first images of the training set."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = space_of(genotype).network(genotype, judge_settings(select, genotype),
                                         num_classes=data.num_classes,
                                         in_channels=data.in_channels)
        net = net.to(data.train.labels.device).train()
        images, _ = next(data.train.in_order(PROXY_IMAGES))
        return PROXIES[name](net, images)
