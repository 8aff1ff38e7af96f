"""The selection stage (``globaldarts select``): a study's distinct cells judged by training,
in synchronous rungs of successive halving, as an Optuna study of their own (``NAME-select``,
in the study's storage, one trial per candidate), so that the dashboard shows it, a killed
worker's candidate is resumed from its checkpoint, and several workers share the work.

The rungs are synchronous: a rung's promotions are decided once every candidate in it has
reported, from the stored results alone (ties broken by the cell), so the selection does
not depend on the number of workers or on the order in which they finish. Optuna's
``SuccessiveHalvingPruner`` decides each trial as it reports, against the trials that
reported before it: for a fixed list of candidates that makes the outcome depend on the
order of arrival, which this stage must not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from pipeline.config import ConfigError, SelectConfig, StudyConfig, to_dict
from pipeline.outer.artifacts import JudgedCheckpoints, study_artifacts
from pipeline.outer.budget import first_searches
from pipeline.outer.claims import SearchClaim
from pipeline.outer.folder import judged_dir
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.storage import StudyError, default_storage, make_storage
from pipeline.outer.study import load_study, state_dir
from pipeline.search.judge import (
    CheckpointMirror,
    JudgeData,
    cell_key,
    judge_data,
    judge_seed,
    train_rung,
    zero_cost_score,
)
from pipeline.search.proxies import PROXIES
from pipeline.spaces import parse_genotype

logger = logging.getLogger(__name__)

SUFFIX = "-select"
POLL_S = 2.0  # how often a worker looks whether the others have finished a rung


@dataclass(frozen=True, slots=True)
class Candidate:
    """A distinct cell of a study: the complete trials that ended on it, the best trial
    objective among them, and its evaluation network's parameters (M)."""

    cell: str
    trials: tuple[int, ...]
    value: float
    params_m: float


def candidates(trials: Sequence[FrozenTrial], top: int | None) -> list[Candidate]:
    """The distinct cells of the complete trials, best trial objective first (ties by the
    cell), the first ``top`` of them (None: all)."""
    found: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        cell = TrialRecord.of(trial).cell
        if trial.state == TrialState.COMPLETE and trial.values and cell:
            found.setdefault(cell, []).append(trial)
    ranked = sorted((Candidate(cell=cell, trials=tuple(t.number for t in group),
                               value=max(t.values[0] for t in group),
                               params_m=float(TrialRecord.of(group[0]).eval_params_M or 0.0))
                     for cell, group in found.items()), key=lambda c: (-c.value, c.cell))
    return ranked if top is None else ranked[:top]


def selection_epochs(select: SelectConfig, candidates: int) -> int:
    """The epochs a selection among ``candidates`` trains (each repeat's): its rungs'
    candidates times their epochs, until one is left. It depends on the count alone."""
    total, entrants, reached = 0, candidates, 0
    for epochs in select.rungs:
        if entrants <= 1:
            break
        total += entrants * (epochs - reached)
        reached = epochs
        entrants = 1 if epochs == select.rungs[-1] else kept(entrants, select.reduction)
    return total * select.repeats


def kept(count: int, reduction: int) -> int:
    """How many of ``count`` candidates a rung promotes."""
    return max(1, math.ceil(count / reduction))


def dropped_count(count: int, share: float) -> int:
    """How many of ``count`` candidates a zero-cost score drops at ``share``: two are
    always left, as the score never chooses on its own."""
    return max(min(math.floor(count * share), count - 2), 0)


def ranking(results: Mapping[str, Mapping[str, float]], rank: Sequence[str]) -> list[str]:
    """The candidates (by cell) best first: by their average rank over the ``rank``
    criteria (``val`` and ``params`` higher first, ``train-loss`` lower first), ties by the
    cell. ``results`` holds each cell's ``val``, ``train-loss`` and ``params``."""
    cells = sorted(results)
    average = dict.fromkeys(cells, 0.0)
    for criterion in rank:
        sign = 1.0 if criterion == "train-loss" else -1.0
        values = {cell: sign * results[cell][criterion] for cell in cells}
        for cell, position in _ranks(values).items():
            average[cell] += position / len(rank)
    return sorted(cells, key=lambda cell: (average[cell], cell))


def _ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Each key's rank by value, lowest first, from 0; equal values share their mean rank."""
    ordered = sorted(values, key=lambda key: values[key])
    ranks: dict[str, float] = {}
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and values[ordered[end + 1]] == values[ordered[start]]:
            end += 1
        for key in ordered[start:end + 1]:
            ranks[key] = (start + end) / 2
        start = end + 1
    return ranks


def check_select(select: SelectConfig) -> None:
    """Refuse settings that the select stage's registries cannot run.

    Raises:
        ConfigError: an unknown zero-cost score.
    """
    if select.zero_cost and select.zero_cost not in PROXIES:
        raise ConfigError(f"select.zero_cost must be one of {', '.join(PROXIES)} (or left "
                          f"out), got {select.zero_cost!r}")


