"""Trial files in an artifact store: a trial killed on one machine resumes on another that
shares only the storage and the store, to the uninterrupted result; the commands that
read a study work from such a machine.

The S3 store runs when GLOBALDARTS_TEST_S3 holds the endpoint of an S3 server with the
bucket ``globaldarts-test`` (``.ci/run`` starts SeaweedFS and sets it); the file store
always runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from pipeline import cli
from pipeline.outer.artifacts import (
    KEPT_CHECKPOINTS,
    fetch_checkpoint,
    open_artifacts,
    upload_checkpoint,
)
from pipeline.outer.record import TrialRecord
from pipeline.outer.storage import StudyError
from pipeline.outer.study import load_study
from pipeline.results.report import curves_frame

S3 = os.environ.get("GLOBALDARTS_TEST_S3")
BUCKET = "globaldarts-test"
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _store_url(kind: str, tmp_path: Path, env: dict[str, str]) -> str:
    if kind == "file":
        return f"file://{tmp_path / 'store'}"
    if not S3:
        pytest.skip("set GLOBALDARTS_TEST_S3 to an S3 endpoint with the bucket "
                    f"{BUCKET} (.ci/run starts SeaweedFS and sets it)")
    env.update(AWS_ENDPOINT_URL=S3, AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "x"),
               AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"),
               AWS_DEFAULT_REGION="us-east-1")
    return f"s3://{BUCKET}"


def _search(study_file: Path, root: Path, storage: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "search", str(study_file), "--root", str(root),
            "--storage", storage, "--n-trials", "1", "--set", "search.epochs=6", "-q",
            *options]


def _rows(trial: optuna.trial.FrozenTrial, metrics: list[dict]) -> tuple:
    """What a trial found, bit for bit: its value, cell, last mixing weights and every
    epoch's record but its time."""
    return (trial.value, trial.user_attrs["cell"], trial.user_attrs["alpha_softmax"],
            [{k: v for k, v in row.items() if k != "seconds"} for row in metrics])


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_trial_killed_on_one_machine_resumes_on_another_from_the_store(
        kind: str, study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    env = dict(ONE_THREAD)
    url = _store_url(kind, tmp_path, env)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    whole = subprocess.run(_search(study_file, tmp_path / "whole", f"sqlite:///{tmp_path}/w.db"),
                           env=ONE_THREAD, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    storage = f"sqlite:///{tmp_path}/shared.db"
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    with (tmp_path / "worker_a.err").open("w") as errors:
        worker_a = subprocess.Popen(_search(study_file, machine_a, storage, "--artifacts", url),
                                    env=env, stdout=subprocess.DEVNULL, stderr=errors)
    _wait_for_checkpoint(storage, worker_a, tmp_path / "worker_a.err", epoch=2)
    worker_a.kill()
    worker_a.wait()
    shutil.rmtree(machine_a)  # machine B sees none of A's files

    worker_b = subprocess.run(_search(study_file, machine_b, storage, "--artifacts", url),
                              env=env, capture_output=True, text=True, timeout=300)
    assert worker_b.returncode == 0, worker_b.stderr
    study = optuna.load_study(study_name="tiny", storage=storage)
    [killed, retry] = study.get_trials()
    assert killed.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    killed_after = TrialRecord.of(killed).checkpoints[-1][0]  # it may have gone on a little
    assert 2 <= killed_after < 6
    assert retry.user_attrs["resumed_from_epoch"] == killed_after
    assert sorted(retry.intermediate_values) == list(range(1, 7))
    [reference] = load_study("tiny", root=tmp_path / "whole",
                             storage=f"sqlite:///{tmp_path}/w.db").get_trials()
    reference_metrics = _metrics(tmp_path / "whole" / "tiny" / "trials" / "00000")
    assert _rows(retry, _metrics(machine_b / "tiny" / "trials" / "00000")) == _rows(
        reference, reference_metrics)

    # a third machine with the storage and the store only
    store = open_artifacts(url)
    assert len(TrialRecord.of(retry).checkpoints) == KEPT_CHECKPOINTS
    curves = curves_frame(study.get_trials(), None, store)
    assert curves["epoch"].tolist() == list(range(1, 7))
    assert curves["valid_acc"].tolist() == [row["valid_acc"] for row in reference_metrics]
    machine_c = tmp_path / "c"
    common = ["--root", str(machine_c), "--storage", storage]
    capsys.readouterr()
    assert cli.main(["report", "tiny", *common, "--artifacts", url,
                     "--out", str(tmp_path / "reports")]) == 0
    assert cli.main(["status", "tiny", *common]) == 0
    table = tmp_path / "table.csv"
    table.write_text("arch_str,cifar10_test,cifar100_test,imagenet16_test\n"
                     f"{retry.user_attrs['cell']},90,70,40\n")
    assert cli.main(["evaluate", "--genotype", "tiny:1", *common,
                     "--nb201-table", str(table)]) == 0
    assert cli.main(["select", str(study_file), *common, "--quiet", "--set",
                     "select.rungs=[1]", "--set", "select.train_images=100", "--set",
                     "select.valid_images=100", "--set", "select.channels=4"]) == 0
    assert "cifar10 90.00" in capsys.readouterr().out


def _wait_for_checkpoint(url: str, worker: subprocess.Popen, errors: Path, *,
                         epoch: int) -> None:
    """Wait until the study's running trial, run by ``worker``, has stored a checkpoint at
    ``epoch`` or later. The tiny trial's epochs take a fraction of a second, so the study
    is read through one storage, a few milliseconds a look, not reopened each time (which
    can take longer than the rest of the trial); a worker that stops first, or stores no
    checkpoint in time, fails the test with its errors."""
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"the worker stopped (exit {worker.returncode}) before it "
                                 f"was killed:\n{errors.read_text()}")
        try:
            running = storage.get_all_trials(storage.get_study_id_from_name("tiny"),
                                             deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            running = []
        stored = [TrialRecord.of(trial).checkpoints or [] for trial in running]
        if stored and stored[0] and stored[0][-1][0] >= epoch:
            return
        time.sleep(0.01)
    worker.kill()
    raise AssertionError(f"the worker stored no checkpoint in 120 s:\n{errors.read_text()}")


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_bad_artifact_store_is_one_clear_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for url, message in [("http://example.org/x", "expected file:///PATH or s3://BUCKET"),
                         ("file://relative/path", "give an absolute path"),
                         ("s3://", "expected file:///PATH or s3://BUCKET")]:
        with pytest.raises(StudyError, match=message):
            open_artifacts(url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StudyError, match="s3://nobucket cannot be reached at http://127.0.0.1:9"):
        open_artifacts("s3://nobucket")


def _checkpoint(path: Path, epoch: int, meta: dict) -> None:
    from pipeline.checkpoint import save_checkpoint

    save_checkpoint(path, {"epoch": epoch, "weights": torch.full((2,), float(epoch))},
                    meta=meta)


def test_a_trial_keeps_its_last_two_checkpoints_and_falls_back_past_a_damaged_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_artifacts(f"file://{tmp_path / 'store'}")
    trial = optuna.create_study().ask()
    meta, local = {"trial": 7}, tmp_path / "files" / "ckpt.pt"
    for epoch in (1, 2, 3):
        _checkpoint(local, epoch, meta)
        upload_checkpoint(store, trial, local, epoch)
    stored = TrialRecord.of(trial).checkpoints
    assert [epoch for epoch, _ in stored] == [2, 3]
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted(i for _, i in stored)

    def fetch() -> int:
        fetch_checkpoint(store, trial, local, meta=meta, keys=("weights",), epochs=6)
        return int(torch.load(local, weights_only=True)["state"]["epoch"]) if local.exists() \
            else -1

    local.unlink()
    assert fetch() == 3  # another machine: the newest
    _checkpoint(local, 1, meta)
    assert fetch() == 3  # an older local copy is replaced
    (tmp_path / "store" / stored[1][1]).write_bytes(b"cut off")
    local.unlink()
    with caplog.at_level(logging.WARNING):
        assert fetch() == 2  # the damaged newest is passed over for the one before
    assert "after epoch 3 in the artifact store cannot be used" in caplog.text
    (tmp_path / "store" / stored[0][1]).unlink()
    local.unlink()
    with caplog.at_level(logging.WARNING):
        assert fetch() == -1
    assert "no checkpoint in the artifact store can be used; it restarts" in caplog.text
    _checkpoint(local, 3, meta)
    assert fetch() == 3  # a local copy as far on stays


def test_deleting_a_study_removes_its_files_from_the_store(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, store = str(study_file.parent), tmp_path / "store"
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "1", "-q",
                     "--set", "search.epochs=3", "--artifacts", f"file://{store}"]) == 0
    kept = len(list(store.iterdir()))
    assert kept == KEPT_CHECKPOINTS + 4  # and metrics, cell, cell drawing, alphas
    capsys.readouterr()
    assert cli.main(["delete", "tiny", "--root", root, "--yes"]) == 0
    assert f"{kept} files removed from its artifact store" in capsys.readouterr().out
    assert not list(store.iterdir())


def test_a_store_that_keeps_failing_is_an_io_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """After Backoff's retries, a store's own error (an S3 client's, say) is an OSError, as
    a full disk is: its trial is failed as resumable, not counted."""
    import io

    from optuna.artifacts.exceptions import ArtifactNotFound

    from pipeline.outer.artifacts import ArtifactStore
    from pipeline.outer.trials import failure_reason, resumable

    class Down:
        def write(self, artifact_id: str, body: object) -> None:
            raise RuntimeError("endpoint unreachable")

        def open_reader(self, artifact_id: str) -> None:
            raise ArtifactNotFound(artifact_id)

    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # Backoff's waits
    store = ArtifactStore(Down())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="artifact store: endpoint unreachable") as error:
        store.write("x", io.BytesIO(b""))
    assert resumable(failure_reason(error.value))
    with pytest.raises(ArtifactNotFound):
        store.open_reader("x")
