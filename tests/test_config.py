from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import config as cfg
from pipeline.config import ConfigError, StudyConfig, from_dict, load, to_dict
from pipeline.outer.sampling import check_outer


def _load_to_run(path: Path, overrides: list[str]) -> StudyConfig:
    """A study file as ``search`` reads it: loaded, and its outer loop checked by the
    registered samplers and pruners."""
    config = load(path, overrides)
    check_outer(config)
    return config


def test_defaults_follow_nb201_darts_protocol() -> None:
    c = StudyConfig(name="x")
    assert (c.search.weight_lr, c.search.weight_lr_min, c.search.momentum) == (0.025, 0.001, 0.9)
    assert (c.search.weight_decay, c.search.arch_lr, c.search.arch_weight_decay) == (
        5e-4, 3e-4, 1e-3)
    assert (c.search.arch_beta1, c.search.arch_beta2) == (0.5, 0.999)
    assert c.search.nesterov and c.search.grad_clip == 5.0 and c.search.batch_size == 64
    assert (c.space.channels, c.space.settings["cells_per_stage"]) == (16, 5)


def test_dict_round_trip_is_lossless(tiny_config: StudyConfig) -> None:
    data = to_dict(tiny_config)
    assert from_dict(json.loads(json.dumps(data))) == tiny_config


def test_study_file_loads_with_name_from_stem(study_file: Path, tiny_config: StudyConfig) -> None:
    assert load(study_file) == tiny_config


def test_overrides_are_coerced(study_file: Path) -> None:
    c = load(study_file, ["search.epochs=7", "search.arch_lr=1e-3", "data.dataset=cifar10",
                          "start.cosearch=['weight_lr']", "search.weight_lr=1"])
    assert c.search.epochs == 7 and c.search.arch_lr == 1e-3
    assert c.data.dataset == "cifar10" and c.start.cosearch == ("weight_lr",)
    assert isinstance(c.search.weight_lr, float)


def test_default_study_file_is_valid() -> None:
    c = load(Path(__file__).parents[1] / "studies" / "default.toml")
    assert c.name == "default" and c.data.dataset == "digits" and c.outer.n_trials >= 16


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "studies").glob("*.toml")),
                         ids=lambda path: path.stem)
def test_every_shipped_study_file_is_valid(path: Path) -> None:
    assert load(path).name == path.stem


