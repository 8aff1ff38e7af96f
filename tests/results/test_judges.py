"""The judges' benchmark scores a judge by what it would pick: on made-up measurements
whose every signal orders the cells as the table does, those judges lose nothing and
correlate perfectly, a reversed one loses, and successive halving's replay spends the
epochs its rungs say."""

from __future__ import annotations

import pytest

from pipeline.results.judges import SCHEDULES, Judge, Measurements, judges, score_judges
from pipeline.search.proxies import PROXIES

CELLS = [f"cell{k:02d}" for k in range(12)]
TRUTH = {cell: 90.0 + 0.25 * k for k, cell in enumerate(CELLS)}  # cell11 is the best


def _measured() -> Measurements:
    """Curves, proxies and params that rank the cells as the table does; the trained
    objective ranks them backwards."""
    curves = {cell: {s: [[TRUTH[cell] * e / s, 100.0 - TRUTH[cell] + e, 1.0]
                         for e in range(1, s + 1)] for s in SCHEDULES} for cell in CELLS}
    proxies = {cell: {name: [TRUTH[cell], 0.01] for name in PROXIES} for cell in CELLS}
    trained = {cell: [200.0 - TRUTH[cell], 2.0] for cell in CELLS}
    return Measurements(curves=curves, trained=trained, proxies=proxies)


def test_judges_that_follow_the_table_lose_nothing_and_a_reversed_one_loses() -> None:
    scores = score_judges(_measured(), TRUTH).set_index("judge")
    faithful = scores.drop(index="trained objective (10 epochs, today's)")
    assert (faithful[["regret_5", "regret_10"]] == 0).all().all()
    ranked = faithful.dropna(subset=["spearman"])
    assert ranked["spearman"].tolist() == pytest.approx([1.0] * len(ranked))
    assert ranked["precision_at_3"].tolist() == [1.0] * len(ranked)
    reversed_ = scores.loc["trained objective (10 epochs, today's)"]
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["regret_5"] > 0
    assert reversed_["epochs_per_candidate_5"] == 10


def test_halving_replay_spends_the_epochs_of_its_rungs() -> None:
    scores = score_judges(_measured(), TRUTH).set_index("judge")
    halving = scores.loc["halving 3/9/27: val"]
    # five candidates train to 3 epochs, two of them on to 9, and then one is left
    assert halving["epochs_per_candidate_5"] == pytest.approx((3 * 3 + 2 * 9) / 5)
    assert halving["regret_5"] == 0 and halving["seconds_per_candidate_5"] > 0
    full = scores.loc["all trained 27 epochs: val"]
    assert full["epochs_per_candidate_5"] == 27


def _judge(measured: Measurements, name: str) -> Judge:
    return next(judge for judge in judges(measured) if judge.name == name)


def _made_up(val: dict[str, float], params: dict[str, float]) -> Measurements:
    """Curves that end on ``val``, with parameter counts ``params``."""
    return Measurements(
        curves={cell: {s: [[acc, 1.0, 1.0]] * s for s in SCHEDULES} for cell, acc in val.items()},
        trained={cell: [acc, 1.0] for cell, acc in val.items()},
        proxies={cell: {name: [params[cell], 0.01] for name in PROXIES} for cell in val})


def test_a_rank_average_is_taken_among_the_candidates_drawn() -> None:
    # over all three cells B ranks best (val 2nd, params 1st); between A and B alone the
    # two tie, and the tie goes to the cell's name: A. The selection ranks that way too.
    measured = _made_up({"cellA": 80.0, "cellB": 70.0, "cellC": 60.0},
                        {"cellA": 1.0, "cellB": 3.0, "cellC": 2.0})
    judge = _judge(measured, "all trained 27 epochs: val+params")
    assert judge.pick(["cellA", "cellB", "cellC"])[0] == "cellB"
    assert judge.pick(["cellA", "cellB"]) == ("cellA", 2 * 27, 2 * 27)


def test_the_parameter_count_drops_the_smaller_half_before_any_training() -> None:
    measured = _made_up({"cellA": 80.0, "cellB": 70.0, "cellC": 60.0, "cellD": 99.0},
                        {"cellA": 1.0, "cellB": 3.0, "cellC": 2.0, "cellD": 0.5})
    judge = _judge(measured, "params drops half, rest trained 27 epochs: val")
    assert judge.pick(["cellA", "cellB", "cellC", "cellD"]) == ("cellB", 2 * 27, 2 * 27)
    # of three, one is dropped; of two, none (the score never chooses on its own)
    assert judge.pick(["cellA", "cellB", "cellD"])[0] == "cellA"
    assert judge.pick(["cellC", "cellD"])[0] == "cellD"
