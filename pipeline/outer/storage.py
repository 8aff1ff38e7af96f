"""Where studies live: any Optuna storage URL opened with heartbeats and retries, an
SQLite database by default, passwords kept out of messages."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60
# Connections a worker keeps to a server database: the pool, and how far it may go beyond.
POOL_SIZE, POOL_OVERFLOW = 2, 2
SCHEMA_ATTEMPTS = 5
# An empty SQLite file modified this recently may be one another opener is filling.
EMPTY_DATABASE_GRACE_S = 2.0
# A URL's password: from the ':' after its user name to the last '@' before a blank or a
# quote, so that a password holding '/', ':' or an unencoded '@' is hidden whole. (Not
# SQLAlchemy's make_url(...).render_as_string(hide_password=True): it splits an unencoded
# '@' at the first one and shows the rest, and it keeps ?password=... as it is.)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/'\"]*):([^\s'\"]*)@")
# A secret setting: any name holding one of these words (password, sslpassword, PGPASSWORD,
# aws_secret_access_key, sslkey, ...), '=' and its value, quoted or up to '&' or a blank.
_SECRET_NAME = r"[\w.-]*(?:password|passwd|pwd|secret|token|sslkey)[\w.-]*"
_NAMED_SECRET = re.compile(rf"(?i)\b({_SECRET_NAME})(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&'\"]*)")


class StudyError(RuntimeError):
    """A study that cannot be opened as asked (bad storage, changed config, unknown name)."""


class StudyDeletedError(StudyError):
    """The study was deleted while a worker ran it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"study {name!r} was deleted while this worker ran it; this worker "
                         "stops")


def default_storage(directory: Path) -> str:
    """The study's SQLite database inside its folder."""
    return f"sqlite:///{directory / 'study.db'}"


def redact(text: str, *, url: str | None = None) -> str:
    """Hide the secrets in ``text``: the passwords of storage URLs (``user:PASSWORD@host``),
    every secret setting (``password=``, ``sslpassword=``, ``sslkey=``, ... in a URL's query
    or a driver's connection string), and every other occurrence of ``url``'s secrets (a
    driver may echo one, decoded, anywhere), whatever characters they hold."""
    secrets = _secrets(url) if url else set()
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _NAMED_SECRET.sub(r"\1\2***", text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> set[str]:
    """The secrets a storage URL holds: its password (everything between the user name's
    ':' and the last '@' before the query, blanks included) and its secret settings, each
    as written and decoded, and the pieces between their '@', ':' and '/' (a driver that
    parses the URL otherwise may echo one as a host name); two characters or more, or
    every message would be blanked out."""
    found = [m.group(2) for m in _URL_PASSWORD.finditer(url)]
    _, separator, rest = url.partition("://")
    authority = rest.split("?", 1)[0]
    if separator and "@" in authority:
        _, colon, password = authority[:authority.rfind("@")].partition(":")
        found += [password] if colon else []
    query = rest.partition("?")[2]
    found += [value for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True)
              if re.fullmatch(f"(?i){_SECRET_NAME}", name)]
    found += [m.group(3).strip("'\"") for m in _NAMED_SECRET.finditer(url)]
    found += [urllib.parse.unquote(secret) for secret in found]
    found += [urllib.parse.unquote_plus(secret) for secret in found]
    found += [piece for secret in found for piece in re.split(r"[@:/]", secret)]
    return {secret for secret in found if len(secret.strip()) > 1}


def is_journal(url: str) -> bool:
    """Whether a storage URL names an Optuna journal file (a path ending in ``.log`` or
    ``.journal``)."""
    return url.endswith((".log", ".journal")) and "://" not in url


