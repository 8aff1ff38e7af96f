"""How a study proposes start points and stops hopeless searches: its sampler (CMA-ES by
default) and its pruner."""

from __future__ import annotations

import warnings

import optuna

from pipeline.config import StudyConfig
from pipeline.search import StartSpace


def build_sampler(config: StudyConfig, start_space: StartSpace, *, seed: int
                  ) -> optuna.samplers.BaseSampler:
    """The outer sampler named by ``outer.sampler``.

    CMA-ES learns from pruned trials (at their last reported value) only when that value
    measures what a complete trial's does: not with the ``trained`` objective, whose
    pruner sees the supernet's accuracy.
    """
    outer = config.outer
    if outer.sampler == "cmaes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=seed, popsize=outer.popsize or None,
                use_separable_cma=outer.separable,
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
