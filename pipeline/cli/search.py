"""``globaldarts search``: run or resume a study, then print its pick."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.options import (
    DEFAULT_STUDY,
    artifacts_options,
    device_options,
    pick_device,
    set_options,
    show_progress,
    storage_options,
    study_file_config,
)

if TYPE_CHECKING:
    from pipeline.config import StudyConfig
    from pipeline.outer import StudySummary


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the running trial is left resumable."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def population_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--population", type=int, default=1, metavar="K",
                        help="run K trials at a time as one batched population on the device "
                        "(first-order DARTS; default 1)")
    return parent


class Search:
    name = "search"
    help = "run or resume a study"
    parents = (set_options, device_options, population_options, storage_options,
               artifacts_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", nargs="?",
                            help=f"study file (default: ROOT/{DEFAULT_STUDY}.toml)")
        parser.add_argument("--n-trials", type=int, help="the study's total trial budget")
        parser.add_argument("--deterministic", action="store_true",
                            help="use only deterministic kernels")
        parser.add_argument("--force", action="store_true",
                            help="resume even if the study file changed")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from pipeline.outer import run_study
        from pipeline.results.dashboard import DashboardPublisher

        config = study_file_config(args, [
            *([] if args.n_trials is None else [f"outer.n_trials={args.n_trials}"]),
            *([] if args.artifacts is None else [f"outer.artifacts={args.artifacts}"])])
        signal.signal(signal.SIGTERM, raise_terminated)
        device = pick_device(args.device)
        if args.deterministic:
            torch.use_deterministic_algorithms(True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        summary = run_study(config, root=args.root, storage=args.storage, device=device,
                            force=args.force, progress=show_progress(args),
                            population=args.population, publisher=DashboardPublisher())
        _print_summary(config, summary)
        return 0


def _print_summary(config: StudyConfig, summary: StudySummary) -> None:
    """The study's pick (or Pareto front), what it has spent and where it lives."""
    from pipeline.outer.record import TrialRecord

    best, baseline = summary.best, summary.baseline
    if best is None:
        print(f"no trial of study {summary.name} has completed yet")
    else:
        print(f"best cell      {TrialRecord.of(best).cell}")
        print(f"accuracy       {best.values[0]:.2f} % ({config.search.accuracy_objective} "
              f"objective; {TrialRecord.of(best).measured()}), trial {best.number}")
    if baseline is not None and best is not None and baseline.number != best.number:
        plain = TrialRecord.of(baseline)
        print(f"plain DARTS    {baseline.values[0]:.2f} % ({plain.measured()}), "
              f"trial {baseline.number}, its usual start: {plain.cell}")
    if config.search.multi_objective:
        print(f"pareto front   {len(summary.front)} cells (accuracy %, parameters M):")
        for trial in summary.front:
            print(f"  trial {trial.number:<4} {trial.values[0]:6.2f} "
                  f"{trial.values[1]:8.4f}  {TrialRecord.of(trial).cell}")
    if summary.epoch_budget:
        print(f"epochs         {summary.epochs_spent} of {summary.epoch_budget} spent "
              f"in {summary.finished} trials")
    else:
        print(f"trials         {summary.finished} of {summary.budget} finished")
    if summary.running:
        print(f"running        {summary.running} trials of other workers" + (
            "" if summary.heartbeat else "; a journal file keeps no heartbeat, so a trial "
            "whose worker was killed on another machine stays running: see 'status'"))
    print(f"study          {summary.state_dir} (storage {summary.storage})")
    if best is not None:
        root = summary.state_dir.parent
        where = ("" if root == Path("studies") else f" --root {root}") + (
            "" if summary.storage.startswith("sqlite:///") else " --storage URL")
        print(f"next           globaldarts report {summary.name}{where}; "
              f"globaldarts dashboard {summary.name}{where}")
