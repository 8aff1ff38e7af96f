"""Datasets, the DARTS search split and device-resident, device-augmented batches.

Every dataset is decoded once into a uint8 tensor (N, C, H, W). A search then keeps
its images on the device and crops, flips and normalises whole batches there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipeline.config import StudyConfig

logger = logging.getLogger(__name__)

DIGITS_TEST_SHARE = 0.2
DIGITS_SPLIT_SEED = 0


class DatasetError(ValueError):
    """A dataset that is unknown, missing on disk, or malformed."""


@dataclass(frozen=True, slots=True)
class ImageSet:
    """Images as uint8 (N, C, H, W) with int64 labels (N,)."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        c, h, w = self.images.shape[1:]
        return c, h, w


def _load_digits(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), split 80/20."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8))
    full = ImageSet(images.unsqueeze(1), torch.from_numpy(digits.target).long(),
                    tuple(str(d) for d in range(10)))
    test_index, train_index = stratified_halves(full.labels, DIGITS_TEST_SHARE,
                                                seed=DIGITS_SPLIT_SEED)
    return full.subset(train_index), full.subset(test_index)


def _load_torchvision_cifar(name: str) -> Callable[[Path, bool], tuple[ImageSet, ImageSet]]:
    def load(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        try:
            splits = [cls(str(root), train=train, download=download) for train in (True, False)]
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
            raise DatasetError(
                f"{name} not found under {root} ({error}); --set data.download=true fetches it"
            ) from None
        return tuple(  # type: ignore[return-value]
            ImageSet(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(),
                     torch.tensor(s.targets, dtype=torch.long), tuple(s.classes))
            for s in splits
        )

    return load


def _load_imagefolder(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """Any tree with ``train/<class>/*`` and ``test/<class>/*`` images."""
    from torchvision import datasets
    from torchvision.transforms.functional import pil_to_tensor
    from tqdm.auto import tqdm

    splits = []
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DatasetError(f"imagefolder needs {folder}/<class>/<image> files")
        tree = datasets.ImageFolder(str(folder), loader=datasets.folder.pil_loader)
        images = [pil_to_tensor(image.convert("RGB")) for image, _ in
                  tqdm(tree, desc=f"decoding {split}", leave=False, disable=None)]
        sizes = {tuple(im.shape) for im in images}
        if len(sizes) != 1:
            raise DatasetError(f"images under {folder} differ in size: {sorted(sizes)[:3]}")
        splits.append(ImageSet(torch.stack(images), torch.tensor(tree.targets),
                               tuple(tree.classes)))
    return splits[0], splits[1]


DATASETS: dict[str, Callable[[Path, bool], tuple[ImageSet, ImageSet]]] = {
    "digits": _load_digits,
    "cifar10": _load_torchvision_cifar("cifar10"),
    "cifar100": _load_torchvision_cifar("cifar100"),
    "imagefolder": _load_imagefolder,
}


def load_dataset(name: str, root: str | Path, *, download: bool = False
                 ) -> tuple[ImageSet, ImageSet]:
    """Load (train, test) of a dataset in ``DATASETS``.

    Raises:
        DatasetError: unknown name, or the files are missing.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})")
    return DATASETS[name](Path(root), download)


def stratified_halves(labels: Tensor, share: float, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices class by class: ``share`` of each class, then the rest (both shuffled).

    Hand-written rather than scikit-learn's ``train_test_split(stratify=...)``: that draws
    another split from the same seed, and every existing study's data would change.
    """
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for label in torch.unique(labels, sorted=True):
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = round(len(members) * share)
        first.append(members[:cut])
        second.append(members[cut:])
    shuffle = torch.cat(first), torch.cat(second)
    return tuple(  # type: ignore[return-value]
        part[torch.randperm(len(part), generator=generator)] for part in shuffle
    )


def _subset(train: ImageSet, *, subset: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """The ``subset`` images a search keeps (class-balanced; 0: all) and the rest."""
    if not subset:
        return train, train.subset(torch.zeros(0, dtype=torch.long))
    if subset > len(train):
        raise DatasetError(f"data.subset={subset} exceeds the {len(train)} training images")
    kept, rest = stratified_halves(train.labels, subset / len(train), seed=seed)
    return train.subset(kept), train.subset(rest)


def search_split(train: ImageSet, *, subset: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """DARTS' split of the training set: one half trains weights, the other alphas.

    Both halves are class-balanced; ``subset`` > 0 first keeps that many images,
    class-balanced. The test set is never part of a search.
    """
    train, _ = _subset(train, subset=subset, seed=seed)
    weights_index, arch_index = stratified_halves(train.labels, 0.5, seed=seed + 1)
    return train.subset(weights_index), train.subset(arch_index)


def holdout_set(train: ImageSet, *, subset: int, holdout: int, seed: int) -> ImageSet:
    """``holdout`` training images (class-balanced, to rounding per class) outside the
    ``subset`` that ``search_split`` keeps with the same seed: no search sees them."""
    _, rest = _subset(train, subset=subset, seed=seed)
    if holdout > len(rest):
        raise DatasetError(f"data.holdout={holdout} exceeds the {len(rest)} training images "
                           f"outside data.subset={subset}")
    kept, _ = stratified_halves(rest.labels, holdout / len(rest), seed=seed + 2)
    classes = len(torch.unique(rest.labels))
    if len(kept) == 0:
        raise DatasetError(f"data.holdout={holdout} sets aside no image: it is split over "
                           f"{classes} classes, each class's share rounded; give at least "
                           f"{classes} (a multiple of {classes} is exact)")
    if len(kept) != holdout:
        logger.warning("data.holdout=%d sets aside %d images: it is split over %d classes, "
                       "each class's share rounded (a multiple of %d is exact)", holdout,
                       len(kept), classes, classes)
    return rest.subset(kept)


def outside_search(train: ImageSet, *, subset: int, holdout: int, seed: int) -> ImageSet:
    """The training images that neither the search's ``subset`` nor its ``holdout``
    (``holdout_set`` with the same seed) holds."""
    _, rest = _subset(train, subset=subset, seed=seed)
    if not holdout:
        return rest
    _, others = stratified_halves(rest.labels, holdout / len(rest), seed=seed + 2)
    return rest.subset(others)


class DeviceBatches:
    """Batches of an image set kept on the device, augmented there.

    Each epoch's order, crops and flips come from ``(seed, epoch)`` alone, so a resumed
    search sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, images: ImageSet, *, batch_size: int, device: torch.device,
                 mean: Tensor, std: Tensor, crop_padding: int = 0, flip: bool = False,
                 cutout: int = 0) -> None:
        self.images = images.images.to(device)
        self.labels = images.labels.to(device)
        self.batch_size = batch_size
        self.crop_padding = crop_padding
        self.flip = flip
        self.cutout = cutout
        self.mean = mean.to(device).view(1, -1, 1, 1)
        self.std = std.to(device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.labels) // self.batch_size)

    def epoch(self, seed: int, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled, augmented batches (x (B, C, H, W) float, y (B,)) for one epoch."""
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.labels), generator=generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            x = self.images[index.to(self.images.device)]
            yield self._augment(x, generator), self.labels[index.to(self.labels.device)]

    def in_order(self, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Unaugmented batches in a fixed order, for evaluation, of ``batch_size`` images
        (by default the training batch size: on a CPU, large batches outgrow the caches)."""
        batch_size = batch_size or self.batch_size
        for start in range(0, len(self.labels), batch_size):
            end = start + batch_size
            yield self._normalise(self.images[start:end]), self.labels[start:end]

    def _normalise(self, x: Tensor) -> Tensor:
        return (x.float() / 255 - self.mean) / self.std

    def _augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        b, _, h, w = x.shape
        p = self.crop_padding
        if p:
            offsets = torch.randint(0, 2 * p + 1, (2, b), generator=generator).to(x.device)
            rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, channel, rows, cols]
        if self.flip:
            mirror = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(mirror[:, None, None, None], x.flip(3), x)
        x = self._normalise(x)
        if self.cutout:
            x = x * self._cutout_mask(b, h, w, generator).to(x.device)
        return x

    def _cutout_mask(self, b: int, h: int, w: int, generator: torch.Generator) -> Tensor:
        """(B, 1, H, W) zeros over one square of side ``cutout`` per image (clipped at the
        border, centred anywhere), as in DARTS' evaluation."""
        centre = torch.stack([torch.randint(0, h, (b,), generator=generator),
                              torch.randint(0, w, (b,), generator=generator)])
        rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
        half = self.cutout // 2
        in_rows = ((rows >= centre[0, :, None] - half) & (rows < centre[0, :, None] + half))
        in_cols = ((cols >= centre[1, :, None] - half) & (cols < centre[1, :, None] + half))
        return (~(in_rows[:, :, None] & in_cols[:, None, :]))[:, None].float()


def channel_stats(images: ImageSet) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of pixel values in [0, 1]."""
    x = images.images.float().div(255).transpose(0, 1).flatten(1)
    return x.mean(dim=1), x.std(dim=1).clamp_min(1e-3)


@dataclass(frozen=True, slots=True)
class SearchData:
    """A study's search split, on the device, shared by all trials of a process."""

    weight_batches: DeviceBatches
    arch_batches: DeviceBatches
    num_classes: int
    in_channels: int
    holdout_batches: DeviceBatches | None = None  # where the trained objective measures


def prepare_data(config: StudyConfig, device: torch.device) -> SearchData:
    """Load the dataset and split its training set for the search, and the held-out images
    (``data.holdout``) beside it; the test set is dropped."""
    data = config.data
    train, _ = load_dataset(data.dataset, data.root, download=data.download)
    weights_half, arch_half = search_split(train, subset=data.subset, seed=config.seed)
    mean, std = channel_stats(weights_half)
    common = dict(batch_size=config.search.batch_size, device=device, mean=mean, std=std)
    holdout = (holdout_set(train, subset=data.subset, holdout=data.holdout, seed=config.seed)
               if data.holdout else None)
    return SearchData(
        weight_batches=DeviceBatches(weights_half, crop_padding=data.crop_padding,
                                     flip=data.flip, **common),  # type: ignore[arg-type]
        arch_batches=DeviceBatches(arch_half, **common),  # type: ignore[arg-type]
        num_classes=len(train.classes),
        in_channels=train.shape[0],
        holdout_batches=None if holdout is None else DeviceBatches(
            holdout, **common),  # type: ignore[arg-type]
    )
