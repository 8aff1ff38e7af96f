"""``globaldarts picks``: the recorded picks summarised per setting, method and budget."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline import cli
from pipeline.results.picks import summarise_picks


def _centre_flags(method: str, *, judge: bool, objective: bool, prefix: str
                  ) -> dict[str, bool | None]:
    plain = method == "darts"
    return {f"{prefix}judge_from_centre": None if plain else judge,
            f"{prefix}pick_from_centre": None if plain else objective}


def _picks(path: Path) -> Path:
    """Two settings, CMA-ES and plain starts (the order compare writes them in), two seeds
    each, judged after 5 and 10; a plain study has no centre trial to flag."""
    rows = []
    for setting, shift in (("collapse", 0.0), ("small", -1.0)):
        for method, gain in (("cmaes", 0.5), ("darts", 0.0)):
            for seed in (0, 1):
                judge = 93.0 + seed + gain + shift
                rows.append({
                    "setting": setting, "variant": "darts", "start_space": "edge",
                    "method": method, "seed": seed, "cifar10": judge - 1,
                    "judge_cifar10": judge, "best_of_its_cells": 94.0 + shift,
                    "judge_regret": 94.0 + shift - judge, "mean_cell": 90.0, "params": 0.5,
                    "judge_params": 0.4 + seed / 10, "cut_off": seed,
                    **_centre_flags(method, judge=seed == 0, objective=True, prefix=""),
                    "searches": 10, "first_searches": 5, "first_cifar10": judge - 2,
                    "first_judge_cifar10": judge - 1, "first_best_of_its_cells": 93.5,
                    "first_judge_regret": 0.5, "first_mean_cell": 89.0, "first_params": 0.3,
                    "first_judge_params": 0.3, "first_cut_off": 0,
                    **_centre_flags(method, judge=True, objective=False, prefix="first_")})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_each_setting_method_and_budget_is_summarised_over_its_seeds(tmp_path: Path) -> None:
    """In the settings' order, and plain starts (the baseline) before the global ones."""
    summary = summarise_picks(pd.read_csv(_picks(tmp_path / "picks.csv")))
    assert summary[["setting", "method", "budget"]].values.tolist() == [
        [setting, method, budget] for setting in ("collapse", "small")
        for method in ("plain", "CMA-ES") for budget in ("first 5", "all 10")]
    cmaes = summary.iloc[3]  # collapse, CMA-ES, all ten searches
    assert cmaes["judge_pick_mean"] == pytest.approx(94.0)
    assert cmaes["judge_pick_std"] == pytest.approx(2**-0.5)
    assert cmaes["objective_pick_mean"] == pytest.approx(93.0)
    assert cmaes["judge_params_mean"] == pytest.approx(0.45)
    assert (cmaes["cut_off_mean"], cmaes["judge_from_centre"],
            cmaes["objective_from_centre"]) == (0.5, 1, 2)
    first = summary.iloc[2]
    assert first["judge_pick_mean"] == pytest.approx(93.0)
    assert (first["judge_from_centre"], first["objective_from_centre"]) == (2, 0)


def test_the_command_writes_the_table_and_figure_of_the_settings_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _picks(tmp_path / "picks.csv")
    assert cli.main(["picks", str(path), "--setting", "small", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "picks" / "picks.md").read_text()
    assert "| small | CMA-ES | all 10 | 2 | 93.00 ± 0.71 |" in table and "collapse" not in table
    assert "| small | plain | first 5 | 2 | 91.50 ± 0.71 |" in capsys.readouterr().out
    plain = next(line for line in table.splitlines() if line.startswith("| small | plain "))
    assert plain.endswith("| - / - |")  # a plain study has no centre trial
    assert "plotly" in (tmp_path / "picks" / "picks.html").read_text()


@pytest.mark.parametrize("setting, message", [
    ("other", "holds no setting 'other' (it holds: collapse; small)"),
    (None, "not a picks table")])
def test_a_setting_or_file_it_cannot_summarise_is_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str | None,
        message: str) -> None:
    path = _picks(tmp_path / "picks.csv")
    if setting is None:
        path.write_text("not,a\npicks,table\n")
    assert cli.main(["picks", str(path), "--setting", setting or "small",
                     "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and not (tmp_path / "picks").exists()


def test_what_older_picks_did_not_record_reads_as_a_dash(tmp_path: Path) -> None:
    picks = pd.read_csv(_picks(tmp_path / "picks.csv"))
    older = picks.drop(columns=[c for c in picks if "judge" in c or "centre" in c
                                or c.startswith("first_") or c == "mean_cell"])
    older.to_csv(tmp_path / "older.csv", index=False)
    assert cli.main(["picks", str(tmp_path / "older.csv"), "--setting", "small",
                     "--out", str(tmp_path)]) == 0
    table = (tmp_path / "picks" / "picks.md").read_text()
    assert ("| small | CMA-ES | all 10 | 2 | - | 92.00 ± 0.71 | 93.00 ± 0.00 | - | - | - "
            "| 0.5 | - / - |") in table
