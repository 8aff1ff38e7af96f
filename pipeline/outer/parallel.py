"""Several studies side by side, each in a process of its own."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from pathlib import Path

import optuna
import torch
from tqdm.auto import tqdm

from pipeline.config import StudyConfig
from pipeline.outer.budget import Budget, budget_spent
from pipeline.outer.storage import StudyError, redact
from pipeline.outer.study import load_study, run_study
from pipeline.outer.trial_steps import Publisher

POLL_S = 5.0
STOP_GRACE_S = 5.0  # how long an interrupted study may take to leave its trial resumable


@dataclass(frozen=True, slots=True)
class _Settings:
    """What every study process runs with."""

    root: str | Path
    storage: str | None
    device: torch.device
    population: int
    threads: int
    log_level: int
    publisher: Publisher | None


def run_side_by_side(studies: Sequence[StudyConfig], *, jobs: int, root: str | Path,
                     storage: str | None, device: torch.device, population: int = 1,
                     progress: bool = False, publisher: Publisher | None = None) -> None:
    """Run (or resume) ``studies``, ``jobs`` at a time, each in a process of its own with
    an equal share of this process's CPU threads. Their log lines go to standard error,
    each named by its study; the progress bar counts the budgets of all of them.

    A study that fails does not stop the others. On an interruption (Ctrl-C, SIGTERM) the
    running studies stop as one interrupted study does: their trials resume next time.

    Raises:
        StudyError: some studies stopped with an error; the message names each, with its
            error's first line.
    """
    settings = _Settings(root=root, storage=storage, device=device, population=population,
                         threads=max(1, torch.get_num_threads() // jobs),
                         log_level=logging.getLogger().getEffectiveLevel(),
                         publisher=publisher)
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    errors: SimpleQueue[tuple[str, str]] = context.SimpleQueue()
    failures: dict[str, str] = {}
    waiting = list(studies)
    running: list[BaseProcess] = []
    opened: dict[str, optuna.Study] = {}
    with tqdm(total=sum(Budget.of(config).total for config in studies), unit="epoch",
              desc=f"{len(studies)} studies", disable=not progress) as bar:
        try:
            while waiting or running:
                while waiting and len(running) < jobs:
                    config = waiting.pop(0)
                    process = context.Process(target=_run, args=(config, settings, errors),
                                              name=config.name)
                    process.start()
                    running.append(process)
                wait([process.sentinel for process in running], timeout=POLL_S)
                while not errors.empty():
                    name, message = errors.get()
                    failures[name] = message
                for child in running:  # one that ended without a word: killed, say
                    code = child.exitcode
                    if code:
                        failures.setdefault(child.name, f"killed by signal {-code}"
                                            if code < 0 else f"exit code {code}")
                running = [process for process in running if process.is_alive()]
                bar.update(sum(_spent(config, settings, opened) for config in studies)
                           - bar.n)
        except BaseException:
            _stop(running)
            raise
    if failures:
        raise StudyError(failure_line(failures, len(studies)))


def failure_line(failures: dict[str, str], studies: int) -> str:
    """One line naming each failed study with its error; studies that failed alike share
    their error."""
    names_by_message: dict[str, list[str]] = {}
    for name, message in sorted(failures.items()):
        names_by_message.setdefault(message, []).append(name)
    return f"{len(failures)} of {studies} studies failed: " + "; ".join(
        f"{', '.join(names)}: {message}" for message, names in names_by_message.items())


def _run(config: StudyConfig, settings: _Settings, errors: SimpleQueue[tuple[str, str]]
         ) -> None:
    """One study process: log like the parent does, run the study, report a failure."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C does
    os.environ["OMP_NUM_THREADS"] = str(settings.threads)  # its share, kept by the study
    torch.set_num_threads(settings.threads)
    logging.basicConfig(level=settings.log_level, force=True, datefmt="%H:%M:%S",
                        format=f"%(asctime)s %(levelname)s {config.name}: %(message)s")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(settings.log_level)
    try:
        run_study(config, root=settings.root, storage=settings.storage,
                  device=settings.device, population=settings.population,
                  publisher=settings.publisher)
    except KeyboardInterrupt:
        errors.put((config.name, "interrupted; run the same command again to resume"))
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        message = str(error).splitlines()[0] if str(error) else ""
        errors.put((config.name, redact(f"{type(error).__name__}: {message}",
                                        url=settings.storage)))
        sys.exit(1)


def _spent(config: StudyConfig, settings: _Settings, opened: dict[str, optuna.Study]
           ) -> int:
    """How much of its budget a study has spent (nothing before it exists); ``opened``
    keeps the studies already opened."""
    if config.name not in opened:
        try:
            opened[config.name] = load_study(config.name, root=settings.root,
                                             storage=settings.storage)
        except StudyError:
            return 0
    return budget_spent(opened[config.name], Budget.of(config))


def _stop(processes: list[BaseProcess]) -> None:
    """Interrupt the study processes still running and wait for them to leave."""
    for process in processes:
        process.join(STOP_GRACE_S)  # a Ctrl-C reached them too: let them finish stopping
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()
