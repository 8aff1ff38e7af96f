"""One Optuna trial: suggest x, run the inner DARTS search from it, record the result."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from pipeline.checkpoint import (
    CheckpointError,
    append_metrics,
    load_checkpoint,
    save_checkpoint,
    write_metrics,
)
from pipeline.config import StudyConfig, to_dict, without_changeable
from pipeline.darts import DartsSearch, DivergedError, EpochRecord
from pipeline.dashboard import artifact_store, publish_trial
from pipeline.data import DeviceBatches, channel_stats, load_dataset, search_split
from pipeline.networks import darts_eval_params, nb201_eval_params
from pipeline.spaces import (
    DARTS_OPS,
    NB201_EDGES,
    NB201_OPS,
    DartsGenotype,
    edge_name,
    parse_genotype,
)
from pipeline.start import StartPoint, StartSpace, apply_start, default_alpha_range
from pipeline.supernet import Supernet
from pipeline.supernet_darts import CELL_TYPES, DartsSupernet, darts_edges
from pipeline.train import TrainSettings, short_training_accuracy

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
SURPLUS = "surplus: the budget was met by other workers"


class SurplusTrialError(RuntimeError):
    """A trial asked for while other workers were completing the budget."""


def failure_reason(error: BaseException) -> str:
    """The ``fail_reason`` recorded for a trial that ``error`` ended."""
    if isinstance(error, DivergedError):
        return f"diverged: {error}"
    if isinstance(error, torch.OutOfMemoryError):
        return f"out of memory: {str(error).splitlines()[0]}"
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return f"{type(error).__name__}: {error}"


# Failures that end one trial, with the reason recorded, and let the study go on.
TRIAL_FAILURES = (DivergedError, torch.OutOfMemoryError, SurplusTrialError)


@dataclass(frozen=True, slots=True)
class SearchData:
    """A study's search split, on the device, shared by all trials of a process."""

    weight_batches: DeviceBatches
    arch_batches: DeviceBatches
    num_classes: int
    in_channels: int


def prepare_data(config: StudyConfig, device: torch.device) -> SearchData:
    """Load the dataset and split its training set for the search (the test set is dropped)."""
    train, _ = load_dataset(config.data.dataset, config.data.root, download=config.data.download)
    weights_half, arch_half = search_split(train, subset=config.data.subset, seed=config.seed)
    mean, std = channel_stats(weights_half)
    common = dict(batch_size=config.search.batch_size, device=device, mean=mean, std=std)
    return SearchData(
        weight_batches=DeviceBatches(weights_half, crop_padding=config.data.crop_padding,
                                     flip=config.data.flip, **common),  # type: ignore[arg-type]
        arch_batches=DeviceBatches(arch_half, **common),  # type: ignore[arg-type]
        num_classes=len(train.classes),
        in_channels=train.shape[0],
    )


def build_start_space(config: StudyConfig, steps_per_epoch: int) -> StartSpace:
    """The start vector of this study; alpha_range 0 is derived from the search length."""
    alpha_range = config.start.alpha_range or default_alpha_range(
        config.search.arch_lr, config.search.epochs * steps_per_epoch)
    if config.space.name == "darts":
        edges = [f"{cell}:{to}<-{src}" for cell in CELL_TYPES for to, src in darts_edges()]
        ops = DARTS_OPS
    else:
        edges, ops = [edge_name(edge) for edge in NB201_EDGES], NB201_OPS
    return StartSpace(
        edges=edges,
        ops=ops,
        alpha_range=alpha_range,
        gain_range=config.start.gain_range,
        directions=config.start.directions,
        direction_range=config.start.direction_range,
        hyperparams={name: getattr(config.search, name) for name in config.start.cosearch},
        hyperparam_factor=config.start.hyperparam_factor,
    )