def run_selection(config: StudyConfig, *, root: str | Path, storage: str | None = None,
                  device: torch.device, restart: bool = False, progress: bool = False,
                  searches: int | None = None, artifacts: str | None = None
                  ) -> StudySelection:
    """Select among the cells of the study ``config`` names (those of its first
    ``searches`` searches, by ``first_searches``; None: all), by its ``[select]`` settings
    (see the module's doc), resuming a selection begun before; write the pick into the
    study (its ``selected`` attribute). ``restart`` drops a selection begun before and its
    trials (a training it made is taken up again where the same one is asked for: see
    ``judged_dir``). ``progress`` shows a bar per rung. The trainings are kept in the
    artifact store ``artifacts`` too (default: the study's ``outer.artifacts``, if any),
    where workers on other machines find them.

    Raises:
        StudyError: no such study, or one without a complete trial, or an artifact store
            that cannot be opened.
        ConfigError: an unknown zero-cost score, or ``searches`` below 1.
        DatasetError: the study's images leave none for the selection.
    """
    check_select(config.select)
    if searches is not None and searches < 1:
        raise ConfigError(f"--first {searches}: it must be >= 1")
    study = load_study(config.name, root=root, storage=storage)
    trials = study.get_trials(deepcopy=False)
    found = candidates(trials if searches is None else first_searches(trials, searches),
                       config.select.top)
    if not found:
        raise StudyError(f"study {config.name!r} has no complete trial with a cell to "
                         "select from")
    data = judge_data(config, device) if len(found) > 1 else None  # before anything is made
    url = storage or default_storage(state_dir(root, config.name))
    name = selection_name(config.name, searches)
    if restart:
        _forget(name, make_storage(url))
    store = study_artifacts(study, artifacts)
    stage = _Stage(config, found, make_storage(url, heartbeat_interval_s=None), name=name,
                   root=Path(root), progress=progress,
                   mirror=None if store is None else JudgedCheckpoints(store))
    selection = dataclasses.replace(stage.run(data), searches=searches)
    selection.store(study)
    return selection


def selection_name(study: str, searches: int | None) -> str:
    """The name of the selection study among the cells of the first ``searches`` searches
    of ``study`` (None: all): ``NAME-select``, ``NAME-select-first-5``."""
    return study + SUFFIX + ("" if searches is None else f"-first-{searches}")


