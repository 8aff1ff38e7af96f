"""beta-DARTS (Ye et al., CVPR 2022; Sunshine-Ye/Beta-DARTS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from pipeline.variants.base import Darts, register, require


@register
@dataclass(frozen=True)
class BetaDarts(Darts):
    """beta-DARTS: the Beta-Decay regulariser ``lambda(t) * mean_edges logsumexp(alpha)``
    on the architecture loss, lambda rising linearly from 0 at the first step to
    ``beta_lambda`` at the last (published: 50 x epoch / 100 over NAS-Bench-201's 100
    epochs, so about 50 at the end; here the same ramp over the search's own length)."""

    name: ClassVar[str] = "beta-darts"
    beta_lambda: float = 50.0

    def __post_init__(self) -> None:
        require(self.beta_lambda >= 0, "beta_lambda", "must be >= 0", self.beta_lambda)

    def describe(self) -> str:
        return f"beta-DARTS (Beta-Decay, lambda rising from 0 to {self.beta_lambda:g})"

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        return self.beta_lambda * t * torch.logsumexp(alphas, dim=-1).mean(dim=-1)
