from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.evaluate import TableError, count_params, load_table, lookup
from pipeline.spaces import GenotypeError, NB201Genotype, all_nb201_genotypes

SKIP = NB201Genotype(("skip_connect",) * 6)
CONV = NB201Genotype(("nor_conv_3x3",) * 6)
SHARED_TABLE = Path(__file__).parents[2] / "shared" / "data" / "nb201.csv"


def test_json_round_trip_and_errors() -> None:
    for genotype in list(all_nb201_genotypes())[::97]:
        assert NB201Genotype.from_json(genotype.to_json()) == genotype
    good = CONV.to_json()
    for bad in ({**good, "space": "darts"}, {**good, "edges": {"1<-0": "none"}},
                {**good, "cell": SKIP.to_str()}, [1, 2],
                {**good, "edges": {**good["edges"], "1<-0": "sep_conv_3x3"}}):
        with pytest.raises(GenotypeError):
            NB201Genotype.from_json(bad)


def test_parameter_counts_span_the_benchmark() -> None:
    assert count_params(NB201Genotype(("none",) * 6))["cifar10"] == pytest.approx(0.073306)
    assert count_params(CONV)["cifar10"] == pytest.approx(1.531546)
    assert count_params(CONV)["cifar100"] > count_params(CONV)["cifar10"]


def _table(tmp_path: Path, header: str = "arch_str,cifar10_test,cifar100_test,imagenet16_test"
           ) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(f"{header}\n{SKIP.to_str()},54.3,15.61,16.32\n{CONV.to_str()},93.9,70.1,44.0\n")
    return path


def test_lookup_and_table_errors(tmp_path: Path) -> None:
    score = lookup(load_table(_table(tmp_path)), SKIP)
    assert score.test_acc == {"cifar10": 54.3, "cifar100": 15.61, "imagenet16": 16.32}
    with pytest.raises(TableError, match="not in the table"):
        lookup(load_table(_table(tmp_path)), NB201Genotype(("none",) * 6))
    with pytest.raises(TableError, match="lacks the columns imagenet16_test"):
        load_table(_table(tmp_path, header="arch_str,cifar10_test,cifar100_test,other"))
    with pytest.raises(TableError, match="cannot read"):
        load_table(tmp_path / "missing.csv")


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="the NAS-Bench-201 table is not here")
def test_the_real_table_has_the_published_anchors() -> None:
    table = load_table(SHARED_TABLE)
    assert len(table) == 15_625
    assert lookup(table, SKIP).test_acc["cifar10"] == pytest.approx(54.30, abs=0.01)
    assert table["cifar10_test"].max() == pytest.approx(94.37, abs=0.01)
    sample = table.sample(50, random_state=0)
    for cell, row in sample.iterrows():  # our parameter count is NB201's
        assert count_params(NB201Genotype.parse(cell))["cifar10"] == pytest.approx(
            row["params_cifar10_M"], abs=1e-6)
