"""A comparison's results: each method's pick per seed, scored by the ground truth where
there is one, its spread over seeds, how the picks move as the budget is spent, and how
well each validation signal ranks the cells."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from pipeline.checkpoint import atomic_write
from pipeline.config import ConfigError, StudyConfig
from pipeline.outer.budget import counted, epochs_used, first_searches, trials_used
from pipeline.outer.methods import Comparison, MethodStudy, method_config
from pipeline.outer.picks import baseline_trial, best_trial, front_trials
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.sampling import SAMPLERS
from pipeline.outer.select import candidates, selection_epochs
from pipeline.outer.study import load_study
from pipeline.results import figures
from pipeline.results.ground_truth import TABLE_DATASETS, lookup
from pipeline.results.report import page_html
from pipeline.results.retrain import retrain_cell
from pipeline.results.tables import markdown_tables
from pipeline.search.build import describe, search_epochs
from pipeline.spaces import Genotype, parse_genotype

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SUMMARY_COLUMNS = ("cut_off", "best_value", *(f"best_{name}_test" for name in TABLE_DATASETS),
                   "judge_cifar10_test", "judge_regret", "select_epochs", "select_budget",
                   "total_epochs", "first_best_cifar10_test", "first_max_cifar10_test",
                   "first_judge_cifar10_test", "first_judge_regret", "first_total_epochs",
                   "params_M", "skip_share", "pool_share",
                   "none_share", "mean_cifar10_test", "max_cifar10_test", "retrain_test_acc",
                   "front_size", "front_hypervolume", "front_mean_cifar10_test", "epochs",
                   "trials")


def method_row(method: str, seed: int, trials: Sequence[Any],
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
    record = TrialRecord.of(best)
    front = front_trials(trials)
    row["cut_off"] = sum(not _genotype(t).connected for t in complete)
    row["pick_from_centre"] = _from_centre(method, trials, {best.number})
    row.update(best_trial=best.number, best_value=best.values[0], cell=record.cell,
               params_M=record.eval_params_M, skip_share=record.skip_share,
               pool_share=record.pool_share, none_share=record.none_share,
               mean_value=statistics.fmean(values),
               std_value=statistics.stdev(values) if len(values) > 1 else 0.0,
               front_size=len(front), front_cells=" ; ".join(str(TrialRecord.of(t).cell)
                                                             for t in front))
    if table is not None:
        def score(trial: Any) -> dict[str, float]:
            return lookup(table, _genotype(trial))

        for dataset, accuracy in score(best).items():
            row[f"best_{dataset}_test"] = accuracy
        cifar = [score(t)["cifar10"] for t in complete]
        row["mean_cifar10_test"] = statistics.fmean(cifar)
        row["std_cifar10_test"] = statistics.stdev(cifar) if len(cifar) > 1 else 0.0
        row["max_cifar10_test"] = max(cifar)  # what a perfect choice of trial would return
        row["front_mean_cifar10_test"] = statistics.fmean(score(t)["cifar10"] for t in front)
    return row


def study_row(study: MethodStudy, trials: Sequence[Any], *, root: str | Path,
              storage: str | None, table: pd.DataFrame | None,
              first: int | None = None) -> dict[str, Any]:
    """A method's study in one row: its pick and spread (``method_row``), its epochs, the
    judge's pick (``judge_row``) and the total of search and selection epochs; with
    ``first``, the same as its first ``first`` searches left it, in ``first_`` columns
    (the judge's, where a selection among their cells ran)."""
    config = study.config
    row = {"variant": config.search.variant, "selection": config.search.selection,
           "arch_lr": config.search.arch_lr, "start_space": config.start.alpha_space,
           **method_row(study.method, study.seed, trials, table),
           **extra_epochs(config, trials),
           **judge_row(study, root=root, storage=storage, table=table)}
    if first is not None:
        early = {**method_row(study.method, study.seed, first_searches(trials, first), table),
                 **judge_row(study, root=root, storage=storage, table=table, searches=first)}
        row["first_searches"] = first
        row.update({f"first_{key}": early.get(key) for key in FIRST_COLUMNS})
    for prefix in ("", "first_") if first is not None else ("",):
        if row.get(f"{prefix}select_budget") is not None:
            row[f"{prefix}total_epochs"] = row[f"{prefix}epochs"] + row[f"{prefix}select_budget"]
    return row


# What ``study_row`` records of a study's first searches.
FIRST_COLUMNS = ("best_cifar10_test", "max_cifar10_test", "mean_cifar10_test",
                 "pick_from_centre", "params_M", "cut_off", "epochs", "judge_cifar10_test",
                 "judge_regret", "judge_from_centre", "judge_params_M", "select_budget")


def _from_centre(method: str, trials: Sequence[FrozenTrial],
                 picked: Collection[int]) -> bool | None:
    """Whether a pick is the centre trial: plain DARTS' own start among the starts that a
    random or CMA-ES study proposed. None for a plain study, every search of which starts
    there (each with its own weight initialisation)."""
    if SAMPLERS[method].fixed_start:
        return None
    centre = baseline_trial(trials)
    return centre is not None and centre.number in picked


def judge_row(study: MethodStudy, *, root: str | Path, storage: str | None,
              table: pd.DataFrame | None, searches: int | None = None) -> dict[str, Any]:
    """The selection stage's pick of a method's study (among the cells of its first
    ``searches`` searches; None: all), if it ran (``compare --select``): the judge, its
    cell and its parameters, whether plain DARTS' own start (the centre trial) found it,
    its epochs, and the
    selection's at its full cost for its ``top`` candidates (what every method is charged,
    however many cells it found). With a table: the pick's score and the judge's regret,
    the best candidate's score minus the pick's."""
    found = load_study(study.config.name, root=root, storage=storage)
    selection = StudySelection.of(found, searches)
    if selection is None:
        return {}
    select, trials = study.config.select, found.get_trials(deepcopy=False)
    if searches is not None:
        trials = first_searches(trials, searches)
    row: dict[str, Any] = {
        "judge": selection.judge, "judge_cell": selection.cell,
        "judge_params_M": next(TrialRecord.of(t).eval_params_M for t in trials
                               if t.number in selection.trials),
        "judge_from_centre": _from_centre(study.method, trials, selection.trials),
        "select_epochs": selection.epochs,
        "select_budget": selection_epochs(select, select.top or selection.candidates)}
    if table is not None:
        def score(cell: str) -> float:
            return lookup(table, parse_genotype(cell))["cifar10"]

        row["judge_cifar10_test"] = score(selection.cell)
        row["judge_regret"] = max(score(c.cell) for c in candidates(
            trials, select.top)) - row["judge_cifar10_test"]
    return row


PICK_COLUMNS = {"variant": "variant", "selection": "selection", "arch_lr": "arch_lr",
                "start_space": "start_space", "method": "method",
                "seed": "seed", "cell": "cell", "params_M": "params", "best_value": "objective",
                **{f"best_{name}_test": name for name in TABLE_DATASETS},
                "max_cifar10_test": "best_of_its_cells", "mean_cifar10_test": "mean_cell",
                "judge": "judge", "judge_cell": "judge_cell",
                "judge_params_M": "judge_params", "judge_cifar10_test": "judge_cifar10",
                "judge_regret": "judge_regret", "judge_from_centre": "judge_from_centre",
                "pick_from_centre": "pick_from_centre",
                "select_budget": "select_budget",
                "cut_off": "cut_off", "trials": "searches", "epochs": "epochs",
                "first_searches": "first_searches", "first_best_cifar10_test": "first_cifar10",
                "first_max_cifar10_test": "first_best_of_its_cells",
                "first_mean_cifar10_test": "first_mean_cell", "first_params_M": "first_params",
                "first_cut_off": "first_cut_off", "first_judge_params_M": "first_judge_params",
                "first_judge_cifar10_test": "first_judge_cifar10",
                "first_judge_regret": "first_judge_regret",
                "first_pick_from_centre": "first_pick_from_centre",
                "first_judge_from_centre": "first_judge_from_centre"}
PICK_KEY = ["setting", "variant", "start_space", "method", "seed"]


def check_picks(path: Path) -> pd.DataFrame | None:
    """The picks already in ``path`` (None if there is no such file), checked to be a
    picks table that ``record_picks`` can add to.

    Raises:
        ConfigError: the file is unreadable, is not a CSV, or has other columns.
    """
    if not path.exists():
        return None
    try:
        earlier = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"--picks {path}: not a readable picks table "
                          f"({' '.join(str(error).split())})") from None
    known = {"setting", *PICK_COLUMNS.values()}
    other, missing = set(earlier.columns) - known, set(PICK_KEY) - set(earlier.columns)
    if other or missing:
        raise ConfigError(f"--picks {path}: not a picks table (" + "; ".join(
            part for part in (other and f"other columns {', '.join(sorted(other))}",
                              missing and f"no {', '.join(sorted(missing))} column")
            if part) + "); name another file")
    return earlier


