"""Several worker processes on one study, on each storage; killed workers lose nothing.

PostgreSQL runs when GLOBALDARTS_TEST_POSTGRES holds a server URL (``.ci/run`` starts a
throwaway server and sets it); the other storages always run.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import StudyConfig
from pipeline.outer.storage import make_storage
from pipeline.outer.study import load_study
from pipeline.outer.trials import surplus

POSTGRES = os.environ.get("GLOBALDARTS_TEST_POSTGRES")
# Workers share two cores: one thread each, or they spin against each other.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
T = TypeVar("T")


def _storage(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    if kind == "journal":
        return str(tmp_path / "shared.log")
    if not POSTGRES:
        pytest.skip("set GLOBALDARTS_TEST_POSTGRES to a PostgreSQL URL (.ci/run does)")
    return POSTGRES


@pytest.fixture
def unique_study(study_file: Path) -> tuple[Path, str]:
    """The tiny study under a name no other test uses (a PostgreSQL database outlives it)."""
    name = f"w{uuid.uuid4().hex[:10]}"
    path = study_file.with_name(f"{name}.toml")
    study_file.rename(path)
    return path, name


def _command(path: Path, storage: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "search", str(path), "--root", str(path.parent),
            "--storage", storage, *options]


def _trials(name: str, root: Path, storage: str) -> list[FrozenTrial]:
    if storage == POSTGRES:  # without a pool: the test holds no connection of its own
        import sqlalchemy

        database = optuna.storages.RDBStorage(
            storage, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
        return optuna.load_study(study_name=name, storage=database).get_trials()
    return load_study(name, root=root, storage=storage).get_trials()


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_two_workers_split_one_budget(kind: str, tmp_path: Path,
                                      unique_study: tuple[Path, str]) -> None:
    path, name = unique_study
    storage = _storage(kind, tmp_path)
    # searches long enough that one worker cannot finish a generation before the other
    # has started (a worker's start takes seconds on two busy cores)
    command = _command(path, storage, "--n-trials", "8", "--set", "search.epochs=4")
    workers = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=ONE_THREAD) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err

    trials = _trials(name, path.parent, storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    assert len({t.user_attrs["original_number"] for t in complete}) == 8
    assert all(surplus(t.user_attrs.get("fail_reason"))
               for t in trials if t.state != TrialState.COMPLETE)
    workers_by_generation = defaultdict(set)
    for trial in complete:
        workers_by_generation[trial.system_attrs.get("cma:generation")].add(
            trial.user_attrs["worker"])
    assert len(set.union(*workers_by_generation.values())) == 2
    assert any(len(w) == 2 for g, w in workers_by_generation.items() if g is not None)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_worker_loses_and_repeats_nothing(kind: str, tmp_path: Path,
                                                   unique_study: tuple[Path, str]) -> None:
    path, name = unique_study
    storage = _storage(kind, tmp_path)
    budget, epochs = 6, 15
    command = _command(path, storage, "--n-trials", str(budget),
                       "--set", f"search.epochs={epochs}", "--set", "outer.heartbeat_interval=1",
                       "--set", "outer.grace_period=3")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=ONE_THREAD)
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=ONE_THREAD)
    victim = f"{socket.gethostname()}:{first.pid}"
    killed_key, epochs_done = _wait_for_epochs(name, path.parent, storage, victim, epochs=2)
    first.kill()
    first.wait()
    third = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=ONE_THREAD)
    _, second_err = second.communicate(timeout=300)
    assert second.returncode == 0, second_err
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err

    trials = _trials(name, path.parent, storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget  # none lost
    assert len({t.user_attrs["original_number"] for t in complete}) == budget  # none twice
    [killed] = [t for t in trials if t.user_attrs["worker"] == victim
                and t.state == TrialState.FAIL]
    # failed by its missing heartbeat, or as soon as a worker saw its process was gone
    assert killed.user_attrs.get("fail_reason", "interrupted").startswith("interrupted")
    [retry] = [t for t in complete if t.user_attrs["trial_key"] == killed_key]
    assert retry.number != killed.number and retry.params == killed.params
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"]
    assert retry.user_attrs["resumed_from_epoch"] >= epochs_done - 1  # epochs not redone
    assert sorted(retry.intermediate_values) == list(range(1, epochs + 1))


def test_a_killed_population_worker_loses_and_repeats_nothing(
        tmp_path: Path, unique_study: tuple[Path, str]) -> None:
    path, name = unique_study
    storage = _storage("sqlite", tmp_path)
    budget, epochs = 4, 12
    command = _command(path, storage, "--n-trials", str(budget), "--population", "2",
                       "--set", f"search.epochs={epochs}", "--set", "outer.heartbeat_interval=1",
                       "--set", "outer.grace_period=3")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=ONE_THREAD)
    victim = f"{socket.gethostname()}:{first.pid}"
    # the first trial runs alone; the two after it run as a population
    _wait_for_trials(name, path.parent, storage, victim, running=2, epochs=2)
    first.kill()
    first.wait()
    killed = {t.number for t in _trials(name, path.parent, storage)
              if t.state == TrialState.RUNNING}
    second = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD,
                            timeout=300)
    assert second.returncode == 0, second.stderr

    trials = _trials(name, path.parent, storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget
    assert len({t.user_attrs["original_number"] for t in complete}) == budget
    assert len(killed) == 2 and all(trials[n].state == TrialState.FAIL for n in killed)
    assert all(trials[n].user_attrs.get("fail_reason", "interrupted").startswith("interrupted")
               for n in killed)  # no heartbeat, or a worker saw its process was gone
    for number in killed:
        [retry] = [t for t in complete if t.user_attrs["original_number"] == number]
        assert retry.params == trials[number].params
        assert retry.user_attrs["resumed_from_epoch"] >= 2


def _wait_for_trials(name: str, root: Path, storage: str, worker: str, *, running: int,
                     epochs: int) -> None:
    """Wait until ``worker`` runs ``running`` trials with ``epochs`` finished each."""
    def ready(trials: list[FrozenTrial]) -> bool | None:
        done = [_epochs_done(root / name, t) for t in trials]
        return True if len(done) >= running and min(done) >= epochs else None

    _wait_for(name, root, storage, worker, ready)


def _wait_for_epochs(name: str, root: Path, storage: str, worker: str, *, epochs: int
                     ) -> tuple[str, int]:
    """Wait until ``worker`` runs a trial with ``epochs`` finished; its key and epochs."""
    def ready(trials: list[FrozenTrial]) -> tuple[str, int] | None:
        for trial in trials:
            done = _epochs_done(root / name, trial)
            if done >= epochs:
                return trial.user_attrs["trial_key"], done
        return None

    return _wait_for(name, root, storage, worker, ready)


def _wait_for(name: str, root: Path, storage: str, worker: str,
              ready: Callable[[list[FrozenTrial]], T | None]) -> T:
    """Poll ``worker``'s running trials until ``ready`` returns something, for 2 min."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = _trials(name, root, storage)
        except Exception:  # the study may not exist yet
            trials = []
        result = ready([t for t in trials if t.state == TrialState.RUNNING
                        and t.user_attrs.get("worker") == worker])
        if result is not None:
            return result
        time.sleep(0.1)
    raise AssertionError(f"worker {worker} never got there")


