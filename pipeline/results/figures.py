"""Plotly figures of a study, built from the frames of ``pipeline.results.report``."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipeline.spaces import CellDrawing, parse_genotype, space_of
from pipeline.spaces.base import Point

STATE_COLOURS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728",
                 "RUNNING": "#7f7f7f", "WAITING": "#bcbd22"}
STATE_DASHES = {"COMPLETE": "solid", "PRUNED": "dot", "FAIL": "dash", "RUNNING": "dashdot"}
TRIAL_COLOURS = (*plotly.colors.qualitative.D3, *plotly.colors.qualitative.Dark2)
METHOD_COLOURS = plotly.colors.qualitative.Plotly
OP_COLOURS = {"none": "#bbbbbb", "skip_connect": "#d62728", "nor_conv_1x1": "#2ca02c",
              "nor_conv_3x3": "#1f77b4", "avg_pool_3x3": "#ff7f0e", "max_pool_3x3": "#e377c2",
              "sep_conv_3x3": "#1f77b4", "sep_conv_5x5": "#17becf", "dil_conv_3x3": "#2ca02c",
              "dil_conv_5x5": "#8c564b"}
ACCURACY = "validation accuracy (%)"


def history_figure(history: pd.DataFrame) -> go.Figure:
    """Each trial's value by state, and the best complete value so far; hovering a trial
    shows its cell and accuracies."""
    figure = go.Figure()
    for state, group in history.groupby("state"):
        figure.add_scatter(x=group["number"], y=group["value"], mode="markers", name=state,
                           marker_color=STATE_COLOURS.get(str(state)),
                           hovertext=[trial_hover(row) for row in group.itertuples()],
                           hoverinfo="text")
    figure.add_scatter(x=history["number"], y=history["best_so_far"], mode="lines",
                       name="best so far", line_shape="hv", line_color="black")
    return figure.update_layout(xaxis_title="trial", yaxis_title=ACCURACY)


def trial_hover(row: Any) -> str:
    """A trial as its hover text shows it: number, value, accuracies, parameters, cell."""
    measured = [f"{label} {value:.2f} %" for label, value in (
        ("supernet", getattr(row, "supernet_acc", None)),
        ("discrete", getattr(row, "discrete_acc", None)),
        ("trained", getattr(row, "trained_acc", None))) if value is not None and value == value]
    params = getattr(row, "eval_params_M", None)
    lines = [f"trial {row.number} ({str(row.state).lower()}): {row.value:.2f}",
             ", ".join(measured),
             "" if params is None or params != params else f"{params:.3f} M parameters",
             str(getattr(row, "cell", "") or "")]
    return "<br>".join(html.escape(line) for line in lines if line)


def curves_figure(curves: pd.DataFrame) -> go.Figure:
    """Validation accuracy per epoch of every trial, a colour per trial and a dash per state
    (the legend groups trials by state); an x where a pruned trial stopped."""
    figure = go.Figure()
    for index, ((number, state), group) in enumerate(
            curves.groupby(["number", "state"], sort=True)):
        stop = [0] * (len(group) - 1) + [10 if state == "PRUNED" else 0]
        figure.add_scatter(x=group["epoch"], y=group["valid_acc"], mode="lines+markers",
                           name=f"trial {number}", opacity=0.8,
                           line_color=TRIAL_COLOURS[index % len(TRIAL_COLOURS)],
                           line_dash=STATE_DASHES.get(str(state), "solid"),
                           marker=dict(symbol="x", size=stop),
                           legendgroup=str(state), legendgrouptitle_text=str(state),
                           hovertext=group["genotype"])
    return figure.update_layout(xaxis_title="epoch", yaxis_title=ACCURACY,
                                legend_groupclick="toggleitem")


def alpha_figure(panels: Sequence[tuple[str, pd.DataFrame, pd.DataFrame | None]]
                 ) -> go.Figure:
    """Heatmaps (edge x op) of alpha0 and of the final mixing weights, one row per trial,
    each kind on a colour scale of its own (alpha0 centred on 0, weights from 0 to 1); a
    uniform start is drawn as the zeros it is, and small heatmaps show their values."""
    titles = [t for label, start, _ in panels for t in (
        f"{label}: alpha0" + (" (uniform: all 0)" if not start.to_numpy().any() else ""),
        f"{label}: final softmax")]
    figure = make_subplots(rows=len(panels), cols=2, subplot_titles=titles,
                           horizontal_spacing=0.22, vertical_spacing=0.25)
    reach = max([1e-3, *(float(abs(start.to_numpy()).max()) for _, start, _ in panels)])
    for row, (_, start, end) in enumerate(panels, start=1):
        for col, frame, axis in ((1, start, "coloraxis"), (2, end, "coloraxis2")):
            if frame is None:
                continue
            figure.add_heatmap(z=frame.to_numpy(), x=list(frame.columns), y=list(frame.index),
                               coloraxis=axis, texttemplate="%{z:.2f}" if frame.size <= 60
                               else None, row=row, col=col)
    return figure.update_layout(
        height=330 * len(panels),
        coloraxis=dict(colorscale="RdBu", cmin=-reach, cmax=reach,
                       colorbar=dict(title="alpha0", x=0.38, len=0.9)),
        coloraxis2=dict(colorscale="Viridis", cmin=0, cmax=1,
                        colorbar=dict(title="weight", x=1.0, len=0.9)))


def movement_figure(movement: pd.DataFrame) -> go.Figure:
    """How far each search moved its mixing weights from where it started."""
    figure = go.Figure()
    for state, group in movement.groupby("state"):
        figure.add_scatter(x=group["moved"], y=group["value"], mode="markers", name=state,
                           text=[f"trial {n}" for n in group["number"]],
                           marker_color=STATE_COLOURS.get(str(state)))
    return figure.update_layout(xaxis_title="mean L1 move of each edge's softmax",
                                yaxis_title=ACCURACY)


def collapse_figure(frame: pd.DataFrame) -> go.Figure:
    """Share of skip, pooling and none ops in each cell, against value and trial number."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("against value",
                                                           "over the study"))
    cells = frame[frame["skip_share"].notna()]
    for column, colour in (("skip_share", "#d62728"), ("pool_share", "#ff7f0e"),
                           ("none_share", "#7f7f7f")):
        label = column.removesuffix("_share")
        figure.add_scatter(x=cells["value"], y=cells[column], mode="markers", name=label,
                           marker_color=colour, legendgroup=label, row=1, col=1)
        figure.add_scatter(x=cells["number"], y=cells[column], mode="lines+markers",
                           name=label, marker_color=colour, legendgroup=label,
                           showlegend=False, row=1, col=2)
    figure.update_xaxes(title_text=ACCURACY, row=1, col=1)
    figure.update_xaxes(title_text="trial", row=1, col=2)
    return figure.update_yaxes(title_text="share of the cell's edges", range=[-0.05, 1.05])


