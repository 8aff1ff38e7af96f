"""Bad input, damaged files and exposed services, as an adversarial user would try them:
one line and exit code 2 (never a traceback), nothing left behind, no password shown."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import typing
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cli
from pipeline.config import StudyConfig

PASSWORDS = [  # (storage URL, what must not be shown)
    ("postgresql://bob:sl/ash:Secret9@127.0.0.1:1/gdb", "Secret9"),
    ("postgresql://bob:p@ss9word@127.0.0.1:1/gdb", "ss9word"),
    ("postgresql://bob:p%40ss9word@127.0.0.1:1/gdb", "ss9word"),
    ("postgresql://bob@127.0.0.1:1/gdb?password=Secret9", "Secret9"),
    ("postgresql://gdb9:gdb9@127.0.0.1:1/gdb9", "gdb9"),  # the password is the database
    ("postgresql://bob@127.0.0.1:1/gdb?sslpassword=Sslpw9", "Sslpw9"),
    ("postgresql://bob:my Secret9@127.0.0.1:1/gdb", "Secret9"),  # a blank in it
    ("postgresql://bob@127.0.0.1:1/gdb?password=my+Secret9", "Secret9"),
    ("postgresql://bob@127.0.0.1:1/gdb?sslmode=require&sslkey=/keys/Key9.pem", "Key9"),
]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_usage_error(code: int, err: str) -> bool:
    return code == 2 and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("url, secret", PASSWORDS)
def test_no_form_of_storage_password_is_printed(
        url: str, secret: str, study_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.txt"
    runs = [["status", "nosuch", "--storage", url],
            ["search", str(study_file), "--storage", url, "-v", "--log-file", str(log)],
            ["--debug", "status", "nosuch", "--storage", url]]
    for args in runs:
        code, out, err = _run(capsys, *args)
        assert code == 2 and "cannot open storage" in err
        assert secret not in out + err, args
    assert secret not in log.read_text()


def test_an_exposed_dashboard_needs_a_flag_and_is_read_only(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "1",
                     "--set", "search.epochs=1"]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "dashboard", "tiny", "--root", root, "--host", "0.0.0.0")
    assert _one_line_usage_error(code, err) and "--expose" in err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "tiny", "--root",
                               root, "--port", str(port), "--host", "0.0.0.0", "--expose"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/api/studies"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base, timeout=10).read()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/1", method="DELETE"),
                                   timeout=10)
        assert refused.value.code == 405
        assert b"tiny" in urllib.request.urlopen(base, timeout=10).read()  # still there
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "no authentication" in err


def _corrupt(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 3)
        handle.write(os.urandom(3 * 4096))


@pytest.mark.parametrize("damage", [_corrupt, lambda path: path.write_bytes(b"")],
                         ids=["damaged pages", "zero bytes"])
def test_a_damaged_study_database_is_one_line_from_every_command(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        damage: typing.Callable[[Path], None]) -> None:
    root = str(study_file.parent)
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "2",
                     "--set", "search.epochs=1"]) == 0
    database = study_file.parent / "tiny" / "study.db"
    damage(database)
    damaged = database.read_bytes()
    for args in (["status", "tiny"], ["report", "tiny", "--out", str(tmp_path / "r")],
                 ["search", str(study_file), "--n-trials", "3", "--set", "search.epochs=1"]):
        capsys.readouterr()
        code, _, err = _run(capsys, *args, "--root", root)
        assert _one_line_usage_error(code, err), (args, err)
    assert database.read_bytes() == damaged  # never replaced


@pytest.mark.parametrize("args, needle", [
    (["--set", "search.arch_lr=inf"], "search.arch_lr"),
    (["--set", "start.gain_range=inf"], "start.gain_range"),
    (["--set", "start.alpha_range=nan"], "start.alpha_range"),
    (["--set", "search.weight_lr=inf"], "search.weight_lr"),
    (["--set", "seed=18446744073709551617"], "seed"),
    (["--set", "data.subset=5"], "data.subset"),
    (["--set", "outer.popsize=1000000000"], "outer.popsize"),
    (["--set", "start.directions=1000000000"], "start.directions"),
    (["--set", "search.epochs=2", "--set", "outer.epoch_budget=1"], "outer.epoch_budget"),
    (["--device", "xpu"], "--device"),
    (["--device", "meta"], "--device"),
    (["--set", "retrain.epochs=0"], "retrain.epochs"),
])
def test_every_bad_number_is_refused_and_leaves_nothing(
        study_file: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        needle: str) -> None:
    root = study_file.parent
    code, _, err = _run(capsys, "search", str(study_file), "--root", str(root), *args)
    assert _one_line_usage_error(code, err) and needle in err
    assert [p.name for p in root.iterdir()] == ["tiny.toml"]


@pytest.mark.parametrize("args", [
    ["evaluate", "--genotype", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     "--set", "retrain.epochs=-1"],
    ["evaluate", "--genotype", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     "--set", "retrain.batch_size=-3"],
    ["evaluate", "--genotype", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     "--set", "retrain.lr=nan"],
    ["evaluate", "--genotype", "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], "
     "normal_concat=range(0, 1000000000000), reduce=[('sep_conv_3x3', 0), "
     "('sep_conv_3x3', 1)], reduce_concat=[2])", "--count-params"],
    ["dashboard", "--port", "-1"],
    ["dashboard", "--port", "70000"],
    ["compare", "x.toml", "--seeds", "0"],
    ["bench", "--iterations", "0"],
])
def test_commands_refuse_bad_numbers_in_one_line(
        args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main([*args, "--root", str(tmp_path)])
    except SystemExit as usage:  # argparse's own one-line refusal
        code = int(usage.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_a_log_file_in_a_missing_folder_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--log-file", str(tmp_path / "no" / "log.txt"), "status")
    assert _one_line_usage_error(code, err) and "--log-file" in err


def test_a_journal_cut_off_mid_line_is_mended_before_anything_is_appended(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = str(tmp_path / "study.log")
    common = ["--root", str(study_file.parent), "--storage", journal]
    assert cli.main(["search", str(study_file), "--n-trials", "1", "--set",
                     "search.epochs=1", *common]) == 0
    with open(journal, "a") as handle:
        handle.write('{"op_code": 5, "worker_id": "a killed wri')  # no newline: cut off
    capsys.readouterr()
    code, out, err = _run(capsys, "search", str(study_file), "--n-trials", "2", "--set",
                          "search.epochs=1", *common)
    assert code == 0 and "2 of 2 finished" in out and "partial record" in err
    code, out, _ = _run(capsys, "status", "tiny", *common)
    assert code == 0 and out.count("COMPLETE") == 2


def test_a_journal_trial_of_a_vanished_worker_is_named_in_the_summary(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = str(tmp_path / "study.log")
    common = ["--root", str(study_file.parent), "--storage", journal]
    assert cli.main(["search", str(study_file), "--n-trials", "1", "--set",
                     "search.epochs=1", *common]) == 0
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)))
    study.ask().set_user_attr("worker", "another-machine:123")  # killed there: no heartbeat
    capsys.readouterr()
    code, out, _ = _run(capsys, "search", str(study_file), "--n-trials", "2", "--set",
                        "search.epochs=1", *common)
    assert code == 0 and "1 trials of other workers" in out and "no heartbeat" in out


def _numeric_keys(config: StudyConfig) -> list[str]:
    """Every number a study file holds, as a dotted key."""
    keys = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            if section.name == "seed":
                keys.append("seed")
            continue
        hints = typing.get_type_hints(type(value))
        keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(value)
                 if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}
                 and hints[f.name] is not bool]
    return keys


NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-3, 300))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_number_in_any_field_or_option_exits_0_or_2(
        data: st.DataObject, tiny_config: StudyConfig, study_file: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Up to the first search: the config, the data split, the start space, the storage and
    the study are built; the searches themselves are skipped (``_work``)."""
    import pipeline.outer.study

    monkeypatch.setattr(pipeline.outer.study, "_work", lambda *args, **kwargs: None)
    key = data.draw(st.sampled_from(_numeric_keys(tiny_config)), label="key")
    value = data.draw(NUMBERS, label="value")
    option = data.draw(st.sampled_from(["--set", "--n-trials", "--population"]),
                       label="option")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copy(study_file, root / "tiny.toml")
        args = ["search", str(root / "tiny.toml"), "--root", folder, "--device", "cpu"]
        args += [option, f"{key}={value}" if option == "--set" else str(value)]
        try:
            code = cli.main(args)
        except SystemExit as usage:  # argparse refusing a non-integer option
            code = int(usage.code or 0)
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, (args, err)
        if code == 2:
            assert [p.name for p in root.iterdir()] == ["tiny.toml"], args


