"""One Optuna trial: suggest x, set up the inner DARTS search from it (fresh or resumed),
checkpoint and report every epoch, and record the result."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from pipeline.checkpoint import (
    CheckpointError,
    append_metrics,
    load_checkpoint,
    save_checkpoint,
    write_metrics,
)
from pipeline.config import StudyConfig
from pipeline.outer.budget import Budget, is_surplus
from pipeline.outer.claims import SearchClaim
from pipeline.outer.cores import process_start, worker_id
from pipeline.outer.storage import StudyDeletedError
from pipeline.outer.trials import (
    SURPLUS,
    SurplusTrialError,
    original_number,
    same_searches,
    search_key,
    trial_config,
    trial_key,
    trial_seed,
    without_study,
)
from pipeline.search import (
    DartsSearch,
    EpochRecord,
    SearchData,
    StartPoint,
    StartSpace,
    build_search,
)
from pipeline.search.training import short_training_accuracy
from pipeline.spaces import TrainSettings, get_space, parse_genotype

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where trials and studies are also shown as they finish (optuna-dashboard's artifacts,
    notes and graphs, in ``pipeline.results.dashboard``)."""

    def publish_trial(self, trial: optuna.Trial, history: Sequence[Mapping[str, Any]],
                      files: Path, attrs: Mapping[str, Any], *, edges: Sequence[str],
                      ops: Sequence[str]) -> None: ...

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


