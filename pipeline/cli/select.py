"""``globaldarts select``: choose a study's cell by training its distinct cells in rungs of
successive halving (its ``[select]`` settings), then print the pick beside the trial
objective's own."""

from __future__ import annotations

import argparse
import signal

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
from pipeline.cli.search import raise_terminated


class Select:
    name = "select"
    help = "choose a study's cell by training its candidates (successive halving)"
    parents = (set_options, device_options, storage_options, artifacts_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", nargs="?",
                            help=f"study file (default: ROOT/{DEFAULT_STUDY}.toml); its "
                            "[select] section holds the settings")
        parser.add_argument("--top", type=int, metavar="N",
                            help="only the N best distinct cells by the trial objective")
        parser.add_argument("--first", type=int, metavar="N",
                            help="only the cells of the study's first N searches (a "
                            "selection of its own, kept beside the one among all)")
        parser.add_argument("--restart", action="store_true",
                            help="drop a selection begun before (its trials) and begin "
                            "anew; trainings it made are taken up where the same are asked")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer import best_trial, load_study
        from pipeline.outer.record import TrialRecord
        from pipeline.outer.select import run_selection
        from pipeline.results.dashboard import DashboardPublisher

        config = study_file_config(args, [] if args.top is None else [f"select.top={args.top}"])
        signal.signal(signal.SIGTERM, raise_terminated)
        selection = run_selection(config, root=args.root, storage=args.storage,
                                  device=pick_device(args.device), restart=args.restart,
                                  progress=show_progress(args), searches=args.first,
                                  artifacts=args.artifacts)
        study = load_study(config.name, root=args.root, storage=args.storage)
        DashboardPublisher().publish_study(study)  # its note shows the selection
        best = best_trial(study.get_trials(deepcopy=False))
        print(f"selected cell  {selection.cell}")
        print(f"judge          {selection.judge}: {selection.candidates} "
              f"candidates" + ("" if args.first is None else
                               f" of the first {args.first} searches")
              + f", {selection.epochs} epochs of training; trials "
              f"{', '.join(map(str, selection.trials))} ended on it")
        if best is not None:
            print(f"trial objective's pick  {TrialRecord.of(best).cell} (trial {best.number})")
        return 0
