"""A trial's record round-trips through Optuna's user attributes, and reads what a study of
an earlier version stored."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import optuna

from pipeline.outer.record import FIELDS, TrialRecord
from pipeline.outer.study import load_study

LEGACY = Path(__file__).parents[1] / "assets" / "legacy"


def _full_record() -> TrialRecord:
    """A record with every field set to a value of its type."""
    return TrialRecord(
        original_number=3, trial_key="00003", seed=7, init_seed=2, device="cpu", threads=2,
        worker="host:12", worker_started="99", worker_trial=3, resumed_from_epoch=1,
        same_search_as="a/00001",
        checkpoints=[[3, "checkpoint-a"], [4, "checkpoint-b"]], metrics_artifact="m-1",
        cell="|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
        supernet_acc=91.5, discrete_acc=None, trained_acc=88.25, judged=-1.5, train_time_s=3.5,
        eval_params_M=0.25, alpha_softmax=[[0.5, 0.5], [0.25, 0.75]], epochs_run=4,
        cell_history=["a", "b"], wall_time_s=12.0, skip_share=1 / 6, pool_share=1 / 6,
        none_share=0.5, fail_reason="diverged: loss nan")


def test_a_record_round_trips_through_a_trial() -> None:
    study = optuna.create_study()
    trial = study.ask()
    record = _full_record()
    record.store(trial)
    assert TrialRecord.of(trial) == record
    frozen = study.get_trials()[0]
    assert TrialRecord.of(frozen) == record
    assert "discrete_acc" not in frozen.user_attrs  # a field left at None is not stored
    set_fields = {f for f in FIELDS if getattr(record, f) is not None}
    assert set(frozen.user_attrs) == set_fields == set(FIELDS) - {"discrete_acc"}


def test_records_add_up_and_leave_other_attributes_alone() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("note", "someone else's")
    TrialRecord(seed=1, cell="x").store(trial)
    TrialRecord(fail_reason="interrupted").store(trial)
    assert TrialRecord.of(trial) == TrialRecord(seed=1, cell="x", fail_reason="interrupted")
    assert trial.user_attrs["note"] == "someone else's"
    assert dataclasses.replace(TrialRecord(), cell="y").attrs() == {"cell": "y"}


def test_a_study_of_an_earlier_version_reads_back(tmp_path: Path) -> None:
    shutil.copytree(LEGACY, tmp_path / "legacy")
    first, interrupted = load_study("legacy", root=tmp_path).get_trials()
    record = TrialRecord.of(first)
    assert record.cell is not None and record.cell.startswith("|")
    assert record.epochs_run == 3 and record.seed is not None and record.trial_key == "00000"
    assert record.alpha_softmax is not None and len(record.alpha_softmax) == 6
    stopped = TrialRecord.of(interrupted)
    assert stopped.fail_reason == "interrupted" and stopped.trial_key == "00001"
    assert stopped.cell is None and stopped.threads is None  # neither recorded back then
