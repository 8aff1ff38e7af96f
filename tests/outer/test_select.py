"""The selection stage: successive halving over a study's distinct cells, decided from the
stored rung results alone (so the same whatever the workers and their order), resumable,
and refusing bad settings before it creates anything."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.distributions import FloatDistribution

from pipeline import cli
from pipeline.config import ConfigError, StudyConfig, with_overrides
from pipeline.outer import select as stage
from pipeline.outer.artifacts import JudgedCheckpoints, open_artifacts
from pipeline.outer.folder import judged_dir
from pipeline.outer.methods import method_studies
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.select import kept, ranking, run_selection, selection_epochs
from pipeline.outer.storage import default_storage, make_storage
from pipeline.outer.study import load_study, run_study, state_dir
from pipeline.results.compare import compare_studies
from pipeline.results.ground_truth import TABLE_DATASETS
from pipeline.search import build_start_space, judge
from pipeline.search.judge import RungResult, judge_data, judged_objective, train_rung
from pipeline.spaces import NB201Genotype
from pipeline.spaces.nb201.genotype import NB201_OPS

CPU = torch.device("cpu")
# Six NB201 cells: cell k has op k % 5 on its first edge and convolutions elsewhere.
CELLS = [NB201Genotype((NB201_OPS[k % 5],) + ("nor_conv_3x3",) * 4 + (
    NB201_OPS[k // 5 + 1],)).to_str() for k in range(6)]
SELECT = ["select.rungs=[1, 2, 3]", "select.reduction=2", "select.channels=4",
          "select.train_images=100", "select.valid_images=100", "select.batch_size=25"]


def _finished_study(root: Path, config: StudyConfig, cells: list[str]) -> None:
    """Study ``config.name`` under ``root`` with one complete trial per cell, in order."""
    study = optuna.create_study(study_name=config.name, direction="maximize",
                                storage=make_storage(default_storage(state_dir(root,
                                                                               config.name))))
    specs = build_start_space(config, steps_per_epoch=1).specs  # plain DARTS' start
    for k, cell in enumerate(cells):
        study.add_trial(optuna.trial.create_trial(
            params={spec.name: 0.0 for spec in specs},
            distributions={spec.name: FloatDistribution(spec.low, spec.high) for spec in specs},
            value=50.0 - k, user_attrs={"cell": cell, "eval_params_M": 0.1 * (k + 1)}))


def _fake_rungs(monkeypatch: pytest.MonkeyPatch, scores: dict[str, float]) -> list[tuple]:
    """Train nothing: a candidate's validation accuracy at every rung is its score plus
    the epochs; returns the (cell, epochs) trained, in order."""
    trained: list[tuple] = []

    def fake(genotype: object, data: object, select: object, *, epochs: int, seeds: list,
             folder: Path, mirror: object = None) -> RungResult:
        cell = genotype.to_str()  # type: ignore[attr-defined]
        trained.append((cell, epochs))
        return RungResult(epochs=epochs, val_acc=scores[cell] + epochs,
                          train_loss_sum=10.0 - scores[cell])

    monkeypatch.setattr(stage, "train_rung", fake)
    monkeypatch.setattr(stage, "judge_data", lambda config, device: object())
    return trained


def _outcome(root: Path, name: str) -> dict[str, tuple[str, list[int]]]:
    """Each candidate's final state and the rungs (epochs) it reported at."""
    study = optuna.load_study(study_name=f"{name}-select", storage=make_storage(
        default_storage(state_dir(root, name))))
    return {t.user_attrs["cell"]: (t.state.name, sorted(t.intermediate_values))
            for t in study.get_trials()}


