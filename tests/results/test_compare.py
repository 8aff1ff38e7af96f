from __future__ import annotations

import dataclasses
import datetime
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import StudyConfig
from pipeline.outer.methods import method_config, methods
from pipeline.outer.record import TrialRecord
from pipeline.results.compare import (
    hypervolume,
    incumbent_curve,
    incumbents,
    objective_agreement,
    scored_trials,
)
from pipeline.spaces.nb201 import all_nb201_genotypes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_method_config_shares_one_epoch_budget(tiny_config: StudyConfig) -> None:
    configs = [method_config(tiny_config, method) for method in methods(tiny_config)]
    assert [c.name for c in configs] == ["tiny-s3-darts", "tiny-s3-random", "tiny-s3-cmaes"]
    assert {c.outer.epoch_budget for c in configs} == {3 * 3}
    assert [c.outer.sampler for c in configs] == ["darts", "random", "cmaes"]
    assert all(c.search == tiny_config.search for c in configs)
    other = method_config(tiny_config, "cmaes", seed=7)
    assert (other.name, other.seed) == ("tiny-s7-cmaes", 7)


def test_compare_runs_every_method_at_one_budget(
        tiny_config: StudyConfig, tmp_path: Path, run_compare: Callable) -> None:
    config = dataclasses.replace(
        tiny_config, seed=0, search=dataclasses.replace(tiny_config.search, epochs=2),
        outer=dataclasses.replace(tiny_config.outer, pruner="median", startup_trials=1,
                                  warmup_epochs=0))
    table = tmp_path / "nb201.csv"
    rows = [(g.to_str(), 50 + i % 40, 20.0, 10.0) for i, g in enumerate(all_nb201_genotypes())]
    pd.DataFrame(rows, columns=["arch_str", "cifar10_test", "cifar100_test",
                                "imagenet16_test"]).to_csv(table, index=False)
    frame = run_compare(config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                        device=torch.device("cpu"), seeds=2, table_path=str(table),
                        retrain_epochs=1, images=CHROMIUM is not None)
    assert frame["retrain_test_acc"].between(0, 100).all()
    if CHROMIUM is not None:
        assert {p.name for p in (tmp_path / "out").glob("*.png")} == {
            "methods-side-by-side.png", "the-cells-table-score-after-each-epoch.png",
            "the-methods-picks-as-their-budget-is-spent.png"}
    assert list(zip(frame["method"], frame["seed"], strict=True)) == [(m, s) for s in (0, 1)
                                                              for m in methods(config)]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["method"].tolist() == ["darts", "random", "cmaes"]
    assert (summary["seeds"] == 2).all()
    for method, rows in frame.groupby("method"):
        mean = summary.set_index("method").loc[method, "mean_best_cifar10_test"]
        assert mean == pytest.approx(rows["best_cifar10_test"].mean())
    epochs = pd.read_csv(tmp_path / "out" / "epochs.csv")
    assert set(epochs["epoch"]) == {1, 2}
    written_table = pd.read_csv(table)
    scores = dict(zip(written_table["arch_str"], written_table["cifar10_test"], strict=True))
    assert all(scores[c] == s for c, s in zip(epochs["cell"], epochs["cifar10_test"],
                                                         strict=True))
    # the tables' cells are padded to their columns' width; compare them unpadded
    markdown = re.sub(" +", " ", (tmp_path / "out" / "compare.md").read_text())
    assert markdown.count("| darts | 0 |") == 1 and markdown.count("| cmaes | 1 |") == 1
    assert "| \\|" in markdown  # the cells' pipes are escaped
    assert "| method | seeds | objective mean |" in markdown
    assert "| epoch 1 | epoch 2 |" in markdown
    assert "| validation signal | Spearman rho | trials |" in markdown
    assert "| trained |" not in markdown  # no trial trained its cell
    scored = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(scored) == frame["complete"].sum()
    assert {"supernet_acc", "discrete_acc", "cifar10_test"} <= set(scored.columns)
    for _, cma in scored[scored["method"] == "cmaes"].groupby("seed"):
        assert pd.isna(cma["generation"].iloc[0])  # the queued centre
        assert (cma["generation"].iloc[1:] == 0).all()  # popsize 4: one generation
    assert scored.loc[scored["method"] != "cmaes", "generation"].isna().all()
    ceiling = scored.groupby(["method", "seed"])["cifar10_test"].max()
    assert all(row.max_cifar10_test == ceiling[(row.method, row.seed)] >= row.best_cifar10_test
               for row in frame.itertuples())
    assert "| CIFAR-10, best of its cells |" in markdown
    picks = pd.read_csv(tmp_path / "out" / "incumbents.csv")
    final = picks.groupby(["method", "seed"], sort=False).last()
    assert all(final.loc[(row.method, row.seed), "best_trial"] == row.best_trial
               and final.loc[(row.method, row.seed), "best_cifar10_test"]
               == row.best_cifar10_test for row in frame.itertuples())
    assert "| method | after 2 epochs | after 4 epochs | after 6 epochs |" in markdown
    assert "\nObjective of each method's pick (its best trial so far)" in markdown
    assert "\nCIFAR-10 table score of each method's pick" in markdown
    last = epochs[epochs["epoch"] == 2]
    assert set(frame["cell"]) <= set(last["cell"])  # each best cell is a trial's final cell
    budget, per_trial = 3 * 2, 2
    assert all(budget - per_trial < e <= budget for e in frame["epochs"])
    assert frame["best_cifar10_test"].between(50, 90).all()
    assert (tmp_path / "out" / "compare.csv").exists()
    assert (tmp_path / "out" / "compare.html").exists()
    from pipeline.outer.study import load_study
    from pipeline.results.report import write_report

    study = load_study("tiny-s0-cmaes", root=tmp_path / "studies")
    page = write_report(study, tmp_path / "studies" / "tiny-s0-cmaes", tmp_path / "tiny-s0-cmaes")
    assert "Methods side by side" not in page.read_text()
    (tmp_path / "tiny").mkdir()
    (tmp_path / "out" / "compare.csv").rename(tmp_path / "tiny" / "compare.csv")
    page = write_report(study, tmp_path / "studies" / "tiny-s0-cmaes", tmp_path / "tiny-s0-cmaes")
    assert "Methods side by side" in page.read_text()
    written = pd.read_csv(tmp_path / "tiny" / "compare.csv")
    assert {"best_value", "cell", "params_M", "skip_share", "mean_value", "std_value",
            "mean_cifar10_test"} <= set(written.columns)


