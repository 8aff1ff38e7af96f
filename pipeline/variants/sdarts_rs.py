"""SDARTS-RS (Chen & Hsieh, ICML 2020; xiangning-chen/SmoothDARTS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.variants.base import Darts, register, require


@register
@dataclass(frozen=True)
class SdartsRS(Darts):
    """SDARTS-RS: the weight step mixes by the alphas' softmax plus uniform noise in
    [-epsilon(t), epsilon(t)] on every edge and op, clipped to [0, 1] and renormalised per
    edge (as the published code does); epsilon rises linearly from ``sdarts_epsilon_min``
    at the first step to ``sdarts_epsilon_max`` at the last (published: 0.03 to 0.3 over
    the epochs). The alphas are untouched, and the architecture step sees the plain
    softmax."""

    name: ClassVar[str] = "sdarts-rs"
    random: ClassVar[bool] = True
    stackable: ClassVar[bool] = False
    sdarts_epsilon_min: float = 0.03
    sdarts_epsilon_max: float = 0.3

    def __post_init__(self) -> None:
        require(self.sdarts_epsilon_min >= 0, "sdarts_epsilon_min", "must be >= 0",
                self.sdarts_epsilon_min)
        require(self.sdarts_epsilon_min <= self.sdarts_epsilon_max, "sdarts_epsilon_max",
                "must be >= search.sdarts_epsilon_min", self.sdarts_epsilon_max)

    def describe(self) -> str:
        return (f"SDARTS-RS (uniform noise, epsilon {self.sdarts_epsilon_min:g} rising to "
                f"{self.sdarts_epsilon_max:g})")

    def epsilon(self, t: float) -> float:
        return self.sdarts_epsilon_min + (self.sdarts_epsilon_max - self.sdarts_epsilon_min) * t

    def weight_step_weights(self, alphas: Tensor, t: float) -> Tensor | None:
        weights = F.softmax(alphas.detach(), dim=-1)
        noisy = perturbed(weights, self.epsilon(t)).clamp(0.0, 1.0)
        total = noisy.sum(dim=-1, keepdim=True)
        rescued = torch.where(total > 0, noisy, F.one_hot(weights.argmax(-1), noisy.shape[-1])
                              .to(noisy.dtype))  # an edge noised to all zeros keeps its best
        return rescued / rescued.sum(dim=-1, keepdim=True)


def perturbed(weights: Tensor, epsilon: float) -> Tensor:
    """``weights`` plus independent uniform noise in [-epsilon, epsilon]."""
    return weights + torch.empty_like(weights).uniform_(-epsilon, epsilon)
