"""DrNAS (Chen et al., ICLR 2021; xiangning-chen/DrNAS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.variants.base import Darts, register, require

REGULARIZERS = ("l2", "kl")


@register
@dataclass(frozen=True)
class DrNAS(Darts):
    """DrNAS: each step's mixing weights are a reparameterised sample of
    ``Dirichlet(elu(alpha) + 1)`` per edge; measuring and the derived cell use its mean.
    The regulariser is the alphas' weight decay of ``drnas_reg_weight`` (``l2``, the
    published code's default, 1e-3) or that weight times the KL divergence to the uniform
    ``Dirichlet(1)`` on the architecture loss (``kl``, the paper's)."""

    name: ClassVar[str] = "drnas"
    random: ClassVar[bool] = True
    stackable: ClassVar[bool] = False
    first_order_only: ClassVar[bool] = True
    drnas_regularizer: str = "l2"
    drnas_reg_weight: float = 1e-3

    def __post_init__(self) -> None:
        require(self.drnas_regularizer in REGULARIZERS, "drnas_regularizer",
                f"must be one of {', '.join(REGULARIZERS)}", self.drnas_regularizer)
        require(self.drnas_reg_weight >= 0, "drnas_reg_weight", "must be >= 0",
                self.drnas_reg_weight)

    @property
    def kl_weight(self) -> float:
        """The KL term's weight (0 with the L2 regulariser)."""
        return self.drnas_reg_weight if self.drnas_regularizer == "kl" else 0.0

    def describe(self) -> str:
        regulariser = f"KL weight {self.kl_weight:g}" if self.kl_weight else "L2"
        return f"DrNAS (Dirichlet(elu(alpha) + 1) samples, {regulariser})"

    def edge_weights(self, alphas: Tensor) -> Tensor | None:
        return torch.distributions.Dirichlet(_concentration(alphas)).rsample()

    def mean_weights(self, alphas: Tensor) -> Tensor | None:
        concentration = _concentration(alphas.detach())
        return concentration / concentration.sum(dim=-1, keepdim=True)

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        if not self.kl_weight:
            return None
        posterior = torch.distributions.Dirichlet(_concentration(alphas))
        prior = torch.distributions.Dirichlet(torch.ones_like(alphas))
        return self.kl_weight * torch.distributions.kl_divergence(posterior, prior).sum(-1)

    def arch_weight_decay(self, configured: float) -> float:
        return self.drnas_reg_weight if self.drnas_regularizer == "l2" else 0.0


def _concentration(alphas: Tensor) -> Tensor:
    return F.elu(alphas) + 1.0
