from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from pipeline.outer.picks import accuracy_of, best_trial, front_trials, pareto_mask
from pipeline.results import figures
from pipeline.results.report import (
    TRIAL_COLUMNS,
    curves_frame,
    history_frame,
    movement_frame,
    pareto_frame,
    trials_frame,
    write_report,
)
from pipeline.spaces.nb201 import NB201_EDGES, NB201_OPS, edge_name

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
ALPHAS = [f"alpha:{edge_name(e)}:{o}" for e in NB201_EDGES for o in NB201_OPS]


def _trial(number: int, state: TrialState, *, alpha: float = 0.0,
           **attrs: object) -> optuna.trial.FrozenTrial:
    params = {name: alpha for name in ALPHAS}
    trial = create_trial(
        state=state, value=attrs.pop("value", None), params=params,
        distributions={name: FloatDistribution(-1, 1) for name in params},
        user_attrs={"trial_key": f"{number:05d}", **attrs},
        intermediate_values={1: 50.0, 2: 60.0})
    trial.number = number
    return trial


def _complete(number: int, value: float, params_m: float, alpha: float = 0.0) -> object:
    softmax = np.full((6, 5), 0.2)
    softmax[:, 3] = 0.6
    softmax[:, :3] = 0.4 / 4
    softmax[:, 4] = 0.1
    return _trial(number, TrialState.COMPLETE, alpha=alpha, value=value, cell=CELL,
                  supernet_acc=value, discrete_acc=value - 20, epochs_run=2,
                  eval_params_M=params_m, skip_share=1 / 6, pool_share=1 / 6,
                  none_share=1 / 6, seed=number, original_number=number, wall_time_s=3.5,
                  alpha_softmax=softmax.tolist())


@pytest.fixture
def trials() -> list:
    return [
        _complete(0, 91.5, 0.5),
        _trial(1, TrialState.PRUNED, alpha=0.3, value=60.0, epochs_run=2, seed=8),
        _trial(2, TrialState.FAIL, alpha=-0.2, fail_reason="diverged: loss non-finite", seed=9),
        _complete(3, 93.0, 0.8, alpha=0.5),
        _complete(4, 92.0, 0.3, alpha=-0.5),
    ]


def test_trials_frame_columns_and_dtypes(trials: list) -> None:
    frame = trials_frame(trials)
    assert list(frame.columns) == list(TRIAL_COLUMNS)
    assert frame["state"].tolist() == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE", "COMPLETE"]
    assert str(frame["value"].dtype) == "float64" and str(frame["epochs_run"].dtype) == "Int64"
    assert frame.loc[2, "epochs_run"] == 2  # from the intermediate values of a failed trial
    assert frame["value"].isna().tolist() == [False, False, True, False, False]
    assert frame.loc[2, "fail_reason"].startswith("diverged")


def test_history_keeps_the_best_complete_value(trials: list) -> None:
    history = history_frame(trials_frame(trials))
    assert history["number"].tolist() == [0, 1, 3, 4]
    assert history["best_so_far"].tolist() == [91.5, 91.5, 93.0, 93.0]


def test_pareto_membership(trials: list) -> None:
    assert pareto_mask([90, 91, 89, 91], [1.0, 2.0, 0.5, 1.5]).tolist() == [
        True, False, True, True]
    points = pareto_frame(trials_frame(trials))
    assert dict(zip(points["number"], points["pareto"], strict=True)) == {
        0: False, 3: True, 4: True}  # trial 4 is better and smaller than trial 0


def test_curves_come_from_metrics_files(trials: list, tmp_path: Path) -> None:
    for key, accs in (("00000", [40.0, 80.0]), ("00001", [30.0])):
        folder = tmp_path / "trials" / key
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": i + 1, "valid_acc": a, "train_loss": 1.0, "valid_loss": 1.0,
                        "discrete_acc": None, "genotype": CELL}) + "\n"
            for i, a in enumerate(accs)))
    curves = curves_frame(trials, tmp_path)
    assert curves[["number", "epoch", "valid_acc"]].values.tolist() == [
        [0, 1, 40.0], [0, 2, 80.0], [1, 1, 30.0]]
    assert curves.loc[curves["number"] == 1, "state"].tolist() == ["PRUNED"]


