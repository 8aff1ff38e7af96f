from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend
from torch.func import functional_call

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.config import StudyConfig
from pipeline.search import (
    DartsSearch,
    DivergedError,
    build_search,
    build_start_space,
    prepare_data,
)


def make_search(config: StudyConfig, device: torch.device, *, seed: int = 0,
                order: int = 1, init_seed: int | None = None) -> DartsSearch:
    config = dataclasses.replace(config, search=dataclasses.replace(config.search, order=order))
    data = prepare_data(config, device)
    space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    return build_search(config, data, space.decode(space.centre()), seed=seed,
                        init_seed=seed if init_seed is None else init_seed, device=device)


def _fixed_batches(search: DartsSearch) -> tuple[torch.Tensor, ...]:
    x_w, y_w = next(search.weight_batches.epoch(0, 0))
    x_a, y_a = next(search.arch_batches.epoch(1, 0))
    return x_w, y_w, x_a, y_a


@pytest.mark.parametrize("order", [1, 2])
def test_steps_lower_the_loss_on_a_fixed_batch(tiny_config: StudyConfig, device: torch.device,
                                              order: int) -> None:
    search = make_search(tiny_config, device, order=order)
    x_w, y_w, x_a, y_a = _fixed_batches(search)
    with torch.no_grad():
        before = F.cross_entropy(search.net(x_a), y_a) + F.cross_entropy(search.net(x_w), y_w)
    alphas_before = search.net.alphas.detach().clone()
    for _ in range(5):
        search.arch_step(x_w, y_w, x_a, y_a)
        search.weight_step(x_w, y_w)
    with torch.no_grad():
        after = F.cross_entropy(search.net(x_a), y_a) + F.cross_entropy(search.net(x_w), y_w)
    assert after < before
    assert not torch.equal(search.net.alphas.detach(), alphas_before)


def test_second_order_gradient_matches_exact_unrolled_gradient(tiny_config: StudyConfig) -> None:
    search = make_search(tiny_config, torch.device("cpu"), order=2)
    search.net.double()
    # DARTS' radius of 0.01 is coarse for a 4-channel net with ReLU kinks
    search.architect.settings = dataclasses.replace(search.architect.settings,
                                                    hessian_radius=1e-5)
    x_w, y_w, x_a, y_a = (t.double() if t.is_floating_point() else t
                          for t in _fixed_batches(search))
    lr = search.w_optimizer.param_groups[0]["lr"]
    decay = search.w_optimizer.param_groups[0]["weight_decay"]
    names = [n for n, _ in search.net.named_parameters() if n != "alphas"]
    weights = dict(zip(names, search.weights, strict=True))
    buffers = {n: b.clone() for n, b in search.net.named_buffers()}

    def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(search.net, ({**params, **buffers},), (x,)), y)

    alphas = search.net.alphas
    train_grads = torch.autograd.grad(loss({**weights, "alphas": alphas}, x_w, y_w),
                                      list(weights.values()), create_graph=True)
    unrolled = {n: w - lr * (g + decay * w)
                for (n, w), g in zip(weights.items(), train_grads, strict=True)}
    (exact,) = torch.autograd.grad(loss({**unrolled, "alphas": alphas}, x_a, y_a), [alphas])
    (approx,) = search.architect.unrolled_grads(search, search.w_optimizer, x_w, y_w, x_a, y_a)
    first_order = torch.autograd.grad(loss({**weights, "alphas": alphas}, x_a, y_a), [alphas])[0]
    error = (approx - exact).norm() / exact.norm()
    assert error < 1e-4
    assert (first_order - exact).norm() / exact.norm() > 10 * error  # the Hessian term matters


def test_same_seed_gives_identical_alphas(tiny_config: StudyConfig, device: torch.device) -> None:
    runs = []
    for _ in range(2):
        search = make_search(tiny_config, device, seed=4)
        search.run_epoch()
        search.run_epoch()
        runs.append(search.net.alphas.detach().cpu())
    assert torch.equal(runs[0], runs[1])
    other = make_search(tiny_config, device, seed=5)
    other.run_epoch()
    other.run_epoch()
    assert not torch.equal(runs[0], other.net.alphas.detach().cpu())


@pytest.mark.parametrize("order", [1, 2])
def test_resumed_search_equals_uninterrupted(tiny_config: StudyConfig, device: torch.device,
                                            tmp_path: Path, order: int) -> None:
    whole = make_search(tiny_config, device, seed=2, order=order)
    whole.run()
    first = make_search(tiny_config, device, seed=2, order=order)
    first.run_epoch()
    save_checkpoint(tmp_path / "ckpt.pt", first.state_dict(), meta={"k": 1})
    resumed = make_search(tiny_config, device, seed=2, order=order, init_seed=9)
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt", meta={"k": 1},
                                            keys=DartsSearch.STATE_KEYS, epochs=3))
    assert resumed.epoch == 1
    resumed.run()
    assert resumed.epoch == whole.epoch == tiny_config.search.epochs
    for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in whole.history]
    assert strip == [{k: v for k, v in r.to_dict().items() if k != "seconds"}
                     for r in resumed.history]


