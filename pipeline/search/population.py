"""Population batching: several first-order DARTS searches of one supernet shape run as
one batched computation.

Each member keeps its own start, alphas, optimiser state, data order and augmentation;
only the arithmetic is shared. For every epoch the members' weights, batch-norm buffers
and optimiser states are stacked along a new leading dimension, the supernet runs once
over the stack (``torch.func.vmap`` over ``functional_call``: a convolution of K members
becomes one grouped convolution), and the results are written back into each member's
``DartsSearch``, which then measures and records its epoch exactly as a lone search does.
So checkpoints, resumes and records are a lone search's, and a member that is pruned or
fails is dropped and stops costing compute. A population of one runs its member's own
steps, unstacked.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from pipeline.search.architect import Architect
from pipeline.search.darts import DartsSearch, DivergedError, EpochRecord, run_steps
from pipeline.search.steps import weight_step
from pipeline.variants import Darts


class PopulationError(ValueError):
    """Searches that cannot run as one population."""


def check_population(size: int, *, order: int, compiled: bool, selection: bool,
                     variant: Darts) -> None:
    """The rules of a batched population of ``size`` searches of one kind (one search
    alone runs anything).

    Raises:
        PopulationError: ``size`` below 1; above 1, a second-order, compiled or
            perturbation-selecting search, or a variant that cannot be stacked.
    """
    if size < 1:
        raise PopulationError(f"a population of {size}: it needs at least one search")
    if size == 1:
        return
    if order != 1:
        raise PopulationError("a population runs first-order DARTS only (search.order = 1)")
    if compiled:
        raise PopulationError("populations run eagerly: set search.compile = false")
    if selection:
        raise PopulationError("perturbation selection runs one search at a time: leave out "
                              "--population")
    if not variant.stackable:
        raise PopulationError(f"the {variant.name} variant runs no batched population (its "
                              "random mixing weights are drawn per search): leave out "
                              "--population")


def _settings(search: DartsSearch) -> tuple[object, ...]:
    """What must be equal for searches to share one stacked computation."""
    shapes = tuple((name, tuple(p.shape)) for name, p in search.net.named_parameters())
    return (search.epoch, search.total_epochs, search.forward.bf16, search.weight_settings,
            search.architect.settings, search.variant, id(search.weight_batches),
            id(search.arch_batches), shapes)


class Population:
    """First-order DARTS searches run side by side as one batched computation.

    Args:
        members: searches of supernets of one shape, at the same epoch, with the same
            hyperparameters and the same data (their seeds, starts and alphas differ).

    Raises:
        PopulationError: the members differ in anything but seed, start and state, or
            several members are second order.
    """

    def __init__(self, members: Sequence[DartsSearch]) -> None:
        check_population(len(members),
                         order=max((m.architect.settings.order for m in members), default=1),
                         compiled=any(m.forward.compiled is not None for m in members),
                         selection=any(m.selection is not None for m in members),
                         variant=members[0].variant if members else Darts())
        first = _settings(members[0])
        if any(_settings(m) != first for m in members[1:]):
            raise PopulationError("the searches of a population must share their supernet, "
                                  "data, epoch and hyperparameters")
        self.members = list(members)

    def drop(self, member: DartsSearch) -> None:
        """Stop running ``member`` (pruned or failed): later epochs no longer compute it."""
        self.members.remove(member)

    @property
    def finished(self) -> bool:
        return not self.members or self.members[0].epoch >= self.members[0].total_epochs

    def run_epoch(self) -> list[EpochRecord | DivergedError]:
        """One epoch of every member; each member's record, or the error that ended it
        (a non-finite loss in one member leaves the others untouched)."""
        if len(self.members) == 1:
            return [_ended(self.members[0].run_epoch)]
        started = time.perf_counter()
        stack = StackedSearch(self.members)
        totals = run_steps(stack, self.members,
                           torch.zeros(len(self.members), 2, device=stack.device))
        stack.write_back()
        with warnings.catch_warnings():
            # the stack's optimiser stepped, not the member's, which the member's scheduler
            # notices; its schedule is still the right one
            warnings.filterwarnings("ignore", message=r".*optimizer\.step\(\)",
                                    category=UserWarning)
            return [_ended(functools.partial(member.finish_epoch, member_totals,
                                             stack.weight_lr, started))
                    for member, member_totals in zip(self.members, totals, strict=True)]


def _ended(epoch: Callable[[], EpochRecord]) -> EpochRecord | DivergedError:
    """An epoch's record, or the divergence that ended it."""
    try:
        return epoch()
    except DivergedError as error:
        return error


