"""The DARTS CNN space's supernet: normal and reduction cells of mixed operations.

Its alphas are one parameter of (2 x 14 edges, 8 ops): the normal cell's rows first,
then the reduction cell's. Batch norm has no affine parameters in the search, and pooling
is followed by one, as in DARTS.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.spaces.base import WEIGHT_FAMILIES, Genotype, Supernet, ops_to_run
from pipeline.spaces.darts.genotype import DARTS_OPS as OP_NAMES
from pipeline.spaces.darts.genotype import DARTS_STEPS, DartsGenotype
from pipeline.spaces.ops import DARTS_OPS, FactorizedReduce, ReLUConvBN

CELL_TYPES = ("normal", "reduce")
EDGES_PER_CELL = sum(2 + i for i in range(DARTS_STEPS))  # 14


def darts_edges() -> list[tuple[int, int]]:
    """The (to, from) node pairs of one cell, in alpha row order."""
    return [(to, src) for to in range(2, DARTS_STEPS + 2) for src in range(to)]


class DartsMixedOp(nn.Module):
    """The softmax-weighted sum of the DARTS ops on one edge (``none`` adds nothing)."""

    def __init__(self, channels: int, stride: int, *, aux_skip: bool = False) -> None:
        super().__init__()
        self.ops = nn.ModuleDict()
        for name in OP_NAMES[1:]:
            op = DARTS_OPS[name](channels, stride, False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            self.ops[name] = op
        self.stride = stride
        # DARTS-' auxiliary skip: the input itself, or on a reducing edge a factorised
        # reduction of it (with weights of its own, as DARTS- has)
        self.aux_skip = (None if not aux_skip else nn.Identity() if stride == 1
                         else FactorizedReduce(channels, channels, affine=False))

    def forward(self, x: Tensor, weights: Tensor, aux: Tensor | None = None,
                running: Sequence[bool] | None = None) -> Tensor:
        """The mixture by ``weights`` (8,), plus ``aux`` times the auxiliary skip; only the
        ops ``running`` marks run (default: all)."""
        terms = [weights[i] * op(x) for i, op in enumerate(self.ops.values(), start=1)
                 if running is None or running[i]]
        if aux is not None and self.aux_skip is not None:
            terms.append(aux * self.aux_skip(x))
        if not terms:
            return self.forward_op(x, 0)
        total: Tensor = sum(terms[1:], terms[0])
        return total

    def forward_op(self, x: Tensor, index: int) -> Tensor:
        if index == 0:  # none
            return x[:, :, ::self.stride, ::self.stride].mul(0.0)
        out: Tensor = self.ops[OP_NAMES[index]](x)
        return out


class DartsSearchCell(nn.Module):
    """A cell of 4 intermediate nodes, each the sum of mixed ops on all earlier nodes."""

    def __init__(self, *, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool, aux_skip: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels, affine=False)
                            if reduction_prev else
                            ReLUConvBN(c_prev_prev, channels, 1, affine=False))
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, affine=False)
        self.edges = nn.ModuleList(
            DartsMixedOp(channels, 2 if reduction and src < 2 else 1, aux_skip=aux_skip)
            for _, src in darts_edges())

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor | None,
                choice: Sequence[int] | None, aux: Tensor | None = None,
                running: Sequence[Sequence[bool]] | None = None) -> Tensor:
        """Mix the ops ``running`` marks (default: all) by ``weights`` (14, 8) (and
        auxiliary skips of weight ``aux``), or run ``choice`` (an op per edge, -1: no
        edge)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for to in range(2, DARTS_STEPS + 2):
            total: Tensor | None = None
            for i, (edge_to, src) in enumerate(darts_edges()):
                if edge_to != to or (choice is not None and choice[i] < 0):
                    continue
                edge: DartsMixedOp = self.edges[i]  # type: ignore[assignment]
                if choice is not None:
                    out = edge.forward_op(states[src], choice[i])
                else:
                    assert weights is not None
                    out = edge(states[src], weights[i], aux,
                               None if running is None else running[i])
                total = out if total is None else total + out
            assert total is not None
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """DARTS' search network: a 3C stem, ``layers`` cells (reductions at a third and two
    thirds of the depth), pooling and a classifier."""

    def __init__(self, *, channels: int, layers: int, num_classes: int,
                 in_channels: int, aux_skip: bool = False) -> None:
        super().__init__()
        stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem))
        c_prev_prev, c_prev, width, reduction_prev = stem, stem, channels, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            width *= 2 if reduction else 1
            self.cells.append(DartsSearchCell(c_prev_prev=c_prev_prev, c_prev=c_prev,
                                              channels=width, reduction=reduction,
                                              reduction_prev=reduction_prev,
                                              aux_skip=aux_skip))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, DARTS_STEPS * width
        self.classifier = nn.Linear(c_prev, num_classes)
        self.op_names = OP_NAMES
        self.alphas = nn.Parameter(torch.zeros(2 * EDGES_PER_CELL, len(OP_NAMES)))
        if aux_skip:
            self.add_aux_skip()

    def forward(self, x: Tensor, choice: Sequence[int] | None = None, *,
                weights: Tensor | None = None) -> Tensor:
        """Logits (B, classes): the mixture by ``weights`` (28 edges, 8 ops; by default the
        alphas' softmax), or the cells ``choice`` (28 op indices)."""
        if choice is None and weights is None:
            weights = F.softmax(self.alphas, dim=-1)
        running = None if weights is None else ops_to_run(weights)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            rows = slice(EDGES_PER_CELL, None) if cell.reduction else slice(0, EDGES_PER_CELL)
            cell_weights = None if weights is None else weights[rows]
            cell_choice = None if choice is None else list(choice)[rows]
            s0, s1 = s1, cell(s0, s1, cell_weights, cell_choice, self.aux_weight(),
                              None if running is None else running[rows])
        logits: Tensor = self.classifier(s1.mean(dim=(2, 3)))
        return logits

    def weight_families(self) -> dict[str, list[Tensor]]:
        """Conv and linear weights by family: stem, normal cells, reduction cells, classifier."""
        families: dict[str, list[Tensor]] = {name: [] for name in WEIGHT_FAMILIES}
        stem_conv: nn.Conv2d = self.stem[0]  # type: ignore[assignment]
        families["stem"] = [stem_conv.weight]
        for cell in self.cells:
            family = "reductions" if cell.reduction else "cells"
            families[family] += [m.weight for m in cell.modules()
                                 if isinstance(m, nn.Conv2d)]
        families["classifier"] = [self.classifier.weight]
        return families

    def genotype(self, weights: Tensor | None = None) -> DartsGenotype:
        """Per node, the two strongest incoming edges (by their best non-``none`` mixing
        weight: the alphas' softmax, or ``weights``), each with its best non-``none`` op."""
        weights = (self.alpha_softmax() if weights is None else weights.detach()).cpu()
        cells = [_derive(weights[:EDGES_PER_CELL]), _derive(weights[EDGES_PER_CELL:])]
        concat = tuple(range(2, DARTS_STEPS + 2))
        return DartsGenotype(normal=cells[0], normal_concat=concat, reduce=cells[1],
                             reduce_concat=concat)

    def choice(self, genotype: Genotype) -> list[int]:
        """The op index per alpha row that runs ``genotype`` (-1 where it has no edge)."""
        assert isinstance(genotype, DartsGenotype)
        picked = [-1] * (2 * EDGES_PER_CELL)
        for offset, edges in ((0, genotype.normal), (EDGES_PER_CELL, genotype.reduce)):
            for k, (op, src) in enumerate(edges):
                picked[offset + darts_edges().index((k // 2 + 2, src))] = OP_NAMES.index(op)
        return picked


def _derive(weights: Tensor) -> tuple[tuple[str, int], ...]:
    """DARTS' rule for one cell's (14, 8) mixing weights."""
    edges: list[tuple[str, int]] = []
    for to in range(2, DARTS_STEPS + 2):
        rows = [(i, src) for i, (edge_to, src) in enumerate(darts_edges()) if edge_to == to]
        strongest = sorted(rows, key=lambda row: -float(weights[row[0], 1:].max()))[:2]
        for i, src in sorted(strongest, key=lambda row: row[1]):
            edges.append((OP_NAMES[1 + int(weights[i, 1:].argmax())], src))
    return tuple(edges)
