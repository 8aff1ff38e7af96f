"""``globaldarts status``: a study's trials as a table."""

from __future__ import annotations

import argparse

from pipeline.cli.options import DEFAULT_STUDY, storage_options

COLUMNS = ["number", "state", "value", "epochs_run", "cell", "skip_share", "eval_params_M",
           "wall_time_s"]


class Status:
    name = "status"
    help = "show a study's trials"
    parents = (storage_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")

    def run(self, args: argparse.Namespace) -> int:
        import pandas as pd

        from pipeline.outer import load_study
        from pipeline.results.report import trials_frame

        study = load_study(args.name, root=args.root, storage=args.storage)
        frame = trials_frame(study.get_trials(deepcopy=False))
        with pd.option_context("display.width", 200, "display.max_colwidth", 90,
                               "display.float_format", "{:.3f}".format):
            print(f"study {study.study_name}: {len(frame)} trials")
            print(frame[COLUMNS].to_string(index=False) if len(frame) else "(no trials)")
        return 0
