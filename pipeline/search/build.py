"""From a study's config to a ready search: its space's supernet, moved to a start point,
with the study's weight and architecture settings."""

from __future__ import annotations

import torch

from pipeline.config import StudyConfig
from pipeline.search.architect import ArchSettings
from pipeline.search.darts import DartsSearch, WeightSettings
from pipeline.search.data import SearchData
from pipeline.search.start import StartPoint, apply_start
from pipeline.spaces import get_space


def weight_settings(config: StudyConfig, hyperparams: dict[str, float]) -> WeightSettings:
    """The study's weight step, with co-searched hyperparameters (``weight_lr``,
    ``weight_decay``) in place of the configured values."""
    s = config.search
    return WeightSettings(lr=hyperparams.get("weight_lr", s.weight_lr),
                          lr_min=s.weight_lr_min, momentum=s.momentum, nesterov=s.nesterov,
                          weight_decay=hyperparams.get("weight_decay", s.weight_decay),
                          grad_clip=s.grad_clip)


def arch_settings(config: StudyConfig, hyperparams: dict[str, float]) -> ArchSettings:
    """The study's architecture step, with co-searched ``arch_lr`` and
    ``arch_weight_decay`` in place of the configured values."""
    s = config.search
    return ArchSettings(lr=hyperparams.get("arch_lr", s.arch_lr),
                        betas=(s.arch_beta1, s.arch_beta2),
                        weight_decay=hyperparams.get("arch_weight_decay", s.arch_weight_decay),
                        order=s.order)


def build_search(config: StudyConfig, data: SearchData, start: StartPoint, *, seed: int,
                 init_seed: int, device: torch.device) -> DartsSearch:
    """A supernet initialised from ``init_seed``, moved to ``start``, ready to search."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = get_space(config.space.name).supernet(
            config.space, num_classes=data.num_classes, in_channels=data.in_channels)
    apply_start(net, start, direction_seed=config.seed)
    net = net.to(device)
    if config.search.channels_last:
        net = net.to(memory_format=torch.channels_last)
    s = config.search
    return DartsSearch(net, weight_batches=data.weight_batches, arch_batches=data.arch_batches,
                       seed=seed, epochs=s.epochs,
                       weight_settings=weight_settings(config, start.hyperparams),
                       arch_settings=arch_settings(config, start.hyperparams),
                       cell_every_epoch=s.accuracy_objective == "discrete",
                       bf16=s.precision == "bf16",
                       compile_backend="inductor" if s.compile else None)
