"""Zero-cost scores of an untrained network, written from their papers' formulas; for
each, higher is better.

- ``params``: trainable parameters (an auxiliary head left out).
- ``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al., ICLR
  2021): with every parameter replaced by its absolute value, batch norm bypassed and an
  all-ones input in double precision, R is the sum of the outputs; the score is the sum
  over parameters of ``theta * dR/dtheta``.
- ``naswot`` (Mellor et al., ICML 2021): each image's binary code of which ReLU inputs are
  positive; the kernel counts, for each pair of images, the units on which their codes
  agree; the score is the log of its absolute determinant.
- ``jacob_cov`` (Mellor et al., arXiv 2006.04647v1): each image's gradient of the summed
  logits with respect to the input; the score is ``-sum(log(l + k) + 1 / (l + k))`` over
  the eigenvalues ``l`` of those gradients' correlation matrix, ``k = 1e-5``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from pipeline.spaces import count_parameters

JACOB_K = 1e-5


def params_score(net: nn.Module, images: Tensor) -> float:
    """The network's trainable parameters (``images`` unused: the score needs none)."""
    return float(count_parameters(net))


def synflow(net: nn.Module, images: Tensor) -> float:
    """SynFlow of a copy of ``net`` (``images`` give the input's shape only)."""
    linear = copy.deepcopy(net).double()
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.abs_()
    linear.zero_grad(set_to_none=True)
    with _batch_norm_bypassed(linear):
        output = _logits(linear(torch.ones_like(images[:1], dtype=torch.float64)))
    output.sum().backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        return float(sum((p * p.grad).sum() for p in linear.parameters()
                         if p.grad is not None))


def naswot_kernel(net: nn.Module, images: Tensor) -> Tensor:
    """The NASWOT kernel (images x images): for each pair, the ReLU units on which the
    two images' binary codes agree."""
    codes: list[Tensor] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        codes.append((inputs[0] > 0).flatten(1).double())

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        return torch.zeros(len(images), len(images), dtype=torch.float64)
    code = torch.cat(codes, dim=1)
    return code @ code.T + (1 - code) @ (1 - code).T


def naswot(net: nn.Module, images: Tensor) -> float:
    """NASWOT: the log of the absolute determinant of ``naswot_kernel`` (minus infinity
    where it is singular, as for a network without a ReLU)."""
    _, logdet = torch.linalg.slogdet(naswot_kernel(net, images))
    return float(logdet)


def jacob_cov(net: nn.Module, images: Tensor) -> float:
    """The Jacobian covariance score of ``net`` on ``images``."""
    x = images.clone().requires_grad_(True)
    _logits(net(x)).sum().backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None
    jacobians = x.grad.flatten(1).double()
    correlation = torch.corrcoef(jacobians)
    eigenvalues = torch.linalg.eigvalsh(torch.nan_to_num(correlation))
    return float(-(torch.log(eigenvalues + JACOB_K) + 1 / (eigenvalues + JACOB_K)).sum())


PROXIES: dict[str, Callable[[nn.Module, Tensor], float]] = {
    "params": params_score, "synflow": synflow, "naswot": naswot, "jacob_cov": jacob_cov}


def _logits(output: Tensor | tuple[Tensor, Tensor | None]) -> Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def _batch_norm_bypassed(net: nn.Module) -> Iterator[None]:
    """Let every batch norm of ``net`` pass its input through unchanged."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.forward = _identity  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


def _identity(x: Tensor) -> Tensor:
    return x
