"""Trials whose worker stopped, brought back: failed with their reason and queued for a
retry that resumes from their checkpoint with the same start point and seed."""

from __future__ import annotations

import copy
import datetime
import logging
import os
import warnings

import optuna
from optuna.trial import TrialState

from pipeline.outer.cores import local_worker, worker_lives
from pipeline.outer.record import TrialRecord
from pipeline.outer.trials import (
    INTERRUPTED,
    original_number,
    resumable,
    tell_end,
    twin_retry_reason,
)

logger = logging.getLogger(__name__)

# A worker sets up a trial it asked for (writes its own record) within seconds: a trial
# still not set up this long after it was asked for was left by a worker that stopped.
SETUP_GRACE = datetime.timedelta(minutes=10)


def recover(study: optuna.Study, *, heartbeat: bool) -> list[int]:
    """Fail the running trials whose worker is gone (on this machine: its process has
    ended; elsewhere: its heartbeat stopped, on a storage that keeps one) and queue a
    retry of every resumable failure not yet retried. Returns the original numbers of the
    trials queued."""
    fail_dead_local_trials(study)
    fail_unset_trials(study, grace=SETUP_GRACE)
    if heartbeat:
        fail_stale_trials(study)
    return requeue_resumable(study)


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail, as interrupted, the running trials whose worker ran on this machine and whose
    process has ended (killed, say), and those of this very process, which runs no trial
    while it recovers (its own tell failed): they need not wait for a heartbeat's grace
    period, and on a journal file, which keeps none, nothing else would ever end them."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.of(trial)
        if not record.own_worker(trial.number):  # a retry another worker is setting up
            continue
        pid = local_worker(record)
        own = pid == os.getpid()
        if pid is None or (not own and worker_lives(record)):
            continue
        reason = (f"{INTERRUPTED}: its worker {record.worker} "
                  + ("ended it without telling" if own else "is gone"))
        if not tell_end(study, optuna.trial.Trial(study, trial._trial_id), TrialState.FAIL,
                        reason):
            continue  # another worker on this machine failed it first
        logger.info("trial %d: %s", trial.number, reason)
        failed.append(trial.number)
    return failed


def fail_unset_trials(study: optuna.Study, *, grace: datetime.timedelta) -> list[int]:
    """Fail, as interrupted, the running trials that no worker set up (none wrote its own
    record) within ``grace`` of being asked for: their worker stopped between asking and
    its first heartbeat, so neither a heartbeat nor a process would ever end them, and
    the budget would count them as running for ever."""
    failed = []
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record, started = TrialRecord.of(trial), trial.datetime_start
        set_up = record.worker is not None and record.own_worker(trial.number)
        if set_up or started is None or now - started < grace:
            continue
        reason = f"{INTERRUPTED}: no worker set it up within {grace} of asking for it"
        if tell_end(study, optuna.trial.Trial(study, trial._trial_id), TrialState.FAIL,
                    reason):
            logger.info("trial %d: %s", trial.number, reason)
            failed.append(trial.number)
    return failed


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and so queue retries of) trials whose worker stopped beating. Workers race to
    do it; SQLite answers the loser with an error, which is harmless: the trial is failed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            optuna.storages.fail_stale_trials(study)
        except optuna.exceptions.StorageInternalError as error:
            logger.debug("another worker was failing stale trials: %s", error)


def requeue_resumable(study: optuna.Study) -> list[int]:
    """Queue a retry of each trial that failed resumably (interrupted, or stopped by an I/O
    error) and was not yet retried; it resumes from its checkpoint with the same x and
    seed. Returns the original trial numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    queued = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial in trials:
            if (trial.state == TrialState.FAIL and trial.number not in retried
                    and resumable(TrialRecord.of(trial).fail_reason)):
                # a copy: the callback appends to the attrs it is given, and this trial's
                # are the storage's cache, where a retry of a retry would then see its twin
                retry()(study, copy.deepcopy(trial))
                queued.append(original_number(trial))
    return queued


def fail_twin_retries(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail, as surplus, the queued retries that an earlier trial already retries (see
    ``twin_retry_reason``). A worker that takes one fails it so, but once the budget is
    met none is taken, and it would stay queued for good. Each is claimed first, as a
    worker claims a trial, so that none is failed while a worker takes it. Returns their
    numbers."""
    trials = study.get_trials(deepcopy=False)
    failed = []
    for trial in trials:
        reason = twin_retry_reason(trial, trials) if trial.state == TrialState.WAITING else None
        if reason is None or not storage.set_trial_state_values(trial._trial_id,
                                                                TrialState.RUNNING):
            continue
        if tell_end(study, optuna.trial.Trial(study, trial._trial_id), TrialState.FAIL, reason):
            logger.info("trial %d: %s", trial.number, reason)
            failed.append(trial.number)
    return failed