def record_picks(frame: pd.DataFrame, path: Path, setting: str) -> pd.DataFrame:
    """Write each method's pick (a row per variant, start space, method and seed) into the
    CSV at ``path`` under ``setting``, in place of that setting's earlier rows for the same
    runs; returns the whole table. Comparisons that write one file at the same time take
    turns (a lock on its folder), and each writes the whole file at once, so none loses
    another's rows.

    Raises:
        ConfigError: the file is not a picks table (see ``check_picks``).
    """
    picks = frame[[c for c in PICK_COLUMNS if c in frame]].rename(columns=PICK_COLUMNS)
    picks.insert(0, "setting", setting)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        earlier = check_picks(path)
        if earlier is not None:
            keys = set(map(tuple, picks[PICK_KEY].astype(str).to_numpy()))
            kept = earlier[[tuple(row) not in keys
                            for row in earlier[PICK_KEY].astype(str).to_numpy()]]
            picks = pd.concat([kept, picks], ignore_index=True)
        picks = picks.sort_values(PICK_KEY, kind="stable", ignore_index=True)
        text = picks.to_csv(index=False)
        atomic_write(path, lambda handle: handle.write(text.encode()))
    return picks


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (nothing is written into it for the lock;
    where ``fcntl`` is missing, nothing is held)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing it releases the lock


