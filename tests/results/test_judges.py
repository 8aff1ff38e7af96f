"""The judges' benchmark scores a judge by what it would pick: on made-up measurements
whose every signal orders the cells as the table does, those judges lose nothing and
correlate perfectly, a reversed one loses, and successive halving's replay spends the
epochs its rungs say."""

from __future__ import annotations

import pytest

from pipeline.results.judges import SCHEDULES, Measurements, score_judges
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
    halving = scores.loc["halving 3/9/27 by val"]
    # five candidates train to 3 epochs, two of them on to 9, and then one is left
    assert halving["epochs_per_candidate_5"] == pytest.approx((3 * 3 + 2 * 9) / 5)
    assert halving["regret_5"] == 0 and halving["seconds_per_candidate_5"] > 0
    full = scores.loc["val after 27 epochs"]
    assert full["epochs_per_candidate_5"] == 27
