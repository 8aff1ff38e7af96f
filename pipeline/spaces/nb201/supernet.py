"""The NB201 supernet: mixed operations weighted by architecture logits (alphas).

All edges leaving a node see the same input, so what ops derive from it (its ReLU, its
3x3 average) is computed once per node, not once per edge and op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.spaces.base import Genotype, Supernet, ops_to_run
from pipeline.spaces.nb201.genotype import NB201_EDGES, NB201_NODES, NB201_OPS, NB201Genotype
from pipeline.spaces.nb201.network import NB201Skeleton
from pipeline.spaces.ops import ResNetBlock, avg_pool_3x3


class NodeInput:
    """A node's output and the tensors its out-edges derive from it, each made once."""

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self._relu: Tensor | None = None
        self._pool: Tensor | None = None

    @property
    def relu(self) -> Tensor:
        if self._relu is None:
            self._relu = F.relu(self.x)
        return self._relu

    @property
    def pool(self) -> Tensor:
        if self._pool is None:
            self._pool = avg_pool_3x3(self.x)
        return self._pool


class _Skip(nn.Module):
    def forward(self, node: NodeInput) -> Tensor:
        return node.x


class _Pool(nn.Module):
    def forward(self, node: NodeInput) -> Tensor:
        return node.pool


class _ConvBN(nn.Module):
    """NB201's ReLU-Conv-BN, reading the node's shared ReLU (no affine norm, as in DARTS)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                              bias=False)
        self.bn = nn.BatchNorm2d(channels, affine=False)

    def forward(self, node: NodeInput) -> Tensor:
        out: Tensor = self.bn(self.conv(node.relu))
        return out


# name -> factory(channels) of an op that reads a NodeInput; ``none`` adds nothing.
SEARCH_OPS: dict[str, Callable[[int], nn.Module]] = {
    "skip_connect": lambda channels: _Skip(),
    "nor_conv_1x1": lambda channels: _ConvBN(channels, 1),
    "nor_conv_3x3": lambda channels: _ConvBN(channels, 3),
    "avg_pool_3x3": lambda channels: _Pool(),
}


class MixedOp(nn.Module):
    """A softmax-weighted sum of every candidate op on one edge.

    ``none`` contributes exactly zero to the sum, so it is left out of the computation;
    its weight still takes part in the softmax.
    """

    def __init__(self, channels: int, op_names: Sequence[str]) -> None:
        super().__init__()
        unknown = [name for name in op_names if name != "none" and name not in SEARCH_OPS]
        if unknown:
            raise KeyError(f"unknown op {unknown[0]!r} (valid: none, {', '.join(SEARCH_OPS)})")
        self.op_names = tuple(op_names)
        self.ops = nn.ModuleDict({
            name: SEARCH_OPS[name](channels) for name in op_names if name != "none"
        })
        self._indices = [self.op_names.index(name) for name in self.ops]

    def forward(self, node: NodeInput, weights: Tensor, aux: Tensor | None = None,
                running: Sequence[bool] | None = None) -> Tensor:
        """The mixture by ``weights`` (n_ops,), plus ``aux`` times the edge's input when
        there is an auxiliary skip; only the ops ``running`` marks run (default: all)."""
        terms = [weights[i] * op(node) for i, op in zip(self._indices, self.ops.values(),
                                                        strict=True)
                 if running is None or running[i]]
        if aux is not None:
            terms.append(aux * node.x)
        if not terms:
            return node.x.mul(0.0)
        total: Tensor = sum(terms[1:], terms[0])
        return total

    def forward_op(self, node: NodeInput, index: int) -> Tensor:
        """Run only the op at ``index`` (a discrete cell with inherited weights)."""
        name = self.op_names[index]
        out: Tensor = node.x.mul(0.0) if name == "none" else self.ops[name](node)
        return out


class SearchCell(nn.Module):
    """NB201's 4-node DAG with a mixed op on each of its 6 edges."""

    def __init__(self, channels: int, op_names: Sequence[str]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(channels, op_names) for _ in NB201_EDGES)

    def forward(self, x: Tensor, choice: Sequence[int] | None = None, *,
                weights: Tensor | None = None, aux: Tensor | None = None,
                running: Sequence[Sequence[bool]] | None = None) -> Tensor:
        """Mix the ops ``running`` marks (default: all) by ``weights`` (edges, ops) (and an
        auxiliary skip of weight ``aux``), or run one op per edge (``choice``)."""
        nodes = [NodeInput(x)]
        for to in range(1, NB201_NODES):
            total: Tensor | None = None
            for i, (edge_to, src) in enumerate(NB201_EDGES):
                if edge_to != to:
                    continue
                edge = cast(MixedOp, self.edges[i])
                if choice is not None:
                    out = edge.forward_op(nodes[src], choice[i])
                else:
                    assert weights is not None
                    out = edge(nodes[src], weights[i], aux,
                               None if running is None else running[i])
                total = out if total is None else total + out
            assert total is not None
            nodes.append(NodeInput(total))
        return nodes[-1].x


class NB201Supernet(NB201Skeleton, Supernet):
    """The NB201 supernet; its alphas (edges, ops) are a registered parameter.

    Search cells use batch norm without affine parameters, as in DARTS.
    """

    def __init__(self, *, channels: int, cells_per_stage: int, num_classes: int,
                 in_channels: int, op_names: Sequence[str] = NB201_OPS,
                 aux_skip: bool = False) -> None:
        super().__init__(lambda width: SearchCell(width, op_names), channels=channels,
                         cells_per_stage=cells_per_stage, num_classes=num_classes,
                         in_channels=in_channels)
        self.op_names = tuple(op_names)
        self.alphas = nn.Parameter(torch.zeros(len(NB201_EDGES), len(op_names)))
        if aux_skip:
            self.add_aux_skip()

    def forward(self, x: Tensor, choice: Sequence[int] | None = None, *,
                weights: Tensor | None = None) -> Tensor:
        """Logits (B, classes) for images (B, C, H, W): the mixture by ``weights`` (edges,
        ops; by default the alphas' softmax), or the cell ``choice``."""
        if choice is None and weights is None:
            weights = F.softmax(self.alphas, dim=-1)
        running = None if weights is None else ops_to_run(weights)
        x = self.stem(x)
        for layer in self.layers:
            x = (layer(x) if isinstance(layer, ResNetBlock)
                 else layer(x, choice, weights=weights, aux=self.aux_weight(), running=running))
        logits: Tensor = self.classifier(self.head(x))
        return logits

    def choice(self, genotype: Genotype) -> list[int]:
        """The op index per edge that runs ``genotype``."""
        assert isinstance(genotype, NB201Genotype)
        return list(genotype.indices)

    def genotype(self, weights: Tensor | None = None) -> NB201Genotype:
        """The cell the alphas (or mixing ``weights``) select: the argmax op on each edge
        (``none`` can win)."""
        indices = (self.alphas if weights is None else weights).detach().argmax(dim=-1).tolist()
        return NB201Genotype(tuple(self.op_names[i] for i in indices))
