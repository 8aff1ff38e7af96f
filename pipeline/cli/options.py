"""What several commands share: their common options (declared once, added to a command
as an argparse parent), picking the device, logging and progress bars."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.config import ConfigError

if TYPE_CHECKING:
    import torch

    from pipeline.config import StudyConfig

DEFAULT_STUDY = "default"
IMAGES_HELP = "also write each figure as a PNG (needs globaldarts[images] and Chrome)"


def study_file_config(args: argparse.Namespace, extra: list[str]) -> StudyConfig:
    """The study file a command names (``ROOT/default.toml`` when it names none), with its
    ``--set`` overrides and then ``extra`` ones.

    Raises:
        ConfigError: the file or an override is bad.
    """
    from pathlib import Path

    from pipeline.config import load

    path = Path(args.study) if args.study else Path(args.root) / f"{DEFAULT_STUDY}.toml"
    return load(path, [*args.set, *extra])


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def global_options(*, suppress: bool = False) -> argparse.ArgumentParser:
    """-v, -q, --debug and --log-file; a command repeats them with ``suppress``, so that
    they are accepted after the command too without resetting what came before it."""
    parent = _parent()
    parent.add_argument("-v", "--verbose", action="count", help="more log output",
                        default=argparse.SUPPRESS if suppress else 0)
    parent.add_argument("-q", "--quiet", action="store_true", help="errors only, no bars",
                        default=argparse.SUPPRESS if suppress else False)
    parent.add_argument("--debug", action="store_true", help="show tracebacks",
                        default=argparse.SUPPRESS if suppress else False)
    parent.add_argument("--log-file", help="also write the log to this file",
                        default=argparse.SUPPRESS if suppress else None)
    return parent


def storage_options() -> argparse.ArgumentParser:
    parent = _parent()
    parent.add_argument("--root", default="studies",
                        help="folder of study files and study state (default: studies)")
    parent.add_argument("--storage", help="Optuna storage URL (default: ROOT/NAME/study.db)")
    return parent


def artifacts_options() -> argparse.ArgumentParser:
    parent = _parent()
    parent.add_argument("--artifacts", metavar="URL",
                        help="artifact store of trial files, for workers that share no "
                        "folder: file:///PATH or s3://BUCKET (endpoint and keys from the "
                        "AWS_* environment); default: the study's outer.artifacts, else none")
    return parent


def device_options() -> argparse.ArgumentParser:
    parent = _parent()
    parent.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default: auto, a GPU when there is one)")
    return parent


def set_options() -> argparse.ArgumentParser:
    parent = _parent()
    parent.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study field, e.g. search.epochs=2 (repeatable)")
    return parent


def report_options(default_out: str = "reports") -> argparse.ArgumentParser:
    parent = _parent()
    parent.add_argument("--out", default=default_out,
                        help=f"folder of the output (default: {default_out})")
    parent.add_argument("--images", action="store_true", help=IMAGES_HELP)
    return parent


class Moved(argparse.Action):
    """An option that no longer exists: using it is a usage error naming its replacement."""

    def __init__(self, option_strings: list[str], dest: str, *, replacement: str,
                 **kwargs: object) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]
        self.replacement = replacement

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        raise argparse.ArgumentError(self, f"is gone; use {self.replacement}")


def add_moved(parser: argparse.ArgumentParser, replacements: dict[str, str]) -> None:
    """Options that were renamed: each answers with its replacement."""
    for option, replacement in replacements.items():
        parser.add_argument(option, action=Moved, replacement=replacement)


def pick_device(name: str) -> torch.device:
    """The device called ``name``; ``auto`` is the GPU when there is one.

    Raises:
        ConfigError: not a device name, or CUDA asked for where there is none.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                          "CUDA devices")
    return device


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars: on a terminal, unless ``--quiet``."""
    return not args.quiet and sys.stderr.isatty()


class _Redacting(logging.Filter):
    """Hides storage passwords in every log record (see ``redact``)."""

    def __init__(self, url: str | None) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        from pipeline.outer.storage import redact

        record.msg, record.args = redact(record.getMessage(), url=self.url), None
        return True


def configure_logging(args: argparse.Namespace) -> None:
    """Log to standard error (and ``--log-file``) at the level ``-v``/``-q`` ask for, with
    Optuna's records in the same stream."""
    import optuna

    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO,
                                              logging.DEBUG)[min(args.verbose, 2)]
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_Redacting(args.storage))
    logging.basicConfig(level=level, handlers=handlers, force=True)
    # progress lines (where there are no bars) show at the default level
    progress_level = level if args.quiet else min(level, logging.INFO)
    logging.getLogger("pipeline.progress").setLevel(progress_level)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(level)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            raise argparse.ArgumentTypeError(f"{value} must be {bound}")
        return value

    parse.__name__ = "whole number"
    return parse
