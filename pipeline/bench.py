"""Benchmarks of both loops: time and memory of the inner search's iterations and
epochs on the current device, and the outer loop's cost per trial.

Each measurement runs in a fresh process, so its peak memory is its own.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.config import ConfigError, StudyConfig, with_overrides
from pipeline.search import (
    DartsSearch,
    Population,
    build_search,
    build_start_space,
    prepare_data,
)
from pipeline.search.darts import Stepper
from pipeline.search.data import DeviceBatches, ImageSet, SearchData
from pipeline.search.population import StackedSearch
from pipeline.spaces import get_space


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchRecord:
    """One measurement. ``median_ms`` is one search iteration (an architecture step and a
    weight step) for ``kind="iteration"``, one whole epoch for ``kind="epoch"``, one whole
    perturbation selection for ``kind="selection"``."""

    kind: str
    space: str
    variant: str
    order: int
    batch: int
    population: int
    precision: str
    channels_last: bool
    compiled: bool
    channels: int
    cells_per_stage: int
    device: str
    median_ms: float
    peak_mem_mib: float
    torch_version: str
    trials_per_hour: float | None = None
    member_iterations_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _random_batches(n: int, batch: int, classes: int, device: torch.device) -> DeviceBatches:
    generator = torch.Generator().manual_seed(0)
    images = ImageSet(torch.randint(0, 256, (n, 3, 32, 32), generator=generator,
                                    dtype=torch.uint8),
                      torch.randint(0, classes, (n,), generator=generator),
                      tuple(map(str, range(classes))))
    return DeviceBatches(images, batch_size=batch, device=device, mean=torch.full((3,), 0.5),
                         std=torch.full((3,), 0.25), crop_padding=4, flip=True)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _seconds(step: Callable[[], None], device: torch.device) -> float:
    """Wall time of one call of ``step``, the GPU's queued work waited for on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def check_iterations(orders: Sequence[int], populations: Sequence[int],
                     compiled: bool) -> None:
    """Refuse iteration timings that cannot run (a population above 1 is timed at first
    order only).

    Raises:
        ConfigError: a population size below 1; populations above 1 with second order
            alone, or with compiling (populations run first-order DARTS, eagerly).
    """
    if any(k < 1 for k in populations) or (min(populations) > 1 and 1 not in orders):
        raise ConfigError("--population takes sizes >= 1; above 1 it needs --order 1 "
                          "(populations run first-order DARTS)")
    if max(populations) > 1 and compiled:
        raise ConfigError("--mode compiled times single searches; populations run eagerly")


def _searches(config: StudyConfig, batches: DeviceBatches, *, order: int, population: int,
              channels_last: bool, compiled: bool, device: torch.device) -> list[DartsSearch]:
    """``population`` searches of the study, built as a study builds them and from its
    plain-DARTS start, on ``batches``, from seeds 0, 1, ..."""
    timed = with_overrides(config, [f"search.order={order}",
                                    f"search.channels_last={str(channels_last).lower()}",
                                    f"search.compile={str(compiled).lower()}"])
    data = SearchData(weight_batches=batches, arch_batches=batches, num_classes=10,
                      in_channels=3)
    space = build_start_space(timed, steps_per_epoch=len(batches))
    start = space.decode(space.centre())
    return [build_search(timed, data, start, seed=k, init_seed=k, device=device)
            for k in range(population)]


def measure_iteration(config: StudyConfig, *, order: int, device: str, warmup: int = 2,
                      iterations: int = 10, population: int = 1, channels_last: bool = True,
                      compiled: bool = False) -> BenchRecord:
    """Median wall time of one DARTS iteration (an architecture step and a weight step) of
    the study's supernet at its batch size and precision, on random 32x32 images; with
    ``population`` K > 1, of one iteration of K first-order searches stacked into one
    batched computation (``median_ms`` then covers all K).

    ``channels_last`` stores the supernet's tensors in that memory format (as
    ``search.channels_last`` does); ``compiled`` runs the supernet through ``torch.compile``
    (as ``search.compile`` does); it compiles during the first warm-up iteration. Each
    iteration is timed alone, the GPU synchronised around it, at this process's thread
    count."""
    dev = torch.device(device)
    batch = config.search.batch_size
    batches = _random_batches(2 * batch, batch, 10, dev)
    searches = _searches(config, batches, order=order, population=population,
                         channels_last=channels_last, compiled=compiled, device=dev)
    (x_w, y_w), (x_a, y_a) = list(batches.epoch(0, 0))
    stepper: Stepper = searches[0]
    if population > 1:  # every member on the same batches
        stepper = StackedSearch(Population(searches).members)
        x_w, y_w, x_a, y_a = (t.expand(population, *t.shape) for t in (x_w, y_w, x_a, y_a))

    def step() -> None:  # one step of ``run_steps``
        with stepper.variant_step(0):
            stepper.arch_step(x_w, y_w, x_a, y_a)
            stepper.weight_step(x_w, y_w)
    for _ in range(warmup):
        step()
    median_ms = 1000 * statistics.median(_seconds(step, dev) for _ in range(iterations))
    return BenchRecord(kind="iteration", space=config.space.name, variant=config.search.variant,
                       order=order, batch=batch,
                       population=population, precision=config.search.precision,
                       channels_last=channels_last, compiled=compiled,
                       channels=config.space.channels,
                       cells_per_stage=get_space(config.space.name).depth(config.space),
                       device=str(dev), median_ms=median_ms, peak_mem_mib=_peak_mib(dev),
                       torch_version=torch.__version__,
                       member_iterations_per_s=1000 * population / median_ms)


