"""A study's trial files in Optuna's artifact store, for workers that share no folder.

Each epoch's checkpoint is uploaded (the trial's last two are kept) and its epoch and
artifact id recorded in the trial (``TrialRecord.checkpoints``); a retry copies that record,
so a retried trial on another machine, with an empty ``--root``, downloads its checkpoint
and resumes. A finished trial's metrics and cell are uploaded as artifacts that
optuna-dashboard lists. The local trial folder stays as a cache. The judge's trainings
(``ROOT/_judged``) are kept there too, shared by the studies like that folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.artifacts import (
    Backoff,
    Boto3ArtifactStore,
    FileSystemArtifactStore,
    download_artifact,
    get_all_artifact_meta,
    upload_artifact,
)
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from pipeline.checkpoint import CheckpointError, load_checkpoint
from pipeline.outer.record import TrialRecord
from pipeline.outer.storage import StudyError
from pipeline.outer.trials import CELL, METRICS

logger = logging.getLogger(__name__)

KEPT_CHECKPOINTS = 2  # a trial's checkpoints in the store: its last two


class ArtifactStore(Backoff):
    """An artifact store whose reads and writes Optuna's ``Backoff`` retries (10 tries over
    about a minute). One that still fails raises ``OSError``, as a full disk does: not the
    search's doing, so its trial is failed as resumable and retried from its checkpoint. A
    removal is tried once on the store itself: ``Backoff.remove`` goes on deleting after it
    succeeded, sleeping between tries, about 80 s on S3 (optuna#6843), and a checkpoint
    left over costs space only."""

    def __init__(self, backend: FileSystemArtifactStore | Boto3ArtifactStore) -> None:
        super().__init__(backend)
        self.backend = backend

    def open_reader(self, artifact_id: str) -> BinaryIO:
        with _as_io_error():
            return super().open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        with _as_io_error():
            super().write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.backend.remove(artifact_id)


@contextlib.contextmanager
def _as_io_error() -> Iterator[None]:
    """Raise a store's failure (S3 clients raise their own kinds) as ``OSError``; a missing
    artifact stays ``ArtifactNotFound``."""
    try:
        yield
    except (OSError, ArtifactNotFound):
        raise
    except Exception as error:
        raise OSError(f"artifact store: {error}") from error


def open_artifacts(url: str) -> ArtifactStore:
    """The artifact store at ``url``: ``file:///PATH``, a folder (made if need be, e.g. on a
    shared file system), or ``s3://BUCKET``, a bucket at the endpoint and with the
    credentials of the usual AWS environment (``AWS_ENDPOINT_URL``, ...). Reads and writes
    are retried with backoff.

    Raises:
        StudyError: the URL names no store this can open, or the bucket cannot be reached.
    """
    if url.startswith("file://"):
        folder = Path(url.removeprefix("file://"))
        if not folder.is_absolute():
            raise StudyError(f"artifact store {url}: give an absolute path, file:///PATH")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StudyError(f"artifact store {url}: {error}") from None
        return ArtifactStore(FileSystemArtifactStore(folder))
    if url.startswith("s3://") and url.removeprefix("s3://").strip("/"):
        return ArtifactStore(_bucket(url.removeprefix("s3://").strip("/")))
    raise StudyError(f"artifact store {url!r}: expected file:///PATH or s3://BUCKET")


def _bucket(name: str) -> Boto3ArtifactStore:
    """The S3 bucket ``name``, checked to exist.

    Raises:
        StudyError: boto3 is missing, or the bucket cannot be reached.
    """
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise StudyError("an s3:// artifact store needs boto3: pip install "
                         "'globaldarts[s3]'") from None
    client = boto3.client("s3")
    try:
        client.head_bucket(Bucket=name)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise StudyError(f"artifact store s3://{name} cannot be reached at "
                         f"{client.meta.endpoint_url}: {error}") from None
    return Boto3ArtifactStore(name, client=client)


def local_artifacts(folder: Path) -> ArtifactStore:
    """The artifact store of a study that names none: files under ``folder/artifacts``
    (its state folder), for optuna-dashboard's trial attachments."""
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(FileSystemArtifactStore(artifacts))


