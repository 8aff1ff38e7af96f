"""Plain DARTS, the seams a variant may change, and the registry of variants by name.

A variant may change how the alphas become the mixing weights of a step (``edge_weights``,
``weight_step_weights``), what the mixed operation adds (``aux_skip``), what the
architecture loss adds (``arch_penalty``) and the alphas' weight decay
(``arch_weight_decay``). Each seam is a no-op in ``Darts``. Schedules run over the
search's progress ``t``: 0 at its first step, 1 at its last.

A variant's settings are its dataclass fields, each a key of the study file's ``[search]``
section (so named that no two variants share one); ``__post_init__`` checks them and
raises ``ValueError`` naming the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

# The registered variants by name, in the order they were registered.
VARIANTS: dict[str, type[Darts]] = {}
V = TypeVar("V", bound="type[Darts]")


def register(cls: V) -> V:
    """Add a variant class to ``VARIANTS`` under its ``name``.

    Raises:
        ValueError: the name, or one of its settings, belongs to a registered variant.
    """
    taken = {key: other.name for other in VARIANTS.values() for key in _keys(other)}
    clash = [key for key in _keys(cls) if key in taken]
    if cls.name in VARIANTS or clash:
        raise ValueError(f"variant {cls.name!r} clashes with a registered one "
                         f"(name or settings {clash})")
    VARIANTS[cls.name] = cls
    return cls


def _keys(cls: type[Darts]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def require(condition: bool, key: str, message: str, value: object) -> None:
    """Raise ``ValueError('KEY MESSAGE, got VALUE')`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{key} {message}, got {value!r}")


@dataclass(frozen=True)
class Darts:
    """Plain DARTS: the alphas' softmax mixes every step; nothing is added."""

    name: ClassVar[str] = "darts"
    # whether the variant's weights need the random numbers of ``noise``
    random: ClassVar[bool] = False
    # whether a stacked population can run it (its weights computed outside ``vmap``)
    stackable: ClassVar[bool] = True
    # whether its mixing weights have no unrolled (second-order) gradient
    first_order_only: ClassVar[bool] = False
    # whether the supernet needs an auxiliary skip beside each mixed op (see ``aux_skip``)
    has_aux_skip: ClassVar[bool] = False

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
        """The weight of the auxiliary skip connection beside each mixed op."""
        return 0.0

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        """What the architecture loss adds at progress ``t`` (per member: (...)); None:
        nothing."""
        return None

    def arch_weight_decay(self, configured: float) -> float:
        """The alphas' weight decay, given the study's ``arch_weight_decay``."""
        return configured


register(Darts)


def build_variant(name: str, settings: Mapping[str, Any]) -> Darts:
    """The variant called ``name`` with its settings taken from ``settings`` (which may
    hold other variants' too; a missing one keeps its default).

    Raises:
        KeyError: no such variant; the message lists the valid ones.
        ValueError: a setting is out of range; the message names it.
    """
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (valid: {', '.join(VARIANTS)})")
    cls = VARIANTS[name]
    return cls(**{key: settings[key] for key in _keys(cls) if key in settings})


@contextlib.contextmanager
def noise(seed: int, device: torch.device) -> Iterator[None]:
    """Random numbers for one step of a random variant from ``seed`` alone, so that a
    search repeats under its seed and resumes to what it would have drawn; the process's
    own random state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
