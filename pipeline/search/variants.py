"""DARTS variants: each changes one seam of the search and keeps the rest.

A variant may change how the alphas become the mixing weights of a step (``edge_weights``;
DrNAS samples them from a Dirichlet, SDARTS-RS perturbs those of the weight step), what the
mixed operation adds (``aux_skip``; DARTS-), what the architecture loss adds
(``arch_penalty``; beta-DARTS, DrNAS' KL). Each seam is a no-op in ``Darts``, plain DARTS.
Schedules run over the search's progress ``t``: 0 at its first step, 1 at its last.

- DARTS- (Chu et al., ICLR 2021; Meituan-AutoML/DARTS-): an auxiliary skip connection
  ``beta(t) * x`` outside the softmax on every edge, beta falling linearly to 0.
- beta-DARTS (Ye et al., CVPR 2022; Sunshine-Ye/Beta-DARTS): the Beta-Decay regulariser
  ``lambda(t) * mean over edges of logsumexp(alpha_edge)`` on the architecture loss.
- DrNAS (Chen et al., ICLR 2021; xiangning-chen/DrNAS): mixing weights sampled (with
  reparameterised gradients) from ``Dirichlet(elu(alpha) + 1)`` at every step.
- SDARTS-RS (Chen & Hsieh, ICML 2020; xiangning-chen/SmoothDARTS): the weight step mixes
  by the softmax plus uniform noise in [-epsilon(t), epsilon(t)], clipped and renormalised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Darts:
    """Plain DARTS: the alphas' softmax mixes every step; nothing is added."""

    name: ClassVar[str] = "darts"
    # whether the variant's weights need the random numbers of ``noise``
    random: ClassVar[bool] = False
    # whether a stacked population can run it (its weights computed outside ``vmap``)
    stackable: ClassVar[bool] = True

    def describe(self) -> str:
        """The variant and its schedule, in words."""
        return "plain DARTS"

    def edge_weights(self, alphas: Tensor) -> Tensor | None:
        """The mixing weights (..., edges, ops) of an architecture step; None: the
        supernet's own softmax of its alphas."""
        return None

    def weight_step_weights(self, alphas: Tensor, t: float) -> Tensor | None:
        """The mixing weights of a weight step at progress ``t`` (no gradient flows to
        the alphas there); None: the supernet's own softmax."""
        return self.edge_weights(alphas)

    def mean_weights(self, alphas: Tensor) -> Tensor | None:
        """The expected mixing weights: what the search measures, records and derives
        its cell from; None: the alphas' softmax (and the cell their argmax)."""
        return None

    def aux_skip(self, t: float) -> float:
        """The weight of an auxiliary skip connection beside each mixed op."""
        return 0.0

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        """What the architecture loss adds at progress ``t`` (per member: (...)); None:
        nothing."""
        return None


@dataclass(frozen=True)
class DartsMinus(Darts):
    """DARTS-: an auxiliary skip ``beta(t) * x`` on every edge, outside the softmax, beta
    from ``beta`` at the first step linearly to 0 at the last (the published schedule
    decays it per epoch from 1 over the search). It is not part of the derived cell."""

    name: ClassVar[str] = "darts-minus"
    beta: float = 1.0

    def describe(self) -> str:
        return f"DARTS- (auxiliary skip, beta {self.beta:g} falling to 0 over the search)"

    def aux_skip(self, t: float) -> float:
        return self.beta * (1.0 - t)


@dataclass(frozen=True)
class BetaDarts(Darts):
    """beta-DARTS: the Beta-Decay regulariser ``lambda(t) * mean_edges logsumexp(alpha)``
    on the architecture loss, lambda rising linearly from 0 at the first step to
    ``weight`` at the last (published: 50 x epoch / 100 over NAS-Bench-201's 100 epochs,
    so about 50 at the end; here the same ramp over the search's own length)."""

    name: ClassVar[str] = "beta-darts"
    weight: float = 50.0

    def describe(self) -> str:
        return f"beta-DARTS (Beta-Decay, lambda rising from 0 to {self.weight:g})"

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        return self.weight * t * torch.logsumexp(alphas, dim=-1).mean(dim=-1)


@dataclass(frozen=True)
class DrNAS(Darts):
    """DrNAS: each step's mixing weights are a reparameterised sample of
    ``Dirichlet(elu(alpha) + 1)`` per edge; measuring and the derived cell use its mean.
    With ``kl_weight`` > 0 the architecture loss adds that weight times the KL divergence
    to the uniform ``Dirichlet(1)`` (the paper's regulariser); with 0, the alphas' own
    weight decay is the L2 regulariser (the published code's default, 1e-3)."""

    name: ClassVar[str] = "drnas"
    random: ClassVar[bool] = True
    stackable: ClassVar[bool] = False
    kl_weight: float = 0.0

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


def _concentration(alphas: Tensor) -> Tensor:
    return F.elu(alphas) + 1.0


@dataclass(frozen=True)
class SdartsRS(Darts):
    """SDARTS-RS: the weight step mixes by the alphas' softmax plus uniform noise in
    [-epsilon(t), epsilon(t)] on every edge and op, clipped to [0, 1] and renormalised per
    edge (as the published code does); epsilon rises linearly from ``low`` at the first
    step to ``high`` at the last (published: 0.03 to 0.3 over the epochs). The alphas are
    untouched, and the architecture step sees the plain softmax."""

    name: ClassVar[str] = "sdarts-rs"
    random: ClassVar[bool] = True
    stackable: ClassVar[bool] = False
    low: float = 0.03
    high: float = 0.3

    def describe(self) -> str:
        return f"SDARTS-RS (uniform noise, epsilon {self.low:g} rising to {self.high:g})"

    def epsilon(self, t: float) -> float:
        return self.low + (self.high - self.low) * t

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


@contextlib.contextmanager
def noise(seed: int, device: torch.device) -> Iterator[None]:
    """Random numbers for one step of a random variant from ``seed`` alone, so that a
    search repeats under its seed and resumes to what it would have drawn; the process's
    own random state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def build_variant(name: str, *, aux_skip_beta: float = 1.0, beta_lambda: float = 50.0,
                  drnas_kl: float = 0.0, sdarts_epsilon: tuple[float, float] = (0.03, 0.3)
                  ) -> Darts:
    """The variant called ``name`` with its settings.

    Raises:
        KeyError: no such variant; the message lists the valid ones.
    """
    variants: dict[str, Darts] = {
        "darts": Darts(), "darts-minus": DartsMinus(aux_skip_beta),
        "beta-darts": BetaDarts(beta_lambda), "drnas": DrNAS(drnas_kl),
        "sdarts-rs": SdartsRS(*sdarts_epsilon)}
    if name not in variants:
        raise KeyError(f"unknown variant {name!r} (valid: {', '.join(variants)})")
    return variants[name]
