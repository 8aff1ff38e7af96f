"""The CPU threads a worker uses: the cores it may run on, shared with the other workers
running on this machine under the same study root, so that they do not thrash."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

import torch

from pipeline.outer.record import TrialRecord

logger = logging.getLogger(__name__)

WORKERS_DIR = ".workers"


def process_start(pid: int) -> str | None:
    """When a process of this machine started (clock ticks after boot, from ``/proc``), so
    that a registration outliving its process is not taken for a later process that got
    the same number; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[19]  # field 22: starttime


def alive(pid: int, started: str | None = None) -> bool:
    """Whether a process of this machine is running, and, given when it ``started``
    (``process_start``), is still that process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return started is None or process_start(pid) in (None, started)


def local_worker(record: TrialRecord) -> int | None:
    """The process number of a trial's worker when it ran on this machine; None for
    another machine's."""
    host, _, pid = (record.worker or "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def worker_lives(record: TrialRecord) -> bool:
    """Whether a trial's worker is a live process of this machine (the same process: its
    start time is checked where the trial recorded it)."""
    pid = local_worker(record)
    return pid is not None and alive(pid, record.worker_started or None)


def worker_id() -> str:
    """This worker as ``host:pid``, the name its registration and its trials carry."""
    return f"{socket.gethostname()}:{os.getpid()}"


class CoreShare:
    """This worker's share of the machine's cores while it runs study ``study``: it
    registers under ``ROOT/.workers`` (its study and its process's start time) and, before
    each trial, takes the cores it may use (its CPU affinity) divided by the workers
    registered there. ``OMP_NUM_THREADS``, when set, is the user's own choice and is kept."""

    def __init__(self, root: str | Path, study: str = "") -> None:
        self.folder = Path(root) / WORKERS_DIR
        self.host = socket.gethostname()
        self.me = self.folder / worker_id()
        self.study = study

    def __enter__(self) -> CoreShare:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.me.write_text(json.dumps({"study": self.study,
                                       "started": process_start(os.getpid())}))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.me.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the last worker leaves no folder behind
            self.folder.rmdir()

    def workers(self) -> int:
        """The live workers registered on this machine (this one included); the files of
        workers that died are removed."""
        return max(len(live_registrations(self.folder.parent, host=self.host)), 1)

    def apply(self) -> int:
        """Set this process's thread count to its share; returns it."""
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, len(os.sched_getaffinity(0)) // self.workers())
        if threads != torch.get_num_threads():
            logger.info("using %d CPU threads", threads)
            torch.set_num_threads(threads)
        return threads


def live_registrations(root: str | Path, *, host: str | None = None) -> dict[str, str]:
    """The live workers registered under ``root`` on this machine, as ``host:pid`` ->
    the study each runs ("" when a registration does not say); the registrations of
    processes that ended (or whose number a later process took) are removed."""
    host = host or socket.gethostname()
    live = {}
    for entry in (Path(root) / WORKERS_DIR).glob(f"{host}:*"):
        pid = entry.name.rpartition(":")[2]
        try:
            record = json.loads(entry.read_text() or "{}")
        except (OSError, ValueError):
            record = {}
        if not isinstance(record, dict):
            record = {}
        if pid.isdigit() and alive(int(pid), record.get("started")):
            live[entry.name] = str(record.get("study", ""))
        else:
            entry.unlink(missing_ok=True)
    return live
