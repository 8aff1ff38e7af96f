from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from pipeline.spaces import Supernet as NNSupernet
from pipeline.spaces import count_parameters
from pipeline.spaces.darts import DartsSupernet
from pipeline.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Genotype, NB201Network, NB201Space
from pipeline.spaces.nb201 import NB201Supernet as Supernet
from pipeline.spaces.nb201.supernet import MixedOp, NodeInput
from pipeline.spaces.ops import ResNetBlock, avg_pool_3x3


def _supernet(**kwargs: int) -> Supernet:
    torch.manual_seed(0)
    return Supernet(channels=kwargs.get("channels", 4), cells_per_stage=1,
                    num_classes=kwargs.get("classes", 3), in_channels=kwargs.get("c_in", 3))


def test_nb201_eval_network_parameter_counts_match_the_benchmark() -> None:
    assert NB201Space().eval_params(NB201Genotype(("none",) * 6)) == 73_306
    assert NB201Space().eval_params(NB201Genotype(("nor_conv_3x3",) * 6)) == 1_531_546


@pytest.mark.parametrize("c_in, size", [(1, 8), (3, 32)])
def test_supernet_and_eval_network_shapes(device: torch.device, c_in: int, size: int) -> None:
    net = _supernet(c_in=c_in, classes=5).to(device)
    x = torch.randn(2, c_in, size, size, device=device)
    assert net(x).shape == (2, 5)
    assert net(x, choice=[3, 1, 0, 4, 2, 3]).shape == (2, 5)
    eval_net = NB201Network(NB201Genotype(("nor_conv_1x1",) * 6), channels=4,
                            cells_per_stage=1, num_classes=5, in_channels=c_in).to(device)
    assert eval_net(x).shape == (2, 5)


def test_alphas_are_registered_and_separate_from_weights() -> None:
    net = _supernet()
    assert "alphas" in net.state_dict()
    assert net.state_dict()["alphas"].shape == (6, len(NB201_OPS))
    weight_ids = {id(p) for p in net.weight_parameters()}
    assert id(net.alphas) not in weight_ids
    assert len(weight_ids) + 1 == len(list(net.parameters()))


def test_mixed_op_equals_the_full_weighted_sum_including_none() -> None:
    torch.manual_seed(1)
    op = MixedOp(4, NB201_OPS).eval()
    node = NodeInput(torch.randn(3, 4, 6, 6))
    weights = F.softmax(torch.randn(len(NB201_OPS)), dim=0)
    full = sum(w * op.forward_op(node, i) for i, w in enumerate(weights))
    assert torch.allclose(op(node, weights), full, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_fast_average_pool_equals_avg_pool2d(size: int, stride: int) -> None:
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    fast = avg_pool_3x3(x, stride)
    slow = F.avg_pool2d(x, 3, stride=stride, padding=1, count_include_pad=False)
    assert torch.allclose(fast, slow)
    grad = torch.randn_like(slow)
    (fast_grad,) = torch.autograd.grad(fast, x, grad)
    (slow_grad,) = torch.autograd.grad(slow, x, grad)
    assert torch.allclose(fast_grad, slow_grad)


def _reference_logits(net: Supernet, x: torch.Tensor) -> torch.Tensor:
    """The supernet the plain way: every op of every edge on its own, with PyTorch's pool."""
    weights = F.softmax(net.alphas, dim=-1)
    x = net.stem(x)
    for layer in net.layers:
        if isinstance(layer, ResNetBlock):
            x = layer(x)
            continue
        nodes = [x]
        for to in range(1, 4):
            total = torch.zeros_like(x)
            for i, (edge_to, src) in enumerate(NB201_EDGES):
                if edge_to != to:
                    continue
                inp = nodes[src]
                for j, name in enumerate(net.op_names):
                    if name == "none":
                        out = inp * 0
                    elif name == "skip_connect":
                        out = inp
                    elif name == "avg_pool_3x3":
                        out = F.avg_pool2d(inp, 3, 1, 1, count_include_pad=False)
                    else:
                        op = layer.edges[i].ops[name]
                        out = op.bn(op.conv(F.relu(inp)))
                    total = total + weights[i, j] * out
            nodes.append(total)
        x = nodes[-1]
    return net.classifier(net.head(x))


def test_supernet_equals_the_straightforward_formulation() -> None:
    net = _supernet().double()
    with torch.no_grad():
        net.alphas.normal_()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    fast, slow = net(x), _reference_logits(net, x)
    assert torch.allclose(fast, slow)
    params = list(net.parameters())
    fast_grads = torch.autograd.grad(fast.square().sum(), params)
    slow_grads = torch.autograd.grad(slow.square().sum(), params)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        assert torch.allclose(a, b)


def test_discrete_choice_equals_a_one_hot_mixture() -> None:
    net = _supernet().eval()
    x = torch.randn(2, 3, 8, 8)
    choice = [3, 1, 2, 4, 0, 3]
    with torch.no_grad():
        net.alphas.copy_(F.one_hot(torch.tensor(choice), len(NB201_OPS)) * 50.0)
        assert torch.allclose(net(x, choice), net(x), atol=1e-4)


def test_eval_mode_is_batch_independent() -> None:
    net = _supernet().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[:1]), net(x[1:])])
    assert torch.allclose(together, alone, atol=1e-5)


def test_genotype_is_the_argmax_per_edge() -> None:
    net = _supernet()
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[:, 3] = 1.0
        net.alphas[5, 0] = 2.0
    assert net.genotype().ops == ("nor_conv_3x3",) * 5 + ("none",)


def test_fixed_cell_drops_none_edges() -> None:
    with_none = NB201Network(NB201Genotype(("none",) + ("nor_conv_3x3",) * 5), channels=4,
                             cells_per_stage=1)
    without = NB201Network(NB201Genotype(("nor_conv_3x3",) * 6), channels=4, cells_per_stage=1)
    one_edge = sum(c * c * 9 + 2 * c for c in (4, 8, 16))  # conv + affine norm, per stage
    assert count_parameters(without) - count_parameters(with_none) == one_edge


def _darts_supernet() -> DartsSupernet:
    torch.manual_seed(0)
    return DartsSupernet(channels=4, layers=3, num_classes=3, in_channels=3)


@pytest.mark.parametrize("make", [_supernet, _darts_supernet], ids=["nb201", "darts"])
def test_without_gradients_ops_of_zero_weight_are_skipped_and_change_nothing(
        make: Callable[[], NNSupernet]) -> None:
    """A perturbation selection's mixture (decided rows one-hot, an op removed, a row
    dropped) gives the logits every op's run would give, with fewer convolutions."""
    net = make().double().train()
    weights = F.softmax(torch.randn_like(net.alphas, dtype=torch.float64), dim=-1)
    weights[0] = F.one_hot(torch.tensor(1), weights.shape[1])  # decided
    weights[1, 2] = 0.0  # one op removed
    weights[2] = 0.0  # dropped, or decided as none
    convolutions: list[None] = []
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda *_: convolutions.append(None))
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        skipped, skipped_count = net(x, weights=weights), len(convolutions)
    every_op = net(x, weights=weights).detach()
    assert 0 < skipped_count < len(convolutions) - skipped_count
    torch.testing.assert_close(skipped, every_op, rtol=0, atol=1e-12)
