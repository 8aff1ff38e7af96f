"""How a study proposes start points and stops hopeless searches: its sampler (CMA-ES by
default) and its pruner."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

from pipeline.config import ConfigError, OuterConfig, StudyConfig
from pipeline.search import StartSpace

logger = logging.getLogger(__name__)


# WS-CMA-ES starts from the best tenth of the source trials: it needs ten at least.
WARM_START_TRIALS = 10
# The study attribute that keeps the trials a study was warm-started from.
WARM_START_COPY = "warm_start_trials"


def encode_trials(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """Complete trials as plain data (their start vector and value), for a study attribute."""
    return [{"params": t.params, "value": t.values[0],
             "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()}}
            for t in trials]


def decode_trials(records: Sequence[dict[str, Any]]) -> list[FrozenTrial]:
    """The trials ``encode_trials`` wrote."""
    return [optuna.trial.create_trial(
        params=r["params"], value=r["value"],
        distributions={k: json_to_distribution(d) for k, d in r["distributions"].items()})
        for r in records]


def warm_start_trials(trials: Sequence[FrozenTrial], start_space: StartSpace
                      ) -> list[FrozenTrial]:
    """The trials of another study that can warm-start CMA-ES over ``start_space``: its
    complete trials over the same start vector, if there are enough of them."""
    names = {spec.name for spec in start_space.specs}
    usable = [t for t in trials if set(t.params) == names]
    if usable and len(usable) < WARM_START_TRIALS:
        logger.warning("no warm start: %d complete trials, WS-CMA-ES needs %d", len(usable),
                       WARM_START_TRIALS)
    return usable if len(usable) >= WARM_START_TRIALS else []


@dataclass(frozen=True)
class Sampler:
    """A registered outer sampler: how it is built for a study (its config, start space,
    seed and the trials that warm-start it), and what it can do."""

    build: Callable[[StudyConfig, StartSpace, int, Sequence[FrozenTrial]], BaseSampler]
    two_objectives: bool = True  # whether it can search a Pareto front
    warm_starts: bool = False  # whether ``outer.warm_start`` can start it from another study
    fixed_start: bool = False  # whether every trial starts where plain DARTS does


def _cmaes(config: StudyConfig, start_space: StartSpace, seed: int,
           source_trials: Sequence[FrozenTrial]) -> BaseSampler:
    """CMA-ES learns from pruned trials (at their last reported value) only when that
    value measures what a complete trial's does: with the ``supernet`` and ``discrete``
    objectives, not with those measured after the search (whose pruner sees the
    supernet's accuracy). ``source_trials`` (complete trials of
    another study over the same start vector) warm-start it (WS-CMA-ES)."""
    outer = config.outer
    source = warm_start_trials(source_trials, start_space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.CmaEsSampler(
            seed=seed, popsize=outer.popsize or None, use_separable_cma=outer.separable,
            source_trials=source or None,
            consider_pruned_trials=(outer.pruner != "none"
                                    and config.search.accuracy_objective
                                    in ("supernet", "discrete")))


SAMPLERS: dict[str, Sampler] = {
    "cmaes": Sampler(_cmaes, two_objectives=False, warm_starts=True),
    "darts": Sampler(lambda config, space, seed, _: optuna.samplers.PartialFixedSampler(
        fixed_params=space.centre(), base_sampler=optuna.samplers.RandomSampler(seed=seed)),
        fixed_start=True),
    "random": Sampler(lambda config, space, seed, _: optuna.samplers.RandomSampler(seed=seed)),
    "tpe": Sampler(lambda config, space, seed, _: optuna.samplers.TPESampler(seed=seed)),
    "nsga2": Sampler(lambda config, space, seed, _: optuna.samplers.NSGAIISampler(
        seed=seed, population_size=config.outer.popsize or 50)),
}


def _common(outer: OuterConfig) -> dict[str, int]:
    return {"n_startup_trials": outer.startup_trials, "n_warmup_steps": outer.warmup_epochs}


# The registered pruners, each with its warm-up epochs and startup trials.
PRUNERS: dict[str, Callable[[OuterConfig], BasePruner]] = {
    "median": lambda outer: optuna.pruners.MedianPruner(**_common(outer)),
    "percentile": lambda outer: optuna.pruners.PercentilePruner(outer.percentile,
                                                                **_common(outer)),
    "patient": lambda outer: optuna.pruners.PatientPruner(
        optuna.pruners.MedianPruner(**_common(outer)), patience=outer.patience),
    "none": lambda outer: optuna.pruners.NopPruner(),
}


def check_outer(config: StudyConfig) -> None:
    """Refuse an outer loop that the registered samplers and pruners cannot run.

    Raises:
        ConfigError: an unknown sampler or pruner, or settings it cannot run with.
    """
    outer = config.outer
    _require(outer.sampler in SAMPLERS, "outer.sampler",
             f"must be one of {', '.join(SAMPLERS)}", outer.sampler)
    _require(outer.pruner in PRUNERS, "outer.pruner",
             f"must be one of {', '.join(PRUNERS)}", outer.pruner)
    sampler = SAMPLERS[outer.sampler]
    _require(not outer.warm_start or (sampler.warm_starts and not outer.separable),
             "outer.warm_start", 'needs outer.sampler = "cmaes" without outer.separable '
             "(WS-CMA-ES)", outer.warm_start)
    _require(config.search.arch_lr > 0 or config.start.alpha_range > 0
             or sampler.fixed_start, "start.alpha_range",
             "must be > 0 when search.arch_lr = 0: the derived box (arch_lr x steps) has "
             "width 0, so every start would be plain DARTS' (docs/results.md's fixed-alpha "
             "studies use 0.5)", config.start.alpha_range)
    if config.search.multi_objective:
        _require(sampler.two_objectives, "outer.sampler",
                 f"cannot be {outer.sampler!r} with two objectives (it optimises one); use "
                 f"{' or '.join(n for n, s in SAMPLERS.items() if s.two_objectives)}",
                 outer.sampler)
        _require(outer.pruner == "none", "outer.pruner",
                 'must be "none" with two objectives (Optuna cannot prune them)', outer.pruner)


def _require(condition: bool, key: str, message: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{key} {message}, got {value!r}")


def build_sampler(config: StudyConfig, start_space: StartSpace, *, seed: int,
                  source_trials: Sequence[FrozenTrial] = ()) -> BaseSampler:
    """The outer sampler named by ``outer.sampler``."""
    return SAMPLERS[config.outer.sampler].build(config, start_space, seed, source_trials)


def build_pruner(config: StudyConfig) -> BasePruner:
    """The pruner named by ``outer.pruner``, with warm-up epochs and startup trials."""
    return PRUNERS[config.outer.pruner](config.outer)
