"""What a new user meets in the first hour: progress in a log, a quiet Ctrl-C, evaluate that
knows its study, study management, and reports that answer at a glance."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from pipeline import cli

CUT_OFF = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _search(study_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "search", str(study_file), "--root",
            str(study_file.parent), *extra]


def test_without_a_terminal_progress_is_a_log_line_per_epoch_and_trial(
        study_file: Path) -> None:
    run = subprocess.run(_search(study_file, "--n-trials", "2", "--set", "search.epochs=2"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert sum("trial 0 epoch" in line for line in lines) == 2
    assert any(re.search(r"trial 1 epoch 2/2: supernet [\d.]+ %, .* s, trial ETA", line)
               for line in lines)
    assert any(re.search(r"trial 1 complete: value [\d.]+ %, cell \|", line) for line in lines)
    assert any("study tiny: 2 of 2 trials spent" in line and "ETA" in line for line in lines)
    quiet = subprocess.run(_search(study_file, "--n-trials", "3", "--set", "search.epochs=2",
                                   "-q"), capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "next           globaldarts report tiny --root" in quiet.stdout


def test_ctrl_c_is_one_line_and_status_links_the_trial_to_its_retry(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    process = subprocess.Popen(_search(study_file, "--n-trials", "1", "--set",
                                       "search.epochs=40", "-q"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = study_file.parent / "tiny" / "trials" / "00000" / "ckpt.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err == "globaldarts: interrupted; run the same command again to resume\n"
    finished = subprocess.run(_search(study_file, "--n-trials", "1", "--set",
                                      "search.epochs=40", "-q"), capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    code, out, _ = _run(capsys, "status", "tiny", "--root", str(study_file.parent), "--wide")
    rows = out.splitlines()[2:]
    assert code == 0 and "interrupted; retried as 1" in rows[0] and "retry of 0" in rows[1]
    assert rows[1].split()[0] == "*"  # the pick is marked


def _evaluation_options(study_file: Path, out: Path,
                        capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The tiny study searched (one trial of one epoch), and the options that evaluate its
    cells briefly into ``out``."""
    root = str(study_file.parent)
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "1",
                     "--set", "search.epochs=1", "-q"]) == 0
    capsys.readouterr()
    return ["--root", root, "--out", str(out), "--set", "retrain.epochs=1", "--set",
            "retrain.channels=4", "--set", "retrain.cells=1", "--device", "cpu"]


