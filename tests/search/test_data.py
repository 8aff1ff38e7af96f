from __future__ import annotations

import logging

import pytest
import torch

from pipeline.search.data import (
    DatasetError,
    DeviceBatches,
    ImageSet,
    channel_stats,
    holdout_set,
    load_dataset,
    outside_search,
    search_split,
)


def _images(n: int = 40, classes: int = 4) -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 6, 6), generator=generator, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % classes, tuple(map(str, range(classes))))


def test_digits_are_embedded_and_split_without_overlap() -> None:
    train, test = load_dataset("digits", "unused")
    assert train.shape == (1, 8, 8) and len(train) + len(test) == 1797
    assert train.images.dtype == torch.uint8 and len(train.classes) == 10
    assert abs(len(test) / 1797 - 0.2) < 0.01


def test_unknown_dataset_and_missing_files(tmp_path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DatasetError, match="download"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="train"):
        load_dataset("imagefolder", tmp_path)


def test_imagefolder_tree_loads(tmp_path) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (5, 5), (i * 40, 0, 0)).save(folder / f"{i}.png")
    train, test = load_dataset("imagefolder", tmp_path)
    assert train.images.shape == (6, 3, 5, 5) and train.classes == ("cat", "dog")
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and len(test) == 6


def test_search_split_is_balanced_disjoint_and_seeded() -> None:
    data = _images()
    a, b = search_split(data, subset=0, seed=1)
    assert len(a) == len(b) == 20
    assert torch.bincount(a.labels).tolist() == [5, 5, 5, 5]
    rows = {tuple(x.flatten().tolist()) for x in torch.cat([a.images, b.images])}
    assert len(rows) == 40
    a2, _ = search_split(data, subset=0, seed=1)
    assert torch.equal(a.images, a2.images)
    small, _ = search_split(data, subset=16, seed=1)
    assert len(small) == 8 and torch.bincount(small.labels).tolist() == [2, 2, 2, 2]


def test_holdout_is_balanced_outside_the_search_and_seeded() -> None:
    data = _images(80)
    weights_half, arch_half = search_split(data, subset=16, seed=1)
    held = holdout_set(data, subset=16, holdout=20, seed=1)
    assert len(held) == 20 and torch.bincount(held.labels).tolist() == [5, 5, 5, 5]

    def rows(images: ImageSet) -> set[tuple[int, ...]]:
        return {tuple(x.flatten().tolist()) for x in images.images}

    assert not rows(held) & (rows(weights_half) | rows(arch_half))
    assert torch.equal(held.images, holdout_set(data, subset=16, holdout=20, seed=1).images)
    assert not torch.equal(held.images, holdout_set(data, subset=16, holdout=20, seed=2).images)
    with pytest.raises(DatasetError, match="holdout=65 exceeds the 64 training images"):
        holdout_set(data, subset=16, holdout=65, seed=1)


def test_the_images_outside_a_search_are_the_rest_of_the_training_set() -> None:
    data = _images(80)
    halves = search_split(data, subset=16, seed=1)
    held = holdout_set(data, subset=16, holdout=20, seed=1)
    rest = outside_search(data, subset=16, holdout=20, seed=1)

    def rows(images: ImageSet) -> set[tuple[int, ...]]:
        return {tuple(x.flatten().tolist()) for x in images.images}

    assert len(rest) == 80 - 16 - 20
    assert not rows(rest) & (rows(halves[0]) | rows(halves[1]) | rows(held))
    assert rows(rest) | rows(halves[0]) | rows(halves[1]) | rows(held) == rows(data)
    assert len(outside_search(data, subset=16, holdout=0, seed=1)) == 80 - 16


