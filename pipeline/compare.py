"""Plain DARTS, random starts and CMA-ES starts on one study, at one compute budget."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from optuna.trial import TrialState

from pipeline import figures
from pipeline.config import ConfigError, StudyConfig
from pipeline.data import load_dataset
from pipeline.evaluate import load_table, lookup
from pipeline.objective import counted, epochs_used, trials_used
from pipeline.parallel import run_side_by_side
from pipeline.report import best_trial, front_trials, page_html
from pipeline.spaces import DartsGenotype, NB201Genotype, parse_genotype
from pipeline.study import load_study, run_study
from pipeline.train import TrainSettings, retrain

SUMMARY_COLUMNS = ("best_value", "best_cifar10_test", "best_cifar100_test",
                   "best_imagenet16_test", "params_M", "skip_share", "pool_share",
                   "none_share", "mean_cifar10_test", "max_cifar10_test", "retrain_test_acc",
                   "front_size", "front_hypervolume", "front_mean_cifar10_test", "epochs",
                   "trials")


def methods(config: StudyConfig) -> tuple[str, ...]:
    """Plain DARTS, random starts, and the global sampler: CMA-ES, or for a two-objective
    study (which CMA-ES cannot run) the study file's own sampler."""
    chosen = config.outer.sampler if config.search.multi_objective else "cmaes"
    return tuple(dict.fromkeys(("darts", "random", chosen)))


def method_config(config: StudyConfig, method: str, seed: int | None = None) -> StudyConfig:
    """The study for one method and study seed (the file's by default): its own name
    (``NAME-sSEED-METHOD``) and sampler, and the shared epoch budget (``outer.epoch_budget``,
    or by default what ``outer.n_trials`` unpruned trials cost)."""
    seed = config.seed if seed is None else seed
    epochs = config.outer.epoch_budget or config.outer.n_trials * config.search.epochs
    outer = dataclasses.replace(config.outer, sampler=method, epoch_budget=epochs,
                                n_trials=epochs)  # the epochs bind first
    return dataclasses.replace(config, name=f"{config.name}-s{seed}-{method}", seed=seed,
                               outer=outer)


def method_row(method: str, seed: int, trials: list[Any],
               table: pd.DataFrame | None) -> dict[str, Any]:
    """One method's outcome for one study seed: its best trial by its own objective (never
    by the table), and the spread over its trials."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    row: dict[str, Any] = {"method": method, "seed": seed, "trials": trials_used(trials),
                           "epochs": epochs_used(trials), "complete": len(complete)}
    best = best_trial(trials)
    if best is None:
        return row
    values = [t.values[0] for t in complete]
    attrs = best.user_attrs
    front = front_trials(trials)
    row.update(best_trial=best.number, best_value=best.values[0], cell=attrs["cell"],
               params_M=attrs["eval_params_M"], skip_share=attrs["skip_share"],
               pool_share=attrs["pool_share"], none_share=attrs["none_share"],
               mean_value=statistics.fmean(values),
               std_value=statistics.stdev(values) if len(values) > 1 else 0.0,
               front_size=len(front), front_cells=" ; ".join(t.user_attrs["cell"]
                                                             for t in front))
    if table is not None:
        def score(trial: Any) -> dict[str, float]:
            return lookup(table, NB201Genotype.parse(trial.user_attrs["cell"]))

        for dataset, accuracy in score(best).items():
            row[f"best_{dataset}_test"] = accuracy
        cifar = [score(t)["cifar10"] for t in complete]
        row["mean_cifar10_test"] = statistics.fmean(cifar)
        row["std_cifar10_test"] = statistics.stdev(cifar) if len(cifar) > 1 else 0.0
        row["max_cifar10_test"] = max(cifar)  # what a perfect choice of trial would return
        row["front_mean_cifar10_test"] = statistics.fmean(score(t)["cifar10"] for t in front)
    return row


def hypervolume(points: Sequence[tuple[float, float]], max_params: float) -> float:
    """The area of (accuracy, parameters) space that a set of points dominates, from
    accuracy 0 and parameters ``max_params``, divided by ``max_params``: the best accuracy
    reachable within each parameter limit, averaged over limits up to ``max_params``.
    Larger is better on both objectives at once."""
    ordered = sorted((params, accuracy) for accuracy, params in points if params <= max_params)
    if not ordered or max_params <= 0:
        return 0.0
    area, best = 0.0, 0.0
    for (params, accuracy), (next_params, _) in zip(ordered, [*ordered[1:], (max_params, 0)],
                                                    strict=True):
        best = max(best, accuracy)
        area += best * (next_params - params)
    return area / max_params


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per method: the mean and standard deviation over study seeds of each
    seed's best-trial figures."""
    columns = [c for c in SUMMARY_COLUMNS if c in frame]
    grouped = frame.groupby("method", sort=False)[columns]
    summary = grouped.mean().add_prefix("mean_").join(grouped.std(ddof=1).add_prefix("std_"))
    summary.insert(0, "seeds", frame.groupby("method", sort=False).size())
    return summary.reset_index()


