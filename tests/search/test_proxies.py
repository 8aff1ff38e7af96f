"""Each zero-cost score equals its paper's formula computed by hand on a tiny network."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.search.proxies import (
    JACOB_K,
    jacob_cov,
    naswot,
    naswot_kernel,
    params_score,
    synflow,
)


def _linear(*weights: torch.Tensor) -> nn.Sequential:
    """A bias-free linear network with the given weight matrices, in order."""
    layers = []
    for weight in weights:
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        layer.weight.data.copy_(weight)
        layers.append(layer)
    return nn.Sequential(*layers)


def test_synflow_sums_each_layers_paths_of_absolute_weights() -> None:
    torch.manual_seed(0)
    w1, w2 = torch.randn(3, 4), torch.randn(2, 3)
    paths = float(torch.ones(2) @ w2.abs() @ w1.abs() @ torch.ones(4))  # sum over paths
    # each layer's sum of theta * dR/dtheta is R itself: the network is linear in it
    assert synflow(_linear(w1, w2), torch.randn(5, 4)) == pytest.approx(2 * paths)
    net = _linear(w1, w2)
    synflow(net, torch.randn(5, 4))
    assert torch.equal(net[0].weight, w1) and net[0].weight.grad is None  # a copy is scored


def test_synflow_bypasses_batch_norm() -> None:
    w = torch.randn(3, 4)
    with_norm = nn.Sequential(_linear(w), nn.BatchNorm1d(3))
    with_norm[1].running_var.fill_(100.0)  # nothing of the norm reaches the score
    assert synflow(with_norm, torch.randn(5, 4)) == pytest.approx(
        synflow(_linear(w), torch.randn(5, 4)))


def test_naswot_kernel_counts_agreeing_units_and_is_positive_semidefinite() -> None:
    images = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    kernel = naswot_kernel(nn.ReLU(), images)  # codes 10, 11, 00
    assert torch.equal(kernel, torch.tensor([[2.0, 1, 1], [1, 2, 0], [1, 0, 2]],
                                            dtype=torch.float64))
    assert naswot(nn.ReLU(), images) == pytest.approx(math.log(4.0))
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
    kernel = naswot_kernel(net, torch.randn(10, 6))
    assert torch.equal(kernel, kernel.T)
    assert torch.linalg.eigvalsh(kernel).min() >= -1e-9
    assert naswot(nn.Identity(), torch.randn(4, 3)) == -math.inf  # no ReLU, no code


def test_jacob_cov_of_a_linear_network_sees_identical_jacobians() -> None:
    torch.manual_seed(2)
    net = _linear(torch.randn(2, 4))
    # every image's Jacobian is W^T 1: their correlations are all 1, eigenvalues 3, 0, 0
    expected = -(math.log(3 + JACOB_K) + 1 / (3 + JACOB_K)
                 + 2 * (math.log(JACOB_K) + 1 / JACOB_K))
    assert jacob_cov(net, torch.randn(3, 4)) == pytest.approx(expected, rel=1e-6)


def test_params_counts_trainable_parameters() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    assert params_score(net, torch.zeros(1, 4)) == 4 * 3 + 3 + 3 * 2
