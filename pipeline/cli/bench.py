"""``globaldarts bench``: time DARTS iterations of a study's supernet on random data, an
epoch and a perturbation selection of the study itself, and the outer loop alone, on
this device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli.options import (
    IMAGES_HELP,
    add_moved,
    device_options,
    pick_device,
    set_options,
    show_progress,
    whole_number,
)
from pipeline.variants import VARIANTS

if TYPE_CHECKING:
    from pipeline.config import StudyConfig

MOVED = {"--space": "--set space.name=NAME", "--channels": "--set space.channels=N",
         "--cells": "--set space.cells_per_stage=N (NB201) or space.layers=N (DARTS)",
         "--batch": "--set search.batch_size=N", "--precision": "--set search.precision=bf16",
         "--study": "the study file as the first argument, with --epoch"}


class Bench:
    name = "bench"
    help = "measure search speed and memory"
    parents = (set_options, device_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", nargs="?",
                            help="study file whose supernet, batch size and precision are "
                            "timed (default: NAS-Bench-201's search, C=16, N=5, batch 64)")
        parser.add_argument("--order", type=int, nargs="+", choices=[1, 2], default=[1, 2],
                            help="DARTS' first or second order, or both (default: both)")
        parser.add_argument("--variant", nargs="+", metavar="V",
                            choices=list(VARIANTS), help="time these DARTS variants "
                            f"({', '.join(VARIANTS)}; default: the study's)")
        parser.add_argument("--population", type=whole_number(1), nargs="+", default=[1],
                            metavar="K", help="also time K first-order searches stacked into "
                            "one batched computation (e.g. --order 1 --population 1 2 4 8 16)")
        parser.add_argument("--memory-format", nargs="+", choices=["channels_last", "nchw"],
                            default=["channels_last"],
                            help="the supernet's memory format; give both to compare them")
        parser.add_argument("--mode", nargs="+", choices=["eager", "compiled"],
                            default=["eager"], help="compiled: through torch.compile (search."
                            "compile = true); the warm-up pays the compilation; give both to "
                            "compare them")
        parser.add_argument("--iterations", type=whole_number(1), default=10,
                            help="timed search iterations per setting (default 10)")
        parser.add_argument("--warmup", type=whole_number(0), default=2,
                            help="untimed iterations first (default 2)")
        parser.add_argument("--epoch", action="store_true",
                            help="also time an epoch of the study on its own data")
        parser.add_argument("--selection", action="store_true",
                            help="also time one whole perturbation selection of the study's "
                            "supernet on its own validation data (no fine-tuning)")
        parser.add_argument("--outer-dims", type=whole_number(0), default=0,
                            help="also time the outer loop alone: CMA-ES over this many floats")
        parser.add_argument("--outer-trials", type=whole_number(1), default=200,
                            help="trials of that outer-loop timing (default 200)")
        parser.add_argument("--outer-epochs", type=whole_number(1), default=50,
                            help="values each outer-loop trial reports")
        parser.add_argument("--json", help="write the records to this JSON file")
        _judge_arguments(parser)
        add_moved(parser, MOVED)

    def run(self, args: argparse.Namespace) -> int:
        import json

        import torch

        from pipeline.bench import (
            check_iterations,
            in_fresh_process,
            measure_epoch,
            measure_outer,
            measure_selection,
        )
        from pipeline.config import StudyConfig, load, with_overrides

        config = (load(args.study, args.set) if args.study
                  else with_overrides(StudyConfig(name="bench"), args.set))
        if args.judges:
            return _judges(config, args)
        device = str(pick_device(args.device))
        check_iterations(args.order, args.population, "compiled" in args.mode)
        print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU "
              f"threads; median of {args.iterations} iterations after {args.warmup} warm-up")
        records = _iterations(config, args, device)
        if args.epoch:
            records.append(in_fresh_process(measure_epoch, config=config, device=device))
        if args.selection:
            records.append(in_fresh_process(measure_selection, config=config, device=device))
        if args.outer_dims:
            records.append(in_fresh_process(measure_outer, dims=args.outer_dims,
                                            trials=args.outer_trials,
                                            epochs=args.outer_epochs))
        _print_records(records)
        if args.json:
            Path(args.json).write_text(json.dumps([r.to_dict() for r in records], indent=2))
        return 0


def _judge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judges", metavar="CELLS.csv",
                        help="instead, benchmark the ways of choosing among these NB201 "
                        "cells (their [select] settings from the study file), scored by "
                        "--nb201-table; measurements are kept in --out and taken up")
    parser.add_argument("--nb201-table", metavar="CSV",
                        help="NAS-Bench-201's table, which scores the judges")
    parser.add_argument("--out", default="reports/judges",
                        help="folder of the judges' measurements, table and figure")
    parser.add_argument("--images", action="store_true", help=IMAGES_HELP)


def _judges(config: StudyConfig, args: argparse.Namespace) -> int:
    """Measure the judges on the cells (what ``--out`` holds is taken up), score them by
    the table, print the table and write it with its figure."""
    from pipeline.config import ConfigError
    from pipeline.results.ground_truth import load_table, lookup
    from pipeline.results.judges import measure, read_cells, score_judges, write_judges

    if not args.nb201_table:
        raise ConfigError("--judges needs --nb201-table: the table scores the judges")
    table = load_table(args.nb201_table)
    cells = read_cells(args.judges)
    truth = {cell.to_str(): lookup(table, cell)["cifar10"] for cell in cells}
    measured = measure(cells, config, out=Path(args.out) / "measured",
                       device=pick_device(args.device), progress=show_progress(args))
    scores = score_judges(measured, truth)
    page = write_judges(scores, Path(args.out), images=args.images)
    print(scores.round(3).to_markdown(index=False))
    print(f"page           {page}")
    return 0


def _iterations(config: StudyConfig, args: argparse.Namespace, device: str) -> list[Any]:
    """A record per variant, order, memory format, mode and population size asked for."""
    from pipeline.bench import in_fresh_process, measure_iteration
    from pipeline.config import ConfigError, with_overrides

    first_order_only = [name for name, cls in VARIANTS.items() if cls.first_order_only]

    pairs = [(with_overrides(config, [f"search.variant={name}"]), order)
             for name in args.variant or [config.search.variant] for order in args.order]
    runnable = [(timed, order) for timed, order in pairs
                if order == 1 or (timed.search.variant not in first_order_only
                                  and 1 in args.population)]
    if not runnable:
        raise ConfigError(f"--order 2 cannot time {', '.join(first_order_only)} (first order "
                          "only): add --order 1")
    for name in sorted({timed.search.variant for timed, order in pairs if order == 2}
                       & set(first_order_only)):
        print(f"{name}: first order only, its second order is not timed")
    if 2 in args.order and max(args.population) > 1:
        print("populations run first order: their second order is not timed")
    return [in_fresh_process(measure_iteration, config=timed, order=order, device=device,
                             warmup=args.warmup, iterations=args.iterations,
                             population=population,
                             channels_last=memory_format == "channels_last",
                             compiled=mode == "compiled")
            for timed, order in runnable
            for memory_format in args.memory_format for mode in args.mode
            for population in args.population if order == 1 or population == 1]


def _print_records(records: list) -> None:  # type: ignore[type-arg]
    print(f"{'kind':10} {'space':6} {'variant':11} {'order':>5} {'batch':>5} {'C':>3} {'N':>3} "
          f"{'K':>3} "
          f"{'format':>6} {'mode':>8} {'median ms':>10} {'peak MiB':>9} {'iter/s':>7} "
          f"{'trials/h':>9}")
    for r in records:
        per_hour = f"{r.trials_per_hour:9.1f}" if r.trials_per_hour else f"{'':9}"
        per_s = (f"{r.member_iterations_per_s:7.2f}" if r.member_iterations_per_s
                 else f"{'':7}")
        print(f"{r.kind:10} {r.space:6} {r.variant:11} {r.order:5d} {r.batch:5d} {r.channels:3d} "
              f"{r.cells_per_stage:3d} {r.population:3d} "
              f"{'NHWC' if r.channels_last else 'NCHW':>6} "
              f"{'compiled' if r.compiled else 'eager':>8} {r.median_ms:10.1f} "
              f"{r.peak_mem_mib:9.0f} {per_s} {per_hour}")
