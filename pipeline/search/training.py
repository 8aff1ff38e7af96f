"""Training a found cell's evaluation network from scratch, resumable epoch by epoch."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from pipeline.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pipeline.config import ConfigError, StudyConfig
from pipeline.search.data import DeviceBatches, ImageSet, channel_stats
from pipeline.search.steps import evaluation_sums
from pipeline.spaces import Genotype, TrainSettings, count_parameters, space_of

logger = logging.getLogger(__name__)


def train_settings(config: StudyConfig, genotype: Genotype) -> TrainSettings:
    """How a study retrains a cell: the protocol of the cell's space, with the
    ``[retrain]`` settings the study file gives and the study's augmentation."""
    settings = dataclasses.replace(space_of(genotype).protocol,
                                   crop_padding=config.data.crop_padding, flip=config.data.flip)
    return dataclasses.replace(settings, **config.retrain.overrides())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A trained cell's test accuracy (%), its network's parameters (M), the epochs it
    trained, the epoch its training resumed after (0: from scratch) and its classes."""

    test_acc: float
    params_m: float
    epochs: int
    resumed_after: int = 0
    classes: int = 10

    @property
    def at_chance(self) -> bool:
        """Within a point of guessing: the network learned next to nothing."""
        return self.test_acc < 100 / self.classes + 1

def train_epoch(net: nn.Module, batches: DeviceBatches, optimizer: torch.optim.Optimizer, *,
                seed: int, epoch: int, grad_clip: float, auxiliary_weight: float = 0.0
                ) -> tuple[float, float]:
    """One epoch of SGD; returns mean loss and accuracy (%), read once at the end."""
    net.train()
    totals = torch.zeros(2, device=batches.labels.device)  # loss sum, correct
    for x, y in batches.epoch(seed, epoch):
        optimizer.zero_grad(set_to_none=True)
        logits, aux = _outputs(net(x))
        loss = F.cross_entropy(logits, y)
        if aux is not None and auxiliary_weight:
            loss = loss + auxiliary_weight * F.cross_entropy(aux, y)
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        totals += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum().float()])
    loss_sum, correct = totals.tolist()
    count = len(batches.labels)  # every image once per epoch
    return loss_sum / count, 100 * correct / count


def evaluate_network(net: nn.Module, batches: DeviceBatches) -> float:
    """Accuracy (%) on unaugmented batches."""
    _, correct, count = evaluation_sums(net, lambda x: _outputs(net(x))[0], batches).tolist()
    return 100 * float(correct) / float(count)


def _outputs(out: Tensor | tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
    return out if isinstance(out, tuple) else (out, None)


def retrain(genotype: Genotype, train: ImageSet, test: ImageSet, *,
            settings: TrainSettings, device: torch.device, checkpoint: Path, seed: int = 0,
            progress: bool = False) -> TrainResult:
    """Train the cell's evaluation network on ``train`` and measure it on ``test``.

    Every epoch is checkpointed to ``checkpoint``; a rerun continues from there.
    """
    if settings.auxiliary_weight and min(train.shape[1:]) < 32:
        raise ConfigError(f"DARTS' auxiliary head needs images of at least 32x32, got "
                          f"{train.shape[1]}x{train.shape[2]}")
    mean, std = channel_stats(train)
    batches = DeviceBatches(train, batch_size=settings.batch_size, device=device, mean=mean,
                            std=std, crop_padding=settings.crop_padding, flip=settings.flip,
                            cutout=settings.cutout)
    run = CellTraining(genotype, settings, seed=seed, device=device,
                    num_classes=len(train.classes), in_channels=train.shape[0])
    meta = {"genotype": genotype.to_str(), "settings": asdict(settings), "seed": seed}
    start = resume_training(checkpoint, meta, run)
    run.fit(batches, start=start, progress=progress,
            after_epoch=lambda state: save_checkpoint(checkpoint, state, meta=meta))
    test_batches = DeviceBatches(test, batch_size=256, device=device, mean=mean, std=std)
    return TrainResult(test_acc=evaluate_network(run.net, test_batches),
                       params_m=count_parameters(run.net) / 1e6, epochs=settings.epochs,
                       resumed_after=start, classes=len(train.classes))


def short_training_accuracy(genotype: Genotype, train: DeviceBatches,
                            valid: DeviceBatches, *, settings: TrainSettings, seed: int,
                            num_classes: int, in_channels: int) -> float:
    """Accuracy (%) on ``valid`` of the cell's network after ``settings.epochs`` epochs of
    training from scratch on ``train``: a cheap estimate of how well the cell trains.
    A cell cut off from its input (no path without ``none``) answers one class for every
    image, trained or not, so its network is evaluated untrained."""
    run = CellTraining(genotype, settings, seed=seed, device=train.labels.device,
                    num_classes=num_classes, in_channels=in_channels)
    if genotype.connected:
        run.fit(train)
    return evaluate_network(run.net, valid)


class CellTraining:
    """A cell's evaluation network, its SGD (Nesterov) and cosine schedule over
    ``settings.epochs``, from ``seed``; ``losses`` holds each epoch's mean training loss."""

    def __init__(self, genotype: Genotype, settings: TrainSettings, *, seed: int,
                 device: torch.device, num_classes: int, in_channels: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = space_of(genotype).network(genotype, settings, num_classes=num_classes,
                                                  in_channels=in_channels).to(device)
        self.settings = settings
        self.seed = seed
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=settings.lr,
                                         momentum=settings.momentum, nesterov=True,
                                         weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer,
                                                                    settings.epochs)
        self.losses: list[float] = []

    def fit(self, batches: DeviceBatches, *, start: int = 0, stop: int | None = None,
            progress: bool = False,
            after_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Train from epoch ``start`` to ``stop`` (default: the last); ``after_epoch``
        gets the state to save."""
        settings, stop = self.settings, self.settings.epochs if stop is None else stop
        for epoch in tqdm(range(start, stop), initial=start, total=stop,
                          desc="training", unit="epoch", disable=not progress):
            if hasattr(self.net, "drop_path_prob"):  # DARTS' networks ramp drop path up
                self.net.drop_path_prob = settings.drop_path * epoch / settings.epochs
            loss, _ = train_epoch(self.net, batches, self.optimizer, seed=self.seed,
                                  epoch=epoch, grad_clip=settings.grad_clip,
                                  auxiliary_weight=settings.auxiliary_weight)
            self.losses.append(loss)
            self.scheduler.step()
            if after_epoch is not None:
                after_epoch(self.state_dict(epoch + 1))

    STATE_KEYS = ("model", "optimizer", "scheduler", "epoch")

    def state_dict(self, epoch: int) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": epoch,
                "losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.losses = list(state.get("losses", []))  # older checkpoints kept none


def resume_training(path: Path, meta: dict[str, Any], run: CellTraining) -> int:
    """Load ``run``'s state from its checkpoint at ``path`` if it holds the training that
    ``meta`` describes; returns the epoch it resumes after (0: from scratch)."""
    try:
        state = load_checkpoint(path, meta=meta, keys=CellTraining.STATE_KEYS,
                                epochs=run.settings.epochs)
    except FileNotFoundError:
        return 0
    except CheckpointError as error:
        logger.warning("training from scratch: %s", error)
        return 0
    run.load_state_dict(state)
    logger.info("training resumes after epoch %d", state["epoch"])
    return int(state["epoch"])