def study_artifacts(study: optuna.Study, url: str | None) -> ArtifactStore | None:
    """The artifact store of a study: ``url`` where given, else the one its config names
    (``outer.artifacts``); None if it keeps its files in its folder only.

    Raises:
        StudyError: the store cannot be opened.
    """
    stored = study.user_attrs.get("config", {}).get("outer", {}).get("artifacts", "")
    return open_artifacts(url or stored) if url or stored else None


def upload_checkpoint(store: ArtifactStore, trial: optuna.Trial, path: Path,
                      epoch: int) -> None:
    """Upload the checkpoint at ``path``, taken after ``epoch``, record it in the trial,
    and remove the trial's checkpoints older than the last ``KEPT_CHECKPOINTS``."""
    artifact_id = f"checkpoint-{uuid.uuid4()}"
    with path.open("rb") as handle:
        store.write(artifact_id, handle)
    stored = TrialRecord.of(trial).checkpoints or []
    kept = [*stored, [epoch, artifact_id]][-KEPT_CHECKPOINTS:]
    TrialRecord(checkpoints=kept).store(trial)
    for entry in stored:
        if entry not in kept:
            try:
                store.remove(entry[1])
            except ArtifactNotFound:
                pass
            except Exception as error:  # stores raise many kinds; a leftover costs space only
                logger.warning("trial %d: an old checkpoint stays in the artifact store: %s",
                               trial.number, error)


def fetch_checkpoint(store: ArtifactStore, trial: optuna.Trial, path: Path, *,
                     meta: Mapping[str, Any], keys: tuple[str, ...], epochs: int) -> None:
    """Bring the trial's newest stored checkpoint to ``path`` when it is further on than the
    local one there (if any): on another machine, or after the local copy was lost. A
    missing or damaged one is passed over, with a warning, for the one before it; with
    none left the local one stands, and without that the trial restarts."""
    stored = sorted(TrialRecord.of(trial).checkpoints or [], reverse=True)
    local = _epoch(path, meta=meta, keys=keys, epochs=epochs)
    for epoch, artifact_id in stored:
        if epoch <= local:
            return
        with _download(store, artifact_id, path.parent) as copy:
            try:
                _epoch(copy, meta=meta, keys=keys, epochs=epochs, missing_ok=False)
            except (FileNotFoundError, CheckpointError) as error:
                logger.warning("trial %s: its checkpoint after epoch %d in the artifact store "
                               "cannot be used (%s); trying the one before it",
                               path.parent.name, epoch, error)
                continue
            os.replace(copy, path)
            logger.info("trial %s: checkpoint after epoch %d fetched from the artifact store",
                        path.parent.name, epoch)
            return
    if stored and local < 0:
        logger.warning("trial %s: no checkpoint in the artifact store can be used; it "
                       "restarts", path.parent.name)


def _epoch(path: Path, *, meta: Mapping[str, Any], keys: tuple[str, ...], epochs: int,
           missing_ok: bool = True) -> int:
    """The epoch of the checkpoint at ``path``; -1 for none (with ``missing_ok``) or for a
    local one that cannot be used.

    Raises:
        FileNotFoundError: there is none, without ``missing_ok``.
        CheckpointError: it cannot be used, without ``missing_ok``.
    """
    try:
        return int(load_checkpoint(path, meta=meta, keys=keys, epochs=epochs)["epoch"])
    except (FileNotFoundError, CheckpointError):
        if missing_ok:
            return -1
        raise


