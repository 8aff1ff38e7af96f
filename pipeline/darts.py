"""The inner search: bilevel DARTS on a supernet, first or second order.

Weights train on one half of the training data, alphas on the other. The search
knows nothing of Optuna or files: it takes a supernet, batches and a per-epoch
callback, and can hand out and take back its whole state for checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.data import DeviceBatches
from pipeline.supernet import Supernet
from pipeline.supernet_darts import DartsSupernet


class DivergedError(RuntimeError):
    """The search produced a non-finite loss."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochRecord:
    """What one finished epoch measured; one line of a trial's ``metrics.jsonl``.

    Accuracies are in percent; ``discrete_acc`` is the accuracy of the cell the alphas
    select (``genotype``), with the supernet's weights and recalibrated batch norm,
    measured at the last epoch, or every epoch if the search was asked to.
    """

    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    discrete_acc: float | None
    genotype: str
    alpha_softmax: list[list[float]]
    weight_lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DartsSearch:
    """DARTS' alternating architecture and weight steps on one supernet.

    Args:
        supernet: the network to search; its current weights and alphas are the start.
        weight_batches: the half of the training data the weights learn from.
        arch_batches: the other half, which the alphas learn from and which measures
            validation accuracy.
        seed: fixes the order and augmentation of every epoch's batches.
        order: 1 for first-order DARTS, 2 for the unrolled second-order gradient.
        hessian_radius: second order only: the norm of the weight perturbation of the
            finite-difference Hessian-vector product (0.01 in DARTS).
        cell_every_epoch: measure the derived cell's accuracy after every epoch, not
            only after the last.
        bf16: run forward passes in bfloat16 autocast (losses and alphas stay float32).
        compile_backend: run the supernet's forward passes through ``torch.compile`` with
            this backend (``"inductor"``, or any backend it accepts); None runs eagerly.
            If compiling fails, the search warns once and goes on eagerly.
    """

    def __init__(self, supernet: Supernet | DartsSupernet, *, weight_batches: DeviceBatches,
                 arch_batches: DeviceBatches, seed: int, epochs: int, order: int = 1,
                 weight_lr: float = 0.025, weight_lr_min: float = 0.001,
                 momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
                 grad_clip: float = 5.0, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-3, hessian_radius: float = 0.01,
                 cell_every_epoch: bool = False, bf16: bool = False,
                 compile_backend: str | Callable[..., Any] | None = None) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        self.net = supernet
        self.weight_batches = weight_batches
        self.arch_batches = arch_batches
        self.seed = seed
        self.epochs = epochs
        self.order = order
        self.grad_clip = grad_clip
        self.hessian_radius = hessian_radius
        self.cell_every_epoch = cell_every_epoch
        self.bf16 = bf16
        self.compiled: Callable[[Tensor], Tensor] | None = (
            None if compile_backend is None else torch.compile(supernet, backend=compile_backend))
        self.weights = list(supernet.weight_parameters())
        self.alphas = supernet.arch_parameters()
        self.w_optimizer = torch.optim.SGD(self.weights, lr=weight_lr, momentum=momentum,
                                           nesterov=nesterov and momentum > 0,
                                           weight_decay=weight_decay)
        self.a_optimizer = torch.optim.Adam(self.alphas, lr=arch_lr, betas=arch_betas,
                                            weight_decay=arch_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optimizer, T_max=epochs, eta_min=weight_lr_min)
        self.epoch = 0
        self.history: list[EpochRecord] = []

    # -- the loop ---------------------------------------------------------------------

    def run(self, on_epoch: Callable[[EpochRecord], None] | None = None) -> list[EpochRecord]:
        """Search from the current epoch to the last; call ``on_epoch`` after each.

        Raises:
            DivergedError: a loss became NaN or infinite.
        """
        while self.epoch < self.epochs:
            record = self.run_epoch()
            if on_epoch is not None:
                on_epoch(record)
        return self.history

    def run_epoch(self) -> EpochRecord:
        """Run one epoch of alternating steps, then measure it."""
        started = time.perf_counter()
        weight_lr = self.w_optimizer.param_groups[0]["lr"]
        self.net.train()
        totals = torch.zeros(2, device=self.alphas[0].device)  # loss sum, correct
        arch_epoch = self.arch_batches.epoch(2 * self.seed + 1, self.epoch)
        for x_w, y_w in self.weight_batches.epoch(2 * self.seed, self.epoch):
            x_a, y_a = next(arch_epoch, (None, None))
            if x_a is not None and y_a is not None:
                self.arch_step(x_w, y_w, x_a, y_a)
            totals += self.weight_step(x_w, y_w)
        return self.finish_epoch(totals, weight_lr, started)

    def finish_epoch(self, totals: Tensor, weight_lr: float, started: float) -> EpochRecord:
        """Close an epoch whose steps are done: advance the schedule, measure, record.

        Args:
            totals: (loss sum, correct) over the epoch's weight steps, on the device.
            weight_lr: the learning rate the epoch's weight steps used.
            started: ``time.perf_counter()`` when the epoch began.
        """
        self.scheduler.step()
        self.epoch += 1
        record = self._measure(totals, weight_lr, started)
        self.history.append(record)
        return record

    def _measure(self, totals: Tensor, weight_lr: float, started: float) -> EpochRecord:
        genotype = self.net.genotype()
        choice = self.net.choice(genotype)  # type: ignore[arg-type]
        valid_loss, valid_acc = self.evaluate(self.arch_batches).tolist()
        train_loss, train_correct = totals.tolist()
        count = len(self.weight_batches.labels)  # every image once per epoch
        if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
            raise DivergedError(
                f"loss became non-finite in epoch {self.epoch} "
                f"(train {train_loss / count:.4g}, valid {valid_loss:.4g})")
        discrete_acc = None
        if self.cell_every_epoch or self.epoch == self.epochs:
            discrete_acc = self.evaluate_cell(choice)
        return EpochRecord(
            epoch=self.epoch, train_loss=train_loss / count,
            train_acc=100 * train_correct / count, valid_loss=valid_loss,
            valid_acc=100 * valid_acc, discrete_acc=discrete_acc,
            genotype=genotype.to_str(), alpha_softmax=self.net.alpha_softmax().tolist(),
            weight_lr=weight_lr, seconds=time.perf_counter() - started)

    # -- the steps --------------------------------------------------------------------

    def weight_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of the weights; returns (loss sum, correct) on the device."""
        self.w_optimizer.zero_grad(set_to_none=True)
        with _frozen(self.alphas):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_optimizer.step()
        correct = (logits.detach().argmax(dim=1) == y).sum()
        return torch.stack([loss.detach() * len(y), correct.float()])

    def arch_step(self, x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor) -> None:
        """One Adam step of the alphas on the validation half."""
        grads: Sequence[Tensor]
        if self.order == 1:
            grads = torch.autograd.grad(self._loss(x_a, y_a), self.alphas)
        else:
            grads = self._unrolled_grads(x_w, y_w, x_a, y_a)
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        self.a_optimizer.step()

    def forward(self, x: Tensor, choice: Sequence[int] | None = None) -> Tensor:
        """The supernet's logits; computed in bfloat16 autocast if the search was asked to,
        returned in float32."""
        if not self.bf16:
            return self._logits(x, choice)
        with torch.autocast(self.alphas[0].device.type, dtype=torch.bfloat16):
            logits = self._logits(x, choice)
        return logits.float()

    def _logits(self, x: Tensor, choice: Sequence[int] | None) -> Tensor:
        """The mixture through the compiled supernet when there is one, else eagerly."""
        if choice is None and self.compiled is not None:
            try:
                return self.compiled(x)
            except torch._dynamo.exc.TorchDynamoException as error:  # the compiler failed
                message = " ".join(str(error).split())[:300]
                warnings.warn(f"torch.compile failed, the search goes on eagerly: {message}",
                              RuntimeWarning, stacklevel=2)
                self.compiled = None
        logits: Tensor = self.net(x, choice)
        return logits

    def _loss(self, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.forward(x), y)

    def _unrolled_grads(self, x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor
                        ) -> Sequence[Tensor]:
        """Second-order DARTS: the alpha gradient of the validation loss after one virtual
        weight step, with the Hessian-vector product taken by finite differences."""
        lr = self.w_optimizer.param_groups[0]["lr"]
        start = [w.detach().clone() for w in self.weights]
        self._virtual_step(x_w, y_w, lr)
        grads = torch.autograd.grad(self._loss(x_a, y_a), [*self.alphas, *self.weights])
        alpha_grads, weight_grads = grads[:len(self.alphas)], grads[len(self.alphas):]
        eps = self.hessian_radius / torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in weight_grads]))
        hessian_terms = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, g in zip(self.weights, start, weight_grads, strict=True):
                    w.copy_(w0 + sign * eps * g)
            with _frozen(self.weights):
                hessian_terms.append(torch.autograd.grad(self._loss(x_w, y_w), self.alphas))
        with torch.no_grad():
            for w, w0 in zip(self.weights, start, strict=True):
                w.copy_(w0)
        return [a - lr * (plus - minus) / (2 * eps)
                for a, plus, minus in zip(alpha_grads, *hessian_terms, strict=True)]

    def _virtual_step(self, x: Tensor, y: Tensor, lr: float) -> None:
        """Move the weights in place by one SGD step (momentum and decay included)."""
        with _frozen(self.alphas):
            grads = torch.autograd.grad(self._loss(x, y), self.weights)
        group = self.w_optimizer.param_groups[0]
        with torch.no_grad():
            for w, g in zip(self.weights, grads, strict=True):
                step = g + group["weight_decay"] * w
                buffer = self.w_optimizer.state.get(w, {}).get("momentum_buffer")
                if buffer is not None:
                    step = step + group["momentum"] * buffer
                w.sub_(lr * step)

    # -- measuring --------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, batches: DeviceBatches, choice: Sequence[int] | None = None) -> Tensor:
        """Mean loss and accuracy (2,) of the supernet, or of the cell ``choice``."""
        was_training = self.net.training
        self.net.eval()
        totals = torch.zeros(3, device=self.alphas[0].device)
        for x, y in batches.in_order():
            logits = self.forward(x, choice)
            totals[0] += F.cross_entropy(logits, y, reduction="sum")
            totals[1] += (logits.argmax(dim=1) == y).sum()
            totals[2] += len(y)
        self.net.train(was_training)
        return totals[:2] / totals[2]

    def evaluate_cell(self, choice: Sequence[int]) -> float:
        """Validation accuracy (%) of the cell ``choice`` with the supernet's weights."""
        with _recalibrated_batch_norm(self.net, self.weight_batches, choice):
            _, accuracy = self.evaluate(self.arch_batches, choice=choice).tolist()
        return 100 * float(accuracy)

    # -- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this search exactly where it stands."""
        return {
            "model": self.net.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.a_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "history": [record.to_dict() for record in self.history],
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.history = [EpochRecord(**record) for record in state["history"]]
        torch.set_rng_state(state["torch_rng"])


@contextlib.contextmanager
def _recalibrated_batch_norm(net: Supernet | DartsSupernet, batches: DeviceBatches,
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
            for x, _ in batches.in_order():
                net(x, choice)
        yield
    finally:
        net.train(was_training)
        for m, (momentum, mean, var, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.running_mean.copy_(mean)  # type: ignore[union-attr]
            m.running_var.copy_(var)  # type: ignore[union-attr]
            m.num_batches_tracked.copy_(count)  # type: ignore[union-attr]


class _frozen:
    """Turn off gradients of some parameters for a block (skips their backward work)."""

    def __init__(self, params: Sequence[torch.nn.Parameter]) -> None:
        self.params = params

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)
