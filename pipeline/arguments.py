"""The ``globaldarts`` command line's commands and options (argparse only, no work done)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_STUDY = "default"
DESCRIPTION = """\
Global DARTS: an Optuna study (CMA-ES by default) picks each DARTS search's start
point (initial architecture logits, weight-init offsets, optional hyperparameters);
every trial is a DARTS search, pruned when hopeless, kept in a resumable database."""
EPILOG = """examples:
  globaldarts search                                  run studies/default.toml
  globaldarts search studies/nb201-cifar10-small.toml --set search.epochs=2
  globaldarts status default && globaldarts report default
  globaldarts compare studies/nb201-cifar10-small.toml --seeds 3 --jobs 3 --nb201-table nb201.csv
  globaldarts dashboard default"""
SET_HELP = "override a study field, e.g. search.epochs=2 (repeatable)"
DEVICE_HELP = "auto, cpu, cuda or cuda:N (default: auto, a GPU when there is one)"
IMAGES_HELP = "also write each figure as a PNG (needs globaldarts[images] and Chrome)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.command`` names the one given."""
    parser = argparse.ArgumentParser(prog="globaldarts", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only, no bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--log-file", help="also write the log to this file")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_search, _add_status, _add_report, _add_compare, _add_export,
                _add_evaluate, _add_dashboard, _add_bench):
        add(commands)
    return parser


def _add_search(commands: Commands) -> None:
    search = commands.add_parser("search", help="run or resume a study")
    search.add_argument("study", nargs="?",
                        help=f"study file (default: ROOT/{DEFAULT_STUDY}.toml)")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=SET_HELP)
    search.add_argument("--n-trials", type=int, help="the study's total trial budget")
    search.add_argument("--device", default="auto", help=DEVICE_HELP)
    search.add_argument("--population", type=int, default=1, metavar="K",
                        help="run K trials at a time as one batched population on the "
                        "device (first-order DARTS; default 1)")
    search.add_argument("--deterministic", action="store_true",
                        help="use only deterministic kernels")
    search.add_argument("--force", action="store_true",
                        help="resume even if the study file changed")
    _add_storage_args(search)


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="show a study's trials")
    status.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
    _add_storage_args(status)


def _add_report(commands: Commands) -> None:
    report = commands.add_parser("report", help="write a study's HTML report")
    report.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
    report.add_argument("--out", default="reports", help="folder of reports (default: reports)")
    report.add_argument("--images", action="store_true", help=IMAGES_HELP)
    _add_storage_args(report)


def _add_compare(commands: Commands) -> None:
    compare = commands.add_parser("compare", help="plain DARTS vs random vs CMA-ES starts")
    compare.add_argument("study", help="study file")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help=SET_HELP)
    compare.add_argument("--nb201-table", help="score each method's cells in this "
                                               "NAS-Bench-201 ground-truth CSV")
    compare.add_argument("--retrain-epochs", type=int, default=0,
                         help="also train each method's best cell from scratch this long")
    compare.add_argument("--seeds", type=int, default=1, help="run each method with this "
                         "many study seeds, from the file's seed up (default 1)")
    compare.add_argument("--methods", nargs="+", metavar="METHOD",
                         help="run only these of darts, random and cmaes (or the study's "
                         "sampler in a two-objective comparison)")
    compare.add_argument("--population", type=int, default=1, metavar="K",
                         help="run each study's trials K at a time as one batched population")
    compare.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="run N of the method-and-seed studies side by side, each in "
                         "its own process with 1/N of the CPU threads (default 1)")
    compare.add_argument("--device", default="auto", help=DEVICE_HELP)
    compare.add_argument("--out", default="reports",
                         help="folder of reports (default: reports)")
    compare.add_argument("--images", action="store_true", help=IMAGES_HELP)
    _add_storage_args(compare)


def _add_export(commands: Commands) -> None:
    export = commands.add_parser("export", help="print a study's cell")
    export.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
    export.add_argument("--trial", type=int, help="trial number (default: the best)")
    export.add_argument("--format", choices=["nb201", "darts", "json"],
                        help="default: the study's own cell format")
    _add_storage_args(export)