@contextlib.contextmanager
def _download(store: ArtifactStore, artifact_id: str, folder: Path) -> Iterator[Path]:
    """The artifact, downloaded to a temporary file in ``folder`` (removed afterwards
    unless moved); a missing one yields a path that does not exist."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".download.", suffix=".tmp")
    copy = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            with store.open_reader(artifact_id) as reader:
                shutil.copyfileobj(reader, out)
    except ArtifactNotFound:
        copy.unlink()
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)


class JudgedCheckpoints:
    """The judge's trainings in an artifact store, each under an id named by what it
    trains (``judged-NAME``, as its file in ``ROOT/_judged``), its latest epoch's
    checkpoint only: a training begun on one machine is taken up on another, and one made
    for a trial objective is reused by a selection elsewhere. Like the folder, they are
    shared by the studies, so deleting a study leaves them."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def fetch(self, path: Path, *, meta: Mapping[str, Any], keys: tuple[str, ...],
              epochs: int, after: int) -> bool:
        """Bring the stored checkpoint of the training at ``path`` there if it is further
        on than epoch ``after``; whether it did. One that cannot be read (damaged, caught
        while being written, or the store failing) is passed over with a warning: the
        training goes on from where it is."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _download(self.store, _judged_id(path), path.parent) as copy:
                if not copy.exists():
                    return False
                stored = _epoch(copy, meta=meta, keys=keys, epochs=epochs, missing_ok=False)
                if stored <= after:
                    return False
                os.replace(copy, path)
        except (OSError, CheckpointError) as error:
            logger.warning("the judge's checkpoint %s in the artifact store cannot be used: "
                           "%s", path.stem, error)
            return False
        logger.info("the judge's training %s resumes after epoch %d from the artifact store",
                    path.stem, stored)
        return True

    def upload(self, path: Path) -> None:
        """Keep the checkpoint at ``path`` in the store, over the one before it. A store
        that fails (after its retries) costs only a training on another machine: a
        warning, not an error."""
        try:
            with path.open("rb") as handle:
                self.store.write(_judged_id(path), handle)
        except OSError as error:
            logger.warning("the judge's checkpoint %s stays on this machine only: %s",
                           path.stem, error)


def _judged_id(path: Path) -> str:
    return f"judged-{path.stem}"


def upload_results(store: ArtifactStore, trial: optuna.Trial, files: Path, cell: str) -> None:
    """Upload a finished trial's metrics and cell as artifacts of the trial, which
    optuna-dashboard lists, and record the metrics' id in the trial."""
    (files / CELL).write_text(cell + "\n", encoding="utf-8")
    upload_artifact(artifact_store=store, file_path=str(files / CELL), study_or_trial=trial)
    metrics = upload_artifact(artifact_store=store, file_path=str(files / METRICS),
                              study_or_trial=trial)
    TrialRecord(metrics_artifact=metrics).store(trial)


def download_metrics(store: ArtifactStore, trial: FrozenTrial, folder: Path) -> Path | None:
    """The trial's uploaded metrics, downloaded into ``folder``; None if it has none."""
    artifact_id = TrialRecord.of(trial).metrics_artifact
    if artifact_id is None:
        return None
    path = folder / f"{trial.number}-{METRICS}"
    try:
        download_artifact(artifact_store=store, file_path=str(path), artifact_id=artifact_id)
    except (ArtifactNotFound, OSError) as error:
        logger.warning("trial %d: its metrics cannot be read from the artifact store: %s",
                       trial.number, error)
        return None
    return path


def remove_study_artifacts(store: ArtifactStore, study: optuna.Study,
                           storage: optuna.storages.BaseStorage) -> int:
    """Remove every file the trials of ``study`` (in ``storage``) keep in ``store``: their
    checkpoints and uploads. Returns how many were there."""
    removed = 0
    for trial in study.get_trials(deepcopy=False):
        ids = {i for _, i in TrialRecord.of(trial).checkpoints or []}
        ids |= {meta.artifact_id for meta in get_all_artifact_meta(trial, storage=storage)}
        for artifact_id in ids:
            try:
                store.remove(artifact_id)
                removed += 1
            except ArtifactNotFound:
                pass
    return removed
