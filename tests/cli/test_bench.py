from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.bench import measure_epoch, measure_iteration, measure_outer, measure_selection
from pipeline.config import SearchConfig, SpaceConfig, StudyConfig
from pipeline.search.selection import PerturbationSelection, decisions
from pipeline.spaces import get_space


def _bench(*, space: str = "nb201", channels: int = 4, cells: int = 1, batch: int = 8,
           precision: str = "fp32") -> StudyConfig:
    """The study a benchmark times: a supernet of ``channels`` and ``cells`` at a batch."""
    return StudyConfig(name="bench", space=SpaceConfig(
        name=space, channels=channels, settings={"cells_per_stage": cells,
                                                 "layers": max(cells, 3)}),
                       search=SearchConfig(batch_size=batch, precision=precision))


FIELDS = {"space", "order", "batch", "population", "precision", "channels_last", "compiled",
          "device", "median_ms", "peak_mem_mib"}


@pytest.mark.parametrize("order", [1, 2])
def test_iteration_record(order: int) -> None:
    record = measure_iteration(_bench(), order=order, device="cpu", warmup=1, iterations=2)
    assert record.median_ms > 0 and record.peak_mem_mib > 0 and record.order == order
    assert FIELDS <= set(record.to_dict())


@pytest.mark.parametrize("space, cells", [("nb201", 1), ("darts", 3)])
def test_population_iteration_record(space: str, cells: int) -> None:
    record = measure_iteration(_bench(space=space, cells=cells, batch=4), order=1,
                               device="cpu", warmup=0, iterations=1, population=3)
    assert record.population == 3 and record.member_iterations_per_s == pytest.approx(
        3000 / record.median_ms)


def test_bf16_iteration_record() -> None:
    record = measure_iteration(_bench(batch=4, precision="bf16"), order=1, device="cpu",
                               warmup=0, iterations=1, population=2)
    assert record.precision == "bf16" and record.median_ms > 0


def test_epoch_record_gives_trials_per_hour(tiny_config: StudyConfig) -> None:
    record = measure_epoch(tiny_config, device="cpu")
    assert record.kind == "epoch" and record.trials_per_hour is not None
    assert record.trials_per_hour == pytest.approx(3600 / (record.median_ms / 1000 * 3))


def test_selection_record_times_every_decision_of_one_selection(
        tiny_config: StudyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    decide = PerturbationSelection.decide
    monkeypatch.setattr(PerturbationSelection, "decide",
                        lambda self, *args: made.append(self.done) or decide(self, *args))
    record = measure_selection(tiny_config, device="cpu")
    plan = decisions(get_space(tiny_config.space.name), 0)
    assert made == list(range(len(plan))) and len(made) > 1
    assert record.kind == "selection" and record.median_ms > 0


def test_bench_command_times_a_study_files_selection(study_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert cli.main(["bench", str(study_file), "--order", "1", "--iterations", "1",
                     "--warmup", "0", "--device", "cpu", "--selection",
                     "--json", str(out)]) == 0
    assert [r["kind"] for r in json.loads(out.read_text())] == ["iteration", "selection"]


def test_darts_space_iteration_record() -> None:
    record = measure_iteration(_bench(space="darts", cells=3, batch=4), order=2, device="cpu",
                               warmup=0, iterations=1)
    assert record.space == "darts" and record.median_ms > 0


def test_outer_loop_record() -> None:
    record = measure_outer(dims=3, trials=4, epochs=2, last=2)
    assert record.kind == "outer" and record.median_ms > 0


def test_bench_command_writes_json_from_a_fresh_process(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--order", "1", "--set", "space.channels=4",
                     "--set", "space.cells_per_stage=1", "--set", "search.batch_size=8",
                     "--iterations", "2", "--warmup", "1", "--device", "cpu",
                     "--population", "1", "2", "--memory-format", "channels_last", "nchw",
                     "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    assert [(r["channels_last"], r["population"]) for r in records] == [
        (True, 1), (True, 2), (False, 1), (False, 2)]
    assert all(FIELDS <= set(r) and r["device"] == "cpu" for r in records)
    assert "median ms" in capsys.readouterr().out
    assert cli.main(["bench", "--order", "2", "--population", "2"]) == 2
    code = cli.main(["bench", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
                     "--set", "search.batch_size=8", "--iterations", "1", "--warmup", "0",
                     "--device", "cpu", "--population", "1", "2", "--json", str(out)])
    assert code == 0  # both orders by default: populations are timed at the first alone
    assert [(r["order"], r["population"]) for r in json.loads(out.read_text())] == [
        (1, 1), (1, 2), (2, 1)]
    assert "populations run first order" in capsys.readouterr().out
    assert cli.main(["bench", "--order", "1", "--population", "2", "--mode", "compiled"]) == 2


def test_bench_times_each_variant_in_the_orders_it_has(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--variant", "beta-darts", "drnas", "--set", "space.channels=4",
                     "--set", "space.cells_per_stage=1", "--set", "search.batch_size=8",
                     "--iterations", "1", "--warmup", "0", "--device", "cpu",
                     "--json", str(out)])
    assert code == 0
    assert [(r["variant"], r["order"]) for r in json.loads(out.read_text())] == [
        ("beta-darts", 1), ("beta-darts", 2), ("drnas", 1)]
    assert "drnas: first order only" in capsys.readouterr().out
    assert cli.main(["bench", "--variant", "drnas", "--order", "2"]) == 2
    assert ("--order 2 cannot time drnas (first order only): add --order 1"
            in capsys.readouterr().err)
