"""The outer loop: an Optuna study of start points, opened or resumed, run until its
budget is spent, summarised."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from pipeline.checkpoint import atomic_write
from pipeline.config import (
    StudyConfig,
    check_study_name,
    diff,
    from_dict,
    to_dict,
    with_defaults,
    without_changeable,
)
from pipeline.outer.artifacts import open_artifacts
from pipeline.outer.budget import Budget, budget_spent, epochs_used, trials_used
from pipeline.outer.cores import CoreShare
from pipeline.outer.folder import belongs, check_folder, claim_folder, claim_id
from pipeline.outer.picks import baseline_trial, best_trial, front_trials
from pipeline.outer.progress import StudyProgress
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.recovery import fail_dead_local_trials, fail_twin_retries, recover
from pipeline.outer.runner import run_trials
from pipeline.outer.sampling import (
    SAMPLERS,
    WARM_START_COPY,
    build_pruner,
    build_sampler,
    check_outer,
    decode_trials,
    encode_trials,
)
from pipeline.outer.storage import (
    StudyDeletedError,
    StudyError,
    default_storage,
    is_journal,
    local_file,
    make_storage,
    redact,
)
from pipeline.outer.trial_steps import Publisher, TrialSteps
from pipeline.outer.trials import finished_elsewhere
from pipeline.search import StartSpace, build_start_space, prepare_data
from pipeline.search.build import variant
from pipeline.search.population import check_population

logger = logging.getLogger(__name__)

STORAGE_CONFLICTS = 5
SET_UP_WAIT_S = 30.0  # how long a worker waits for the one that created the study to set it up


@dataclass(frozen=True, slots=True)
class StudySummary:
    """Where a study stands after a run."""

    name: str
    storage: str
    state_dir: Path
    finished: int
    budget: int
    best: FrozenTrial | None
    front: list[FrozenTrial]
    epochs_spent: int
    epoch_budget: int
    running: int = 0
    heartbeat: bool = True
    baseline: FrozenTrial | None = None


def state_dir(root: str | Path, name: str) -> Path:
    """The folder of a study's state: ``root/name`` (the name is validated by the config)."""
    return Path(root) / name


def open_study(config: StudyConfig, storage: str | optuna.storages.BaseStorage,
               start_space: StartSpace, *, force: bool = False,
               source_trials: Sequence[FrozenTrial] = ()) -> optuna.Study:
    """Create the study, or load it and check that its config has not changed;
    ``source_trials`` warm-start its CMA-ES (``outer.warm_start``). Of workers that start
    together, the one whose storage created the study sets it up; the others wait for that.

    Raises:
        StudyError: the stored config differs (unless ``force``) or storage fails.
    """
    if isinstance(storage, str):
        storage = make_storage(storage)
    sampler = build_sampler(config, start_space, seed=config.seed, source_trials=source_trials)
    pruner = build_pruner(config)
    directions = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE][
        :len(config.search.objectives)]
    try:
        study = optuna.create_study(storage=storage, study_name=config.name, sampler=sampler,
                                    directions=directions, pruner=pruner)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        created = not _set_up_by_another(study)
    fail_dead_local_trials(study)
    if not created and _beside_another(study):
        # sample with this process's own seed, so that workers do not propose the same
        # start points; a lone worker stays reproducible
        worker_seed = (config.seed * 1_000_003 + os.getpid()) % 2**31
        study.sampler = build_sampler(config, start_space, seed=worker_seed,
                                      source_trials=source_trials)
    if created:
        _set_up(study, config, start_space, source_trials)
    else:
        _check_config(study, config, force=force)
    return study


def _set_up(study: optuna.Study, config: StudyConfig, start_space: StartSpace,
            source_trials: Sequence[FrozenTrial]) -> None:
    """Give a new study its id, metric names, warm-start copy and centre trial, then its
    config, which tells other workers that it is set up."""
    claim_id(study)
    study.set_user_attr("versions", _versions())
    study.set_metric_names([f"{config.search.accuracy_objective} validation accuracy (%)",
                            "evaluation-network parameters (M)"
                            ][:len(config.search.objectives)])
    if source_trials:  # it starts from these for good, whatever becomes of their study
        study.set_user_attr(WARM_START_COPY, encode_trials(source_trials))
    if config.outer.start_at_centre and not SAMPLERS[config.outer.sampler].fixed_start:
        study.enqueue_trial(start_space.centre())
    study.set_user_attr("config", to_dict(config))


