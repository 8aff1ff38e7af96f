"""The ``globaldarts`` command: the only place that reads argv, sets up logging and picks
the device. Each command is one class in its own module (its options and its action);
``main`` parses, runs it and turns errors into one line and an exit code."""

from __future__ import annotations

import argparse
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
from pipeline.cli.report import Report
from pipeline.cli.search import Search, Terminated
from pipeline.cli.status import Status
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
    Search(), Status(), Report(), Compare(), Export(), Evaluate(), Dashboard(), Bench())}


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

    from pipeline.checkpoint import CheckpointError
    from pipeline.outer.storage import StudyError, redact
    from pipeline.results.figures import ImageExportError
    from pipeline.results.ground_truth import TableError
    from pipeline.search import PopulationError
    from pipeline.search.data import DatasetError
    from pipeline.spaces import GenotypeError

    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        with logging_redirect_tqdm():
            return COMMANDS[args.command].run(args)
    except (ConfigError, StudyError, DatasetError, GenotypeError, TableError,
            PopulationError, ImageExportError) as error:
        _report(args, f"error: {redact(str(error))}")
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        _report(args, "interrupted; run the same command again to resume")
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    except (CheckpointError, RuntimeError, OSError) as error:
        _report(args, f"{type(error).__name__}: {redact(str(error))}")
        return EXIT_FAILURE


def _report(args: argparse.Namespace, message: str) -> None:
    if args.debug:
        traceback.print_exc()
    print(f"globaldarts: {' '.join(message.split())}", file=sys.stderr)


__all__ = ["COMMANDS", "build_parser", "main"]
