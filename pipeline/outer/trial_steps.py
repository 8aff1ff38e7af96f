"""What each trial of a study does, stage by stage: ``begin`` (its identity and start
point, its search fresh or resumed), ``after_epoch`` (checkpoint, report, perhaps prune)
and ``end`` (its result recorded). ``pipeline.outer.runner`` drives them, one trial or a
population at a time."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from pipeline.checkpoint import append_metrics, save_checkpoint, write_metrics
from pipeline.config import JUDGED_OBJECTIVES, StudyConfig
from pipeline.outer.artifacts import (
    ArtifactStore,
    JudgedCheckpoints,
    fetch_checkpoint,
    local_artifacts,
    upload_checkpoint,
    upload_results,
)
from pipeline.outer.budget import Budget, surplus_reason
from pipeline.outer.claims import SearchClaim
from pipeline.outer.cores import process_start, worker_id
from pipeline.outer.folder import judged_dir
from pipeline.outer.record import TrialRecord
from pipeline.outer.resume import own_files, resume_search
from pipeline.outer.sampling import SAMPLERS
from pipeline.outer.trials import (
    CHECKPOINT,
    METRICS,
    SurplusTrialError,
    original_number,
    search_key,
    trial_config,
    trial_key,
    trial_seed,
)
from pipeline.search import DartsSearch, EpochRecord, SearchData, StartSpace, build_search
from pipeline.search.build import search_epochs
from pipeline.search.judge import judge_data, judged_objective, trained_accuracy
from pipeline.spaces import get_space, parse_genotype


class Publisher(Protocol):
    """Where trials and studies are also shown as they finish (optuna-dashboard's artifacts,
    notes and graphs, in ``pipeline.results.dashboard``)."""

    def publish_trial(self, trial: optuna.Trial, history: Sequence[Mapping[str, Any]],
                      files: Path, record: TrialRecord, *, edges: Sequence[str],
                      ops: Sequence[str], store: ArtifactStore) -> None: ...

    def publish_study(self, study: optuna.Study) -> None: ...


@dataclass(slots=True)
class TrialRun:
    """A trial whose search is set up: fresh, or resumed from its checkpoint; ``claim``
    is its lock on the search while the search runs."""

    trial: optuna.Trial
    search: DartsSearch
    files: Path
    meta: dict[str, Any]
    claim: SearchClaim


class TrialSteps:
    """The stages of each trial of the study ``config``, whose folder is ``state_dir``
    (trial files go to ``state_dir/trials/<key>/``), on the search split ``data`` (already
    on ``device``), over the start vector ``start_space``; ``publisher`` also shows each
    finished trial. With a shared ``artifacts`` store, the trial files go there too
    (``pipeline.outer.artifacts``), and the folder is a cache."""

    def __init__(self, *, config: StudyConfig, state_dir: Path, data: SearchData,
                 start_space: StartSpace, device: torch.device,
                 publisher: Publisher | None = None,
                 artifacts: ArtifactStore | None = None) -> None:
        self.judged = (judge_data(config, device)  # for an objective the judge measures
                       if config.search.accuracy_objective in JUDGED_OBJECTIVES else None)
        self.config, self.state_dir, self.data = config, state_dir, data
        self.start_space, self.device = start_space, device
        self.publisher, self.artifacts = publisher, artifacts

    def begin(self, trial: optuna.Trial, *, wait: bool = True) -> TrialRun:
        """Set a trial up: its seeds and start point, and its search, fresh or resumed from
        its checkpoint (the epochs it already ran are reported again). The trial claims
        its search; with ``wait``, a search that another study is running is waited for
        and then resumed from its checkpoint, else it runs beside it.

        Raises:
            SurplusTrialError: the trial must not run (see ``surplus_reason``).
            optuna.TrialPruned: this study's pruner stops the search taken over from
                another study at one of its epochs (its result there is recorded).
        """
        if (reason := surplus_reason(trial, Budget.of(self.config))) is not None:
            TrialRecord(fail_reason=reason).store(trial)
            raise SurplusTrialError(reason)
        number = original_number(trial)
        seed = trial_seed(self.config.seed, number)
        init_seed = seed if SAMPLERS[self.config.outer.sampler].fixed_start else self.config.seed
        identity(number, seed, init_seed, self.device, trial=trial.number).store(trial)
        x = {spec.name: trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)
             for spec in self.start_space.specs}
        meta = {"config": trial_config(self.config), "x": x, "seed": seed,
                "init_seed": init_seed}
        files, key = trial_folder(self.state_dir, self.config.name, number), search_key(meta)
        (files / f"search-{key}.id").touch()  # how other studies find it
        claim = SearchClaim(self.state_dir.parent, key, wait=wait)
        try:
            if self.artifacts is not None:  # a retry on another machine resumes here
                fetch_checkpoint(self.artifacts, trial, files / CHECKPOINT, meta=meta,
                                 keys=DartsSearch.STATE_KEYS, epochs=search_epochs(self.config))
            search, source = resume_search(
                lambda: build_search(self.config, self.data, self.start_space.decode(x),
                                     seed=seed, init_seed=init_seed, device=self.device),
                files, meta, key, state_dir=self.state_dir, study=self.config.name)
            run = TrialRun(trial=trial, search=search, files=files, meta=meta, claim=claim)
            taken_over = source != files
            TrialRecord(resumed_from_epoch=search.epoch, same_search_as=(
                f"{source.parents[1].name}/{source.name}" if taken_over else None)).store(trial)
            self._replay(run, taken_over=taken_over)
        except BaseException:  # a pruned replay, or another worker ended the trial meanwhile
            claim.release()
            raise
        return run

    def _replay(self, run: TrialRun, *, taken_over: bool) -> None:
        """Report the epochs the search resumed with. Another study's go to this study's
        pruner as if they ran here (this trial's own were put to it when they ran); where
        the pruner stops such a search, its result there is recorded.

        Raises:
            optuna.TrialPruned: the pruner stops a search taken over from another study.
        """
        for count, record in enumerate(run.search.history, start=1):
            if self._report(run.trial, record) and taken_over and run.trial.should_prune():
                run.claim.release()
                with own_files(self.state_dir, self.config.name):
                    write_metrics(run.files / METRICS,
                                  (r.to_dict() for r in run.search.history[:count]),
                                  make_folder=False)
                self._record(run, epochs=count)
                raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

    def after_epoch(self, run: TrialRun, record: EpochRecord) -> None:
        """Checkpoint a finished epoch and report it.

        Raises:
            optuna.TrialPruned: the pruner stopped the trial (its result is recorded).
            StudyDeletedError: the study's folder is gone: the study was deleted.
        """
        with own_files(self.state_dir, self.config.name):
            save_checkpoint(run.files / CHECKPOINT, run.search.state_dict(), meta=run.meta,
                            make_folder=False)
            append_metrics(run.files / METRICS, record.to_dict())
        if self.artifacts is not None:
            upload_checkpoint(self.artifacts, run.trial, run.files / CHECKPOINT, record.epoch)
        if self._report(run.trial, record) and run.trial.should_prune():
            self._record(run)
            raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

    def end(self, run: TrialRun) -> float | tuple[float, float]:
        """Record a finished search; its value, or (value, parameters) with two
        objectives. The ``trained`` objective and the judged ones train (or score) the
        derived cell here."""
        last = run.search.history[-1]
        value, trained, judged = self._value(last), None, None
        started = time.perf_counter()
        if self.config.search.accuracy_objective == "trained":
            value = trained = trained_accuracy(
                self.config, self.data, parse_genotype(last.genotype), seed=run.meta["seed"])
        elif self.judged is not None:
            mirror = None if self.artifacts is None else JudgedCheckpoints(self.artifacts)
            value = judged = judged_objective(self.config, self.judged,
                                              parse_genotype(last.genotype),
                                              folder=judged_dir(self.state_dir.parent),
                                              mirror=mirror)
        seconds = None if trained is None and judged is None else time.perf_counter() - started
        params_m = self._record(run, trained_acc=trained, judged=judged, train_time_s=seconds)
        return (value, params_m) if self.config.search.multi_objective else value

    def _report(self, trial: optuna.Trial, record: EpochRecord) -> bool:
        """Report an epoch's value to the pruner; a two-objective study has none, since
        Optuna cannot prune one. Returns whether it reported."""
        if self.config.search.multi_objective:
            return False
        trial.report(self._value(record), record.epoch)
        return True

    def _value(self, record: EpochRecord) -> float:
        """An epoch's accuracy as the pruner sees it."""
        if self.config.search.accuracy_objective == "discrete":
            assert record.discrete_acc is not None
            return record.discrete_acc
        return record.valid_acc

    def _record(self, run: TrialRun, *, trained_acc: float | None = None,
                judged: float | None = None, train_time_s: float | None = None,
                epochs: int | None = None) -> float:
        """Store the result after the search's first ``epochs`` (default: all it ran) in
        the trial's record (and with the publisher); returns the cell's
        evaluation-network parameters in millions."""
        history = run.search.history[:epochs]
        record = dataclasses.replace(result(
            history, space=self.config.space.name, data=self.data,
            epochs_run=run.search.epoch if epochs is None else epochs,
            trained_acc=trained_acc, train_time_s=train_time_s), judged=judged)
        record.store(run.trial)
        if self.artifacts is not None:
            upload_results(self.artifacts, run.trial, run.files, str(record.cell))
        if self.publisher is not None:
            self.publisher.publish_trial(run.trial, [r.to_dict() for r in history], run.files,
                                         record, edges=self.start_space.edges,
                                         ops=self.start_space.ops, store=self.artifacts
                                         or local_artifacts(self.state_dir))
        return float(record.eval_params_M or 0.0)


def trial_folder(state_dir: Path, study: str, number: int) -> Path:
    """The folder of trial ``number`` of the study in ``state_dir``, made if need be (not
    with parents: a deleted study's is not made anew)."""
    files = state_dir / "trials" / trial_key(number)
    with own_files(state_dir, study):
        files.parent.mkdir(exist_ok=True)
        files.mkdir(exist_ok=True)
    return files


def identity(number: int, seed: int, init_seed: int, device: torch.device, *,
             trial: int) -> TrialRecord:
    """Who trial ``trial`` (the attempt at original number ``number``) is, where it runs,
    and on how many CPU threads, which set its rounding."""
    return TrialRecord(original_number=number, trial_key=trial_key(number), seed=seed,
                       init_seed=init_seed, device=str(device),
                       threads=torch.get_num_threads(), worker=worker_id(),
                       worker_started=process_start(os.getpid()) or "", worker_trial=trial)


def result(history: Sequence[EpochRecord], *, space: str, data: SearchData, epochs_run: int,
           trained_acc: float | None, train_time_s: float | None) -> TrialRecord:
    """A search's result after the epochs of ``history``: its last cell, what was measured
    of it, its evaluation network's parameters (M) and the time it took."""
    last = history[-1]
    genotype = parse_genotype(last.genotype)
    params = get_space(space).eval_params(genotype, num_classes=data.num_classes,
                                          in_channels=data.in_channels)
    return TrialRecord(
        cell=last.genotype, supernet_acc=last.valid_acc, discrete_acc=last.discrete_acc,
        trained_acc=trained_acc, train_time_s=train_time_s, eval_params_M=params / 1e6,
        alpha_softmax=last.alpha_softmax, epochs_run=epochs_run,
        cell_history=[r.genotype for r in history],
        wall_time_s=sum(r.seconds for r in history)).with_shares(genotype.op_shares())
