from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from pipeline import cli
from pipeline.spaces import NB201Genotype


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_then_status(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    code, out, err = _run(capsys, "search", str(study_file), "--root", root, "--n-trials", "2",
                          "--set", "search.epochs=1")
    assert code == 0, err
    assert "best cell      |" in out and "2 of 2 finished" in out
    code, out, _ = _run(capsys, "status", "tiny", "--root", root)
    assert code == 0 and out.count("COMPLETE") == 2
    reports = study_file.parent.parent / "reports"
    code, out, _ = _run(capsys, "report", "tiny", "--root", root, "--out", str(reports))
    assert code == 0 and (reports / "tiny" / "index.html").exists()
    assert (reports / "tiny" / "trials.csv").read_text().count("\n") == 3


def test_export_and_evaluate(study_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "2",
                     "--set", "search.epochs=1"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "export", "tiny", "--root", root, "--trial", "1")
    cell = out.strip()
    assert code == 0 and NB201Genotype.parse(cell)
    code, out, _ = _run(capsys, "export", "tiny", "--root", root, "--format", "json")
    assert code == 0 and json.loads(out)["study"] == "tiny"
    table = tmp_path / "table.csv"
    table.write_text(f"arch_str,cifar10_test,cifar100_test,imagenet16_test\n{cell},90,70,40\n")
    code, out, _ = _run(capsys, "evaluate", "--genotype", "tiny:1", "--root", root,
                        "--nb201-table", str(table))
    assert code == 0 and "cifar10 90.00" in out and cell in out
    bad = [["evaluate", "--genotype", "|none~0|+|bogus~0|none~1|+|none~0|none~1|none~2|"],
           ["evaluate", "--genotype", "tiny:x", "--root", root],
           ["evaluate", "--genotype", "ghost", "--root", root],
           ["export", "tiny", "--root", root, "--trial", "99"],
           ["evaluate", "--genotype", cell, "--nb201-table", str(tmp_path / "none.csv")]]
    for args in bad:
        code, _, err = _run(capsys, *args)
        assert code == 2 and err.count("\n") == 1, args


def test_default_study_is_found_under_root(study_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    study_file.rename(study_file.with_name("default.toml"))
    code, out, err = _run(capsys, "search", "--root", str(study_file.parent), "--n-trials", "1",
                          "--set", "search.epochs=1")
    assert code == 0, err
    assert (study_file.parent / "default" / "study.db").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--set", "no_such_key=1"], "no_such_key"),
    (["--set", "search.epochs=-1"], "search.epochs"),
    (["--set", "search.batch_size=0"], "search.batch_size"),
    (["--set", "search.weight_lr=abc"], "search.weight_lr"),
    (["--set", "data.dataset=mnist"], "data.dataset"),
    (["--set", "space.name=darts_cnn"], "space.name"),
    (["--set", "outer.sampler=grid"], "outer.sampler"),
    (["--set", "outer.pruner=sometimes"], "outer.pruner"),
    (["--set", "name=../../etc"], "name"),
    (["--storage", "postgresql://me:hunter2@127.0.0.1:1/nas"], "cannot open storage"),
    (["--storage", "nosuchdb://nowhere"], "cannot open storage"),
    (["--device", "tpu"], "--device"),
    (["--set", "data.dataset=cifar10", "--set", "data.root=/nonexistent"], "cifar10"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        study_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
        needle: str) -> None:
    root = study_file.parent
    code, out, err = _run(capsys, "search", str(study_file), "--root", str(root), *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("globaldarts: error:") and needle in err
    assert "hunter2" not in err and "Traceback" not in err
    assert sorted(p.name for p in root.iterdir()) == ["tiny.toml"]


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("[search\nepochs=1", "not valid TOML"),
    ("[search]\nepochs = 'many'", "search.epochs"),
])
def test_bad_study_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         content: str | None, needle: str) -> None:
    path = tmp_path / "broken.toml"
    if content is not None:
        path.write_text(content)
    code, _, err = _run(capsys, "search", str(path), "--root", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and needle in err


def test_status_of_an_unknown_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "status", "ghost", "--root", str(tmp_path))
    assert code == 2 and "no study 'ghost'" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/b", "..", ".hidden", "x" * 65])
def test_study_names_cannot_leave_the_studies_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = _run(capsys, "status", name, "--root", str(tmp_path / "studies"))
    assert code == 2 and "name must be" in err


