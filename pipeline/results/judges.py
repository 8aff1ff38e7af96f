"""A benchmark of judges (``globaldarts bench --judges CELLS.csv``): how well each way of
choosing among cells picks the cell NAS-Bench-201's table rates best, and at what cost.

The expensive measurements run once per cell and are kept as JSON under the output folder
(a rerun takes them up): each cell's training curve at the selection's size under two
schedules (a validation accuracy and a training loss after every epoch), the trial
objective ``trained`` as a study computes it today, and the zero-cost scores. Every judge
is then scored from them: successive halving by replaying its rungs on the curves (a
cell's training does not depend on the other candidates), the others by their score per
cell. The table scores the judges and is never read by one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from pipeline.config import ConfigError, StudyConfig, to_dict, with_overrides
from pipeline.outer.select import dropped_count, kept, ranking
from pipeline.results import figures
from pipeline.results.report import page_html
from pipeline.search.data import prepare_data
from pipeline.search.judge import (
    JudgeData,
    cell_key,
    judge_data,
    train_rung,
    trained_accuracy,
    zero_cost_score,
)
from pipeline.search.proxies import PROXIES
from pipeline.spaces import Genotype, parse_genotype

SCHEDULES = (9, 27)  # the epochs of the two training schedules a curve is measured under
REDUCTION = 3
DRAWS = 2000  # random candidate sets per draw size
DRAW_SIZES = (5, 10)
# the [select] settings a measurement depends on (the rest choose among measurements)
MEASURED_SELECT = ("channels", "cells", "train_images", "valid_images", "batch_size", "lr")
ZERO_COST_DROP = 0.5  # the share of candidates the parameter count drops before training


def read_cells(path: str | Path) -> list[Genotype]:
    """The benchmark's cells: the ``cell`` column of a CSV."""
    return [parse_genotype(cell) for cell in pd.read_csv(path)["cell"]]


@dataclass(frozen=True, slots=True)
class Measurements:
    """Per cell: its curve under each schedule (epoch -> (val %, train loss, seconds)),
    its trained objective (accuracy %, seconds) and its zero-cost scores (score,
    seconds)."""

    curves: dict[str, dict[int, list[list[float]]]]
    trained: dict[str, list[float]]
    proxies: dict[str, dict[str, list[float]]]
    trained_epochs: int = 10  # the trained objective's (``search.train_epochs``)


def measure(cells: Sequence[Genotype], config: StudyConfig, *, out: Path,
            device: torch.device, progress: bool = False) -> Measurements:
    """Measure every cell (what a folder ``out`` already holds is read back, not
    measured again)."""
    _check_settings(out, config)
    judged, search = judge_data(config, device), prepare_data(config, device)
    curves, trained, proxies = {}, {}, {}
    for genotype in tqdm(cells, desc="cells", unit="cell", disable=not progress):
        cell, folder = genotype.to_str(), out / cell_key(genotype.to_str())
        proxies[cell] = {name: _kept(folder / f"{name}.json", partial(_timed, partial(
            zero_cost_score, name, genotype, judged, config.select, seed=config.seed)))
            for name in PROXIES}
        trained[cell] = _kept(folder / "trained.json", partial(_timed, partial(
            trained_accuracy, config, search, genotype, seed=config.seed)))
        curves[cell] = {schedule: _kept(folder / f"curve-{schedule}.json", partial(
            _curve, genotype, judged, _scheduled(config, schedule), folder / f"ckpt-{schedule}"))
            for schedule in SCHEDULES}
    return Measurements(curves=curves, trained=trained, proxies=proxies,
                        trained_epochs=config.search.train_epochs)


