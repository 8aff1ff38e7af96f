"""Study results as data: trials -> pandas DataFrames (pure), then an offline HTML page.

Nothing here imports torch; the figures are built in ``pipeline.results.figures``.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from pipeline.config import from_dict, with_defaults
from pipeline.outer.artifacts import ArtifactStore, download_metrics
from pipeline.outer.picks import accuracy_of, best_trial, pareto_mask
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.trials import METRICS
from pipeline.results import figures
from pipeline.search.build import describe

logger = logging.getLogger(__name__)

TRIAL_COLUMNS = ("number", "state", "value", "epochs_run", "cell", "supernet_acc",
                 "discrete_acc", "trained_acc", "eval_params_M", "skip_share", "pool_share",
                 "none_share", "seed", "original_number", "wall_time_s", "train_time_s",
                 "fail_reason", "best", "selected", "last_value", "retry_of", "retried_as")
IMPORTANCE_TRIALS = 20  # fewer complete trials than this over dozens of dimensions: noise
CURVE_COLUMNS = ("number", "state", "epoch", "valid_acc", "discrete_acc", "train_loss",
                 "valid_loss", "genotype")


def trials_frame(trials: Sequence[FrozenTrial], selection: StudySelection | None = None
                 ) -> pd.DataFrame:
    """One row per trial with its state, value and recorded attributes; ``best`` marks the
    study's pick by its trial objective, ``selected`` the trials that ended on the cell
    ``selection`` chose, ``last_value`` a trial's latest report (a running one's progress),
    and ``retry_of`` / ``retried_as`` link a failed trial and its retry."""
    best = best_trial(trials)
    retried_as = {int(t.system_attrs["failed_trial"]): t.number for t in trials
                  if "failed_trial" in t.system_attrs}
    rows = []
    for trial in trials:
        attrs = TrialRecord.of(trial).attrs()
        row = {name: attrs.get(name) for name in TRIAL_COLUMNS}
        row.update(number=trial.number, state=trial.state.name, value=accuracy_of(trial),
                   best=best is not None and trial.number == best.number,
                   selected=selection is not None and trial.number in selection.trials,
                   last_value=(trial.intermediate_values[max(trial.intermediate_values)]
                               if trial.intermediate_values else None),
                   retry_of=trial.system_attrs.get("failed_trial"),
                   retried_as=retried_as.get(trial.number))
        if row["epochs_run"] is None and trial.intermediate_values:
            row["epochs_run"] = max(trial.intermediate_values)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    numeric = ["value", "supernet_acc", "discrete_acc", "trained_acc", "eval_params_M",
               "skip_share", "pool_share", "none_share", "wall_time_s", "train_time_s",
               "last_value"]
    frame[numeric] = frame[numeric].astype("float64")
    for name in ("epochs_run", "seed", "original_number", "retry_of", "retried_as"):
        frame[name] = frame[name].astype("Int64")
    frame[["best", "selected"]] = frame[["best", "selected"]].astype(bool)
    return frame


def curves_frame(trials: Sequence[FrozenTrial], state_dir: Path | None,
                 artifacts: ArtifactStore | None = None) -> pd.DataFrame:
    """Per-epoch metrics of every trial, read from its ``metrics.jsonl`` in the study's
    state folder, else (a finished trial's, on a machine that lacks its files) from the
    artifact store; none from neither.

    A retried trial shares its files with the attempt it retried; the latest attempt
    owns them.
    """
    latest: dict[str, FrozenTrial] = {}
    for trial in trials:
        key = TrialRecord.of(trial).trial_key
        if key is not None:
            latest[key] = trial
    parts = []
    with tempfile.TemporaryDirectory() as downloads:
        for key, trial in latest.items():
            path = None if state_dir is None else state_dir / "trials" / key / METRICS
            if (path is None or not path.exists()) and artifacts is not None:
                path = download_metrics(artifacts, trial, Path(downloads))
            records = [] if path is None else read_metrics(path)
            if not records:
                continue
            metrics = pd.DataFrame(records)
            metrics["number"], metrics["state"] = trial.number, trial.state.name
            parts.append(metrics.reindex(columns=list(CURVE_COLUMNS)))
    if not parts:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(parts, ignore_index=True).sort_values(["number", "epoch"])


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of a trial's ``metrics.jsonl``; a damaged line (a write cut off,
    stray bytes) is skipped with a warning naming the file and line."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and "epoch" in record:
            records.append(record)
        elif line.strip():
            logger.warning("%s, line %d: not an epoch record; skipped", path, number)
    return records


def history_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Value (with cell and accuracies) of each finished trial and the best complete value
    so far."""
    history = frame.loc[frame["value"].notna(), ["number", "state", "value", "cell",
                                                 "supernet_acc", "discrete_acc",
                                                 "trained_acc", "eval_params_M"]].copy()
    complete = history["value"].where(history["state"] == "COMPLETE")
    history["best_so_far"] = complete.cummax().ffill()
    return history.reset_index(drop=True)


def alpha_names(trial: FrozenTrial) -> tuple[list[str], list[str]]:
    """The edges and ops of the trial's alphas, from its ``alpha:<edge>:<op>`` parameters."""
    edges: dict[str, None] = {}
    ops: dict[str, None] = {}
    for name in trial.params:
        if name.startswith("alpha:"):
            edge, _, op = name.removeprefix("alpha:").rpartition(":")
            edges[edge], ops[op] = None, None
    return list(edges), list(ops)


def alpha_start(trial: FrozenTrial) -> pd.DataFrame:
    """The trial's initial architecture logits (edges x ops), from its parameters."""
    edges, ops = alpha_names(trial)
    values = [[trial.params.get(f"alpha:{e}:{o}", math.nan) for o in ops] for e in edges]
    return pd.DataFrame(values, index=edges, columns=ops)


def alpha_end(trial: FrozenTrial) -> pd.DataFrame | None:
    """The trial's final mixing weights (edges x ops), if it recorded them; where its
    start vector shares alpha0 between edges (``start.alpha_space = "op"``), the edges
    are numbered."""
    softmax = TrialRecord.of(trial).alpha_softmax
    edges, ops = alpha_names(trial)
    if softmax is None or not softmax or len(softmax[0]) != len(ops):
        return None
    rows = edges if len(softmax) == len(edges) else [f"edge {i}" for i in range(len(softmax))]
    return pd.DataFrame(softmax, index=rows, columns=ops)


def movement_frame(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """How far each trial's mixing weights moved: the mean L1 distance per edge between
    the softmax of alpha0 and the final softmax."""
    rows = []
    for trial in trials:
        end = alpha_end(trial)
        if end is None:
            continue
        start = alpha_start(trial).to_numpy()
        start = np.exp(start - start.max(axis=1, keepdims=True))
        start /= start.sum(axis=1, keepdims=True)
        moved = float(np.abs(end.to_numpy() - start).sum(axis=1).mean())
        rows.append({"number": trial.number, "state": trial.state.name,
                     "value": accuracy_of(trial), "moved": moved})
    return pd.DataFrame(rows, columns=["number", "state", "value", "moved"])


def pareto_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Complete trials' accuracy and evaluation-network size, with Pareto membership."""
    points = frame.loc[(frame["state"] == "COMPLETE") & frame["eval_params_M"].notna(),
                       ["number", "value", "eval_params_M", "cell"]].reset_index(drop=True)
    points["pareto"] = pareto_mask(points["value"], points["eval_params_M"])
    return points


def settings_rows(study: optuna.Study, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """What a reader needs to reproduce the study."""
    config: dict[str, Any] = study.user_attrs.get("config", {})
    versions = study.user_attrs.get("versions", {})
    pick = [("space", "space"), ("data", "data"), ("search", "search"), ("start", "start"),
            ("outer", "outer")]
    rows = [("study", study.study_name), ("seed", str(config.get("seed", "?")))]
    if config:
        rows.append(("inner search", describe(from_dict(with_defaults(config)))))
    rows += [(label, json.dumps(config.get(key, {}))) for label, key in pick]
    counts = frame["state"].value_counts().to_dict()
    rows.append(("trials", ", ".join(f"{n} {state.lower()}" for state, n in counts.items())))
    selection = StudySelection.of(study)
    if selection is not None:
        rows.append(("selected cell", f"{selection.cell} (trials "
                     f"{', '.join(map(str, selection.trials))}; {selection.judge}, "
                     f"{selection.candidates} candidates, {selection.epochs} epochs)"))
    rows += [(f"{name} version", str(version)) for name, version in versions.items()]
    return rows


def write_report(study: optuna.Study, state_dir: Path | None, out_dir: Path, *,
                 images: bool = False, artifacts: ArtifactStore | None = None) -> Path:
    """Write ``index.html`` (plotly.js inlined, so it opens offline) and ``trials.csv``;
    with ``images``, also each figure as a PNG beside them (see ``figures.write_images``).
    Learning curves come from the study's folder ``state_dir``, else from ``artifacts``.
    """
    trials = study.get_trials(deepcopy=False)
    frame = trials_frame(trials, StudySelection.of(study))
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "trials.csv", index=False)
    sections = _sections(study, trials, frame, state_dir, artifacts)
    compared = _compare_csv(out_dir, study.study_name)
    if compared is not None:
        sections.append(("Methods side by side (globaldarts compare)",
                         figures.compare_figure(pd.read_csv(compared))))
    page = page_html(study.study_name, settings_rows(study, frame), sections)
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    if images:
        figures.write_images(sections, out_dir)
    return path


def _sections(study: optuna.Study, trials: Sequence[FrozenTrial], frame: pd.DataFrame,
              state_dir: Path | None, artifacts: ArtifactStore | None
              ) -> list[tuple[str, Any]]:
    best = best_trial(trials)
    sections: list[tuple[str, Any]] = [
        ("Optimisation history", figures.history_figure(history_frame(frame))),
        ("Learning curves", figures.curves_figure(curves_frame(trials, state_dir,
                                                               artifacts))),
    ]
    if best is not None:
        centre = next((t for t in trials if t.params and not any(t.params.values())), None)
        pairs = [(f"best trial {best.number}", best)]
        if centre is not None and centre.number != best.number:
            pairs.append((f"plain DARTS start (trial {centre.number})", centre))
        heatmaps = [(label, alpha_start(t), alpha_end(t)) for label, t in pairs]
        sections.append(("Start and end of the architecture weights",
                         figures.alpha_figure(heatmaps)))
        sections.append((f"Best cell (trial {best.number})",
                         figures.cell_figure(str(TrialRecord.of(best).cell))))
    selection = StudySelection.of(study)
    if selection is not None:
        sections.append((f"Selected cell ({selection.judge})",
                         figures.cell_figure(selection.cell)))
    sections.append(("How far each search moved", figures.movement_figure(
        movement_frame(trials))))
    sections.append(("Collapse watch", figures.collapse_figure(frame)))
    sections.append(("Accuracy and parameters", figures.pareto_figure(pareto_frame(frame))))
    sections.append(("Trials", trials_table(frame)))
    sections.append(("What mattered in the start vector", _importance_section(study)))
    return sections


def _importance_section(study: optuna.Study) -> Any:
    """The start vector's importances, or why there are none: with few complete trials
    over many dimensions they are noise."""
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < IMPORTANCE_TRIALS:
        return (f"<p>Estimated from {IMPORTANCE_TRIALS} complete trials on; this study has "
                f"{complete}.</p>")
    importances = _importances(study)
    if not importances:
        return "<p>No dimension of the start vector varied.</p>"
    return figures.importance_figure(importances)


def trials_table(frame: pd.DataFrame) -> str:
    """Every trial as an HTML table; a click on a column's header sorts by it."""
    columns = [("number", "trial", "{:d}"), ("state", "state", "{}"),
               ("value", "value", "{:.2f}"),
               ("supernet_acc", "supernet %", "{:.2f}"), ("discrete_acc", "discrete %", "{:.2f}"),
               ("trained_acc", "trained %", "{:.2f}"), ("eval_params_M", "params (M)", "{:.3f}"),
               ("cell", "cell", "{}")]
    head = "".join(f"<th onclick='sortBy(this)'>{html.escape(label)}</th>"
                   for _, label, _ in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{'' if pd.isna(row[key]) else html.escape(fmt.format(row[key]))}"
                         "</td>" for key, _, fmt in columns) + "</tr>"
        for _, row in frame.iterrows())
    return (f"<table class='trials'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            f"<script>{_SORT_SCRIPT}</script>")


# Sorts a table by the clicked column (numbers as numbers), flipping on a second click.
_SORT_SCRIPT = """function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children]
.indexOf(th),rows=[...t.tBodies[0].rows],up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';
const v=r=>{const s=r.cells[i].textContent,n=parseFloat(s);return isNaN(n)?s:n};
rows.sort((a,b)=>{const x=v(a),y=v(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});
rows.forEach(r=>t.tBodies[0].appendChild(r))}"""


def _compare_csv(out_dir: Path, name: str) -> Path | None:
    """The compare table of this study, or of the comparison it is one method of."""
    match = re.fullmatch(r"(.+?)-s\d+-(?:darts|random|cmaes)", name)
    base = match.group(1) if match else name
    for path in (out_dir / "compare.csv", out_dir.parent / base / "compare.csv"):
        if path.exists():
            return path
    return None


def _importances(study: optuna.Study) -> dict[str, float]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    try:
        # with two objectives, the accuracy's importance; a target is taken as minimised
        target = (lambda t: -t.values[0]) if len(study.directions) > 1 else None
        with warnings.catch_warnings():  # it warns of that whenever a target is given
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            return dict(optuna.importance.get_param_importances(study, target=target))
    except (RuntimeError, ValueError):  # e.g. no parameter varied
        return {}


def _html(part: Any) -> str:
    """A section's content: its HTML as given, or a figure's, plotly.js left out."""
    return part if isinstance(part, str) else str(part.to_html(full_html=False,
                                                                include_plotlyjs=False))


def page_html(name: str, settings: list[tuple[str, str]], sections: list[tuple[str, Any]]) -> str:
    from plotly.offline import get_plotlyjs

    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
                   for k, v in settings)
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{_html(part)}</section>"
                   for title, part in sections)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>globaldarts: {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "th{text-align:left;padding-right:1em;vertical-align:top}code{font-size:90%}"
        "table.trials{border-collapse:collapse;font-size:85%}"
        "table.trials td,table.trials th{border-bottom:1px solid #ddd;padding:2px 6px}"
        "table.trials th{cursor:pointer}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>globaldarts study {html.escape(name)}</h1><table>{rows}</table>{body}"
        "</body></html>"
    )
