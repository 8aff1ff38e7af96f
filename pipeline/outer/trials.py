"""A trial's identity and record: its original number (kept by retries), seed, folder and
search digest, and the reason recorded when it fails."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from pipeline.config import SearchConfig, StudyConfig, to_dict, without_changeable
from pipeline.outer.record import TrialRecord
from pipeline.search import DivergedError

# A trial's files in its folder (and in the artifact store, where the study has one).
CHECKPOINT, METRICS, CELL = "ckpt.pt", "metrics.jsonl", "cell.txt"
INTERRUPTED = "interrupted"
IO_ERROR = "I/O error"
# A trial that never ran its search, and so does not count: the budget was met by other
# workers, or an earlier trial retries the same failed one.
SURPLUS = "surplus"
BUDGET_MET = f"{SURPLUS}: the budget was met by other workers"
# Failures that are not the search's doing: the trial is retried from its checkpoint and
# does not count against the budget.
RESUMABLE = (INTERRUPTED, IO_ERROR)
# Settings that do not change what a trial's search computes (beside the sections of what
# comes after it, which ``without_changeable`` drops): a study that differs from another
# only in them takes the other's searches over.
NOT_SEARCH_SETTINGS = ("data.holdout",)
# Settings added after trials first recorded their config (every variant's among them):
# left out while at their default, so that a trial of an older study keeps its record (and
# its checkpoint and its search digest stay valid).
LATER_SETTINGS = ("outer.warm_start", "search.variant",
                  *(f"search.{key}" for key in SearchConfig().variant_settings),
                  "search.selection", "search.selection_tune_epochs", "start.alpha_space")


class SurplusTrialError(RuntimeError):
    """A trial that must not run its search (see ``SURPLUS``); its message is the reason."""


# Failures that end one trial, with the reason recorded, and let the study go on.
TRIAL_FAILURES = (DivergedError, torch.OutOfMemoryError, SurplusTrialError)


def failure_reason(error: BaseException) -> str:
    """The ``fail_reason`` recorded for a trial that ``error`` ended."""
    if isinstance(error, DivergedError):
        return f"diverged: {error}"
    if isinstance(error, torch.OutOfMemoryError):
        return f"out of memory: {str(error).splitlines()[0]}"
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, OSError):  # a full disk, a lost mount: not the search's doing
        return f"{IO_ERROR}: {error}"
    return f"{type(error).__name__}: {error}"


def resumable(reason: str | None) -> bool:
    """Whether a failed trial with this ``fail_reason`` is retried from its checkpoint (an
    interruption, an I/O error) rather than counted as a search that ended."""
    return reason is not None and reason.partition(":")[0] in RESUMABLE


def surplus(reason: str | None) -> bool:
    """Whether a failed trial with this ``fail_reason`` never ran its search (see
    ``SURPLUS``)."""
    return reason is not None and reason.partition(":")[0] == SURPLUS


def twin_retry_reason(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> str | None:
    """Why ``trial`` is a surplus retry, or None: an earlier trial of ``trials`` retries the
    same failed trial (workers recovering at once may each queue a retry of it; the
    earliest runs)."""
    retried = trial.system_attrs.get("retry_history", [])[-1:]
    twin = next((t.number for t in trials if retried and t.number < trial.number
                 and t.system_attrs.get("retry_history", [])[-1:] == retried), None)
    return None if twin is None else f"{SURPLUS}: trial {twin} already retries trial {retried[0]}"


def finished_elsewhere(error: BaseException) -> bool:
    """Whether ``error`` is the storage's answer to a write to a trial another worker has
    already ended: Optuna raises ``UpdateFinishedTrialError`` for an attribute and
    ``ValueError("Cannot tell a ...")`` for a tell."""
    return (isinstance(error, optuna.exceptions.UpdateFinishedTrialError)
            or (isinstance(error, ValueError) and str(error).startswith("Cannot tell a ")))


def tell_end(study: optuna.Study, trial: optuna.Trial, state: optuna.trial.TrialState,
             reason: str | None = None) -> bool:
    """Tell a trial's end, with ``reason`` recorded as its ``fail_reason`` if given.
    Returns False, leaving the trial as it is, where another worker ended it first.

    Raises:
        ValueError: the tell failed otherwise.
    """
    try:
        if reason is not None:
            TrialRecord(fail_reason=reason).store(trial)
        study.tell(trial, state=state)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
        if not finished_elsewhere(error):
            raise
        return False
    return True


def original_number(trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial) -> int:
    """The number of the first attempt at this trial.

    A retry (after an interruption or a dead worker) copies the user attrs of the trial it
    retries, so it keeps the original number, and with it its seed and its files.
    """
    number = TrialRecord.of(trial).original_number
    return trial.number if number is None else number


def trial_seed(study_seed: int, number: int) -> int:
    """The RNG seed of a trial, from the study seed and the trial's original number."""
    return study_seed * 100_003 + number


def trial_key(number: int) -> str:
    """The folder name of a trial's files under ``trials/``."""
    return f"{number:05d}"


def trial_config(config: StudyConfig) -> dict[str, Any]:
    """The config a trial's checkpoint records: without what may change while a study runs,
    what does not touch the search, and later settings at their defaults."""
    data = without_changeable(to_dict(config))
    for dotted in NOT_SEARCH_SETTINGS:
        section, key = dotted.split(".")
        data[section].pop(key, None)
    defaults = to_dict(StudyConfig(name=config.name))
    for dotted in LATER_SETTINGS:
        section, key = dotted.split(".")
        if key in data.get(section, {}) and data[section][key] == defaults[section][key]:
            del data[section][key]
    return data


def without_study(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's meta without what belongs to its study rather than to its search: the
    study's name and its outer loop."""
    config = {k: v for k, v in meta["config"].items() if k not in ("name", "outer")}
    return {**meta, "config": config}


# Raised whenever a search's result changes for the same settings (a fix to a step or to
# the selection), so that no study takes over a search that older code ran.
# 2: perturbation selection measures by batch statistics.
# 3: so does the epoch's validation accuracy once the selection has decided an edge.
SEARCH_PROTOCOL = 3


def search_key(meta: Mapping[str, Any]) -> str:
    """A short digest of ``without_study(meta)`` and the search protocol: equal for the
    same search in any study of the same protocol."""
    text = json.dumps({**without_study(meta), "protocol": SEARCH_PROTOCOL}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_searches(root: Path, key: str, *, besides: Path) -> list[Path]:
    """The trial folders of the studies under ``root`` that ran the search ``key`` names."""
    return sorted(path.parent for path in root.glob(f"*/trials/*/search-{key}.id")
                  if path.parent != besides)