def _add_evaluate(commands: Commands) -> None:
    evaluate = commands.add_parser("evaluate", help="measure a cell")
    evaluate.add_argument("--genotype", required=True,
                          help="an NB201 cell string, a DARTS Genotype(...) literal, or "
                               "STUDY[:TRIAL]")
    evaluate.add_argument("--count-params", action="store_true",
                          help="print the evaluation network's parameters without training")
    evaluate.add_argument("--nb201-table", help="look the cell up in a NAS-Bench-201 "
                                                "ground-truth CSV (arch_str, <dataset>_test)")
    evaluate.add_argument("--dataset", default="cifar10",
                          help="digits, cifar10, cifar100 or imagefolder (training only)")
    evaluate.add_argument("--data-root", default="data",
                          help="the dataset's folder (default: data)")
    evaluate.add_argument("--download", action="store_true",
                          help="let torchvision download the dataset into --data-root")
    evaluate.add_argument("--epochs", type=int, help="default: the space's protocol "
                                                     "(NB201 200, DARTS 600)")
    evaluate.add_argument("--batch-size", type=int, help="default: the space's protocol")
    evaluate.add_argument("--lr", type=float, help="initial learning rate (default: the "
                                                   "space's protocol)")
    evaluate.add_argument("--channels", type=int, help="initial channels (default: the "
                                                       "space's protocol)")
    evaluate.add_argument("--cells", type=int, help="NB201: cells per stage; DARTS: cells")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="initialisation and batch order (default 0)")
    evaluate.add_argument("--device", default="auto", help=DEVICE_HELP)
    evaluate.add_argument("--out", default="evaluations",
                          help="folder of training checkpoints (a rerun resumes)")
    _add_storage_args(evaluate)


def _add_dashboard(commands: Commands) -> None:
    dashboard = commands.add_parser("dashboard", help="open a study in optuna-dashboard")
    dashboard.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
    dashboard.add_argument("--port", type=int, default=8080, help="default: 8080")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default: this machine only)")
    _add_storage_args(dashboard)


def _add_bench(commands: Commands) -> None:
    bench = commands.add_parser("bench", help="measure search speed and memory")
    bench.add_argument("--space", choices=["nb201", "darts"], default="nb201",
                       help="the supernet's cell space (default: nb201)")
    bench.add_argument("--order", type=int, nargs="+", choices=[1, 2], default=[1, 2],
                       help="DARTS' first or second order, or both (default: both)")
    bench.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    bench.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                       help="bf16: forward passes in bfloat16 autocast (for GPUs)")
    bench.add_argument("--population", type=int, nargs="+", default=[1], metavar="K",
                       help="also time K first-order searches stacked into one batched "
                       "computation (e.g. --order 1 --population 1 2 4 8 16)")
    bench.add_argument("--memory-format", nargs="+", choices=["channels_last", "nchw"],
                       default=["channels_last"],
                       help="the supernet's memory format; give both to compare them")
    bench.add_argument("--mode", nargs="+", choices=["eager", "compiled"], default=["eager"],
                       help="compiled: through torch.compile (search.compile = true); the "
                       "warm-up pays the compilation; give both to compare them")
    bench.add_argument("--channels", type=int, default=16,
                       help="the supernet's initial channels (default 16)")
    bench.add_argument("--cells", type=int, help="NB201: cells per stage (default 5); "
                                                 "DARTS: cells in all (default 8)")
    bench.add_argument("--iterations", type=int, default=10,
                       help="timed search iterations per setting (default 10)")
    bench.add_argument("--warmup", type=int, default=2,
                       help="untimed iterations first (default 2)")
    bench.add_argument("--device", default="auto", help=DEVICE_HELP)
    bench.add_argument("--study", help="also time an epoch of this study file "
                                       "(e.g. studies/default.toml)")
    bench.add_argument("--outer-dims", type=int, default=0,
                       help="also time the outer loop alone: CMA-ES over this many floats")
    bench.add_argument("--outer-trials", type=int, default=200,
                       help="trials of that outer-loop timing (default 200)")
    bench.add_argument("--outer-epochs", type=int, default=50,
                       help="values each outer-loop trial reports")
    bench.add_argument("--json", help="write the records to this JSON file")


def _add_storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="studies",
                        help="folder of study files and study state (default: studies)")
    parser.add_argument("--storage", help="Optuna storage URL (default: ROOT/NAME/study.db)")
