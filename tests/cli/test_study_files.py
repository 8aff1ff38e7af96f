"""A study's own files and its neighbours': one folder per study across storages, a delete
that removes only its own and waits for its workers, a list that shows what it can, and a
fork that says whether it warm-starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pipeline import cli


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _search(study_file: Path, *args: str) -> int:
    return cli.main(["search", str(study_file), "--n-trials", "1", "--set", "search.epochs=1",
                     "-q", *args])


def test_a_study_of_the_same_name_in_another_storage_gets_no_share_of_the_folder(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, other_root = study_file.parent, tmp_path / "elsewhere"
    journal = str(root / "o.log")
    assert _search(study_file, "--root", str(root)) == 0
    folder = root / "tiny"
    checkpoint = (folder / "trials" / "00000" / "ckpt.pt").read_bytes()
    capsys.readouterr()
    code, _, err = _run(capsys, "search", str(study_file), "--root", str(root), "--storage",
                        journal, "--n-trials", "1", "--set", "search.epochs=1")
    assert code == 2 and "needs another --root" in err and err.count("\n") == 1
    assert not Path(journal).exists()  # refused before anything was made
    assert _search(study_file, "--root", str(other_root), "--storage", journal) == 0
    # the journal study deleted through the first root: the SQLite study's folder stays
    capsys.readouterr()
    code, out, _ = _run(capsys, "delete", "tiny", "--yes", "--root", str(root), "--storage",
                        journal)
    assert code == 0 and "(1 trials)" in out and "is kept" in out
    assert (folder / "trials" / "00000" / "ckpt.pt").read_bytes() == checkpoint
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder}/study.db")
    assert len(study.get_trials()) == 1
    # the deleted study's folder under the other root is not taken for a new one
    code, _, err = _run(capsys, "search", str(study_file), "--root", str(other_root),
                        "--storage", journal, "--n-trials", "1", "--set", "search.epochs=1")
    assert code == 2 and "deleted since: remove the folder" in err
    # a folder of an earlier version (no owner.json) belongs to the SQLite study in it
    (folder / "owner.json").unlink()
    assert _search(study_file, "--root", str(tmp_path / "third"), "--storage", journal) == 0
    code, out, _ = _run(capsys, "delete", "tiny", "--yes", "--root", str(root), "--storage",
                        journal)
    assert code == 0 and (folder / "study.db").exists()
    code, out, _ = _run(capsys, "delete", "tiny", "--yes", "--root", str(root))
    assert code == 0 and "and its folder" in out and not folder.exists()


def _running_trial(database: Path, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if database.exists():
            try:
                study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{database}")
                if study.get_trials(states=(TrialState.RUNNING,)):
                    return
            except (KeyError, Exception):  # tables not made yet
                pass
        time.sleep(0.2)
    raise AssertionError("no trial started")


def test_delete_waits_for_the_studys_workers_unless_forced_and_the_worker_stops(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "search", str(study_file), "--root", str(root),
         "--set", "search.epochs=400", "--n-trials", "1", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _running_trial(root / "tiny" / "study.db")
        code, _, err = _run(capsys, "delete", "tiny", "--yes", "--root", str(root))
        assert code == 2 and "is being run by" in err and "--force" in err
        assert (root / "tiny" / "study.db").exists()
        code, out, _ = _run(capsys, "delete", "tiny", "--yes", "--force", "--root", str(root))
        assert code == 0 and "deleted" in out
        _, err = worker.communicate(timeout=120)  # it stops by itself, in bounded time
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == 2, err
    assert err == "globaldarts: error: study 'tiny' was deleted while this worker ran it; " \
                  "this worker stops\n"
    assert not (root / "tiny").exists(), sorted(map(str, (root / "tiny").rglob("*")))


def test_a_trial_left_running_by_its_own_worker_does_not_hold_the_study(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tell that failed leaves the worker's own trial RUNNING: the wait for running
    trials must not wait for it."""
    root = study_file.parent
    assert _search(study_file, "--root", str(root)) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    started = time.monotonic()
    assert _search(study_file, "--root", str(root), "--n-trials", "2") == 0
    assert time.monotonic() - started < 60
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert "ended it without telling" in trials[orphan.number].user_attrs["fail_reason"]


def test_a_registration_whose_process_number_was_reused_is_not_a_live_worker(
        tmp_path: Path) -> None:
    from pipeline.outer.cores import CoreShare, live_registrations, process_start

    with CoreShare(tmp_path, "tiny") as share:
        me = json.loads(share.me.read_text())
        assert me == {"study": "tiny", "started": process_start(os.getpid())}
        # the parent's number, with the start time of a process that ended long ago
        stale = tmp_path / ".workers" / f"{share.host}:{os.getppid()}"
        stale.write_text(json.dumps({"study": "tiny", "started": "1"}))
        assert live_registrations(tmp_path) == {share.me.name: "tiny"}
        assert not stale.exists() and share.workers() == 1


def test_list_shows_every_study_it_can_and_marks_the_rest(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    assert _search(study_file, "--root", str(root)) == 0
    import shutil

    shutil.copytree(root / "tiny", root / "tiny.bak")  # a backup copy of the folder
    (root / "empty").mkdir()
    (root / "empty" / "study.db").write_bytes(b"")
    (root / "foreign").mkdir()  # a study that globaldarts did not make
    optuna.create_study(study_name="foreign", storage=f"sqlite:///{root}/foreign/study.db")
    capsys.readouterr()
    code, out, err = _run(capsys, "list", "--root", str(root))
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and err == ""
    assert "1/1 trials" in rows["tiny"]
    assert "unreadable" in rows["empty"] and "empty (0 bytes)" in rows["empty"]
    assert "unreadable" in rows["foreign"] and "holds no config" in rows["foreign"]
    assert "unreadable" in rows["tiny.bak"]


def test_a_fork_says_when_no_trial_fits_its_start_vector(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    assert _search(study_file, "--root", str(root), "--n-trials", "10") == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "fork", "tiny", "tiny-op", "--root", str(root),
                        "--set", "start.alpha_space=op")
    assert code == 0 and "warm start     none: tiny's trials start from another start " \
                         "vector" in out
    assert 'warm_start = ""' in (root / "tiny-op.toml").read_text()
    code, out, _ = _run(capsys, "fork", "tiny", "tiny-random", "--root", str(root),
                        "--set", "outer.sampler=random")  # refused before: warm_start kept
    assert code == 0 and "does not run CMA-ES" in out


def test_a_fork_keeps_the_trials_it_started_from_when_their_study_is_deleted(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    assert _search(study_file, "--root", str(root), "--n-trials", "10") == 0
    assert cli.main(["fork", "tiny", "tiny2", "--root", str(root)]) == 0
    assert cli.main(["fork", "tiny", "tiny3", "--root", str(root)]) == 0
    assert _search(root / "tiny2.toml", "--root", str(root)) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "delete", "tiny", "--yes", "--root", str(root))
    assert code == 0 and f"{root / 'tiny2.toml'} warm-starts from tiny" in out
    assert f"{root / 'tiny3.toml'} warm-starts from tiny" in out
    assert _search(root / "tiny2.toml", "--root", str(root), "--n-trials", "2") == 0
    forked = optuna.load_study(study_name="tiny2", storage=f"sqlite:///{root}/tiny2/study.db")
    assert len(forked.user_attrs["warm_start_trials"]) == 10
    code, _, err = _run(capsys, "search", str(root / "tiny3.toml"), "--root", str(root))
    assert code == 2 and "outer.warm_start: no study 'tiny'" in err
