"""The outer loop: an Optuna study of start points, its storage, sampler and pruner."""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import StudyConfig, diff, to_dict, without_budget
from pipeline.objective import (
    INTERRUPTED,
    TRIAL_FAILURES,
    Objective,
    build_start_space,
    original_number,
    prepare_data,
)
from pipeline.start import StartSpace

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60
_PASSWORD_IN_URL = re.compile(r"(//[^:/@]*:)[^@/]*@")


class StudyError(RuntimeError):
    """A study that cannot be opened as asked (bad storage, changed config, unknown name)."""


@dataclass(frozen=True, slots=True)
class StudySummary:
    """Where a study stands after a run."""

    name: str
    storage: str
    state_dir: Path
    finished: int
    budget: int
    best: FrozenTrial | None


def state_dir(root: str | Path, name: str) -> Path:
    """The folder of a study's state: ``root/name`` (the name is validated by the config)."""
    return Path(root) / name


def default_storage(directory: Path) -> str:
    """The study's SQLite database inside its folder."""
    return f"sqlite:///{directory / 'study.db'}"


def redact(text: str) -> str:
    """Hide the password of any storage URL inside ``text``."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def make_storage(url: str, *, max_retries: int = 3, heartbeat_interval_s: int = 30,
                 grace_period_s: int = 120) -> optuna.storages.BaseStorage:
    """Open any Optuna storage URL; a path ending in ``.log`` or ``.journal`` is a journal file.

    A database storage keeps a heartbeat per running trial: a trial whose worker died
    (no beat for ``grace_period_s``) is failed and retried, up to ``max_retries`` times,
    with its start point and seed, from its checkpoint.

    Raises:
        StudyError: the storage cannot be reached or understood; the password is hidden.
    """
    try:
        if url.endswith((".log", ".journal")) and "://" not in url:
            backend = JournalFileBackend(url)
            return optuna.storages.JournalStorage(backend)
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval_s,
            grace_period=grace_period_s, heartbeat_stale_trial_callback=retry)
    except Exception as error:  # SQLAlchemy and drivers raise many kinds
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StudyError(f"cannot open storage {redact(url)}: {redact(message)}") from None


def build_sampler(config: StudyConfig, start_space: StartSpace) -> optuna.samplers.BaseSampler:
    """The outer sampler named by ``outer.sampler``."""
    outer = config.outer
    if outer.sampler == "cmaes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=config.seed, popsize=outer.popsize or None,
                use_separable_cma=outer.separable,
                consider_pruned_trials=outer.pruner != "none")
    if outer.sampler == "darts":
        return optuna.samplers.PartialFixedSampler(
            fixed_params=start_space.centre(),
            base_sampler=optuna.samplers.RandomSampler(seed=config.seed))
    if outer.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed)


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


def open_study(config: StudyConfig, storage: str | optuna.storages.BaseStorage,
               start_space: StartSpace, *, force: bool = False) -> optuna.Study:
    """Create the study, or load it and check that its config has not changed.

    Raises:
        StudyError: the stored config differs (unless ``force``) or storage fails.
    """
    if isinstance(storage, str):
        storage = make_storage(storage)
    study = optuna.create_study(
        storage=storage, study_name=config.name, direction="maximize", load_if_exists=True,
        sampler=build_sampler(config, start_space), pruner=build_pruner(config))
    stored = study.user_attrs.get("config")
    current = to_dict(config)
    if stored is None:
        study.set_user_attr("config", current)
        study.set_user_attr("package_version", _package_version())
        if config.outer.start_at_centre and config.outer.sampler != "darts":
            study.enqueue_trial(start_space.centre())
        return study
    changed = diff(without_budget(stored), without_budget(current))
    if changed and not force:
        raise StudyError(f"study {config.name!r} was created with another config "
                         f"({'; '.join(changed)}); pass --force to continue anyway")
    if changed:
        logger.warning("continuing study %s with a changed config: %s", config.name,
                       "; ".join(changed))
    return study


def budget_used(study: optuna.Study) -> int:
    """Trials that count against the budget: finished ones, and failures the search
    decided (a diverged search); an interrupted trial is resumed, so it does not count."""
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            count += 1
        elif trial.state == TrialState.FAIL:
            reason = trial.user_attrs.get("fail_reason")
            count += reason is not None and reason != INTERRUPTED
    return count


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue a retry of each interrupted trial not yet retried; it resumes from its
    checkpoint with the same x and seed. Returns the original trial numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    queued = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial in trials:
            if (trial.state == TrialState.FAIL and trial.number not in retried
                    and trial.user_attrs.get("fail_reason") == INTERRUPTED):
                retry()(study, trial)
                queued.append(original_number(trial))
    return queued


def run_study(config: StudyConfig, *, root: str | Path, storage: str | None = None,
              device: torch.device, force: bool = False, progress: bool = False
              ) -> StudySummary:
    """Run or resume a study until ``outer.n_trials`` trials count against its budget."""
    directory = state_dir(root, config.name)
    storage_url = storage or default_storage(directory)
    data = prepare_data(config, device)  # before the storage, which may create files
    outer = config.outer
    study_storage = make_storage(storage_url, max_retries=outer.max_retries,
                                 heartbeat_interval_s=outer.heartbeat_interval,
                                 grace_period_s=outer.grace_period)
    start_space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    study = open_study(config, study_storage, start_space, force=force)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.resolved.json").write_text(json.dumps(to_dict(config), indent=2))
    resumed = requeue_interrupted(study)
    if resumed:
        logger.info("resuming interrupted trials %s", resumed)
    objective = Objective(config=config, state_dir=directory, data=data,
                          start_space=start_space, device=device, progress=progress)
    remaining = config.outer.n_trials - budget_used(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=TRIAL_FAILURES,
                       callbacks=[_stop_at_budget(config.outer.n_trials)],
                       show_progress_bar=progress, gc_after_trial=False)
    return summarize(study, storage_url, directory, config.outer.n_trials)


def _stop_at_budget(budget: int) -> Any:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if budget_used(study) >= budget:
            study.stop()

    return callback


def summarize(study: optuna.Study, storage_url: str, directory: Path, budget: int
              ) -> StudySummary:
    """Collect where a study stands: trials finished and the best complete one."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value or 0.0) if complete else None
    return StudySummary(name=study.study_name, storage=redact(storage_url),
                        state_dir=directory, finished=budget_used(study), budget=budget,
                        best=best)


def load_study(name: str, *, root: str | Path, storage: str | None = None) -> optuna.Study:
    """Open an existing study by name.

    Raises:
        StudyError: no such study in that storage.
    """
    storage_url = storage or default_storage(state_dir(root, name))
    if storage is None and not (state_dir(root, name) / "study.db").exists():
        raise StudyError(f"no study {name!r} under {root} (run 'globaldarts search' first)")
    try:
        return optuna.load_study(study_name=name, storage=make_storage(storage_url))
    except KeyError:
        raise StudyError(f"no study {name!r} in {redact(storage_url)}") from None


def _package_version() -> str:
    from pipeline import __version__

    return __version__
