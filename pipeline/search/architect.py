"""The architecture step (DARTS' ``Architect``): Adam on the alphas, driven by the
validation loss's first-order gradient or by the unrolled second-order one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pipeline.search.steps import Model, frozen

# A variant's term on the architecture loss, of the alphas: per member, or None.
Penalty = Callable[[Sequence[Tensor]], Tensor | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchSettings:
    """How the alphas learn (DARTS: Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3).

    ``order`` 2 takes the gradient through one virtual weight step, its Hessian-vector
    product by finite differences of radius ``hessian_radius`` (0.01 in DARTS).
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3
    order: int = 1
    hessian_radius: float = 0.01

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order}")


class Architect:
    """Steps the alphas of a model (one search, or a stacked population at first order)."""

    def __init__(self, alphas: Sequence[Tensor], settings: ArchSettings) -> None:
        self.alphas = list(alphas)
        self.settings = settings
        self.optimizer = torch.optim.Adam(self.alphas, lr=settings.lr, betas=settings.betas,
                                          weight_decay=settings.weight_decay)

    def step(self, model: Model, x_a: Tensor, y_a: Tensor, *,
             unroll: tuple[Tensor, Tensor, torch.optim.Optimizer] | None = None,
             penalty: Penalty | None = None) -> None:
        """One Adam step of the alphas on the validation batch (x_a, y_a), plus the
        gradient of ``penalty`` (a variant's term on the architecture loss, per member).
        Second order needs ``unroll``: the training batch and the weights' optimizer. With
        a learning rate of 0 the alphas stay where they are, and nothing is computed."""
        if self.settings.lr == 0:
            return
        grads: Sequence[Tensor]
        if self.settings.order == 1:
            grads = torch.autograd.grad(_loss(model, x_a, y_a), self.alphas)
        else:
            assert unroll is not None, "a second-order step needs the training batch"
            x_w, y_w, weight_optimizer = unroll
            grads = self.unrolled_grads(model, weight_optimizer, x_w, y_w, x_a, y_a)
        added = None if penalty is None else penalty(self.alphas)
        if added is not None:
            grads = [g + p for g, p in zip(grads, torch.autograd.grad(added.sum(), self.alphas),
                                           strict=True)]
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        self.optimizer.step()

    def unrolled_grads(self, model: Model, weight_optimizer: torch.optim.Optimizer,
                       x_w: Tensor, y_w: Tensor, x_a: Tensor, y_a: Tensor) -> list[Tensor]:
        """Second-order DARTS: the alpha gradient of the validation loss after one virtual
        weight step, with the Hessian-vector product taken by finite differences."""
        weights, alphas = model.weights, self.alphas
        lr = weight_optimizer.param_groups[0]["lr"]
        start = [w.detach().clone() for w in weights]
        _virtual_step(model, weight_optimizer, x_w, y_w, lr)
        grads = torch.autograd.grad(_loss(model, x_a, y_a), [*alphas, *weights])
        alpha_grads, weight_grads = grads[:len(alphas)], grads[len(alphas):]
        eps = self.settings.hessian_radius / torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in weight_grads]))
        hessian_terms = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, g in zip(weights, start, weight_grads, strict=True):
                    w.copy_(w0 + sign * eps * g)
            with frozen(weights):
                hessian_terms.append(torch.autograd.grad(_loss(model, x_w, y_w), alphas))
        with torch.no_grad():
            for w, w0 in zip(weights, start, strict=True):
                w.copy_(w0)
        return [a - lr * (plus - minus) / (2 * eps)
                for a, plus, minus in zip(alpha_grads, *hessian_terms, strict=True)]

    def state_dict(self) -> dict[str, object]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.optimizer.load_state_dict(state)


def _loss(model: Model, x: Tensor, y: Tensor) -> Tensor:
    return model.losses(x, y)[0].sum()


def _virtual_step(model: Model, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
                  lr: float) -> None:
    """Move the weights in place by one SGD step (momentum and decay included)."""
    with frozen(model.alphas):
        grads = torch.autograd.grad(_loss(model, x, y), model.weights)
    group = optimizer.param_groups[0]
    with torch.no_grad():
        for w, g in zip(model.weights, grads, strict=True):
            step = g + group["weight_decay"] * w
            buffer = optimizer.state.get(w, {}).get("momentum_buffer")
            if buffer is not None:
                step = step + group["momentum"] * buffer
            w.sub_(lr * step)
