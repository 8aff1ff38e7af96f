"""What a trial records about itself, stored as its Optuna user attributes: who it is and
where it runs (when it begins), its result (when it ends or is pruned), and why it failed.
Every writer and reader goes through ``TrialRecord``; a study written by an earlier version
reads back with what it recorded (an attribute it lacks reads as None)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRecord:
    """A trial's record; a field left at None is not recorded (yet).

    ``original_number`` is the number of the first attempt at the trial, which a retry keeps
    (with its seeds and files); ``trial_key`` names its folder. ``alpha_softmax`` is the
    last epoch's mixing weights (edges x ops), ``cell_history`` the cell after each epoch.
    """

    # who it is, where and how it runs
    original_number: int | None = None
    trial_key: str | None = None
    seed: int | None = None
    init_seed: int | None = None
    device: str | None = None
    threads: int | None = None
    worker: str | None = None
    worker_started: str | None = None
    worker_trial: int | None = None  # the trial the worker fields were recorded for
    resumed_from_epoch: int | None = None
    same_search_as: str | None = None
    # its files in the artifact store (outer.artifacts): the last checkpoints, as
    # [epoch, artifact id], and the finished trial's metrics
    checkpoints: list[list[Any]] | None = None
    metrics_artifact: str | None = None
    # its result
    cell: str | None = None
    supernet_acc: float | None = None
    discrete_acc: float | None = None
    trained_acc: float | None = None
    judged: float | None = None  # the cheap judge's value, where it is the trial objective
    train_time_s: float | None = None
    eval_params_M: float | None = None  # noqa: N815 - the name studies have stored
    alpha_softmax: list[list[float]] | None = None
    epochs_run: int | None = None
    cell_history: list[str] | None = None
    wall_time_s: float | None = None
    skip_share: float | None = None
    pool_share: float | None = None
    none_share: float | None = None
    # why it failed
    fail_reason: str | None = None

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.trial.BaseTrial) -> TrialRecord:
        """The record a trial has stored so far."""
        attrs = trial.user_attrs
        return cls(**{name: attrs[name] for name in FIELDS if name in attrs})

    def with_shares(self, shares: Mapping[str, float]) -> TrialRecord:
        """The record with the cell's shares of skips, pools and ``none`` (``op_shares``)."""
        return dataclasses.replace(self, skip_share=shares["skip_share"],
                                   pool_share=shares["pool_share"],
                                   none_share=shares["none_share"])

    def own_worker(self, number: int) -> bool:
        """Whether the worker fields are those of trial ``number`` itself: not while a
        retry is being set up, which copied them from the trial it retries (a record of an
        earlier version, without ``worker_trial``, counts as its own)."""
        return self.worker_trial in (None, number)

    def measured(self) -> str:
        """What was measured of the cell, in words: its supernet, discrete and trained
        accuracy, those it has."""
        return ", ".join(f"{label} {value:.2f} %" for label, value in (
            ("supernet", self.supernet_acc), ("discrete cell", self.discrete_acc),
            ("trained from scratch", self.trained_acc)) if value is not None)

    def attrs(self) -> dict[str, Any]:
        """The recorded fields as user attributes (those left at None out)."""
        return {name: getattr(self, name) for name in FIELDS
                if getattr(self, name) is not None}

    def store(self, trial: optuna.Trial) -> None:
        """Record the fields that are set on the trial."""
        for name, value in self.attrs().items():
            trial.set_user_attr(name, value)


FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord))
SELECTED = "selected"  # the study attribute that holds the selection stage's pick


@dataclass(frozen=True, slots=True)
class StudySelection:
    """The cell that the selection stage (``globaldarts select``) chose among a study's
    cells (those of its first ``searches`` searches; None: all), the study's trials that
    ended on it, the judge that chose it, how many cells it chose among and the epochs it
    trained them."""

    cell: str
    trials: tuple[int, ...]
    judge: str
    candidates: int
    epochs: int
    searches: int | None = None

    def store(self, study: optuna.Study) -> None:
        """Write the selection into the study (it replaces any earlier one of the same
        searches)."""
        study.set_user_attr(selection_attr(self.searches),
                            {**dataclasses.asdict(self), "trials": list(self.trials)})

    @classmethod
    def of(cls, study: optuna.Study, searches: int | None = None) -> StudySelection | None:
        """The selection among the cells of the study's first ``searches`` searches (None:
        all) written into ``study``; None if no such selection ran."""
        stored = study.user_attrs.get(selection_attr(searches))
        if not isinstance(stored, dict):
            return None
        return cls(**{**stored, "trials": tuple(stored["trials"])})


def selection_attr(searches: int | None) -> str:
    """The study attribute that holds the selection among the cells of its first
    ``searches`` searches (None: all of them)."""
    return SELECTED if searches is None else f"{SELECTED}_first_{searches}"
