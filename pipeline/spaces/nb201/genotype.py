"""NAS-Bench-201 cells as plain data: a 4-node cell whose 6 edges ``j <- i`` (i < j) each
carry one of five operations. The cell string is NB201's own format, nodes separated by
``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pipeline.spaces.base import NONE_OPS, GenotypeError, op_shares

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
NB201_NODES = 4
# Edges as (to, from), in the order the cell string lists them.
NB201_EDGES: tuple[tuple[int, int], ...] = tuple(
    (to, src) for to in range(1, NB201_NODES) for src in range(to)
)


def edge_name(edge: tuple[int, int]) -> str:
    """Name an edge ``(to, from)`` as NB201 does: ``"to<-from"``."""
    return f"{edge[0]}<-{edge[1]}"


@dataclass(frozen=True, slots=True)
class NB201Genotype:
    """One NB201 cell: an op name per edge, in ``NB201_EDGES`` order."""

    ops: tuple[str, ...]
    space: ClassVar[str] = "nb201"

    def __post_init__(self) -> None:
        if len(self.ops) != len(NB201_EDGES):
            raise GenotypeError(f"an NB201 cell has {len(NB201_EDGES)} edges, got {len(self.ops)}")
        for op in self.ops:
            if op not in NB201_OPS:
                raise GenotypeError(f"unknown NB201 op {op!r} (valid: {', '.join(NB201_OPS)})")

    @classmethod
    def from_indices(cls, indices: Sequence[int]) -> NB201Genotype:
        """Build a cell from one op index (into ``NB201_OPS``) per edge."""
        return cls(tuple(NB201_OPS[i] for i in indices))

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(NB201_OPS.index(op) for op in self.ops)

    def to_str(self) -> str:
        """Write the cell in NB201's string format."""
        ops = iter(zip(self.ops, NB201_EDGES, strict=True))
        nodes = []
        for to in range(1, NB201_NODES):
            inputs = [f"{op}~{src}" for op, (_, src) in itertools.islice(ops, to)]
            nodes.append("|" + "|".join(inputs) + "|")
        return "+".join(nodes)

    @classmethod
    def parse(cls, text: str) -> NB201Genotype:
        """Read a cell string in NB201's format.

        Raises:
            GenotypeError: the string is not an NB201 cell.
        """
        nodes = text.strip().split("+")
        if len(nodes) != NB201_NODES - 1:
            raise GenotypeError(
                f"an NB201 cell string has {NB201_NODES - 1} '+'-separated nodes: {text!r}"
            )
        ops = []
        for to, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise GenotypeError(f"node {to} must be written |op~input|...|: {node!r}")
            inputs = node[1:-1].split("|")
            if len(inputs) != to:
                raise GenotypeError(f"node {to} must have {to} inputs: {node!r}")
            for expected_src, item in enumerate(inputs):
                op, sep, src = item.partition("~")
                if not sep or src != str(expected_src):
                    raise GenotypeError(f"expected op~{expected_src} in node {to}, got {item!r}")
                ops.append(op)
        return cls(tuple(ops))

    def op_shares(self) -> dict[str, float]:
        """Share of edges that are skip connections, pooling and ``none``."""
        return op_shares(self.ops)

    @property
    def connected(self) -> bool:
        """Whether the cell's output depends on its input: a path of edges other than
        ``none`` leads from node 0 to the last node. A cell without one computes the
        same output for every image, so its network cannot learn."""
        reached = {0}
        for (to, src), op in zip(NB201_EDGES, self.ops, strict=True):
            if src in reached and op not in NONE_OPS:
                reached.add(to)
        return NB201_NODES - 1 in reached

    def to_json(self) -> dict[str, object]:
        """The cell as JSON data: its string and its op per named edge."""
        return {"space": "nb201", "cell": self.to_str(),
                "edges": {edge_name(e): op for e, op in zip(NB201_EDGES, self.ops, strict=True)}}

    @classmethod
    def from_json(cls, data: object) -> NB201Genotype:
        """Read the JSON form of ``to_json``.

        Raises:
            GenotypeError: not an NB201 cell in that form.
        """
        if not isinstance(data, dict) or data.get("space") != "nb201":
            raise GenotypeError("expected a JSON object with \"space\": \"nb201\"")
        edges = data.get("edges")
        names = [edge_name(e) for e in NB201_EDGES]
        if not isinstance(edges, dict) or sorted(edges) != sorted(names):
            raise GenotypeError(f"\"edges\" must name each of {', '.join(names)}")
        genotype = cls(tuple(str(edges[name]) for name in names))
        if "cell" in data and data["cell"] != genotype.to_str():
            raise GenotypeError("\"cell\" and \"edges\" describe different cells")
        return genotype


def all_nb201_genotypes() -> Iterator[NB201Genotype]:
    """Yield all 5**6 = 15,625 NB201 cells."""
    for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)):
        yield NB201Genotype(ops)
