"""Cell spaces and their genotypes (plain data, no torch).

NAS-Bench-201: a 4-node cell whose 6 edges ``j <- i`` (i < j) each carry one of five
operations. The cell string is NB201's own format, nodes separated by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
SKIP_OPS = frozenset({"skip_connect"})
POOL_OPS = frozenset({"avg_pool_3x3", "max_pool_3x3"})
NONE_OPS = frozenset({"none"})


class GenotypeError(ValueError):
    """A cell string or op list that does not describe a cell of the space."""


def edge_name(edge: tuple[int, int]) -> str:
    """Name an edge ``(to, from)`` as NB201 does: ``"to<-from"``."""
    return f"{edge[0]}<-{edge[1]}"


@dataclass(frozen=True, slots=True)
class NB201Genotype:
    """One NB201 cell: an op name per edge, in ``NB201_EDGES`` order."""

    ops: tuple[str, ...]

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


def op_shares(ops: Sequence[str]) -> dict[str, float]:
    """Share of the given ops that are skip connections, pooling and ``none``."""
    n = len(ops)
    return {
        "skip_share": sum(op in SKIP_OPS for op in ops) / n,
        "pool_share": sum(op in POOL_OPS for op in ops) / n,
        "none_share": sum(op in NONE_OPS for op in ops) / n,
    }


def all_nb201_genotypes() -> Iterator[NB201Genotype]:
    """Yield all 5**6 = 15,625 NB201 cells."""
    for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)):
        yield NB201Genotype(ops)




# -- the DARTS CNN space ------------------------------------------------------------------

DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
DARTS_STEPS = 4

Edge = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DartsGenotype:
    """A DARTS cell pair: per cell type, two (op, input) pairs per intermediate node, and
    the nodes concatenated into the output (inputs 0 and 1 are the previous two cells)."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("normal", "reduce"):
            edges, concat = getattr(self, name), getattr(self, f"{name}_concat")
            if len(edges) % 2 or not edges:
                raise GenotypeError(f"{name}: two (op, input) pairs per node, got {len(edges)}")
            for i, (op, src) in enumerate(edges):
                if op not in DARTS_OPS:
                    raise GenotypeError(f"unknown DARTS op {op!r} (valid: {', '.join(DARTS_OPS)})")
                if not 0 <= src < i // 2 + 2:
                    raise GenotypeError(f"{name}: node {i // 2 + 2} cannot read node {src}")
            nodes = len(edges) // 2 + 2
            if not concat or any(not 0 <= c < nodes for c in concat):
                raise GenotypeError(f"{name}_concat must name nodes below {nodes}: {concat}")

    def to_literal(self) -> str:
        """The ``Genotype(...)`` literal of DARTS' ``genotypes.py`` (and NNI, NASLib)."""
        def edges(items: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {src})" for op, src in items) + "]"

        return (f"Genotype(normal={edges(self.normal)}, normal_concat={list(self.normal_concat)}"
                f", reduce={edges(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    @classmethod
    def parse(cls, text: str) -> DartsGenotype:
        """Read a ``Genotype(...)`` literal without evaluating it.

        Raises:
            GenotypeError: not such a literal, or not a valid cell pair.
        """
        try:
            call = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as error:
            raise GenotypeError(f"not a Genotype(...) literal: {error.msg}") from None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id == "Genotype" and not call.args):
            raise GenotypeError("expected Genotype(normal=..., normal_concat=..., reduce=..., "
                                "reduce_concat=...)")
        fields = {keyword.arg: keyword.value for keyword in call.keywords}
        expected = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if set(fields) != expected:
            raise GenotypeError(f"Genotype needs exactly the fields {', '.join(sorted(expected))}")
        return cls(normal=_edges(fields["normal"]), normal_concat=_concat(fields["normal_concat"]),
                   reduce=_edges(fields["reduce"]), reduce_concat=_concat(fields["reduce_concat"]))

    def to_str(self) -> str:
        """The cell pair as text: its ``Genotype(...)`` literal."""
        return self.to_literal()

    def to_json(self) -> dict[str, object]:
        return {"space": "darts", "normal": [list(e) for e in self.normal],
                "normal_concat": list(self.normal_concat),
                "reduce": [list(e) for e in self.reduce],
                "reduce_concat": list(self.reduce_concat)}

    @classmethod
    def from_json(cls, data: object) -> DartsGenotype:
        """Read the JSON form of ``to_json``.

        Raises:
            GenotypeError: not a DARTS cell pair in that form.
        """
        if not isinstance(data, dict) or data.get("space") != "darts":
            raise GenotypeError("expected a JSON object with \"space\": \"darts\"")
        try:
            return cls(normal=tuple((str(op), int(src)) for op, src in data["normal"]),
                       normal_concat=tuple(int(c) for c in data["normal_concat"]),
                       reduce=tuple((str(op), int(src)) for op, src in data["reduce"]),
                       reduce_concat=tuple(int(c) for c in data["reduce_concat"]))
        except (KeyError, TypeError, ValueError) as error:
            raise GenotypeError(f"malformed DARTS genotype JSON: {error}") from None

    def op_shares(self) -> dict[str, float]:
        """Share of both cells' edges that are skip connections, pooling and ``none``."""
        return op_shares([op for op, _ in self.normal + self.reduce])


def parse_genotype(text: str) -> NB201Genotype | DartsGenotype:
    """Read a cell of either space from its text form.

    Raises:
        GenotypeError: neither an NB201 cell string nor a DARTS ``Genotype(...)`` literal.
    """
    if text.lstrip().startswith("Genotype("):
        return DartsGenotype.parse(text)
    return NB201Genotype.parse(text)


def _edges(node: ast.expr) -> tuple[Edge, ...]:
    try:
        value = ast.literal_eval(node)
        edges = tuple((op, src) for op, src in value)
    except (ValueError, TypeError, SyntaxError):
        raise GenotypeError("cell edges must be a list of ('op', input) pairs") from None
    if not all(isinstance(op, str) and isinstance(src, int) for op, src in edges):
        raise GenotypeError("cell edges must be a list of ('op', input) pairs")
    return edges


def _concat(node: ast.expr) -> tuple[int, ...]:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "range" and len(node.args) == 2 and not node.keywords):
        start, stop = (_concat_bound(arg) for arg in node.args)
        return tuple(range(start, stop))
    try:
        value = tuple(ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError):
        value = ("not a list",)
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise GenotypeError("a concat must be a list of node numbers or range(a, b)")
    return value


def _concat_bound(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    raise GenotypeError("range() in a concat takes two integers")


__all__ = [
    "DARTS_OPS",
    "DartsGenotype",
    "NB201_EDGES",
    "NB201_OPS",
    "GenotypeError",
    "NB201Genotype",
    "all_nb201_genotypes",
    "edge_name",
    "op_shares",
    "parse_genotype",
]
