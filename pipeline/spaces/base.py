"""What every cell space provides: a genotype format, a supernet whose architecture logits
(alphas) mix candidate operations, an evaluation network of one cell, and the published
protocol that trains it. ``CellSpace`` is that interface; each space implements it once."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SKIP_OPS = frozenset({"skip_connect"})
POOL_OPS = frozenset({"avg_pool_3x3", "max_pool_3x3"})
NONE_OPS = frozenset({"none"})
# Parameter families whose initial scale the start vector controls.
WEIGHT_FAMILIES = ("stem", "cells", "reductions", "classifier")
MAX_CELLS = 64  # deeper supernets than this do not fit any machine's memory


class GenotypeError(ValueError):
    """A cell string or op list that does not describe a cell of the space."""


def op_shares(ops: Sequence[str]) -> dict[str, float]:
    """Share of the given ops that are skip connections, pooling and ``none``."""
    n = len(ops)
    return {
        "skip_share": sum(op in SKIP_OPS for op in ops) / n,
        "pool_share": sum(op in POOL_OPS for op in ops) / n,
        "none_share": sum(op in NONE_OPS for op in ops) / n,
    }


class Genotype(Protocol):
    """A found cell (or cell pair) as plain data; ``space`` names its ``CellSpace``."""

    space: ClassVar[str]

    def to_str(self) -> str: ...

    def to_json(self) -> dict[str, object]: ...

    def op_shares(self) -> dict[str, float]: ...

    @property
    def connected(self) -> bool: ...


Point = tuple[float, float]


class CellDrawing(NamedTuple):
    """A cell laid out for drawing: node positions, and per edge its points, the position
    of its label and its op (``concat`` for an edge into the cell's output)."""

    title: str
    nodes: dict[str, Point]
    lines: list[tuple[list[float], list[float], Point, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSettings:
    """How a cell's evaluation network is trained from scratch (defaults: NAS-Bench-201's
    protocol). ``cells`` is NB201's cells per stage, or the DARTS network's cells."""

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    channels: int = 16
    cells: int = 5
    auxiliary_weight: float = 0.0
    drop_path: float = 0.0
    cutout: int = 0
    crop_padding: int = 4
    flip: bool = True


class SpaceSettings(Protocol):
    """The size of a supernet, as the study file's ``[space]`` section gives it: the
    channels, and ``settings``, which holds each space's own keys (its ``settings_type``
    reads them)."""

    @property
    def channels(self) -> int: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...


def count_parameters(module: nn.Module) -> int:
    """Count trainable parameters, leaving out an auxiliary head (as DARTS reports them)."""
    return sum(p.numel() for name, p in module.named_parameters()
               if p.requires_grad and not name.startswith("auxiliary_head"))


def ops_to_run(weights: Tensor) -> list[list[bool]] | None:
    """Which ops of each edge a mixture by ``weights`` (edges, ops) runs, or None for all.

    Without gradients, and outside ``torch.compile``, an op of weight exactly zero adds
    exactly nothing and is not run: a perturbation selection's decided edges and removed
    ops cost nothing. With gradients every op runs, as a zero weight still has one.
    """
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return None
    running: list[list[bool]] = weights.ne(0).tolist()
    return running


class Supernet(nn.Module, ABC):
    """Mixed operations weighted by architecture logits ``alphas`` (edges, ops), a registered
    parameter (so it moves with ``.to()`` and is part of ``state_dict()``).

    ``forward(x)`` mixes each edge's ops by the softmax of the alphas, or by ``weights``
    (edges, ops) when given; ``forward(x, choice)`` runs one op per edge instead.
    """

    alphas: nn.Parameter

    def add_aux_skip(self) -> None:
        """Give every edge an auxiliary skip connection outside the mixture (DARTS-), its
        weight a buffer (``aux_skip_weight``, 0 until set) that is no part of the state."""
        self.register_buffer("aux_skip_weight", torch.zeros(()), persistent=False)

    def aux_weight(self) -> Tensor | None:
        """The auxiliary skip's weight, or None for a supernet without one."""
        return self._buffers.get("aux_skip_weight")

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        return (p for name, p in self.named_parameters() if name != "alphas")

    def alpha_softmax(self) -> Tensor:
        """Mixing weights (edges, ops), detached."""
        return F.softmax(self.alphas.detach(), dim=-1)

    @abstractmethod
    def forward(self, x: Tensor, choice: Sequence[int] | None = None, *,
                weights: Tensor | None = None) -> Tensor:
        """Logits (B, classes) for images (B, C, H, W)."""

    @abstractmethod
    def genotype(self, weights: Tensor | None = None) -> Genotype:
        """The cell the mixing ``weights`` (edges, ops) select, by default the alphas'."""

    @abstractmethod
    def choice(self, genotype: Genotype) -> list[int]:
        """The op index per alpha row that runs ``genotype`` (-1 where it has no edge)."""

    @abstractmethod
    def weight_families(self) -> dict[str, list[Tensor]]:
        """Conv and linear weights (not biases or norms) by ``WEIGHT_FAMILIES`` member."""


class CellSpace(ABC):
    """A cell space: its ops (the alphas' columns), its edges (their rows), its genotype
    format, supernet, evaluation network and evaluation protocol.

    ``datasets`` maps the datasets whose evaluation networks are counted to their classes;
    ``benchmark`` names the ground-truth table that scores its cells, if there is one.
    """

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]
    edges: ClassVar[tuple[str, ...]]
    edge_groups: ClassVar[tuple[str, ...]]  # the cell type of each edge
    cell_ops: ClassVar[tuple[str, ...]]  # the ops a derived cell may hold
    # the alpha rows of each node whose inputs a cell keeps only ``kept_inputs`` of
    node_inputs: ClassVar[tuple[tuple[int, ...], ...]] = ()
    kept_inputs: ClassVar[int] = 0
    protocol: ClassVar[TrainSettings]
    datasets: ClassVar[dict[str, int]]
    network_description: ClassVar[str]
    benchmark: ClassVar[str | None] = None
    # a frozen dataclass of the space's own ``[space]`` keys with their defaults, which
    # checks them on construction (raising ``ValueError`` naming the key)
    settings_type: ClassVar[type[Any]]

    def own_settings(self, settings: Mapping[str, Any]) -> Any:
        """The space's settings read from ``settings`` (which may hold other spaces' keys
        too; a missing one keeps its default).

        Raises:
            ValueError: a setting is out of range; the message names it.
        """
        keys = [f.name for f in dataclasses.fields(self.settings_type)]
        return self.settings_type(**{key: settings[key] for key in keys if key in settings})

    @abstractmethod
    def claims(self, text: str) -> bool:
        """Whether ``text`` is written in this space's cell format (it may still be bad)."""

    @abstractmethod
    def parse(self, text: str) -> Genotype:
        """Read a cell from its text form.

        Raises:
            GenotypeError: not a cell of this space.
        """

    @abstractmethod
    def from_json(self, data: object) -> Genotype:
        """Read a cell from its JSON form.

        Raises:
            GenotypeError: not a cell of this space in that form.
        """

    @abstractmethod
    def depth(self, settings: SpaceSettings) -> int:
        """The supernet's depth setting in this space: cells per stage, or cells."""

    @abstractmethod
    def supernet(self, settings: SpaceSettings, *, num_classes: int, in_channels: int,
                 aux_skip: bool = False) -> Supernet:
        """A supernet of the given size, with uniform alphas and the default init (and,
        with ``aux_skip``, an auxiliary skip beside every mixed op: DARTS-)."""

    @abstractmethod
    def network(self, genotype: Genotype, settings: TrainSettings, *, num_classes: int,
                in_channels: int) -> nn.Module:
        """The cell's evaluation network at the settings' size."""

    @abstractmethod
    def drawing(self, genotype: Genotype) -> list[CellDrawing]:
        """The cell (or cells) laid out for drawing."""

    def eval_params(self, genotype: Genotype, *, num_classes: int = 10,
                    in_channels: int = 3) -> int:
        """Parameters of the cell's evaluation network under the space's protocol."""
        return count_parameters(self.network(genotype, self.protocol, num_classes=num_classes,
                                             in_channels=in_channels))
