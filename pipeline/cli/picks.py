"""``globaldarts picks``: the picks that comparisons recorded, summarised for a results
page."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.options import report_options


class Picks:
    name = "picks"
    help = "summarise recorded picks (compare --picks) per setting, method and budget"
    parents = (report_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("picks", help="the picks table, a CSV that compare --picks wrote")
        parser.add_argument("--setting", action="append", required=True, dest="settings",
                            help="a setting to summarise (repeatable; in this order)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.results.picks import read_picks, write_picks_summary

        picks = read_picks(Path(args.picks), args.settings)
        out = Path(args.out) / "picks"
        write_picks_summary(picks, out, images=args.images)
        print((out / "picks.md").read_text(encoding="utf-8"))
        print(f"figure         {out / 'picks.html'}")
        return 0
