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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.search.architect import Architect, ArchSettings
from pipeline.search.data import DeviceBatches
from pipeline.search.forward import SupernetForward
from pipeline.search.selection import PerturbationSelection
from pipeline.search.selection import tune_epochs as selection_tune_epochs
from pipeline.search.steps import weight_step
from pipeline.spaces import Supernet
from pipeline.variants import Darts, noise


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


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightSettings:
    """How the supernet's weights learn (NAS-Bench-201's DARTS: SGD 0.025 cosine to 0.001,
    Nesterov momentum 0.9, weight decay 5e-4, gradient norm clipped at 5)."""

    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0

    def optimizer(self, weights: Sequence[Tensor], *, lr: float | None = None
                  ) -> torch.optim.SGD:
        """SGD over ``weights`` at ``lr`` (by default the initial one)."""
        return torch.optim.SGD(weights, lr=self.lr if lr is None else lr,
                               momentum=self.momentum,
                               nesterov=self.nesterov and self.momentum > 0,
                               weight_decay=self.weight_decay)


class DartsSearch:
    """DARTS' alternating architecture and weight steps on one ``supernet``, from its
    current weights and alphas: the weights learn from ``weight_batches``, the alphas from
    ``arch_batches``, which also measure validation accuracy; ``seed`` fixes every epoch's
    batches. ``selection`` chooses the cell by perturbation after the search (DARTS-PT),
    ``tune_epochs`` of fine-tuning between its decisions (None: the argmax);
    ``cell_every_epoch`` measures the derived cell after every epoch, not only the last;
    ``bf16`` and ``compile_backend`` say how the supernet runs (``SupernetForward``)."""

    def __init__(self, supernet: Supernet, *, weight_batches: DeviceBatches,
                 arch_batches: DeviceBatches, seed: int, epochs: int,
                 weight_settings: WeightSettings = WeightSettings(),
                 arch_settings: ArchSettings = ArchSettings(), variant: Darts = Darts(),
                 selection: PerturbationSelection | None = None, tune_epochs: int = 0,
                 cell_every_epoch: bool = False, bf16: bool = False,
                 compile_backend: str | Callable[..., Any] | None = None) -> None:
        self.net = supernet
        self.variant = variant
        self.selection = selection
        self.tune_epochs = tune_epochs
        self.total_epochs = epochs + (0 if selection is None
                                      else selection_tune_epochs(selection.space, tune_epochs))
        self.weight_batches = weight_batches
        self.arch_batches = arch_batches
        self.seed = seed
        self.epochs = epochs
        self.weight_settings = weight_settings
        self.cell_every_epoch = cell_every_epoch
        self.forward = SupernetForward(supernet, bf16=bf16, compile_backend=compile_backend)
        self.weights = list(supernet.weight_parameters())
        self.alphas: list[Tensor] = list(supernet.arch_parameters())
        self.w_optimizer = weight_settings.optimizer(self.weights)
        self.architect = Architect(self.alphas, arch_settings)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optimizer, T_max=epochs, eta_min=weight_settings.lr_min)
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self.t = 0.0  # how far the search is: 0 at its first step, 1 at its last

    def run(self) -> list[EpochRecord]:
        """Search from the current epoch to the last (``DivergedError``: a loss became NaN
        or infinite)."""
        while self.epoch < self.total_epochs:
            self.run_epoch()
        return self.history

    def run_epoch(self) -> EpochRecord:
        """Run one epoch of alternating steps, then measure it."""
        started = time.perf_counter()
        if self.epoch == self.epochs and self.selection is not None:  # fine-tuning begins
            self.w_optimizer.state.clear()  # a fresh SGD at a tenth of the learning rate
            self.w_optimizer.param_groups[0]["lr"] = self.weight_settings.lr / 10
        weight_lr = self.w_optimizer.param_groups[0]["lr"]
        self.net.train()
        totals = torch.zeros(2, device=self.alphas[0].device)  # loss sum, correct
        return self.finish_epoch(run_steps(self, [self], totals), weight_lr, started)

    @contextlib.contextmanager
    def variant_step(self, index: int) -> Iterator[None]:
        """The variant's state for the epoch's step ``index``: the search's progress, the
        auxiliary skip's weight, and (for a random variant) random numbers drawn from the
        search's seed and the step alone."""
        self.t = self.progress(index)
        aux = self.net.aux_weight()
        if aux is not None:
            aux.fill_(self.variant.aux_skip(self.t))
        if not self.variant.random:
            yield
            return
        step = self.epoch * len(self.weight_batches) + index
        with noise((2 * self.seed + 2) * 1_000_003 + step, self.alphas[0].device):
            yield

    def progress(self, index: int) -> float:
        """How far the search is at the current epoch's step ``index``: 0 at its first
        step, 1 at its last."""
        steps = len(self.weight_batches)
        return (self.epoch * steps + index) / max(self.epochs * steps - 1, 1)

    def finish_epoch(self, totals: Tensor, weight_lr: float, started: float) -> EpochRecord:
        """Close an epoch whose steps are done (``totals``: their loss sum and correct
        count, ``weight_lr``: their learning rate, ``started``: ``time.perf_counter()`` at
        its start): advance the schedule, decide, measure, record."""
        if self.epoch < self.epochs:  # fine-tuning keeps its learning rate
            self.scheduler.step()
        self.epoch += 1
        self.select()
        record = _measure(self, totals, weight_lr, started)
        self.history.append(record)
        return record

    def select(self) -> None:
        """Make the selection's decisions that are due, each candidate measured by batch
        statistics on the validation batches (all of them at once without fine-tuning)."""
        if self.selection is None or self.epoch < self.epochs:
            return
        mean = self.variant.mean_weights(self.net.alphas)
        weights = F.softmax(self.net.alphas.detach(), dim=-1) if mean is None else mean
        self.selection.decide_due(self.epoch - self.epochs, self.tune_epochs, weights,
                                  lambda mixed: float(self.forward.evaluate(
                                      self.arch_batches, weights=mixed,
                                      batch_statistics=True)[1]))

    def _projected(self, weights: Tensor | None) -> Tensor | None:
        return weights if self.selection is None else self.selection.applied(
            weights, self.net.alphas)

    def weight_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of the weights, mixed as the variant mixes a weight step; returns
        (loss sum, correct) on the device."""
        stepped = _Mixed(self, lambda alphas: self.variant.weight_step_weights(alphas, self.t))
        return weight_step(stepped, self.w_optimizer, x, y,
                           grad_clip=self.weight_settings.grad_clip)

    def arch_step(self, x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor) -> None:
        """One Adam step of the alphas on the validation half, mixed as the variant mixes
        an architecture step (with its penalty on the architecture loss)."""
        self.architect.step(_Mixed(self, self.variant.edge_weights), x_a, y_a,
                            unroll=(x_w, y_w, self.w_optimizer),
                            penalty=lambda alphas: self.variant.arch_penalty(alphas[0], self.t))

    def losses(self, x: Tensor, y: Tensor, mixing: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """The mean cross-entropy () and logits (B, classes) of the supernet on a batch,
        mixed by ``mixing`` (edges, ops) (None: the alphas' softmax), with the selection's
        decisions applied."""
        logits = self.forward(x, weights=self._projected(mixing))
        return F.cross_entropy(logits, y), logits

    STATE_KEYS = ("model", "w_optimizer", "a_optimizer", "scheduler", "epoch", "history",
                  "torch_rng")

    def _stateful(self) -> dict[str, Any]:
        """The parts of the search that keep a state of their own, by checkpoint key."""
        parts = {"model": self.net, "w_optimizer": self.w_optimizer,
                 "a_optimizer": self.architect, "scheduler": self.scheduler}
        return parts if self.selection is None else {**parts, "selection": self.selection}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this search exactly where it stands."""
        return {**{key: part.state_dict() for key, part in self._stateful().items()},
                "epoch": self.epoch, "torch_rng": torch.get_rng_state(),
                "history": [record.to_dict() for record in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in self._stateful().items():
            part.load_state_dict(state[key])
        self.epoch = int(state["epoch"])
        self.history = [EpochRecord(**record) for record in state["history"]]
        torch.set_rng_state(state["torch_rng"])


def _measure(search: DartsSearch, totals: Tensor, weight_lr: float, started: float
             ) -> EpochRecord:
    """The record of an epoch whose steps are done: the mixture's validation loss and
    accuracy, the derived cell (and its accuracy where due), the mixing weights.

    Raises:
        DivergedError: a loss became NaN or infinite.
    """
    mean = search._projected(search.variant.mean_weights(search.net.alphas))
    if mean is not None:
        mean = mean.detach()
    genotype = search.net.genotype(mean)
    choice = search.net.choice(genotype)
    decided = search.selection is not None and search.selection.done > 0
    valid_loss, valid_acc = search.forward.evaluate(  # as the selection measures, once it decides
        search.arch_batches, weights=mean, batch_statistics=decided).tolist()
    train_loss, train_correct = totals.tolist()
    count = len(search.weight_batches.labels)  # every image once per epoch
    if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
        raise DivergedError(
            f"loss became non-finite in epoch {search.epoch} "
            f"(train {train_loss / count:.4g}, valid {valid_loss:.4g})")
    discrete_acc = None
    if search.cell_every_epoch or search.epoch == search.total_epochs:
        discrete_acc = search.forward.evaluate_cell(choice, calibrate_on=search.weight_batches,
                                                  measure_on=search.arch_batches)
    return EpochRecord(
        epoch=search.epoch, train_loss=train_loss / count,
        train_acc=100 * train_correct / count, valid_loss=valid_loss,
        valid_acc=100 * valid_acc, discrete_acc=discrete_acc,
        genotype=genotype.to_str(),
        alpha_softmax=(search.net.alpha_softmax() if mean is None else mean).tolist(),
        weight_lr=weight_lr, seconds=time.perf_counter() - started)


class Stepper(Protocol):
    """What takes an epoch's steps: one search, or a stacked population of them (whose
    tensors carry a leading member dimension)."""

    def variant_step(self, index: int) -> contextlib.AbstractContextManager[None]: ...

    def arch_step(self, x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor) -> None: ...

    def weight_step(self, x: Tensor, y: Tensor) -> Tensor: ...


def run_steps(stepper: Stepper, members: Sequence[DartsSearch], totals: Tensor) -> Tensor:
    """The one loop of an epoch's steps, for a search alone (``stepper`` is ``members[0]``)
    or a population (``stepper`` stacks ``members``): at each step, with the variant's
    state for it, an architecture step while the alphas' half lasts, then a weight step.
    Adds each weight step's (loss sum, correct) to ``totals`` and returns it."""
    for index, batches in enumerate(zip(*map(_epoch_batches, members), strict=True)):
        x_w, y_w, x_a, y_a = batches[0] if len(batches) == 1 else _stacked(batches)
        with stepper.variant_step(index):
            if x_a is not None and y_a is not None:
                stepper.arch_step(x_w, y_w, x_a, y_a)
            totals += stepper.weight_step(x_w, y_w)
    return totals


def _epoch_batches(search: DartsSearch
                   ) -> Iterator[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
    """A search's steps this epoch: a training batch for the weights and, while the other
    half lasts, a validation batch for the alphas (x_w, y_w, x_a, y_a)."""
    arch_epoch = search.arch_batches.epoch(2 * search.seed + 1, search.epoch)
    for x_w, y_w in search.weight_batches.epoch(2 * search.seed, search.epoch):
        x_a, y_a = next(arch_epoch, (None, None))
        yield x_w, y_w, x_a, y_a


def _stacked(batches: Sequence[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]
             ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The members' batches of one step stacked (K, ...); no alphas' batch unless every
    member has one."""
    x_w, y_w, x_a, y_a = zip(*batches, strict=True)
    if any(x is None for x in x_a):
        return torch.stack(x_w), torch.stack(y_w), None, None
    return torch.stack(x_w), torch.stack(y_w), torch.stack(x_a), torch.stack(y_a)


class _Mixed:
    """A search as one kind of step sees it (``steps.Model``): its two parameter groups,
    and its loss under that step's mixing weights, ``mixing(alphas)`` (None: the alphas'
    softmax), computed from the alphas at each call."""

    def __init__(self, search: DartsSearch, mixing: Callable[[Tensor], Tensor | None]) -> None:
        self.search = search
        self.mixing = mixing

    @property
    def weights(self) -> Sequence[Tensor]:
        return self.search.weights

    @property
    def alphas(self) -> Sequence[Tensor]:
        return self.search.alphas

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.search.losses(x, y, self.mixing(self.search.net.alphas))