def build_search(config: StudyConfig, data: SearchData, start: StartPoint, *, seed: int,
                 init_seed: int, device: torch.device) -> DartsSearch:
    """A supernet initialised from ``init_seed``, moved to ``start``, ready to search."""
    space = config.space
    net: Supernet | DartsSupernet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        if space.name == "darts":
            net = DartsSupernet(channels=space.channels, layers=space.layers,
                                num_classes=data.num_classes, in_channels=data.in_channels)
        else:
            net = Supernet(channels=space.channels, cells_per_stage=space.cells_per_stage,
                           num_classes=data.num_classes, in_channels=data.in_channels)
    apply_start(net, start, direction_seed=config.seed)
    net = net.to(device)
    if config.search.channels_last:
        net = net.to(memory_format=torch.channels_last)
    s = config.search
    settings: dict[str, Any] = dict(
        weight_lr=s.weight_lr, weight_lr_min=s.weight_lr_min, momentum=s.momentum,
        nesterov=s.nesterov, weight_decay=s.weight_decay, grad_clip=s.grad_clip,
        arch_lr=s.arch_lr, arch_betas=(s.arch_beta1, s.arch_beta2),
        arch_weight_decay=s.arch_weight_decay)
    settings.update(start.hyperparams)
    return DartsSearch(net, weight_batches=data.weight_batches, arch_batches=data.arch_batches,
                       seed=seed, epochs=s.epochs, order=s.order,
                       cell_every_epoch=s.accuracy_objective == "discrete",
                       bf16=s.precision == "bf16",
                       compile_backend="inductor" if s.compile else None, **settings)


@dataclass(slots=True)
class TrialRun:
    """A trial whose search is set up: fresh, or resumed from its checkpoint."""

    trial: optuna.Trial
    search: DartsSearch
    files: Path
    meta: dict[str, Any]


def trials_used(trials: Sequence[FrozenTrial]) -> int:
    """How many trials count against a study's budget: the finished ones, and failures the
    search decided (a diverged search). An interrupted trial is resumed, and a surplus one
    never ran, so neither counts."""
    return sum(counted(trial) for trial in trials)


def epochs_used(trials: Sequence[FrozenTrial]) -> int:
    """Inner epochs run by the trials that count against the budget."""
    return sum(int(t.user_attrs.get("epochs_run", len(t.intermediate_values)))
               for t in trials if counted(t))


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts against the budget (see ``trials_used``)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    reason = trial.user_attrs.get("fail_reason")
    return trial.state == TrialState.FAIL and reason not in (None, INTERRUPTED, SURPLUS)


@dataclass(frozen=True, slots=True)
class Budget:
    """What a study may spend: ``trials``, or, when ``epochs`` > 0, that many inner epochs
    (a pruned trial spends only the epochs it ran, so pruning buys more trials)."""

    trials: int
    epochs: int = 0
    epochs_per_trial: int = 1

    @classmethod
    def of(cls, config: StudyConfig) -> Budget:
        return cls(config.outer.n_trials, config.outer.epoch_budget, config.search.epochs)

    @property
    def total(self) -> int:
        return self.epochs or self.trials

    @property
    def cost(self) -> int:
        """What a trial about to start may spend."""
        return self.epochs_per_trial if self.epochs else 1

    def spent(self, trials: Sequence[FrozenTrial]) -> int:
        return epochs_used(trials) if self.epochs else trials_used(trials)

    def has_room(self, trials: Sequence[FrozenTrial], running: int) -> bool:
        """Whether one more trial fits beside ``running`` trials that may spend it all."""
        return self.spent(trials) + (running + 1) * self.cost <= self.total


def is_surplus(trial: optuna.Trial, budget: Budget) -> bool:
    """Whether the budget is already taken without this trial: by finished trials and by
    the running trials that started before it (workers can ask for trials at once)."""
    trials = trial.study.get_trials(deepcopy=False)
    earlier_running = sum(t.state == TrialState.RUNNING and t.number < trial.number
                          for t in trials)
    return not budget.has_room(trials, earlier_running)