def tabulate_comparison(comparison: Comparison, *, root: str | Path, out_dir: Path,
                        storage: str | None = None, table: pd.DataFrame | None = None,
                        retrain_epochs: int = 0, device: torch.device | None = None,
                        progress: bool = False, images: bool = False,
                        picks: Path | None = None, setting: str | None = None,
                        first: int | None = None) -> pd.DataFrame:
    """Tabulate a comparison whose studies have run: each inner search's tables in its own
    folder (``Comparison.variant_dirs``) and, for several, all of them in ``out_dir``
    (with ``first``, each study also as its first ``first`` searches left it);
    with ``picks``, every pick into that CSV under ``setting`` (by default the study's
    name). Returns the comparison's frame (a row per inner search, method and seed).

    Raises:
        ConfigError: ``picks`` is not a picks table.
    """
    frames = [compare_studies(config, comparison.studies[config.name], root=root,
                              out_dir=folder, storage=storage, table=table,
                              retrain_epochs=retrain_epochs, device=device,
                              progress=progress, images=images, first=first)
              for config, folder in zip(comparison.configs, comparison.variant_dirs(out_dir),
                                        strict=True)]
    frame = (combine(frames, out_dir, comparison.name, images=images) if len(frames) > 1
             else frames[0])
    if picks is not None:
        record_picks(frame, picks, setting or comparison.name)
    return frame


