"""Candidate operations of the NAS-Bench-201 space, and its ResNet reduction block."""

from __future__ import annotations

from collections.abc import Callable

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
    "avg_pool_3x3": lambda channels, affine: nn.AvgPool2d(3, stride=1, padding=1,
                                                           count_include_pad=False),
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