def test_a_bad_table_stops_compare_before_any_search(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli

    (tmp_path / "t.csv").write_text("arch_str,cifar10_test\n")
    code = cli.main(["compare", str(study_file), "--root", str(study_file.parent),
                     "--out", str(tmp_path / "out"), "--nb201-table", str(tmp_path / "t.csv")])
    assert code == 2 and "lacks the columns" in capsys.readouterr().err
    assert [p.name for p in study_file.parent.iterdir()] == ["tiny.toml"]


def test_compare_runs_only_the_methods_asked_for(
        tiny_config: StudyConfig, tmp_path: Path, run_compare: Callable) -> None:
    from pipeline.config import ConfigError

    config = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                         epochs=1))
    with pytest.raises(ConfigError, match="tpe"):
        run_compare(config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                    device=torch.device("cpu"), only=["tpe"])
    frame = run_compare(config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                        device=torch.device("cpu"), only=["darts"], population=2)
    assert frame["method"].tolist() == ["darts"] and frame["complete"].tolist() == [3]
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == ["tiny-s3-darts"]


def test_method_studies_run_their_shared_first_search_once(
        tiny_config: StudyConfig, tmp_path: Path, run_compare: Callable) -> None:
    from pipeline.outer.study import load_study

    config = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                         epochs=2))
    run_compare(config, root=tmp_path / "a", out_dir=tmp_path / "out",
                device=torch.device("cpu"), only=["random", "cmaes"])
    random, cmaes = (load_study(f"tiny-s3-{m}", root=tmp_path / "a").get_trials()
                     for m in ("random", "cmaes"))
    # both start at plain DARTS' start with the study seed: one search, run by random
    assert cmaes[0].user_attrs["same_search_as"] == "tiny-s3-random/00000"
    assert not any("same_search_as" in t.user_attrs for t in random + cmaes[1:])
    run_compare(config, root=tmp_path / "b", out_dir=tmp_path / "out",
                device=torch.device("cpu"), only=["cmaes"])
    alone = load_study("tiny-s3-cmaes", root=tmp_path / "b").get_trials()

    def outcome(trials: list) -> list:
        return [(t.params, t.values, t.intermediate_values, t.user_attrs["cell"])
                for t in trials]

    assert outcome(cmaes) == outcome(alone)  # as if it had run the search itself