def _epochs_done(directory: Path, trial: FrozenTrial) -> int:
    metrics = directory / "trials" / trial.user_attrs.get("trial_key", "none") / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def test_passwords_never_reach_output_or_logs(tmp_path: Path,
                                              unique_study: tuple[Path, str]) -> None:
    path, name = unique_study
    storage = _storage("postgresql", tmp_path)
    password = storage.split(":")[2].split("@")[0]
    log = tmp_path / "run.log"
    runs = [
        [sys.executable, "-m", "pipeline", "-v", "--log-file", str(log), *_command(
            path, storage, "--n-trials", "1", "--set", "search.epochs=1")[3:]],
        [sys.executable, "-m", "pipeline", "status", name, "--storage", storage],
        [sys.executable, "-m", "pipeline", "status", name,
         "--storage", storage.replace(password, "wrong-" + password)],
    ]
    outputs = [subprocess.run(run, capture_output=True, text=True, timeout=300) for run in runs]
    assert [o.returncode for o in outputs] == [0, 0, 2]
    assert "cannot open storage" in outputs[2].stderr
    for text in [log.read_text(), *(o.stdout + o.stderr for o in outputs)]:
        assert password not in text


def _backends(connection: Any) -> list[int]:
    """The process ids of the server's connections to the database, but ``connection``'s."""
    import sqlalchemy

    rows = connection.execute(sqlalchemy.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()")).fetchall()
    connection.rollback()  # the server keeps one snapshot of the activity per transaction
    return [row[0] for row in rows]


def test_a_worker_keeps_few_postgres_connections_and_replaces_dropped_ones() -> None:
    """Eight threads of one worker share its small pool; connections the server drops
    (after a long trial, say) are replaced when next used, not failed on."""
    import threading

    import sqlalchemy

    from pipeline.outer.storage import POOL_OVERFLOW, POOL_SIZE, make_storage

    url = _storage("postgresql", Path("."))
    storage = make_storage(url)
    watcher = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool).connect()
    before = len(_backends(watcher))
    done = threading.Barrier(9)

    def busy() -> None:
        for _ in range(20):
            storage.get_all_studies()
        done.wait()

    threads = [threading.Thread(target=busy) for _ in range(8)]
    for thread in threads:
        thread.start()
    done.wait()
    assert len(_backends(watcher)) - before <= POOL_SIZE + POOL_OVERFLOW
    for thread in threads:
        thread.join()
    for pid in _backends(watcher):  # the server drops every other connection
        watcher.execute(sqlalchemy.text(f"SELECT pg_terminate_backend({int(pid)})"))
    watcher.close()
    storage.get_all_studies()  # a dropped connection is replaced, not failed on


