"""The CPU threads a worker uses: the cores it may run on, shared with the other workers
running on this machine under the same study root, so that they do not thrash."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

import torch

logger = logging.getLogger(__name__)


def alive(pid: int) -> bool:
    """Whether a process of this machine is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class CoreShare:
    """This worker's share of the machine's cores while it runs: it registers under
    ``ROOT/.workers`` and, before each trial, takes the cores it may use (its CPU affinity)
    divided by the workers registered there. ``OMP_NUM_THREADS``, when set, is the user's
    own choice and is kept."""

    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / ".workers"
        self.host = socket.gethostname()
        self.me = self.folder / f"{self.host}:{os.getpid()}"

    def __enter__(self) -> CoreShare:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.me.touch()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.me.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the last worker leaves no folder behind
            self.folder.rmdir()

    def workers(self) -> int:
        """The live workers registered on this machine (this one included); the files of
        workers that died are removed."""
        count = 0
        for entry in self.folder.glob(f"{self.host}:*"):
            pid = entry.name.rpartition(":")[2]
            if pid.isdigit() and alive(int(pid)):
                count += 1
            else:
                entry.unlink(missing_ok=True)
        return max(count, 1)

    def apply(self) -> int:
        """Set this process's thread count to its share; returns it."""
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, len(os.sched_getaffinity(0)) // self.workers())
        if threads != torch.get_num_threads():
            logger.info("using %d CPU threads", threads)
            torch.set_num_threads(threads)
        return threads
