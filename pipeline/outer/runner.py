"""The one way a trial runs: asked from the study, its search run alone or beside others
as a batched population, told how it ended; with heartbeats while it runs and its failure
reason recorded however it ends."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator

import optuna
import sqlalchemy
import torch
from optuna.trial import TrialState

from pipeline.outer.budget import Budget
from pipeline.outer.progress import TrialProgress
from pipeline.outer.record import TrialRecord
from pipeline.outer.storage import StudyDeletedError
from pipeline.outer.trial_steps import TrialRun, TrialSteps
from pipeline.outer.trials import (
    TRIAL_FAILURES,
    SurplusTrialError,
    failure_reason,
    finished_elsewhere,
    tell_end,
)
from pipeline.search import DivergedError, EpochRecord, Population

logger = logging.getLogger(__name__)


def run_trials(study: optuna.Study, storage: optuna.storages.BaseStorage,
               steps: TrialSteps, size: int, *, progress: bool = False) -> None:
    """Ask up to ``size`` trials (as many as the budget has room for) and run their
    searches, side by side as batched populations, one per starting epoch (a resumed
    trial runs with the trials resumed at the same epoch). Every trial is told its
    outcome; on an interruption the unfinished ones are failed as interrupted, so they
    resume later, and on an unexpected error they are failed with its message before it
    propagates.

    Until a trial has completed, one trial runs at a time: CMA-ES learns the search
    space from a complete trial and would sample the others at random. On a storage with
    heartbeats (``storage``), the running trials keep one, so a killed worker's trials are
    failed and retried. Each trial claims its search while the search runs, so a study
    beside it that asks for the same search waits and takes it over (``claims``).
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        size = 1
    runs: list[TrialRun] = []
    try:
        runs = _ask(study, storage, steps, size)
        with _heartbeats(study, storage, [run.trial.number for run in runs]):
            for _, group in itertools.groupby(sorted(runs, key=lambda r: r.search.epoch),
                                              key=lambda r: r.search.epoch):
                _run_population(study, steps, list(group), progress=progress)
    except StudyDeletedError:  # nothing left to tell
        raise
    except BaseException as error:  # an interruption, or a failure none of them expects
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for run in runs:
            if states[run.trial.number] == TrialState.RUNNING:
                _tell_failed(study, run.trial, error)
        raise
    finally:
        for run in runs:
            run.claim.release()


def _ask(study: optuna.Study, storage: optuna.storages.BaseStorage, steps: TrialSteps,
         size: int) -> list[TrialRun]:
    """Up to ``size`` new trials, set up (with a heartbeat, as the first may wait for its
    search in another study); a trial that must not run (a surplus: the budget has no
    room for it, or an earlier trial retries the same one) is failed with that reason and
    ends the asking."""
    budget = Budget.of(steps.config)
    runs: list[TrialRun] = []
    try:
        for _ in range(size):
            trials = study.get_trials(deepcopy=False)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if runs and not budget.has_room(trials, running):
                break
            with warnings.catch_warnings():  # heartbeats are kept by _heartbeats
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
            try:
                # only the first waits for a search another study runs: a process
                # holding one claim never waits for another, so none deadlock
                with _heartbeats(study, storage, [trial.number]):
                    runs.append(steps.begin(trial, wait=not runs))
            except SurplusTrialError:
                _end(study, trial, TrialState.FAIL)
                break
            except optuna.TrialPruned:  # a search taken over, pruned at an epoch it ran
                _end(study, trial, TrialState.PRUNED)
            except BaseException as error:
                if isinstance(error, Exception) and finished_elsewhere(error):
                    _ended_elsewhere(trial.number, error)  # while it was being set up
                    continue
                _tell_failed(study, trial, error)
                raise
    except BaseException as error:
        for run in runs:
            _tell_failed(study, run.trial, error)
            run.claim.release()
        raise
    return runs


def _tell_failed(study: optuna.Study, trial: optuna.Trial, error: BaseException) -> None:
    """Fail a trial with the reason ``error`` gives. If the storage cannot take it (a full
    disk holds the database too), the trial stays running for recovery to find; in a
    deleted study there is nothing to tell."""
    if isinstance(error, StudyDeletedError):
        return
    try:
        TrialRecord(fail_reason=failure_reason(error)).store(trial)
        study.tell(trial, state=TrialState.FAIL)
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError,
            OSError) as storage_error:
        logger.warning("trial %d could not be failed in the storage: %s", trial.number,
                       storage_error)