class StackedSearch:
    """A stacked copy of a population's searches (weights, alphas, buffers, optimiser
    states) that steps them all at once; ``write_back`` returns the results to them."""

    def __init__(self, members: Sequence[DartsSearch]) -> None:
        self.members = members
        first = members[0]
        self.device = first.alphas[0].device
        self.bf16 = first.forward.bf16
        self.variant = first.variant
        self.t = 0.0
        self.grad_clip = first.weight_settings.grad_clip
        self.base = copy.deepcopy(first.net).to("meta")
        alpha_ids = {id(a) for a in first.alphas}
        self.member_params = [dict(m.net.named_parameters()) for m in members]
        names = list(self.member_params[0])
        self.alpha_names = [n for n in names if id(self.member_params[0][n]) in alpha_ids]
        self.weight_names = [n for n in names if n not in self.alpha_names]
        self.params = {name: torch.stack([p[name].detach() for p in self.member_params])
                       .requires_grad_() for name in names}
        self.buffers = {name: torch.stack([dict(m.net.named_buffers())[name] for m in members])
                        for name, _ in first.net.named_buffers()}
        self.alphas = [self.params[n] for n in self.alpha_names]
        self.weights = [self.params[n] for n in self.weight_names]
        self.weight_lr = float(first.w_optimizer.param_groups[0]["lr"])
        self.w_optimizer = first.weight_settings.optimizer(self.weights, lr=self.weight_lr)
        self.architect = Architect(self.alphas, first.architect.settings)
        self._stack_state(self.w_optimizer, self.weight_names, "w_optimizer")
        self._stack_state(self.architect.optimizer, self.alpha_names, "a_optimizer")

    @staticmethod
    def _member_optimizer(member: DartsSearch, which: str) -> torch.optim.Optimizer:
        return member.w_optimizer if which == "w_optimizer" else member.architect.optimizer

    def _stack_state(self, optimizer: torch.optim.Optimizer, names: list[str],
                     which: str) -> None:
        """Stack the members' optimiser state (momentum, Adam moments) of each parameter."""
        for name in names:
            states = [self._member_optimizer(member, which).state.get(params[name], {})
                      for member, params in zip(self.members, self.member_params, strict=True)]
            if not states[0]:
                continue
            stacked = {}
            for key, value in states[0].items():
                if key == "step":  # Adam's step count: one per population, all equal
                    stacked[key] = value.clone()
                else:
                    stacked[key] = torch.stack([state[key] for state in states])
            optimizer.state[self.params[name]] = stacked

    def write_back(self) -> None:
        """Copy the stack into every member's network and optimisers."""
        with torch.no_grad():
            for k, (member, member_params) in enumerate(zip(self.members, self.member_params,
                                                            strict=True)):
                for name, stacked in self.params.items():
                    member_params[name].copy_(stacked[k])
                for name, buffer in member.net.named_buffers():
                    buffer.copy_(self.buffers[name][k])
                for which, optimizer in (("w_optimizer", self.w_optimizer),
                                         ("a_optimizer", self.architect.optimizer)):
                    member_optimizer = self._member_optimizer(member, which)
                    for name, stacked in self.params.items():
                        state = optimizer.state.get(stacked)
                        if state:
                            member_optimizer.state[member_params[name]] = {
                                key: value.clone() if key == "step" else value[k].clone()
                                for key, value in state.items()}

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's mean loss (K,) and logits (K, B, classes) on its own batch."""
        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor,
                y: Tensor) -> tuple[Tensor, Tensor]:
            logits = functional_call(self.base, (params, buffers), (x,)).float()
            return F.cross_entropy(logits, y), logits

        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16
                    else contextlib.nullcontext())
        with autocast:
            losses, logits = vmap(one)(self.params, self.buffers, x, y)
        return losses, logits

    @contextlib.contextmanager
    def variant_step(self, index: int) -> Iterator[None]:
        """The variant's state for the epoch's step ``index``: the search's progress (the
        members' is one; a stacked variant draws no random numbers)."""
        self.t = self.members[0].progress(index)
        yield

    def arch_step(self, x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor) -> None:
        """One Adam step of every member's alphas on its validation batch (x_a, y_a), with
        the variant's penalty on each member's architecture loss (first order: the
        training batch is not used)."""
        self._set_aux_skip()
        self.architect.step(self, x_a, y_a, penalty=lambda alphas: self.variant.arch_penalty(
            alphas[0], self.t))

    def weight_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of every member's weights, each clipped by its own gradient norm;
        returns (loss sum, correct) per member, (K, 2), on the device."""
        self._set_aux_skip()
        return weight_step(self, self.w_optimizer, x, y, grad_clip=self.grad_clip)

    def _set_aux_skip(self) -> None:
        aux = self.buffers.get("aux_skip_weight")
        if aux is not None:
            aux.fill_(self.variant.aux_skip(self.t))