def test_a_search_that_older_code_ran_is_not_taken_over(
        tiny_config: StudyConfig, tmp_path: Path, run_compare: Callable,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.outer import trials
    from pipeline.outer.study import load_study

    config = dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, epochs=1), outer=dataclasses.replace(tiny_config.outer, n_trials=1))
    run_compare(config, root=tmp_path, out_dir=tmp_path / "out", device=torch.device("cpu"),
                only=["random"])
    monkeypatch.setattr(trials, "SEARCH_PROTOCOL", trials.SEARCH_PROTOCOL + 1)
    run_compare(config, root=tmp_path, out_dir=tmp_path / "out", device=torch.device("cpu"),
                only=["cmaes"])
    (first,) = load_study("tiny-s3-cmaes", root=tmp_path).get_trials()
    assert "same_search_as" not in first.user_attrs  # it ran the search again


def test_hypervolume_of_a_front() -> None:
    assert hypervolume([(50.0, 0.5)], max_params=1.0) == pytest.approx(25.0)
    # a dominated point adds nothing; a smaller, less accurate cell adds its own strip
    assert hypervolume([(50.0, 0.5), (40.0, 0.6)], 1.0) == pytest.approx(25.0)
    assert hypervolume([(50.0, 0.5), (40.0, 0.25)], 1.0) == pytest.approx(
        40 * 0.25 + 50 * 0.5)
    assert hypervolume([(90.0, 2.0)], 1.0) == 0.0  # beyond the reference
    assert hypervolume([], 1.0) == 0.0


def test_two_objective_compare_uses_the_study_sampler(
        tiny_config: StudyConfig, tmp_path: Path, run_compare: Callable) -> None:
    config = dataclasses.replace(
        tiny_config, search=dataclasses.replace(tiny_config.search, epochs=1,
                                                objective=("supernet", "params")),
        outer=dataclasses.replace(tiny_config.outer, sampler="nsga2", n_trials=2))
    assert methods(config) == ("darts", "random", "nsga2")
    frame = run_compare(config, root=tmp_path / "studies", out_dir=tmp_path / "out",
                        device=torch.device("cpu"))
    assert frame["method"].tolist() == ["darts", "random", "nsga2"]
    assert (frame["front_size"] >= 1).all()
    assert frame["front_hypervolume"].between(0, 100).all()
    for cells, best in zip(frame["front_cells"], frame["cell"], strict=True):
        assert best in cells.split(" ; ")  # the most accurate trial is on its front


def _finished(number: int, state: TrialState, value: float | None, epochs: int,
              cell: str, minute: int, **attrs: object) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state, value=value, intermediate_values={e: 1.0 for e in range(epochs)},
        user_attrs={"cell": cell, "eval_params_M": 0.1, "epochs_run": epochs, **attrs})
    trial.number = number
    trial.datetime_complete = datetime.datetime(2026, 1, 1, 0, minute)
    return trial


def test_the_pick_follows_the_trials_in_the_order_they_finished() -> None:
    cells = [g.to_str() for g, _ in zip(all_nb201_genotypes(), range(3), strict=False)]
    table = pd.DataFrame({"arch_str": cells, "cifar10_test": [80.0, 90.0, 70.0],
                          "cifar100_test": 0.0, "imagenet16_test": 0.0}).set_index("arch_str")
    trials = [_finished(0, TrialState.COMPLETE, 40.0, 3, cells[0], minute=5),
              _finished(1, TrialState.PRUNED, None, 1, cells[1], minute=1),
              _finished(2, TrialState.COMPLETE, 45.0, 3, cells[1], minute=9),
              _finished(3, TrialState.FAIL, None, 0, cells[2], minute=2,
                        fail_reason="interrupted"),
              _finished(4, TrialState.COMPLETE, 42.0, 3, cells[2], minute=7)]
    rows = incumbents("cmaes", 0, trials, table)
    assert [(r["epochs"], r["trials"], r["best_trial"], r["best_cifar10_test"]) for r in rows] \
        == [(4, 2, 0, 80.0), (7, 3, 4, 70.0), (10, 4, 2, 90.0)]  # the pruned one cost 1
    other = incumbents("cmaes", 1, trials[:1], table)
    assert pd.isna(incumbent_curve(pd.DataFrame(rows), every=3, budget=12)).iloc[0, 2:].all()
    curve = incumbent_curve(pd.DataFrame(rows + other), every=3, budget=12)
    assert curve["epochs"].tolist() == [3, 6, 9, 12]
    # epoch 3: only seed 1 has a pick; epoch 6 on: both seeds (80, then 70 and 90 for seed 0)
    assert curve["best_cifar10_test"].tolist() == [80.0, 80.0, 75.0, 85.0]
    assert curve["best_value"].tolist() == [40.0, 40.0, 41.0, 42.5]


