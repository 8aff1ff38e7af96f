from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline import cli
from pipeline.checkpoint import load_checkpoint
from pipeline.config import ConfigError
from pipeline.search.data import DeviceBatches, ImageSet, load_dataset
from pipeline.search.training import TrainSettings, retrain, short_training_accuracy, train_epoch
from pipeline.spaces import DartsGenotype, NB201Genotype
from pipeline.spaces.darts import DartsSpace

CELL = NB201Genotype.parse(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|"
    "avg_pool_3x3~2|")
TINY = TrainSettings(epochs=3, batch_size=64, channels=4, cells=1, crop_padding=1, flip=False)


@pytest.fixture(scope="module")
def digits() -> tuple[ImageSet, ImageSet]:
    train, test = load_dataset("digits", "unused")
    return train.subset(torch.arange(600)), test


def test_cutout_blanks_one_square_per_image() -> None:
    images = ImageSet(torch.full((8, 1, 12, 12), 200, dtype=torch.uint8), torch.zeros(8).long(),
                      ("a",))
    batches = DeviceBatches(images, batch_size=8, device=torch.device("cpu"),
                            mean=torch.zeros(1), std=torch.ones(1), cutout=4)
    x, _ = next(batches.epoch(0, 0))
    zeros = (x == 0).flatten(1).sum(dim=1)
    assert x.shape == (8, 1, 12, 12) and (zeros <= 16).all() and (zeros >= 4).all()


def test_training_lowers_the_loss(digits: tuple[ImageSet, ImageSet]) -> None:
    from pipeline.search.data import channel_stats
    from pipeline.spaces import space_of

    train, _ = digits
    mean, std = channel_stats(train)
    batches = DeviceBatches(train, batch_size=64, device=torch.device("cpu"), mean=mean,
                            std=std)
    torch.manual_seed(0)
    net = space_of(CELL).network(CELL, TINY, num_classes=10, in_channels=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = [train_epoch(net, batches, optimizer, seed=0, epoch=e, grad_clip=5.0)[0]
              for e in range(4)]
    assert losses[-1] < losses[0]


def test_short_training_ranks_a_working_cell_above_a_disconnected_one(
        digits: tuple[ImageSet, ImageSet]) -> None:
    from pipeline.search.data import channel_stats

    train, test = digits
    mean, std = channel_stats(train)
    common = dict(batch_size=64, device=torch.device("cpu"), mean=mean, std=std)
    train_batches = DeviceBatches(train, **common)  # type: ignore[arg-type]
    valid_batches = DeviceBatches(test.subset(torch.arange(300)), **common)  # type: ignore[arg-type]
    cut_off = NB201Genotype.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")

    def accuracy(cell: NB201Genotype, seed: int = 0) -> float:
        return short_training_accuracy(cell, train_batches, valid_batches, settings=TINY,
                                       seed=seed, num_classes=10, in_channels=1)

    working = accuracy(CELL)
    assert working == accuracy(CELL)  # the seed fixes initialisation and batch order
    assert working != accuracy(CELL, seed=1)
    assert working > 50 > 20 > accuracy(cut_off)


def test_a_cut_off_cell_is_scored_without_training(digits: tuple[ImageSet, ImageSet],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.search import training as train_module
    from pipeline.search.data import channel_stats

    train, test = digits
    mean, std = channel_stats(train)
    common = dict(batch_size=64, device=torch.device("cpu"), mean=mean, std=std)
    valid = test.subset(torch.arange(300))
    cut_off = NB201Genotype.parse(
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cut-off cell was trained")

    monkeypatch.setattr(train_module.CellTraining, "fit", no_training)
    accuracy = short_training_accuracy(
        cut_off, DeviceBatches(train, **common),  # type: ignore[arg-type]
        DeviceBatches(valid, **common),  # type: ignore[arg-type]
        settings=TINY, seed=0, num_classes=10, in_channels=1)
    shares = {100 * int((valid.labels == c).sum()) / len(valid) for c in range(10)}
    assert accuracy in shares  # the network answers one class for every image
    with pytest.raises(AssertionError, match="cut-off"):
        short_training_accuracy(CELL, DeviceBatches(train, **common),  # type: ignore[arg-type]
                                DeviceBatches(valid, **common),  # type: ignore[arg-type]
                                settings=TINY, seed=0, num_classes=10, in_channels=1)


def test_resumed_training_equals_uninterrupted(digits: tuple[ImageSet, ImageSet],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = digits
    whole = retrain(CELL, train, test, settings=TINY, device=torch.device("cpu"),
                    checkpoint=tmp_path / "a" / "ckpt.pt")
    import pipeline.search.training

    calls = {"n": 0}
    original = pipeline.search.training.train_epoch

    def interrupted(*args: object, **kwargs: object) -> tuple[float, float]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.search.training, "train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            retrain(CELL, train, test, settings=TINY, device=torch.device("cpu"),
                    checkpoint=tmp_path / "b" / "ckpt.pt")
    resumed = retrain(CELL, train, test, settings=TINY, device=torch.device("cpu"),
                      checkpoint=tmp_path / "b" / "ckpt.pt")
    assert resumed.test_acc == whole.test_acc and whole.test_acc > 10
    meta = {"genotype": CELL.to_str(), "settings": dataclasses.asdict(TINY), "seed": 0}
    a, b = (load_checkpoint(tmp_path / run / "ckpt.pt", meta=meta, keys=["model"],
                            epochs=TINY.epochs)["model"] for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_darts_cells_train_with_their_protocol_parts(digits: tuple[ImageSet, ImageSet],
                                                     tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 3, 32, 32), generator=generator, dtype=torch.uint8)
    train = ImageSet(images[:64], torch.arange(64) % 10, tuple(map(str, range(10))))
    test = ImageSet(images[64:], torch.arange(32) % 10, train.classes)
    genotype = DartsGenotype.parse(
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_3x3', 2), ('dil_conv_3x3', 1), ('max_pool_3x3', 3), ('avg_pool_3x3', 0), "
        "('avg_pool_3x3', 4)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('sep_conv_5x5', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('dil_conv_5x5', 1)], "
        "reduce_concat=[2, 3, 4, 5])")
    settings = dataclasses.replace(DartsSpace.protocol, epochs=1, batch_size=64, channels=4,
                                   cells=3, cutout=4, crop_padding=1, flip=False)
    result = retrain(genotype, train, test, settings=settings, device=torch.device("cpu"),
                     checkpoint=tmp_path / "ckpt.pt")
    assert 0 <= result.test_acc <= 100 and result.params_m > 0
    with pytest.raises(ConfigError, match="32x32"):  # the auxiliary head on 8x8 digits
        retrain(genotype, digits[0], digits[1], settings=settings, device=torch.device("cpu"),
                checkpoint=tmp_path / "other.pt")


def test_evaluate_trains_from_the_command_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["evaluate", "--genotype", CELL.to_str(), "--set", "data.dataset=digits",
                     "--set", "retrain.epochs=1", "--set", "retrain.channels=4",
                     "--set", "retrain.cells=1", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0 and "test acc (%)" in capsys.readouterr().out
    assert list(tmp_path.glob("*/ckpt.pt"))
