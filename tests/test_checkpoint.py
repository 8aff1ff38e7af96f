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
    loaded = load_checkpoint(path, meta={"seed": 1}, keys=["w", "history"], epochs=3)
    assert torch.equal(loaded["w"], state["w"]) and loaded["history"] == state["history"]


def test_a_write_killed_midway_leaves_the_previous_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.ones(3), "epoch": 1}, meta={})

    def dying_save(obj: object, handle: object) -> None:
        handle.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.zeros(3), "epoch": 2}, meta={})
    assert torch.equal(_load(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def _load(path: Path, meta: dict | None = None) -> dict:
    return load_checkpoint(path, meta=meta or {}, keys=["w"], epochs=3)


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        _load(path)
    torch.save({"schema_version": 1, "meta": {}, "state": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="unreadable"):  # weights_only refuses objects
        _load(path)
    torch.save({"schema_version": 0, "meta": {}, "state": {}}, path)
    with pytest.raises(CheckpointError, match="schema"):
        _load(path)
    save_checkpoint(path, {"w": 1, "epoch": 1}, meta={"seed": 1})
    with pytest.raises(CheckpointError, match="different trial"):
        _load(path, {"seed": 2})
    with pytest.raises(FileNotFoundError):
        _load(tmp_path / "none.pt")


@pytest.mark.parametrize("payload, reason", [
    ([1, 2, 3], "holds a list"),
    ({"schema_version": 1, "meta": {}, "state": [1]}, "lacks all"),
    ({"schema_version": 1, "meta": {}, "state": {"epoch": 1}}, "lacks w"),
    ({"schema_version": 1, "meta": {}, "state": {"w": 1, "epoch": 4}}, "outside its run of 3"),
    ({"schema_version": 1, "meta": {}, "state": {"w": 1, "epoch": -1}}, "outside"),
    ({"schema_version": 1, "meta": {}, "state": {"w": 1, "epoch": "1"}}, "outside"),
])
def test_loadable_files_that_are_not_a_usable_checkpoint_are_refused(
        tmp_path: Path, payload: object, reason: str) -> None:
    torch.save(payload, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=reason):
        _load(tmp_path / "ckpt.pt")


def test_leftovers_of_interrupted_writes_are_removed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt.pt", {"w": 1, "epoch": 1}, meta={})
    (tmp_path / ".ckpt.pt.abc123.tmp").write_bytes(b"")
    assert _load(tmp_path / "ckpt.pt")["w"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_metrics_log(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, [{"epoch": 1}, {"epoch": 2}])
    append_metrics(path, {"epoch": 3})
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 3]
