from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.results.ground_truth import TableError, count_params, load_table, lookup
from pipeline.spaces import DartsGenotype, GenotypeError, NB201Genotype
from pipeline.spaces.darts import DartsNetwork
from pipeline.spaces.nb201 import all_nb201_genotypes

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
    assert score == {"cifar10": 54.3, "cifar100": 15.61, "imagenet16": 16.32}
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
    assert lookup(table, SKIP)["cifar10"] == pytest.approx(54.30, abs=0.01)
    assert table["cifar10_test"].max() == pytest.approx(94.37, abs=0.01)
    sample = table.sample(50, random_state=0)
    for cell, row in sample.iterrows():  # our parameter count is NB201's
        assert count_params(NB201Genotype.parse(cell))["cifar10"] == pytest.approx(
            row["params_cifar10_M"], abs=1e-6)


DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def test_darts_v2_has_the_published_parameter_count() -> None:
    genotype = DartsGenotype.parse(DARTS_V2)
    assert count_params(genotype)["cifar10"] == pytest.approx(3.349342, abs=1e-6)


def test_darts_genotype_formats_round_trip() -> None:
    genotype = DartsGenotype.parse(DARTS_V2)
    assert genotype.to_literal() == DARTS_V2
    assert DartsGenotype.parse(DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")) == genotype
    assert DartsGenotype.from_json(genotype.to_json()) == genotype
    assert genotype.op_shares()["skip_share"] == 5 / 16


@pytest.mark.parametrize("text", [
    "Genotype(normal=__import__('os').system('echo pwned'), normal_concat=[2], "
    "reduce=[], reduce_concat=[2])",
    DARTS_V2.replace("sep_conv_3x3", "conv_9x9", 1),
    DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),
    DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 'x']"),
    DARTS_V2.replace("Genotype(", "Other("),
    DARTS_V2[:-1],
    "Genotype(normal=[], normal_concat=[2])",
])
def test_malformed_darts_literals_are_refused_without_evaluation(text: str) -> None:
    with pytest.raises(GenotypeError):
        DartsGenotype.parse(text)


def test_darts_network_trains_with_auxiliary_head_and_drop_path() -> None:
    net = DartsNetwork(DartsGenotype.parse(DARTS_V2), channels=4, layers=5,
                       drop_path_prob=0.2)
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    net.eval()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert aux is None


def test_tables_refuse_darts_cells(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="not darts"):
        lookup(load_table(_table(tmp_path)), DartsGenotype.parse(DARTS_V2))