class _Stage:
    """One worker's part in a selection: the candidates' trials made once, then rung by
    rung, the candidates it can claim trained, and each rung decided."""

    def __init__(self, config: StudyConfig, found: list[Candidate],
                 storage: optuna.storages.BaseStorage, *, name: str, root: Path,
                 progress: bool = False, mirror: CheckpointMirror | None = None) -> None:
        self.config, self.select = config, config.select
        self.found = {c.cell: c for c in found}
        self.root, self.progress, self.mirror = root, progress, mirror
        self.study = optuna.create_study(study_name=name, storage=storage,
                                         load_if_exists=True, direction="maximize",
                                         sampler=optuna.samplers.RandomSampler(seed=0))
        self.seeds = [judge_seed(config, k) for k in range(self.select.repeats)]

    def run(self, data: JudgeData | None) -> StudySelection:
        """The selection, made or taken up: rung by rung, the candidates trained and the
        best ``1 / reduction`` promoted, the best one after the last rung; it ends early
        where one is left."""
        with self._claim("setup", wait=True):
            trials = self._trials()
            entrants = self._zero_cost_survivors(trials, data)
        for epochs in self.select.rungs:  # each rung decided again from what is stored
            if len(entrants) <= 1:
                break
            assert data is not None
            self._train(entrants, epochs, data)
            last = epochs == self.select.rungs[-1]
            entrants = self._decide(entrants, epochs, keep=1 if last else kept(
                len(entrants), self.select.reduction))
        return self._finish(entrants, candidates=len(trials))

    def _trials(self) -> dict[str, int]:
        """Each candidate's trial number, its trial made if it has none (one trial per
        candidate, its cell as its parameter).

        Raises:
            StudyError: the selection was begun over other candidates or settings.
        """
        cells = sorted(self.found)
        begun = {"candidates": cells, "select": to_dict(self.config)["select"]}
        if self.study.user_attrs.get("begun", begun) != begun:
            raise StudyError(f"selection {self.study.study_name!r} was begun over other "
                             "candidates or [select] settings; pass --restart to begin anew")
        self.study.set_user_attr("begun", begun)
        made = {TrialRecord.of(t).cell: t.number for t in self.study.get_trials(deepcopy=False)}
        for cell in cells:
            if cell not in made:
                self.study.enqueue_trial({"cell": cell})
                trial = self.study.ask({"cell": CategoricalDistribution(cells)})
                TrialRecord(cell=cell, eval_params_M=self.found[cell].params_m).store(trial)
                trial.set_user_attr("study_trials", list(self.found[cell].trials))
                made[cell] = trial.number
        return {cell: made[cell] for cell in cells}

    def _zero_cost_survivors(self, trials: dict[str, int], data: JudgeData | None
                             ) -> dict[str, int]:
        """The candidates that enter the first rung: all but the lowest ``zero_cost_drop``
        share by their zero-cost score, each scored once (two are always left: the score
        never chooses on its own), those dropped pruned."""
        if not self.select.zero_cost or data is None:
            return trials
        name, states = self.select.zero_cost, self._states()
        scores = {}
        for cell, number in trials.items():
            scores[cell] = states[number].user_attrs.get(name)
            if scores[cell] is None:
                scores[cell] = zero_cost_score(name, parse_genotype(cell), data, self.select,
                                               seed=self.seeds[0])
                optuna.trial.Trial(self.study, states[number]._trial_id).set_user_attr(
                    name, scores[cell])
        drop = dropped_count(len(trials), self.select.zero_cost_drop)
        dropped = sorted(trials, key=lambda cell: (scores[cell], cell))[:drop]
        for cell in dropped:
            self._tell(trials[cell], TrialState.PRUNED)
        return {cell: n for cell, n in trials.items() if cell not in dropped}

    def _states(self) -> dict[int, FrozenTrial]:
        return {t.number: t for t in self.study.get_trials(deepcopy=False)}

    def _train(self, alive: Mapping[str, int], epochs: int, data: JudgeData) -> None:
        """Train every candidate of the rung that no one has: those this worker can claim,
        then, while others train theirs, those whose worker died."""
        while True:
            states = self._states()
            missing = [cell for cell, number in alive.items()
                       if epochs not in states[number].intermediate_values]
            if not missing:
                return
            trained = False
            for cell in tqdm(missing, desc=f"selection, rung of {epochs} epochs",
                             unit="cell", leave=False, disable=not self.progress):
                with self._claim(f"{cell_key(cell)}-{epochs}", wait=False) as held:
                    if held and epochs not in self._states()[alive[cell]].intermediate_values:
                        self._train_one(cell, alive[cell], epochs, data)
                        trained = True
            if not trained:
                time.sleep(POLL_S)

    def _train_one(self, cell: str, number: int, epochs: int, data: JudgeData) -> None:
        logger.info("selection: %s to epoch %d", cell, epochs)
        result = train_rung(parse_genotype(cell), data, self.select, epochs=epochs,
                            seeds=self.seeds, folder=judged_dir(self.root),
                            mirror=self.mirror)
        trial = optuna.trial.Trial(self.study, self._states()[number]._trial_id)
        trial.set_user_attr(f"train_loss_sum_{epochs}", result.train_loss_sum)
        trial.report(result.val_acc, epochs)

    def _decide(self, alive: Mapping[str, int], epochs: int, *, keep: int) -> dict[str, int]:
        """The ``keep`` candidates of the rung that rank first; the others pruned."""
        states = self._states()
        results = {cell: {"val": states[n].intermediate_values[epochs],
                          "train-loss": states[n].user_attrs[f"train_loss_sum_{epochs}"],
                          "params": self.found[cell].params_m} for cell, n in alive.items()}
        promoted = ranking(results, self.select.rank)[:keep]
        for cell, number in alive.items():
            if cell not in promoted:
                self._tell(number, TrialState.PRUNED)
        return {cell: alive[cell] for cell in promoted}

    def _finish(self, winner: Mapping[str, int], *, candidates: int) -> StudySelection:
        """The candidate left, its trial complete: its value is its last rung's validation
        accuracy (a lone candidate, never trained, keeps its trial objective's)."""
        states = self._states()
        ((cell, number),) = winner.items()
        values = states[number].intermediate_values
        self._tell(number, TrialState.COMPLETE,
                   values[max(values)] if values else self.found[cell].value)
        epochs = sum(max(t.intermediate_values, default=0) for t in states.values())
        return StudySelection(cell=cell, trials=self.found[cell].trials,
                              judge=judge_name(self.select), candidates=candidates,
                              epochs=epochs * len(self.seeds))

    def _tell(self, number: int, state: TrialState, value: float | None = None) -> None:
        """End a candidate's trial; one another worker ended first stays as it ended."""
        try:
            self.study.tell(number, value if state == TrialState.COMPLETE else None,
                            state=state)
        except (ValueError, RuntimeError) as error:
            logger.debug("trial %d was ended by another worker: %s", number, error)

    def _claim(self, what: str, *, wait: bool) -> _Held:
        return _Held(SearchClaim(self.root, f"{self.study.study_name}-{what}",
                                 wait=wait))


class _Held:
    """A claim as a context: whether it is held, released on leaving."""

    def __init__(self, claim: SearchClaim) -> None:
        self.claim = claim

    def __enter__(self) -> bool:
        return self.claim.held

    def __exit__(self, *exc: object) -> None:
        self.claim.release()


def _forget(name: str, storage: optuna.storages.BaseStorage) -> None:
    """Delete the selection study ``name``, if there is one."""
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)


def judge_name(select: SelectConfig) -> str:
    """The judge in a few words: its rank rule, rungs and reduction, zero-cost drop."""
    text = f"{'+'.join(select.rank)} at rungs {'/'.join(map(str, select.rungs))}"
    if len(select.rungs) > 1:
        text += f" (1/{select.reduction} kept)"
    if select.zero_cost:
        text += f", {select.zero_cost} drops {select.zero_cost_drop:.0%}"
    return text

