"""NAS-Bench-201's macro skeleton, and the evaluation network of one cell."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from pipeline.spaces.base import WEIGHT_FAMILIES
from pipeline.spaces.nb201.genotype import NB201_EDGES, NB201_NODES, NB201Genotype
from pipeline.spaces.ops import GlobalAvgPool, ResNetBlock, make_op


class NB201Skeleton(nn.Module):
    """Stem, three stages of cells joined by ResNet reductions, pooling and a classifier.

    Cells are built by ``make_cell(channels)``; subclasses define ``forward``.
    """

    def __init__(self, make_cell: Callable[[int], nn.Module], *, channels: int,
                 cells_per_stage: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        layers: list[nn.Module] = []
        for stage in range(3):
            width = channels * 2**stage
            if stage:
                layers.append(ResNetBlock(width // 2, width))
            layers += [make_cell(width) for _ in range(cells_per_stage)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels * 4), nn.ReLU(), GlobalAvgPool()
        )
        self.classifier = nn.Linear(channels * 4, num_classes)

    def weight_families(self) -> dict[str, list[Tensor]]:
        """Group the conv and linear weights (not biases or norms) by family."""
        families: dict[str, list[Tensor]] = {name: [] for name in WEIGHT_FAMILIES}
        for module_name, module in self.named_modules():
            if not isinstance(module, nn.Conv2d | nn.Linear):
                continue
            families[self._family(module_name)].append(module.weight)
        return families

    def _family(self, module_name: str) -> str:
        top, _, rest = module_name.partition(".")
        if top == "layers":
            index = int(rest.partition(".")[0])
            return "reductions" if isinstance(self.layers[index], ResNetBlock) else "cells"
        return top


class FixedCell(nn.Module):
    """A cell with one op per edge; ``none`` edges are left out."""

    def __init__(self, genotype: NB201Genotype, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({
            str(i): make_op(op, channels, affine=True)
            for i, op in enumerate(genotype.ops) if op != "none"
        })

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for to in range(1, NB201_NODES):
            inputs = [self.edges[str(i)](nodes[src])
                      for i, (edge_to, src) in enumerate(NB201_EDGES)
                      if edge_to == to and str(i) in self.edges]
            nodes.append(sum(inputs[1:], inputs[0]) if inputs else x.mul(0.0))
        return nodes[-1]


class NB201Network(NB201Skeleton):
    """The evaluation network of one NB201 cell (NB201 uses C=16, N=5)."""

    def __init__(self, genotype: NB201Genotype, *, channels: int = 16,
                 cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(lambda width: FixedCell(genotype, width), channels=channels,
                         cells_per_stage=cells_per_stage, num_classes=num_classes,
                         in_channels=in_channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, in_channels, H, W) -> (B, num_classes)
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        logits: Tensor = self.classifier(self.head(x))
        return logits