@pytest.mark.parametrize("override, key", [
    ("no_such_key=1", "no_such_key"),
    ("search.no_such=1", "search.no_such"),
    ("search.epochs=-1", "search.epochs"),
    ("search.batch_size=0", "search.batch_size"),
    ("search.weight_lr=abc", "search.weight_lr"),
    ("search.epochs=2.5", "search.epochs"),
    ("search.nesterov=1", "search.nesterov"),
    ("data.dataset=mnist", "data.dataset"),
    ("outer.sampler=grid", "outer.sampler"),
    ("outer.pruner=hyperband", "outer.pruner"),
    ("search.objective=test", "search.objective"),
    ("search.objective=['supernet', 'latency']", "search.objective"),
    ("search.objective=['params', 'supernet']", "search.objective"),
    ("search.objective=3", "search.objective"),
    ("search.train_epochs=0", "search.train_epochs"),
    ("start.cosearch=['momentum']", "start.cosearch"),
    ("name=../escape", "name"),
    ("name=/abs", "name"),
    ("search=3", "search"),
    ("search.epochs", "search.epochs"),
])
def test_bad_overrides_name_the_key(study_file: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _load_to_run(study_file, [override])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\nepochs = 2")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_diff_lists_changed_keys(tiny_config: StudyConfig) -> None:
    old = to_dict(tiny_config)
    new = to_dict(from_dict({**old, "search": {**old["search"], "epochs": 9}}))
    assert cfg.diff(old, new) == ["search.epochs: 3 -> 9"]


_values = st.one_of(st.integers(-5, 100), st.floats(allow_nan=True), st.booleans(),
                    st.text(max_size=8), st.lists(st.text(max_size=4), max_size=2))
_keys = st.sampled_from(["seed", "name", "search.epochs", "search.arch_lr", "search.order",
                         "data.dataset", "data.subset", "space.channels", "outer.sampler",
                         "outer.n_trials", "start.cosearch", "start.alpha_range", "bogus",
                         "search.bogus", "outer"])


def _as_toml(value: object) -> str:
    """A value as the TOML text an override gives it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(_as_toml, value)) + "]"
    return repr(value)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_keys, _values), max_size=4))
def test_any_override_applies_or_gives_one_config_error(pairs: list[tuple[str, object]]
                                                        ) -> None:
    """``apply_override`` walks any dotted key: the config then holds each key's last value
    (coerced to its field's type) and round-trips, or a one-line ``ConfigError`` refuses."""
    data = to_dict(StudyConfig(name="p"))
    try:
        for key, value in pairs:
            cfg.apply_override(data, f"{key}={_as_toml(value)}")
        config = from_dict(data)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
        return
    for key, value in dict(pairs).items():
        held: object = config
        for part in key.split("."):
            held = getattr(held, part)
        assert held == (tuple(value) if isinstance(value, list) else value), key
    assert from_dict(to_dict(config)) == config


_toml_values = st.sampled_from([
    "1", "-3", "0", "2.5", "1e-3", "nan", "inf", "-inf", "true", "false", '"digits"',
    '"cifar10"', '"../x"', '"cmaes"', '"none"', "[]", '["weight_lr"]', '["x", 1]', "[1, 2]",
    "{ a = 1 }", '"abc"', "1979-05-27", "0x1F", '""',
])
_toml_keys = st.sampled_from([
    "seed", "name", "epochs", "batch_size", "order", "arch_lr", "weight_lr", "dataset",
    "subset", "channels", "cells_per_stage", "sampler", "pruner", "n_trials", "cosearch",
    "alpha_range", "objective", "flip", "bogus",
])
_sections = st.sampled_from(["", "[data]", "[space]", "[search]", "[start]", "[outer]",
                             "[bogus]", "[search.deeper]"])
_study_text = st.lists(st.tuples(_sections, _toml_keys, _toml_values), max_size=8).map(
    lambda lines: "\n".join(f"{section}\n{key} = {value}" for section, key, value in lines))
_override = st.one_of(
    st.builds("{}={}".format, st.sampled_from(["search.epochs", "outer.sampler", "seed",
                                              "data.subset", "start.cosearch", "x.y", "search"]),
              _toml_values),
    st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(_study_text, st.lists(_override, max_size=3))
def test_any_study_file_loads_or_gives_one_config_error(
        tmp_path_factory: pytest.TempPathFactory, text: str, overrides: list[str]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "study.toml"
    path.write_text(text)
    try:
        config = load(path, overrides)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert from_dict(to_dict(config)) == config


def test_holdout_needs_a_subset_and_the_trained_objective(study_file: Path) -> None:
    with pytest.raises(ConfigError, match="data.holdout needs data.subset > 0"):
        load(study_file, ["data.holdout=100", "data.subset=0", "search.objective=trained"])
    with pytest.raises(ConfigError, match='data.holdout is measured on by search.objective'):
        load(study_file, ["data.holdout=100", "data.subset=200"])
    config = load(study_file, ["data.holdout=100", "data.subset=200", "search.objective=trained"])
    assert config.data.holdout == 100


def test_two_objectives_need_a_sampler_and_pruner_that_support_them(study_file: Path) -> None:
    pair = "search.objective=['discrete', 'params']"
    with pytest.raises(ConfigError, match="outer.sampler cannot be 'cmaes'"):
        _load_to_run(study_file, [pair, "outer.pruner=none"])
    with pytest.raises(ConfigError, match="outer.pruner must be"):
        _load_to_run(study_file, [pair, "outer.sampler=nsga2", "outer.pruner=median"])
    search = load(study_file, [pair, "outer.sampler=tpe", "outer.pruner=none"]).search
    assert search.objectives == ("discrete", "params") and search.multi_objective
    assert search.accuracy_objective == "discrete"
    single = load(study_file, ["search.objective=['discrete']"]).search
    assert single.objective == "discrete" and not single.multi_objective


def test_fixed_alphas_need_perturbation_selection_and_a_start_box(study_file: Path) -> None:
    with pytest.raises(ConfigError, match='search.arch_lr 0 .* needs search.selection = '
                                          '"perturbation"'):
        load(study_file, ["search.arch_lr=0"])
    with pytest.raises(ConfigError, match="start.alpha_range must be > 0 when search.arch_lr"):
        _load_to_run(study_file, ["search.arch_lr=0", "search.selection=perturbation"])
    plain = load(study_file, ["search.arch_lr=0", "search.selection=perturbation",
                              "outer.sampler=darts"])
    assert plain.start.alpha_range == 0  # plain starts need no box
    assert load(study_file, ["search.arch_lr=0", "search.selection=perturbation",
                             "start.alpha_range=0.5"]).start.alpha_range == 0.5


def test_the_readmes_fixed_alpha_example_runs_as_written(study_file: Path) -> None:
    from pipeline import cli

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    command = re.search(r"globaldarts search (\S+) (.*search\.arch_lr=0.*\n.*)", readme)
    assert command is not None
    sets = re.findall(r"--set (\S+)", command.group(2))
    assert load(Path(__file__).parents[1] / command.group(1), sets).search.arch_lr == 0
    root = str(study_file.parent)  # the same settings on the tiny study, one short search
    assert cli.main(["search", str(study_file), "--root", root, "-q", *(
        arg for s in sets for arg in ("--set", s)), "--n-trials", "2", "--set",
        "search.epochs=1", "--set", "search.selection_tune_epochs=0"]) == 0
