"""Claims on searches: while a trial runs a search, it holds a lock named by the search's
key under the studies' root, so that a trial of the same search in another study (the
first search that compare's method studies share, run side by side) waits for it and then
takes its checkpoint over instead of running the search a second time.

The lock is an advisory ``flock`` on ``ROOT/.search-claims/KEY.lock``, which the system
releases when its process ends, so a killed worker leaves no stale claim behind. Where
``fcntl`` is missing (Windows), claims hold nothing and the same search may run twice, as
it would without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CLAIMS_DIR = ".search-claims"


class SearchClaim:
    """The lock on one search among the studies under ``root``; ``held`` tells whether
    this claim holds it: always after a claim that waits, else only if no other claim
    held it. ``release`` (or the end of the process) frees it."""

    def __init__(self, root: Path, key: str, *, wait: bool) -> None:
        self.path = root / CLAIMS_DIR / f"{key}.lock"
        self._file: IO[bytes] | None = None
        if fcntl is not None:
            self._file = self._lock(wait)

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        """Free the lock, if this claim holds it; a second call does nothing. The lock
        file goes too (a claim that waited on it locks the file anew), and the last one
        takes the folder with it."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing the file releases its flock
            self._file = None
            with contextlib.suppress(OSError):  # other claims are in it
                self.path.parent.rmdir()

    def _lock(self, wait: bool) -> IO[bytes] | None:
        """The lock file, locked; None if another claim holds it and ``wait`` is off."""
        assert fcntl is not None
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                file = self.path.open("ab")
            except FileNotFoundError:  # the last claim took the folder meanwhile
                continue
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    file.close()
                    return None
                logger.info("search %s runs in another study: waiting for it",
                            self.path.stem)
                fcntl.flock(file, fcntl.LOCK_EX)
            if _same_file(file, self.path):
                return file
            file.close()  # its holder released and removed it while this one waited


def _same_file(file: IO[bytes], path: Path) -> bool:
    """Whether the open ``file`` is still the one at ``path``."""
    try:
        return os.fstat(file.fileno()).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False