def combine(frames: Sequence[pd.DataFrame], out_dir: Path, name: str, *,
            images: bool = False) -> pd.DataFrame:
    """Several variants' comparisons side by side: ``compare.csv``, ``summary.csv`` and
    ``compare.md`` with a row per variant, start space, method and seed, and
    ``compare.html`` with the methods of every variant side by side (each variant's own
    folder keeps its curves and pick tables)."""
    frame = pd.concat(frames, ignore_index=True)
    summary = summarise(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "compare.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    empty = pd.DataFrame()
    variants = ", ".join(frame["variant"].unique())
    (out_dir / "compare.md").write_text(
        f"Study `{name}`, variants {variants}.\n\n"
        + markdown_tables(frame, summary, empty, empty, empty), encoding="utf-8")
    space = frame["start_space"].map(lambda s: "" if s == "edge-op" else f" ({s} start)")
    labelled = frame.assign(method=frame["variant"] + ": " + frame["method"] + space)
    sections = [("Methods of every variant side by side", figures.compare_figure(labelled))]
    settings = [("study", name), ("variants", variants),
                ("seeds", ", ".join(map(str, frame["seed"].unique())))]
    (out_dir / "compare.html").write_text(page_html(f"compare {name}", settings, sections),
                                          encoding="utf-8")
    if images:
        figures.write_images(sections, out_dir)
    return frame


def _genotype(trial: Any) -> Genotype:
    """The cell a trial recorded."""
    return parse_genotype(str(TrialRecord.of(trial).cell))


def _params(trial: Any) -> float:
    """The parameters (M) of a trial's cell's evaluation network."""
    return float(TrialRecord.of(trial).eval_params_M or 0.0)


def extra_epochs(config: StudyConfig, trials: Sequence[Any]) -> dict[str, int]:
    """Epochs a method spent beside its searches' own: fine-tuning between perturbation
    selection's decisions (counted in its budget) and training each cell for the
    ``trained`` objective (not counted)."""
    done = [t for t in trials if counted(t)]
    records = [TrialRecord.of(t) for t in done]
    tuning = sum(max(0, (r.epochs_run or 0) - config.search.epochs) for r in records)
    trained = sum(r.trained_acc is not None for r in records)
    return {"tuning_epochs": tuning, "training_epochs": trained * config.search.train_epochs}


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
    """One row per variant and method: the mean and standard deviation over study seeds of
    each seed's best-trial figures."""
    columns = [c for c in SUMMARY_COLUMNS if c in frame]
    keys = [key for key in ("variant", "start_space", "method") if key in frame]
    grouped = frame.groupby(keys, sort=False)[columns]
    summary = grouped.mean().add_prefix("mean_").join(grouped.std(ddof=1).add_prefix("std_"))
    summary.insert(0, "seeds", frame.groupby(keys, sort=False).size())
    return summary.reset_index()


def scored_trials(method: str, seed: int, trials: list[Any],
                  table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each complete trial's validation accuracies beside its cell's table scores, and for
    a CMA-ES trial the generation that sampled it (none for the queued first trial)."""
    rows = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        record = TrialRecord.of(trial)
        score = lookup(table, _genotype(trial))
        rows.append({"method": method, "seed": seed, "trial": trial.number,
                     "generation": trial.system_attrs.get("cma:generation"),
                     "supernet_acc": record.supernet_acc, "discrete_acc": record.discrete_acc,
                     "trained_acc": record.trained_acc, "judged": record.judged,
                     "params_M": record.eval_params_M,
                     **{f"{dataset}_test": accuracy for dataset, accuracy in score.items()}})
    return rows


def objective_agreement(scored: pd.DataFrame) -> pd.DataFrame:
    """How well each validation accuracy a search can see ranks the cells as the table
    does: Spearman correlation with CIFAR-10 test accuracy over all complete trials (a
    signal no trial recorded, such as ``trained`` or ``judged`` in studies of another
    objective, is left out)."""
    rows = [{"objective": name,
             "spearman_cifar10": scored[column].corr(scored["cifar10_test"], method="spearman"),
             "trials": int(scored[column].notna().sum())}
            for name, column in (("supernet", "supernet_acc"), ("discrete", "discrete_acc"),
                                 ("trained", "trained_acc"), ("judged", "judged"),
                                 ("fewer parameters", "params_M"))]
    rows[-1]["spearman_cifar10"] *= -1  # fewer parameters, higher score
    return pd.DataFrame([row for row in rows if row["trials"]])


def cells_by_epoch(method: str, seed: int, trials: list[Any],
                   table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table score of each complete trial's cell after every epoch of its search."""
    rows = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        for epoch, cell in enumerate(TrialRecord.of(trial).cell_history or [], start=1):
            genotype = parse_genotype(cell)
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
            row["best_cifar10_test"] = lookup(table, _genotype(best))["cifar10"]
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


def compare_studies(config: StudyConfig, studies: Sequence[MethodStudy], *,
                    root: str | Path, out_dir: Path, storage: str | None = None,
                    table: pd.DataFrame | None = None, retrain_epochs: int = 0,
                    device: torch.device | None = None, progress: bool = False,
                    images: bool = False, first: int | None = None) -> pd.DataFrame:
    """Tabulate a comparison's finished studies (see ``pipeline.outer.methods``): write
    ``compare.csv`` (a row per method and seed; with ``first``, each also as its first
    ``first`` searches left it, see ``study_row``), ``summary.csv`` (a row per method),
    ``compare.md`` (both as markdown), ``incumbents.csv`` and ``compare.html``. With a
    ground-truth table, ``trials.csv`` scores every complete trial's cell and
    ``epochs.csv`` the cell after each of its epochs. With ``images``, each figure is also
    written as a PNG. With ``retrain_epochs``, each method's pick is also trained from
    scratch that long on the study's dataset (see ``retrain_cell``) and tested.

    Raises:
        ConfigError: ``retrain_epochs`` is negative.
    """
    if retrain_epochs < 0:
        raise ConfigError(f"--retrain-epochs {retrain_epochs}: it must be >= 0")
    rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    scored: list[dict[str, Any]] = []
    picks: list[dict[str, Any]] = []
    fronts: list[list[tuple[float, float]]] = []
    largest = 0.0  # the largest cell any method found, the hypervolumes' reference
    for study in studies:
        method, seed = study.method, study.seed
        trials = load_study(study.config.name, root=root, storage=storage).get_trials(
            deepcopy=False)
        row = study_row(study, trials, root=root, storage=storage, table=table, first=first)
        if retrain_epochs and "cell" in row:
            checkpoint = out_dir / f"retrain-s{seed}-{method}" / "ckpt.pt"
            row["retrain_test_acc"] = retrain_cell(
                study.config, parse_genotype(row["cell"]), device=device or torch.device("cpu"),
                checkpoint=checkpoint, epochs=retrain_epochs, progress=progress).test_acc
        if table is not None:
            epoch_rows += cells_by_epoch(method, seed, trials, table)
            scored += scored_trials(method, seed, trials, table)
        rows.append(row)
        picks += incumbents(method, seed, trials, table)
        fronts.append([(t.values[0], _params(t)) for t in front_trials(trials)])
        largest = max([largest, *(_params(t) for t in trials
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
        curve = incumbent_curve(picks, search_epochs(config), budget)
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
    inner = describe(config) + (f", the trained objective measured on {config.data.holdout} "
                                "held-out training images" if config.data.holdout else "")
    settings = [("study", config.name), ("variant", inner), ("seeds", seeds),
                ("epoch budget per method and seed", str(budget))]
    (out_dir / "compare.html").write_text(page_html(f"compare {config.name}", settings,
                                                    sections), encoding="utf-8")
    (out_dir / "compare.md").write_text(
        f"Study `{config.name}`; {inner}; seeds {seeds}; {budget} inner epochs "
        "per method and seed.\n\n"
        + markdown_tables(frame, summary, epochs, agreement, curve), encoding="utf-8")
    if images:  # last: the tables are written even where images cannot be
        figures.write_images(sections, out_dir)
