"""The studies a root or a storage holds: listed, forked into a new study file, deleted."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pipeline.config import StudyConfig, with_overrides, write
from pipeline.outer.budget import Budget, budget_spent
from pipeline.outer.picks import best_trial
from pipeline.outer.sampling import WARM_START_TRIALS
from pipeline.outer.storage import StudyError, make_storage
from pipeline.outer.study import load_study, state_dir, stored_config


@dataclass(frozen=True, slots=True)
class StudyListing:
    """One study at a glance."""

    name: str
    states: dict[str, int]
    best: float | None
    spent: int
    budget: int
    unit: str
    sampler: str
    space: str


def list_studies(*, root: str | Path, storage: str | None = None) -> list[StudyListing]:
    """The studies in ``storage``, or by default those whose database is under ``root``."""
    if storage is not None:
        names = optuna.study.get_all_study_names(storage=make_storage(storage))
    else:
        names = sorted(p.parent.name for p in Path(root).glob("*/study.db"))
    return [_listing(load_study(name, root=root, storage=storage)) for name in names]


def _listing(study: optuna.Study) -> StudyListing:
    trials = study.get_trials(deepcopy=False)
    states = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    config = stored_config(study.study_name, root="", storage=None, study=study)
    budget = Budget.of(config)
    best = best_trial(trials)
    return StudyListing(name=study.study_name, states={k: v for k, v in states.items() if v},
                        best=None if best is None else best.values[0],
                        spent=budget_spent(study, budget), budget=budget.total,
                        unit="epochs" if budget.epochs else "trials",
                        sampler=config.outer.sampler, space=config.space.name)


def fork_study(name: str, new: str, overrides: list[str], *, root: str | Path,
               storage: str | None = None) -> tuple[StudyConfig, Path, int]:
    """Write ``ROOT/NEW.toml``: study ``name``'s config under a new name, with ``overrides``
    and, for a CMA-ES study with ten complete trials or more, those trials as the new
    study's warm start (WS-CMA-ES). Returns the new config, its file and the trials it
    starts from (0: no warm start).

    Raises:
        StudyError: no such study.
        ConfigError: a bad override, or the file exists already.
    """
    old = stored_config(name, root=root, storage=storage)
    complete = load_study(name, root=root, storage=storage).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))
    warm = (old.outer.sampler == "cmaes" and not old.outer.separable
            and len(complete) >= WARM_START_TRIALS)
    config = with_overrides(dataclasses.replace(old, name=new),
                            [*([f"outer.warm_start={name}"] if warm else []), *overrides])
    path = Path(root) / f"{new}.toml"
    write(config, path)
    return config, path, len(complete) if config.outer.warm_start == name else 0


def delete_study(name: str, *, root: str | Path, storage: str | None = None) -> int:
    """Delete a study from its storage and its folder (database, checkpoints, artifacts);
    its study file stays. Returns the number of trials it held.

    Raises:
        StudyError: no such study.
    """
    study = load_study(name, root=root, storage=storage)
    trials = len(study.get_trials(deepcopy=False))
    if storage is not None:
        optuna.delete_study(study_name=name, storage=make_storage(storage))
    folder = state_dir(root, name)
    if folder.exists():
        shutil.rmtree(folder)
    return trials


__all__ = ["StudyError", "StudyListing", "delete_study", "fork_study", "list_studies"]
