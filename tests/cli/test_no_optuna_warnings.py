"""No Optuna warning reaches a user: the main commands run with Optuna's experimental,
deprecation and user warnings (and those of every other library) turned into errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli

SELECT = ["--set", "select.rungs=[1, 2]", "--set", "select.train_images=100",
          "--set", "select.valid_images=100", "--set", "select.channels=4"]


@pytest.mark.filterwarnings("error::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("error::FutureWarning")
@pytest.mark.filterwarnings("error::DeprecationWarning")
@pytest.mark.filterwarnings("error::UserWarning")
def test_the_main_commands_raise_no_optuna_warning(study_file: Path, tmp_path: Path) -> None:
    root = str(study_file.parent)
    search = ["search", str(study_file), "--root", root, "--quiet", "--set",
              "search.epochs=1", "--n-trials", "2", "--artifacts",
              f"file://{tmp_path / 'store'}"]
    assert cli.main(search) == 0
    assert cli.main(search) == 0  # resumed: its budget is spent
    assert cli.main(["status", "tiny", "--root", root]) == 0
    assert cli.main(["report", "tiny", "--root", root, "--out", str(tmp_path / "r")]) == 0
    assert cli.main(["select", str(study_file), "--root", root, "--quiet", *SELECT]) == 0
    assert cli.main(["export", "tiny", "--root", root, "--selected"]) == 0