def test_evaluate_trains_on_its_studys_data_says_when_it_resumes_and_flags_chance(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = _evaluation_options(study_file, tmp_path / "evals", capsys)
    code, out, _ = _run(capsys, "evaluate", "--genotype", "tiny:0", *common)
    assert code == 0 and "(digits test split, 1 epochs from scratch)" in out  # the study's
    result = Path(re.search(r"result\s+(\S+)", out).group(1))
    assert json.loads(result.read_text())["dataset"] == "digits"
    code, out, _ = _run(capsys, "evaluate", "--genotype", "tiny:0", *common)
    assert code == 0 and f"resumed        after epoch 1 of 1, from {result.parent}" in out
    code, out, _ = _run(capsys, "evaluate", "--genotype", CUT_OFF, *common,
                        "--set", "data.dataset=digits")
    assert code == 0 and "warning        within a point of chance (10.00 %" in out
    with pytest.raises(SystemExit) as moved:  # argparse's one-line refusal
        cli.main(["evaluate", "--genotype", CUT_OFF, "--epochs", "2"])
    assert moved.value.code == 2 and "--set retrain.epochs=N" in capsys.readouterr().err


def test_an_evaluation_under_another_setting_never_overwrites_one_kept_before(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["evaluate", "--genotype", "tiny:0",
              *_evaluation_options(study_file, tmp_path / "evals", capsys)]

    def result(*args: str) -> Path:
        code, out, _ = _run(capsys, *common, *args)
        assert code == 0
        return Path(re.search(r"result\s+(\S+)", out).group(1))

    first = result()
    kept = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    second = result("--set", "seed=1")
    assert second.parent != first.parent and json.loads(second.read_text())["seed"] == 1
    assert {p.name: p.read_bytes() for p in first.parent.iterdir()} == kept
    code, out, _ = _run(capsys, *common)  # the first one is still there: it resumes
    assert code == 0 and f"resumed        after epoch 1 of 1, from {first.parent}" in out
    record = first.parent / "evaluation.json"  # a folder that says it holds another one
    record.write_text(record.read_text().replace('"seed": 3', '"seed": 7'))
    code, _, err = _run(capsys, *common)
    assert code == 2 and "holds another evaluation" in err and first.exists()
    # an earlier version's folder, named without the seed, is taken over for the same seed
    record.unlink()
    settings = json.loads(first.read_text())["settings"]
    from pipeline.search.training import TrainSettings
    from pipeline.spaces import parse_genotype

    cell = json.loads(first.read_text())["cell"]
    text = f"{parse_genotype(cell).to_str()}{TrainSettings(**settings)}digits"
    legacy = first.parent.with_name(hashlib.sha1(text.encode()).hexdigest()[:12])
    first.parent.rename(legacy)
    code, out, _ = _run(capsys, *common)
    assert code == 0 and f"resumed        after epoch 1 of 1, from {legacy}" in out


def test_global_options_go_after_the_command_too(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "list", "--root", str(tmp_path), "-q")
    assert code == 0 and "no studies" in out and err == ""


def test_studies_are_listed_forked_with_a_warm_start_and_deleted(
        study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    assert cli.main(["search", str(study_file), "--root", str(root), "--n-trials", "10",
                     "--set", "search.epochs=1", "-q"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "list", "--root", str(root))
    assert code == 0 and re.search(r"tiny .* 10/10 trials .*10 complete", out)
    code, out, _ = _run(capsys, "fork", "tiny", "tiny2", "--root", str(root),
                        "--set", "search.epochs=2")
    assert code == 0 and "warm start     10 complete trials of tiny" in out
    assert cli.main(["search", str(root / "tiny2.toml"), "--root", str(root), "--n-trials",
                     "4", "-q"]) == 0
    forked = optuna.load_study(study_name="tiny2", storage=f"sqlite:///{root}/tiny2/study.db")
    assert forked.user_attrs["config"]["outer"]["warm_start"] == "tiny"
    assert forked.user_attrs["config"]["search"]["epochs"] == 2
    assert len(forked.get_trials()) == 4
    code, _, err = _run(capsys, "fork", "tiny", "tiny2", "--root", str(root))
    assert code == 2 and "exists already" in err
    code, _, err = _run(capsys, "delete", "tiny2", "--root", str(root))
    assert code == 2 and "--yes" in err and (root / "tiny2").exists()
    code, out, _ = _run(capsys, "delete", "tiny2", "--root", str(root), "--yes")
    assert code == 0 and "(4 trials)" in out and not (root / "tiny2").exists()
    code, out, _ = _run(capsys, "list", "--root", str(root))
    assert "tiny2" not in out and (root / "tiny2.toml").exists()


def test_the_report_shows_scales_a_uniform_start_and_a_table_of_trials(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(study_file.parent)
    assert cli.main(["search", str(study_file), "--root", root, "--n-trials", "3",
                     "--set", "search.epochs=1", "-q"]) == 0
    assert cli.main(["report", "tiny", "--root", root, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "tiny" / "index.html").read_text()
    figures = [json.loads(match) for match in re.findall(
        r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", page, flags=re.S)]
    heatmaps = [trace for data in figures for trace in data if trace["type"] == "heatmap"]
    assert heatmaps and {trace["coloraxis"] for trace in heatmaps} == {"coloraxis",
                                                                        "coloraxis2"}
    assert "colorbar" in page and "(uniform: all 0)" in page
    assert "<table class='trials'>" in page and page.count("<tr><td>") == 3
    assert "Estimated from 20 complete trials on; this study has 3" in page
    history = next(data for data in figures if any(t.get("name") == "best so far"
                                                   for t in data))
    assert any("supernet" in text and "|" in text for trace in history
               for text in trace.get("hovertext", []) or [])
