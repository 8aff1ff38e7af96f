"""Workers on one machine share its cores instead of each taking all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pipeline.outer.cores import CoreShare


@pytest.fixture(autouse=True)
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_workers_on_one_machine_split_its_cores(tmp_path: Path) -> None:
    with CoreShare(tmp_path) as share:
        assert share.apply() == 8 == torch.get_num_threads()
        others = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                  for _ in range(3)]
        try:
            for other in others:
                (tmp_path / ".workers" / f"{share.host}:{other.pid}").touch()
            assert share.apply() == 2 == torch.get_num_threads()
            others[0].kill()
            others[0].wait()
            assert share.apply() == 2  # 8 cores, 3 live workers
            assert len(list((tmp_path / ".workers").iterdir())) == 3  # the dead one is gone
        finally:
            for other in others:
                other.kill()
                other.wait()
        assert share.apply() == 8
    assert not (tmp_path / ".workers").exists()  # the last worker leaves no folder


def test_an_explicit_thread_count_is_kept(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    with CoreShare(tmp_path) as share:
        (tmp_path / ".workers" / f"{share.host}:{os.getppid()}").touch()
        assert share.apply() == 3 == torch.get_num_threads()
