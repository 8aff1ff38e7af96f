"""The ``globaldarts`` command: the only place that reads argv, sets up logging and picks
the device. Each command is one class in its own module (its options and its action);
``main`` parses, runs it and turns errors into one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import Protocol

from pipeline.cli.bench import Bench
from pipeline.cli.compare import Compare
from pipeline.cli.dashboard import Dashboard
from pipeline.cli.evaluate import Evaluate
from pipeline.cli.export import Export
from pipeline.cli.options import configure_logging, global_options
from pipeline.cli.picks import Picks
from pipeline.cli.report import Report
from pipeline.cli.search import Search, Terminated
from pipeline.cli.select import Select
from pipeline.cli.status import Status
from pipeline.cli.studies import Delete, Fork, List
from pipeline.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
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


class Command(Protocol):
    """A command: its name and help line, the shared options it takes (argparse
    parents), its own options, and its action, which returns the exit code."""

    @property
    def name(self) -> str: ...

    @property
    def help(self) -> str: ...

    @property
    def parents(self) -> tuple[Callable[[], argparse.ArgumentParser], ...]: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {command.name: command for command in (
    Search(), Select(), Status(), List(), Fork(), Delete(), Report(), Compare(), Export(),
    Picks(), Evaluate(), Dashboard(), Bench())}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.command`` names the one given."""
    parser = argparse.ArgumentParser(prog="globaldarts", description=DESCRIPTION,
                                     epilog=EPILOG, parents=[global_options()],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        parents = [global_options(suppress=True), *(make() for make in command.parents)]
        command.add_arguments(commands.add_parser(command.name, help=command.help,
                                                  parents=parents))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    args = build_parser().parse_args(argv)
    args.storage = getattr(args, "storage", None)
    try:
        configure_logging(args)
    except OSError as error:  # a log file that cannot be written
        _report(args, f"error: --log-file {args.log_file}: {error.strerror or error}")
        return EXIT_USAGE
    try:
        with logging_redirect_tqdm():
            return COMMANDS[args.command].run(args)
    except BrokenPipeError:  # the reader of the output left (| head): nothing was lost
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as error:
        outcome = _outcome(error)
        if outcome is None:
            raise
        code, message = outcome
        _report(args, message)
        return code


def _outcome(error: BaseException) -> tuple[int, str] | None:
    """The exit code and message for an error that ended a command; None for an error
    nobody expects (a bug), whose traceback is worth seeing."""
    import optuna
    import sqlalchemy

    from pipeline.checkpoint import CheckpointError
    from pipeline.outer.storage import StudyError
    from pipeline.results.figures import ImageExportError
    from pipeline.results.ground_truth import TableError
    from pipeline.search import PopulationError
    from pipeline.search.data import DatasetError
    from pipeline.spaces import GenotypeError

    if isinstance(error, ConfigError | StudyError | DatasetError | GenotypeError | TableError
                  | PopulationError | ImageExportError):
        return EXIT_USAGE, f"error: {error}"
    if isinstance(error, optuna.exceptions.StorageInternalError | sqlalchemy.exc.DatabaseError):
        cause = _root_cause(error)
        if "full" in cause:  # SQLite's "database or disk is full": the trial resumes later
            return EXIT_FAILURE, (f"the study's storage failed: {cause}; once there is room, "
                                  "run the same command again to resume")
        return EXIT_USAGE, (f"error: the study's storage failed: {cause} (a damaged "
                            "database? restore a copy, or move it away to start afresh)")
    if isinstance(error, KeyboardInterrupt):
        code = EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED
        return code, "interrupted; run the same command again to resume"
    if isinstance(error, OSError):  # a full disk, say: the trial it stopped resumes next time
        return EXIT_FAILURE, (f"{type(error).__name__}: {error}; once that is mended, run the "
                              "same command again to resume")
    if isinstance(error, CheckpointError | RuntimeError):
        return EXIT_FAILURE, f"{type(error).__name__}: {error}"
    return None


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost error that caused ``error``."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


def _report(args: argparse.Namespace, message: str) -> None:
    """One line on standard error; with ``--debug`` the traceback first (passwords
    hidden there too)."""
    from pipeline.outer.storage import redact

    if args.debug:
        print(redact(traceback.format_exc(), url=args.storage), file=sys.stderr, end="")
    message = redact(" ".join(message.split()), url=args.storage)
    print(f"globaldarts: {message}", file=sys.stderr)


__all__ = ["COMMANDS", "build_parser", "main"]
