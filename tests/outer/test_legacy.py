"""A study made before the package was split into spaces/search/outer/results resumes
under it: ``tests/assets/legacy`` was written by globaldarts 0.1.0 (the flat layout), with
trial 0 complete and trial 1 interrupted in its second epoch, its checkpoint after epoch 1."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from pipeline.config import from_dict
from pipeline.outer.record import TrialRecord
from pipeline.outer.study import load_study, run_study

LEGACY = Path(__file__).parents[1] / "assets" / "legacy"
CONFIG = {
    "name": "legacy", "seed": 3,
    "data": {"dataset": "digits", "subset": 160, "crop_padding": 1, "flip": False},
    "space": {"channels": 4, "cells_per_stage": 1},
    "search": {"epochs": 3, "batch_size": 32, "arch_lr": 3e-3},
    "start": {"directions": 2},
    "outer": {"n_trials": 2, "popsize": 4, "pruner": "none"},
}


def _metrics(root: Path, key: str) -> list[dict]:
    lines = (root / "legacy" / "trials" / key / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_an_older_study_resumes_its_interrupted_trial_to_the_uninterrupted_result(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copytree(LEGACY, tmp_path / "old" / "legacy")
    config = from_dict(CONFIG)
    with caplog.at_level(logging.INFO):
        summary = run_study(config, root=tmp_path / "old", device=torch.device("cpu"))
    assert "trial 00001 resumes after epoch 1" in caplog.text  # its checkpoint was taken
    first, interrupted, retry = load_study("legacy", root=tmp_path / "old").get_trials()
    assert first.state == TrialState.COMPLETE and summary.finished == 2
    assert TrialRecord.of(interrupted).fail_reason == "interrupted"
    record = TrialRecord.of(retry)
    assert record.original_number == 1 and record.resumed_from_epoch == 1

    run_study(config, root=tmp_path / "new", device=torch.device("cpu"))
    whole = load_study("legacy", root=tmp_path / "new").get_trials()
    for old, new in zip((first, retry), whole, strict=True):
        was, now = TrialRecord.of(old), TrialRecord.of(new)
        assert old.params == new.params and was.cell == now.cell is not None
        assert old.value == pytest.approx(new.value, abs=1e-3)
        torch.testing.assert_close(torch.tensor(was.alpha_softmax),
                                   torch.tensor(now.alpha_softmax), rtol=0, atol=1e-5)
    assert [r["genotype"] for r in _metrics(tmp_path / "old", "00001")] == [
        r["genotype"] for r in _metrics(tmp_path / "new", "00001")]
