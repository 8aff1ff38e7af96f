"""The start vector x: where each inner DARTS search begins.

x holds, as named floats (the same set in every trial, as CMA-ES needs):
- ``alpha:<edge>:<op>``: the initial architecture logits, in [-alpha_range, alpha_range];
- ``gain:<family>``: the log of a per-family factor on the default initial weights;
- ``offset:<k>``: a move of the initial weights along fixed random direction k, drawn
  from the study seed and scaled filter by filter to the weights' own norm;
- ``hp:<name>``: co-searched hyperparameters, on a log scale around their configured value.
The centre of x (all zeros; hyperparameters at their configured values) is exactly
plain DARTS' start: uniform alphas and the default initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pipeline.config import StudyConfig
from pipeline.spaces import WEIGHT_FAMILIES, Supernet, get_space


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One dimension of x: a float in [low, high], sampled on a log scale if ``log``."""

    name: str
    low: float
    high: float
    log: bool = False

    @property
    def centre(self) -> float:
        if self.log:
            return math.sqrt(self.low * self.high)
        return (self.low + self.high) / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class StartPoint:
    """A decoded x: alpha0 (edges, ops), log gains per family, direction offsets,
    hyperparameters (only those co-searched)."""

    alpha0: tuple[tuple[float, ...], ...]
    log_gains: dict[str, float] = field(default_factory=dict)
    offsets: tuple[float, ...] = ()
    hyperparams: dict[str, float] = field(default_factory=dict)


class StartSpace:
    """The named dimensions of x and the maps between x and a ``StartPoint``.

    Args:
        edges, ops: names of the alpha rows and columns.
        groups: the cell type of each edge (by default one for all).
        alpha_space: ``"edge-op"``, an initial logit per edge and op; or ``"op"``, one per
            op and cell type, shared by the type's every edge.
        alpha_range: half-width of each alpha0's interval around 0.
        gain_range: half-width of each log gain's interval around 0.
        directions: number of random weight directions.
        direction_range: half-width of each direction's offset around 0.
        hyperparams: name -> configured value for each co-searched hyperparameter.
        hyperparam_factor: each co-searched value ranges over [value / f, value * f].
    """

    def __init__(self, *, edges: Sequence[str], ops: Sequence[str], alpha_range: float,
                 gain_range: float, directions: int, direction_range: float,
                 groups: Sequence[str] | None = None, alpha_space: str = "edge-op",
                 hyperparams: Mapping[str, float] | None = None,
                 hyperparam_factor: float = 3.0) -> None:
        self.edges = tuple(edges)
        self.ops = tuple(ops)
        self.directions = directions
        # the row of x's alphas that sets each edge's alpha0: the edge's own, or its group's
        groups = tuple(groups or ("cell",) * len(self.edges))
        self.rows = self.edges if alpha_space == "edge-op" else groups
        hyperparams = dict(hyperparams or {})
        self.specs: tuple[ParamSpec, ...] = (
            *(ParamSpec(name=f"alpha:{r}:{o}", low=-alpha_range, high=alpha_range)
              for r in dict.fromkeys(self.rows) for o in self.ops),
            *(ParamSpec(name=f"gain:{f}", low=-gain_range, high=gain_range)
              for f in WEIGHT_FAMILIES),
            *(ParamSpec(name=f"offset:{k}", low=-direction_range, high=direction_range)
              for k in range(directions)),
            *(ParamSpec(name=f"hp:{name}", low=value / hyperparam_factor,
                        high=value * hyperparam_factor, log=True)
              for name, value in hyperparams.items()),
        )
        self.hyperparam_names = tuple(hyperparams)

    def __len__(self) -> int:
        return len(self.specs)

    def centre(self) -> dict[str, float]:
        """x of plain DARTS' start."""
        return {spec.name: spec.centre for spec in self.specs}

    def decode(self, x: Mapping[str, float]) -> StartPoint:
        """Turn x into a ``StartPoint``.

        Raises:
            KeyError: x lacks a dimension of this space.
        """
        alpha0 = tuple(tuple(float(x[f"alpha:{r}:{o}"]) for o in self.ops) for r in self.rows)
        return StartPoint(
            alpha0=alpha0,
            log_gains={f: float(x[f"gain:{f}"]) for f in WEIGHT_FAMILIES},
            offsets=tuple(float(x[f"offset:{k}"]) for k in range(self.directions)),
            hyperparams={h: float(x[f"hp:{h}"]) for h in self.hyperparam_names},
        )

    def encode(self, start: StartPoint) -> dict[str, float]:
        """Turn a ``StartPoint`` back into x (the inverse of ``decode``)."""
        x = {f"alpha:{r}:{o}": start.alpha0[i][j]
             for i, r in reversed(list(enumerate(self.rows))) for j, o in enumerate(self.ops)}
        x.update({f"gain:{f}": g for f, g in start.log_gains.items()})
        x.update({f"offset:{k}": z for k, z in enumerate(start.offsets)})
        x.update({f"hp:{h}": v for h, v in start.hyperparams.items()})
        return x


def default_alpha_range(arch_lr: float, arch_steps: int) -> float:
    """How far Adam can move one logit in a whole search: about ``arch_lr`` per step."""
    return arch_lr * arch_steps


def build_start_space(config: StudyConfig, steps_per_epoch: int) -> StartSpace:
    """The start vector of a study; ``start.alpha_range`` 0 is derived from the search's
    length."""
    alpha_range = config.start.alpha_range or default_alpha_range(
        config.search.arch_lr, config.search.epochs * steps_per_epoch)
    space = get_space(config.space.name)
    return StartSpace(
        edges=space.edges,
        ops=space.ops,
        groups=space.edge_groups,
        alpha_space=config.start.alpha_space,
        alpha_range=alpha_range,
        gain_range=config.start.gain_range,
        directions=config.start.directions,
        direction_range=config.start.direction_range,
        hyperparams={name: getattr(config.search, name) for name in config.start.cosearch},
        hyperparam_factor=config.start.hyperparam_factor,
    )


@torch.no_grad()
def apply_start(network: Supernet, start: StartPoint, *,
                direction_seed: int) -> None:
    """Move a freshly initialised network to ``start``.

    Each family's weights are scaled by exp(log gain), then offset along the random
    directions: w = exp(g) * w0 + sum_k z_k d_k(w0). The alphas are set to alpha0.
    """
    network.alphas.copy_(torch.tensor(start.alpha0))
    families = network.weight_families()
    initial = {f: [w.detach().clone() for w in weights] for f, weights in families.items()}
    for family, weights in families.items():
        gain = math.exp(start.log_gains.get(family, 0.0))
        for w in weights:
            w.mul_(gain)
    for k, z in enumerate(start.offsets):
        if z == 0.0:
            continue
        generator = torch.Generator().manual_seed(direction_seed * 7919 + k)
        for family in WEIGHT_FAMILIES:
            for w, w0 in zip(families[family], initial[family], strict=True):
                w.add_(z * _direction(w0, generator).to(w.device))


def _direction(w0: Tensor, generator: torch.Generator) -> Tensor:
    """A random direction with each output filter rescaled to that filter's norm."""
    d = torch.randn(w0.shape, generator=generator)
    w0 = w0.detach().cpu()
    filter_norms = w0.flatten(1).norm(dim=1)
    d_norms = d.flatten(1).norm(dim=1).clamp_min(1e-12)
    direction: Tensor = d * (filter_norms / d_norms).view(-1, *([1] * (w0.dim() - 1)))
    return direction