def _beside_another(study: optuna.Study) -> bool:
    """Whether another worker is at ``study`` now, as far as one can tell: it runs a trial,
    or it created the study and has not finished a trial yet."""
    states = {t.state for t in study.get_trials(deepcopy=False)}
    return TrialState.RUNNING in states or not any(state.is_finished() for state in states)


def _set_up_by_another(study: optuna.Study) -> bool:
    """Whether the worker that created ``study`` has set it up (given it its config), waiting
    up to ``SET_UP_WAIT_S``; if not (it died on the way, or globaldarts did not make the
    study), this worker sets it up."""
    deadline = time.monotonic() + SET_UP_WAIT_S
    while "config" not in study.user_attrs:
        if time.monotonic() >= deadline:
            logger.warning("study %s has no config: setting it up here", study.study_name)
            return False
        time.sleep(0.2)
    return True


def _check_config(study: optuna.Study, config: StudyConfig, *, force: bool) -> None:
    """Refuse to continue a study under another config than it was created with (a
    setting added since then counts at its default), unless ``force``.

    Raises:
        StudyError: the config differs and ``force`` is not given.
    """
    stored = with_defaults(study.user_attrs["config"])
    changed = diff(without_changeable(stored), without_changeable(to_dict(config)))
    if changed and not force:
        raise StudyError(f"study {config.name!r} was created with another config "
                         f"({'; '.join(changed)}); pass --force to continue anyway")
    if changed:
        logger.warning("continuing study %s with a changed config: %s", config.name,
                       "; ".join(changed))


def _existing_study(config: StudyConfig, storage_url: str,
                    storage: optuna.storages.BaseStorage | None = None
                    ) -> tuple[optuna.storages.BaseStorage | None, optuna.Study | None]:
    """The worker's storage (None while its local file does not exist: opening it would
    create it), and the study if it holds it."""
    if storage is None:
        local = local_file(storage_url)
        if local is not None and not local.exists():
            return None, None
        storage = _worker_storage(config, storage_url)
    try:
        return storage, optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        return storage, None


def _worker_storage(config: StudyConfig, storage_url: str) -> optuna.storages.BaseStorage:
    """The one storage a worker uses throughout (on a database server: one small pool of
    connections), with the study's heartbeat."""
    outer = config.outer
    return make_storage(storage_url, max_retries=outer.max_retries,
                        heartbeat_interval_s=outer.heartbeat_interval,
                        grace_period_s=outer.grace_period)


def run_study(config: StudyConfig, *, root: str | Path, storage: str | None = None,
              device: torch.device, force: bool = False, progress: bool = False,
              population: int = 1, publisher: Publisher | None = None) -> StudySummary:
    """Run or resume a study until ``outer.n_trials`` trials count against its budget. A
    study that has spent its budget is summarised without loading its data.

    With ``population`` K > 1, trials are asked K at a time and their searches run as
    one batched population (first-order DARTS only). ``publisher`` also shows each
    finished trial and, at the end, the study (optuna-dashboard's notes and graphs).

    Raises:
        PopulationError: a population size below 1, or above 1 for a second-order or
            compiled search.
    """
    check_outer(config)
    _check_population(config, population)
    directory = state_dir(root, config.name)
    storage_url = storage or default_storage(directory)
    budget = Budget.of(config)
    study_storage, existing = _existing_study(config, storage_url)
    if existing is None and not belongs(directory, None, storage_url):
        # a study claimed the folder: it may be one that a worker beside this one created
        study_storage, existing = _existing_study(config, storage_url, study_storage)
    check_folder(directory, existing, storage_url)
    if existing is not None and "config" in existing.user_attrs and not budget.has_room(
            existing.get_trials(deepcopy=False), 0):
        _check_config(existing, config, force=force)  # spent: its data need not be loaded
        return summarize(existing, storage_url, directory, budget)
    artifacts = open_artifacts(config.outer.artifacts) if config.outer.artifacts else None
    data = prepare_data(config, device)  # before the storage, which may create files
    source = _warm_start_source(config, existing, root=root, storage=storage)
    if study_storage is None:
        study_storage = _worker_storage(config, storage_url)
    start_space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    study = open_study(config, study_storage, start_space, force=force, source_trials=source)
    claim_folder(directory, study, storage_url)
    resolved = json.dumps(to_dict(config), indent=2).encode()
    atomic_write(directory / "config.resolved.json", lambda handle: handle.write(resolved))
    resumed = recover(study, heartbeat=isinstance(study_storage, optuna.storages.RDBStorage))
    if resumed:
        logger.info("resuming interrupted trials %s", resumed)
    steps = TrialSteps(config=config, state_dir=directory, data=data,
                       start_space=start_space, device=device, publisher=publisher,
                       artifacts=artifacts)
    with CoreShare(root, config.name) as cores:
        _work(study, study_storage, steps, population, cores, progress=progress,
              gone=lambda: _gone(config.name, study_storage, storage_url))
    if publisher is not None:
        try:
            publisher.publish_study(study)
        except optuna.exceptions.StorageInternalError as error:  # another worker publishes
            logger.warning("the study's graphs were not stored this time: %s", error)
    return summarize(study, storage_url, directory, budget)


