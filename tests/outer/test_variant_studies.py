"""Every DARTS variant inside the global loop: studies of each, with every objective,
pruning, populations where they can run, and refusals in one line where they cannot."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

from pipeline import cli
from pipeline.config import StudyConfig
from pipeline.outer.study import load_study, run_study
from pipeline.search import PopulationError
from pipeline.variants import VARIANTS

CPU = torch.device("cpu")
OTHERS = [name for name in VARIANTS if name != "darts"]  # every variant but plain DARTS


def _with(config: StudyConfig, **search: object) -> StudyConfig:
    """The tiny study with an inner search's settings, two trials and the median pruner
    (after one trial, from the first epoch)."""
    return dataclasses.replace(config, search=dataclasses.replace(config.search, **search),
                               outer=dataclasses.replace(config.outer, n_trials=2,
                                                         pruner="median", startup_trials=1,
                                                         warmup_epochs=0))


@pytest.mark.parametrize("variant, objective", list(zip(
    OTHERS, itertools.cycle(["supernet", "discrete", "trained"]), strict=False)))
def test_a_study_of_each_variant_runs_end_to_end(tiny_config: StudyConfig, tmp_path: Path,
                                                 variant: str, objective: str) -> None:
    config = _with(tiny_config, variant=variant, objective=objective, epochs=2,
                   train_epochs=1)
    summary = run_study(config, root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert summary.finished == 2 and trials[0].state == TrialState.COMPLETE
    assert trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)  # the pruner may stop it
    stored = trials[0].user_attrs
    assert len(stored["alpha_softmax"]) == 6 and stored["epochs_run"] == 2


def test_a_perturbation_selection_study_counts_its_tuning_in_the_budget(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    config = _with(tiny_config, selection="perturbation", selection_tune_epochs=1, epochs=2)
    config = dataclasses.replace(config, outer=dataclasses.replace(
        config.outer, n_trials=4, epoch_budget=14, pruner="none"))
    summary = run_study(config, root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.user_attrs["epochs_run"] for t in trials] == [7, 7]  # 2 searched, 5 tuning
    assert summary.epochs_spent == 14 and summary.finished == 2
    assert sorted(trials[0].intermediate_values) == list(range(1, 8))


@pytest.mark.parametrize("variant", [name for name in OTHERS if VARIANTS[name].stackable])
def test_stackable_variants_run_as_populations(tiny_config: StudyConfig, tmp_path: Path,
                                               variant: str) -> None:
    config = dataclasses.replace(_with(tiny_config, variant=variant, epochs=1),
                                 outer=dataclasses.replace(tiny_config.outer, n_trials=3))
    assert run_study(config, root=tmp_path, device=CPU, population=2).finished == 3


@pytest.mark.parametrize("search, needle", [
    ({"variant": "drnas"}, "drnas variant runs no batched population"),
    ({"variant": "sdarts-rs"}, "sdarts-rs variant runs no batched population"),
    ({"selection": "perturbation"}, "perturbation selection runs one search at a time"),
])
def test_populations_refuse_what_they_cannot_batch(tiny_config: StudyConfig, tmp_path: Path,
                                                   search: dict, needle: str) -> None:
    with pytest.raises(PopulationError, match=needle):
        run_study(_with(tiny_config, **search), root=tmp_path, device=CPU, population=2)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, needle", [
    (["--set", "search.variant=pc-darts"], "search.variant"),
    (["--set", "search.variant=drnas", "--set", "search.order=2"], "search.order"),
    (["--set", "search.sdarts_epsilon_min=-0.1"], "search.sdarts_epsilon_min"),
    (["--set", "search.beta_lambda=-1"], "search.beta_lambda"),
    (["--set", "search.aux_skip_beta=-1"], "search.aux_skip_beta"),
    (["--set", "search.selection=random"], "search.selection"),
    (["--set", "start.alpha_space=edge"], "start.alpha_space"),
])
def test_bad_variant_settings_are_one_line_and_leave_nothing(
        study_file: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        needle: str) -> None:
    root = study_file.parent
    code = cli.main(["search", str(study_file), "--root", str(root), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err
    assert [p.name for p in root.iterdir()] == ["tiny.toml"]


def test_an_op_start_space_shares_alpha0_between_edges(tiny_config: StudyConfig,
                                                       tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_config, start=dataclasses.replace(
        tiny_config.start, alpha_space="op"), outer=dataclasses.replace(
        tiny_config.outer, n_trials=2))
    run_study(config, root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    alphas = [name for name in trials[1].params if name.startswith("alpha:")]
    assert alphas == [f"alpha:cell:{op}" for op in ("none", "skip_connect", "nor_conv_1x1",
                                                     "nor_conv_3x3", "avg_pool_3x3")]
    assert any(trials[1].params[name] for name in alphas)  # sampled away from the centre
