"""Measuring a found cell: its evaluation network's size, and ground-truth lookups.

Ground-truth tables hold test accuracies: they score finished searches and are never
read by a search (no trial, pruner or sampler imports this module).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.spaces import SPACES, CellSpace, Genotype, space_of

BENCHMARK = "NAS-Bench-201"
# the datasets whose test accuracies its table holds: those of the space it covers
TABLE_DATASETS = tuple(next(space for space in SPACES.values()
                            if space.benchmark == BENCHMARK).datasets)
TABLE_COLUMNS = ("arch_str", *(f"{name}_test" for name in TABLE_DATASETS))


class TableError(ValueError):
    """A ground-truth table that cannot be read or lacks the needed columns."""


def count_params(genotype: Genotype) -> dict[str, float]:
    """Parameters (M) per dataset of the cell's evaluation network under its space's
    protocol (DARTS' counted without the auxiliary head, as DARTS reports it)."""
    space = space_of(genotype)
    return {name: space.eval_params(genotype, num_classes=classes) / 1e6
            for name, classes in space.datasets.items()}


def check_scored(space: CellSpace) -> None:
    """Refuse to score a space's cells in the NAS-Bench-201 table it does not cover.

    Raises:
        TableError: the space's cells are not in the table.
    """
    if space.benchmark != BENCHMARK:
        raise TableError(f"ground-truth tables cover {BENCHMARK} cells, not {space.name} cells")


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a NAS-Bench-201 ground-truth CSV (``arch_str`` and ``<dataset>_test`` columns).

    Raises:
        TableError: unreadable, or a needed column is missing.
    """
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise TableError(f"cannot read table {path}: {error}") from None
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise TableError(f"table {path} lacks the columns {', '.join(missing)}")
    return table.set_index("arch_str")


def lookup(table: pd.DataFrame, genotype: Genotype) -> dict[str, float]:
    """The ground truth of a cell: its test accuracy (%) per dataset.

    Raises:
        TableError: the cell is not in the table (or not of the space it covers).
    """
    check_scored(space_of(genotype))
    cell = genotype.to_str()
    if cell not in table.index:
        raise TableError(f"cell {cell} is not in the table")
    row = table.loc[cell]
    return {name: float(row[f"{name}_test"]) for name in TABLE_DATASETS}