def test_a_full_disk_under_the_database_says_the_study_resumes(
        study_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import pipeline.outer

    def full(*args: object, **kwargs: object) -> None:
        try:
            raise OSError("database or disk is full")
        except OSError as cause:
            raise optuna.exceptions.StorageInternalError("commit failed") from cause

    monkeypatch.setattr(pipeline.outer, "run_study", full)
    code, _, err = _run(capsys, "search", str(study_file), "--root", str(study_file.parent))
    assert code == 1 and "database or disk is full; once there is room" in err
    assert err.count("\n") == 1


@pytest.fixture(scope="module")
def finished_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding the tiny study, finished (2 trials of 1 epoch), and its file."""
    from conftest import TINY, _toml

    root = tmp_path_factory.mktemp("finished") / "studies"
    root.mkdir()
    lines = [f'seed = {TINY["seed"]}'] + [
        line for section, values in TINY.items() if isinstance(values, dict)
        for line in (f"[{section}]", *(f"{k} = {_toml(v)}" for k, v in values.items()))]
    (root / "tiny.toml").write_text("\n".join(lines) + "\n")
    levels = [logging.getLogger(name).level for name in ("", "pipeline.progress")]
    assert cli.main(["search", str(root / "tiny.toml"), "--root", str(root), "--n-trials", "2",
                     "--set", "search.epochs=1", "-q"]) == 0
    for name, level in zip(("", "pipeline.progress"), levels, strict=True):
        logging.getLogger(name).setLevel(level)  # as the fixture ``fresh_logging`` does
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
            for p in sorted(folder.rglob("*"))}


NAMES = st.sampled_from(["tiny", "tiny2", "ghost", "../up", "a b", "", "-x", "tiny.toml",
                         "x" * 80, ".hidden", "ok.name"])
PICKS = st.sampled_from([None, b"", b"a,b\n1,2\n", b"\x00\xff garbage",
                         b"setting,variant,start_space,method,seed\n",
                         b"setting,variant,start_space,method,seed,extra\n1,2,3,4,5,6\n"])
SETTINGS = st.sampled_from(["seed", "retrain.epochs", "retrain.batch_size", "retrain.lr",
                            "retrain.channels", "retrain.cells", "data.subset", "data.holdout",
                            "search.epochs", "outer.n_trials", "start.alpha_range",
                            "outer.sampler", "start.alpha_space", "search.arch_lr"])
VALUES = st.one_of(st.sampled_from(["0", "1", "2", "-1", "nan", "inf", "1e300", "op",
                                    "random", "'x'", "[1]", "2**70"]),
                   st.integers(-5, 5).map(str))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_studies_command_exits_0_or_2_and_an_exit_2_leaves_nothing_behind(
        data: st.DataObject, finished_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """fork, delete, list, compare --picks and evaluate, with drawn names, flags, files and
    settings (each run small: one search of one epoch, one training epoch)."""
    command = data.draw(st.sampled_from(["fork", "delete", "list", "compare", "evaluate"]),
                        label="command")
    setting = f"{data.draw(SETTINGS, label='key')}={data.draw(VALUES, label='value')}"
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "studies"
        shutil.copytree(finished_root, root)
        picks = Path(folder) / "picks.csv"
        common = ["--root", str(root), "-q"]
        if command == "fork":
            args = ["fork", data.draw(NAMES, label="study"), data.draw(NAMES, label="new"),
                    "--set", setting]
        elif command == "delete":
            args = ["delete", data.draw(NAMES, label="study"),
                    *data.draw(st.sampled_from([[], ["--yes"], ["--yes", "--force"]]))]
        elif command == "list":
            args = ["list", *data.draw(st.sampled_from(
                [[], ["--storage", str(root / "o.log")], ["--storage", "bogus://x"],
                 ["--storage", f"sqlite:///{root}/tiny/study.db"]]))]
        elif command == "compare":
            content = data.draw(PICKS, label="picks")
            if content is not None:
                picks.write_bytes(content)
            args = ["compare", str(root / "tiny.toml"), "--picks", str(picks), "--methods",
                    "darts", "--set", "outer.n_trials=1", "--set", "search.epochs=1",
                    "--set", setting, "--out", str(Path(folder) / "out")]
        else:
            args = ["evaluate", "--genotype", data.draw(st.sampled_from(
                        ["tiny", "tiny:0", "tiny:9", "ghost:1", "|none~0|"]), label="cell"),
                    "--set", "retrain.epochs=1", "--set", "retrain.channels=4",
                    "--set", "retrain.cells=1", "--set", setting,
                    "--out", str(Path(folder) / "evals")]
        before = _tree(Path(folder))
        try:
            code = cli.main([*args, *common])
        except SystemExit as usage:  # argparse's own one-line refusal
            code = int(usage.code or 0)
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, (args, err)
        if code == 2:
            assert _tree(Path(folder)) == before, args
