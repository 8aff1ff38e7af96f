"""The parts every search step is made of, written once for one search and for a stacked
population (whose tensors carry a leading member dimension): the weight step with its
gradient clipping, freezing a parameter group, and the evaluation loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.search.data import DeviceBatches


class Model(Protocol):
    """What the steps need of a search: its two parameter groups and its loss.

    ``losses(x, y)`` returns the mean cross-entropy per member, () for one search or (K,)
    for K stacked ones, and the logits (..., B, classes).
    """

    @property
    def weights(self) -> Sequence[Tensor]: ...

    @property
    def alphas(self) -> Sequence[Tensor]: ...

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]: ...


@contextlib.contextmanager
def frozen(params: Sequence[Tensor]) -> Iterator[None]:
    """Turn off gradients of some parameters for a block (skips their backward work)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def clip_gradients(params: Sequence[Tensor], max_norm: float, *, members: int = 0) -> None:
    """Scale the gradients so that their joint norm is at most ``max_norm`` (torch's
    ``clip_grad_norm_``), member by member over the first ``members`` dimensions (0: the
    parameters are one search's)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g.flatten(members), dim=members) for g in grads]), dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.reshape(scale.shape + (1,) * (g.dim() - members)))


def weight_step(model: Model, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, *,
                grad_clip: float) -> Tensor:
    """One step of the weights on the training batch (the alphas stay put); returns the
    loss sum and correct count per member, (..., 2), on the device."""
    optimizer.zero_grad(set_to_none=True)
    with frozen(model.alphas):
        losses, logits = model.losses(x, y)
        losses.sum().backward()  # type: ignore[no-untyped-call]
    clip_gradients(model.weights, grad_clip, members=losses.dim())
    optimizer.step()
    correct = (logits.detach().argmax(dim=-1) == y).sum(dim=-1)
    return torch.stack([losses.detach() * y.shape[-1], correct.float()], dim=-1)


@torch.no_grad()
def evaluation_sums(net: torch.nn.Module, logits_of: Callable[[Tensor], Tensor],
                    batches: DeviceBatches, *, batch_statistics: bool = False) -> Tensor:
    """Loss sum, correct count and image count (3,) of ``logits_of`` over unaugmented
    batches, with ``net`` in eval mode (its mode is restored afterwards); with
    ``batch_statistics``, its batch norms normalise by each batch's own statistics and
    leave their running statistics as they are."""
    was_training = net.training
    net.eval()
    totals = torch.zeros(3, device=batches.labels.device)
    with _normalised_by_batch(net) if batch_statistics else contextlib.nullcontext():
        for x, y in batches.in_order():
            logits = logits_of(x)
            totals[0] += F.cross_entropy(logits, y, reduction="sum")
            totals[1] += (logits.argmax(dim=1) == y).sum()
            totals[2] += len(y)
    net.train(was_training)
    return totals


@contextlib.contextmanager
def _normalised_by_batch(net: torch.nn.Module) -> Iterator[None]:
    """Batch norms in training mode without tracking: each batch is normalised by its own
    statistics, and the running statistics are neither read nor updated."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    try:
        for m in norms:
            m.train()
            m.track_running_stats = False
        yield
    finally:
        for m, (training, tracked) in zip(norms, saved, strict=True):
            m.train(training)
            m.track_running_stats = tracked
