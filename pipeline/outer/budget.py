"""What a study may spend, and what its trials have spent: trials, or inner epochs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import StudyConfig
from pipeline.outer.record import TrialRecord
from pipeline.outer.trials import (
    BUDGET_MET,
    original_number,
    resumable,
    surplus,
    twin_retry_reason,
)
from pipeline.search.build import search_epochs


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts against the budget: a finished one, or a failure the search
    decided (a diverged search). An interrupted trial (or one an I/O error stopped) is
    resumed, and a surplus one never ran, so neither counts."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    reason = TrialRecord.of(trial).fail_reason
    return (trial.state == TrialState.FAIL and reason is not None and not surplus(reason)
            and not resumable(reason))


def trials_used(trials: Sequence[FrozenTrial]) -> int:
    """How many trials count against a study's budget (see ``counted``)."""
    return sum(counted(trial) for trial in trials)


def first_searches(trials: Sequence[FrozenTrial], count: int) -> list[FrozenTrial]:
    """The study as its first ``count`` searches left it: the first ``count`` trials that
    count against the budget, in the order they were proposed (a retry by its original
    number)."""
    done = sorted((t for t in trials if counted(t)), key=original_number)
    return done[:count]


def epochs_used(trials: Sequence[FrozenTrial]) -> int:
    """Inner epochs run by the trials that count against the budget."""
    return sum(_epochs_run(t) for t in trials if counted(t))


def _epochs_run(trial: FrozenTrial) -> int:
    """The epochs a trial's search ran (by its reports, where it recorded none)."""
    epochs = TrialRecord.of(trial).epochs_run
    return len(trial.intermediate_values) if epochs is None else epochs


@dataclass(frozen=True, slots=True)
class Budget:
    """What a study may spend: ``trials``, or, when ``epochs`` > 0, that many inner epochs
    (a pruned trial spends only the epochs it ran, so pruning buys more trials)."""

    trials: int
    epochs: int = 0
    epochs_per_trial: int = 1

    @classmethod
    def of(cls, config: StudyConfig) -> Budget:
        return cls(config.outer.n_trials, config.outer.epoch_budget, search_epochs(config))

    @property
    def total(self) -> int:
        return self.epochs or self.trials

    @property
    def cost(self) -> int:
        """What a trial about to start may spend."""
        return self.epochs_per_trial if self.epochs else 1

    def spent(self, trials: Sequence[FrozenTrial]) -> int:
        return epochs_used(trials) if self.epochs else trials_used(trials)

    def has_room(self, trials: Sequence[FrozenTrial], running: int) -> bool:
        """Whether one more trial fits beside ``running`` trials that may spend it all."""
        return self.spent(trials) + (running + 1) * self.cost <= self.total


def surplus_reason(trial: optuna.Trial, budget: Budget) -> str | None:
    """Why ``trial`` must not run its search, or None: an earlier trial retries the same
    failed trial (workers recovering at once may each queue a retry of it; the earliest
    runs), or the budget is taken without it, by finished trials and by the running trials
    that started before it (workers can ask for trials at once)."""
    trials = trial.study.get_trials(deepcopy=False)
    own = next(t for t in trials if t.number == trial.number)
    if (twin := twin_retry_reason(own, trials)) is not None:
        return twin
    earlier_running = sum(t.state == TrialState.RUNNING for t in trials
                          if t.number < trial.number)
    return None if budget.has_room(trials, earlier_running) else BUDGET_MET


def budget_spent(study: optuna.Study, budget: Budget) -> int:
    """How much of ``budget`` the study's finished trials have spent."""
    return min(budget.spent(study.get_trials(deepcopy=False)), budget.total)
