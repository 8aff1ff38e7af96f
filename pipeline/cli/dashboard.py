"""``globaldarts dashboard``: a study in optuna-dashboard."""

from __future__ import annotations

import argparse

from pipeline.cli.options import DEFAULT_STUDY, storage_options


class Dashboard:
    name = "dashboard"
    help = "open a study in optuna-dashboard"
    parents = (storage_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
        parser.add_argument("--port", type=int, default=8080, help="default: 8080")
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: this machine only)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer import load_study
        from pipeline.results.dashboard import serve_dashboard

        load_study(args.name, root=args.root, storage=args.storage)
        print(f"optuna-dashboard for study {args.name}: "
              f"http://{args.host}:{args.port}/dashboard/", flush=True)
        serve_dashboard(args.name, root=args.root, storage=args.storage, host=args.host,
                        port=args.port)
        return 0
