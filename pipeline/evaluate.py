"""Measuring a found cell: its evaluation network's size, and ground-truth lookups.

Ground-truth tables hold test accuracies: they score finished searches and are never
read by a search (no trial, pruner or sampler imports this module).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.networks import darts_eval_params, nb201_eval_params
from pipeline.spaces import DartsGenotype, NB201Genotype

# dataset -> (table column prefix, classes) of NAS-Bench-201's three benchmarks
NB201_DATASETS = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}
TABLE_COLUMNS = ("arch_str", *(f"{name}_test" for name in NB201_DATASETS))


class TableError(ValueError):
    """A ground-truth table that cannot be read or lacks the needed columns."""


def count_params(genotype: NB201Genotype | DartsGenotype) -> dict[str, float]:
    """Parameters (M) per dataset of the cell's evaluation network: NB201's (C=16, N=5), or
    DARTS' (C=36, 20 cells, counted without the auxiliary head as DARTS reports it)."""
    if isinstance(genotype, DartsGenotype):
        return {name: darts_eval_params(genotype, num_classes=classes) / 1e6
                for name, classes in (("cifar10", 10), ("cifar100", 100))}
    return {name: nb201_eval_params(genotype, num_classes=classes) / 1e6
            for name, classes in NB201_DATASETS.items()}


def network_name(genotype: NB201Genotype | DartsGenotype) -> str:
    """Which evaluation network ``count_params`` measured."""
    if isinstance(genotype, DartsGenotype):
        return "DARTS evaluation network, C=36, 20 cells, auxiliary head not counted"
    return "NB201 evaluation network, C=16, N=5"


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


def lookup(table: pd.DataFrame, genotype: NB201Genotype | DartsGenotype) -> dict[str, float]:
    """The ground truth of a cell: its test accuracy (%) per dataset.

    Raises:
        TableError: the cell is not in the table (or not an NB201 cell at all).
    """
    if isinstance(genotype, DartsGenotype):
        raise TableError("ground-truth tables cover NAS-Bench-201 cells, not DARTS cells")
    cell = genotype.to_str()
    if cell not in table.index:
        raise TableError(f"cell {cell} is not in the table")
    row = table.loc[cell]
    return {name: float(row[f"{name}_test"]) for name in NB201_DATASETS}
