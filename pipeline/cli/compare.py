"""``globaldarts compare``: plain DARTS, random starts and CMA-ES starts at one budget."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.options import (
    device_options,
    pick_device,
    report_options,
    set_options,
    show_progress,
    storage_options,
    whole_number,
)
from pipeline.cli.search import population_options, raise_terminated
from pipeline.variants import VARIANTS

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.config import StudyConfig


class Compare:
    name = "compare"
    help = "plain DARTS vs random vs CMA-ES starts"
    parents = (set_options, device_options, population_options, report_options,
               storage_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", help="study file")
        parser.add_argument("--nb201-table", help="score each method's cells in this "
                                                  "NAS-Bench-201 ground-truth CSV")
        parser.add_argument("--retrain-epochs", type=whole_number(0), default=0,
                            help="also train each method's best cell from scratch this long")
        parser.add_argument("--seeds", type=whole_number(1), default=1,
                            help="run each method with this many study seeds, from the "
                            "file's seed up (default 1)")
        parser.add_argument("--methods", nargs="+", metavar="METHOD",
                            help="run only these of darts, random and cmaes (or the study's "
                            "sampler in a two-objective comparison)")
        parser.add_argument("--variants", nargs="+", metavar="VARIANT", choices=list(VARIANTS),
                            help="compare each of these inner searches "
                            f"({', '.join(VARIANTS)}): studies NAME-VARIANT-sSEED-METHOD")
        parser.add_argument("--picks", help="also write each pick into this CSV (rows of "
                            "the same setting and runs are replaced)")
        parser.add_argument("--setting", help="the picks' setting name (default: the study's)")
        parser.add_argument("--select", action="store_true",
                            help="also choose each study's cell by the selection stage (the "
                            "study file's [select]; see globaldarts select), its epochs "
                            "counted beside the search's")
        parser.add_argument("--first", type=whole_number(1), metavar="N",
                            help="also tabulate each study as its first N searches left it "
                            "(with --select, the judge's pick among their cells too): the "
                            "first_* columns")
        parser.add_argument("--jobs", type=whole_number(1), default=1, metavar="N",
                            help="run N of the method-and-seed studies side by side, each in "
                            "its own process with 1/N of the CPU threads (default 1)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.config import load
        from pipeline.outer import run_methods
        from pipeline.outer.methods import plan_comparison
        from pipeline.outer.select import run_selection
        from pipeline.results.compare import tabulate_comparison
        from pipeline.results.dashboard import DashboardPublisher

        config = load(args.study, args.set)
        signal.signal(signal.SIGTERM, raise_terminated)
        comparison = plan_comparison(config, seeds=args.seeds, methods=args.methods,
                                     variants=args.variants)
        picks, table = _checked_outputs(config, args)
        device, progress = pick_device(args.device), show_progress(args)
        run_methods(comparison.all_studies, root=args.root, device=device,
                    storage=args.storage, jobs=args.jobs, population=args.population,
                    progress=progress, publisher=DashboardPublisher())
        if args.select:
            for study in comparison.all_studies:
                for searches in (None, args.first) if args.first else (None,):
                    run_selection(study.config, root=args.root, storage=args.storage,
                                  device=device, searches=searches)
        out_dir = comparison.out_dir(args.out)
        frame = tabulate_comparison(comparison, root=args.root, out_dir=out_dir,
                                    storage=args.storage, table=table,
                                    retrain_epochs=args.retrain_epochs, device=device,
                                    progress=progress, images=args.images, picks=picks,
                                    setting=args.setting, first=args.first)
        _print_tables(frame, seeds=args.seeds)
        print(f"table          {out_dir / 'compare.csv'} (summary: {out_dir / 'summary.csv'})")
        print(f"figure         {out_dir / 'compare.html'}")
        if args.images:
            print(f"images         {out_dir}/*.png")
        return 0


def _checked_outputs(config: StudyConfig, args: argparse.Namespace
                     ) -> tuple[Path | None, pd.DataFrame | None]:
    """The picks file and the ground-truth table, checked with the selection's settings:
    what would fail only after hours of searches fails now."""
    from pipeline.outer.select import check_select
    from pipeline.results.compare import check_picks
    from pipeline.results.ground_truth import check_scored, load_table
    from pipeline.spaces import get_space

    picks = None if args.picks is None else Path(args.picks)
    if picks is not None:
        check_picks(picks)
    table = None
    if args.nb201_table:
        check_scored(get_space(config.space.name))
        table = load_table(args.nb201_table)
    if args.select:
        check_select(config.select)
    return picks, table


# What a reader needs first of each method's pick; compare.csv keeps every column.
SHOWN = {"best_value": "objective", "cut_off": "cut off", "best_cifar10_test": "CIFAR-10 (table)",
         "max_cifar10_test": "best of its cells", "judge_cifar10_test": "judge (table)",
         "first_judge_cifar10_test": "judge, first searches",
         "retrain_test_acc": "retrained",
         "params_M": "params (M)", "skip_share": "skip", "none_share": "none",
         "trials": "trials", "epochs": "epochs", "select_budget": "select epochs"}


def _print_tables(frame: object, *, seeds: int) -> None:
    import pandas as pd

    from pipeline.results.compare import summarise

    assert isinstance(frame, pd.DataFrame)
    columns = {k: v for k, v in SHOWN.items() if k in frame}
    with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
        keys = [k for k in ("variant", "method", "seed") if k in frame and (
            k != "variant" or frame[k].nunique() > 1)]
        print(frame.set_index(keys)[list(columns)].rename(columns=columns).to_string())
        if seeds > 1:
            summary = summarise(frame).set_index(
                [k for k in ("variant", "start_space", "method") if k in frame])
            means = {f"mean_{k}": v for k, v in columns.items() if f"mean_{k}" in summary}
            print("\nmean over seeds:")
            print(summary[list(means)].rename(columns=means).to_string())
