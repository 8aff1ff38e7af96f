"""A study's state folder (``ROOT/NAME``: checkpoints, metrics, resolved config), tied to
the one study it belongs to, so that a study of the same name in another storage never
shares it: the study keeps an id (user attr ``state_id``) and its folder names it
(``owner.json``). A folder without that file, from an earlier version, belongs to the SQLite
study inside it if there is one, else to the first study that claims it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import optuna

from pipeline.checkpoint import atomic_write
from pipeline.outer.storage import StudyError, redact

OWNER_FILE = "owner.json"
STATE_ID = "state_id"
JUDGED = "_judged"  # no study name starts with a symbol


def judged_dir(root: str | Path) -> Path:
    """The folder of the judge's trainings (``ROOT/_judged``), shared by the studies and
    selections in ``root``: each training's checkpoint is named by what it trains, so a
    cell is trained once for every trial objective and selection that judges it alike."""
    return Path(root) / JUDGED


def owner(folder: Path) -> dict[str, Any] | None:
    """What a state folder says of the study it belongs to; None if it says nothing."""
    try:
        record = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def belongs(folder: Path, study: optuna.Study | None, storage_url: str) -> bool:
    """Whether ``folder`` is, or may become, the state folder of ``study`` (None: a study
    not yet created) in ``storage_url``."""
    if not folder.exists():
        return True
    record = owner(folder)
    if record is not None:
        return study is not None and record.get(STATE_ID) == study.user_attrs.get(STATE_ID)
    database = folder / "study.db"
    return not database.exists() or _same_file(database, storage_url)


def check_folder(folder: Path, study: optuna.Study | None, storage_url: str) -> None:
    """Refuse a folder that holds another study's state.

    Raises:
        StudyError: ``folder`` belongs to a study of the same name in another storage.
    """
    if belongs(folder, study, storage_url):
        return
    record = owner(folder) or {"storage": f"sqlite:///{folder / 'study.db'}"}
    storage = redact(storage_url, url=storage_url)
    if record.get("storage") == storage:
        raise StudyError(f"{folder} holds the files of an earlier study {folder.name!r} in "
                         f"{storage}, deleted since: remove the folder, or give another --root")
    raise StudyError(f"{folder} holds the files of study {folder.name!r} in "
                     f"{record.get('storage', 'another storage')}; a study of that name in "
                     f"{storage} needs another --root")


def claim_id(study: optuna.Study) -> None:
    """Give a study just created its id, before its config: workers that load the study
    wait for the config, so they always find the id."""
    if STATE_ID not in study.user_attrs:
        study.set_user_attr(STATE_ID, uuid.uuid4().hex)


def claim_folder(folder: Path, study: optuna.Study, storage_url: str) -> None:
    """Make ``folder`` the state folder of ``study`` (created or resumed), written into the
    folder. A study of an earlier version, without an id, gets one named by its storage and
    name, so that workers resuming it together give it the same one.

    Raises:
        StudyError: the folder holds another study's state.
    """
    check_folder(folder, study, storage_url)
    storage = redact(storage_url, url=storage_url)
    if STATE_ID not in study.user_attrs:
        study.set_user_attr(STATE_ID, uuid.uuid5(uuid.NAMESPACE_URL,
                                                 f"{storage}#{study.study_name}").hex)
    record = {"study": study.study_name, STATE_ID: study.user_attrs[STATE_ID],
              "storage": storage}
    if owner(folder) != record:
        atomic_write(folder / OWNER_FILE, lambda handle: handle.write(
            (json.dumps(record, indent=2) + "\n").encode()))


def _same_file(database: Path, storage_url: str) -> bool:
    """Whether an SQLite storage URL names ``database``."""
    if not storage_url.startswith("sqlite:///"):
        return False
    return Path(storage_url.removeprefix("sqlite:///")).resolve() == database.resolve()
