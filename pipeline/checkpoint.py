"""Trial files: atomic, self-describing checkpoints and the per-epoch metrics log."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is corrupt, from another schema, or from another trial setup."""


def atomic_write(path: Path, write: Any, *, make_folder: bool = True) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``:
    a reader (or a crash) sees the old file or the new one, never half of one. Without
    ``make_folder``, a missing folder is a ``FileNotFoundError``, not made anew."""
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: Mapping[str, Any], *, meta: Mapping[str, Any],
                    make_folder: bool = True) -> None:
    """Save a search state with ``meta`` (what it belongs to) and the schema version."""
    payload = {"schema_version": SCHEMA_VERSION, "meta": dict(meta), "state": dict(state)}
    atomic_write(path, lambda handle: torch.save(payload, handle), make_folder=make_folder)


def load_checkpoint(path: Path, *, meta: Mapping[str, Any], keys: Iterable[str],
                    epochs: int, same: Callable[[Mapping[str, Any]], Any] = dict
                    ) -> dict[str, Any]:
    """Load a state saved for the same ``meta`` (the same once both are passed through
    ``same``), without unpickling objects, and check it: a dict holding ``keys`` and an
    ``epoch`` from 0 to ``epochs``. Leftover temporary files of interrupted writes beside
    it are removed.

    Raises:
        FileNotFoundError: there is no checkpoint.
        CheckpointError: it is unreadable, not a checkpoint of this schema, for another
            setup, or its state is incomplete or past the end of its run.
    """
    for partial in path.parent.glob(f".{path.name}.*.tmp"):
        partial.unlink(missing_ok=True)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path} is unreadable: {error}") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a checkpoint")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"{path} has schema {payload.get('schema_version')!r}, "
                              f"expected {SCHEMA_VERSION}")
    if not isinstance(payload.get("meta"), dict) or same(payload["meta"]) != same(meta):
        raise CheckpointError(f"{path} belongs to a different trial setup")
    state = payload.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} lacks all of its state")
    missing = sorted((set(keys) | {"epoch"}) - set(state))
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)} of its state")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or not 0 <= epoch <= epochs:
        raise CheckpointError(f"{path} is at epoch {epoch!r}, outside its run of {epochs}")
    return state


def write_metrics(path: Path, records: Iterable[Mapping[str, Any]], *,
                  make_folder: bool = True) -> None:
    """Rewrite the metrics log (one JSON object per line) atomically."""
    text = "".join(json.dumps(dict(record)) + "\n" for record in records)
    atomic_write(path, lambda handle: handle.write(text.encode()), make_folder=make_folder)


def append_metrics(path: Path, record: Mapping[str, Any]) -> None:
    """Add one epoch's record to the metrics log."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record)) + "\n")