def measure_epoch(config: StudyConfig, *, device: str) -> BenchRecord:
    """Wall time of one search epoch of a study (data pipeline and measuring included),
    and the trials per hour that gives at the study's epochs."""
    dev = torch.device(device)
    search = _study_search(config, dev)
    search.run_epoch()  # warm-up
    times = [search.run_epoch().seconds for _ in range(2)]
    epoch_s = statistics.median(times)
    return _study_record("epoch", config, dev, median_ms=1000 * epoch_s,
                         trials_per_hour=3600 / (epoch_s * config.search.epochs))


def measure_selection(config: StudyConfig, *, device: str) -> BenchRecord:
    """Wall time of one whole perturbation selection of the study's supernet (every
    decision, without fine-tuning between them) on its own validation data: what the
    selection adds to each trial besides its fine-tuning epochs. The supernet is untrained
    (plain DARTS' start): a selection measures the same candidates whatever its weights."""
    timed = with_overrides(config, ["search.selection=perturbation",
                                    "search.selection_tune_epochs=0"])
    dev = torch.device(device)
    search = _study_search(timed, dev)
    search.epoch = search.epochs  # the search is over: every decision is due
    seconds = _seconds(search.select, dev)
    return _study_record("selection", timed, dev, median_ms=1000 * seconds)


def _study_search(config: StudyConfig, device: torch.device) -> DartsSearch:
    """The study's search on its own data, from plain DARTS' start, seed 0."""
    data = prepare_data(config, device)
    space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    return build_search(config, data, space.decode(space.centre()), seed=0, init_seed=0,
                        device=device)


def _study_record(kind: str, config: StudyConfig, device: torch.device, *, median_ms: float,
                  trials_per_hour: float | None = None) -> BenchRecord:
    """A measurement of a study's own search (one search, as the study file sets it)."""
    search = config.search
    return BenchRecord(kind=kind, space=config.space.name, variant=search.variant,
                       order=search.order, batch=search.batch_size, population=1,
                       precision=search.precision, channels_last=search.channels_last,
                       compiled=search.compile, channels=config.space.channels,
                       cells_per_stage=get_space(config.space.name).depth(config.space),
                       device=str(device), median_ms=median_ms,
                       peak_mem_mib=_peak_mib(device), torch_version=torch.__version__,
                       trials_per_hour=trials_per_hour)


def _child(function: Callable[..., BenchRecord], kwargs: dict[str, Any],
           queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        queue.put(("ok", function(**kwargs).to_dict()))
    except BaseException as error:
        queue.put(("error", f"{type(error).__name__}: {error}"))


def in_fresh_process(function: Callable[..., BenchRecord], **kwargs: Any) -> BenchRecord:
    """Run a measurement in a new process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(function, kwargs, queue))
    process.start()
    status, result = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"benchmark failed: {result}")
    return BenchRecord(**result)


def measure_outer(*, dims: int, trials: int, epochs: int, last: int = 20) -> BenchRecord:
    """Time the outer loop alone: a CMA-ES study of ``dims`` floats on SQLite, where each
    trial reports ``epochs`` values and the user attrs a real trial records, but searches
    nothing. ``median_ms`` is the median time per trial over the ``last`` trials."""
    import tempfile
    import warnings

    import optuna

    from pipeline.outer.record import TrialRecord

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_float(f"x{i}", -1, 1) for i in range(dims)]
        for epoch in range(1, epochs + 1):
            trial.report(sum(x) / dims + epoch, epoch)
            trial.should_prune()
        TrialRecord(original_number=1, trial_key="00001", seed=1, init_seed=1, device="cpu",
                    worker="host:1", resumed_from_epoch=0, cell="-", supernet_acc=1.0,
                    discrete_acc=1.0, eval_params_M=1.0, epochs_run=epochs, wall_time_s=1.0,
                    skip_share=0.0, alpha_softmax=[[0.2] * 5] * 6).store(trial)
        return sum(x)

    with tempfile.TemporaryDirectory() as folder:
        storage = optuna.storages.RDBStorage(f"sqlite:///{folder}/outer.db")
        study = optuna.create_study(storage=storage, direction="maximize",
                                    sampler=optuna.samplers.CmaEsSampler(seed=0),
                                    pruner=optuna.pruners.MedianPruner())
        times = []
        for _ in range(trials):
            started = time.perf_counter()
            study.optimize(objective, n_trials=1)
            times.append(time.perf_counter() - started)
    return BenchRecord(kind="outer", space=f"{dims} dims", variant="-", order=0, batch=0,
                       population=1,
                       precision="-", channels_last=False, compiled=False, channels=0,
                       cells_per_stage=0, device="cpu",
                       median_ms=1000 * statistics.median(times[-last:]),
                       peak_mem_mib=_peak_mib(torch.device("cpu")),
                       torch_version=torch.__version__)