def original_number(trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial) -> int:
    """The number of the first attempt at this trial.

    A retry (after an interruption or a dead worker) copies the user attrs of the trial it
    retries, so it keeps the original number, and with it its seed and its files.
    """
    number = trial.user_attrs.get("original_number", trial.number)
    return int(number)


def trial_seed(study_seed: int, number: int) -> int:
    """The RNG seed of a trial, from the study seed and the trial's original number."""
    return study_seed * 100_003 + number


def trial_key(number: int) -> str:
    """The folder name of a trial's files under ``trials/``."""
    return f"{number:05d}"


def without_study(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's meta without what belongs to its study rather than to its search: the
    study's name and its outer loop."""
    config = {k: v for k, v in meta["config"].items() if k not in ("name", "outer")}
    return {**meta, "config": config}


def search_key(meta: Mapping[str, Any]) -> str:
    """A short digest of ``without_study(meta)``: equal for the same search in any study."""
    text = json.dumps(without_study(meta), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_searches(root: Path, key: str, *, besides: Path) -> list[Path]:
    """The trial folders of the studies under ``root`` that ran the search ``key`` names."""
    return sorted(path.parent for path in root.glob(f"*/trials/*/search-{key}.id")
                  if path.parent != besides)


class Objective:
    """The callable ``study.optimize`` runs once per trial.

    Args:
        config: the study.
        state_dir: the study's folder; trial files go to ``state_dir/trials/<key>/``.
        data: the search split, already on ``device``.
        start_space: the dimensions of x.
        progress: show a bar of epochs.
    """

    def __init__(self, *, config: StudyConfig, state_dir: Path, data: SearchData,
                 start_space: StartSpace, device: torch.device, progress: bool = False) -> None:
        self.config = config
        self.state_dir = state_dir
        self.artifacts = artifact_store(state_dir)
        self.data = data
        self.start_space = start_space
        self.device = device
        self.progress = progress

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        run = self.begin(trial)
        search = run.search
        bar = tqdm(total=search.epochs, initial=search.epoch, desc=f"trial {trial.number}",
                   leave=False, disable=not self.progress, unit="epoch")

        def after_epoch(record: EpochRecord) -> None:
            bar.update(1)
            bar.set_postfix(valid=f"{record.valid_acc:.1f}%")
            self.after_epoch(run, record)

        try:
            search.run(after_epoch)
        except (DivergedError, torch.OutOfMemoryError, KeyboardInterrupt) as error:
            trial.set_user_attr("fail_reason", failure_reason(error))
            raise
        finally:
            bar.close()
        return self.end(run)

    def begin(self, trial: optuna.Trial) -> TrialRun:
        """Set a trial up: its seed and start point, and its search, fresh or resumed from
        its checkpoint (the epochs it already ran are reported again).

        Raises:
            SurplusTrialError: other workers have taken the budget.
        """
        if is_surplus(trial, Budget.of(self.config)):
            trial.set_user_attr("fail_reason", SURPLUS)
            raise SurplusTrialError(SURPLUS)
        number = original_number(trial)
        seed = trial_seed(self.config.seed, number)
        init_seed = seed if self.config.outer.sampler == "darts" else self.config.seed
        for name, value in {"original_number": number, "trial_key": trial_key(number),
                            "seed": seed, "init_seed": init_seed, "device": str(self.device),
                            "worker": f"{socket.gethostname()}:{os.getpid()}"}.items():
            trial.set_user_attr(name, value)
        x = {spec.name: trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)
             for spec in self.start_space.specs}
        files = self.state_dir / "trials" / trial_key(number)
        meta = {"config": without_changeable(to_dict(self.config)), "x": x, "seed": seed,
                "init_seed": init_seed}
        files.mkdir(parents=True, exist_ok=True)
        key = search_key(meta)
        (files / f"search-{key}.id").touch()  # how other studies find it
        search, source = self._resume(self.start_space.decode(x), files, meta, key)
        trial.set_user_attr("resumed_from_epoch", search.epoch)
        if source != files:
            trial.set_user_attr("same_search_as", f"{source.parents[1].name}/{source.name}")
        for record in search.history:
            self._report(trial, record)
        return TrialRun(trial=trial, search=search, files=files, meta=meta)

    def after_epoch(self, run: TrialRun, record: EpochRecord) -> None:
        """Checkpoint a finished epoch and report it.

        Raises:
            optuna.TrialPruned: the pruner stopped the trial (its result is recorded).
        """
        save_checkpoint(run.files / "ckpt.pt", run.search.state_dict(), meta=run.meta)
        append_metrics(run.files / "metrics.jsonl", record.to_dict())
        if self._report(run.trial, record) and run.trial.should_prune():
            self._record(run.trial, run.search, run.files)
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
        params_m = self._record(run.trial, run.search, run.files, trained_acc=trained,
                                train_time_s=train_time)
        return (value, params_m) if self.config.search.multi_objective else value

    def _trained_accuracy(self, run: TrialRun) -> float:
        """The derived cell's network, at the supernet's size, trained from scratch on the
        weights' half for ``search.train_epochs`` epochs: its accuracy on the other half."""
        space, search = self.config.space, self.config.search
        settings = TrainSettings(
            epochs=search.train_epochs, batch_size=search.batch_size, channels=space.channels,
            cells=space.layers if space.name == "darts" else space.cells_per_stage)
        return short_training_accuracy(
            parse_genotype(run.search.history[-1].genotype), self.data.weight_batches,
            self.data.arch_batches, settings=settings, seed=run.meta["seed"],
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
                    source / "ckpt.pt", meta=meta, same=dict if own else without_study))
            except FileNotFoundError:
                continue
            except (CheckpointError, KeyError, RuntimeError, ValueError) as error:
                logger.warning("trial %s cannot resume from %s: %s", files.name, source, error)
                search = fresh()  # the failed load may have changed part of it
                continue
            logger.info("trial %s resumes after epoch %d%s", files.name, search.epoch,
                        "" if own else f" of the same search in {source}")
            if not own:  # the trial's files are complete without the other study's
                save_checkpoint(files / "ckpt.pt", search.state_dict(), meta=meta)
            write_metrics(files / "metrics.jsonl", (r.to_dict() for r in search.history))
            return search, source
        write_metrics(files / "metrics.jsonl", ())
        return search, files

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

    def _record(self, trial: optuna.Trial, search: DartsSearch, files: Path, *,
                trained_acc: float | None = None, train_time_s: float | None = None
                ) -> float:
        """Store the result as user attrs, and the dashboard's artifacts and note; returns
        the cell's evaluation-network parameters in millions."""
        last = search.history[-1]
        genotype = parse_genotype(last.genotype)
        count = (darts_eval_params if isinstance(genotype, DartsGenotype)
                 else nb201_eval_params)
        params = count(genotype, num_classes=self.data.num_classes,  # type: ignore[arg-type]
                       in_channels=self.data.in_channels)
        attrs = {
            "cell": last.genotype,
            "supernet_acc": last.valid_acc,
            "discrete_acc": last.discrete_acc,
            "trained_acc": trained_acc,
            "train_time_s": train_time_s,
            "eval_params_M": params / 1e6,
            "alpha_softmax": last.alpha_softmax,
            "epochs_run": search.epoch,
            "cell_history": [r.genotype for r in search.history],
            "wall_time_s": sum(r.seconds for r in search.history),
            **genotype.op_shares(),
        }
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        publish_trial(trial, [r.to_dict() for r in search.history], files, self.artifacts,
                      attrs, edges=self.start_space.edges, ops=self.start_space.ops)
        return params / 1e6