@contextlib.contextmanager
def _heartbeats(study: optuna.Study, storage: optuna.storages.BaseStorage,
                numbers: list[int]) -> Iterator[None]:
    """Record a heartbeat for each of the trials ``numbers`` every heartbeat interval
    while the block runs (asked trials have none of their own). Nothing happens on a
    storage without heartbeats."""
    if not isinstance(storage, optuna.storages.RDBStorage) or not numbers:
        yield
        return
    interval = storage.get_heartbeat_interval()
    if interval is None:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_ids = [storage.get_trial_id_from_study_id_trial_number(study_id, number)
                 for number in numbers]
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                for trial_id in trial_ids:
                    storage.record_heartbeat(trial_id)
            except Exception as error:  # the study deleted, say: the trial's own writes fail
                logger.debug("trial heartbeats stopped: %s", error)
                return
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="trial-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_population(study: optuna.Study, steps: TrialSteps, runs: list[TrialRun], *,
                    progress: bool) -> None:
    """Run searches at one epoch side by side; tell each trial how it ended. A trial that
    another worker ended meanwhile (it took this worker for dead: a heartbeat came late)
    is left as that worker ended it; its retry resumes it from its checkpoint."""
    population = Population([run.search for run in runs])
    by_search = {id(run.search): run for run in runs}
    shown = TrialProgress(runs, bars=progress)

    def end(run: TrialRun, state: TrialState, reason: str | None = None) -> None:
        if not _end(study, run.trial, state, reason):
            state = TrialState.FAIL
        run.claim.release()
        population.drop(run.search)
        shown.ended(run, state)

    try:
        while not population.finished:
            members = list(population.members)
            try:
                results = population.run_epoch()
            except torch.OutOfMemoryError as error:
                for member in members:
                    end(by_search[id(member)], TrialState.FAIL, failure_reason(error))
                return
            for member, result in zip(members, results, strict=True):
                _epoch_ended(steps, by_search[id(member)], result, end, shown)
            shown.step()
    finally:
        shown.close()
    for run in by_search.values():  # every search has ended: the others may take it over
        run.claim.release()
    for member in list(population.members):
        _finish(study, steps, by_search[id(member)], shown)


def _epoch_ended(steps: TrialSteps, run: TrialRun, result: EpochRecord | DivergedError,
                 end: Callable[..., None], shown: TrialProgress) -> None:
    """Checkpoint and report a member's finished epoch, or end its trial: diverged, pruned,
    or ended by another worker meanwhile (``end`` finds it so and leaves it)."""
    if isinstance(result, DivergedError):
        end(run, TrialState.FAIL, failure_reason(result))
        return
    shown.epoch(run, result)
    try:
        steps.after_epoch(run, result)
    except optuna.TrialPruned:
        end(run, TrialState.PRUNED)
    except optuna.exceptions.UpdateFinishedTrialError:
        end(run, TrialState.FAIL)


def _end(study: optuna.Study, trial: optuna.Trial, state: TrialState,
         reason: str | None = None) -> bool:
    """Tell a trial's end (see ``tell_end``); one that another worker ended meanwhile stays
    as it ended, with a warning. Returns whether it was told."""
    if tell_end(study, trial, state, reason):
        return True
    _warn_ended_elsewhere(trial.number)
    return False


def _ended_elsewhere(number: int, error: Exception) -> None:
    """Leave a trial that another worker ended meanwhile as it was ended.

    Raises:
        ValueError: ``error`` says something else than that the trial is finished.
    """
    if not finished_elsewhere(error):
        raise error
    _warn_ended_elsewhere(number)


def _warn_ended_elsewhere(number: int) -> None:
    logger.warning("trial %d was ended by another worker, which took this one for dead (a "
                   "heartbeat came late); its retry resumes it from its checkpoint", number)


def _finish(study: optuna.Study, steps: TrialSteps, run: TrialRun,
            shown: TrialProgress) -> None:
    """Record a search that ran to its end and tell the trial its value; a failure that
    ends one trial (out of memory while training its cell, say) fails it with its reason."""
    try:
        value = steps.end(run)
        study.tell(run.trial, values=list(value) if isinstance(value, tuple) else value)
    except TRIAL_FAILURES as error:
        _tell_failed(study, run.trial, error)
        shown.ended(run, TrialState.FAIL)
        return
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
        _ended_elsewhere(run.trial.number, error)
        shown.ended(run, TrialState.FAIL)
        return
    shown.ended(run, TrialState.COMPLETE, value[0] if isinstance(value, tuple) else value)
