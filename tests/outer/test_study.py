from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
import torch
from optuna.trial import TrialState

from pipeline.config import StudyConfig
from pipeline.outer.budget import trials_used
from pipeline.outer.storage import StudyError, make_storage
from pipeline.outer.study import load_study, run_study
from pipeline.search import DartsSearch
from pipeline.spaces import NB201Genotype

CPU = torch.device("cpu")


def _with(config: StudyConfig, **sections: dict) -> StudyConfig:
    changes = {name: dataclasses.replace(getattr(config, name), **values)
               for name, values in sections.items()}
    return dataclasses.replace(config, **changes)


def _metrics(root: Path, name: str, key: str) -> list[dict]:
    path = root / name / "trials" / key / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_three_trial_study_records_everything(tiny_config: StudyConfig, tmp_path: Path) -> None:
    summary = run_study(tiny_config, root=tmp_path, device=CPU)
    study = load_study("tiny", root=tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert summary.finished == 3 and summary.best is not None
    assert set(trials[0].params.values()) == {0.0}  # the first trial is plain DARTS' start
    for trial in trials:
        attrs = trial.user_attrs
        assert NB201Genotype.parse(attrs["cell"])
        assert trial.value == attrs["supernet_acc"]
        assert 0 <= attrs["discrete_acc"] <= 100
        assert 0.07 < attrs["eval_params_M"] < 1.6
        assert len(attrs["alpha_softmax"]) == 6
        assert {"skip_share", "pool_share", "none_share", "seed", "wall_time_s",
                "device"} <= set(attrs)
        assert attrs["threads"] == torch.get_num_threads()  # the worker's share
        assert attrs["epochs_run"] == 3 and sorted(trial.intermediate_values) == [1, 2, 3]
        assert len(_metrics(tmp_path, "tiny", attrs["trial_key"])) == 3
    assert len({t.user_attrs["seed"] for t in trials}) == 3
    resolved = json.loads((tmp_path / "tiny" / "config.resolved.json").read_text())
    assert resolved["search"]["epochs"] == 3
    assert (tmp_path / "tiny" / "study.db").exists()


def test_the_trained_objective_is_the_derived_cell_trained_from_scratch(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    from pipeline.results.dashboard import DashboardPublisher
    from pipeline.search import prepare_data
    from pipeline.search.training import TrainSettings, short_training_accuracy

    config = _with(tiny_config, search={"objective": "trained", "train_epochs": 2},
                   outer={"n_trials": 2})
    run_study(config, root=tmp_path, device=CPU, publisher=DashboardPublisher())
    study = load_study("tiny", root=tmp_path)
    trials = study.get_trials()
    data = prepare_data(config, CPU)
    settings = TrainSettings(epochs=2, batch_size=32, channels=4, cells=1)
    for trial in trials:
        attrs = trial.user_attrs
        expected = short_training_accuracy(
            NB201Genotype.parse(attrs["cell"]), data.weight_batches, data.arch_batches,
            settings=settings, seed=attrs["seed"], num_classes=10, in_channels=1)
        assert trial.value == attrs["trained_acc"] == expected
        assert attrs["train_time_s"] > 0
        note = optuna_dashboard.get_note(optuna.trial.Trial(study, trial._trial_id))
        assert (f"trained from scratch: {expected:.2f} % "
                f"(training time {attrs['train_time_s']:.0f} s)") in note
        assert trial.intermediate_values[3] == attrs["supernet_acc"]  # what the pruner sees


def test_a_holdout_judges_the_same_searches_cells_on_images_no_search_sees(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    from pipeline.search import prepare_data
    from pipeline.search.training import TrainSettings, short_training_accuracy

    plain = _with(tiny_config, search={"objective": "trained", "train_epochs": 1, "epochs": 1},
                  outer={"n_trials": 2, "sampler": "darts"})
    held = dataclasses.replace(_with(plain, data={"holdout": 300}), name="held")
    run_study(plain, root=tmp_path, device=CPU)
    run_study(held, root=tmp_path, device=CPU)  # takes the searches over, trains again
    data = prepare_data(held, CPU)
    assert data.holdout_batches is not None  # 300 images to rounding per class:
    assert abs(len(data.holdout_batches.labels) - 300) <= 5
    settings = TrainSettings(epochs=1, batch_size=32, channels=4, cells=1)
    before, after = (load_study(name, root=tmp_path).get_trials() for name in ("tiny", "held"))
    for old, new in zip(before, after, strict=True):
        assert new.user_attrs["same_search_as"] == f"tiny/{old.user_attrs['trial_key']}"
        assert new.user_attrs["cell"] == old.user_attrs["cell"]
        expected = short_training_accuracy(
            NB201Genotype.parse(new.user_attrs["cell"]), data.weight_batches,
            data.holdout_batches, settings=settings, seed=new.user_attrs["seed"],
            num_classes=10, in_channels=1)
        assert new.value == expected != old.value


def test_a_study_prunes_the_searches_it_takes_over_as_it_would_have_run_them(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    plain = _with(tiny_config, outer={"n_trials": 4, "sampler": "darts"})
    pruned = dataclasses.replace(_with(plain, outer={
        "n_trials": 4, "sampler": "darts", "pruner": "percentile", "percentile": 75.0,
        "startup_trials": 1, "warmup_epochs": 0}), name="pruned")
    run_study(plain, root=tmp_path / "shared", device=CPU)
    run_study(pruned, root=tmp_path / "shared", device=CPU)  # takes plain's searches over
    run_study(pruned, root=tmp_path / "alone", device=CPU)

    def outcome(root: Path) -> list[tuple]:
        return [(t.state, t.intermediate_values, t.user_attrs["epochs_run"],
                 t.user_attrs["cell"]) for t in load_study("pruned", root=root).get_trials()]

    taken_over = load_study("pruned", root=tmp_path / "shared").get_trials()
    assert all("same_search_as" in t.user_attrs for t in taken_over)
    alone = outcome(tmp_path / "alone")
    assert any(state == TrialState.PRUNED for state, *_ in alone)  # the pruner had work
    assert outcome(tmp_path / "shared") == alone


def test_resume_adds_trials_and_keeps_the_cma_state(tiny_config: StudyConfig,
                                                    tmp_path: Path) -> None:
    run_study(_with(tiny_config, outer={"n_trials": 5}, search={"epochs": 1}), root=tmp_path,
              device=CPU)
    summary = run_study(_with(tiny_config, outer={"n_trials": 8}, search={"epochs": 1}),
                        root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert len(trials) == 8 and summary.finished == 8
    generations = [t.system_attrs.get("cma:generation") for t in trials]
    # trial 0 is the enqueued centre; popsize 4: generation 0 ends before the resume, and
    # the resumed sampler goes on with generation 1 instead of starting afresh
    assert generations == [None, 0, 0, 0, 0, 1, 1, 1]


def test_interrupted_trial_resumes_to_the_uninterrupted_result(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _with(tiny_config, outer={"n_trials": 1})
    run_study(config, root=tmp_path / "whole", device=CPU)
    [whole] = load_study("tiny", root=tmp_path / "whole").get_trials()

    _interrupt_in_epoch_2(config, tmp_path / "split", monkeypatch)
    [failed] = load_study("tiny", root=tmp_path / "split").get_trials()
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "interrupted"

    calls = {"epochs": 0}
    original_epoch = DartsSearch.run_epoch

    def counting_epoch(self: DartsSearch) -> object:
        calls["epochs"] += 1
        return original_epoch(self)

    monkeypatch.setattr(DartsSearch, "run_epoch", counting_epoch)
    run_study(config, root=tmp_path / "split", device=CPU)
    study = load_study("tiny", root=tmp_path / "split")
    retry = study.get_trials()[-1]
    assert retry.state == TrialState.COMPLETE and trials_used(study.get_trials()) == 1
    assert retry.user_attrs["original_number"] == 0 and retry.params == whole.params
    assert calls["epochs"] == config.search.epochs - 1  # the finished epoch was not redone
    assert retry.value == whole.value
    assert sorted(retry.intermediate_values) == [1, 2, 3]
    assert _metrics(tmp_path / "split", "tiny", "00000") == _metrics(tmp_path / "whole", "tiny",
                                                                    "00000")


def _interrupt_in_epoch_2(config: StudyConfig, root: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a study until a Ctrl-C arrives in the middle of the first trial's epoch 2."""
    calls = {"weight_steps": 0}
    original_step = DartsSearch.weight_step

    def interrupting_step(self: DartsSearch, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["weight_steps"] += 1
        if calls["weight_steps"] == len(self.weight_batches) + 2:
            raise KeyboardInterrupt
        return original_step(self, x, y)

    with monkeypatch.context() as patch:
        patch.setattr(DartsSearch, "weight_step", interrupting_step)
        with pytest.raises(KeyboardInterrupt):
            run_study(config, root=root, device=CPU)


def _past_its_run(path: Path) -> None:
    """A real checkpoint whose epoch is past the search's last."""
    payload = torch.load(path, weights_only=True)
    payload["state"]["epoch"] = 7
    torch.save(payload, path)


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b"not a checkpoint"),
    lambda path: torch.save([1, 2, 3], path),  # loads, but is no checkpoint
    _past_its_run,
], ids=["garbage", "a list", "past its run"])
def test_a_corrupt_checkpoint_restarts_its_trial(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]) -> None:
    config = _with(tiny_config, outer={"n_trials": 1})
    _interrupt_in_epoch_2(config, tmp_path, monkeypatch)
    checkpoint = tmp_path / "tiny" / "trials" / "00000" / "ckpt.pt"
    damage(checkpoint)
    run_study(config, root=tmp_path, device=CPU)
    assert "trial 00000 cannot resume from" in caplog.text
    retry = load_study("tiny", root=tmp_path).get_trials()[-1]
    assert retry.state == TrialState.COMPLETE
    assert [row["epoch"] for row in _metrics(tmp_path, "tiny", "00000")] == [1, 2, 3]


def test_diverging_trials_fail_with_a_reason_and_the_study_goes_on(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    config = _with(tiny_config, outer={"n_trials": 2}, search={"weight_lr": 1e30})
    summary = run_study(config, root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["fail_reason"].startswith("diverged") for t in trials)
    assert summary.finished == 2 and summary.best is None


def test_out_of_memory_fails_the_trial_and_the_study_goes_on(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(self: DartsSearch) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(DartsSearch, "run_epoch", out_of_memory)
    summary = run_study(_with(tiny_config, outer={"n_trials": 2}), root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2 and summary.finished == 2
    assert all(t.user_attrs["fail_reason"].startswith("out of memory: CUDA out of memory")
               for t in trials)


def test_changed_config_is_refused_unless_forced(tiny_config: StudyConfig,
                                                 tmp_path: Path) -> None:
    run_study(_with(tiny_config, outer={"n_trials": 1}, search={"epochs": 1}), root=tmp_path,
              device=CPU)
    changed = _with(tiny_config, outer={"n_trials": 1}, search={"epochs": 2})
    with pytest.raises(StudyError, match=r"search\.epochs: 1 -> 2"):
        run_study(changed, root=tmp_path, device=CPU)
    run_study(changed, root=tmp_path, device=CPU, force=True)
    # a larger budget or another memory format continues the same study
    more = _with(tiny_config, outer={"n_trials": 3}, search={"epochs": 1, "channels_last": False})
    assert run_study(more, root=tmp_path, device=CPU).finished == 3


def test_a_study_resumes_under_settings_added_after_it_was_created(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    config = _with(tiny_config, outer={"n_trials": 1}, search={"epochs": 1})
    run_study(config, root=tmp_path, device=CPU)
    study = load_study("tiny", root=tmp_path)
    older = study.user_attrs["config"]
    del older["search"]["train_epochs"]  # as written before the setting existed
    study.set_user_attr("config", older)
    assert run_study(_with(config, outer={"n_trials": 2}), root=tmp_path,
                     device=CPU).finished == 2
    with pytest.raises(StudyError, match=r"search\.train_epochs: 10 -> 3"):
        run_study(_with(config, search={"train_epochs": 3}), root=tmp_path, device=CPU)


def test_a_finished_study_resumes_without_loading_its_data(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _with(tiny_config, outer={"n_trials": 2}, search={"epochs": 1})
    first = run_study(config, root=tmp_path, device=CPU)

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was loaded")

    monkeypatch.setattr("pipeline.outer.study.prepare_data", no_data)
    again = run_study(config, root=tmp_path, device=CPU)
    assert again.finished == 2 and again.best is not None and first.best is not None
    assert again.best.number == first.best.number
    with pytest.raises(StudyError, match=r"search\.epochs: 1 -> 2"):
        run_study(_with(config, search={"epochs": 2}), root=tmp_path, device=CPU)
    with pytest.raises(AssertionError, match="was loaded"):  # a larger budget: work to do
        run_study(_with(config, outer={"n_trials": 3}), root=tmp_path, device=CPU)
    with pytest.raises(AssertionError, match="was loaded"):  # a new study
        run_study(dataclasses.replace(config, name="other"), root=tmp_path, device=CPU)
    assert not (tmp_path / "other").exists()


def test_journal_file_storage(tiny_config: StudyConfig, tmp_path: Path) -> None:
    config = _with(tiny_config, outer={"n_trials": 1}, search={"epochs": 1})
    journal = str(tmp_path / "study.log")
    run_study(config, root=tmp_path, storage=journal, device=CPU)
    study = load_study("tiny", root=tmp_path, storage=journal)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1


def test_bad_storage_urls_give_study_errors_without_passwords() -> None:
    for url in ("postgresql://user:s3cret@127.0.0.1:1/db", "nosuchdb://x", "sqlite:///"
                "/proc/no/such/dir/x.db"):
        with pytest.raises(StudyError) as error:
            make_storage(url)
        assert "s3cret" not in str(error.value) and "cannot open storage" in str(error.value)


def test_unknown_study_is_a_study_error(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study"):
        load_study("ghost", root=tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("sampler", ["darts", "random", "tpe"])
@pytest.mark.parametrize("pruner", ["median", "percentile", "patient"])
def test_other_samplers_and_pruners_run(tiny_config: StudyConfig, tmp_path: Path,
                                        sampler: str, pruner: str) -> None:
    config = _with(tiny_config, outer={"n_trials": 2, "sampler": sampler, "pruner": pruner,
                                       "startup_trials": 1, "warmup_epochs": 0},
                   search={"epochs": 1})
    run_study(config, root=tmp_path, device=CPU)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert len(trials) == 2 and all(t.state.is_finished() for t in trials)
    centre = [set(t.params.values()) == {0.0} for t in trials]
    init_seeds = {t.user_attrs["init_seed"] for t in trials}
    if sampler == "darts":  # plain DARTS: its usual start, a new seed per trial
        assert all(centre) and len(init_seeds) == 2
    else:  # the centre first, then sampled starts from the study's one initialisation
        assert centre == [True, False] and init_seeds == {config.seed}


def test_storage_conflicts_between_workers_are_retried(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite refuses one of two workers that write at once; the worker goes on."""
    import optuna.storages

    import pipeline.outer.study

    calls = {"stale": 0, "run": 0}
    real_fail, real_run = optuna.storages.fail_stale_trials, pipeline.outer.study.run_trials

    def conflicting_fail(study: optuna.Study) -> list[int]:
        calls["stale"] += 1
        if calls["stale"] == 1:
            raise optuna.exceptions.StorageInternalError("database is locked")
        return real_fail(study)

    def conflicting_run(*args: object, **kwargs: object) -> None:
        calls["run"] += 1
        if calls["run"] == 2:
            raise optuna.exceptions.StorageInternalError("database is locked")
        real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", conflicting_fail)
    monkeypatch.setattr(pipeline.outer.study, "run_trials", conflicting_run)
    config = _with(tiny_config, outer={"n_trials": 2, "heartbeat_interval": 1,
                                       "grace_period": 2}, search={"epochs": 1})
    summary = run_study(config, root=tmp_path, device=CPU)
    assert summary.finished == 2 and calls["stale"] > 1 and calls["run"] == 3


def test_a_new_sqlite_database_never_appears_empty(tmp_path: Path) -> None:
    """A worker starting beside the one that creates the database must never find it empty
    (it would take it for a damaged file): the file appears with its tables, and a second
    opener keeps the first one's database."""
    import sqlalchemy

    path = tmp_path / "study" / "study.db"
    seen: list[int] = []

    def look(*_: object) -> None:
        if path.exists():
            seen.append(path.stat().st_size)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", look)
    try:
        storage = make_storage(f"sqlite:///{path}", heartbeat_interval_s=None)
        study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "kept")
        again = make_storage(f"sqlite:///{path}", heartbeat_interval_s=None)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", look)
    assert seen and 0 not in seen
    assert again.get_study_id_from_name("kept") == study_id
    assert [p.name for p in path.parent.iterdir()] == ["study.db"]  # nothing left beside it


def test_an_empty_database_that_another_opener_is_filling_is_waited_for(
        tmp_path: Path) -> None:
    """Optuna itself (the dashboard, a script) creates a database file empty and fills it
    moments later: a worker that finds it then waits for the tables rather than calling
    it damaged. An empty file that nobody is filling stays a damaged one."""
    theirs = tmp_path / "theirs.db"
    make_storage(f"sqlite:///{theirs}", heartbeat_interval_s=None).create_new_study(
        [optuna.study.StudyDirection.MAXIMIZE], "theirs")
    path = tmp_path / "study.db"
    path.write_bytes(b"")
    filler = threading.Timer(0.3, lambda: path.write_bytes(theirs.read_bytes()))
    filler.start()
    try:
        storage = make_storage(f"sqlite:///{path}", heartbeat_interval_s=None)
    finally:
        filler.join()
    assert storage.get_study_id_from_name("theirs") is not None
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"")
    os.utime(damaged, (0, 0))  # empty for a long time
    with pytest.raises(StudyError, match=r"empty \(0 bytes\), not a study database"):
        make_storage(f"sqlite:///{damaged}", heartbeat_interval_s=None)


def test_a_population_study_equals_the_same_study_run_one_trial_at_a_time(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    """Plain DARTS trials (their own seeds and initial weights) search the same start
    either way; each trial then ends where its lone search ends."""
    config = _with(tiny_config, outer={"sampler": "darts", "n_trials": 4})
    torch.use_deterministic_algorithms(True)
    try:
        run_study(config, root=tmp_path / "alone", device=CPU)
        summary = run_study(config, root=tmp_path / "together", device=CPU, population=3)
    finally:
        torch.use_deterministic_algorithms(False)
    alone = load_study("tiny", root=tmp_path / "alone").get_trials()
    together = load_study("tiny", root=tmp_path / "together").get_trials()
    assert summary.finished == 4 and [t.state for t in together] == [TrialState.COMPLETE] * 4
    # the first trial runs alone (nothing has completed yet), the next three together
    assert len({t.user_attrs["init_seed"] for t in together}) == 4
    for lone, member in zip(alone, together, strict=True):
        assert member.params == lone.params
        assert member.user_attrs["cell"] == lone.user_attrs["cell"]
        assert member.value == pytest.approx(lone.value, abs=0.5)
        assert member.intermediate_values.keys() == lone.intermediate_values.keys()
    metrics = _metrics(tmp_path / "together", "tiny", "00002")
    assert [row["epoch"] for row in metrics] == [1, 2, 3]
    for ours, theirs in zip(metrics, _metrics(tmp_path / "alone", "tiny", "00002"),
                            strict=True):
        assert ours["genotype"] == theirs["genotype"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-3)
        torch.testing.assert_close(torch.tensor(ours["alpha_softmax"]),
                                   torch.tensor(theirs["alpha_softmax"]), rtol=0, atol=1e-4)


def test_a_population_prunes_members_and_keeps_to_the_budget(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda trial: trial.number == 2)
    config = _with(tiny_config, outer={"n_trials": 5, "pruner": "median"})
    summary = run_study(config, root=tmp_path, device=CPU, population=4)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert summary.finished == 5 == len(trials)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] + [
        TrialState.COMPLETE] * 2
    assert [t.user_attrs["epochs_run"] for t in trials] == [3, 3, 1, 3, 3]
    assert trials[2].value is not None  # its last report, as Optuna records a pruned trial


def test_an_interrupted_population_resumes_its_trials(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.outer.trial_steps import TrialSteps

    config = _with(tiny_config, outer={"n_trials": 3})
    after_epoch = TrialSteps.after_epoch

    def interrupt_once(self: TrialSteps, run: object, record: object) -> None:
        after_epoch(self, run, record)  # type: ignore[arg-type]
        if run.trial.number == 2 and record.epoch == 2:  # type: ignore[attr-defined]
            monkeypatch.setattr(TrialSteps, "after_epoch", after_epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(TrialSteps, "after_epoch", interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, root=tmp_path, device=CPU, population=2)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs["fail_reason"] for t in trials[1:]} == {"interrupted"}
    summary = run_study(config, root=tmp_path, device=CPU, population=2)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert summary.finished == 3
    retries = [t for t in trials if t.state == TrialState.COMPLETE and t.number > 2]
    assert sorted(t.user_attrs["original_number"] for t in retries) == [1, 2]
    assert {t.user_attrs["resumed_from_epoch"] for t in retries} == {2}


def test_an_unexpected_error_in_a_population_fails_its_trials_with_the_reason(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.outer.trial_steps import TrialSteps

    after_epoch = TrialSteps.after_epoch

    def explode(self: TrialSteps, run: object, record: object) -> None:
        if run.trial.number > 0:  # type: ignore[attr-defined]
            raise RuntimeError("boom")
        after_epoch(self, run, record)  # type: ignore[arg-type]

    monkeypatch.setattr(TrialSteps, "after_epoch", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_study(_with(tiny_config, outer={"n_trials": 3}), root=tmp_path, device=CPU,
                  population=2)
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs["fail_reason"] for t in trials[1:]} == {"RuntimeError: boom"}


def test_cma_es_learns_from_pruned_trials_only_on_the_objective_s_scale(
        tiny_config: StudyConfig) -> None:
    from pipeline.outer.sampling import build_sampler
    from pipeline.search.start import StartSpace

    space = StartSpace(edges=("e",), ops=("a", "b"), alpha_range=1.0, gain_range=0.5,
                       directions=0, direction_range=0.5)
    for objective, considered in (("supernet", True), ("trained", False)):
        config = _with(tiny_config, search={"objective": objective},
                       outer={"sampler": "cmaes", "pruner": "median"})
        sampler = build_sampler(config, space, seed=0)
        assert sampler._consider_pruned_trials is considered  # type: ignore[attr-defined]


def _claims(workers: list[optuna.storages.BaseStorage], trial_id: int) -> list[bool]:
    """Every worker tries to claim the trial at the same moment; what each was told."""
    start = threading.Barrier(len(workers))
    claims: list[bool] = []

    def claim(storage: optuna.storages.BaseStorage) -> None:
        start.wait()
        claims.append(storage.set_trial_state_values(trial_id, TrialState.RUNNING))

    threads = [threading.Thread(target=claim, args=(storage,)) for storage in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claims


def test_a_study_that_nobody_set_up_is_set_up_by_the_worker_after_a_wait(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose creator died before setting it up (here: made by Optuna alone) is
    set up by the next worker once it has waited for the creator, and then runs."""
    import pipeline.outer.study
    from pipeline.outer.folder import STATE_ID

    monkeypatch.setattr(pipeline.outer.study, "SET_UP_WAIT_S", 0.5)
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    optuna.create_study(storage=url, study_name="tiny", direction="maximize")
    config = _with(tiny_config, outer={"n_trials": 2}, search={"epochs": 1})
    summary = run_study(config, root=tmp_path, storage=url, device=CPU)
    study = optuna.load_study(study_name="tiny", storage=url)
    assert summary.finished == 2 and study.user_attrs["config"]["name"] == "tiny"
    assert STATE_ID in study.user_attrs
    assert not any(study.trials[0].params.values())  # it got its centre trial


def test_a_worker_that_looked_before_another_created_the_study_is_not_refused(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker finds no study, then the folder claimed (a worker beside it created the
    study in between): it looks again and joins the study instead of refusing it."""
    config = _with(tiny_config, outer={"n_trials": 1}, search={"epochs": 1})
    run_study(config, root=tmp_path, device=CPU)
    load = optuna.load_study
    looks = []

    def late(**kwargs: object) -> optuna.Study:
        looks.append(1)
        if len(looks) == 1:  # the first look came before the study was created
            raise KeyError("no such study")
        return load(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna, "load_study", late)
    summary = run_study(_with(config, outer={"n_trials": 2}), root=tmp_path, device=CPU)
    assert summary.finished == 2


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_queued_trial_is_claimed_by_one_worker_only(kind: str, tmp_path: Path) -> None:
    """Workers racing for one queued trial: exactly one of them gets it, every time.
    (Optuna's own read-then-write claim let two of four win in about 4 rounds of 10.)"""
    url = os.environ.get("GLOBALDARTS_TEST_POSTGRES") if kind == "postgresql" else (
        f"sqlite:///{tmp_path / 'study.db'}")
    if not url:
        pytest.skip("set GLOBALDARTS_TEST_POSTGRES to a PostgreSQL URL (.ci/run does)")
    workers = [make_storage(url) for _ in range(4)]
    study = optuna.create_study(storage=workers[0], study_name=f"race-{uuid.uuid4().hex}")
    for _ in range(20):
        study.enqueue_trial({})
        trial = study.get_trials(states=(TrialState.WAITING,))[0]
        assert sorted(_claims(workers, trial._trial_id)) == [False, False, False, True]
        claimed = study.get_trials()[trial.number]
        assert claimed.state == TrialState.RUNNING and claimed.datetime_start is not None
        study.tell(trial.number, state=TrialState.FAIL)


def test_a_trial_another_worker_finished_first_does_not_stop_the_worker(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.outer.study

    run_trials = pipeline.outer.study.run_trials
    calls = []

    def racing(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:  # what Optuna raises when another worker ended the trial
            raise ValueError("Cannot tell a FAIL trial.")
        run_trials(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.outer.study, "run_trials", racing)
    summary = run_study(_with(tiny_config, outer={"n_trials": 2}, search={"epochs": 1}),
                        root=tmp_path, device=CPU)
    assert summary.finished == 2 and len(calls) == 3

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("some other mistake")

    monkeypatch.setattr(pipeline.outer.study, "run_trials", broken)
    with pytest.raises(ValueError, match="other mistake"):
        run_study(_with(tiny_config, outer={"n_trials": 3}, search={"epochs": 1}),
                  root=tmp_path, device=CPU, force=True)


def _outcomes(trials: list) -> list[tuple]:
    """Each trial that counts, by its original number: start point, value and cell."""
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return sorted((t.user_attrs["original_number"], t.params, t.value, t.user_attrs["cell"])
                  for t in done)


def test_a_trial_stopped_by_an_io_error_is_retried_to_the_undisturbed_result(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk in the last trial's second epoch: the trial fails with that reason, does
    not count, and the next run resumes it from its last good checkpoint."""
    config = _with(tiny_config, outer={"n_trials": 2})
    run_study(config, root=tmp_path / "whole", device=CPU)
    _fill_the_disk_in_trial_1(config, tmp_path / "split", monkeypatch)
    failed = load_study("tiny", root=tmp_path / "split").get_trials()[1]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == "I/O error: [Errno 28] No space left on device"
    summary = run_study(config, root=tmp_path / "split", device=CPU)
    trials = load_study("tiny", root=tmp_path / "split").get_trials()
    retry = trials[-1]
    assert retry.user_attrs["original_number"] == 1 and summary.finished == 2
    assert retry.user_attrs["resumed_from_epoch"] == 1
    whole = load_study("tiny", root=tmp_path / "whole").get_trials()
    assert _outcomes(trials) == _outcomes(whole)


def test_a_retry_that_fails_again_is_retried_in_turn_to_the_undisturbed_result(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills in trial 1, and again in its retry: the next run retries the retry
    (its history names both), which is no surplus, and the study ends as if undisturbed."""
    config = _with(tiny_config, outer={"n_trials": 2})
    run_study(config, root=tmp_path / "whole", device=CPU)
    for _ in range(2):
        _fill_the_disk_in_trial_1(config, tmp_path / "split", monkeypatch)
    summary = run_study(config, root=tmp_path / "split", device=CPU)
    trials = load_study("tiny", root=tmp_path / "split").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, *[TrialState.FAIL] * 2,
                                         TrialState.COMPLETE]
    assert trials[3].system_attrs["retry_history"] == [1, 2] and summary.finished == 2
    whole = load_study("tiny", root=tmp_path / "whole").get_trials()
    assert _outcomes(trials) == _outcomes(whole)


def _fill_the_disk_in_trial_1(config: StudyConfig, root: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``config`` until the disk fills at trial 1's second epoch."""
    import pipeline.outer.trial_steps

    save = pipeline.outer.trial_steps.save_checkpoint

    def full_disk(path: Path, state: dict, *, meta: dict, **kwargs: object) -> None:
        if path.parent.name == "00001" and state["epoch"] == 2:
            raise OSError(28, "No space left on device")
        save(path, state, meta=meta, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.outer.trial_steps, "save_checkpoint", full_disk)
        with pytest.raises(OSError, match="No space left"):
            run_study(config, root=root, device=CPU)


def test_retries_two_workers_queued_at_once_run_the_search_once(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers recovering at once can each queue a retry of the same failed trial: the
    earlier retry resumes it and the study's outcome is the undisturbed one; the later
    never runs its search: it ends as a surplus that does not count, also when the budget
    is met before any worker takes it."""
    config = _with(tiny_config, outer={"n_trials": 2})
    run_study(config, root=tmp_path / "whole", device=CPU)
    _fill_the_disk_in_trial_1(config, tmp_path / "split", monkeypatch)
    study = load_study("tiny", root=tmp_path / "split")
    failed = study.get_trials()[1]
    for _ in range(2):  # what each racing worker's recovery queues
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, failed)
    summary = run_study(config, root=tmp_path / "split", device=CPU)
    trials = load_study("tiny", root=tmp_path / "split").get_trials()
    assert [t.state for t in trials[2:]] == [TrialState.COMPLETE, TrialState.FAIL]
    assert summary.finished == 2 and not trials[3].intermediate_values
    assert trials[3].user_attrs["fail_reason"] == "surplus: trial 2 already retries trial 1"
    whole = load_study("tiny", root=tmp_path / "whole").get_trials()
    assert _outcomes(trials) == _outcomes(whole)
    run_study(_with(config, outer={"n_trials": 3}), root=tmp_path / "split", device=CPU)
    trials = load_study("tiny", root=tmp_path / "split").get_trials()
    assert trials[4].state == TrialState.COMPLETE and trials_used(trials) == 3


class _Killed(BaseException):
    """A worker's death: nothing of it reaches the storage."""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_workers_trial_is_retried_at_once_without_reseeding_the_sampler(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kind: str) -> None:
    """The next worker on the same machine finds the dead worker's trial still running,
    fails it and resumes it without waiting for a heartbeat (a journal file has none).
    With no trial left running, it samples with the study's seed, as a lone worker does,
    not with one of its own."""
    import pipeline.outer.recovery
    import pipeline.outer.runner
    import pipeline.outer.study
    from pipeline.outer.trial_steps import TrialSteps

    config = _with(tiny_config, outer={"n_trials": 2})
    storage = (None if kind == "sqlite" else str(tmp_path / "split.log"))
    run_study(config, root=tmp_path / "whole", device=CPU)
    after_epoch = TrialSteps.after_epoch

    def die(self: TrialSteps, run: object, record: object) -> None:
        after_epoch(self, run, record)  # type: ignore[arg-type]
        if run.trial.number == 1 and record.epoch == 2:  # type: ignore[attr-defined]
            raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(TrialSteps, "after_epoch", die)
        patch.setattr(pipeline.outer.runner, "_tell_failed", lambda *args: None)
        with pytest.raises(_Killed):
            run_study(config, root=tmp_path / "split", storage=storage, device=CPU)
    study = load_study("tiny", root=tmp_path / "split", storage=storage)
    assert study.get_trials()[1].state == TrialState.RUNNING
    seeds = []
    build_sampler = pipeline.outer.study.build_sampler
    monkeypatch.setattr(pipeline.outer.study, "build_sampler",
                        lambda config, space, *, seed, **kwargs: seeds.append(seed) or
                        build_sampler(config, space, seed=seed, **kwargs))
    monkeypatch.setattr(pipeline.outer.recovery, "worker_lives", lambda attrs: False)
    run_study(config, root=tmp_path / "split", storage=storage, device=CPU)
    assert seeds == [config.seed]
    trials = load_study("tiny", root=tmp_path / "split", storage=storage).get_trials()
    assert trials[1].user_attrs["fail_reason"].startswith("interrupted: its worker")
    assert trials[-1].user_attrs["original_number"] == 1
    assert trials[-1].user_attrs["resumed_from_epoch"] == 2
    whole = load_study("tiny", root=tmp_path / "whole").get_trials()
    assert _outcomes(trials) == _outcomes(whole)


def test_a_worker_whose_trial_another_worker_ended_goes_on(
        tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Another worker takes this one for dead (a heartbeat came late) and fails its trial
    mid-search: this worker leaves the trial as it was ended and goes on with the budget."""
    import logging

    from pipeline.outer.record import TrialRecord
    from pipeline.outer.storage import default_storage
    from pipeline.outer.trial_steps import TrialSteps

    config = _with(tiny_config, outer={"n_trials": 2}, search={"epochs": 2})
    after_epoch, ended = TrialSteps.after_epoch, []

    def ended_by_another_worker(self: TrialSteps, run: object, record: object) -> None:
        trial = run.trial  # type: ignore[attr-defined]
        if not ended:
            other = optuna.load_study(study_name="tiny", storage=make_storage(
                default_storage(tmp_path / "tiny")))
            TrialRecord(fail_reason="interrupted: its worker is gone").store(
                optuna.trial.Trial(other, trial._trial_id))
            other.tell(trial.number, state=TrialState.FAIL)
            ended.append(trial.number)
            # what the storage answers this worker's next write to the trial
            raise optuna.exceptions.UpdateFinishedTrialError(f"Trial#{trial.number} has "
                                                             "already finished")
        after_epoch(self, run, record)  # type: ignore[arg-type]

    monkeypatch.setattr(TrialSteps, "after_epoch", ended_by_another_worker)
    with caplog.at_level(logging.WARNING):
        summary = run_study(config, root=tmp_path, device=CPU)
    assert "was ended by another worker" in caplog.text
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert trials[ended[0]].state == TrialState.FAIL  # as the other worker left it
    assert summary.finished == 2
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


@pytest.mark.parametrize("when", ["at once", "after its search's claim"])
def test_a_worker_whose_trial_another_worker_ended_while_it_set_it_up_goes_on(
        when: str, tiny_config: StudyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Another worker takes this one for dead while it sets a trial up (its heartbeat came
    late on busy cores) and fails the trial: the worker leaves it, frees its search's
    claim, and goes on."""
    import logging

    import pipeline.outer.trial_steps
    from pipeline.outer.storage import default_storage
    from pipeline.outer.trial_steps import TrialSteps

    config = _with(tiny_config, outer={"n_trials": 2}, search={"epochs": 1})
    begin, resume, ended = TrialSteps.begin, pipeline.outer.trial_steps.resume_search, []

    def end_it(number: int) -> None:
        if not ended:
            other = optuna.load_study(study_name="tiny", storage=make_storage(
                default_storage(tmp_path / "tiny")))
            other.tell(number, state=TrialState.FAIL)
            ended.append(number)

    def begin_ended(self: TrialSteps, trial: optuna.Trial, **kwargs: object) -> object:
        end_it(trial.number)
        return begin(self, trial, **kwargs)  # type: ignore[arg-type]

    def resume_ended(*args: object, **kwargs: object) -> object:
        found = resume(*args, **kwargs)  # type: ignore[arg-type]
        end_it(0)
        return found

    if when == "at once":
        monkeypatch.setattr(TrialSteps, "begin", begin_ended)
    else:
        monkeypatch.setattr(pipeline.outer.trial_steps, "resume_search", resume_ended)
    with caplog.at_level(logging.WARNING):
        summary = run_study(config, root=tmp_path, device=CPU)
    assert "was ended by another worker" in caplog.text
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert trials[ended[0]].state == TrialState.FAIL and summary.finished == 2
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    assert not list(tmp_path.glob(".search-claims/*.lock"))  # its search's claim is freed


def test_a_retry_being_set_up_is_not_taken_for_the_dead_worker_it_copied(
        tmp_path: Path) -> None:
    """A retry copies the record of the trial it retries, its dead worker's name with it:
    until the worker that took the retry up writes its own, no worker fails it for that."""
    import socket

    from pipeline.outer.record import TrialRecord
    from pipeline.outer.recovery import fail_dead_local_trials

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db")
    first = study.ask()
    # process 1 lives, but not since "0": the worker that recorded this is gone
    TrialRecord(worker=f"{socket.gethostname()}:1", worker_started="0",
                worker_trial=first.number).store(first)
    assert fail_dead_local_trials(study) == [first.number]
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.get_trials()[0])
    retry = study.ask()  # taken up: running, with the dead worker's name copied
    assert TrialRecord.of(retry).worker == f"{socket.gethostname()}:1"
    assert fail_dead_local_trials(study) == []
    assert study.get_trials()[retry.number].state == TrialState.RUNNING


def test_a_trial_its_worker_never_set_up_is_failed_and_retried_after_a_grace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker stopped between asking for a trial and its first heartbeat leaves it
    running with no record of its own: after the grace it is failed and queued again, so
    the budget does not count it as running for ever."""
    import datetime

    import pipeline.outer.recovery
    from pipeline.outer.record import TrialRecord
    from pipeline.outer.recovery import recover

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db")
    left = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    set_up = study.ask()
    TrialRecord(worker="elsewhere:1", worker_trial=set_up.number).store(set_up)
    assert recover(study, heartbeat=True) == []  # within the grace: being set up
    monkeypatch.setattr(pipeline.outer.recovery, "SETUP_GRACE", datetime.timedelta(0))
    assert recover(study, heartbeat=True) == [left.number]  # failed, queued again
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING,
                                         TrialState.WAITING]
    assert TrialRecord.of(trials[0]).fail_reason.startswith("interrupted: no worker set it up")
    assert trials[2].params == left.params
