"""Population batching: each member of a batched population must follow the same path
as the same search run alone."""

from __future__ import annotations

import pytest
import torch

from pipeline.search import ArchSettings, DartsSearch, DivergedError
from pipeline.search.data import DeviceBatches, ImageSet
from pipeline.search.population import Population, PopulationError
from pipeline.spaces.darts import DartsSupernet
from pipeline.spaces.nb201 import NB201Supernet as Supernet

CPU = torch.device("cpu")


def _batches(n: int, seed: int, *, augment: bool) -> DeviceBatches:
    generator = torch.Generator().manual_seed(seed)
    images = ImageSet(torch.randint(0, 256, (n, 3, 16, 16), generator=generator,
                                    dtype=torch.uint8),
                      torch.randint(0, 10, (n,), generator=generator),
                      tuple(map(str, range(10))))
    return DeviceBatches(images, batch_size=16, device=CPU, mean=torch.full((3,), 0.5),
                         std=torch.full((3,), 0.25), crop_padding=2 if augment else 0,
                         flip=augment)


def _searches(count: int, *, space: str = "nb201", images: int = 32, epochs: int = 2,
              **settings: object) -> list[DartsSearch]:
    weight_half = _batches(images, 1, augment=True)
    arch_half = _batches(images, 2, augment=False)
    searches = []
    for k in range(count):
        torch.manual_seed(100 + k)  # each member its own start: weights and alphas
        net: Supernet | DartsSupernet
        if space == "darts":
            net = DartsSupernet(channels=4, layers=3, num_classes=10, in_channels=3)
        else:
            net = Supernet(channels=4, cells_per_stage=1, num_classes=10, in_channels=3)
        torch.nn.init.normal_(net.alphas, std=0.5)
        searches.append(DartsSearch(net, weight_batches=weight_half, arch_batches=arch_half,
                                    seed=k, epochs=epochs,
                                    arch_settings=ArchSettings(lr=3e-2, **settings)))
    return searches


@pytest.fixture(autouse=True)
def _deterministic() -> object:
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("space, count, images, epochs", [
    ("nb201", 3, 32, 2),  # two epochs of two steps each
    ("darts", 2, 16, 1),  # one architecture step and one weight step
])
def test_each_member_equals_its_search_run_alone(space: str, count: int, images: int,
                                                 epochs: int) -> None:
    """Equal up to float rounding: a batched convolution adds in another order, and a
    supernet amplifies such differences a little with every step."""
    alone = _searches(count, space=space, images=images, epochs=epochs)
    together = _searches(count, space=space, images=images, epochs=epochs)
    for search in alone:
        search.run()
    population = Population(together)
    while not population.finished:
        results = population.run_epoch()
        assert all(not isinstance(r, DivergedError) for r in results)
    for lone, member in zip(alone, together, strict=True):
        assert member.epoch == lone.epoch == epochs
        for ours, theirs in zip(member.history, lone.history, strict=True):
            assert ours.genotype == theirs.genotype
            assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-3)
            assert ours.valid_acc == pytest.approx(theirs.valid_acc, abs=1e-3)
            assert ours.weight_lr == theirs.weight_lr
        for (name, ours_p), theirs_p in zip(member.net.named_parameters(),
                                            lone.net.parameters(), strict=True):
            torch.testing.assert_close(ours_p, theirs_p, rtol=1e-3, atol=5e-4, msg=name)
        for ours_b, theirs_b in zip(member.net.buffers(), lone.net.buffers(), strict=True):
            torch.testing.assert_close(ours_b, theirs_b, rtol=1e-3, atol=5e-4)
        # the optimiser states came back too, so a member's checkpoint resumes like a lone one
        ours_state, theirs_state = member.state_dict(), lone.state_dict()
        for key in ("w_optimizer", "a_optimizer"):
            ours_opt, theirs_opt = ours_state[key]["state"], theirs_state[key]["state"]
            assert ours_opt.keys() == theirs_opt.keys()
            for index, state in ours_opt.items():
                for name, value in state.items():
                    torch.testing.assert_close(value, theirs_opt[index][name], rtol=1e-3,
                                               atol=5e-4)
    # members started apart and stayed apart
    assert together[0].history[-1].alpha_softmax != together[1].history[-1].alpha_softmax


def test_a_dropped_member_stops_and_the_rest_go_on() -> None:
    alone, together = _searches(3), _searches(3)
    alone[2].run()
    population = Population(together)
    population.run_epoch()
    population.drop(together[1])
    population.run_epoch()
    assert [m.epoch for m in together] == [2, 1, 2]
    torch.testing.assert_close(together[2].net.alphas, alone[2].net.alphas, rtol=1e-3,
                               atol=1e-5)


def test_searches_that_cannot_share_a_population_are_refused() -> None:
    with pytest.raises(PopulationError, match="first-order"):
        Population(_searches(2, order=2))
    first, second = _searches(2)
    second.epoch = 1
    with pytest.raises(PopulationError, match="share"):
        Population([first, second])
    with pytest.raises(PopulationError, match="at least one"):
        Population([])
