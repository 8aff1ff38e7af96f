"""From a study's config to a ready search: its space's supernet, moved to a start point,
with the study's weight and architecture settings."""

from __future__ import annotations

import torch

from pipeline.config import StudyConfig
from pipeline.search.architect import ArchSettings
from pipeline.search.darts import DartsSearch, WeightSettings
from pipeline.search.data import SearchData
from pipeline.search.selection import PerturbationSelection, tune_epochs
from pipeline.search.start import StartPoint, apply_start
from pipeline.spaces import get_space
from pipeline.variants import Darts, build_variant


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
    ``arch_weight_decay`` in place of the configured values; the variant may set the
    alphas' weight decay itself (DrNAS' L2 regulariser)."""
    s = config.search
    decay = variant(config).arch_weight_decay(
        hyperparams.get("arch_weight_decay", s.arch_weight_decay))
    return ArchSettings(lr=hyperparams.get("arch_lr", s.arch_lr),
                        betas=(s.arch_beta1, s.arch_beta2), weight_decay=decay, order=s.order)


def variant(config: StudyConfig) -> Darts:
    """The study's DARTS variant with its settings."""
    return build_variant(config.search.variant, config.search.variant_settings)


def selection(config: StudyConfig, seed: int) -> PerturbationSelection | None:
    """The study's perturbation selection for a search of ``seed`` (its order of edges
    drawn from it); None where the cell is the alphas' argmax."""
    if config.search.selection != "perturbation":
        return None
    return PerturbationSelection(get_space(config.space.name), seed=seed)


def search_epochs(config: StudyConfig) -> int:
    """The epochs one search of the study runs: its own and a selection's fine-tuning."""
    extra = 0
    if config.search.selection == "perturbation":
        extra = tune_epochs(get_space(config.space.name), config.search.selection_tune_epochs)
    return config.search.epochs + extra


def describe(config: StudyConfig) -> str:
    """The inner search in words: its variant with its schedule, its selection, its start
    space."""
    search = config.search
    parts = [variant(config).describe()]
    if search.selection == "perturbation":
        parts.append(f"perturbation selection ({search.selection_tune_epochs} epochs of "
                     "fine-tuning between decisions)")
    if search.arch_lr == 0:
        parts.append("alphas fixed at their start")
    parts.append(f"start space {config.start.alpha_space}")
    return ", ".join(parts)


def build_search(config: StudyConfig, data: SearchData, start: StartPoint, *, seed: int,
                 init_seed: int, device: torch.device) -> DartsSearch:
    """A supernet initialised from ``init_seed``, moved to ``start``, ready to search."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = get_space(config.space.name).supernet(
            config.space, num_classes=data.num_classes, in_channels=data.in_channels,
            aux_skip=variant(config).has_aux_skip)
    apply_start(net, start, direction_seed=config.seed)
    net = net.to(device)
    if config.search.channels_last:
        net = net.to(memory_format=torch.channels_last)
    s = config.search
    return DartsSearch(net, weight_batches=data.weight_batches, arch_batches=data.arch_batches,
                       seed=seed, epochs=s.epochs,
                       weight_settings=weight_settings(config, start.hyperparams),
                       arch_settings=arch_settings(config, start.hyperparams),
                       variant=variant(config), selection=selection(config, seed),
                       tune_epochs=s.selection_tune_epochs,
                       cell_every_epoch=s.accuracy_objective == "discrete",
                       bf16=s.precision == "bf16",
                       compile_backend="inductor" if s.compile else None)
