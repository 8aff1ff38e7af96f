from __future__ import annotations

import pytest

from pipeline.spaces import GenotypeError
from pipeline.spaces.nb201 import NB201Genotype, all_nb201_genotypes

EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
           "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def test_all_cells_round_trip_through_their_strings() -> None:
    strings = set()
    for genotype in all_nb201_genotypes():
        text = genotype.to_str()
        assert NB201Genotype.parse(text) == genotype
        assert NB201Genotype.from_indices(genotype.indices) == genotype
        strings.add(text)
    assert len(strings) == 5**6


def test_string_format_is_nb201s() -> None:
    genotype = NB201Genotype.parse(EXAMPLE)
    assert genotype.ops == ("nor_conv_3x3",) * 3 + ("skip_connect",) + ("nor_conv_3x3",) * 2
    assert genotype.to_str() == EXAMPLE


@pytest.mark.parametrize("text", [
    "", "|nor_conv_3x3~0|", EXAMPLE.replace("skip_connect", "sep_conv_3x3"),
    EXAMPLE.replace("~1|+", "~0|+", 1), EXAMPLE.replace("|+|", "+"),
    EXAMPLE + "+|none~0|",
])
def test_malformed_strings_are_rejected(text: str) -> None:
    with pytest.raises(GenotypeError):
        NB201Genotype.parse(text)


def test_op_shares() -> None:
    genotype = NB201Genotype(("skip_connect", "avg_pool_3x3", "none", "none",
                              "nor_conv_1x1", "skip_connect"))
    assert genotype.op_shares() == {"skip_share": 2 / 6, "pool_share": 1 / 6,
                                    "none_share": 2 / 6}


@pytest.mark.parametrize(("text", "connected"), [
    (EXAMPLE, True),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", False),
    ("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|", True),  # 0-1-3
    ("|none~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|nor_conv_3x3~2|", False),  # 1 is cut
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", False),
])
def test_a_cell_is_connected_when_a_path_without_none_reaches_its_output(
        text: str, connected: bool) -> None:
    assert NB201Genotype.parse(text).connected is connected


def test_nas_bench_201_has_341_cut_off_cells() -> None:
    # the table scores exactly these 341 cells at chance (10.00 % on CIFAR-10)
    assert sum(not cell.connected for cell in all_nb201_genotypes()) == 341