def local_file(url: str) -> Path | None:
    """The file of an SQLite database or a journal that a storage URL names; None for a
    database server."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return Path(url) if is_journal(url) else None


def make_storage(url: str, *, max_retries: int = 3, heartbeat_interval_s: int | None = 30,
                 grace_period_s: int = 120) -> optuna.storages.BaseStorage:
    """Open any Optuna storage URL; a path ending in ``.log`` or ``.journal`` is a journal file.

    A database storage keeps a heartbeat per running trial: a trial whose worker died
    (no beat for ``grace_period_s``) is failed and retried, up to ``max_retries`` times,
    with its start point and seed, from its checkpoint. ``heartbeat_interval_s`` None
    keeps none (for trials that stay running between workers, as a selection's do).

    Raises:
        StudyError: the storage cannot be reached or understood; the password is hidden.
    """
    try:
        if is_journal(url):
            _repair_journal(Path(url))
            return optuna.storages.JournalStorage(JournalFileBackend(url))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat_interval_s is None:
                return _database(url)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
            return _database(url, heartbeat_interval=heartbeat_interval_s,
                             grace_period=grace_period_s, heartbeat_stale_trial_callback=retry)
    except Exception as error:  # SQLAlchemy and drivers raise many kinds
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StudyError(f"cannot open storage {redact(url, url=url)}: "
                         f"{redact(message, url=url)}") from None


def _repair_journal(path: Path) -> None:
    """Drop a partial last record from a journal file (its writer was killed mid-line), under
    the journal's own lock, before anything is appended after it: the record never took
    effect, and a line appended to it would make the whole file unreadable."""
    if not path.exists():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with path.open("rb+") as handle:
            content = handle.read()
            if not content or content.endswith(b"\n"):
                return
            handle.truncate(content.rfind(b"\n") + 1)
        logger.warning("journal %s ended in a partial record (a writer stopped mid-line); "
                       "dropped it", path)
    finally:
        lock.release()


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
    """An RDB storage; workers starting together may race to create its tables. A server
    database gets a small pool per worker (its trials and its heartbeat need two
    connections), so that many workers stay within the server's clients, and each
    connection is tested before use, so that one the server dropped during a long trial
    is replaced rather than failing the trial."""
    engine_kwargs: dict[str, Any] = {}
    if not url.startswith("sqlite:"):
        engine_kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                             pool_pre_ping=True)
    else:
        path = Path(url.removeprefix("sqlite:///"))
        _refuse_empty(path)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if not path.exists():
            _create_sqlite_whole(path, engine_kwargs)
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return _ClaimingStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except sqlalchemy.exc.DBAPIError as error:
            if attempt + 1 == SCHEMA_ATTEMPTS or not _schema_race(error):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _refuse_empty(path: Path) -> None:
    """Refuse an empty SQLite file, which is a damaged study database here, unless it is
    one that another opener (Optuna itself, the dashboard) is filling right now: SQLite
    creates a file empty and writes its tables moments later, so a young empty file gets
    a moment to fill.

    Raises:
        StudyError: the file is empty and was not filled in time.
    """
    while path.is_file() and (stat := path.stat()).st_size == 0:
        if time.time() - stat.st_mtime > EMPTY_DATABASE_GRACE_S:
            raise StudyError(f"{path} is empty (0 bytes), not a study database: a damaged "
                             "file? Move it away to start the study afresh")
        time.sleep(0.05)


def _create_sqlite_whole(path: Path, engine_kwargs: dict[str, Any]) -> None:
    """Create a new SQLite study database whole: its tables are made in a file beside it,
    which is then linked into place unless another worker's got there first. SQLite creates
    a database file empty and fills it moments later, so a worker starting beside the
    creator would otherwise open an empty file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(handle)
    try:
        optuna.storages.RDBStorage(f"sqlite:///{name}",
                                   engine_kwargs=engine_kwargs).engine.dispose()
        with contextlib.suppress(FileExistsError):
            os.link(name, path)
    finally:
        os.unlink(name)


def _schema_race(error: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether an error means another worker was creating the same tables."""
    text = str(error)
    return isinstance(error, sqlalchemy.exc.IntegrityError) or any(
        phrase in text for phrase in ("already exists", "database is locked"))
