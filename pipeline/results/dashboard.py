"""The study in optuna-dashboard: trial artifacts and notes, study graphs, the server."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import make_server

import optuna
import optuna_dashboard
from optuna.artifacts import upload_artifact

from pipeline.outer.artifacts import ArtifactStore, local_artifacts, study_artifacts
from pipeline.outer.picks import baseline_trial, best_trial
from pipeline.outer.record import StudySelection, TrialRecord
from pipeline.outer.storage import default_storage, make_storage
from pipeline.outer.study import load_study, state_dir
from pipeline.results import figures
from pipeline.results.report import history_frame, trials_frame
from pipeline.spaces import parse_genotype, space_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class DashboardPublisher:
    """Shows a study in optuna-dashboard as it runs: each finished trial's cell drawing
    (SVG), alpha trajectory (CSV) and note, and at the end the study's key figures."""

    def publish_trial(self, trial: optuna.Trial, history: Sequence[Mapping[str, Any]],
                      files: Path, record: TrialRecord, *, edges: Sequence[str],
                      ops: Sequence[str], store: ArtifactStore) -> None:
        """Attach the cell drawing, the alpha trajectory (uploaded to the study's artifact
        ``store``) and a note to a trial whose files are in ``files``
        (``STATE_DIR/trials/KEY``)."""
        cell = str(record.cell)
        (files / "cell.svg").write_text(figures.cell_svg(cell), encoding="utf-8")
        with (files / "alphas.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "edge", "op", "weight"])
            for epoch in history:
                for edge, row in zip(edges, epoch["alpha_softmax"], strict=True):
                    for op, weight in zip(ops, row, strict=True):
                        writer.writerow([epoch["epoch"], edge, op, f"{weight:.6f}"])
        for name in ("cell.svg", "alphas.csv"):
            upload_artifact(artifact_store=store, file_path=str(files / name),
                            study_or_trial=trial)
        optuna_dashboard.save_note(trial, _trial_note(record))

    def publish_study(self, study: optuna.Study) -> None:
        """Store the report's key figures with the study, for the dashboard's plot tab, and
        a note that sums it up."""
        trials = study.get_trials(deepcopy=False)
        frame = trials_frame(trials, StudySelection.of(study))
        graphs = {"history": figures.history_figure(history_frame(frame)),
                  "collapse": figures.collapse_figure(frame)}
        for graph_id, figure in graphs.items():
            optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=graph_id)
        optuna_dashboard.save_note(study, study_note(trials, StudySelection.of(study)))


def study_note(trials: Sequence[optuna.trial.FrozenTrial],
               selection: StudySelection | None = None) -> str:
    """A study summed up: its pick (cell and accuracies) beside plain DARTS' own trial,
    and the cell the selection stage chose, if it ran."""
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in optuna.trial.TrialState}
    lines = [", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trials", ""]
    for label, trial in (("the pick", best_trial(trials)),
                         ("plain DARTS' start", baseline_trial(trials))):
        if trial is not None:
            record = TrialRecord.of(trial)
            lines += [f"**{label}: trial {trial.number}**, value {trial.values[0]:.2f}",
                      f"`{record.cell}`", record.measured(), ""]
    if selection is not None:
        lines += [f"**the selected cell** (trials {', '.join(map(str, selection.trials))}; "
                  f"{selection.judge}, {selection.candidates} candidates, "
                  f"{selection.epochs} epochs)", f"`{selection.cell}`", ""]
    return "\n".join(lines)


def _trial_note(record: TrialRecord) -> str:
    """A trial's note: its cell and what was measured of it."""
    cell, discrete, trained = str(record.cell), record.discrete_acc, record.trained_acc
    network = space_of(parse_genotype(cell)).network_description
    return "\n".join([
        f"**cell** `{cell}`", "",
        f"- supernet validation accuracy: {record.supernet_acc:.2f} %",
        f"- derived cell, inherited weights: "
        f"{'not measured' if discrete is None else f'{discrete:.2f} %'}",
        *([f"- derived cell, trained from scratch: {trained:.2f} % "
           f"(training time {record.train_time_s:.0f} s)"] if trained is not None else []),
        f"- {network}: {record.eval_params_M:.3f} M parameters",
        f"- skip / pool / none share: {record.skip_share:.2f} / {record.pool_share:.2f}"
        f" / {record.none_share:.2f}",
        f"- epochs: {record.epochs_run}, search time {record.wall_time_s:.0f} s",
    ])


def serve_dashboard(name: str, *, root: str | Path, storage: str | None = None,
                    artifacts: str | None = None, host: str = "127.0.0.1", port: int = 8080,
                    read_only: bool = False) -> None:
    """Serve a study's storage and artifacts (those of the store ``artifacts`` names, else
    of the one the study's config names, else of its folder) in optuna-dashboard until
    interrupted; ``read_only`` refuses every request that would change them
    (optuna-dashboard's API has no authentication: anyone who reaches it may write and
    delete).

    Raises:
        StudyError: no such study, or its artifact store cannot be opened.
    """
    study = load_study(name, root=root, storage=storage)  # the study must exist
    store = study_artifacts(study, artifacts) or local_artifacts(state_dir(root, name))
    app = optuna_dashboard.wsgi(make_storage(storage or default_storage(state_dir(root, name))),
                                artifact_store=store)
    with make_server(host, port, _read_only(app) if read_only else app) as server:
        server.serve_forever()


def _read_only(app: WSGIApplication) -> WSGIApplication:
    """``app``, refusing every method but GET and HEAD with 405."""
    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return app(environ, start_response)
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain"),
                                                  ("Allow", "GET, HEAD")])
        return [b"this dashboard is read-only\n"]

    return guarded
