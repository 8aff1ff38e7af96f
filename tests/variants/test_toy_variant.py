"""Adding a DARTS variant is one module with one registered class: this file's toy variant,
registered as ``pipeline/variants/__init__.py`` registers the real ones, is checked by the
config, built by the search, run by a study, timed by the benchmark and listed by the help,
with nothing else changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor

from pipeline import cli
from pipeline.bench import measure_iteration
from pipeline.config import ConfigError, load, to_dict
from pipeline.outer.study import load_study
from pipeline.search import build_search, build_start_space, prepare_data
from pipeline.variants import VARIANTS, Darts, register
from pipeline.variants.base import require


@dataclass(frozen=True)
class Toy(Darts):
    """A toy variant: the squared alphas times ``toy_weight`` on the architecture loss, an
    auxiliary skip of that weight, and no weight decay on the alphas."""

    name: ClassVar[str] = "toy"
    has_aux_skip: ClassVar[bool] = True
    toy_weight: float = 0.5

    def __post_init__(self) -> None:
        require(self.toy_weight >= 0, "toy_weight", "must be >= 0", self.toy_weight)

    def describe(self) -> str:
        return f"toy (squared alphas x {self.toy_weight:g})"

    def aux_skip(self, t: float) -> float:
        return self.toy_weight

    def arch_penalty(self, alphas: Tensor, t: float) -> Tensor | None:
        return self.toy_weight * alphas.square().sum(-1).mean(-1)

    def arch_weight_decay(self, configured: float) -> float:
        return 0.0


@pytest.fixture
def toy() -> Iterator[type[Toy]]:
    """The toy variant registered for one test (as its module's import would)."""
    register(Toy)
    yield Toy
    del VARIANTS["toy"]


def test_the_config_takes_the_toy_and_checks_its_setting(toy: type[Toy],
                                                         study_file: Path) -> None:
    config = load(study_file, ["search.variant=toy", "search.toy_weight=0.25"])
    assert config.search.variant_settings["toy_weight"] == 0.25
    assert to_dict(config)["search"]["toy_weight"] == 0.25  # a key of [search] like any
    with pytest.raises(ConfigError, match=r"search\.toy_weight must be >= 0, got -1"):
        load(study_file, ["search.variant=toy", "search.toy_weight=-1"])
    with pytest.raises(ValueError, match="clashes"):
        register(Toy)  # a name or a setting of a registered variant


def test_a_study_searches_with_the_toy(toy: type[Toy], study_file: Path,
                                       tmp_path: Path) -> None:
    overrides = ["search.variant=toy", "search.toy_weight=0.25", "outer.n_trials=1",
                 "search.epochs=1"]
    config = load(study_file, overrides)
    data = prepare_data(config, torch.device("cpu"))
    space = build_start_space(config, steps_per_epoch=len(data.weight_batches))
    search = build_search(config, data, space.decode(space.centre()), seed=0, init_seed=0,
                          device=torch.device("cpu"))
    assert search.variant == Toy(toy_weight=0.25)
    assert search.architect.settings.weight_decay == 0.0
    assert search.net.aux_weight() is not None  # the supernet has the auxiliary skip
    set_args = [arg for o in overrides for arg in ("--set", o)]
    assert cli.main(["search", str(study_file), "--root", str(tmp_path), "--quiet",
                     *set_args]) == 0
    study = load_study(config.name, root=tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    record = measure_iteration(config, order=1, device="cpu", warmup=0, iterations=1)
    assert record.variant == "toy" and record.median_ms > 0


def test_the_help_lists_the_toy(toy: type[Toy], capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("bench", "compare"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "toy" in capsys.readouterr().out
