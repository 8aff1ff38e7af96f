"""Population batching: several first-order DARTS searches of one supernet shape run as
one batched computation.

Each member keeps its own start, alphas, optimiser state, data order and augmentation;
only the arithmetic is shared. For every epoch the members' weights, batch-norm buffers
and optimiser states are stacked along a new leading dimension, the supernet runs once
over the stack (``torch.func.vmap`` over ``functional_call``: a convolution of K members
becomes one grouped convolution), and the results are written back into each member's
``DartsSearch``, which then measures and records its epoch exactly as a lone search does.
So checkpoints, resumes and records are a lone search's, and a member that is pruned or
fails is dropped and stops costing compute.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from pipeline.darts import DartsSearch, DivergedError, EpochRecord


class PopulationError(ValueError):
    """Searches that cannot run as one population."""


def _settings(search: DartsSearch) -> tuple[object, ...]:
    """What must be equal for searches to share one stacked computation."""
    w, a = search.w_optimizer.param_groups[0], search.a_optimizer.param_groups[0]
    shapes = tuple((name, tuple(p.shape)) for name, p in search.net.named_parameters())
    return (search.epoch, search.epochs, search.bf16, search.grad_clip,
            id(search.weight_batches), id(search.arch_batches), shapes, w["lr"],
            w["momentum"], w["nesterov"], w["weight_decay"], a["lr"], a["betas"],
            a["weight_decay"])


class Population:
    """First-order DARTS searches run side by side as one batched computation.

    Args:
        members: searches of supernets of one shape, at the same epoch, with the same
            hyperparameters and the same data (their seeds, starts and alphas differ).

    Raises:
        PopulationError: the members differ in anything but seed, start and state, or a
            member is second order.
    """

    def __init__(self, members: Sequence[DartsSearch]) -> None:
        if not members:
            raise PopulationError("a population needs at least one search")
        if any(m.order != 1 for m in members):
            raise PopulationError("population batching runs first-order DARTS only "
                                  "(search.order = 1)")
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
        return not self.members or self.members[0].epoch >= self.members[0].epochs

    def run_epoch(self) -> list[EpochRecord | DivergedError]:
        """One epoch of every member; each member's record, or the error that ended it
        (a non-finite loss in one member leaves the others untouched)."""
        started = time.perf_counter()
        stack = StackedSearch(self.members)
        weight_epochs = [m.weight_batches.epoch(2 * m.seed, m.epoch) for m in self.members]
        arch_epochs = [m.arch_batches.epoch(2 * m.seed + 1, m.epoch) for m in self.members]
        totals = torch.zeros(len(self.members), 2, device=stack.device)
        for weight_batches in zip(*weight_epochs, strict=True):
            arch_batches = [next(epoch, None) for epoch in arch_epochs]
            if all(batch is not None for batch in arch_batches):
                stack.arch_step(*_stacked(arch_batches))  # type: ignore[arg-type]
            totals += stack.weight_step(*_stacked(weight_batches))
        stack.write_back()
        results: list[EpochRecord | DivergedError] = []
        for member, member_totals in zip(self.members, totals, strict=True):
            try:
                with warnings.catch_warnings():
                    # the stack's optimiser stepped, not the member's, which the member's
                    # scheduler notices; its schedule is still the right one
                    warnings.filterwarnings("ignore", message=r".*optimizer\.step\(\)",
                                            category=UserWarning)
                    record = member.finish_epoch(member_totals, stack.weight_lr, started)
                results.append(record)
            except DivergedError as error:
                results.append(error)
        return results


def _stacked(batches: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])


class StackedSearch:
    """A stacked copy of a population's searches (weights, alphas, buffers, optimiser
    states) that steps them all at once; ``write_back`` returns the results to them."""

    def __init__(self, members: Sequence[DartsSearch]) -> None:
        self.members = members
        first = members[0]
        self.device = first.alphas[0].device
        self.bf16 = first.bf16
        self.grad_clip = first.grad_clip
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
        w_group, a_group = first.w_optimizer.param_groups[0], first.a_optimizer.param_groups[0]
        self.weight_lr = float(w_group["lr"])
        self.w_optimizer = torch.optim.SGD(
            self.weights, lr=w_group["lr"], momentum=w_group["momentum"],
            nesterov=w_group["nesterov"], weight_decay=w_group["weight_decay"])
        self.a_optimizer = torch.optim.Adam(self.alphas, lr=a_group["lr"], betas=a_group["betas"],
                                            weight_decay=a_group["weight_decay"])
        self._stack_state(self.w_optimizer, self.weight_names, "w_optimizer")
        self._stack_state(self.a_optimizer, self.alpha_names, "a_optimizer")

    def _stack_state(self, optimizer: torch.optim.Optimizer, names: list[str],
                     which: str) -> None:
        """Stack the members' optimiser state (momentum, Adam moments) of each parameter."""
        for name in names:
            states = [getattr(member, which).state.get(params[name], {})
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
                for optimizer, member_optimizer in ((self.w_optimizer, member.w_optimizer),
                                                    (self.a_optimizer, member.a_optimizer)):
                    for name, stacked in self.params.items():
                        state = optimizer.state.get(stacked)
                        if state:
                            member_optimizer.state[member_params[name]] = {
                                key: value.clone() if key == "step" else value[k].clone()
                                for key, value in state.items()}

    def _losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
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

    def arch_step(self, x: Tensor, y: Tensor) -> None:
        losses, _ = self._losses(x, y)
        grads = torch.autograd.grad(losses.sum(), self.alphas)
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        self.a_optimizer.step()

    def weight_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One SGD step of every member's weights, each clipped by its own gradient norm;
        returns (loss sum, correct) per member, (K, 2), on the device."""
        self.w_optimizer.zero_grad(set_to_none=True)
        with _frozen(self.alphas):
            losses, logits = self._losses(x, y)
            losses.sum().backward()  # type: ignore[no-untyped-call]
        grads = [w.grad for w in self.weights if w.grad is not None]
        norms = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads]), dim=0)
        scale = (self.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
        self.w_optimizer.step()
        correct = (logits.detach().argmax(dim=-1) == y).sum(dim=1)
        return torch.stack([losses.detach() * y.shape[1], correct.float()], dim=1)


@contextlib.contextmanager
def _frozen(params: Sequence[Tensor]) -> Iterator[None]:
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