def pareto_figure(points: pd.DataFrame) -> go.Figure:
    """Accuracy against the evaluation network's parameters, the Pareto front marked."""
    figure = go.Figure()
    figure.add_scatter(x=points["eval_params_M"], y=points["value"], mode="markers",
                       name="complete trials", text=points["cell"], marker_color="#1f77b4")
    front = points[points["pareto"]].sort_values("eval_params_M")
    figure.add_scatter(x=front["eval_params_M"], y=front["value"], mode="lines+markers",
                       name="Pareto front", line_shape="hv", marker_color="#d62728",
                       text=front["cell"])
    return figure.update_layout(xaxis_title="parameters of the cell's NB201 network (M)",
                                yaxis_title=ACCURACY)


def importance_figure(importances: dict[str, float], top: int = 15) -> go.Figure:
    """The start-vector dimensions that mattered most (fANOVA importances)."""
    ranked = sorted(importances.items(), key=lambda item: item[1])[-top:]
    figure = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked],
                              orientation="h"))
    return figure.update_layout(xaxis_title="importance", height=120 + 25 * len(ranked))


def _drawings(cell: str) -> list[CellDrawing]:
    genotype = parse_genotype(cell)
    return space_of(genotype).drawing(genotype)


def _colour(op: str) -> str:
    return OP_COLOURS.get(op, "#bbbbbb")


