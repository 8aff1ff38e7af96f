from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.checkpoint import (
    CheckpointError,
    append_metrics,
    load_checkpoint,
    save_checkpoint,
    write_metrics,
)


class Payload:
    """An arbitrary object: loading it would mean unpickling code."""


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    state = {"w": torch.arange(4.0), "epoch": 3, "history": [{"a": 1.5}]}
    save_checkpoint(path, state, meta={"seed": 1})
    loaded = load_checkpoint(path, meta={"seed": 1})
    assert torch.equal(loaded["w"], state["w"]) and loaded["history"] == state["history"]


def test_a_write_killed_midway_leaves_the_previous_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.ones(3)}, meta={})

    def dying_save(obj: object, handle: object) -> None:
        handle.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.zeros(3)}, meta={})
    assert torch.equal(load_checkpoint(path, meta={})["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path, meta={})
    torch.save({"schema_version": 1, "meta": {}, "state": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="unreadable"):  # weights_only refuses objects
        load_checkpoint(path, meta={})
    torch.save({"schema_version": 0, "meta": {}, "state": {}}, path)
    with pytest.raises(CheckpointError, match="schema"):
        load_checkpoint(path, meta={})
    save_checkpoint(path, {}, meta={"seed": 1})
    with pytest.raises(CheckpointError, match="different trial"):
        load_checkpoint(path, meta={"seed": 2})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt", meta={})


def test_metrics_log(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, [{"epoch": 1}, {"epoch": 2}])
    append_metrics(path, {"epoch": 3})
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 3]