def test_interrupt_exits_130(study_file: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.outer.run_study", interrupted)
    code, _, err = _run(capsys, "search", str(study_file), "--root", str(study_file.parent))
    assert code == 130 and "resume" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "--n-trials", "many"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_search_resumes_where_it_stopped(study_file: Path, signum: int,
                                                     exit_code: int) -> None:
    root = study_file.parent
    command = [sys.executable, "-m", "pipeline", "search", str(study_file), "--root", str(root),
               "--n-trials", "1", "--set", "search.epochs=40"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    checkpoint = root / "tiny" / "trials" / "00000" / "ckpt.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == exit_code, err
    assert "resume" in err

    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    first, retry = study.get_trials()
    assert first.user_attrs["fail_reason"] == "interrupted"
    assert retry.state.name == "COMPLETE" and retry.user_attrs["original_number"] == 0
    metrics = (root / "tiny" / "trials" / "00000" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == list(range(1, 41))


def test_a_killed_worker_trial_is_retried_from_its_checkpoint(study_file: Path) -> None:
    root = study_file.parent
    command = [sys.executable, "-m", "pipeline", "search", str(study_file), "--root", str(root),
               "--n-trials", "1", "--set", "search.epochs=40",
               "--set", "outer.heartbeat_interval=1", "--set", "outer.grace_period=2"]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_name = f"{socket.gethostname()}:{worker.pid}"
    metrics = root / "tiny" / "trials" / "00000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 3) and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    worker.kill()
    worker.wait()
    done_before_kill = len(metrics.read_text().splitlines())  # no wait for a heartbeat

    verbose = [*command[:3], "-v", *command[3:]]
    finished = subprocess.run(verbose, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    resumed_after = int(re.search(r"resumes after epoch (\d+)", finished.stderr).group(1))
    assert resumed_after >= 2  # finished epochs were not redone
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    killed, retry = study.get_trials()
    # failed as soon as a worker on this machine saw that its process was gone
    assert killed.state.name == "FAIL"
    assert killed.user_attrs["fail_reason"] == f"interrupted: its worker {worker_name} is gone"
    assert retry.state.name == "COMPLETE" and retry.user_attrs["original_number"] == 0
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == list(range(1, 41))
    assert resumed_after >= done_before_kill - 1  # at most the epoch being written is lost


@pytest.mark.parametrize("shared", [False, True])
def test_dashboard_serves_the_study_and_its_artifacts(
        study_file: Path, tmp_path: Path, shared: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    """From the study's folder, or from the artifact store its workers shared (which the
    study's config names), with the trial files uploaded there."""
    import socket
    import urllib.request

    root = study_file.parent
    store = ["--artifacts", f"file://{tmp_path / 'store'}"] if shared else []
    assert cli.main(["search", str(study_file), "--root", str(root), "--n-trials", "1",
                     "--set", "search.epochs=1", *store]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "tiny", "--root",
                               str(root), "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> bytes:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return response.read()

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = json.loads(get("/api/studies"))["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.3)
        [study] = [s for s in studies if s["study_name"] == "tiny"]
        detail = json.loads(get(f"/api/studies/{study['study_id']}?after=0"))
        [trial] = detail["trials"]
        names = {a["filename"]: a["artifact_id"] for a in trial["artifacts"]}
        assert set(names) == {"cell.svg", "alphas.csv"} | (
            {"metrics.jsonl", "cell.txt"} if shared else set())
        assert (root / "tiny" / "artifacts").exists() != shared
        svg = get(f"/artifacts/{study['study_id']}/{trial['trial_id']}/{names['cell.svg']}")
        assert svg.startswith(b"<svg")
        assert "cell" in trial["note"]["body"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_two_objective_study_exports_its_pareto_front(
        study_file: Path, tmp_path: Path, sampler: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    code, out, err = _run(capsys, "search", str(study_file), "--root", root, "--n-trials", "4",
                          "--set", "search.epochs=1", "--set", f"outer.sampler={sampler}",
                          "--set", "search.objective=['supernet', 'params']",
                          "--set", "outer.pruner=none", "--set", "outer.popsize=2")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                optuna.study.StudyDirection.MINIMIZE]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    for trial in complete:
        assert trial.values == [trial.user_attrs["supernet_acc"],
                                trial.user_attrs["eval_params_M"]]
    front = [t for t in complete if not any(
        o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
        for o in complete)]
    assert f"pareto front   {len(front)} cells" in out
    code, out, _ = _run(capsys, "export", "tiny", "--root", root)
    assert code == 0
    assert sorted(out.split()) == sorted(t.user_attrs["cell"] for t in front)
    code, out, _ = _run(capsys, "export", "tiny", "--root", root, "--format", "json")
    records = json.loads(out)
    records = records if isinstance(records, list) else [records]
    assert sorted(r["trial"] for r in records) == sorted(t.number for t in front)
    assert all(len(r["values"]) == 2 for r in records)
    reports = tmp_path / "reports"
    code, _, err = _run(capsys, "report", "tiny", "--root", root, "--out", str(reports))
    assert code == 0, err


def test_search_with_a_population(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    code, out, err = _run(capsys, "search", str(study_file), "--root", root, "--n-trials", "3",
                          "--set", "search.epochs=1", "--population", "2")
    assert code == 0, err
    assert "3 of 3 finished" in out
    code, _, err = _run(capsys, "search", str(study_file), "--root", root, "--population", "2",
                        "--set", "search.order=2")
    assert code == 2 and "first-order" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "search", str(study_file), "--root", root, "--population", "2",
                        "--set", "search.compile=true")
    assert code == 2 and "search.compile = false" in err


def test_every_command_and_option_explains_itself() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {option.option_strings or option.dest}"
               for name, command in [("globaldarts", parser), *commands.choices.items()]
               for option in command._actions
               if not option.help and not isinstance(option, argparse._SubParsersAction)]
    assert missing == []
    assert [c.help for c in commands._choices_actions if not c.help] == []
