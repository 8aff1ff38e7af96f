"""``globaldarts status``: a study's trials as a table that fits the terminal."""

from __future__ import annotations

import argparse
import shutil
from typing import TYPE_CHECKING, Any

from pipeline.cli.options import DEFAULT_STUDY, storage_options

if TYPE_CHECKING:
    import pandas as pd


class Status:
    name = "status"
    help = "show a study's trials"
    parents = (storage_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
        parser.add_argument("--wide", action="store_true",
                            help="show whole cells (by default they are cut to the terminal)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer import load_study
        from pipeline.outer.record import StudySelection
        from pipeline.results.report import trials_frame

        study = load_study(args.name, root=args.root, storage=args.storage)
        frame = trials_frame(study.get_trials(deepcopy=False), StudySelection.of(study))
        marks = [mark for mark, column in (("* the pick", "best"),
                                           ("S the selected cell", "selected"))
                 if frame[column].any()]
        print(f"study {study.study_name}: {len(frame)} trials"
              + (f" ({', '.join(marks)})" if marks else ""))
        if len(frame):
            width = None if args.wide else shutil.get_terminal_size((120, 24)).columns
            print(status_table(frame, width))
        return 0


def status_table(frame: pd.DataFrame, width: int | None) -> str:
    """The trials as text: the pick marked, a running trial's latest value, a failed
    trial's reason or retry, and cells cut to fit ``width`` characters (None: whole)."""
    table = frame.assign(
        pick=frame["best"].map({True: "*", False: ""}) + frame["selected"].map(
            {True: "S", False: ""}),
        value=frame["value"].where(frame["state"] != "RUNNING", frame["last_value"]).map(_number),
        epochs=frame["epochs_run"].astype("string").fillna("-"),
        params=frame["eval_params_M"].map(_number),
        skip=frame["skip_share"].map(_number),
        time=frame["wall_time_s"].map(lambda s: "" if s != s else f"{s:.0f} s"),
        note=[_note(row) for row in frame.itertuples()],
        cell=frame["cell"].fillna("-"))
    columns = ["pick", "number", "state", "value", "epochs", "params", "skip", "time", "cell",
               "note"]
    if width is not None:
        others = len(_text(table.assign(cell=""), columns).splitlines()[0])
        room = max(width - others, 20)
        table["cell"] = table["cell"].map(lambda c: c if len(c) <= room else c[:room - 1] + "…")
    return _text(table, columns)


def _text(table: pd.DataFrame, columns: list[str]) -> str:
    """The table with its cells and notes left-aligned."""
    left = {name: table[name].str.ljust(int(table[name].str.len().max()))
            for name in ("cell", "note")}
    text: str = table.assign(**left)[columns].to_string(index=False)
    return text


def _number(value: float) -> str:
    return "" if value != value else f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def _note(row: Any) -> str:
    """A failed trial's reason and retry, or the trial a retry retries."""
    import pandas as pd

    parts = [row.fail_reason] if row.state == "FAIL" and isinstance(row.fail_reason, str) else []
    if not pd.isna(row.retried_as):
        parts.append(f"retried as {row.retried_as}")
    if not pd.isna(row.retry_of):
        parts.append(f"retry of {row.retry_of}")
    return "; ".join(parts)
