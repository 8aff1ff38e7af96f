"""A supernet's forward pass as a search runs it (in bfloat16 autocast if asked, through
``torch.compile`` if asked, eagerly if compiling fails) and its measuring on batches: the
mixture's loss and accuracy, and a discrete cell's with its batch norm recalibrated."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from pipeline.search.data import DeviceBatches
from pipeline.search.steps import evaluation_sums
from pipeline.spaces import Supernet

# Batch-norm statistics depend on the batch they are taken over: the recalibration keeps
# batches of 512, so that discrete-cell accuracies stay comparable across studies.
RECALIBRATION_BATCH = 512


class SupernetForward:
    """The supernet's logits and measurements.

    Args:
        bf16: run forward passes in bfloat16 autocast (losses and alphas stay float32).
        compile_backend: run the mixture through ``torch.compile`` with this backend
            (``"inductor"``, or any backend it accepts); None runs eagerly. If compiling
            fails, it warns once and goes on eagerly.
    """

    def __init__(self, net: Supernet, *, bf16: bool = False,
                 compile_backend: str | Callable[..., Any] | None = None) -> None:
        self.net = net
        self.bf16 = bf16
        self.compiled: Callable[..., Tensor] | None = (
            None if compile_backend is None else torch.compile(net, backend=compile_backend))

    def __call__(self, x: Tensor, choice: Sequence[int] | None = None, *,
                 weights: Tensor | None = None) -> Tensor:
        """The logits of the mixture (mixed by ``weights``, by default the alphas' softmax)
        or of the cell ``choice``; computed in bfloat16 autocast if asked, returned in
        float32."""
        if not self.bf16:
            return self._logits(x, choice, weights)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = self._logits(x, choice, weights)
        return logits.float()

    def _logits(self, x: Tensor, choice: Sequence[int] | None, weights: Tensor | None
                ) -> Tensor:
        """The mixture through the compiled supernet when there is one, else eagerly."""
        if choice is None and self.compiled is not None:
            try:
                return self.compiled(x, weights=weights)
            except torch._dynamo.exc.TorchDynamoException as error:  # the compiler failed
                message = " ".join(str(error).split())[:300]
                warnings.warn(f"torch.compile failed, the search goes on eagerly: {message}",
                              RuntimeWarning, stacklevel=3)
                self.compiled = None
        logits: Tensor = self.net(x, choice, weights=weights)
        return logits

    def evaluate(self, batches: DeviceBatches, choice: Sequence[int] | None = None, *,
                 weights: Tensor | None = None, batch_statistics: bool = False) -> Tensor:
        """Mean loss and accuracy (2,) of the mixture (mixed by ``weights``) or of the cell
        ``choice``; with ``batch_statistics``, normalised by each batch's statistics instead
        of the running ones."""
        totals = evaluation_sums(self.net, lambda x: self(x, choice, weights=weights),
                                 batches, batch_statistics=batch_statistics)
        return totals[:2] / totals[2]

    def evaluate_cell(self, choice: Sequence[int], *, calibrate_on: DeviceBatches,
                      measure_on: DeviceBatches) -> float:
        """Accuracy (%) on ``measure_on`` of the cell ``choice`` with the supernet's
        weights, its batch norm recalibrated on ``calibrate_on``."""
        with _recalibrated_batch_norm(self.net, calibrate_on, choice):
            _, accuracy = self.evaluate(measure_on, choice=choice).tolist()
        return 100 * float(accuracy)


@contextlib.contextmanager
def _recalibrated_batch_norm(net: Supernet, batches: DeviceBatches,
                             choice: Sequence[int]) -> Iterator[None]:
    """Re-estimate batch-norm statistics for the discrete cell ``choice`` (the mixture's
    statistics do not fit it), and put the mixture's back afterwards."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(),  # type: ignore[union-attr]
              m.num_batches_tracked.clone()) for m in norms]  # type: ignore[union-attr]
    was_training = net.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the recalibration batches
        net.train()
        with torch.no_grad():
            for x, _ in batches.in_order(RECALIBRATION_BATCH):
                net(x, choice=choice)
        yield
    finally:
        net.train(was_training)
        for m, (momentum, mean, var, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.running_mean.copy_(mean)  # type: ignore[union-attr]
            m.running_var.copy_(var)  # type: ignore[union-attr]
            m.num_batches_tracked.copy_(count)  # type: ignore[union-attr]
