"""The ``globaldarts`` command: the only place that reads argv, sets up logging and
picks the device."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from pipeline.arguments import DEFAULT_STUDY, build_parser
from pipeline.config import ConfigError

if TYPE_CHECKING:
    import torch

    from pipeline.spaces import DartsGenotype, NB201Genotype

logger = logging.getLogger("pipeline")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the running trial is left resumable."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def cmd_search(args: argparse.Namespace) -> int:
    """Run or resume a study, then print its best cell."""
    import torch

    from pipeline.config import load
    from pipeline.study import run_study

    path = Path(args.study) if args.study else Path(args.root) / f"{DEFAULT_STUDY}.toml"
    overrides = list(args.set)
    if args.n_trials is not None:
        overrides.append(f"outer.n_trials={args.n_trials}")
    config = load(path, overrides)
    signal.signal(signal.SIGTERM, _raise_terminated)
    device = _pick_device(args.device)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    summary = run_study(config, root=args.root, storage=args.storage,
                        device=device, force=args.force,
                        progress=_show_progress(args), population=args.population)
    best = summary.best
    if best is None:
        print(f"no trial of study {summary.name} has completed yet")
    else:
        attrs = best.user_attrs
        print(f"best cell      {attrs['cell']}")
        print(f"accuracy       {best.values[0]:.2f} % ({config.search.accuracy_objective} "
              f"objective; supernet {attrs['supernet_acc']:.2f} %, discrete cell "
              f"{attrs['discrete_acc']:.2f} %{_trained(attrs)}), trial {best.number}")
    if config.search.multi_objective:
        print(f"pareto front   {len(summary.front)} cells (accuracy %, parameters M):")
        for trial in summary.front:
            print(f"  trial {trial.number:<4} {trial.values[0]:6.2f} "
                  f"{trial.values[1]:8.4f}  {trial.user_attrs['cell']}")
    if summary.epoch_budget:
        print(f"epochs         {summary.epochs_spent} of {summary.epoch_budget} spent "
              f"in {summary.finished} trials")
    else:
        print(f"trials         {summary.finished} of {summary.budget} finished")
    print(f"study          {summary.state_dir} (storage {summary.storage})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print a table of a study's trials."""
    import pandas as pd

    from pipeline.report import trials_frame
    from pipeline.study import load_study

    study = load_study(args.name, root=args.root, storage=args.storage)
    frame = trials_frame(study.get_trials(deepcopy=False))
    columns = ["number", "state", "value", "epochs_run", "cell", "skip_share",
               "eval_params_M", "wall_time_s"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 90,
                           "display.float_format", "{:.3f}".format):
        print(f"study {study.study_name}: {len(frame)} trials")
        print(frame[columns].to_string(index=False) if len(frame) else "(no trials)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Write a study's HTML report and trials table."""
    from pipeline.report import write_report
    from pipeline.study import load_study, state_dir

    study = load_study(args.name, root=args.root, storage=args.storage)
    path = write_report(study, state_dir(args.root, args.name), Path(args.out) / args.name,
                        images=args.images)
    print(f"report         {path}")
    print(f"trials table   {path.with_name('trials.csv')}")
    if args.images:
        print(f"images         {path.parent}/*.png")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Run plain DARTS, random and CMA-ES starts at one budget and print the table."""
    import pandas as pd

    from pipeline.compare import run_compare, summarise
    from pipeline.config import load

    config = load(args.study, args.set)
    signal.signal(signal.SIGTERM, _raise_terminated)
    out_dir = Path(args.out) / config.name
    if args.seeds < 1 or args.retrain_epochs < 0:
        raise ConfigError("--seeds must be >= 1 and --retrain-epochs >= 0")
    seeds = range(config.seed, config.seed + args.seeds)
    frame = run_compare(config, root=args.root, out_dir=out_dir, storage=args.storage,
                        device=_pick_device(args.device), seeds=seeds, only=args.methods,
                        table_path=args.nb201_table, retrain_epochs=args.retrain_epochs,
                        progress=_show_progress(args), population=args.population,
                        jobs=args.jobs, images=args.images)
    with pd.option_context("display.width", 250, "display.max_columns", 60,
                           "display.max_colwidth", 120, "display.float_format",
                           "{:.3f}".format):
        shown = frame.drop(columns=["front_cells"], errors="ignore")  # long: see the CSV
        print(shown.set_index(["method", "seed"]).T.to_string())
        if args.seeds > 1:
            print(summarise(frame).set_index("method").T.to_string())
    print(f"table          {out_dir / 'compare.csv'} (summary: {out_dir / 'summary.csv'})")
    print(f"figure         {out_dir / 'compare.html'}")
    if args.images:
        print(f"images         {out_dir}/*.png")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Print a study's best (or given) cell in a format other tools read; for a
    two-objective study, every cell on its Pareto front, one per line (JSON: a list)."""
    import json

    from pipeline.spaces import DartsGenotype, parse_genotype
    from pipeline.study import trial_cells

    found = trial_cells(args.name, trial=args.trial, root=args.root, storage=args.storage)
    genotypes = [(trial, parse_genotype(cell)) for trial, cell in found]
    space = "darts" if isinstance(genotypes[0][1], DartsGenotype) else "nb201"
    if args.format == "json":
        records = [{**genotype.to_json(), "study": args.name, "trial": trial.number,
                    "values": trial.values,
                    "eval_params_M": trial.user_attrs.get("eval_params_M")}
                   for trial, genotype in genotypes]
        print(json.dumps(records if len(records) > 1 else records[0], indent=2))
    elif args.format in (None, space):
        for _, genotype in genotypes:
            print(genotype.to_str())
    else:
        raise ConfigError(f"study {args.name!r} searched {space} cells; use --format {space} "
                          "or json")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Measure a cell: its evaluation network's size, or its ground truth in a table."""
    from pipeline.evaluate import count_params, load_table, lookup, network_name
    from pipeline.spaces import DartsGenotype

    genotype = _genotype(args.genotype, args)
    text = genotype.to_literal() if isinstance(genotype, DartsGenotype) else genotype.to_str()
    print(f"cell           {text}")
    if not (args.count_params or args.nb201_table):
        return _retrain(genotype, args)
    params = count_params(genotype)
    print("params (M)     " + "  ".join(f"{k} {v:.6f}" for k, v in params.items())
          + f"   ({network_name(genotype)})")
    if args.nb201_table:
        score = lookup(load_table(args.nb201_table), genotype)
        print("test acc (%)   " + "  ".join(f"{k} {v:.2f}" for k, v in score.items())
              + f"   (ground truth: {args.nb201_table})")
    return EXIT_OK


def _trained(attrs: dict[str, Any]) -> str:
    trained = attrs.get("trained_acc")
    return "" if trained is None else f", trained from scratch {trained:.2f} %"


def _retrain(genotype: NB201Genotype | DartsGenotype, args: argparse.Namespace) -> int:
    """Train the cell's evaluation network from scratch and print its test accuracy."""
    import dataclasses
    import hashlib

    from pipeline.data import load_dataset
    from pipeline.spaces import DartsGenotype
    from pipeline.train import TrainSettings, retrain

    settings = TrainSettings.darts() if isinstance(genotype, DartsGenotype) else TrainSettings()
    changes = {name: getattr(args, name) for name in ("epochs", "batch_size", "lr", "channels",
                                                      "cells") if getattr(args, name)}
    settings = dataclasses.replace(settings, **changes)
    train, test = load_dataset(args.dataset, args.data_root, download=args.download)
    key = hashlib.sha1(f"{genotype.to_str()}{settings}{args.dataset}".encode()).hexdigest()[:12]
    result = retrain(genotype, train, test, settings=settings, device=_pick_device(args.device),
                     checkpoint=Path(args.out) / key / "ckpt.pt", seed=args.seed,
                     progress=_show_progress(args))
    print(f"test acc (%)   {result.test_acc:.2f}   ({args.dataset} test split, "
          f"{result.epochs} epochs from scratch)")
    print(f"params (M)     {result.params_m:.6f}   (C={settings.channels}, "
          f"{settings.cells} cells)")
    return EXIT_OK


def _genotype(spec: str, args: argparse.Namespace) -> NB201Genotype | DartsGenotype:
    """An NB201 cell string, a DARTS ``Genotype(...)`` literal, or ``STUDY[:TRIAL]`` for a
    study's best (or given) cell."""
    from pipeline.spaces import DartsGenotype, NB201Genotype, parse_genotype
    from pipeline.study import trial_cells

    if spec.lstrip().startswith("Genotype("):
        return DartsGenotype.parse(spec)
    if "|" in spec:
        return NB201Genotype.parse(spec)
    name, _, number = spec.partition(":")
    if number and not number.isdigit():
        raise ConfigError(f"--genotype {spec!r}: a trial number must follow the colon")
    (_, cell), *_ = trial_cells(name, trial=int(number) if number else None, root=args.root,
                                storage=args.storage)
    return parse_genotype(cell)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve a study in optuna-dashboard until interrupted."""
    from pipeline.study import load_study, serve_dashboard

    load_study(args.name, root=args.root, storage=args.storage)
    print(f"optuna-dashboard for study {args.name}: http://{args.host}:{args.port}/dashboard/",
          flush=True)
    serve_dashboard(args.name, root=args.root, storage=args.storage, host=args.host,
                    port=args.port)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    """Time DARTS iterations on random data and an epoch of a study on this device."""
    import json

    import torch

    from pipeline.bench import in_fresh_process, measure_epoch, measure_iteration, measure_outer
    from pipeline.config import load

    device = str(_pick_device(args.device))
    args.cells = args.cells or (8 if args.space == "darts" else 5)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"median of {args.iterations} iterations after {args.warmup} warm-up")
    if any(k < 1 for k in args.population) or (max(args.population) > 1 and 2 in args.order):
        raise ConfigError("--population takes sizes >= 1; above 1 it needs --order 1 "
                          "(populations run first-order DARTS)")
    if max(args.population) > 1 and "compiled" in args.mode:
        raise ConfigError("--mode compiled times single searches; populations run eagerly")
    records = [
        in_fresh_process(measure_iteration, channels=args.channels,
                         cells_per_stage=args.cells, batch=args.batch, order=order,
                         device=device, warmup=args.warmup, iterations=args.iterations,
                         space=args.space, population=population, precision=args.precision,
                         channels_last=memory_format == "channels_last",
                         compiled=mode == "compiled")
        for order in args.order for memory_format in args.memory_format
        for mode in args.mode for population in args.population
    ]
    if args.study:
        records.append(in_fresh_process(measure_epoch, config=load(args.study), device=device))
    if args.outer_dims:
        records.append(in_fresh_process(measure_outer, dims=args.outer_dims,
                                        trials=args.outer_trials, epochs=args.outer_epochs))
    print(f"{'kind':10} {'space':6} {'order':>5} {'batch':>5} {'C':>3} {'N':>3} {'K':>3} "
          f"{'format':>6} {'mode':>8} {'median ms':>10} {'peak MiB':>9} {'iter/s':>7} "
          f"{'trials/h':>9}")
    for r in records:
        per_hour = f"{r.trials_per_hour:9.1f}" if r.trials_per_hour else f"{'':9}"
        per_s = (f"{r.member_iterations_per_s:7.2f}" if r.member_iterations_per_s
                 else f"{'':7}")
        print(f"{r.kind:10} {r.space:6} {r.order:5d} {r.batch:5d} {r.channels:3d} "
              f"{r.cells_per_stage:3d} {r.population:3d} "
              f"{'NHWC' if r.channels_last else 'NCHW':>6} "
              f"{'compiled' if r.compiled else 'eager':>8} {r.median_ms:10.1f} "
              f"{r.peak_mem_mib:9.0f} {per_s} {per_hour}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in records], indent=2))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": cmd_search,
    "status": cmd_status,
    "compare": cmd_compare,
    "report": cmd_report,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "dashboard": cmd_dashboard,
    "bench": cmd_bench,
}


def _pick_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    return device


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


class _TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write log records above any progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def _configure_logging(args: argparse.Namespace) -> None:
    import optuna

    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    handlers: list[logging.Handler] = [_TqdmHandler()]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(level)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from pipeline.checkpoint import CheckpointError
    from pipeline.data import DatasetError
    from pipeline.evaluate import TableError
    from pipeline.figures import ImageExportError
    from pipeline.population import PopulationError
    from pipeline.spaces import GenotypeError
    from pipeline.storage import StudyError, redact

    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, StudyError, DatasetError, GenotypeError, TableError,
            PopulationError, ImageExportError) as error:
        _report(args, f"error: {redact(str(error))}")
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        _report(args, "interrupted; run the same command again to resume")
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    except (CheckpointError, RuntimeError, OSError) as error:
        _report(args, f"{type(error).__name__}: {redact(str(error))}")
        return EXIT_FAILURE


def _report(args: argparse.Namespace, message: str) -> None:
    if args.debug:
        traceback.print_exc()
    print(f"globaldarts: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
