"""``globaldarts export``: a study's best (or given) cell in a format other tools read."""

from __future__ import annotations

import argparse

from pipeline.cli.options import DEFAULT_STUDY, storage_options
from pipeline.config import ConfigError


class Export:
    name = "export"
    help = "print a study's cell"
    parents = (storage_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
        parser.add_argument("--trial", type=int, help="trial number (default: the best)")
        parser.add_argument("--selected", action="store_true",
                            help="the cell the selection stage chose (globaldarts select)")
        parser.add_argument("--format", help="the space's own cell format (nb201, darts; "
                                             "the default) or json")

    def run(self, args: argparse.Namespace) -> int:
        """Print the cell; for a two-objective study, every cell on its Pareto front, one
        per line (JSON: a list)."""
        import json

        from pipeline.outer import trial_cells
        from pipeline.outer.record import TrialRecord
        from pipeline.spaces import parse_genotype

        found = trial_cells(args.name, trial=args.trial, root=args.root, storage=args.storage,
                            selected=args.selected)
        genotypes = [(trial, parse_genotype(cell)) for trial, cell in found]
        space = genotypes[0][1].space
        if args.format == "json":
            records = [{**genotype.to_json(), "study": args.name, "trial": trial.number,
                        "values": trial.values,
                        "eval_params_M": TrialRecord.of(trial).eval_params_M}
                       for trial, genotype in genotypes]
            print(json.dumps(records if len(records) > 1 else records[0], indent=2))
        elif args.format in (None, space):
            for _, genotype in genotypes:
                print(genotype.to_str())
        else:
            raise ConfigError(f"study {args.name!r} searched {space} cells; use --format "
                              f"{space} or json")
        return 0