def test_compare_runs_each_variant_and_records_its_picks(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli

    root, picks = study_file.parent, tmp_path / "picks.csv"
    args = ["compare", str(study_file), "--root", str(root), "--out", str(tmp_path / "out"),
            "--variants", "darts", "beta-darts", "--methods", "darts", "cmaes",
            "--set", "search.epochs=1", "--set", "outer.n_trials=2",
            "--picks", str(picks), "--setting", "tiny digits", "-q"]
    assert cli.main(args) == 0
    studies = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert studies == ["tiny-beta-darts-s3-cmaes", "tiny-beta-darts-s3-darts",
                       "tiny-s3-cmaes", "tiny-s3-darts"]  # plain DARTS keeps its old names
    combined = pd.read_csv(tmp_path / "out" / "tiny" / "compare.csv")
    assert sorted(zip(combined["variant"], combined["method"], strict=True)) == [
        ("beta-darts", "cmaes"), ("beta-darts", "darts"), ("darts", "cmaes"), ("darts", "darts")]
    assert (combined["cut_off"] >= 0).all() and (combined["start_space"] == "edge-op").all()
    assert (tmp_path / "out" / "tiny-beta-darts" / "compare.html").exists()
    own = pd.read_csv(tmp_path / "out" / "tiny-darts" / "compare.csv")
    assert set(own["variant"]) == {"darts"}  # plain DARTS' own tables, beside the combined ones
    page = (tmp_path / "out" / "tiny" / "compare.html").read_text()
    assert "beta-darts: cmaes" in page and "darts: darts" in page
    assert "beta-DARTS (Beta-Decay" in (tmp_path / "out" / "tiny-beta-darts" /
                                         "compare.md").read_text()
    written = pd.read_csv(picks)
    assert len(written) == 4 and set(written["setting"]) == {"tiny digits"}
    assert {"setting", "variant", "method", "seed", "cell", "params", "objective"} <= set(
        written.columns)
    assert set(written["selection"]) == {"argmax"} and set(written["arch_lr"]) == {3e-3}
    capsys.readouterr()
    assert cli.main([*args[:-5], "--picks", str(picks), "--setting", "other", "-q"]) == 0
    assert cli.main(args) == 0  # the same runs again: their rows are replaced, not added
    assert sorted(pd.read_csv(picks)["setting"]) == ["other"] * 4 + ["tiny digits"] * 4
    capsys.readouterr()
    at = args.index("--variants")
    assert cli.main([*args[:at + 1], *args[at + 2:]]) == 0  # --variants beta-darts alone
    printed = capsys.readouterr().out.split("table", 1)[1].split()[0]
    assert printed == str(tmp_path / "out" / "tiny-beta-darts" / "compare.csv")
    assert Path(printed).exists()


def test_the_compare_figure_keeps_objectives_and_ground_truth_on_their_own_axes() -> None:
    from pipeline.results.figures import compare_figure

    frame = pd.DataFrame({"method": ["darts", "cmaes", "darts", "cmaes"],
                          "best_value": [40.0, 41.0, 42.0, 43.0],
                          "best_cifar10_test": [92.0, 93.0, 93.0, 94.0]})
    figure = compare_figure(frame)
    axes = {trace.name: trace.yaxis for trace in figure.data}
    assert axes == {"best validation objective": "y",
                    "best cell's CIFAR-10 test accuracy (table)": "y2"}
    means = {trace.name: list(trace.y) for trace in figure.data}
    assert means["best cell's CIFAR-10 test accuracy (table)"] == [92.5, 93.5]
    assert list(figure.data[0].x) == ["darts", "cmaes"]
    low, high = figure.layout.yaxis2.range
    assert 91.0 < low < 92.0 and 94.0 < high < 95.0  # the panel spans its values, not 0 to 94


def _pick_rows(setting: str, seeds: range) -> pd.DataFrame:
    return pd.DataFrame({"variant": "darts", "start_space": "edge-op", "method": "cmaes",
                         "seed": list(seeds), "cell": "|none~0|", "best_value": 50.0})


def _write_picks(path: str, setting: str, first_seed: int) -> None:
    from pipeline.results.compare import record_picks

    for seed in range(first_seed, first_seed + 6):  # one row at a time: many writes
        record_picks(_pick_rows(setting, range(seed, seed + 1)), Path(path), setting)


def test_comparisons_writing_one_picks_file_at_once_lose_no_row(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "picks.csv"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_picks, args=(str(path), f"setting {k}", 10 * k))
               for k in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    written = pd.read_csv(path)
    assert len(written) == 24 and sorted(written.groupby("setting").size()) == [6] * 4
    assert not [p for p in tmp_path.iterdir() if p.name != "picks.csv"]  # no lock, no temp


@pytest.mark.parametrize("content, needle", [
    ("a,b\n1,2\n", "other columns a, b"),
    ("setting,variant,start_space,method,seed,extra\n", "other columns extra"),
    ("\x00\xff\xfe garbage", "not a readable picks table"),
])
def test_a_picks_file_that_cannot_take_the_rows_stops_compare_before_any_search(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
        needle: str) -> None:
    from pipeline import cli

    picks = tmp_path / "picks.csv"
    picks.write_bytes(content.encode("latin-1"))
    code = cli.main(["compare", str(study_file), "--root", str(study_file.parent),
                     "--out", str(tmp_path / "out"), "--picks", str(picks)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1
    assert [p.name for p in study_file.parent.iterdir()] == ["tiny.toml"]
    assert picks.read_bytes() == content.encode("latin-1")


@pytest.mark.parametrize("option", ["--methods", "--variants"])
def test_a_method_or_variant_named_twice_is_refused(
        study_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        option: str) -> None:
    from pipeline import cli

    code = cli.main(["compare", str(study_file), "--root", str(study_file.parent),
                     "--out", str(tmp_path / "out"), option, "darts", "darts"])
    assert code == 2 and "names darts more than once" in capsys.readouterr().err
    assert [p.name for p in study_file.parent.iterdir()] == ["tiny.toml"]


def test_a_comparison_plan_names_its_studies_and_their_folders(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    from pipeline.outer.methods import plan_comparison

    plan = plan_comparison(tiny_config, seeds=2, methods=["darts", "cmaes"],
                           variants=["darts", "beta-darts"])
    assert [c.name for c in plan.configs] == ["tiny", "tiny-beta-darts"]
    assert [s.config.name for s in plan.all_studies] == [
        "tiny-s3-darts", "tiny-s3-cmaes", "tiny-s4-darts", "tiny-s4-cmaes",
        "tiny-beta-darts-s3-darts", "tiny-beta-darts-s3-cmaes", "tiny-beta-darts-s4-darts",
        "tiny-beta-darts-s4-cmaes"]
    out_dir = plan.out_dir(tmp_path)
    assert out_dir == tmp_path / "tiny"
    assert plan.variant_dirs(out_dir) == [tmp_path / "tiny-darts", tmp_path / "tiny-beta-darts"]
    alone = plan_comparison(tiny_config, variants=["beta-darts"])
    assert alone.variant_dirs(alone.out_dir(tmp_path)) == [tmp_path / "tiny-beta-darts"]


def test_the_agreement_table_has_each_signal_the_trials_recorded_the_judge_included() -> None:
    """A study whose trial objective is the judge's rung records it (``judged``) in every
    trial; the table ranks it beside what the search saw, and leaves out what no trial
    recorded (``trained`` here)."""
    cells = [g.to_str() for g in list(all_nb201_genotypes())[:4]]
    table = pd.DataFrame({"arch_str": cells, "cifar10_test": [90.0, 91.0, 92.0, 93.0],
                          "cifar100_test": 70.0, "imagenet16_test": 40.0}).set_index("arch_str")
    trials = [optuna.trial.create_trial(
        value=judged, state=TrialState.COMPLETE,
        user_attrs=TrialRecord(cell=cell, supernet_acc=float(k), discrete_acc=float(-k),
                               judged=judged, eval_params_M=1.0 - k / 10).attrs())
        for k, (cell, judged) in enumerate(zip(cells, [10.0, 30.0, 20.0, 40.0], strict=True))]
    scored = pd.DataFrame(scored_trials("cmaes", 0, trials, table))
    assert scored["judged"].tolist() == [10.0, 30.0, 20.0, 40.0]
    rows = objective_agreement(scored).set_index("objective")["spearman_cifar10"]
    assert rows.index.tolist() == ["supernet", "discrete", "judged", "fewer parameters"]
    assert rows.tolist() == pytest.approx([1.0, -1.0, 0.8, 1.0])
