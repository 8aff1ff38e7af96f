"""Plain DARTS, random starts and the global sampler on one study file, at one compute
budget: a study per method and seed, run in turn or side by side."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.config import ConfigError, StudyConfig, with_overrides
from pipeline.outer.parallel import run_side_by_side
from pipeline.outer.sampling import check_outer
from pipeline.outer.study import run_study
from pipeline.outer.trial_steps import Publisher
from pipeline.search.build import search_epochs


@dataclass(frozen=True, slots=True)
class MethodStudy:
    """One method's study for one study seed."""

    method: str
    seed: int
    config: StudyConfig


def methods(config: StudyConfig) -> tuple[str, ...]:
    """Plain DARTS, random starts, and the global sampler: CMA-ES, or for a two-objective
    study (which CMA-ES cannot run) the study file's own sampler."""
    chosen = config.outer.sampler if config.search.multi_objective else "cmaes"
    return tuple(dict.fromkeys(("darts", "random", chosen)))


def method_config(config: StudyConfig, method: str, seed: int | None = None) -> StudyConfig:
    """The study for one method and study seed (the file's by default): its own name
    (``NAME-sSEED-METHOD``) and sampler, and the shared epoch budget (``outer.epoch_budget``,
    or by default what ``outer.n_trials`` unpruned trials cost)."""
    seed = config.seed if seed is None else seed
    epochs = config.outer.epoch_budget or config.outer.n_trials * search_epochs(config)
    outer = dataclasses.replace(config.outer, sampler=method, epoch_budget=epochs,
                                n_trials=epochs)  # the epochs bind first
    return dataclasses.replace(config, name=f"{config.name}-s{seed}-{method}", seed=seed,
                               outer=outer)


def variant_config(config: StudyConfig, variant: str) -> StudyConfig:
    """The study file's config with another inner search: ``search.variant = variant``,
    named ``NAME-VARIANT`` (plain DARTS keeps ``NAME``, so that earlier comparisons'
    studies are found).

    Raises:
        ConfigError: no such variant, or one the study's other settings refuse.
    """
    name = config.name if variant == "darts" else f"{config.name}-{variant}"
    return with_overrides(dataclasses.replace(config, name=name), [f"search.variant={variant}"])


def method_studies(config: StudyConfig, *, seeds: int = 1,
                   only: Sequence[str] | None = None) -> list[MethodStudy]:
    """The studies of a comparison: each method (or those in ``only``) for each of
    ``seeds`` study seeds from the file's seed up, seed by seed.

    Raises:
        ConfigError: ``seeds`` is below 1, or ``only`` names a method this comparison
            does not run.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: it must be >= 1")
    chosen = methods(config)
    unknown = sorted(set(only or ()) - set(chosen))
    if unknown:
        raise ConfigError(f"--methods {unknown[0]!r}: this comparison runs "
                          f"{', '.join(chosen)}")
    return [MethodStudy(method, seed, method_config(config, method, seed))
            for seed in range(config.seed, config.seed + seeds)
            for method in chosen if only is None or method in only]


@dataclass(frozen=True, slots=True)
class Comparison:
    """The studies of a comparison: the study file's config once per inner search
    compared (``configs``; one, the file's own, without ``--variants``), and each one's
    method studies (``studies``, by config name)."""

    name: str
    configs: tuple[StudyConfig, ...]
    studies: dict[str, list[MethodStudy]]

    @property
    def all_studies(self) -> list[MethodStudy]:
        return [study for config in self.configs for study in self.studies[config.name]]

    def out_dir(self, out: str | Path) -> Path:
        """Where its tables go under ``out``: one inner search's in ``OUT/ITS_NAME``,
        several combined in ``OUT/NAME`` (see ``variant_dirs``)."""
        return Path(out) / (self.configs[0].name if len(self.configs) == 1 else self.name)

    def variant_dirs(self, out_dir: Path) -> list[Path]:
        """Each inner search's own tables beside the combined ones in ``out_dir``:
        ``NAME-VARIANT`` (plain DARTS' too); with one inner search, ``out_dir`` itself."""
        if len(self.configs) == 1:
            return [out_dir]
        return [out_dir.parent / f"{self.name}-{c.search.variant}" for c in self.configs]


def plan_comparison(config: StudyConfig, *, seeds: int = 1,
                    methods: Sequence[str] | None = None,
                    variants: Sequence[str] | None = None) -> Comparison:
    """A comparison of the study file ``config``: each of ``methods`` (by default all) for
    ``seeds`` study seeds, for each inner search of ``variants`` (by default the file's).

    Raises:
        ConfigError: a method or variant named twice or unknown, ``seeds`` below 1, or a
            variant the study's other settings refuse.
    """
    for option, names in (("--methods", list(methods or [])),
                          ("--variants", list(variants or []))):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(f"{option} names {', '.join(twice)} more than once")
    configs = ([variant_config(config, name) for name in variants] if variants else [config])
    return Comparison(name=config.name, configs=tuple(configs),
                      studies={c.name: method_studies(c, seeds=seeds, only=methods)
                               for c in configs})


def run_methods(studies: Sequence[MethodStudy], *, root: str | Path, device: torch.device,
                storage: str | None = None, jobs: int = 1, population: int = 1,
                progress: bool = False, publisher: Publisher | None = None) -> None:
    """Run (or resume) every study, one after another, or ``jobs`` side by side, each in
    its own process (see ``run_side_by_side``); all in ``storage`` (by default, a database
    per study).

    Raises:
        ConfigError: ``jobs`` is below 1.
        StudyError: side by side, some studies failed (the others ran to the end).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: it must be >= 1")
    for study in studies:
        check_outer(study.config)
    if jobs > 1:
        run_side_by_side([study.config for study in side_by_side_order(studies)], jobs=jobs,
                         root=root, storage=storage, device=device, population=population,
                         progress=progress, publisher=publisher)
        return
    for study in studies:
        run_study(study.config, root=root, storage=storage, device=device, progress=progress,
                  population=population, publisher=publisher)


def side_by_side_order(studies: Sequence[MethodStudy]) -> list[MethodStudy]:
    """``studies`` method by method (each method's in their given order) rather than seed by
    seed: a seed's methods share their first search, and the second of two started side by
    side would only wait while the first runs it."""
    rank = {method: i for i, method in enumerate(dict.fromkeys(s.method for s in studies))}
    return sorted(studies, key=lambda study: rank[study.method])