def _check_settings(out: Path, config: StudyConfig) -> None:
    """Record in ``out`` the settings its measurements are made under, or refuse those
    of other settings.

    Raises:
        ConfigError: ``out`` holds measurements made under other settings.
    """
    plain = to_dict(config)
    select = {key: plain["select"][key] for key in MEASURED_SELECT}
    settings = {"seed": config.seed, "data": plain["data"], "space": plain["space"],
                "search": plain["search"], "select": select, "schedules": list(SCHEDULES)}
    path = out / "settings.json"
    if path.exists() and json.loads(path.read_text(encoding="utf-8")) != settings:
        raise ConfigError(f"{out} holds measurements made under other settings ({path}); "
                          "give another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2), encoding="utf-8")


def _scheduled(config: StudyConfig, schedule: int) -> StudyConfig:
    return with_overrides(config, [f"select.rungs=[{schedule}]", "select.repeats=1"])


def _kept(path: Path, compute: Callable[[], Any]) -> Any:
    """The JSON at ``path``, or ``compute()``'s result, written there first."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return value


def _timed(compute: Callable[[], float]) -> list[float]:
    started = time.perf_counter()
    value = compute()
    return [value, time.perf_counter() - started]


def _curve(genotype: Genotype, data: JudgeData, config: StudyConfig, folder: Path
           ) -> list[list[float]]:
    """The cell's validation accuracy, summed training loss and seconds after each epoch
    of the schedule, each epoch resumed from the last's checkpoint and its point kept
    (``points.json``), so that a curve broken off goes on where it stopped."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / "points.json"
    points = json.loads(kept.read_text(encoding="utf-8")) if kept.exists() else []
    for epoch in range(len(points) + 1, config.select.rungs[-1] + 1):
        started = time.perf_counter()
        result = train_rung(genotype, data, config.select, epochs=epoch, seeds=[config.seed],
                            folder=folder)
        points.append([result.val_acc, result.train_loss_sum, time.perf_counter() - started])
        kept.write_text(json.dumps(points), encoding="utf-8")
    return points


# -- scoring ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Judge:
    """A way of choosing: ``pick(cells)`` returns its choice among ``cells`` and the
    epochs and seconds it spent; ``scores`` rank every cell (None for successive
    halving, which ranks only as far as its rungs go). Judges of one ``family`` differ by
    their ``rule`` (a rank rule, or a zero-cost score's name)."""

    family: str
    rule: str
    pick: Callable[[Sequence[str]], tuple[str, float, float]]
    scores: Mapping[str, float] | None

    @property
    def name(self) -> str:
        return f"{self.family}: {self.rule}" if self.rule else self.family


def judges(measured: Measurements) -> list[Judge]:
    """Every judge the benchmark compares."""
    found: list[Judge] = []
    trained = {cell: value[0] for cell, value in measured.trained.items()}
    trained_s = {cell: value[1] for cell, value in measured.trained.items()}
    epochs = measured.trained_epochs
    found.append(_scored(f"trained objective ({epochs} epochs, today's)", "", trained,
                         epochs=epochs, seconds=trained_s))
    for name in PROXIES:
        scores = {cell: values[name][0] for cell, values in measured.proxies.items()}
        seconds = {cell: values[name][1] for cell, values in measured.proxies.items()}
        found.append(_scored("zero-cost", name, scores, epochs=0, seconds=seconds))
    for schedule in SCHEDULES:
        found += _curve_judges(measured, schedule)
    return found


def _curve_judges(measured: Measurements, schedule: int) -> list[Judge]:
    """The judges a schedule's curves give: every candidate trained the whole schedule
    (ranked by validation accuracy, training-loss sum, or both, or validation accuracy
    with parameters), the half with more parameters trained so, and successive halving
    over rungs ``schedule / 9, / 3, / 1``."""
    curves = {cell: by_schedule[schedule] for cell, by_schedule in measured.curves.items()}
    params = {cell: values["params"][0] for cell, values in measured.proxies.items()}
    seconds = {cell: sum(point[2] for point in curve) for cell, curve in curves.items()}
    results = {cell: {"val": curve[-1][0], "train-loss": curve[-1][1],
                      "params": params[cell]} for cell, curve in curves.items()}
    found = []
    for rank in (["val"], ["train-loss"], ["val", "train-loss"], ["val", "params"]):
        found.append(_ranked(f"all trained {schedule} epochs", results, rank,
                             epochs=schedule, seconds=seconds))
    for rank in (["val"], ["val", "params"]):
        found.append(_ranked(f"params drops half, rest trained {schedule} epochs", results,
                             rank, epochs=schedule, seconds=seconds, drop=ZERO_COST_DROP))
    rungs = [schedule // 9, schedule // 3, schedule]
    for rank in (["val"], ["val", "train-loss"], ["val", "params"]):
        found.append(Judge(
            family=f"halving {'/'.join(map(str, rungs))}", rule="+".join(rank),
            pick=partial(_halving, curves=curves, params=params, rungs=rungs, rank=rank),
            scores=None))
    return found


def _ranked(family: str, results: Mapping[str, Mapping[str, float]], rank: Sequence[str], *,
            epochs: float, seconds: Mapping[str, float], drop: float = 0.0) -> Judge:
    """A judge that trains the candidates (all but the ``drop`` share with the fewest
    parameters) and picks by ``ranking`` among them, as the selection stage does: a rank
    average depends on the other candidates. Its scores, for the correlations, are the
    ranking of the whole set."""
    order = ranking(results, rank)

    def pick(cells: Sequence[str]) -> tuple[str, float, float]:
        by_params = sorted(cells, key=lambda cell: (results[cell]["params"], cell))
        trained = by_params[dropped_count(len(cells), drop):]
        best = ranking({cell: results[cell] for cell in trained}, rank)[0]
        return best, epochs * len(trained), sum(seconds[cell] for cell in trained)

    return Judge(family=family, rule="+".join(rank), pick=pick,
                 scores={cell: -float(position) for position, cell in enumerate(order)})


def _scored(family: str, rule: str, scores: Mapping[str, float], *, epochs: float,
            seconds: Mapping[str, float]) -> Judge:
    """A judge that picks the highest score (ties by the cell), at ``epochs`` and the
    measured seconds per candidate."""
    def pick(cells: Sequence[str]) -> tuple[str, float, float]:
        best = min(cells, key=lambda cell: (-scores[cell], cell))
        return best, epochs * len(cells), sum(seconds[cell] for cell in cells)

    return Judge(family=family, rule=rule, pick=pick, scores=scores)


def _halving(cells: Sequence[str], *, curves: Mapping[str, list[list[float]]],
             params: Mapping[str, float], rungs: Sequence[int], rank: Sequence[str]
             ) -> tuple[str, float, float]:
    """Successive halving over ``cells`` replayed on their curves, as the selection stage
    runs it: its pick, and the epochs and seconds its candidates trained."""
    entrants, reached = list(cells), dict.fromkeys(cells, 0)
    for epochs in rungs:
        if len(entrants) <= 1:
            break
        for cell in entrants:
            reached[cell] = epochs
        results = {cell: {"val": curves[cell][epochs - 1][0],
                          "train-loss": curves[cell][epochs - 1][1],
                          "params": params[cell]} for cell in entrants}
        keep = 1 if epochs == rungs[-1] else kept(len(entrants), REDUCTION)
        entrants = ranking(results, rank)[:keep]
    seconds = sum(sum(point[2] for point in curves[cell][:reached[cell]]) for cell in cells)
    return entrants[0], float(sum(reached.values())), seconds


def score_judges(measured: Measurements, truth: Mapping[str, float], *,
                 seed: int = 0) -> pd.DataFrame:
    """Each judge's rank correlations with the table (whole set and its better half),
    precision at top 3, mean regret over random draws of 5 and of 10 candidates, and its
    cost per candidate (epochs, seconds)."""
    cells = sorted(truth)
    rng = np.random.default_rng(seed)
    draws = {size: [[str(c) for c in rng.choice(cells, size, replace=False)]
                    for _ in range(DRAWS)] for size in DRAW_SIZES if size <= len(cells)}
    top_half = sorted(cells, key=lambda cell: -truth[cell])[:len(cells) // 2]
    rows = []
    for judge in judges(measured):
        row: dict[str, Any] = {"judge": judge.name, "family": judge.family,
                               "rule": judge.rule, **_correlations(judge, truth, cells,
                                                                     top_half)}
        for size in DRAW_SIZES:  # a draw larger than the set is left empty (NaN)
            picks = [judge.pick(draw) for draw in draws.get(size, [])]
            row[f"regret_{size}"] = _mean([max(truth[c] for c in draw) - truth[pick[0]]
                                           for draw, pick in zip(draws.get(size, []), picks,
                                                                 strict=True)])
            row[f"epochs_per_candidate_{size}"] = _mean([p[1] / size for p in picks])
            row[f"seconds_per_candidate_{size}"] = _mean([p[2] / size for p in picks])
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _correlations(judge: Judge, truth: Mapping[str, float], cells: Sequence[str],
                  top_half: Sequence[str]) -> dict[str, float]:
    if judge.scores is None:
        return {}
    found = {}
    for label, subset in (("", cells), ("_top_half", top_half)):
        ours, theirs = [judge.scores[c] for c in subset], [truth[c] for c in subset]
        found[f"spearman{label}"] = float(stats.spearmanr(ours, theirs).statistic)
        found[f"kendall{label}"] = float(stats.kendalltau(ours, theirs).statistic)
    best = set(sorted(cells, key=lambda c: -truth[c])[:3])
    chosen = sorted(cells, key=lambda c: (-judge.scores[c], c))[:3]  # type: ignore[index]
    found["precision_at_3"] = len(best & set(chosen)) / 3
    return found


def write_judges(scores: pd.DataFrame, out: Path, *, images: bool = False) -> Path:
    """``judges.csv`` and a page with the regret-against-cost figure and the table (with
    ``images``, the figure as a PNG too); returns the page."""
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "judges.csv", index=False)
    sections: list[tuple[str, Any]] = [("Regret against cost", figures.judges_figure(scores)),
                                       ("Judges", scores.round(3).to_html(index=False))]
    page = out / "index.html"
    page.write_text(page_html("judges", [("cells", str(len(scores)))], sections),
                    encoding="utf-8")
    if images:
        figures.write_images(sections[:1], out)
    return page
