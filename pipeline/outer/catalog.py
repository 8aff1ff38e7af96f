"""The studies a root or a storage holds: listed, forked into a new study file, deleted."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import ConfigError, StudyConfig, load, with_overrides, write
from pipeline.outer.artifacts import remove_study_artifacts, study_artifacts
from pipeline.outer.budget import Budget, budget_spent
from pipeline.outer.cores import live_registrations, local_worker, worker_lives
from pipeline.outer.folder import belongs
from pipeline.outer.picks import best_trial
from pipeline.outer.record import TrialRecord
from pipeline.outer.sampling import SAMPLERS, WARM_START_TRIALS, check_outer
from pipeline.outer.storage import StudyError, default_storage, make_storage
from pipeline.outer.study import load_study, state_dir, stored_config
from pipeline.search import build_start_space


@dataclass(frozen=True, slots=True)
class StudyListing:
    """One study at a glance; ``problem`` says why an entry could not be read (then the
    other fields are empty)."""

    name: str
    states: dict[str, int] = dataclasses.field(default_factory=dict)
    best: float | None = None
    spent: int = 0
    budget: int = 0
    unit: str = ""
    sampler: str = ""
    space: str = ""
    problem: str | None = None


def list_studies(*, root: str | Path, storage: str | None = None) -> list[StudyListing]:
    """The studies in ``storage``, or by default those whose database is under ``root``.
    An entry that cannot be read (a study globaldarts did not make, a copy of a study's
    folder, a damaged database) is listed with its problem; the others are listed all the
    same.

    Raises:
        StudyError: ``storage`` itself cannot be opened.
    """
    if storage is not None:
        names = optuna.study.get_all_study_names(storage=make_storage(storage))
    else:
        names = sorted(p.parent.name for p in Path(root).glob("*/study.db"))
    return [_listing(name, root=root, storage=storage) for name in names]


def _listing(name: str, *, root: str | Path, storage: str | None) -> StudyListing:
    try:
        study = load_study(name, root=root, storage=storage)
        trials = study.get_trials(deepcopy=False)
        config = stored_config(name, root="", storage=None, study=study)
    except (StudyError, ConfigError) as error:
        return StudyListing(name=name, problem=str(error))
    except (KeyError, ValueError, TypeError) as error:  # a config of another shape
        return StudyListing(name=name, problem=f"study {name!r} holds a config globaldarts "
                            f"cannot read ({type(error).__name__}: {error})")
    states = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    budget = Budget.of(config)
    best = best_trial(trials)
    return StudyListing(name=name, states={k: v for k, v in states.items() if v},
                        best=None if best is None else best.values[0],
                        spent=budget_spent(study, budget), budget=budget.total,
                        unit="epochs" if budget.epochs else "trials",
                        sampler=config.outer.sampler, space=config.space.name)


@dataclass(frozen=True, slots=True)
class Fork:
    """A new study file written from another study: its config and path, the trials it
    warm-starts from (0: none) and, without a warm start, why not."""

    config: StudyConfig
    path: Path
    warm: int
    why_not: str = ""


def fork_study(name: str, new: str, overrides: list[str], *, root: str | Path,
               storage: str | None = None) -> Fork:
    """Write ``ROOT/NEW.toml``: study ``name``'s config under a new name, with ``overrides``
    and, when the new study runs CMA-ES (full covariance) and ``name`` has ten complete
    trials or more over the new study's start vector, those trials as its warm start
    (WS-CMA-ES).

    Raises:
        StudyError: no such study.
        ConfigError: a bad override, or the file exists already.
    """
    old = stored_config(name, root=root, storage=storage)
    complete = load_study(name, root=root, storage=storage).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))
    told = any(o.partition("=")[0].strip() == "outer.warm_start" for o in overrides)
    config = with_overrides(dataclasses.replace(old, name=new),
                            overrides if told else [*overrides, "outer.warm_start="])
    check_outer(config)
    if told:  # as the user set it
        why_not = "" if config.outer.warm_start == name else "outer.warm_start is set by --set"
    else:
        why_not = _why_no_warm_start(config, name, complete)
        if not why_not:
            config = with_overrides(config, [f"outer.warm_start={name}"])
    path = Path(root) / f"{new}.toml"
    write(config, path)
    return Fork(config=config, path=path, warm=0 if why_not else len(complete),
                why_not=why_not)


def _why_no_warm_start(config: StudyConfig, name: str, complete: list[FrozenTrial]) -> str:
    """Why study ``name``'s complete trials cannot warm-start the study ``config``; "" if
    they can."""
    if not SAMPLERS[config.outer.sampler].warm_starts or config.outer.separable:
        return "the new study does not run CMA-ES with a full covariance"
    if len(complete) < WARM_START_TRIALS:
        return f"it needs {WARM_START_TRIALS} complete trials; {name} has {len(complete)}"
    names = {spec.name for spec in build_start_space(config, steps_per_epoch=1).specs}
    fitting = sum(set(t.params) == names for t in complete)
    if fitting < WARM_START_TRIALS:
        return (f"{name}'s trials start from another start vector ({len(complete[0].params)} "
                f"numbers; the new study's has {len(names)}), so none of them fits")
    return ""


@dataclass(frozen=True, slots=True)
class Deletion:
    """What ``delete_study`` did: the trials the study held, the folder it removed (None:
    it had none of its own), and what the user should know (forks left without their
    warm start)."""

    trials: int
    folder: Path | None
    notes: list[str]


def delete_study(name: str, *, root: str | Path, storage: str | None = None,
                 artifacts: str | None = None, force: bool = False) -> Deletion:
    """Delete a study from its storage, its state folder (checkpoints, metrics,
    artifacts) if the folder is its own, and its files in the artifact store its workers
    shared (``artifacts``, else the one its config names); its study file stays. A study
    that a live worker holds is refused unless ``force``.

    Raises:
        StudyError: no such study, its artifact store cannot be opened, or a live worker
            holds it and ``force`` is not given.
    """
    study = load_study(name, root=root, storage=storage)
    storage_url = storage or default_storage(state_dir(root, name))
    store = study_artifacts(study, artifacts)
    if not force:
        holders = live_holders(study, root=root)
        if holders:
            raise StudyError(f"study {name!r} is being run by {', '.join(holders)}: stop it "
                             "first, or add --force to delete it all the same")
    trials = len(study.get_trials(deepcopy=False))
    folder = state_dir(root, name)
    own = folder.exists() and belongs(folder, study, storage_url)
    notes = _forks_of(name, root=root)
    if store is not None:
        removed = remove_study_artifacts(store, study, make_storage(storage_url))
        notes.append(f"{removed} files removed from its artifact store")
    if storage is not None:
        optuna.delete_study(study_name=name, storage=make_storage(storage))
    if own:
        shutil.rmtree(folder)
    elif folder.exists():
        notes.append(f"{folder} is kept: it holds another study's files")
    return Deletion(trials=trials, folder=folder if own else None, notes=notes)


def live_holders(study: optuna.Study, *, root: str | Path) -> list[str]:
    """The workers that hold ``study`` now, as far as this machine can tell: this machine's
    live workers registered for it under ``root``, and the workers of its running trials
    (on this machine, if their process lives; on another, always: only they can tell)."""
    holders = {worker for worker, name in live_registrations(root).items()
               if name == study.study_name}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.of(trial)
        if not record.own_worker(trial.number):
            holders.add(f"the worker setting up trial {trial.number}")
        elif local_worker(record) is None:
            holders.add(f"{record.worker or 'an unknown worker'} (trial {trial.number})")
        elif worker_lives(record):
            holders.add(str(record.worker))
    return sorted(holders)


def _forks_of(name: str, *, root: str | Path) -> list[str]:
    """Notes on the study files under ``root`` that warm-start from study ``name``."""
    notes = []
    for path in sorted(Path(root).glob("*.toml")):
        try:
            config = load(path)
        except ConfigError:
            continue
        if config.outer.warm_start == name:
            notes.append(f"{path} warm-starts from {name}: a study of it that has started "
                         "keeps a copy of those trials; one that has not cannot start")
    return notes


__all__ = ["Deletion", "Fork", "StudyError", "StudyListing", "delete_study", "fork_study",
           "list_studies", "live_holders"]
