"""The study in optuna-dashboard: trial artifacts and notes, study graphs, the server."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from pipeline import figures
from pipeline.report import history_frame, trials_frame

logger = logging.getLogger(__name__)


def artifact_store(state_dir: Path) -> FileSystemArtifactStore:
    """The study's artifact store: files under ``state_dir/artifacts``."""
    folder = state_dir / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def publish_trial(trial: optuna.Trial, history: Sequence[Mapping[str, Any]], files: Path,
                  store: FileSystemArtifactStore, attrs: Mapping[str, Any], *,
                  edges: Sequence[str], ops: Sequence[str]) -> None:
    """Attach the cell drawing (SVG), the alpha trajectory (CSV) and a note to a trial."""
    cell = attrs["cell"]
    (files / "cell.svg").write_text(figures.cell_svg(cell), encoding="utf-8")
    with (files / "alphas.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "edge", "op", "weight"])
        for record in history:
            for edge, row in zip(edges, record["alpha_softmax"], strict=True):
                for op, weight in zip(ops, row, strict=True):
                    writer.writerow([record["epoch"], edge, op, f"{weight:.6f}"])
    for name in ("cell.svg", "alphas.csv"):
        upload_artifact(artifact_store=store, file_path=str(files / name), study_or_trial=trial)
    discrete = attrs.get("discrete_acc")
    optuna_dashboard.save_note(trial, "\n".join([
        f"**cell** `{cell}`", "",
        f"- supernet validation accuracy: {attrs['supernet_acc']:.2f} %",
        f"- derived cell, inherited weights: "
        f"{'not measured' if discrete is None else f'{discrete:.2f} %'}",
        *([f"- derived cell, trained from scratch: {attrs['trained_acc']:.2f} % "
           f"(training time {attrs['train_time_s']:.0f} s)"]
          if attrs.get("trained_acc") is not None else []),
        f"- NB201 evaluation network: {attrs['eval_params_M']:.3f} M parameters",
        f"- skip / pool / none share: {attrs['skip_share']:.2f} / {attrs['pool_share']:.2f}"
        f" / {attrs['none_share']:.2f}",
        f"- epochs: {attrs['epochs_run']}, search time {attrs['wall_time_s']:.0f} s",
    ]))


def publish_study(study: optuna.Study) -> None:
    """Store the report's key figures with the study, for the dashboard's plot tab."""
    frame = trials_frame(study.get_trials(deepcopy=False))
    graphs = {"history": figures.history_figure(history_frame(frame)),
              "collapse": figures.collapse_figure(frame)}
    for graph_id, figure in graphs.items():
        optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)


def serve(storage: optuna.storages.BaseStorage, state_dir: Path, *, host: str,
          port: int) -> None:
    """Run optuna-dashboard on the study's storage and artifacts until interrupted."""
    optuna_dashboard.run_server(storage, host=host, port=port,
                                artifact_store=artifact_store(state_dir))
