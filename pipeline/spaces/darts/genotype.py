"""DARTS CNN cells as plain data: a normal and a reduction cell, each of 4 intermediate
nodes that sum two (op, input) pairs, written as DARTS' ``Genotype(...)`` literal (which
NNI and NASLib read too), and read back without evaluating it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import ClassVar

from pipeline.spaces.base import GenotypeError, op_shares

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
MAX_NODES = 64  # a cell of more nodes is no DARTS cell; a larger range is refused unbuilt

Edge = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DartsGenotype:
    """A DARTS cell pair: per cell type, two (op, input) pairs per intermediate node, and
    the nodes concatenated into the output (inputs 0 and 1 are the previous two cells)."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    space: ClassVar[str] = "darts"

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

    @property
    def connected(self) -> bool:
        """Whether both cells' outputs depend on their inputs: some concatenated node is
        reached from the two input nodes along edges other than ``none``."""
        return all(_reaches_output(edges, concat) for edges, concat in (
            (self.normal, self.normal_concat), (self.reduce, self.reduce_concat)))


def _reaches_output(edges: tuple[Edge, ...], concat: tuple[int, ...]) -> bool:
    reached = {0, 1}
    for k, (op, src) in enumerate(edges):
        if op != "none" and src in reached:
            reached.add(k // 2 + 2)
    return any(node in reached for node in concat)


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
        if not 0 <= start <= stop <= MAX_NODES:
            raise GenotypeError(f"a concat range(a, b) names nodes 0..{MAX_NODES - 1}")
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