def cell_figure(cell: str) -> go.Figure:
    """The cell drawn as its DAG (NB201), or both cells (DARTS), edges labelled by op."""
    graphs = _drawings(cell)
    figure = make_subplots(rows=1, cols=len(graphs), subplot_titles=[g[0] for g in graphs]
                           if len(graphs) > 1 else None)
    for col, (_, nodes, lines) in enumerate(graphs, start=1):
        for xs, ys, (mx, my), op in lines:
            figure.add_scatter(x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="skip",
                               line=dict(color=_colour(op), width=3,
                                         dash="dot" if op in ("none", "concat") else "solid"),
                               row=1, col=col)
            if op != "concat":
                figure.add_annotation(x=mx, y=my, text=op, showarrow=False, bgcolor="white",
                                      font=dict(color=_colour(op)), row=1, col=col)
        figure.add_scatter(x=[p[0] for p in nodes.values()], y=[p[1] for p in nodes.values()],
                           mode="markers+text", text=list(nodes), showlegend=False,
                           marker=dict(size=30, color="white", line=dict(width=2)),
                           textposition="middle center", hoverinfo="skip", row=1, col=col)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure.update_layout(height=360 if len(graphs) == 1 else 480, plot_bgcolor="white")


def cell_svg(cell: str, width: int = 480) -> str:
    """The cell (or both DARTS cells) as a small standalone SVG, for the dashboard."""
    panels = []
    offset = 0.0
    for title, nodes, lines in _drawings(cell):
        xs = [p[0] for p in nodes.values()] + [x for line in lines for x in line[0]]
        ys = [p[1] for p in nodes.values()] + [y for line in lines for y in line[1]]
        scale = (width - 60) / (max(xs) - min(xs))
        height = (max(ys) - min(ys)) * scale + 60

        def point(x: float, y: float, top: float = offset, hi: float = max(ys),
                  lo: float = min(xs), k: float = scale) -> Point:
            return 30 + (x - lo) * k, top + 40 + (hi - y) * k

        parts = [f'<text x="10" y="{offset + 16:.0f}" font-size="12">{html.escape(title)}'
                 "</text>"]
        for lx, ly, (mx, my), op in lines:
            path = " ".join("{:.1f},{:.1f}".format(*point(x, y))
                            for x, y in zip(lx, ly, strict=True))
            dash = ' stroke-dasharray="4 3"' if op in ("none", "concat") else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{_colour(op)}" '
                         f'stroke-width="2.5"{dash}/>')
            if op != "concat":
                tx, ty = point(mx, my)
                parts.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="11" '
                             f'text-anchor="middle" fill="{_colour(op)}">{html.escape(op)}</text>')
        for name, (x, y) in nodes.items():
            cx, cy = point(x, y)
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="13" fill="white" '
                         f'stroke="black"/><text x="{cx:.1f}" y="{cy + 4:.1f}" font-size="10" '
                         f'text-anchor="middle">{html.escape(name)}</text>')
        panels.append("".join(parts))
        offset += height
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{offset:.0f}">'
            + "".join(panels) + "</svg>")


def compare_figure(frame: pd.DataFrame) -> go.Figure:
    """Each method's validation objective (left) and, if scored, its cells' ground truth
    (right), side by side: the mean over study seeds as a dot, their standard deviation as
    its error bar. Each panel's axis spans its own values, so that 92 and 94 % look apart
    beside objectives of 40 %."""
    columns = [(1, "best_value", "best validation objective"),
               (1, "mean_value", "mean validation objective of the trials"),
               (2, "best_cifar10_test", "best cell's CIFAR-10 test accuracy (table)"),
               (2, "mean_cifar10_test", "mean CIFAR-10 test accuracy of the cells (table)"),
               (2, "max_cifar10_test", "best of the cells' CIFAR-10 test accuracy (table)"),
               (2, "judge_cifar10_test", "the selection stage's pick (table)"),
               (2, "retrain_test_acc", "best cell retrained from scratch, test accuracy")]
    figure = make_subplots(rows=1, cols=2, subplot_titles=(
        "validation objective", "ground truth of the cells"))
    grouped = frame.groupby("method", sort=False)
    spans: dict[int, list[float]] = {1: [], 2: []}
    for panel, column, label in columns:
        if column in frame:
            mean, spread = grouped[column].mean(), grouped[column].std(ddof=1).fillna(0.0)
            figure.add_scatter(x=list(grouped.groups), y=mean, name=label,
                               mode="markers", marker=dict(size=11),
                               error_y=dict(array=spread), offsetgroup=column,
                               row=1, col=panel)
            spans[panel] += [*(mean - spread).dropna(), *(mean + spread).dropna()]
    for panel, values in spans.items():  # grouped markers would otherwise start at 0
        if values:
            pad = max(0.5, 0.1 * (max(values) - min(values)))
            figure.update_yaxes(range=[min(values) - pad, max(values) + pad], row=1, col=panel)
    return figure.update_layout(scattermode="group", yaxis_title="accuracy (%)",
                                legend=dict(orientation="h", y=-0.3), height=560)