def _warm_start_source(config: StudyConfig, existing: optuna.Study | None, *,
                       root: str | Path, storage: str | None) -> list[FrozenTrial]:
    """The trials that warm-start the study's CMA-ES (``outer.warm_start``): the copy it
    stored when it was created, else the source study's complete trials.

    Raises:
        StudyError: the source study is gone and the study keeps no copy of its trials.
    """
    if existing is not None and WARM_START_COPY in existing.user_attrs:
        return decode_trials(existing.user_attrs[WARM_START_COPY])
    if not config.outer.warm_start:
        return []
    try:
        source = load_study(config.outer.warm_start, root=root, storage=storage)
    except StudyError as error:
        raise StudyError(f"outer.warm_start: {error}; the study cannot start from its "
                         "trials") from None
    return source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _gone(name: str, storage: optuna.storages.BaseStorage, storage_url: str) -> bool:
    """Whether study ``name`` was deleted (its database or journal file, or its entry in
    the storage); a storage that cannot answer does not say so."""
    local = local_file(storage_url)
    if local is not None and not local.exists():
        return True
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return True
    except Exception:  # noqa: BLE001 - the storage cannot answer: the caller's error stands
        return False
    return False


def _check_population(config: StudyConfig, population: int) -> None:
    search = config.search
    check_population(population, order=search.order, compiled=search.compile,
                     selection=search.selection == "perturbation", variant=variant(config))


def _work(study: optuna.Study, storage: optuna.storages.BaseStorage, steps: TrialSteps,
          population: int, cores: CoreShare, *, progress: bool,
          gone: Callable[[], bool] = lambda: False) -> None:
    """Run trials until the budget is spent, each with this worker's share of the cores,
    riding out other workers' storage writes; stop when the study is deleted (``gone``).

    Raises:
        StudyDeletedError: the study was deleted while this worker ran it.
    """
    budget, outer = Budget.of(steps.config), steps.config.outer
    heartbeat = isinstance(storage, optuna.storages.RDBStorage)
    poll_s = min(outer.heartbeat_interval, 5)
    conflicts = 0
    shown = StudyProgress(study.study_name, total=budget.total,
                          spent=budget_spent(study, budget),
                          unit="epoch" if budget.epochs else "trial", bars=progress)
    try:
        while _has_work(study, budget, heartbeat=heartbeat, poll_s=poll_s, gone=gone):
            try:
                cores.apply()
                run_trials(study, storage, steps, population, progress=progress)
                conflicts = 0
            except ValueError as error:
                if not finished_elsewhere(error):
                    raise
                # this worker stopped beating (paused past the grace period), so another
                # failed its trial as stale and queued a retry; that retry's result stands
                logger.warning("another worker ended this trial first: %s", error)
            except optuna.exceptions.StorageInternalError as error:
                conflicts += 1  # workers writing at once; SQLite refuses one of them
                if conflicts > STORAGE_CONFLICTS:
                    raise
                logger.warning("storage conflict with another worker, trying again: %s", error)
                time.sleep(poll_s)
            except StudyDeletedError:
                raise
            except Exception:
                if gone():
                    raise StudyDeletedError(study.study_name) from None
                raise
            best = best_trial(study.get_trials(deepcopy=False))
            shown.update(budget_spent(study, budget), None if best is None else best.values[0])
        fail_twin_retries(study, storage)
    finally:
        shown.close()


def _has_work(study: optuna.Study, budget: Budget, *, heartbeat: bool, poll_s: float,
              gone: Callable[[], bool]) -> bool:
    """Whether this worker should start another trial.

    Not when the budget is met, nor when the rest of it is held by trials other workers
    are running; but with heartbeats such a trial may turn out dead, and its retry is work
    again, so the worker waits for those trials to end rather than leave. The wait ends
    when they do: a trial whose worker stopped beating is failed after the grace period
    (one left running by this worker itself at once), and a deleted study ends it.

    Raises:
        StudyDeletedError: the study was deleted.
    """
    while True:
        if gone():
            raise StudyDeletedError(study.study_name)
        recover(study, heartbeat=heartbeat)
        trials = study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if not budget.has_room(trials, 0):
            return False
        if waiting or budget.has_room(trials, running):
            return True
        if not heartbeat:
            return False
        logger.info("waiting for %d trials of other workers", running)
        time.sleep(poll_s)