def scored_trials(method: str, seed: int, trials: list[Any],
                  table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each complete trial's validation accuracies beside its cell's table scores, and for
    a CMA-ES trial the generation that sampled it (none for the queued first trial)."""
    rows = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        attrs = trial.user_attrs
        score = lookup(table, NB201Genotype.parse(attrs["cell"]))
        rows.append({"method": method, "seed": seed, "trial": trial.number,
                     "generation": trial.system_attrs.get("cma:generation"),
                     "supernet_acc": attrs["supernet_acc"],
                     "discrete_acc": attrs["discrete_acc"],
                     "trained_acc": attrs.get("trained_acc"), "params_M": attrs["eval_params_M"],
                     **{f"{dataset}_test": accuracy for dataset, accuracy in score.items()}})
    return rows


def objective_agreement(scored: pd.DataFrame) -> pd.DataFrame:
    """How well each validation accuracy a search can see ranks the cells as the table
    does: Spearman correlation with CIFAR-10 test accuracy over all complete trials (a
    signal no trial recorded, such as ``trained`` in studies of another objective, is left
    out)."""
    rows = [{"objective": name,
             "spearman_cifar10": scored[column].corr(scored["cifar10_test"], method="spearman"),
             "trials": int(scored[column].notna().sum())}
            for name, column in (("supernet", "supernet_acc"), ("discrete", "discrete_acc"),
                                 ("trained", "trained_acc"), ("fewer parameters", "params_M"))]
    rows[-1]["spearman_cifar10"] *= -1  # fewer parameters, higher score
    return pd.DataFrame([row for row in rows if row["trials"]])


def cells_by_epoch(method: str, seed: int, trials: list[Any],
                   table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table score of each complete trial's cell after every epoch of its search."""
    rows = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        for epoch, cell in enumerate(trial.user_attrs.get("cell_history", []), start=1):
            genotype = NB201Genotype.parse(cell)
            rows.append({"method": method, "seed": seed, "trial": trial.number,
                         "epoch": epoch, "cell": cell,
                         "cifar10_test": lookup(table, genotype)["cifar10"],
                         **genotype.op_shares()})
    return rows


def incumbents(method: str, seed: int, trials: list[Any],
               table: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The method's pick so far (its best complete trial by its own objective) after each
    trial that counts against the budget, in the order they finished: the inner epochs
    spent by then, the pick's value and, with a table, its cell's CIFAR-10 score."""
    finished = sorted((t for t in trials if counted(t)),
                      key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
    rows, spent, best = [], 0, None
    for done, trial in enumerate(finished, start=1):
        spent += epochs_used([trial])
        best = best_trial([t for t in (best, trial) if t is not None])
        if best is None:
            continue
        row = {"method": method, "seed": seed, "epochs": spent, "trials": done,
               "best_trial": best.number, "best_value": best.values[0]}
        if table is not None:
            cell = NB201Genotype.parse(best.user_attrs["cell"])
            row["best_cifar10_test"] = lookup(table, cell)["cifar10"]
        rows.append(row)
    return rows


def incumbent_curve(picks: pd.DataFrame, every: int, budget: int) -> pd.DataFrame:
    """Each method's pick after every ``every`` inner epochs up to ``budget``: a row per
    method and mark, with the mean over seeds of the pick's value (and table score) at
    that spend. A seed with no complete trial yet at a mark is left out of its mean (and
    a mark no seed has a pick for is empty)."""
    columns = [c for c in ("best_value", "best_cifar10_test") if c in picks]
    rows = []
    for (method, _seed), runs in picks.groupby(["method", "seed"], sort=False):
        for mark in range(every, budget + every, every):
            spent = runs[runs["epochs"] <= mark]
            pick = spent.iloc[-1][columns].to_dict() if not spent.empty else {}
            rows.append({"method": method, "epochs": mark, **pick})
    frame = pd.DataFrame(rows, columns=["method", "epochs", *columns])
    curve = frame.groupby(["method", "epochs"], sort=False)[columns].mean().reset_index()
    order = {method: i for i, method in enumerate(picks["method"].unique())}
    return curve.sort_values(["method", "epochs"], key=lambda c: c.map(order)
                             if c.name == "method" else c, ignore_index=True)


def run_compare(config: StudyConfig, *, root: str | Path, out_dir: Path, device: torch.device,
                storage: str | None = None, seeds: Sequence[int] | None = None,
                only: Sequence[str] | None = None, table_path: str | None = None,
                retrain_epochs: int = 0, progress: bool = False, population: int = 1,
                jobs: int = 1, images: bool = False) -> pd.DataFrame:
    """Run (or resume) the study once per method and study seed (the file's seed by
    default); write ``compare.csv`` (a row per method and seed), ``summary.csv`` (a row per
    method), ``compare.md`` (both as markdown) and ``compare.html``. With a table,
    ``trials.csv`` scores every complete trial's cell and ``epochs.csv`` the cell after
    each of its epochs. With ``images``, each figure is also written as a PNG.

    ``only`` restricts the comparison to some of the methods; ``population`` runs each
    study's trials that many at a time (see ``run_study``); ``jobs`` runs that many of
    the studies side by side, each in its own process (see ``run_side_by_side``); all of
    them live in ``storage`` (by default, a database per study). With ``retrain_epochs``, each
    best cell is also trained from scratch on the study's dataset for that many epochs
    (its space's protocol otherwise) and tested.

    Raises:
        TableError: the ground-truth table is unusable (checked before any search).
        ConfigError: ``only`` names a method this comparison does not run, or ``jobs``
            is below 1.
        StudyError: side by side, some studies failed (the others ran to the end).
    """
    chosen = methods(config)
    unknown = sorted(set(only or ()) - set(chosen))
    if unknown:
        raise ConfigError(f"--methods {unknown[0]!r}: this comparison runs "
                          f"{', '.join(chosen)}")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: it must be >= 1")
    chosen = tuple(m for m in chosen if only is None or m in only)
    table = load_table(table_path) if table_path else None
    runs = [(seed, method, method_config(config, method, seed))
            for seed in (seeds if seeds is not None else [config.seed]) for method in chosen]
    if jobs > 1:
        run_side_by_side([study for _, _, study in runs], jobs=jobs, root=root,
                         storage=storage, device=device, population=population,
                         progress=progress)
    rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    scored: list[dict[str, Any]] = []
    picks: list[dict[str, Any]] = []
    fronts: list[list[tuple[float, float]]] = []
    largest = 0.0  # the largest cell any method found, the hypervolumes' reference
    for seed, method, method_study in runs:
        if jobs == 1:
            run_study(method_study, root=root, storage=storage, device=device,
                      progress=progress, population=population)
        trials = load_study(method_study.name, root=root, storage=storage).get_trials(
            deepcopy=False)
        row = method_row(method, seed, trials, table)
        if retrain_epochs and "cell" in row:
            checkpoint = out_dir / f"retrain-s{seed}-{method}" / "ckpt.pt"
            row["retrain_test_acc"] = _retrain(method_study, row["cell"], retrain_epochs,
                                               device, checkpoint, progress)
        if table is not None and config.space.name == "nb201":
            epoch_rows += cells_by_epoch(method, seed, trials, table)
            scored += scored_trials(method, seed, trials, table)
        rows.append(row)
        picks += incumbents(method, seed, trials, table)
        fronts.append([(t.values[0], t.user_attrs["eval_params_M"])
                       for t in front_trials(trials)])
        largest = max([largest, *(t.user_attrs["eval_params_M"] for t in trials
                                  if t.state == TrialState.COMPLETE)])
    frame = pd.DataFrame(rows)
    frame["front_hypervolume"] = [hypervolume(front, largest) for front in fronts]
    _write(config, frame, pd.DataFrame(epoch_rows), pd.DataFrame(scored), pd.DataFrame(picks),
           out_dir, images=images)
    return frame


def _write(config: StudyConfig, frame: pd.DataFrame, epochs: pd.DataFrame,
           scored: pd.DataFrame, picks: pd.DataFrame, out_dir: Path, *, images: bool) -> None:
    """The comparison's tables (CSV and markdown) and its page of figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(frame)
    frame.to_csv(out_dir / "compare.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    budget = method_config(config, "darts").outer.epoch_budget
    sections = [("Methods side by side", figures.compare_figure(frame))]
    curve = pd.DataFrame()
    if not picks.empty:
        picks.to_csv(out_dir / "incumbents.csv", index=False)
        curve = incumbent_curve(picks, config.search.epochs, budget)
        sections.append(("The methods' picks as their budget is spent",
                         figures.incumbent_figure(curve)))
    agreement = objective_agreement(scored) if not scored.empty else pd.DataFrame()
    if not scored.empty:
        scored.to_csv(out_dir / "trials.csv", index=False)
    if not epochs.empty:
        epochs.to_csv(out_dir / "epochs.csv", index=False)
        sections.append(("The cells' table score after each epoch",
                         figures.epoch_score_figure(epochs)))
    seeds = ", ".join(map(str, frame["seed"].unique()))
    settings = [("study", config.name), ("seeds", seeds),
                ("epoch budget per method and seed", str(budget))]
    (out_dir / "compare.html").write_text(page_html(f"compare {config.name}", settings,
                                                    sections), encoding="utf-8")
    (out_dir / "compare.md").write_text(
        f"Study `{config.name}`; seeds {seeds}; {budget} inner epochs per method and seed.\n\n"
        + markdown_tables(frame, summary, epochs, agreement, curve), encoding="utf-8")
    if images:  # last: the tables are written even where images cannot be
        figures.write_images(sections, out_dir)


def markdown_tables(frame: pd.DataFrame, summary: pd.DataFrame, epochs: pd.DataFrame,
                    agreement: pd.DataFrame, curve: pd.DataFrame) -> str:
    """The comparison as markdown: a row per method and seed, the mean and spread over
    seeds, each method's pick at four points of its budget, and (with a table) how well
    each objective ranks the cells and the cells' mean table score after each epoch."""
    per_seed = [("method", "method", "{}"), ("seed", "seed", "{}"),
                ("best_value", "objective", "{:.2f}"), ("cell", "cell", "{}"),
                ("params_M", "params (M)", "{:.3f}"), ("skip_share", "skip", "{:.2f}"),
                ("pool_share", "pool", "{:.2f}"), ("none_share", "none", "{:.2f}"),
                ("best_cifar10_test", "CIFAR-10", "{:.2f}"),
                ("best_cifar100_test", "CIFAR-100", "{:.2f}"),
                ("best_imagenet16_test", "ImageNet16", "{:.2f}"),
                ("mean_cifar10_test", "CIFAR-10, all its cells", "{:.2f}"),
                ("max_cifar10_test", "CIFAR-10, best of its cells", "{:.2f}"),
                ("trials", "trials", "{}"), ("epochs", "epochs", "{}")]
    text = "Best trial of each method and seed (by its own validation objective), scored " \
        "by the table:\n\n" + _markdown(frame, per_seed)
    spread = [("method", "method", "{}"), ("seeds", "seeds", "{}")] + [
        (f"{stat}_{column}", f"{label} {stat}", "{:.2f}" if column != "params_M" else "{:.3f}")
        for column, label in (("best_value", "objective"), ("best_cifar10_test", "CIFAR-10"),
                              ("best_cifar100_test", "CIFAR-100"),
                              ("best_imagenet16_test", "ImageNet16"),
                              ("max_cifar10_test", "CIFAR-10, best of its cells"),
                              ("params_M", "params (M)"), ("skip_share", "skip"),
                              ("none_share", "none"))
        for stat in ("mean", "std")]
    text += "\nMean and standard deviation over seeds:\n\n" + _markdown(summary, spread)
    if not curve.empty:
        text += _pick_tables(curve)
    if not agreement.empty:
        text += ("\nSpearman correlation of what a search can see with the table's CIFAR-10 "
                 "test accuracy, over every complete trial:\n\n" + _markdown(agreement, [
                     ("objective", "validation signal", "{}"),
                     ("spearman_cifar10", "Spearman rho", "{:.2f}"), ("trials", "trials", "{}")]))
    if not epochs.empty:
        curve = epochs.groupby(["method", "epoch"], sort=False)["cifar10_test"].mean().unstack()
        curve = curve.reset_index().rename(columns=lambda c: f"epoch {c}" if c != "method"
                                           else c)
        columns = [("method", "method", "{}")] + [(c, c, "{:.2f}") for c in curve.columns[1:]]
        text += ("\nCIFAR-10 table score of the cell a search would return after each epoch "
                 "(mean over complete trials and seeds):\n\n" + _markdown(curve, columns))
    return text


def _pick_tables(curve: pd.DataFrame) -> str:
    """The pick's objective (and table score) after each quarter of the budget, rounded
    to whole searches."""
    marks = sorted(curve["epochs"].unique())
    every, budget = marks[0], marks[-1]
    step = max(1, round(budget / 4 / every)) * every
    shown = sorted({m for m in marks if m % step == 0} | {budget})
    text = ""
    for column, what in (("best_value", "Objective"),
                         ("best_cifar10_test", "CIFAR-10 table score")):
        if column not in curve:
            continue
        wide = curve[curve["epochs"].isin(shown)].pivot(index="method", columns="epochs",
                                                        values=column)
        wide = wide.reindex(curve["method"].unique()).reset_index()
        wide.columns = ["method", *(f"after {m} epochs" for m in wide.columns[1:])]
        text += (f"\n{what} of each method's pick (its best trial so far) as its budget is "
                 "spent (mean over seeds):\n\n" + _markdown(
                     wide, [("method", "method", "{}"),
                            *((c, c, "{:.2f}") for c in wide.columns[1:])]))
    return text


def _markdown(frame: pd.DataFrame, columns: list[tuple[str, str, str]]) -> str:
    present = [(key, label, fmt) for key, label, fmt in columns if key in frame]
    lines = ["| " + " | ".join(label for _, label, _ in present) + " |",
             "|" + " --- |" * len(present)]
    for _, row in frame.iterrows():
        cells = ("" if pd.isna(row[key]) else fmt.format(row[key]).replace("|", "\\|")
                 for key, _, fmt in present)  # NB201 cells are full of pipes
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
