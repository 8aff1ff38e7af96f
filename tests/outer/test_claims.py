"""Claims on searches: one holder per search among the studies of a root, freed when it
releases or its process ends."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from pipeline.outer.claims import SearchClaim


def test_a_claim_that_waits_holds_only_after_the_holder_releases(tmp_path: Path) -> None:
    first = SearchClaim(tmp_path, "k", wait=True)
    events: list[str] = []

    def second() -> None:
        claim = SearchClaim(tmp_path, "k", wait=True)
        events.append("second holds")
        claim.release()

    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive() and events == []  # it cannot hold while the first does
    events.append("first releases")
    first.release()
    waiter.join()
    assert events == ["first releases", "second holds"]


def test_a_claim_that_does_not_wait_holds_only_a_free_search(tmp_path: Path) -> None:
    first = SearchClaim(tmp_path, "k", wait=False)
    assert first.held
    assert not SearchClaim(tmp_path, "k", wait=False).held
    other = SearchClaim(tmp_path, "other", wait=False)
    assert other.held  # one lock per search
    other.release()
    first.release()
    first.release()  # a second release does nothing
    assert not first.held and not first.path.exists()
    assert not first.path.parent.exists()  # the last claim took its folder
    assert SearchClaim(tmp_path, "k", wait=False).held


def test_a_dead_holder_leaves_its_search_free(tmp_path: Path) -> None:
    code = ("import os, pathlib; from pipeline.outer.claims import SearchClaim; "
            f"SearchClaim(pathlib.Path({str(tmp_path)!r}), 'k', wait=True); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / ".search-claims" / "k.lock").exists()  # never released
    assert SearchClaim(tmp_path, "k", wait=False).held
