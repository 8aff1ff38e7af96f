from __future__ import annotations

import math
import random

import pytest
import torch

from pipeline.search.start import StartSpace, apply_start
from pipeline.spaces import WEIGHT_FAMILIES
from pipeline.spaces.nb201 import NB201Supernet as Supernet


def _space(**kwargs: object) -> StartSpace:
    return StartSpace(edges=["1<-0", "2<-0"], ops=["none", "skip"], alpha_range=0.5,
                      gain_range=0.4, directions=3, direction_range=0.2,
                      hyperparams=kwargs.get("hyperparams", {"weight_lr": 0.025}))


def _net(seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return Supernet(channels=4, cells_per_stage=1, num_classes=3, in_channels=1)


def test_x_round_trips_through_start_point() -> None:
    space = _space()
    rng = random.Random(0)
    for _ in range(20):
        x = {s.name: rng.uniform(s.low, s.high) for s in space.specs}
        assert space.encode(space.decode(x)) == x
    assert len(space) == 2 * 2 + len(WEIGHT_FAMILIES) + 3 + 1


def test_centre_is_plain_darts_start() -> None:
    space = _space()
    start = space.decode(space.centre())
    assert all(a == 0.0 for row in start.alpha0 for a in row)
    assert set(start.log_gains.values()) == {0.0} and set(start.offsets) == {0.0}
    assert math.isclose(start.hyperparams["weight_lr"], 0.025)
    net, reference = _net(), _net()
    full = StartSpace(edges=[str(i) for i in range(6)], ops=[str(i) for i in range(5)],
                      alpha_range=1, gain_range=1, directions=4, direction_range=1)
    apply_start(net, full.decode(full.centre()), direction_seed=1)
    for a, b in zip(net.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _full_space() -> StartSpace:
    return StartSpace(edges=[str(i) for i in range(6)], ops=[str(i) for i in range(5)],
                      alpha_range=1, gain_range=1, directions=2, direction_range=1)


def _moved(x_updates: dict[str, float], direction_seed: int = 1) -> Supernet:
    space = _full_space()
    net = _net()
    apply_start(net, space.decode({**space.centre(), **x_updates}), direction_seed=direction_seed)
    return net


def test_weights_move_linearly_along_directions() -> None:
    base = _net().stem[0].weight
    step1 = _moved({"offset:0": 0.1}).stem[0].weight - base
    step2 = _moved({"offset:0": 0.2}).stem[0].weight - base
    assert step1.abs().max() > 0
    assert torch.allclose(step2, 2 * step1, atol=1e-6)
    other_seed = _moved({"offset:0": 0.1}, direction_seed=2).stem[0].weight - base
    assert not torch.allclose(other_seed, step1)
    per_filter = step1.flatten(1).norm(dim=1) / base.flatten(1).norm(dim=1)
    assert torch.allclose(per_filter, torch.full_like(per_filter, 0.1), atol=1e-5)


def test_gains_scale_only_their_family_and_alpha0_is_set() -> None:
    base = _net()
    net = _moved({"gain:cells": 0.3, "alpha:2:4": 0.7})
    families, base_families = net.weight_families(), base.weight_families()
    for w, w0 in zip(families["cells"], base_families["cells"], strict=True):
        assert torch.allclose(w, w0 * math.exp(0.3))
    for w, w0 in zip(families["stem"], base_families["stem"], strict=True):
        assert torch.equal(w, w0)
    assert net.alphas[2, 4] == torch.tensor(0.7) and net.alphas.abs().sum() == torch.tensor(0.7)


@pytest.mark.parametrize("space, dims", [("nb201", 5), ("darts", 16)])
def test_an_op_start_space_has_one_logit_per_op_and_cell_type(space: str, dims: int) -> None:
    from pipeline.config import StudyConfig, with_overrides
    from pipeline.search import build_start_space

    config = with_overrides(StudyConfig(name="s"), [f"space.name={space}",
                                                     "start.alpha_space=op"])
    start = build_start_space(config, steps_per_epoch=10)
    alphas = [spec for spec in start.specs if spec.name.startswith("alpha:")]
    assert len(alphas) == dims
    generator = random.Random(0)
    x = {spec.name: generator.uniform(spec.low, spec.high) for spec in start.specs}
    point = start.decode(x)
    for edge, group in zip(point.alpha0, start.rows, strict=True):
        assert list(edge) == [x[f"alpha:{group}:{op}"] for op in start.ops]
    assert start.encode(point) == x
    centre = start.decode(start.centre())
    assert not any(any(row) for row in centre.alpha0)  # plain DARTS' uniform start