def judges_figure(scores: pd.DataFrame, *, goal: tuple[float, float] = (40, 0.3)
                  ) -> go.Figure:
    """Each judge's mean regret (table points lost against the best candidate) against
    its cost in training epochs per candidate, for draws of 5 and of 10 candidates: one
    colour per family of judges, each marked with its rule; the box below and left of
    ``goal`` (epochs, regret) is where a judge meets it."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=(
        "choosing among 5 candidates", "choosing among 10 candidates"))
    families = list(dict.fromkeys(scores["family"]))
    for col, size in enumerate((5, 10), start=1):
        for index, family in enumerate(families):
            rows = scores[scores["family"] == family]
            figure.add_scatter(x=rows[f"epochs_per_candidate_{size}"],
                               y=rows[f"regret_{size}"], text=rows["rule"],
                               hovertext=rows["judge"], name=family, legendgroup=family,
                               mode="markers+text", textposition="middle right",
                               textfont=dict(size=9), showlegend=col == 1,
                               marker=dict(size=9, color=TRIAL_COLOURS[index]),
                               row=1, col=col)
        figure.add_shape(type="rect", x0=0, x1=goal[0], y0=0, y1=goal[1], line_width=0,
                         fillcolor="rgba(44, 160, 44, 0.12)", row=1, col=col)
        figure.update_xaxes(title_text="training epochs per candidate",
                            range=[-2, max(scores[f"epochs_per_candidate_{size}"]) + 12],
                            row=1, col=col)
    return figure.update_layout(yaxis_title="mean regret (CIFAR-10 test points, table)",
                                height=650, width=1300, legend=dict(font=dict(size=10)))


def epoch_score_figure(epochs: pd.DataFrame) -> go.Figure:
    """The ground-truth score of the cell each search would return after each epoch: the
    mean over a method's complete trials, with the skip/none share of those cells."""
    means = epochs.groupby(["method", "epoch"], sort=False)[
        ["cifar10_test", "skip_share", "none_share"]].mean().reset_index()
    figure = make_subplots(rows=1, cols=2, subplot_titles=(
        "CIFAR-10 test accuracy of the cell (table)", "share of skip_connect + none"))
    for i, (method, rows) in enumerate(means.groupby("method", sort=False)):
        colour = METHOD_COLOURS[i % len(METHOD_COLOURS)]
        figure.add_scatter(x=rows["epoch"], y=rows["cifar10_test"], name=method,
                           line=dict(color=colour), row=1, col=1)
        figure.add_scatter(x=rows["epoch"], y=rows["skip_share"] + rows["none_share"],
                           name=method, line=dict(color=colour), showlegend=False,
                           row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    return figure


def incumbent_figure(curve: pd.DataFrame) -> go.Figure:
    """Each method's pick (its best trial so far) against the inner epochs spent: its
    validation objective and, where scored, its cell's table score; mean over seeds."""
    panels = [c for c in ("best_value", "best_cifar10_test") if c in curve]
    titles = {"best_value": "validation objective of the pick",
              "best_cifar10_test": "CIFAR-10 test accuracy of its cell (table)"}
    figure = make_subplots(rows=1, cols=len(panels),
                           subplot_titles=[titles[p] for p in panels])
    for i, (method, rows) in enumerate(curve.groupby("method", sort=False)):
        colour = METHOD_COLOURS[i % len(METHOD_COLOURS)]
        for col, panel in enumerate(panels, start=1):
            figure.add_scatter(x=rows["epochs"], y=rows[panel], name=method, mode="lines",
                               line=dict(color=colour, shape="hv"), showlegend=col == 1,
                               row=1, col=col)
    figure.update_xaxes(title_text="inner epochs spent")
    return figure


def picks_figure(summary: pd.DataFrame, *, lines: Sequence[tuple[float, str]] = (
        (94.0, "goal"), (94.37, "space optimum"))) -> go.Figure:
    """A panel per setting: each method's pick by the judge beside the best of its cells
    (table CIFAR-10 test accuracy), after the first searches (light) and after all
    (dark), the mean over seeds as a dot and their standard deviation as its error bar;
    dotted lines at ``lines`` (accuracy, label)."""
    settings = list(dict.fromkeys(summary["setting"]))
    figure = make_subplots(rows=1, cols=len(settings), subplot_titles=settings,
                           shared_yaxes=True)
    budgets = list(dict.fromkeys(summary["budget"]))
    shades = {"judge_pick": ("#9ecae1", "#08519c"), "best_of_its_cells": ("#fdae6b", "#a63603")}
    labels = {"judge_pick": "the judge's pick", "best_of_its_cells": "best of its cells"}
    for col, setting in enumerate(settings, start=1):
        rows = summary[summary["setting"] == setting]
        for measure, colours in shades.items():
            for k, budget in enumerate(budgets):
                part = rows[rows["budget"] == budget]
                figure.add_scatter(
                    x=part["method"], y=part[f"{measure}_mean"], mode="markers",
                    error_y=dict(array=part[f"{measure}_std"]), showlegend=col == 1,
                    marker=dict(size=11, color=colours[min(k, 1) if len(budgets) > 1 else 1]),
                    name=f"{labels[measure]}, {budget} searches",
                    offsetgroup=f"{measure} {budget}", row=1, col=col)
        for k, (value, label) in enumerate(lines):
            notes = dict(annotation_text=label, annotation_position=(
                "top right" if k % 2 else "bottom right")) if col == len(settings) else {}
            figure.add_hline(y=value, line=dict(dash="dot", color="#555555"), row=1, col=col,
                             **notes)
    low = min((summary[f"{m}_mean"] - summary[f"{m}_std"]).min() for m in shades)
    high = max(*((summary[f"{m}_mean"] + summary[f"{m}_std"]).max() for m in shades),
               *(value for value, _ in lines))
    figure.update_yaxes(range=[low - 0.3, high + 0.3])  # a line would otherwise start it at 0
    figure.update_yaxes(title_text="CIFAR-10 test accuracy (%, table)", row=1, col=1)
    return figure.update_layout(scattermode="group", legend=dict(orientation="h", y=-0.2),
                                height=520)


class ImageExportError(RuntimeError):
    """Figures cannot be written as images on this machine (no kaleido or no Chrome)."""


def image_name(title: str) -> str:
    """A file name for a section's figure: its title up to any bracket, as a slug."""
    words = re.findall(r"[a-z0-9]+", title.split(" (")[0].lower())
    return "-".join(words) + ".png"


def write_images(sections: Sequence[tuple[str, go.Figure | str]], folder: Path) -> list[Path]:
    """Write each section's figure as a PNG in ``folder`` (with kaleido and Chrome); a
    section of text (a table) has none.

    Raises:
        ImageExportError: kaleido or a Chrome/Chromium browser is missing.
    """
    import plotly.io as pio

    drawn = [(title, part) for title, part in sections if isinstance(part, go.Figure)]
    paths = [folder / image_name(title) for title, _ in drawn]
    figures = [figure for _, figure in drawn]
    try:
        pio.write_images(figures, paths, width=1000,
                         height=[f.layout.height or 500 for f in figures])
    except (ImportError, ValueError, RuntimeError) as error:
        raise ImageExportError(
            f"cannot write images ({' '.join(str(error).split())[:200]}); they need "
            "`pip install 'globaldarts[images]'` and a Chrome or Chromium browser") from error
    return paths
