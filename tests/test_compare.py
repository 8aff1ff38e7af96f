from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.compare import METHODS, method_config, run_compare
from pipeline.config import StudyConfig
from pipeline.spaces import all_nb201_genotypes


def test_method_config_shares_one_epoch_budget(tiny_config: StudyConfig) -> None:
    configs = [method_config(tiny_config, method) for method in METHODS]
    assert [c.name for c in configs] == ["tiny-darts", "tiny-random", "tiny-cmaes"]
    assert {c.outer.epoch_budget for c in configs} == {3 * 3}
    assert [c.outer.sampler for c in configs] == list(METHODS)
    assert all(c.search == tiny_config.search for c in configs)


def test_compare_runs_every_method_at_one_budget(tiny_config: StudyConfig,
                                                 tmp_path: Path) -> None:
    config = dataclasses.replace(
        tiny_config, search=dataclasses.replace(tiny_config.search, epochs=2),
        outer=dataclasses.replace(tiny_config.outer, pruner="median", startup_trials=1,
                                  warmup_epochs=0))
    table = tmp_path / "nb201.csv"
    rows = [(g.to_str(), 50 + i % 40, 20.0, 10.0) for i, g in enumerate(all_nb201_genotypes())]
    pd.DataFrame(rows, columns=["arch_str", "cifar10_test", "cifar100_test",
                                "imagenet16_test"]).to_csv(table, index=False)
    frame = run_compare(config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                        device=torch.device("cpu"), table_path=str(table), retrain_epochs=1)
    assert frame["retrain_test_acc"].between(0, 100).all()
    assert frame["method"].tolist() == list(METHODS)
    budget, per_trial = 3 * 2, 2
    assert all(budget - per_trial < e <= budget for e in frame["epochs"])
    assert frame["best_cifar10_test"].between(50, 90).all()
    assert (tmp_path / "out" / "compare.csv").exists()
    assert (tmp_path / "out" / "compare.html").exists()
    from pipeline.report import write_report
    from pipeline.study import load_study

    study = load_study("tiny-cmaes", root=tmp_path / "studies")
    page = write_report(study, tmp_path / "studies" / "tiny-cmaes", tmp_path / "tiny-cmaes")
    assert "Methods side by side" not in page.read_text()
    (tmp_path / "tiny").mkdir()
    (tmp_path / "out" / "compare.csv").rename(tmp_path / "tiny" / "compare.csv")
    page = write_report(study, tmp_path / "studies" / "tiny-cmaes", tmp_path / "tiny-cmaes")
    assert "Methods side by side" in page.read_text()
    written = pd.read_csv(tmp_path / "tiny" / "compare.csv")
    assert {"best_value", "cell", "params_M", "skip_share", "mean_value", "std_value",
            "mean_cifar10_test"} <= set(written.columns)


def test_a_bad_table_stops_compare_before_any_search(tiny_config: StudyConfig,
                                                     tmp_path: Path) -> None:
    from pipeline.evaluate import TableError

    (tmp_path / "t.csv").write_text("arch_str,cifar10_test\n")
    with pytest.raises(TableError):
        run_compare(tiny_config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                    device=torch.device("cpu"), table_path=str(tmp_path / "t.csv"))
    assert not (tmp_path / "studies").exists()