def test_damaged_metrics_lines_are_skipped_with_a_warning(
        trials: list, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = json.dumps({"epoch": 1, "valid_acc": 40.0, "genotype": CELL}) + "\n"
    for key, content in (("00000", good.encode() + b"\x8f\x00garbage\xff\n" + good.encode()),
                         ("00001", good.encode() + good[:17].encode())):  # cut off
        folder = tmp_path / "trials" / key
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_bytes(content)
    curves = curves_frame(trials, tmp_path)
    assert curves["number"].tolist() == [0, 0, 1]
    assert "trials/00000/metrics.jsonl, line 2: not an epoch record" in caplog.text
    assert "trials/00001/metrics.jsonl, line 2" in caplog.text


def test_learning_curves_tell_trials_apart_and_mark_where_pruning_stopped() -> None:
    curves = pd.DataFrame({
        "number": [0, 0, 1, 1, 2, 3], "epoch": [1, 2, 1, 2, 1, 1],
        "valid_acc": [40.0, 60.0, 41.0, 61.0, 30.0, 20.0], "genotype": CELL,
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"]})
    lines = figures.curves_figure(curves).data
    assert [line.name for line in lines] == ["trial 0", "trial 1", "trial 2", "trial 3"]
    assert len({line.line.color for line in lines}) == 4
    assert [line.line.dash for line in lines] == ["solid", "solid", "dot", "dash"]
    assert [line.legendgroup for line in lines] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert [list(line.marker.size) for line in lines] == [[0, 0], [0, 0], [10], [0]]


def test_movement_is_zero_for_a_search_that_stayed(trials: list) -> None:
    movement = movement_frame(trials).set_index("number")["moved"]
    assert list(movement.index) == [0, 3, 4]
    assert movement[0] > 0  # uniform start, peaked end
    stayed = _trial(9, TrialState.COMPLETE, value=1.0,
                    alpha_softmax=np.full((6, 5), 0.2).tolist())
    assert movement_frame([stayed])["moved"].tolist() == pytest.approx([0.0])


def test_report_is_written_and_needs_no_network(trials: list, tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", study_name="hand")
    study.add_trials(trials)
    path = write_report(study, tmp_path / "state", tmp_path / "out")
    page = path.read_text()
    assert (tmp_path / "out" / "trials.csv").exists()
    assert page.count('class="plotly-graph-div"') >= 7
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", page)


def test_cell_drawings_build() -> None:
    assert len(figures.cell_figure(CELL).data) == 7
    svg = figures.cell_svg(CELL)
    assert svg.startswith("<svg") and svg.count("<polyline") == 6
    darts = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
             "('sep_conv_3x3', 2), ('dil_conv_3x3', 1), ('max_pool_3x3', 3), ('none', 0), "
             "('avg_pool_3x3', 4)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
             "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
             "('sep_conv_5x5', 0), ('skip_connect', 2), ('skip_connect', 2), "
             "('dil_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])")
    assert len(figures.cell_figure(darts).data) == 2 * (8 + 4 + 1)  # edges, concat, nodes
    assert figures.cell_svg(darts).count("<polyline") == 2 * (8 + 4)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_in_a_real_browser(trials: list, tmp_path: Path) -> None:
    from PIL import Image

    study = optuna.create_study(direction="maximize", study_name="hand")
    study.add_trials(trials)
    page = write_report(study, tmp_path / "state", tmp_path / "out").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    plots = re.split(r'<div id="[^"]+" class="plotly-graph-div', dom)[1:]
    assert len(plots) >= 7
    empty = [i for i, plot in enumerate(plots) if 'class="main-svg"' not in plot]
    assert not empty, f"plot divs {empty} stayed empty"
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,2400", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # plots, not a blank page
    if os.environ.get("GLOBALDARTS_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["GLOBALDARTS_KEEP_SCREENSHOT"])


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_images_are_one_picture_per_figure(trials: list, tmp_path: Path) -> None:
    from PIL import Image

    study = optuna.create_study(direction="maximize", study_name="hand")
    study.add_trials(trials)
    page = write_report(study, tmp_path / "state", tmp_path / "out", images=True).read_text()
    pictures = sorted((tmp_path / "out").glob("*.png"))
    assert len(pictures) == page.count('class="plotly-graph-div"')
    assert "learning-curves.png" in {p.name for p in pictures}
    for picture in pictures:
        image = Image.open(picture).convert("RGB")
        assert image.width == 1000
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, picture.name  # drawn, not blank


def test_image_export_failure_is_one_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    import plotly.io

    def no_kaleido(*args: object, **kwargs: object) -> None:
        raise ValueError("Image export requires the kaleido package")

    monkeypatch.setattr(plotly.io, "write_images", no_kaleido)
    with pytest.raises(figures.ImageExportError, match=r"globaldarts\[images\]"):
        figures.write_images([("Learning curves", figures.cell_figure(CELL))], tmp_path)
    assert figures.image_name("Best cell (trial 3)") == "best-cell.png"


def test_best_and_front_trials(trials: list) -> None:
    assert best_trial(trials).number == 3
    assert [t.number for t in front_trials(trials)] == [3, 4]  # 0 is beaten by 4
    assert [accuracy_of(t) for t in trials] == [91.5, 60.0, None, 93.0, 92.0]
    two = create_trial(state=TrialState.COMPLETE, values=[95.0, 0.2],
                       user_attrs={"eval_params_M": 0.2})
    two.number = 5
    assert accuracy_of(two) == 95.0
    assert [t.number for t in front_trials([*trials, two])] == [5]
    assert best_trial([trials[1], trials[2]]) is None and front_trials([]) == []


def test_the_dashboard_note_sums_up_the_pick_beside_plain_darts(trials: list) -> None:
    from pipeline.results.dashboard import study_note

    note = study_note(trials)
    best = best_trial(trials)
    assert best is not None and f"**the pick: trial {best.number}**" in note
    assert best.user_attrs["cell"] in note and "complete" in note.splitlines()[0]
