"""How a study proposes start points and stops hopeless searches: its sampler (CMA-ES by
default) and its pruner."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial

from pipeline.config import StudyConfig
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


def build_sampler(config: StudyConfig, start_space: StartSpace, *, seed: int,
                  source_trials: Sequence[FrozenTrial] = ()) -> optuna.samplers.BaseSampler:
    """The outer sampler named by ``outer.sampler``.

    CMA-ES learns from pruned trials (at their last reported value) only when that value
    measures what a complete trial's does: not with the ``trained`` objective, whose
    pruner sees the supernet's accuracy. ``source_trials`` (complete trials of another
    study over the same start vector) warm-start it (WS-CMA-ES).
    """
    outer = config.outer
    if outer.sampler == "cmaes":
        source = warm_start_trials(source_trials, start_space)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=seed, popsize=outer.popsize or None,
                use_separable_cma=outer.separable, source_trials=source or None,
                consider_pruned_trials=(outer.pruner != "none"
                                        and config.search.accuracy_objective != "trained"))
    if outer.sampler == "darts":
        return optuna.samplers.PartialFixedSampler(
            fixed_params=start_space.centre(),
            base_sampler=optuna.samplers.RandomSampler(seed=seed))
    if outer.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if outer.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=outer.popsize or 50)
    return optuna.samplers.TPESampler(seed=seed)


def build_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The pruner named by ``outer.pruner``, with warm-up epochs and startup trials."""
    outer = config.outer
    common = dict(n_startup_trials=outer.startup_trials, n_warmup_steps=outer.warmup_epochs)
    if outer.pruner == "median":
        return optuna.pruners.MedianPruner(**common)
    if outer.pruner == "percentile":
        return optuna.pruners.PercentilePruner(outer.percentile, **common)
    if outer.pruner == "patient":
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**common),
                                            patience=outer.patience)
    return optuna.pruners.NopPruner()