def test_non_finite_loss_raises_diverged(tiny_config: StudyConfig) -> None:
    search = make_search(tiny_config, torch.device("cpu"))
    with torch.no_grad():
        search.net.classifier.weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match="non-finite"):
        search.run_epoch()


def test_epoch_record_reports_percentages(tiny_config: StudyConfig) -> None:
    search = make_search(tiny_config, torch.device("cpu"))
    record = search.run_epoch()
    assert 0 <= record.valid_acc <= 100 and record.discrete_acc is None
    search.run()
    last = search.history[-1]
    assert last.discrete_acc is not None and 0 <= last.discrete_acc <= 100
    rows = torch.tensor(record.alpha_softmax)
    assert rows.shape == (6, 5) and torch.allclose(rows.sum(dim=1), torch.ones(6))


def test_cell_evaluation_leaves_the_search_state_untouched(tiny_config: StudyConfig) -> None:
    search = make_search(tiny_config, torch.device("cpu"))
    search.run_epoch()
    before = {k: v.clone() for k, v in search.net.state_dict().items()}
    accuracy = search.forward.evaluate_cell([3, 3, 3, 3, 3, 3], calibrate_on=search.weight_batches,
                                             measure_on=search.arch_batches)
    assert 0 <= accuracy <= 100
    after = search.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert search.net.training


def test_bf16_arch_gradient_agrees_with_float32(tiny_config: StudyConfig) -> None:
    grads = {}
    for bf16 in (False, True):
        search = make_search(tiny_config, torch.device("cpu"))
        search.bf16 = bf16
        x_w, y_w, x_a, y_a = _fixed_batches(search)
        (grads[bf16],) = torch.autograd.grad(search.losses(x_a, y_a)[0], search.alphas)
    cosine = F.cosine_similarity(grads[False].flatten(), grads[True].flatten(), dim=0)
    # bfloat16 keeps about 3 digits; the direction of the alpha gradient survives
    assert grads[True].dtype == torch.float32 and cosine > 0.95


def test_bf16_and_channels_last_searches_run(tiny_config: StudyConfig) -> None:
    config = dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, precision="bf16", channels_last=True, epochs=1))
    search = make_search(config, torch.device("cpu"))
    assert search.forward.bf16
    assert search.net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    record = search.run_epoch()
    assert math.isfinite(record.train_loss) and 0 <= record.valid_acc <= 100


def test_channels_last_gives_the_same_logits(tiny_config: StudyConfig) -> None:
    search = make_search(tiny_config, torch.device("cpu"))
    x, _ = next(search.weight_batches.epoch(0, 0))
    search.net.eval()
    with torch.no_grad():
        plain = search.net(x)
        search.net.to(memory_format=torch.channels_last)
        assert torch.allclose(search.net(x.contiguous(memory_format=torch.channels_last)),
                              plain, atol=1e-5)


def _two_iterations(search: DartsSearch) -> torch.Tensor:
    x_w, y_w, x_a, y_a = _fixed_batches(search)
    for _ in range(2):
        search.arch_step(x_w, y_w, x_a, y_a)
        search.weight_step(x_w, y_w)
    return torch.cat([p.detach().flatten() for p in search.net.parameters()])


def test_compiled_search_equals_eager(tiny_config: StudyConfig) -> None:
    # second order: its steps need every graph a first-order search needs, and one more
    eager = _two_iterations(make_search(tiny_config, torch.device("cpu"), order=2))
    search = make_search(tiny_config, torch.device("cpu"), order=2)
    # aot_eager traces the same graphs inductor would compile, without a C++ compiler
    counter = CompileCounterWithBackend("aot_eager")
    search.forward.compiled = torch.compile(search.net, backend=counter)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
        compiled = _two_iterations(search)
    assert search.forward.compiled is not None
    assert counter.frame_count >= 3  # the steps' graphs: all grads, alphas' only, weights'
    assert torch.allclose(compiled, eager, atol=1e-5)


def test_a_failing_compiler_falls_back_to_eager(tiny_config: StudyConfig) -> None:
    def broken_backend(graph: object, example_inputs: object) -> object:
        raise RuntimeError("no C++ compiler here")

    eager = _two_iterations(make_search(tiny_config, torch.device("cpu")))
    config = dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, compile=True))
    search = make_search(config, torch.device("cpu"))
    assert search.forward.compiled is not None  # search.compile = true compiles with inductor
    search.forward.compiled = torch.compile(search.net, backend=broken_backend)
    with pytest.warns(RuntimeWarning, match="no C.. compiler here"):
        after = _two_iterations(search)
    assert search.forward.compiled is None
    assert torch.equal(after, eager)
