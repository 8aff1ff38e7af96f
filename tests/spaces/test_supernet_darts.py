from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.config import StudyConfig
from pipeline.outer.study import load_study, run_study
from pipeline.search import build_start_space
from pipeline.spaces.darts import (
    DARTS_OPS,
    EDGES_PER_CELL,
    DartsGenotype,
    DartsSupernet,
    darts_edges,
)


def _net() -> DartsSupernet:
    torch.manual_seed(0)
    return DartsSupernet(channels=4, layers=3, num_classes=5, in_channels=3)


def test_shapes_and_alphas() -> None:
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    assert net(x).shape == (2, 5)
    assert net.state_dict()["alphas"].shape == (2 * 14, len(DARTS_OPS)) and EDGES_PER_CELL == 14
    assert len(darts_edges()) == 14


def test_genotype_follows_the_darts_rule() -> None:
    net = _net()
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[:, 0] = 5.0  # "none" is strongest everywhere, and never chosen
        for row, (_, src) in enumerate(darts_edges()):
            net.alphas[row, 4] = 1.0 + src / 10  # sep_conv_3x3, stronger for later inputs
        net.alphas[EDGES_PER_CELL:, 1] = 3.0  # max_pool wins in the reduction cell
    genotype = net.genotype()
    assert [src for _, src in genotype.normal] == [0, 1, 1, 2, 2, 3, 3, 4]
    assert {op for op, _ in genotype.normal} == {"sep_conv_3x3"}
    assert {op for op, _ in genotype.reduce} == {"max_pool_3x3"}
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert DartsGenotype.parse(genotype.to_literal()) == genotype


def test_the_derived_cells_equal_a_one_hot_mixture() -> None:
    net = _net().eval()
    genotype = net.genotype()
    choice = net.choice(genotype)
    assert sum(c >= 0 for c in choice) == 16
    with torch.no_grad():
        one_hot = torch.full_like(net.alphas, -1e4)
        for row, op in enumerate(choice):
            one_hot[row, max(op, 0)] = 0.0  # an edge the cell lacks carries "none"
        net.alphas.copy_(one_hot)
        assert torch.allclose(F.softmax(net.alphas, dim=-1).max(dim=1).values, torch.ones(28))
        x = torch.randn(2, 3, 16, 16)
        assert torch.allclose(net(x, choice), net(x), atol=1e-4)


def test_a_study_searches_the_darts_space(tiny_config: StudyConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(
        tiny_config, space=dataclasses.replace(tiny_config.space, name="darts", settings={
            **tiny_config.space.settings, "layers": 3}),
        search=dataclasses.replace(tiny_config.search, epochs=1),
        outer=dataclasses.replace(tiny_config.outer, n_trials=2))
    assert len(build_start_space(config, steps_per_epoch=1).specs) == 224 + 4 + 2
    run_study(config, root=tmp_path, device=torch.device("cpu"))
    trials = load_study("tiny", root=tmp_path).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    genotype = DartsGenotype.parse(trials[1].user_attrs["cell"])
    assert len(genotype.normal) == 8 and trials[1].user_attrs["eval_params_M"] > 0
    assert len(trials[1].user_attrs["alpha_softmax"]) == 28
