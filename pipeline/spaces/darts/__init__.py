"""The DARTS CNN cell space: a normal and a reduction cell, each of 14 edges of 8 ops, of
which the genotype keeps two inputs per node; evaluated in DARTS' 20-cell network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from pipeline.spaces.base import (
    MAX_CELLS,
    CellDrawing,
    CellSpace,
    Genotype,
    SpaceSettings,
    TrainSettings,
)
from pipeline.spaces.darts.genotype import DARTS_OPS, DARTS_STEPS, DartsGenotype
from pipeline.spaces.darts.network import DartsNetwork
from pipeline.spaces.darts.supernet import CELL_TYPES, EDGES_PER_CELL, DartsSupernet, darts_edges


@dataclass(frozen=True)
class DartsSettings:
    """The supernet's depth: cells, two of them reductions."""

    layers: int = 8

    def __post_init__(self) -> None:
        if not 3 <= self.layers <= MAX_CELLS:
            raise ValueError(f"layers must be in 3..{MAX_CELLS} (two are reductions), "
                             f"got {self.layers!r}")


class DartsSpace(CellSpace):
    """DARTS' CNN space (its evaluation protocol: C=36, 20 cells, auxiliary head 0.4, drop
    path 0.2, cutout 16, SGD 0.025 cosine, weight decay 3e-4, 600 epochs of batch 96)."""

    name: ClassVar[str] = "darts"
    ops: ClassVar[tuple[str, ...]] = DARTS_OPS
    edges: ClassVar[tuple[str, ...]] = tuple(
        f"{cell}:{to}<-{src}" for cell in CELL_TYPES for to, src in darts_edges())
    edge_groups: ClassVar[tuple[str, ...]] = tuple(
        cell for cell in CELL_TYPES for _ in darts_edges())
    cell_ops: ClassVar[tuple[str, ...]] = DARTS_OPS[1:]  # a derived cell holds no none
    node_inputs: ClassVar[tuple[tuple[int, ...], ...]] = tuple(
        tuple(offset + row for row, (to, _) in enumerate(darts_edges()) if to == node)
        for offset in (0, EDGES_PER_CELL) for node in range(3, DARTS_STEPS + 2))
    kept_inputs: ClassVar[int] = 2
    protocol: ClassVar[TrainSettings] = TrainSettings(
        epochs=600, batch_size=96, lr=0.025, weight_decay=3e-4, channels=36, cells=20,
        auxiliary_weight=0.4, drop_path=0.2, cutout=16)
    datasets: ClassVar[dict[str, int]] = {"cifar10": 10, "cifar100": 100}
    network_description: ClassVar[str] = (
        "DARTS evaluation network, C=36, 20 cells, auxiliary head not counted")
    settings_type: ClassVar[type[Any]] = DartsSettings

    def claims(self, text: str) -> bool:
        return text.lstrip().startswith("Genotype(")

    def parse(self, text: str) -> DartsGenotype:
        return DartsGenotype.parse(text)

    def from_json(self, data: object) -> DartsGenotype:
        return DartsGenotype.from_json(data)

    def depth(self, settings: SpaceSettings) -> int:
        depth: int = self.own_settings(settings.settings).layers
        return depth

    def supernet(self, settings: SpaceSettings, *, num_classes: int, in_channels: int,
                 aux_skip: bool = False) -> DartsSupernet:
        return DartsSupernet(channels=settings.channels, layers=self.depth(settings),
                             num_classes=num_classes, in_channels=in_channels,
                             aux_skip=aux_skip)

    def network(self, genotype: Genotype, settings: TrainSettings, *, num_classes: int,
                in_channels: int) -> nn.Module:
        assert isinstance(genotype, DartsGenotype)
        return DartsNetwork(genotype, channels=settings.channels, layers=settings.cells,
                            num_classes=num_classes, in_channels=in_channels,
                            auxiliary=settings.auxiliary_weight > 0)

    def drawing(self, genotype: Genotype) -> list[CellDrawing]:
        """Each cell: its two inputs on the left, its nodes in a zigzag, its output."""
        assert isinstance(genotype, DartsGenotype)
        return [_cell_drawing("normal cell", genotype.normal, genotype.normal_concat),
                _cell_drawing("reduction cell", genotype.reduce, genotype.reduce_concat)]


def _cell_drawing(title: str, edges: tuple[tuple[str, int], ...],
                  concat: tuple[int, ...]) -> CellDrawing:
    nodes = {"k-2": (0.0, 1.2), "k-1": (0.0, -1.2), "out": (5.0, 0.0)}
    nodes.update({str(i): (1.0 + i, 0.7 if i % 2 else -0.7) for i in range(len(edges) // 2)})
    names = ["k-2", "k-1", *(str(i) for i in range(len(edges) // 2))]
    ends = [(names[src], str(k // 2), op) for k, (op, src) in enumerate(edges)]
    ends += [(names[node], "out", "concat") for node in concat]
    lines = []
    for start, end, op in ends:
        (x0, y0), (x1, y1) = nodes[start], nodes[end]
        lines.append(([x0, x1], [y0, y1], ((x0 + x1) / 2, (y0 + y1) / 2), op))
    return CellDrawing(title, nodes, lines)


__all__ = ["CELL_TYPES", "DARTS_OPS", "DARTS_STEPS", "EDGES_PER_CELL", "DartsGenotype",
           "DartsNetwork", "DartsSpace", "DartsSupernet", "darts_edges"]
