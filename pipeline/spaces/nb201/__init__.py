"""The NAS-Bench-201 cell space: 6 edges of 5 ops in a 4-node cell, stacked 3 x N times
with ResNet reductions; NAS-Bench-201's table holds every cell's trained accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from pipeline.spaces.base import (
    MAX_CELLS,
    CellDrawing,
    CellSpace,
    Genotype,
    Point,
    SpaceSettings,
    TrainSettings,
)
from pipeline.spaces.nb201.genotype import (
    NB201_EDGES,
    NB201_NODES,
    NB201_OPS,
    NB201Genotype,
    all_nb201_genotypes,
    edge_name,
)
from pipeline.spaces.nb201.network import NB201Network
from pipeline.spaces.nb201.supernet import NB201Supernet

# Edges between neighbours are straight; longer ones bend below (span 2) or above (span 3).
_BEND = {1: 0.0, 2: -0.5, 3: 0.75}


@dataclass(frozen=True)
class NB201Settings:
    """The supernet's depth: cells per stage (NB201's N)."""

    cells_per_stage: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.cells_per_stage <= MAX_CELLS:
            raise ValueError(f"cells_per_stage must be in 1..{MAX_CELLS}, "
                             f"got {self.cells_per_stage!r}")


class NB201Space(CellSpace):
    """NAS-Bench-201's space (its evaluation network: C=16, N=5, 200 epochs)."""

    name: ClassVar[str] = "nb201"
    ops: ClassVar[tuple[str, ...]] = NB201_OPS
    edges: ClassVar[tuple[str, ...]] = tuple(edge_name(edge) for edge in NB201_EDGES)
    edge_groups: ClassVar[tuple[str, ...]] = ("cell",) * len(NB201_EDGES)
    cell_ops: ClassVar[tuple[str, ...]] = NB201_OPS  # none can win an edge
    protocol: ClassVar[TrainSettings] = TrainSettings()
    datasets: ClassVar[dict[str, int]] = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}
    network_description: ClassVar[str] = "NB201 evaluation network, C=16, N=5"
    benchmark: ClassVar[str | None] = "NAS-Bench-201"
    settings_type: ClassVar[type[Any]] = NB201Settings

    def claims(self, text: str) -> bool:
        return "|" in text

    def parse(self, text: str) -> NB201Genotype:
        return NB201Genotype.parse(text)

    def from_json(self, data: object) -> NB201Genotype:
        return NB201Genotype.from_json(data)

    def depth(self, settings: SpaceSettings) -> int:
        depth: int = self.own_settings(settings.settings).cells_per_stage
        return depth

    def supernet(self, settings: SpaceSettings, *, num_classes: int, in_channels: int,
                 aux_skip: bool = False) -> NB201Supernet:
        return NB201Supernet(channels=settings.channels, cells_per_stage=self.depth(settings),
                             num_classes=num_classes, in_channels=in_channels,
                             aux_skip=aux_skip)

    def network(self, genotype: Genotype, settings: TrainSettings, *, num_classes: int,
                in_channels: int) -> nn.Module:
        assert isinstance(genotype, NB201Genotype)
        return NB201Network(genotype, channels=settings.channels, cells_per_stage=settings.cells,
                            num_classes=num_classes, in_channels=in_channels)

    def drawing(self, genotype: Genotype) -> list[CellDrawing]:
        """The 4 nodes in a row; each edge an arc labelled with its op."""
        assert isinstance(genotype, NB201Genotype)
        nodes = {str(n): (float(n), 0.0) for n in range(NB201_NODES)}
        lines = [(*_arc(src, to), op)
                 for op, (to, src) in zip(genotype.ops, NB201_EDGES, strict=True)]
        return [CellDrawing("cell", nodes, lines)]


def _arc(src: int, to: int) -> tuple[list[float], list[float], Point]:
    """Points of the edge from node ``src`` to ``to``, and where its label goes."""
    height = _BEND[to - src]
    xs = [src + (to - src) * step / 20 for step in range(21)]
    ys = [4 * height * (x - src) / (to - src) * (1 - (x - src) / (to - src)) for x in xs]
    label_y = height if height else 0.14
    return xs, ys, ((src + to) / 2, label_y)


__all__ = ["NB201_EDGES", "NB201_OPS", "NB201Genotype", "NB201Network", "NB201Space",
           "NB201Supernet", "all_nb201_genotypes", "edge_name"]
