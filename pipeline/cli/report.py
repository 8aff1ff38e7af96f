"""``globaldarts report``: a study's HTML report and trials table."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.options import DEFAULT_STUDY, artifacts_options, report_options, storage_options


class Report:
    name = "report"
    help = "write a study's HTML report"
    parents = (report_options, storage_options, artifacts_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer import load_study
        from pipeline.outer.artifacts import study_artifacts
        from pipeline.outer.folder import belongs
        from pipeline.outer.storage import default_storage
        from pipeline.outer.study import state_dir
        from pipeline.results.report import write_report

        study = load_study(args.name, root=args.root, storage=args.storage)
        folder = state_dir(args.root, args.name)
        own = belongs(folder, study, args.storage or default_storage(folder))
        path = write_report(study, folder if own else None, Path(args.out) / args.name,
                            images=args.images,
                            artifacts=study_artifacts(study, args.artifacts))
        print(f"report         {path}")
        if not own:
            print(f"note           no learning curves: {folder} holds another study's files")
        print(f"trials table   {path.with_name('trials.csv')}")
        if args.images:
            print(f"images         {path.parent}/*.png")
        return 0
