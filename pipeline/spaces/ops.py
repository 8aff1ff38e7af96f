"""Candidate operations of both cell spaces (NAS-Bench-201's and DARTS'), and NAS-Bench-201's
ResNet reduction block."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ReLUConvBN(nn.Sequential):
    """ReLU, then a bias-free convolution, then batch norm (NB201's ``nor_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, *, stride: int = 1,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                      bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def avg_pool_3x3(x: Tensor, stride: int = 1) -> Tensor:
    """3x3 average over the pixels inside the image (``count_include_pad=False``).

    Computed as a depthwise box filter divided by the pixel count, which on the CPU is
    several times faster than ``avg_pool2d`` forward and backward.
    """
    channels, (h, w) = x.shape[1], x.shape[-2:]
    box = x.new_ones(channels, 1, 3, 3)
    sums = F.conv2d(x, box, stride=stride, padding=1, groups=channels)
    counts = F.conv2d(x.new_ones(1, 1, h, w), box[:1], stride=stride, padding=1)
    return sums / counts


class AvgPool3x3(nn.Module):
    """A 3x3 average pool with padding 1 that does not count padded pixels."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool_3x3(x, self.stride)


class GlobalAvgPool(nn.Module):
    """The mean of each channel over the image: (B, C, H, W) to (B, C), in any memory
    format (``adaptive_avg_pool2d`` has no batching rule for channels-last tensors)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class Zero(nn.Module):
    """The ``none`` op: an edge that carries nothing."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


OpFactory = Callable[[int, bool], nn.Module]

# name -> factory(channels, affine); cells keep the resolution (stride 1).
OPS: dict[str, OpFactory] = {
    "none": lambda channels, affine: Zero(),
    "skip_connect": lambda channels, affine: nn.Identity(),
    "nor_conv_1x1": lambda channels, affine: ReLUConvBN(channels, channels, 1, affine=affine),
    "nor_conv_3x3": lambda channels, affine: ReLUConvBN(channels, channels, 3, affine=affine),
    "avg_pool_3x3": lambda channels, affine: AvgPool3x3(),
}


def make_op(name: str, channels: int, *, affine: bool) -> nn.Module:
    """Build the op called ``name``.

    Raises:
        KeyError: ``name`` is not an op; the message lists the valid ones.
    """
    if name not in OPS:
        raise KeyError(f"unknown op {name!r} (valid: {', '.join(OPS)})")
    return OPS[name](channels, affine)


class ResNetBlock(nn.Module):
    """NB201's reduction: a stride-2 basic residual block that changes the width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv_b(self.conv_a(x)) + self.shortcut(x)
        return out


# -- the DARTS CNN space: ops that may reduce (stride 2) on the cell's first two inputs ---


class DilConv(nn.Sequential):
    """ReLU, a dilated depthwise convolution, a pointwise convolution, batch norm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, *, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked dilation-1 ``DilConv``s, the first carrying the stride (DARTS' SepConv)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 *, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine=affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 pointwise convolutions."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        out: Tensor = self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))
        return out


class StridedZero(nn.Module):
    """DARTS' ``none``: zeros at the output resolution."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


DartsOpFactory = Callable[[int, int, bool], nn.Module]

# name -> factory(channels, stride, affine)
DARTS_OPS: dict[str, DartsOpFactory] = {
    "none": lambda c, stride, affine: StridedZero(stride),
    "avg_pool_3x3": lambda c, stride, affine: AvgPool3x3(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda c, stride, affine: (
        nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine=affine),
}
