"""DARTS' CIFAR evaluation network (its NetworkCIFAR): cells of a genotype, an optional
auxiliary head, drop path."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.spaces.darts.genotype import DartsGenotype
from pipeline.spaces.ops import DARTS_OPS, FactorizedReduce, ReLUConvBN


def drop_path(x: Tensor, drop_prob: float) -> Tensor:
    """Zero whole samples of a branch with probability ``drop_prob``, rescaling the rest."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class DartsCell(nn.Module):
    """One normal or reduction cell of a DARTS genotype."""

    def __init__(self, edges: tuple[tuple[str, int], ...], concat: tuple[int, ...], *,
                 c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                            else ReLUConvBN(c_prev_prev, channels, 1))
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1)
        self.inputs = [src for _, src in edges]
        self.concat = concat
        self.ops = nn.ModuleList(
            DARTS_OPS[op](channels, 2 if reduction and src < 2 else 1, True) for op, src in edges)

    @property
    def multiplier(self) -> int:
        return len(self.concat)

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(0, len(self.ops), 2):
            branches = []
            for op, src in ((self.ops[i], self.inputs[i]), (self.ops[i + 1], self.inputs[i + 1])):
                h = op(states[src])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                branches.append(h)
            states.append(branches[0] + branches[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier on the 8x8 features after the second reduction."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class DartsNetwork(nn.Module):
    """DARTS' CIFAR evaluation network: a 3C stem, ``layers`` cells with reductions at a
    third and two thirds of the depth, an optional auxiliary head, pooling, a classifier.

    ``forward`` returns (logits, auxiliary logits or None).
    """

    def __init__(self, genotype: DartsGenotype, *, channels: int = 36, layers: int = 20,
                 num_classes: int = 10, in_channels: int = 3, auxiliary: bool = True,
                 drop_path_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_path_prob = drop_path_prob
        stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem))
        c_prev_prev, c_prev, width = stem, stem, channels
        self.cells = nn.ModuleList()
        reduction_prev, self.aux_after = False, 2 * layers // 3
        c_aux = c_prev
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            width *= 2 if reduction else 1
            edges, concat = ((genotype.reduce, genotype.reduce_concat) if reduction
                             else (genotype.normal, genotype.normal_concat))
            cell = DartsCell(edges, concat, c_prev_prev=c_prev_prev, c_prev=c_prev,
                             channels=width, reduction=reduction, reduction_prev=reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * width
            if i == self.aux_after:
                c_aux = c_prev
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_after and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits: Tensor = self.classifier(s1.mean(dim=(2, 3)))
        return logits, aux