# long: a trial's stages (begin, after_epoch, end) share its study's config, data and files
class Objective:
    """What each trial of a study does, step by step: ``begin``, ``after_epoch`` for every
    epoch its search runs, ``end``.

    Args:
        config: the study.
        state_dir: the study's folder; trial files go to ``state_dir/trials/<key>/``.
        data: the search split, already on ``device``.
        start_space: the dimensions of x.
        publisher: also shows each finished trial (optional).
    """

    def __init__(self, *, config: StudyConfig, state_dir: Path, data: SearchData,
                 start_space: StartSpace, device: Any,
                 publisher: Publisher | None = None) -> None:
        self.config = config
        self.state_dir = state_dir
        self.data = data
        self.start_space = start_space
        self.device = device
        self.publisher = publisher

    def begin(self, trial: optuna.Trial, *, wait: bool = True) -> TrialRun:
        """Set a trial up: its seed and start point, and its search, fresh or resumed from
        its checkpoint (the epochs it already ran are reported again). The trial claims
        its search; with ``wait``, a search that another study is running is waited for
        and then resumed from its checkpoint, else it runs beside it.

        Raises:
            SurplusTrialError: other workers have taken the budget.
            optuna.TrialPruned: this study's pruner stops the search taken over from
                another study at one of its epochs (its result there is recorded).
        """
        if is_surplus(trial, Budget.of(self.config)):
            trial.set_user_attr("fail_reason", SURPLUS)
            raise SurplusTrialError(SURPLUS)
        number = original_number(trial)
        seed = trial_seed(self.config.seed, number)
        init_seed = seed if self.config.outer.sampler == "darts" else self.config.seed
        for name, value in {"cell": trial.user_attrs.get("cell"),  # first: the dashboard
                            "original_number": number, "trial_key": trial_key(number),
                            "seed": seed, "init_seed": init_seed, **self._runs_on()}.items():
            trial.set_user_attr(name, value)
        x = {spec.name: trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)
             for spec in self.start_space.specs}
        files = self.state_dir / "trials" / trial_key(number)
        meta = {"config": trial_config(self.config), "x": x, "seed": seed,
                "init_seed": init_seed}
        with self._own_files():  # not with parents: a deleted study's is not made anew
            (self.state_dir / "trials").mkdir(exist_ok=True)
            files.mkdir(exist_ok=True)
        key = search_key(meta)
        (files / f"search-{key}.id").touch()  # how other studies find it
        claim = SearchClaim(self.state_dir.parent, key, wait=wait)
        try:
            search, source = self._resume(self.start_space.decode(x), files, meta, key)
        except BaseException:
            claim.release()
            raise
        trial.set_user_attr("resumed_from_epoch", search.epoch)
        run = TrialRun(trial=trial, search=search, files=files, meta=meta, claim=claim)
        taken_over = source != files
        if taken_over:
            trial.set_user_attr("same_search_as", f"{source.parents[1].name}/{source.name}")
        for count, record in enumerate(search.history, start=1):
            # another study's epochs go to this study's pruner as if they ran here; this
            # trial's own were put to it when they ran
            if self._report(trial, record) and taken_over and trial.should_prune():
                self._prune_taken_over(run, epochs=count)
        return run

    def _prune_taken_over(self, run: TrialRun, *, epochs: int) -> None:
        """Stop a search taken over from another study after its first ``epochs``, where
        this study's pruner stops it: record it there.

        Raises:
            optuna.TrialPruned: always.
        """
        run.claim.release()
        self._record(run, epochs=epochs)
        with self._own_files():
            write_metrics(run.files / "metrics.jsonl",
                          (r.to_dict() for r in run.search.history[:epochs]),
                          make_folder=False)
        raise optuna.TrialPruned(f"pruned after epoch {run.search.history[epochs - 1].epoch}")

    def after_epoch(self, run: TrialRun, record: EpochRecord) -> None:
        """Checkpoint a finished epoch and report it.

        Raises:
            optuna.TrialPruned: the pruner stopped the trial (its result is recorded).
            StudyDeletedError: the study's folder is gone: the study was deleted.
        """
        with self._own_files():
            save_checkpoint(run.files / "ckpt.pt", run.search.state_dict(), meta=run.meta,
                            make_folder=False)
            append_metrics(run.files / "metrics.jsonl", record.to_dict())
        if self._report(run.trial, record) and run.trial.should_prune():
            self._record(run)
            raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

    def end(self, run: TrialRun) -> float | tuple[float, float]:
        """Record a finished search; its value, or (value, parameters) with two
        objectives. The ``trained`` objective trains the derived cell here."""
        value = self._value(run.search.history[-1])
        trained = train_time = None
        if self.config.search.accuracy_objective == "trained":
            started = time.perf_counter()
            value = trained = self._trained_accuracy(run)
            train_time = time.perf_counter() - started
        params_m = self._record(run, trained_acc=trained, train_time_s=train_time)
        return (value, params_m) if self.config.search.multi_objective else value

    def _trained_accuracy(self, run: TrialRun) -> float:
        """The derived cell's network, at the supernet's size, trained from scratch on the
        weights' half for ``search.train_epochs`` epochs: its accuracy on the held-out
        images (``data.holdout``), else on the other half."""
        space, search = self.config.space, self.config.search
        settings = TrainSettings(epochs=search.train_epochs, batch_size=search.batch_size,
                                 channels=space.channels,
                                 cells=get_space(space.name).depth(space))
        measured_on = self.data.holdout_batches or self.data.arch_batches
        return short_training_accuracy(
            parse_genotype(run.search.history[-1].genotype), self.data.weight_batches,
            measured_on, settings=settings, seed=run.meta["seed"],
            num_classes=self.data.num_classes, in_channels=self.data.in_channels)

    def _resume(self, start: StartPoint, files: Path, meta: dict[str, Any], key: str
                ) -> tuple[DartsSearch, Path]:
        """The trial's search, resumed from its own checkpoint, else from that of the same
        search (``key``, the digest of ``meta``) in another study under the same root
        (compare's method studies share their first search), else fresh; and the trial
        folder it resumed from."""
        def fresh() -> DartsSearch:
            return build_search(self.config, self.data, start, seed=meta["seed"],
                                init_seed=meta["init_seed"], device=self.device)

        search = fresh()
        for source in (files, *same_searches(self.state_dir.parent, key, besides=files)):
            own = source == files
            try:
                search.load_state_dict(load_checkpoint(
                    source / "ckpt.pt", meta=meta, keys=DartsSearch.STATE_KEYS,
                    epochs=search.total_epochs, same=dict if own else without_study))
            except FileNotFoundError:
                continue
            except (CheckpointError, KeyError, RuntimeError, ValueError) as error:
                logger.warning("trial %s cannot resume from %s: %s", files.name, source, error)
                search = fresh()  # the failed load may have changed part of it
                continue
            logger.info("trial %s resumes after epoch %d%s", files.name, search.epoch,
                        "" if own else f" of the same search in {source}")
            with self._own_files():
                if not own:  # the trial's files are complete without the other study's
                    save_checkpoint(files / "ckpt.pt", search.state_dict(), meta=meta,
                                    make_folder=False)
                write_metrics(files / "metrics.jsonl", (r.to_dict() for r in search.history),
                              make_folder=False)
            return search, source
        with self._own_files():
            write_metrics(files / "metrics.jsonl", (), make_folder=False)
        return search, files

    @contextlib.contextmanager
    def _own_files(self) -> Iterator[None]:
        """Write a trial's files, which are never made anew when the study's folder is gone.

        Raises:
            StudyDeletedError: the folder is gone: the study was deleted.
        """
        try:
            yield
        except FileNotFoundError:
            if self.state_dir.is_dir():
                raise
            raise StudyDeletedError(self.config.name) from None

    def _report(self, trial: optuna.Trial, record: EpochRecord) -> bool:
        """Report an epoch's value to the pruner; a two-objective study has none, since
        Optuna cannot prune one. Returns whether it reported."""
        if self.config.search.multi_objective:
            return False
        trial.report(self._value(record), record.epoch)
        return True

    def _runs_on(self) -> dict[str, str | int]:
        """Where the trial runs, and on how many CPU threads, which set its rounding."""
        return {"device": str(self.device), "threads": torch.get_num_threads(),
                "worker": worker_id(), "worker_started": process_start(os.getpid()) or ""}

    def _value(self, record: EpochRecord) -> float:
        """An epoch's accuracy as the pruner sees it."""
        if self.config.search.accuracy_objective == "discrete":
            assert record.discrete_acc is not None
            return record.discrete_acc
        return record.valid_acc

    def _record(self, run: TrialRun, *, trained_acc: float | None = None,
                train_time_s: float | None = None, epochs: int | None = None) -> float:
        """Store the result, after the search's first ``epochs`` (default: all it ran), as
        user attrs (and with the publisher); returns the cell's evaluation-network
        parameters in millions."""
        history = run.search.history[:epochs]
        last = history[-1]
        genotype = parse_genotype(last.genotype)
        params = get_space(self.config.space.name).eval_params(
            genotype, num_classes=self.data.num_classes, in_channels=self.data.in_channels)
        attrs = {
            "cell": last.genotype,
            "supernet_acc": last.valid_acc,
            "discrete_acc": last.discrete_acc,
            "trained_acc": trained_acc,
            "train_time_s": train_time_s,
            "eval_params_M": params / 1e6,
            "alpha_softmax": last.alpha_softmax,
            "epochs_run": run.search.epoch if epochs is None else epochs,
            "cell_history": [r.genotype for r in history],
            "wall_time_s": sum(r.seconds for r in history),
            **genotype.op_shares(),
        }
        for name, value in attrs.items():
            run.trial.set_user_attr(name, value)
        if self.publisher is not None:
            self.publisher.publish_trial(run.trial, [r.to_dict() for r in history], run.files,
                                         attrs, edges=self.start_space.edges,
                                         ops=self.start_space.ops)
        return params / 1e6