def summarize(study: optuna.Study, storage_url: str, directory: Path, budget: Budget
              ) -> StudySummary:
    """Collect where a study stands: trials finished, the best complete one and the
    Pareto front of accuracy and cell parameters."""
    trials = study.get_trials(deepcopy=False)
    return StudySummary(name=study.study_name, storage=redact(storage_url, url=storage_url),
                        state_dir=directory, finished=trials_used(trials),
                        budget=budget.trials, best=best_trial(trials),
                        front=front_trials(trials), epochs_spent=epochs_used(trials),
                        epoch_budget=budget.epochs,
                        running=sum(t.state == TrialState.RUNNING for t in trials),
                        heartbeat=not is_journal(storage_url), baseline=baseline_trial(trials))


def load_study(name: str, *, root: str | Path, storage: str | None = None) -> optuna.Study:
    """Open an existing study by name.

    Raises:
        StudyError: no such study in that storage, or a name that leaves ``root``.
    """
    check_study_name(name)
    storage_url = storage or default_storage(state_dir(root, name))
    if storage is None and not (state_dir(root, name) / "study.db").exists():
        raise StudyError(f"no study {name!r} under {root} (run 'globaldarts search' first)")
    try:
        return optuna.load_study(study_name=name, storage=make_storage(storage_url))
    except KeyError:
        raise StudyError(f"no study {name!r} in {redact(storage_url, url=storage_url)}"
                         ) from None


def stored_config(name: str, *, root: str | Path, storage: str | None = None,
                  study: optuna.Study | None = None) -> StudyConfig:
    """The config a study was created with (settings added since at their defaults); an
    open ``study`` is read as it is.

    Raises:
        StudyError: no such study, or it holds no config.
    """
    study = study or load_study(name, root=root, storage=storage)
    if "config" not in study.user_attrs:
        raise StudyError(f"study {name!r} holds no config")
    return from_dict(with_defaults(study.user_attrs["config"]))


def trial_cells(name: str, *, trial: int | None = None, root: str | Path,
                storage: str | None = None, selected: bool = False
                ) -> list[tuple[FrozenTrial, str]]:
    """Trial number ``trial`` with its cell string; with ``selected``, the first trial
    that ended on the cell the selection stage chose; else a study's best complete trial,
    or in a two-objective study its whole Pareto front (the most accurate first).

    Raises:
        StudyError: no such study or trial, the trial found no cell, or (``selected``) no
            selection ran.
    """
    study = load_study(name, root=root, storage=storage)
    trials = study.get_trials(deepcopy=False)
    if selected:
        selection = StudySelection.of(study)
        if selection is None:
            raise StudyError(f"study {name!r} has no selected cell yet: run globaldarts "
                             "select on it")
        trial = selection.trials[0]
    if trial is not None:
        found = [t for t in trials if t.number == trial]
        if not found:
            raise StudyError(f"study {name!r} has no trial {trial}")
    elif len(study.directions) > 1:
        found = front_trials(trials)
    else:
        best = best_trial(trials)
        found = [] if best is None else [best]
    if not found:
        raise StudyError(f"study {name!r} has no complete trial yet")
    cells = [TrialRecord.of(t).cell for t in found]
    if not cells[0]:
        raise StudyError(f"trial {found[0].number} of study {name!r} ended without a cell "
                         f"({found[0].state.name.lower()})")
    return [(t, str(cell)) for t, cell in zip(found, cells, strict=True)]


def _versions() -> dict[str, str]:
    """The versions a study was created with: globaldarts (and its git commit when run
    from a checkout), torch, optuna and Python."""
    from pipeline import __version__

    versions = {"globaldarts": __version__, "torch": torch.__version__,
                "optuna": optuna.__version__, "python": platform.python_version()}
    commit = _git_commit(Path(__file__).resolve().parents[2])
    if commit:
        versions["globaldarts_commit"] = commit
    return versions


def _git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder`` (with ``+dirty`` if files differ from it), or
    None outside a git checkout."""
    if not (folder / ".git").exists():
        return None
    try:
        run = [["git", "-C", str(folder), *args] for args in (["rev-parse", "HEAD"],
                                                              ["status", "--porcelain"])]
        head, status = (subprocess.run(command, capture_output=True, text=True, timeout=10,
                                       check=True).stdout.strip() for command in run)
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if status else "")
