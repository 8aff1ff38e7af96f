"""DARTS- (Chu et al., ICLR 2021; Meituan-AutoML/DARTS-)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.variants.base import Darts, register, require


@register
@dataclass(frozen=True)
class DartsMinus(Darts):
    """DARTS-: an auxiliary skip ``beta(t) * x`` on every edge, outside the softmax, beta
    from ``aux_skip_beta`` at the first step linearly to 0 at the last (the published
    schedule decays it per epoch from 1 over the search). It is not part of the derived
    cell."""

    name: ClassVar[str] = "darts-minus"
    has_aux_skip: ClassVar[bool] = True
    aux_skip_beta: float = 1.0

    def __post_init__(self) -> None:
        require(self.aux_skip_beta >= 0, "aux_skip_beta", "must be >= 0", self.aux_skip_beta)

    def describe(self) -> str:
        return (f"DARTS- (auxiliary skip, beta {self.aux_skip_beta:g} falling to 0 over the "
                "search)")

    def aux_skip(self, t: float) -> float:
        return self.aux_skip_beta * (1.0 - t)
