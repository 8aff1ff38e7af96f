"""Studies side by side: the same results as one after another, failures and interruptions
confined to the studies they hit."""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from pipeline.config import StudyConfig
from pipeline.outer.parallel import failure_line, run_side_by_side
from pipeline.outer.storage import StudyError
from pipeline.outer.study import load_study

CPU = torch.device("cpu")


@pytest.fixture
def threads() -> Iterator[None]:
    """Restore torch's thread count after a test that sets it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _outcomes(root: Path, names: list[str]) -> dict[str, list[tuple]]:
    return {name: [(t.number, t.state, t.values, t.user_attrs.get("cell"))
                   for t in load_study(name, root=root).get_trials()] for name in names}


def _two_epoch_searches(config: StudyConfig, *, trials: int) -> StudyConfig:
    return dataclasses.replace(
        config, search=dataclasses.replace(config.search, epochs=2),
        outer=dataclasses.replace(config.outer, n_trials=trials))


def test_side_by_side_gives_what_one_after_another_gives(
        tiny_config: StudyConfig, tmp_path: Path, threads: None, run_compare: Callable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _two_epoch_searches(tiny_config, trials=2)
    names = ["tiny-s3-darts", "tiny-s3-cmaes", "tiny-s4-darts", "tiny-s4-cmaes"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the thread count the studies keep
    torch.set_num_threads(1)
    alone = run_compare(config, root=tmp_path / "alone", out_dir=tmp_path / "out-alone",
                        device=CPU, seeds=2, only=["darts", "cmaes"])
    torch.set_num_threads(3)  # each of the 3 study processes gets one thread
    together = run_compare(config, root=tmp_path / "together", out_dir=tmp_path / "out",
                           device=CPU, seeds=2, only=["darts", "cmaes"], jobs=3)
    assert _outcomes(tmp_path / "together", names) == _outcomes(tmp_path / "alone", names)
    assert all(state == TrialState.COMPLETE for trials in
               _outcomes(tmp_path / "together", names).values() for _, state, _, _ in trials)
    assert together.drop(columns="front_hypervolume").equals(
        alone.drop(columns="front_hypervolume"))


def test_side_by_side_queues_the_studies_method_by_method(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.outer import method_studies, run_methods

    queued: list[str] = []
    monkeypatch.setattr(importlib.import_module("pipeline.outer.methods"), "run_side_by_side",
                        lambda configs, **_: queued.extend(c.name for c in configs))
    studies = method_studies(tiny_config, seeds=3, only=["darts", "cmaes"])
    run_methods(studies, root=tmp_path, device=CPU, jobs=2)
    # a seed's two studies share their first search: the second would wait for the first
    assert queued == ["tiny-s3-darts", "tiny-s4-darts", "tiny-s5-darts",
                      "tiny-s3-cmaes", "tiny-s4-cmaes", "tiny-s5-cmaes"]


def test_studies_side_by_side_run_their_shared_first_search_once(
        tiny_config: StudyConfig, tmp_path: Path, threads: None, run_compare: Callable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _two_epoch_searches(tiny_config, trials=1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_compare(config, root=tmp_path, out_dir=tmp_path / "out", device=CPU,
                only=["random", "cmaes"], jobs=2)
    # both start at plain DARTS' start with the study seed: one runs the search while
    # the other waits, then takes the finished search over
    first = [load_study(f"tiny-s3-{m}", root=tmp_path).get_trials()[0]
             for m in ("random", "cmaes")]
    took_over = [t for t in first if "same_search_as" in t.user_attrs]
    assert len(took_over) == 1 and took_over[0].user_attrs["resumed_from_epoch"] == 2
    assert first[0].values == first[1].values
    assert first[0].user_attrs["cell"] == first[1].user_attrs["cell"]
    assert not (tmp_path / ".search-claims").exists()  # every claim released


def test_a_failing_study_does_not_stop_the_others(tiny_config: StudyConfig,
                                                  tmp_path: Path) -> None:
    broken = dataclasses.replace(
        tiny_config, name="broken",
        data=dataclasses.replace(tiny_config.data, dataset="imagefolder",
                                 root=str(tmp_path / "no-such-folder")))
    with pytest.raises(StudyError, match=r"^1 of 2 studies failed: broken: DatasetError"):
        run_side_by_side([broken, tiny_config], jobs=2, root=tmp_path, storage=None,
                         device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("whom, signum, exit_code", [
    ("everyone", signal.SIGINT, 130),  # Ctrl-C reaches every process of the terminal
    ("compare", signal.SIGTERM, 143),  # a scheduler stops the command it started
])
def test_an_interrupted_side_by_side_compare_leaves_every_trial_resumable(
        study_file: Path, whom: str, signum: int, exit_code: int) -> None:
    root = study_file.parent
    command = [sys.executable, "-m", "pipeline", "compare", str(study_file), "--root",
               str(root), "--out", str(root / "reports"), "--jobs", "2",
               "--methods", "darts", "cmaes", "--set", "search.epochs=200"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    checkpoints = [root / f"tiny-s3-{method}" / "trials" / "00000" / "ckpt.pt"
                   for method in ("darts", "cmaes")]
    deadline = time.monotonic() + 180
    while not all(path.exists() for path in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.1)
    if whom == "everyone":
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == exit_code, err
    assert "run the same command again to resume" in err
    for method in ("darts", "cmaes"):  # a loaded machine may have finished some trials
        *finished, interrupted = load_study(f"tiny-s3-{method}", root=root).get_trials()
        assert all(t.state == TrialState.COMPLETE for t in finished), method
        assert interrupted.state == TrialState.FAIL, method
        assert interrupted.user_attrs["fail_reason"] == "interrupted"


def test_studies_that_failed_alike_share_one_error() -> None:
    failures = {"c-s0-darts": "DatasetError: no folder data", "a-s0-cmaes": "exit code 3",
                "b-s0-random": "DatasetError: no folder data"}
    assert failure_line(failures, 4) == (
        "3 of 4 studies failed: a-s0-cmaes: exit code 3; "
        "b-s0-random, c-s0-darts: DatasetError: no folder data")
