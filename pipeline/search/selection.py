"""Perturbation-based selection (DARTS-PT; Wang et al., ICLR 2021; ruocwang/darts-pt): the
cell is chosen edge by edge after the search, not read off the alphas' argmax.

The edges are taken in an order drawn from the search's seed. On each, every op the cell
may hold is removed in turn (its mixing weight set to 0) and the supernet's validation
accuracy measured, its batch norms normalising by each batch's statistics as in the
published code (the running statistics of the mixture do not fit a perturbed or partly
decided supernet); the edge keeps the op whose removal lowers it most, and mixes by that
op alone from then on. In a space whose cells keep a few of each node's inputs (DARTS:
two), the inputs are then chosen the same way, node by node: the input whose removal
lowers the accuracy least goes, until the node keeps its two. The supernet is fine-tuned
for ``tune_epochs`` epochs between one decision and the next (the published code: 5, with
a fresh SGD at a tenth of the search's learning rate); those epochs count as the search's
own. As published, the DARTS space decides a normal and a reduction edge (or node) at a
time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.spaces import CellSpace

# One decision: ("op", rows) chooses the op of each row; ("inputs", rows) chooses which
# of a node's input rows stay.
Decision = tuple[str, tuple[int, ...]]


def decisions(space: CellSpace, seed: int) -> list[Decision]:
    """Every decision of a selection, in order: the edges' ops (a row per cell type at a
    time, in an order drawn from ``seed``), then the nodes' inputs where the space keeps
    only some of them."""
    rng = random.Random(seed)
    groups = list(dict.fromkeys(space.edge_groups))
    by_group = [[row for row, group in enumerate(space.edge_groups) if group == name]
                for name in groups]
    for rows in by_group:
        rng.shuffle(rows)
    plan: list[Decision] = [("op", rows) for rows in zip(*by_group, strict=True)]
    nodes = [[node for node in space.node_inputs if node[0] in rows] for rows in by_group]
    for group in nodes:
        rng.shuffle(group)
    plan += [("inputs", tuple(node[0] for node in pair)) for pair in zip(*nodes, strict=True)]
    return plan


def tune_epochs(space: CellSpace, tune: int) -> int:
    """Fine-tuning epochs of a whole selection: ``tune`` between consecutive decisions."""
    return max(len(decisions(space, 0)) - 1, 0) * tune


class PerturbationSelection:
    """A selection in progress: the op each decided row keeps and the rows dropped, and
    the mixing weights they give a supernet (``project``)."""

    def __init__(self, space: CellSpace, *, seed: int) -> None:
        self.space = space
        self.plan = decisions(space, seed)
        self.cell_ops = [space.ops.index(op) for op in space.cell_ops]
        self.chosen: dict[int, int] = {}
        self.dropped: set[int] = set()
        self.done = 0

    @property
    def finished(self) -> bool:
        return self.done == len(self.plan)

    def decide_due(self, since: int, tune: int, weights: Tensor,
                   accuracy: Callable[[Tensor], float]) -> None:
        """Make the decisions due ``since`` epochs after the search's last (the first at
        once, then one every ``tune`` epochs; all at once without fine-tuning)."""
        due = min(since // tune + 1 if tune else len(self.plan), len(self.plan))
        while self.done < due:
            self.decide(weights, accuracy)

    def applied(self, weights: Tensor | None, alphas: Tensor) -> Tensor | None:
        """A step's mixing weights (None: the alphas' softmax) with the decisions made so
        far applied."""
        if not self.done:
            return weights
        return self.project(F.softmax(alphas, dim=-1) if weights is None else weights)

    def project(self, weights: Tensor) -> Tensor:
        """``weights`` (edges, ops) with each decided row one-hot on its op and each
        dropped row zero."""
        projected = weights.clone()
        for row, op in self.chosen.items():
            projected[row] = 0.0
            projected[row, op] = 1.0
        for row in self.dropped:
            projected[row] = 0.0
        return projected

    def decide(self, weights: Tensor, accuracy: Callable[[Tensor], float]) -> None:
        """Make the next decision, measuring ``accuracy`` (the supernet's validation
        accuracy, mixed by the weights given) with each candidate removed."""
        kind, rows = self.plan[self.done]
        projected = self.project(weights)
        for row in rows:
            if kind == "op":
                self.chosen[row] = min(self.cell_ops, key=lambda op: accuracy(
                    _without(projected, row, op)))
            else:
                self._choose_inputs(row, weights, accuracy)
        self.done += 1

    def _choose_inputs(self, first: int, weights: Tensor,
                       accuracy: Callable[[Tensor], float]) -> None:
        """Drop the inputs of the node fed by row ``first`` whose removal harms least, one
        at a time, until it keeps as many as its space's cells do."""
        node = next(rows for rows in self.space.node_inputs if rows[0] == first)
        kept = [row for row in node if row not in self.dropped]
        while len(kept) > self.space.kept_inputs:
            projected = self.project(weights)
            drop = max(kept, key=lambda row: accuracy(_without(projected, row)))
            self.dropped.add(drop)
            kept.remove(drop)

    def state_dict(self) -> dict[str, Any]:
        return {"chosen": [[row, op] for row, op in self.chosen.items()],
                "dropped": sorted(self.dropped), "done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.chosen = {int(row): int(op) for row, op in state["chosen"]}
        self.dropped = {int(row) for row in state["dropped"]}
        self.done = int(state["done"])


def _without(weights: Tensor, row: int, op: int | None = None) -> Tensor:
    """``weights`` with one op of a row (or the whole row) set to 0."""
    removed = weights.clone()
    with torch.no_grad():
        if op is None:
            removed[row] = 0.0
        else:
            removed[row, op] = 0.0
    return removed


__all__ = ["Decision", "PerturbationSelection", "decisions", "tune_epochs"]

