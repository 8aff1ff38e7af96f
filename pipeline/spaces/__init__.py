"""Cell spaces: each is one ``CellSpace`` in ``SPACES`` (its ops, edges, genotype format,
supernet, evaluation network and protocol), found by the name a study file gives.

Adding a space is adding a package here that implements ``CellSpace`` and an entry in
``SPACES``; nothing outside this package asks which space it has.
"""

from __future__ import annotations

from pipeline.spaces.base import (
    WEIGHT_FAMILIES,
    CellDrawing,
    CellSpace,
    Genotype,
    GenotypeError,
    SpaceSettings,
    Supernet,
    TrainSettings,
    count_parameters,
    op_shares,
)
from pipeline.spaces.darts import DartsGenotype, DartsSpace
from pipeline.spaces.nb201 import NB201Genotype, NB201Space

SPACES: dict[str, CellSpace] = {space.name: space for space in (NB201Space(), DartsSpace())}


def get_space(name: str) -> CellSpace:
    """The cell space called ``name``.

    Raises:
        KeyError: no such space; the message lists the valid ones.
    """
    if name not in SPACES:
        raise KeyError(f"unknown cell space {name!r} (valid: {', '.join(SPACES)})")
    return SPACES[name]


def space_of(genotype: Genotype) -> CellSpace:
    """The cell space a genotype belongs to."""
    return SPACES[genotype.space]


def parse_genotype(text: str) -> Genotype:
    """Read a cell of any space from its text form (an NB201 cell string, a DARTS
    ``Genotype(...)`` literal).

    Raises:
        GenotypeError: no space's format, or a bad cell in the format it claims.
    """
    for space in SPACES.values():
        if space.claims(text):
            return space.parse(text)
    raise GenotypeError(f"not a cell of any space ({', '.join(SPACES)}): {text[:80]!r}")


__all__ = [
    "SPACES",
    "WEIGHT_FAMILIES",
    "CellDrawing",
    "CellSpace",
    "DartsGenotype",
    "Genotype",
    "GenotypeError",
    "NB201Genotype",
    "SpaceSettings",
    "Supernet",
    "TrainSettings",
    "count_parameters",
    "get_space",
    "op_shares",
    "parse_genotype",
    "space_of",
]