def test_ranking_averages_ranks_and_breaks_ties_by_the_cell() -> None:
    results = {"a": {"val": 90.0, "train-loss": 3.0, "params": 1.0},
               "b": {"val": 80.0, "train-loss": 1.0, "params": 2.0},
               "c": {"val": 90.0, "train-loss": 2.0, "params": 0.5}}
    assert ranking(results, ["val"]) == ["a", "c", "b"]  # a and c tie: by the cell
    assert ranking(results, ["train-loss"]) == ["b", "c", "a"]  # lower first
    assert ranking(results, ["val", "train-loss"]) == ["c", "b", "a"]  # 0.75, 1.0, 1.25
    assert ranking(results, ["params"]) == ["b", "a", "c"]
    assert [kept(n, 3) for n in (1, 2, 3, 4, 10)] == [1, 1, 1, 2, 4]


def test_halving_promotes_the_expected_candidates_whatever_the_order_and_workers(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = with_overrides(tiny_config, SELECT)
    scores = {cell: float(k * 7 % 6) for k, cell in enumerate(CELLS)}  # 0, 1, 2, 3, 4, 5
    trained = _fake_rungs(monkeypatch, scores)
    _finished_study(tmp_path / "one", config, CELLS)
    one = run_selection(config, root=tmp_path / "one", device=CPU)
    best = max(CELLS, key=scores.__getitem__)
    assert one.cell == best and one.candidates == 6
    # six train to epoch 1, three (the best by val) to 2, two to 3, the best of those wins
    by_score = sorted(CELLS, key=scores.__getitem__, reverse=True)
    expected = {cell: ("COMPLETE" if cell == best else "PRUNED",
                       [1, 2, 3][:1 + (cell in by_score[:3]) + (cell in by_score[:2])])
                for cell in CELLS}
    assert _outcome(tmp_path / "one", config.name) == expected
    assert one.epochs == 3 * 1 + 1 * 2 + 2 * 3 == selection_epochs(config.select, 6)
    assert len(trained) == 6 + 3 + 2

    _finished_study(tmp_path / "two", config, CELLS[::-1])  # other order, two workers
    workers = [threading.Thread(target=run_selection, args=(config,),
                                kwargs={"root": tmp_path / "two", "device": CPU})
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert _outcome(tmp_path / "two", config.name) == expected
    assert len(trained) == 2 * (6 + 3 + 2)  # no candidate trained twice at a rung
    selection = StudySelection.of(optuna.load_study(
        study_name=config.name,
        storage=make_storage(default_storage(state_dir(tmp_path / "two", config.name)))))
    assert selection is not None and selection.cell == best
    assert selection.trials == (5 - CELLS.index(best),)  # its number in the reversed study


def test_a_lone_cell_is_picked_without_training(tiny_config: StudyConfig, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = with_overrides(tiny_config, SELECT)
    trained = _fake_rungs(monkeypatch, {})
    monkeypatch.setattr(stage, "judge_data", lambda config, device: pytest.fail("no data"))
    _finished_study(tmp_path, config, [CELLS[0], CELLS[0]])  # two trials, one cell
    selection = run_selection(config, root=tmp_path, device=CPU)
    assert (selection.cell, selection.trials, selection.epochs) == (CELLS[0], (0, 1), 0)
    assert trained == []


def test_the_selected_cell_shows_in_status_export_and_report(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = with_overrides(tiny_config, SELECT)
    _fake_rungs(monkeypatch, {cell: float(k) for k, cell in enumerate(CELLS[:3])})
    _finished_study(tmp_path, config, CELLS[:3])  # trial 0 has the best objective
    assert cli.main(["export", "tiny", "--root", str(tmp_path), "--selected"]) == 2
    assert "no selected cell yet" in capsys.readouterr().err
    run_selection(config, root=tmp_path, device=CPU)  # the highest score: trial 2's cell
    assert cli.main(["export", "tiny", "--root", str(tmp_path), "--selected"]) == 0
    assert capsys.readouterr().out.strip() == CELLS[2]
    assert cli.main(["status", "tiny", "--root", str(tmp_path), "--wide"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "S the selected cell" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["*", "1", "S"]  # pick, none, selected
    assert cli.main(["report", "tiny", "--root", str(tmp_path), "--out",
                     str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "tiny" / "index.html").read_text()
    assert "Selected cell (val at rungs 1/2/3" in page and CELLS[2] in page


def test_a_killed_selection_resumes_to_the_uninterrupted_result(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = with_overrides(tiny_config, SELECT)
    cells = CELLS[:3]
    _finished_study(tmp_path / "whole", config, cells)
    whole = run_selection(config, root=tmp_path / "whole", device=CPU)

    _finished_study(tmp_path / "killed", config, cells)
    train_epoch, calls = judge.CellTraining.fit, []

    def killed_at_the_fourth_epoch(self: judge.CellTraining, *args: object, **kwargs: object
                                   ) -> None:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        train_epoch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(judge.CellTraining, "fit", killed_at_the_fourth_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_selection(config, root=tmp_path / "killed", device=CPU)
    monkeypatch.setattr(judge.CellTraining, "fit", train_epoch)
    resumed = run_selection(config, root=tmp_path / "killed", device=CPU)
    assert _outcome(tmp_path / "killed", config.name) == _outcome(tmp_path / "whole", config.name)
    assert resumed == whole

    def values(root: Path) -> list[dict[int, float]]:
        study = optuna.load_study(study_name=f"{config.name}-select", storage=make_storage(
            default_storage(state_dir(root, config.name))))
        return [t.intermediate_values for t in study.get_trials()]

    assert values(tmp_path / "killed") == values(tmp_path / "whole")


def _count_epochs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the judge's training epochs from here on: the list's one entry."""
    fit, epochs = judge.CellTraining.fit, [0]

    def fit_counting(self: judge.CellTraining, batches: object, *, start: int = 0,
                     stop: int | None = None, **kwargs: object) -> None:
        epochs[0] += int(stop or self.settings.epochs) - start
        fit(self, batches, start=start, stop=stop, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(judge.CellTraining, "fit", fit_counting)
    return epochs


def test_a_judges_training_begun_on_one_machine_is_taken_up_on_another(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A training kept in the artifact store goes on, on a machine with an empty folder,
    after the epoch stored, to the uninterrupted result; a damaged stored copy is passed
    over with a warning, and a local copy further on is kept."""
    config = with_overrides(tiny_config, SELECT)
    data, cell = judge_data(config, CPU), NB201Genotype.parse(CELLS[1])
    mirror = JudgedCheckpoints(open_artifacts(f"file://{tmp_path / 'store'}"))

    def rung(epochs: int, folder: str, *, shared: bool = True) -> RungResult:
        return train_rung(cell, data, config.select, epochs=epochs, seeds=[0],
                          folder=tmp_path / folder, mirror=mirror if shared else None)

    whole = rung(3, "whole", shared=False)
    epochs = _count_epochs(monkeypatch)
    rung(1, "first")
    assert rung(3, "second") == whole and epochs == [1 + 2]
    assert rung(3, "third") == whole and epochs == [3]  # trained nothing again
    (stored,) = (tmp_path / "store").iterdir()
    stored.write_bytes(b"cut off")
    with caplog.at_level(logging.WARNING):
        assert rung(3, "fourth") == whole and epochs == [3 + 3]
    assert "in the artifact store cannot be used" in caplog.text
    assert rung(3, "second") == whole and epochs == [6]  # its own copy is further on


def test_a_store_that_fails_leaves_the_judges_training_on_this_machine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def write(self, artifact_id: str, body: object) -> None:
            raise OSError("artifact store: endpoint unreachable")

    checkpoint = tmp_path / "abc.pt"
    checkpoint.write_bytes(b"a checkpoint")
    with caplog.at_level(logging.WARNING):
        JudgedCheckpoints(Down()).upload(checkpoint)  # type: ignore[arg-type]
    assert "checkpoint abc stays on this machine only: artifact store: endpoint" in caplog.text


def test_a_selection_elsewhere_takes_the_trial_objectives_trainings_from_the_store(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose trial objective is the judge's first rung, run with an artifact store:
    the selection among its cells, made from another root that shares only its storage,
    finds the trainings in the store the study names and trains nothing; without the
    store it trains them again, to the same pick."""
    config = with_overrides(tiny_config, [*SELECT, "select.rungs=[2]", "search.epochs=1",
                                          "search.objective=rung", "outer.n_trials=2",
                                          f"outer.artifacts=file://{tmp_path / 'store'}"])
    run_study(config, root=tmp_path / "first", device=CPU)
    storage = default_storage(state_dir(tmp_path / "first", config.name))
    cells = {TrialRecord.of(t).cell for t in load_study(config.name, root=tmp_path / "first")
             .get_trials()}
    epochs = _count_epochs(monkeypatch)
    elsewhere = run_selection(config, root=tmp_path / "elsewhere", storage=storage, device=CPU)
    assert epochs == [0]
    again = run_selection(config, root=tmp_path / "again", storage=storage, device=CPU,
                          restart=True, artifacts=f"file://{tmp_path / 'none'}")
    assert again == elsewhere and epochs == [2 * len(cells)] and len(cells) == 2


def test_a_cell_is_trained_once_for_every_selection_that_judges_it_alike(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The selection among a study's first two searches trains cells that the selection
    among all three needs too; that one takes them up instead of training them again,
    and ends as a selection in a fresh folder ends."""
    config = with_overrides(tiny_config, SELECT)
    for root in ("shared", "fresh"):
        _finished_study(tmp_path / root, config, CELLS[:3])
    epochs = _count_epochs(monkeypatch)
    run_selection(config, root=tmp_path / "shared", device=CPU, searches=2)
    shared = run_selection(config, root=tmp_path / "shared", device=CPU)
    shared_epochs = epochs[0]
    fresh = run_selection(config, root=tmp_path / "fresh", device=CPU)
    # first two: both to epoch 1, one kept; all three: each to 1, two of them on to 2
    assert [shared_epochs, epochs[0] - shared_epochs] == [3 + 2, 3 + 2]
    assert shared == fresh
    assert _outcome(tmp_path / "shared", config.name) == _outcome(tmp_path / "fresh",
                                                                  config.name)


@pytest.mark.parametrize("args", [
    ["--top", "0"], ["--first", "0"], ["--set", "select.reduction=1"],
    ["--set", "select.rungs=[2, 2]"],
    ["--set", "select.rank=['vote']"], ["--set", "select.zero_cost=flops",
                                         "--set", "select.zero_cost_drop=0.5"],
    ["--set", "data.subset=0"], ["--set", "select.train_images=5000"],
    ["--artifacts", "s3://"], ["--artifacts", "file://relative"]])
def test_bad_settings_exit_2_with_one_line_and_create_nothing(
        args: list[str], study_file: Path, tiny_config: StudyConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = study_file.parent
    _finished_study(root, tiny_config, CELLS[:2])
    assert cli.main(["select", str(study_file), "--root", str(root), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("globaldarts: error:") and "\n" not in error
    names = [s.study_name for s in optuna.get_all_study_summaries(
        make_storage(default_storage(state_dir(root, tiny_config.name))))]
    assert names == [tiny_config.name] and not judged_dir(root).exists()


def test_the_epochs_of_a_selection_follow_from_the_count_alone(tiny_config: StudyConfig
                                                                ) -> None:
    select = with_overrides(tiny_config, SELECT).select  # rungs 1/2/3, half kept
    assert [selection_epochs(select, n) for n in (1, 2, 3, 6)] == [0, 2, 3 + 2, 6 + 3 + 2]


def test_compare_charges_every_method_the_same_selection(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = with_overrides(tiny_config, [*SELECT, "select.top=3"])
    _fake_rungs(monkeypatch, {cell: float(k) for k, cell in enumerate(CELLS)})
    studies = method_studies(config)  # plain DARTS, random and CMA-ES starts
    for study, cells in zip(studies, [CELLS[:1], CELLS[:3], CELLS], strict=True):
        _finished_study(tmp_path, study.config, cells)
        run_selection(study.config, root=tmp_path, device=CPU)
    truth = {cell: 90.0 + k for k, cell in enumerate(CELLS)}  # the fake scores' order
    table = pd.DataFrame({"arch_str": CELLS, **{f"{name}_test": list(truth.values())
                                                for name in TABLE_DATASETS}})
    frame = compare_studies(config, studies, root=tmp_path, out_dir=tmp_path / "out",
                            table=table.set_index("arch_str"))
    # one cell needs no training, three do; the third method's top 3 are its first trials'
    assert frame["select_epochs"].tolist() == [0, 5, 5]
    assert frame["judge_regret"].tolist() == [0.0, 0.0, 0.0]  # the judge follows the table
    # trial 0 is the centre of the random and CMA-ES studies; a plain study has none
    assert frame["judge_from_centre"].tolist() == [None, False, False]
    assert frame["pick_from_centre"].tolist() == [None, True, True]  # the best objective
    assert frame["select_budget"].tolist() == [selection_epochs(config.select, 3)] * 3
    assert (frame["total_epochs"] == frame["epochs"] + frame["select_budget"]).all()
    assert frame["judge_cell"].tolist() == [CELLS[0], CELLS[2], CELLS[2]]
    assert frame["judge_params_M"].tolist() == pytest.approx([0.1, 0.3, 0.3])  # its trial's
    assert frame["mean_cifar10_test"].tolist() == [90.0, 91.0, 92.5]
    assert "judge" in (tmp_path / "out" / "compare.csv").read_text()


def test_a_study_is_also_judged_as_its_first_searches_left_it(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``compare --first 3``: the judge picks among the first three searches' cells in a
    selection of its own, and the row says what the study had then beside what it has."""
    config = with_overrides(tiny_config, SELECT)
    _fake_rungs(monkeypatch, {cell: float(k) for k, cell in enumerate(CELLS)})
    study = method_studies(config)[2]  # CMA-ES starts: trial 0 is the centre trial
    _finished_study(tmp_path, study.config, CELLS)
    early = run_selection(study.config, root=tmp_path, device=CPU, searches=3)
    whole = run_selection(study.config, root=tmp_path, device=CPU)
    found = load_study(study.config.name, root=tmp_path)
    assert (early.cell, early.candidates, early.searches) == (CELLS[2], 3, 3)
    assert StudySelection.of(found, 3) == early and StudySelection.of(found) == whole
    assert whole.cell == CELLS[5] and _outcome(tmp_path, study.config.name)[CELLS[5]][0] == \
        "COMPLETE"
    truth = {cell: 90.0 + k for k, cell in enumerate(CELLS)}
    table = pd.DataFrame({"arch_str": CELLS, **{f"{name}_test": list(truth.values())
                                                for name in TABLE_DATASETS}})
    [row] = compare_studies(config, [study], root=tmp_path, out_dir=tmp_path / "out",
                            table=table.set_index("arch_str"), first=3).to_dict("records")
    assert row["first_searches"] == 3
    assert (row["first_best_cifar10_test"], row["first_max_cifar10_test"]) == (90.0, 92.0)
    assert (row["first_judge_cifar10_test"], row["first_judge_regret"]) == (92.0, 0.0)
    assert (row["first_mean_cifar10_test"], row["mean_cifar10_test"]) == (91.0, 92.5)
    assert (row["first_judge_params_M"], row["judge_params_M"]) == pytest.approx((0.3, 0.6))
    assert row["first_total_epochs"] == row["first_epochs"] + selection_epochs(
        config.select, 3)
    assert row["judge_cifar10_test"] == 95.0 and row["first_pick_from_centre"]
    markdown = re.sub(" +", " ", (tmp_path / "out" / "compare.md").read_text())
    assert ("| variant | method | seed | cell | params (M) | CIFAR-10 | regret | from the centre "
            "| CIFAR-10, first 3 | regret, first 3 | from the centre, first 3 |") in markdown
    assert "| 0.600 | 95.00 | 0.00 | False | 92.00 | 0.00 | False |" in markdown
    assert "| darts | cmaes | 1 | 95.00 | | 0.00 | | 92.00 | | 0.00 | |" in markdown
    with pytest.raises(ConfigError, match="--first 0"):
        run_selection(study.config, root=tmp_path, device=CPU, searches=0)


def test_the_first_searches_are_those_proposed_first_a_retry_in_its_place() -> None:
    from optuna.trial import TrialState, create_trial

    from pipeline.outer.budget import first_searches

    def trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
        made = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                            user_attrs=attrs)
        made.number = number
        return made

    trials = [trial(0, TrialState.COMPLETE), trial(1, TrialState.FAIL, fail_reason="interrupted"),
              trial(2, TrialState.PRUNED), trial(3, TrialState.FAIL, fail_reason="surplus: x"),
              trial(4, TrialState.COMPLETE), trial(5, TrialState.COMPLETE, original_number=1)]
    assert [t.number for t in first_searches(trials, 3)] == [0, 5, 2]


@pytest.mark.parametrize("objective, extra", [
    ("rung", []), ("train-loss", []), ("zero-cost", ["select.zero_cost=synflow"])])
def test_a_cheap_judge_is_the_trial_objective(tiny_config: StudyConfig, tmp_path: Path,
                                              objective: str, extra: list[str]) -> None:
    config = with_overrides(tiny_config, [*SELECT, f"search.objective={objective}",
                                          "search.epochs=1", "outer.n_trials=1", *extra])
    run_study(config, root=tmp_path, device=CPU)
    (trial,) = load_study(config.name, root=tmp_path).get_trials()
    record = TrialRecord.of(trial)
    again = judged_objective(config, judge_data(config, CPU), NB201Genotype.parse(
        str(record.cell)), folder=tmp_path / "again")  # the selection's first rung of it
    assert trial.value == record.judged == pytest.approx(again)
    assert (trial.value < 0) == (objective == "train-loss")


@pytest.mark.parametrize("overrides, key", [
    (["search.objective=zero-cost"], "select.zero_cost"),
    (["search.objective=rung", "data.subset=0"], "data.subset")])
def test_a_judged_objective_needs_its_score_and_unseen_images(
        tiny_config: StudyConfig, overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        with_overrides(tiny_config, overrides)


def test_a_zero_cost_score_drops_its_share_and_never_chooses_alone(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zero_cost = {cell: float(-k) for k, cell in enumerate(CELLS)}  # the first cells score best
    monkeypatch.setattr(stage, "zero_cost_score",
                        lambda name, genotype, data, select, seed: zero_cost[genotype.to_str()])
    trained = _fake_rungs(monkeypatch, {cell: float(k) for k, cell in enumerate(CELLS)})
    config = with_overrides(tiny_config, [*SELECT, "select.zero_cost=synflow",
                                          "select.zero_cost_drop=0.5"])
    _finished_study(tmp_path / "half", config, CELLS)
    selection = run_selection(config, root=tmp_path / "half", device=CPU)
    assert {cell for cell, _ in trained} == set(CELLS[:3])  # the three lowest never train
    assert selection.cell == CELLS[2]  # the training, not the score, chooses among the rest
    outcome = _outcome(tmp_path / "half", config.name)
    assert [outcome[cell] for cell in CELLS[3:]] == [("PRUNED", [])] * 3

    nearly_all = with_overrides(config, ["select.zero_cost_drop=0.9"])
    _finished_study(tmp_path / "most", nearly_all, CELLS)
    run_selection(nearly_all, root=tmp_path / "most", device=CPU)
    outcome = _outcome(tmp_path / "most", config.name)
    assert sum(state == "PRUNED" and not rungs for state, rungs in outcome.values()) == 4
