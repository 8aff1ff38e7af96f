"""DARTS variants inside the search: each seam does what its paper says, plain DARTS is
untouched, and every variant repeats under its seed and resumes to the uninterrupted
result."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.config import SpaceConfig, StudyConfig, with_overrides
from pipeline.search import DartsSearch, build_search, build_start_space, prepare_data
from pipeline.search.selection import PerturbationSelection, decisions, tune_epochs
from pipeline.spaces import get_space
from pipeline.variants import VARIANTS, noise
from pipeline.variants.beta_darts import BetaDarts
from pipeline.variants.drnas import DrNAS
from pipeline.variants.sdarts_rs import SdartsRS, perturbed

CPU = torch.device("cpu")
VARIANT_NAMES = list(VARIANTS)


def _search(config: StudyConfig, *, seed: int = 0, init_seed: int | None = None,
            **search: object) -> DartsSearch:
    config = with_overrides(config, [f"search.{key}={json.dumps(value)}"
                                     for key, value in search.items()])
    data = prepare_data(config, CPU)
    space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    return build_search(config, data, space.decode(space.centre()), seed=seed,
                        init_seed=seed if init_seed is None else init_seed, device=CPU)


def _plain_starts(config: StudyConfig) -> StudyConfig:
    """The study with plain DARTS' starts, which need no start box (fixed alphas have none
    of their own)."""
    return dataclasses.replace(config, outer=dataclasses.replace(config.outer, sampler="darts"))


def test_beta_decay_is_the_formula_and_its_gradient_ramped_from_0_to_lambda(
        tiny_config: StudyConfig) -> None:
    alphas = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], requires_grad=True)
    variant = BetaDarts(beta_lambda=7.0)
    penalty = variant.arch_penalty(alphas, t=0.5)
    expected = 7.0 * 0.5 * (torch.logsumexp(alphas[0], 0) + torch.logsumexp(alphas[1], 0)) / 2
    assert penalty is not None and torch.allclose(penalty, expected)
    (grad,) = torch.autograd.grad(penalty, alphas)
    assert torch.allclose(grad, 7.0 * 0.5 * F.softmax(alphas.detach(), dim=-1) / 2)
    search = _search(tiny_config, variant="beta-darts", beta_lambda=7.0)
    steps = len(search.weight_batches)
    assert search.progress(0) == 0.0
    search.epoch = search.epochs - 1
    assert search.progress(steps - 1) == 1.0  # the last step: lambda itself


def test_darts_minus_skip_falls_from_beta_to_0_and_stays_out_of_the_cell(
        tiny_config: StudyConfig) -> None:
    search = _search(tiny_config, variant="darts-minus", aux_skip_beta=0.7)
    aux = search.net.aux_weight()
    assert aux is not None and "aux_skip_weight" not in search.net.state_dict()
    with search.variant_step(0):
        assert aux.item() == pytest.approx(0.7)
    search.epoch = search.epochs - 1
    with search.variant_step(len(search.weight_batches) - 1):
        assert aux.item() == 0.0
    genotype = search.net.genotype()
    aux.fill_(5.0)
    assert search.net.genotype() == genotype  # the skip is no candidate op


@pytest.mark.parametrize("space, cells", [("nb201", 1), ("darts", 3)])
def test_darts_minus_with_beta_0_is_plain_darts(space: str, cells: int) -> None:
    x = torch.randn(2, 3, 16, 16)
    settings = get_space(space)
    size = SpaceConfig(name=space, channels=4,
                       settings={"cells_per_stage": cells, "layers": max(cells, 3)})
    nets = []
    for aux_skip in (False, True):
        torch.manual_seed(0)
        nets.append(settings.supernet(size, num_classes=5, in_channels=3, aux_skip=aux_skip))
    plain, minus = nets
    minus.load_state_dict(plain.state_dict(), strict=False)  # the same weights
    plain.eval()
    minus.eval()
    assert torch.allclose(plain(x), minus(x))  # its weight starts at 0
    minus.aux_weight().fill_(1.0)  # type: ignore[union-attr]
    assert not torch.allclose(plain(x), minus(x))


def test_drnas_weights_are_dirichlet_samples_that_repeat_under_a_seed() -> None:
    alphas = torch.tensor([[0.5, -0.3, 1.2, 0.0, 2.0]] * 3)
    variant = DrNAS()
    with noise(5, CPU):
        first = variant.edge_weights(alphas)
        second = variant.edge_weights(alphas)
    with noise(5, CPU):
        again = variant.edge_weights(alphas)
    assert first is not None and second is not None and again is not None
    assert (first > 0).all() and torch.allclose(first.sum(-1), torch.ones(3))
    assert not torch.equal(first, second) and torch.equal(first, again)
    with noise(1, CPU):
        mean = torch.stack([variant.edge_weights(alphas) for _ in range(4000)]).mean(0)
    expected = variant.mean_weights(alphas)
    assert expected is not None and torch.allclose(mean, expected, atol=0.01)


def test_drnas_kl_regulariser_vanishes_at_the_uniform_prior() -> None:
    variant = DrNAS(drnas_regularizer="kl", drnas_reg_weight=2.0)
    at_prior = variant.arch_penalty(torch.zeros(3, 5), t=0.0)  # elu(0) + 1 = 1
    assert at_prior is not None and torch.allclose(at_prior, torch.zeros(()), atol=1e-6)
    away = variant.arch_penalty(torch.full((3, 5), 2.0), t=0.0)
    assert away is not None and away > 0


def test_sdarts_noise_stays_within_epsilon_and_leaves_the_alphas(
        tiny_config: StudyConfig) -> None:
    weights = F.softmax(torch.randn(6, 5), dim=-1)
    with noise(0, CPU):
        noisy = perturbed(weights, 0.05)
    assert (noisy - weights).abs().max() <= 0.05 and not torch.equal(noisy, weights)
    variant = SdartsRS(sdarts_epsilon_min=0.03, sdarts_epsilon_max=0.3)
    assert variant.epsilon(0.0) == 0.03 and variant.epsilon(1.0) == pytest.approx(0.3)
    with noise(0, CPU):
        mixed = variant.weight_step_weights(torch.randn(6, 5), t=0.5)
    assert mixed is not None and torch.allclose(mixed.sum(-1), torch.ones(6))
    assert ((mixed >= 0) & (mixed <= 1)).all()
    search = _search(tiny_config, variant="sdarts-rs")
    x_w, y_w = next(search.weight_batches.epoch(0, 0))
    before = search.net.alphas.detach().clone()
    with search.variant_step(0):
        search.weight_step(x_w, y_w)
    assert torch.equal(search.net.alphas.detach(), before)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_variant_repeats_and_resumes_to_the_uninterrupted_result(
        tiny_config: StudyConfig, tmp_path: Path, name: str) -> None:
    whole = _search(tiny_config, seed=2, variant=name)
    whole.run()
    again = _search(tiny_config, seed=2, variant=name)
    again.run()
    first = _search(tiny_config, seed=2, variant=name)
    first.run_epoch()
    save_checkpoint(tmp_path / "ckpt.pt", first.state_dict(), meta={})
    resumed = _search(tiny_config, seed=2, init_seed=7, variant=name)  # weights: from the file
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt", meta={},
                                            keys=DartsSearch.STATE_KEYS, epochs=3))
    resumed.run()
    for other in (again, resumed):
        assert torch.equal(other.net.alphas, whole.net.alphas)
        assert [r.genotype for r in other.history] == [r.genotype for r in whole.history]
    if name != "darts":  # the variant changed the search
        plain = _search(tiny_config, seed=2)
        plain.run()
        assert not torch.equal(plain.net.alphas, whole.net.alphas)


def test_perturbation_selection_keeps_the_op_whose_removal_hurts_most() -> None:
    space = get_space("nb201")
    selection = PerturbationSelection(space, seed=0)
    carrier = {row: (row + 2) % 5 for row in range(6)}  # the op that carries each edge

    def accuracy(weights: torch.Tensor) -> float:
        return float(sum(weights[row, op] for row, op in carrier.items()))

    weights = torch.full((6, 5), 0.2)
    while not selection.finished:
        selection.decide(weights, accuracy)
    assert selection.chosen == carrier
    assert torch.equal(selection.project(weights).argmax(-1), torch.tensor(
        [carrier[row] for row in range(6)]))
    assert decisions(space, 3) == decisions(space, 3) != decisions(space, 4)
    assert tune_epochs(space, 5) == 25  # NAS-Bench-201's 6 edges, as published


def test_perturbation_selection_keeps_two_inputs_per_darts_node() -> None:
    space = get_space("darts")
    plan = decisions(space, 0)
    assert [kind for kind, _ in plan] == ["op"] * 14 + ["inputs"] * 3
    selection = PerturbationSelection(space, seed=0)
    weights = torch.full((28, 8), 1 / 8)
    torch.manual_seed(0)
    merit = torch.rand(28, 8)

    def accuracy(mixed: torch.Tensor) -> float:
        return float((mixed * merit).sum())

    while not selection.finished:
        selection.decide(weights, accuracy)
    assert all(op != 0 for op in selection.chosen.values())  # DARTS cells hold no none
    for node in space.node_inputs:
        assert sum(row not in selection.dropped for row in node) == 2


def test_perturbation_selection_fine_tunes_between_decisions_and_resumes(
        tiny_config: StudyConfig, tmp_path: Path) -> None:
    settings = dict(selection="perturbation", selection_tune_epochs=1, epochs=2)
    whole = _search(tiny_config, seed=1, **settings)
    assert whole.total_epochs == 2 + 5  # a tuning epoch between each of 6 decisions
    whole.run()
    assert whole.selection is not None and whole.selection.finished
    lrs = [r.weight_lr for r in whole.history]
    assert lrs[2:] == [pytest.approx(whole.weight_settings.lr / 10)] * 5  # tuning's own
    cell = whole.history[-1].genotype
    chosen = [whole.selection.chosen[row] for row in range(6)]
    assert cell == whole.net.genotype(whole.selection.project(
        torch.zeros(6, 5))).to_str() and whole.net.genotype().indices != () and chosen
    first = _search(tiny_config, seed=1, **settings)
    for _ in range(4):  # past the search, two decisions made
        first.run_epoch()
    save_checkpoint(tmp_path / "ckpt.pt", first.state_dict(), meta={})
    resumed = _search(tiny_config, seed=1, init_seed=5, **settings)
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt", meta={},
                                            keys=DartsSearch.STATE_KEYS, epochs=7))
    resumed.run()
    assert [r.genotype for r in resumed.history] == [r.genotype for r in whole.history]
    assert resumed.selection is not None and resumed.selection.chosen == whole.selection.chosen


def test_perturbation_selection_measures_by_batch_statistics(
        tiny_config: StudyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    search = _search(_plain_starts(tiny_config), arch_lr=0.0, selection="perturbation",
                     selection_tune_epochs=0, epochs=1)
    calls: list[bool] = []
    measure = search.forward.evaluate

    def spy(*args: object, batch_statistics: bool = False, **kwargs: object) -> torch.Tensor:
        calls.append(batch_statistics)
        return measure(*args, batch_statistics=batch_statistics, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(search.forward, "evaluate", spy)
    search.run()
    assert calls.count(True) == 6 * 5 + 1  # each op on each edge, then the epoch's own
    assert calls.count(False) == 1  # the chosen cell's, after recalibration
    projected = search.selection.project(torch.softmax(search.net.alphas.detach(), dim=-1))
    by_batch = measure(search.arch_batches, weights=projected, batch_statistics=True)
    by_running = measure(search.arch_batches, weights=projected)
    assert search.history[-1].valid_acc == pytest.approx(100 * float(by_batch[1]))
    assert not torch.allclose(by_batch, by_running)  # so the test tells the two apart


def test_fixed_alphas_stay_at_their_start(tiny_config: StudyConfig) -> None:
    search = _search(_plain_starts(tiny_config), arch_lr=0.0, selection="perturbation",
                     selection_tune_epochs=0)
    start = search.net.alphas.detach().clone()
    search.run()
    assert torch.equal(search.net.alphas.detach(), start)  # DARTS-PT's fixed-alpha baseline
    assert search.epoch == tiny_config.search.epochs  # no tuning: decided at once
    assert search.selection is not None and search.selection.finished


@pytest.mark.parametrize("name", ["darts-minus", "beta-darts", "sdarts-rs"])
def test_second_order_runs_for_the_variants_that_define_it(tiny_config: StudyConfig,
                                                           name: str) -> None:
    search = _search(tiny_config, variant=name, order=2, epochs=1)
    start = search.net.alphas.detach().clone()
    record = search.run_epoch()
    assert 0 <= record.valid_acc <= 100 and not torch.equal(search.net.alphas.detach(), start)
