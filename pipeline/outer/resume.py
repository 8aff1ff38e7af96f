"""A trial's search set up from its files: resumed from its own checkpoint, else from that
of the same search in another study under the same root, else fresh; and the rule that a
trial's files are never made anew once its study's folder is gone."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_metrics
from pipeline.outer.storage import StudyDeletedError
from pipeline.outer.trials import CHECKPOINT, METRICS, same_searches, without_study
from pipeline.search import DartsSearch

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def own_files(state_dir: Path, study: str) -> Iterator[None]:
    """Write a trial's files under the study's folder ``state_dir``.

    Raises:
        StudyDeletedError: the folder is gone: the study was deleted.
    """
    try:
        yield
    except FileNotFoundError:
        if state_dir.is_dir():
            raise
        raise StudyDeletedError(study) from None


def resume_search(fresh: Callable[[], DartsSearch], files: Path, meta: dict[str, Any],
                  key: str, *, state_dir: Path, study: str) -> tuple[DartsSearch, Path]:
    """The trial's search (``fresh()`` builds it new), resumed from its own checkpoint in
    ``files``, else from that of the same search (``key``, the digest of ``meta``) in
    another study under the same root (compare's method studies share their first search),
    else fresh; and the trial folder it resumed from. The trial's metrics file then holds
    the epochs it resumed with."""
    search = fresh()
    for source in (files, *same_searches(state_dir.parent, key, besides=files)):
        own = source == files
        try:
            search.load_state_dict(load_checkpoint(
                source / CHECKPOINT, meta=meta, keys=DartsSearch.STATE_KEYS,
                epochs=search.total_epochs, same=dict if own else without_study))
        except FileNotFoundError:
            continue
        except (CheckpointError, KeyError, RuntimeError, ValueError) as error:
            logger.warning("trial %s cannot resume from %s: %s", files.name, source, error)
            search = fresh()  # the failed load may have changed part of it
            continue
        logger.info("trial %s resumes after epoch %d%s", files.name, search.epoch,
                    "" if own else f" of the same search in {source}")
        with own_files(state_dir, study):
            if not own:  # the trial's files are complete without the other study's
                save_checkpoint(files / CHECKPOINT, search.state_dict(), meta=meta,
                                make_folder=False)
            write_metrics(files / METRICS, (r.to_dict() for r in search.history),
                          make_folder=False)
        return search, source
    with own_files(state_dir, study):
        write_metrics(files / METRICS, (), make_folder=False)
    return search, files