def _open_together(config: StudyConfig, url: str, folder: Path, ready: object,
                   results: object) -> None:
    """One worker process: open the study when all are ready, claim its folder, and (a
    worker sets up more before it asks) propose a start point after a moment."""
    from pipeline.outer.folder import claim_folder
    from pipeline.outer.study import open_study
    from pipeline.search import build_start_space

    space = build_start_space(config, steps_per_epoch=1)
    storage = make_storage(url)
    try:
        ready.wait(timeout=60)  # type: ignore[attr-defined]
        study = open_study(config, storage, space)
        claim_folder(folder, study, url)
        time.sleep(0.5)
        trial = study.ask()
        start = {spec.name: trial.suggest_float(spec.name, spec.low, spec.high)
                 for spec in space.specs}
        results.put(sorted(start.items()))  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - the test reports it
        results.put(repr(error))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_workers_opening_a_new_study_together_set_it_up_once_and_propose_their_own_starts(
        kind: str, tiny_config: StudyConfig, tmp_path: Path) -> None:
    """Four worker processes create or load one study at the same moment: none is refused,
    the study gets one id (which its folder holds) and one centre trial, and the workers
    propose different start points."""
    import multiprocessing

    from pipeline.outer.folder import STATE_ID, owner

    url = _storage(kind, tmp_path)
    context = multiprocessing.get_context("fork")
    for _ in range(2):
        config = dataclasses.replace(tiny_config, name=f"together-{uuid.uuid4().hex[:8]}")
        folder, ready, results = tmp_path / config.name, context.Barrier(4), context.Queue()
        workers = [context.Process(target=_open_together,
                                   args=(config, url, folder, ready, results))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            starts = [results.get(timeout=120) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=10)
                worker.kill()
        study = optuna.load_study(study_name=config.name, storage=url)
        assert all(isinstance(start, list) for start in starts), starts
        assert len({tuple(start) for start in starts}) == 4  # the centre and three others
        assert sum(not any(value for _, value in start) for start in starts) == 1
        assert owner(folder)[STATE_ID] == study.user_attrs[STATE_ID]


def test_eight_workers_on_postgres_lose_nothing_repeat_nothing_and_hold_few_connections(
        tmp_path: Path, unique_study: tuple[Path, str]) -> None:
    """The cluster worker line as 8 processes on one PostgreSQL database, one killed
    mid-trial: every trial of the budget completes once, and the server's connections
    stay within each worker's pool."""
    import threading

    import sqlalchemy

    from pipeline.outer.storage import POOL_OVERFLOW, POOL_SIZE

    path, name = unique_study
    storage = _storage("postgresql", tmp_path)
    budget, size = 12, 8
    command = _command(path, storage, "--n-trials", str(budget), "--set", "search.epochs=4",
                       "--set", "outer.heartbeat_interval=1", "--set", "outer.grace_period=3")
    watcher = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool).connect()
    before, counts, stop = len(_backends(watcher)), [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            counts.append(len(_backends(watcher)) - before)
            stop.wait(0.2)

    workers = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=ONE_THREAD) for _ in range(size)]
    counting = threading.Thread(target=watch)
    counting.start()
    try:
        victim = workers[0]
        _wait_for_epochs(name, path.parent, storage, f"{socket.gethostname()}:{victim.pid}",
                         epochs=1)
        victim.kill()
        victim.wait()
        for worker in workers[1:]:
            _, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err
    finally:
        stop.set()
        counting.join()
        watcher.close()
        for worker in workers:
            worker.kill()

    trials = _trials(name, path.parent, storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget  # none lost
    assert len({t.user_attrs["original_number"] for t in complete}) == budget  # none twice
    starts = {tuple(sorted(t.params.items())) for t in complete}
    assert len(starts) == budget  # each worker proposes its own start points
    assert any(t.user_attrs.get("fail_reason", "").startswith("interrupted") for t in trials)
    print(f"\nconnections of {size} workers: peak {max(counts)}, "
          f"bound {size * (POOL_SIZE + POOL_OVERFLOW)}")
    assert max(counts) <= size * (POOL_SIZE + POOL_OVERFLOW) + 1  # + the test's own query
