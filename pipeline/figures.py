"""Plotly figures of a study, built from the frames of ``pipeline.report``."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipeline.spaces import NB201_EDGES, NB201_NODES, NB201Genotype

STATE_COLOURS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728",
                 "RUNNING": "#7f7f7f", "WAITING": "#bcbd22"}
OP_COLOURS = {"none": "#bbbbbb", "skip_connect": "#d62728", "nor_conv_1x1": "#2ca02c",
              "nor_conv_3x3": "#1f77b4", "avg_pool_3x3": "#ff7f0e"}
ACCURACY = "validation accuracy (%)"


def history_figure(history: pd.DataFrame) -> go.Figure:
    """Each trial's value by state, and the best complete value so far."""
    figure = go.Figure()
    for state, group in history.groupby("state"):
        figure.add_scatter(x=group["number"], y=group["value"], mode="markers", name=state,
                           marker_color=STATE_COLOURS.get(str(state)))
    figure.add_scatter(x=history["number"], y=history["best_so_far"], mode="lines",
                       name="best so far", line_shape="hv", line_color="black")
    return figure.update_layout(xaxis_title="trial", yaxis_title=ACCURACY)


def curves_figure(curves: pd.DataFrame) -> go.Figure:
    """Validation accuracy per epoch of every trial; an x where a pruned trial stopped."""
    figure = go.Figure()
    for (number, state), group in curves.groupby(["number", "state"], sort=True):
        colour = STATE_COLOURS.get(str(state))
        figure.add_scatter(x=group["epoch"], y=group["valid_acc"], mode="lines",
                           name=f"trial {number}", line_color=colour, opacity=0.7,
                           legendgroup=str(state), hovertext=group["genotype"])
        if state == "PRUNED":
            last = group.iloc[-1]
            figure.add_scatter(x=[last["epoch"]], y=[last["valid_acc"]], mode="markers",
                               marker_symbol="x", marker_size=10, marker_color=colour,
                               showlegend=False, hoverinfo="skip")
    return figure.update_layout(xaxis_title="epoch", yaxis_title=ACCURACY)


def alpha_figure(panels: Sequence[tuple[str, pd.DataFrame, pd.DataFrame | None]]
                 ) -> go.Figure:
    """Heatmaps (edge x op) of alpha0 and of the final mixing weights, one row per trial."""
    titles = [t for label, _, _ in panels for t in (f"{label}: alpha0", f"{label}: final softmax")]
    figure = make_subplots(rows=len(panels), cols=2, subplot_titles=titles,
                           horizontal_spacing=0.18, vertical_spacing=0.25)
    for row, (_, start, end) in enumerate(panels, start=1):
        figure.add_heatmap(z=start.to_numpy(), x=list(start.columns), y=list(start.index),
                           colorscale="RdBu", zmid=0, showscale=False, row=row, col=1)
        if end is not None:
            figure.add_heatmap(z=end.to_numpy(), x=list(end.columns), y=list(end.index),
                               colorscale="Viridis", row=row, col=2)
    return figure.update_layout(height=330 * len(panels))


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


# Edges between neighbours are straight; longer ones bend below (span 2) or above (span 3).
_BEND = {1: 0.0, 2: -0.5, 3: 0.75}


def _arc(src: int, to: int) -> tuple[list[float], list[float], tuple[float, float]]:
    """Points of the edge from node ``src`` to ``to``, and where its label goes."""
    height = _BEND[to - src]
    xs = [src + (to - src) * step / 20 for step in range(21)]
    ys = [4 * height * (x - src) / (to - src) * (1 - (x - src) / (to - src)) for x in xs]
    label_y = height if height else 0.14
    return xs, ys, ((src + to) / 2, label_y)


def cell_figure(cell: str) -> go.Figure:
    """The NB201 cell as its 4-node DAG, each edge labelled with its op."""
    genotype = NB201Genotype.parse(cell)
    figure = go.Figure()
    for op, (to, src) in zip(genotype.ops, NB201_EDGES, strict=True):
        xs, ys, (mx, my) = _arc(src, to)
        figure.add_scatter(x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="skip",
                           line=dict(color=OP_COLOURS[op], width=3,
                                     dash="dot" if op == "none" else "solid"))
        figure.add_annotation(x=mx, y=my, text=op, showarrow=False, bgcolor="white",
                              font=dict(color=OP_COLOURS[op]))
    nodes = list(range(NB201_NODES))
    figure.add_scatter(x=nodes, y=[0] * len(nodes), mode="markers+text",
                       text=[str(n) for n in nodes],
                       marker=dict(size=30, color="white", line=dict(width=2)),
                       textposition="middle center", showlegend=False, hoverinfo="skip")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, scaleanchor="x")
    return figure.update_layout(height=320, plot_bgcolor="white")


def cell_svg(cell: str, width: int = 480) -> str:
    """The NB201 cell as a small standalone SVG (no browser or plotly needed)."""
    genotype = NB201Genotype.parse(cell)
    scale, pad = (width - 60) / (NB201_NODES - 1), 30
    height = int(1.6 * scale) + 40

    def point(x: float, y: float) -> tuple[float, float]:
        return pad + x * scale, 20 + (max(_BEND.values()) + 0.1) * scale - y * scale

    parts = []
    for op, (to, src) in zip(genotype.ops, NB201_EDGES, strict=True):
        xs, ys, (mx, my) = _arc(src, to)
        points = (point(x, y) for x, y in zip(xs, ys, strict=True))
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
        dash = ' stroke-dasharray="4 3"' if op == "none" else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{OP_COLOURS[op]}" '
                     f'stroke-width="2.5"{dash}/>')
        tx, ty = point(mx, my)
        parts.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="11" text-anchor="middle" '
                     f'fill="{OP_COLOURS[op]}">{html.escape(op)}</text>')
    for node in range(NB201_NODES):
        cx, cy = point(node, 0)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="12" fill="white" '
                     f'stroke="black"/><text x="{cx:.1f}" y="{cy + 4:.1f}" font-size="12" '
                     f'text-anchor="middle">{node}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            + "".join(parts) + "</svg>")


def compare_figure(frame: pd.DataFrame) -> go.Figure:
    """Each method's best and mean value (and ground truth, if scored), side by side."""
    figure = go.Figure()
    columns = [("best_value", "best validation accuracy"),
               ("mean_value", "mean validation accuracy"),
               ("best_cifar10_test", "best cell's CIFAR-10 test accuracy (table)"),
               ("mean_cifar10_test", "mean CIFAR-10 test accuracy of the cells (table)")]
    for column, label in columns:
        if column in frame:
            error = frame.get(column.replace("mean_", "std_")) if column.startswith(
                "mean_") else None
            figure.add_bar(x=frame["method"], y=frame[column], name=label,
                           error_y=None if error is None else dict(array=error))
    return figure.update_layout(barmode="group", yaxis_title="accuracy (%)")