def test_a_holdout_that_rounds_away_is_refused_and_one_that_rounds_is_told(
        caplog: pytest.LogCaptureFixture) -> None:
    data = _images(80)  # 4 classes
    with pytest.raises(DatasetError, match="holdout=1 sets aside no image: it is split over 4"):
        holdout_set(data, subset=16, holdout=1, seed=1)
    with caplog.at_level(logging.WARNING):
        held = holdout_set(data, subset=16, holdout=6, seed=1)
    assert len(held) == 8 and "data.holdout=6 sets aside 8 images" in caplog.text


def _batches(crop: int = 0, flip: bool = False) -> DeviceBatches:
    data = _images()
    mean, std = channel_stats(data)
    return DeviceBatches(data, batch_size=16, device=torch.device("cpu"), mean=mean, std=std,
                         crop_padding=crop, flip=flip)


def test_epochs_are_a_function_of_seed_and_epoch() -> None:
    batches = _batches(crop=2, flip=True)
    first = [x for x, _ in batches.epoch(5, 0)]
    again = [x for x, _ in batches.epoch(5, 0)]
    other = [x for x, _ in batches.epoch(5, 1)]
    assert len(first) == len(batches) == 3
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_unaugmented_epoch_is_a_permutation_of_normalised_images() -> None:
    batches = _batches()
    xs, ys = zip(*batches.epoch(0, 0), strict=True)
    reference = torch.cat([x for x, _ in batches.in_order()])
    got = torch.cat(xs)
    assert got.shape == reference.shape
    assert sorted(map(tuple, got.flatten(1).tolist())) == sorted(
        map(tuple, reference.flatten(1).tolist()))
    assert torch.cat(ys).sort().values.tolist() == sorted(batches.labels.tolist())


def test_evaluation_batches_are_training_sized_unless_asked_otherwise() -> None:
    batches = _batches()
    assert [len(y) for _, y in batches.in_order()] == [len(y) for _, y in batches.epoch(0, 0)]
    assert [len(y) for _, y in batches.in_order(32)] == [32, 8]
    assert torch.equal(torch.cat([x for x, _ in batches.in_order()]),
                       torch.cat([x for x, _ in batches.in_order(32)]))


def test_evaluation_by_batch_statistics_ignores_and_keeps_the_running_ones() -> None:
    from pipeline.search.steps import evaluation_sums

    batches = _batches()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, affine=False),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 4))
    norm = net[1]
    norm.running_var.fill_(1e4)  # statistics that fit no batch
    before = [t.clone() for t in (norm.running_mean, norm.running_var, norm.num_batches_tracked)]
    by_batch = evaluation_sums(net, net, batches, batch_statistics=True)
    after = (norm.running_mean, norm.running_var, norm.num_batches_tracked)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert net.training and norm.track_running_stats  # its mode and tracking put back
    expected = torch.zeros(3)
    with torch.no_grad():
        for x, y in batches.in_order():
            centred = net[0](x)
            centred = (centred - centred.mean((0, 2, 3), keepdim=True)) / torch.sqrt(
                centred.var((0, 2, 3), unbiased=False, keepdim=True) + norm.eps)
            logits = net[4](net[3](net[2](centred)))
            expected += torch.tensor([torch.nn.functional.cross_entropy(
                logits, y, reduction="sum").item(), (logits.argmax(1) == y).sum().item(), len(y)])
    assert torch.allclose(by_batch, expected, atol=1e-4)
    assert not torch.allclose(evaluation_sums(net, net, batches)[0], expected[0], atol=1e-2)


def test_crops_are_windows_of_the_padded_image() -> None:
    batches = _batches(crop=2)
    generator_order = torch.randperm(40, generator=torch.Generator().manual_seed(7 * 1_000_003))
    x, _ = next(batches.epoch(7, 0))
    raw = batches.images[generator_order[:16]].float() / 255
    padded = torch.nn.functional.pad(raw, (2, 2, 2, 2))
    x = x * batches.std + batches.mean  # undo normalisation
    for image, source in zip(x, padded, strict=True):
        windows = [source[:, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.allclose(image, w, atol=1e-5) for w in windows)
