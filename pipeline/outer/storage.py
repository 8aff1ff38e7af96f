"""Where studies live: any Optuna storage URL opened with heartbeats and retries, an
SQLite database by default, passwords kept out of messages."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

SQLITE_BUSY_TIMEOUT_S = 60
SCHEMA_ATTEMPTS = 5
_PASSWORD_IN_URL = re.compile(r"(//[^:/@]*:)[^@/]*@")


class StudyError(RuntimeError):
    """A study that cannot be opened as asked (bad storage, changed config, unknown name)."""


def default_storage(directory: Path) -> str:
    """The study's SQLite database inside its folder."""
    return f"sqlite:///{directory / 'study.db'}"


def redact(text: str) -> str:
    """Hide the password of any storage URL inside ``text``."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def make_storage(url: str, *, max_retries: int = 3, heartbeat_interval_s: int = 30,
                 grace_period_s: int = 120) -> optuna.storages.BaseStorage:
    """Open any Optuna storage URL; a path ending in ``.log`` or ``.journal`` is a journal file.

    A database storage keeps a heartbeat per running trial: a trial whose worker died
    (no beat for ``grace_period_s``) is failed and retried, up to ``max_retries`` times,
    with its start point and seed, from its checkpoint.

    Raises:
        StudyError: the storage cannot be reached or understood; the password is hidden.
    """
    try:
        if url.endswith((".log", ".journal")) and "://" not in url:
            return optuna.storages.JournalStorage(JournalFileBackend(url))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
            return _database(url, heartbeat_interval=heartbeat_interval_s,
                             grace_period=grace_period_s, heartbeat_stale_trial_callback=retry)
    except Exception as error:  # SQLAlchemy and drivers raise many kinds
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StudyError(f"cannot open storage {redact(url)}: {redact(message)}") from None


class _ClaimingStorage(optuna.storages.RDBStorage):
    """An RDB storage on which a queued trial is claimed by one worker only.

    Optuna claims a WAITING trial by reading its state and then writing RUNNING. SQLite
    has no row locks, so two workers can both read WAITING and both run the trial (a
    queued retry, typically). Here the claim is one conditional UPDATE, which every
    database applies atomically.
    """

    _TRIALS = sqlalchemy.table("trials", sqlalchemy.column("trial_id"),
                               sqlalchemy.column("state", sqlalchemy.Enum(TrialState)),
                               sqlalchemy.column("datetime_start", sqlalchemy.DateTime))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        if state != TrialState.RUNNING or values is not None:
            return super().set_trial_state_values(trial_id, state, values)
        trials = self._TRIALS.c
        claim = (self._TRIALS.update()
                 .where(trials.trial_id == trial_id, trials.state == TrialState.WAITING)
                 .values(state=TrialState.RUNNING,
                         datetime_start=datetime.now(UTC).replace(tzinfo=None)))
        with self.engine.begin() as connection:
            return connection.execute(claim).rowcount == 1


def _database(url: str, **heartbeat: Any) -> optuna.storages.RDBStorage:
    """An RDB storage; workers starting together may race to create its tables."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return _ClaimingStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except sqlalchemy.exc.DBAPIError as error:
            if attempt + 1 == SCHEMA_ATTEMPTS or not _schema_race(error):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _schema_race(error: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether an error means another worker was creating the same tables."""
    text = str(error)
    return isinstance(error, sqlalchemy.exc.IntegrityError) or any(
        phrase in text for phrase in ("already exists", "database is locked"))
