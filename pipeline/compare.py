"""Plain DARTS, random starts and CMA-ES starts on one study, at one compute budget."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from optuna.trial import TrialState

from pipeline import figures
from pipeline.config import StudyConfig
from pipeline.data import load_dataset
from pipeline.evaluate import load_table, lookup
from pipeline.objective import epochs_used, trials_used
from pipeline.spaces import DartsGenotype, NB201Genotype, parse_genotype
from pipeline.study import load_study, run_study
from pipeline.train import TrainSettings, retrain

METHODS = ("darts", "random", "cmaes")


def method_config(config: StudyConfig, method: str) -> StudyConfig:
    """The study for one method: its own name and sampler, and the shared epoch budget
    (``outer.epoch_budget``, or by default what ``outer.n_trials`` unpruned trials cost)."""
    epochs = config.outer.epoch_budget or config.outer.n_trials * config.search.epochs
    outer = dataclasses.replace(config.outer, sampler=method, epoch_budget=epochs,
                                n_trials=epochs)  # the epochs bind first
    return dataclasses.replace(config, name=f"{config.name}-{method}", outer=outer)


def method_row(method: str, trials: list[Any], table: pd.DataFrame | None) -> dict[str, Any]:
    """One method's outcome: its best trial by its own objective, and the spread."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    row: dict[str, Any] = {"method": method, "trials": trials_used(trials),
                           "epochs": epochs_used(trials), "complete": len(complete)}
    if not complete:
        return row
    best = max(complete, key=lambda t: t.value or 0.0)
    values = [t.value or 0.0 for t in complete]
    attrs = best.user_attrs
    row.update(best_trial=best.number, best_value=best.value, cell=attrs["cell"],
               params_M=attrs["eval_params_M"], skip_share=attrs["skip_share"],
               pool_share=attrs["pool_share"], none_share=attrs["none_share"],
               mean_value=statistics.fmean(values),
               std_value=statistics.stdev(values) if len(values) > 1 else 0.0)
    if table is not None:
        scores = [lookup(table, NB201Genotype.parse(t.user_attrs["cell"])).test_acc
                  for t in complete]
        best_score = lookup(table, NB201Genotype.parse(attrs["cell"])).test_acc
        for dataset, accuracy in best_score.items():
            row[f"best_{dataset}_test"] = accuracy
        cifar = [s["cifar10"] for s in scores]
        row["mean_cifar10_test"] = statistics.fmean(cifar)
        row["std_cifar10_test"] = statistics.stdev(cifar) if len(cifar) > 1 else 0.0
    return row


def run_compare(config: StudyConfig, *, root: str | Path, out_dir: Path, device: torch.device,
                table_path: str | None = None, retrain_epochs: int = 0,
                progress: bool = False) -> pd.DataFrame:
    """Run (or resume) the study once per method; write ``compare.csv`` and ``compare.html``.

    With ``retrain_epochs``, each method's best cell is also trained from scratch on the
    study's dataset for that many epochs (its space's protocol otherwise) and tested.

    Raises:
        TableError: the ground-truth table is unusable (checked before any search).
    """
    table = load_table(table_path) if table_path else None
    rows = []
    for method in METHODS:
        method_study = method_config(config, method)
        run_study(method_study, root=root, device=device, progress=progress)
        trials = load_study(method_study.name, root=root).get_trials(deepcopy=False)
        row = method_row(method, trials, table)
        if retrain_epochs and "cell" in row:
            row["retrain_test_acc"] = _retrain(config, row["cell"], retrain_epochs, device,
                                               out_dir / f"retrain-{method}" / "ckpt.pt",
                                               progress)
        rows.append(row)
    frame = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "compare.csv", index=False)
    figures.compare_figure(frame).write_html(out_dir / "compare.html", include_plotlyjs=True)
    return frame


def _retrain(config: StudyConfig, cell: str, epochs: int, device: torch.device,
             checkpoint: Path, progress: bool) -> float:
    genotype = parse_genotype(cell)
    protocol = TrainSettings.darts() if isinstance(genotype, DartsGenotype) else TrainSettings()
    settings = dataclasses.replace(protocol, epochs=epochs,
                                   crop_padding=config.data.crop_padding, flip=config.data.flip)
    train, test = load_dataset(config.data.dataset, config.data.root,
                               download=config.data.download)
    return retrain(genotype, train, test, settings=settings, device=device,
                   checkpoint=checkpoint, seed=config.seed, progress=progress).test_acc
