"""Study configuration: frozen dataclasses, loaded from TOML with dotted overrides."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from pipeline.spaces import SPACES
from pipeline.variants import VARIANTS, build_variant

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
OBJECTIVES = ("supernet", "discrete", "trained", "rung", "train-loss", "zero-cost")
# Objectives the [select] judge measures on images no search saw.
JUDGED_OBJECTIVES = ("rung", "train-loss", "zero-cost")
SECOND_OBJECTIVES = ("params",)
PRECISIONS = ("fp32", "bf16")
SELECTIONS = ("argmax", "perturbation")
RANK_RULES = ("val", "train-loss", "params")
ALPHA_SPACES = ("edge-op", "op")
COSEARCH_HYPERPARAMS = ("weight_lr", "arch_lr", "weight_decay", "arch_weight_decay")
MAX_SEED = 2**32 - 1
# Bounds past which a study cannot run on any machine (memory), refused at load time.
MAX_CHANNELS, MAX_DIRECTIONS, MAX_POPSIZE, MAX_PADDING = 1024, 64, 1000, 64
MAX_HEARTBEAT_S, MAX_GRACE_S = 3600, 7 * 24 * 3600
STUDY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What may change while a study runs: its budget, and how tensors are laid out in memory.
CHANGEABLE_KEYS = ("outer.n_trials", "outer.epoch_budget", "outer.artifacts",
                   "search.channels_last", "search.compile")
# Sections of what comes after the search, which may change at any time.
CHANGEABLE_SECTIONS = ("retrain", "select")


class ConfigError(ValueError):
    """A study file or override that cannot be used; the message names the key."""


def _check(condition: bool, key: str, message: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{key} {message}, got {value!r}")


def _check_choice(key: str, value: str, choices: Iterable[str]) -> None:
    _check(value in choices, key, f"must be one of {', '.join(choices)}", value)


def _checked(section: str, check: Callable[..., object], *args: Any) -> None:
    """Call ``check(*args)``; a ``ValueError`` it raises (a plugin's check of its own
    setting, naming its key) becomes a ``ConfigError`` naming the key in ``section``."""
    try:
        check(*args)
    except ValueError as error:
        raise ConfigError(f"{section}.{error}") from None


def _plugins(section: type) -> tuple[str, list[type]] | None:
    """For a section some of whose keys the registered spaces or variants own: the field
    that holds those keys, and the classes that declare them."""
    if section is SpaceConfig:
        return "settings", [space.settings_type for space in SPACES.values()]
    if section is SearchConfig:
        return "variant_settings", list(VARIANTS.values())
    return None


def _plugin_fields(plugins: Iterable[type]) -> dict[str, dataclasses.Field[Any]]:
    """The settings the plugins (spaces or variants) declare, by key."""
    return {f.name: f for plugin in plugins for f in dataclasses.fields(plugin)}


def _complete(section: str, given: Mapping[str, Any], plugins: Iterable[type]
              ) -> dict[str, Any]:
    """``given`` with every plugin setting it lacks at its default.

    Raises:
        ConfigError: a key that no plugin declares.
    """
    fields = _plugin_fields(plugins)
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {section}.{unknown[0]!r} (settings of the registered "
                          f"plugins: {', '.join(fields)})")
    return {key: given.get(key, f.default) for key, f in fields.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class DataConfig:
    """Which images to search on and how they are augmented.

    ``holdout`` > 0 sets that many more training images aside, class-balanced and outside
    the search's ``subset``, on which the ``trained`` objective measures each trial's cell
    (0: on the alphas' half, which the search itself learns from).
    """

    dataset: str = "digits"
    root: str = "data"
    download: bool = False
    subset: int = 0
    holdout: int = 0
    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        _check_choice("data.dataset", self.dataset, DATASETS)
        _check(self.subset >= 0, "data.subset", "must be >= 0 (0 keeps every image)", self.subset)
        _check(self.holdout >= 0, "data.holdout", "must be >= 0 (0 measures on the alphas' "
               "half)", self.holdout)
        _check(self.holdout == 0 or self.subset > 0, "data.holdout",
               "needs data.subset > 0 (images outside the search to set aside)", self.holdout)
        _check(0 <= self.crop_padding <= MAX_PADDING, "data.crop_padding",
               f"must be in 0..{MAX_PADDING}", self.crop_padding)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpaceConfig:
    """The cell space and the size of its supernet. ``settings`` holds the keys that the
    registered spaces own (``[space]`` keys of the study file, such as NB201's
    ``cells_per_stage``), each space's at its default unless given; each space checks its
    own."""

    name: str = "nb201"
    channels: int = 16
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice("space.name", self.name, SPACES)
        _check(1 <= self.channels <= MAX_CHANNELS, "space.channels",
               f"must be in 1..{MAX_CHANNELS}", self.channels)
        object.__setattr__(self, "settings", _complete(
            "space", self.settings, [space.settings_type for space in SPACES.values()]))
        for space in SPACES.values():
            _checked("space", space.own_settings, self.settings)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchConfig:
    """The inner DARTS search (defaults: NAS-Bench-201's DARTS protocol).

    ``objective`` is what a trial returns: the supernet's validation accuracy
    (``supernet``), the derived cell's with inherited weights (``discrete``), the derived
    cell's after ``train_epochs`` epochs of training from scratch on the weights' half
    (``trained``), or a cheap judge of the selection stage (``[select]``) on images no
    search saw: the cell's validation accuracy after the first rung (``rung``), minus its
    training losses' sum over it (``train-loss``), or its zero-cost score
    ``select.zero_cost`` (``zero-cost``). The pruner always sees the per-epoch accuracy of
    the first two.
    """

    epochs: int = 50
    batch_size: int = 64
    order: int = 1
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    objective: str | tuple[str, ...] = "supernet"
    train_epochs: int = 10
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    variant: str = "darts"
    variant_settings: dict[str, Any] = field(default_factory=dict)
    selection: str = "argmax"
    selection_tune_epochs: int = 5

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "search.epochs", "must be >= 1", self.epochs)
        self._check_variant()
        _check(self.train_epochs >= 1, "search.train_epochs", "must be >= 1",
               self.train_epochs)
        _check_choice("search.precision", self.precision, PRECISIONS)
        _check(self.batch_size >= 2, "search.batch_size", "must be >= 2", self.batch_size)
        _check(self.order in (1, 2), "search.order", "must be 1 or 2", self.order)
        _check(self.weight_lr > 0, "search.weight_lr", "must be > 0", self.weight_lr)
        _check(self.arch_lr >= 0, "search.arch_lr", "must be >= 0 (0 keeps the alphas where "
               "they start)", self.arch_lr)
        for name in ("weight_lr_min", "momentum", "weight_decay", "arch_weight_decay"):
            value = getattr(self, name)
            _check(value >= 0, f"search.{name}", "must be >= 0", value)
        _check(self.grad_clip > 0, "search.grad_clip", "must be > 0", self.grad_clip)
        for name in ("arch_beta1", "arch_beta2"):
            value = getattr(self, name)
            _check(0 <= value < 1, f"search.{name}", "must be in [0, 1)", value)
        objective = self.objective
        if isinstance(objective, tuple) and len(objective) == 1:
            objective = objective[0]
            object.__setattr__(self, "objective", objective)  # ["discrete"] means "discrete"
        if isinstance(objective, str):
            _check_choice("search.objective", objective, OBJECTIVES)
        else:
            _check(len(objective) == 2 and objective[0] in OBJECTIVES
                   and objective[1] in SECOND_OBJECTIVES, "search.objective",
                   f'must be one of {", ".join(OBJECTIVES)}, or a pair such as '
                   '["supernet", "params"]',
                   list(objective))

    def _check_variant(self) -> None:
        _check_choice("search.variant", self.variant, VARIANTS)
        _check_choice("search.selection", self.selection, SELECTIONS)
        object.__setattr__(self, "variant_settings", _complete(
            "search", self.variant_settings, list(VARIANTS.values())))
        for name in VARIANTS:
            _checked("search", build_variant, name, self.variant_settings)
        _check(self.selection_tune_epochs >= 0, "search.selection_tune_epochs", "must be >= 0",
               self.selection_tune_epochs)
        _check(self.order == 1 or not VARIANTS[self.variant].first_order_only, "search.order",
               f"must be 1 with search.variant = {self.variant!r}: its sampled mixing weights "
               "have no unrolled gradient", self.order)

    @property
    def objectives(self) -> tuple[str, ...]:
        """The study's objectives in order: an accuracy, and optionally ``params``."""
        return (self.objective,) if isinstance(self.objective, str) else self.objective

    @property
    def accuracy_objective(self) -> str:
        """Which accuracy the study maximises: ``supernet``, ``discrete`` or ``trained``."""
        return self.objectives[0]

    @property
    def multi_objective(self) -> bool:
        """Whether the study also minimises the cell's parameters (a Pareto front)."""
        return len(self.objectives) > 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StartConfig:
    """The start vector x that the outer sampler searches.

    ``alpha_space`` is ``"edge-op"`` (an initial architecture logit per edge and op) or
    ``"op"`` (one per op, shared by every edge of a cell type: a prior over operations
    that CMA-ES can learn in a few generations). ``alpha_range`` is the half-width of the
    box around zero for every initial logit; 0 derives it from the search (arch_lr x arch
    steps, the distance Adam can move a logit). CMA-ES starts with a step of a third of it.
    """

    alpha_space: str = "edge-op"
    alpha_range: float = 0.0
    gain_range: float = 0.5
    directions: int = 4
    direction_range: float = 0.5
    cosearch: tuple[str, ...] = ()
    hyperparam_factor: float = 3.0

    def __post_init__(self) -> None:
        _check_choice("start.alpha_space", self.alpha_space, ALPHA_SPACES)
        _check(self.alpha_range >= 0, "start.alpha_range", "must be >= 0 (0 derives it)",
               self.alpha_range)
        _check(self.gain_range > 0, "start.gain_range", "must be > 0", self.gain_range)
        _check(0 <= self.directions <= MAX_DIRECTIONS, "start.directions",
               f"must be in 0..{MAX_DIRECTIONS}", self.directions)
        _check(self.direction_range > 0, "start.direction_range", "must be > 0",
               self.direction_range)
        for name in self.cosearch:
            _check_choice("start.cosearch", name, COSEARCH_HYPERPARAMS)
        _check(len(set(self.cosearch)) == len(self.cosearch), "start.cosearch",
               "must not repeat a name", list(self.cosearch))
        _check(self.hyperparam_factor > 1, "start.hyperparam_factor", "must be > 1",
               self.hyperparam_factor)


@dataclass(frozen=True, slots=True, kw_only=True)
class OuterConfig:
    """The Optuna study around the inner searches. ``sampler`` and ``pruner`` name entries
    of ``pipeline.outer.sampling``'s registries, which check them (and the settings they
    need) before a study runs."""

    sampler: str = "cmaes"
    n_trials: int = 16
    epoch_budget: int = 0
    popsize: int = 0
    separable: bool = False
    start_at_centre: bool = True
    warm_start: str = ""
    pruner: str = "median"
    warmup_epochs: int = 2
    startup_trials: int = 4
    percentile: float = 25.0
    patience: int = 2
    max_retries: int = 3
    heartbeat_interval: int = 30
    grace_period: int = 120
    artifacts: str = ""

    def __post_init__(self) -> None:
        if self.warm_start:
            check_study_name(self.warm_start, key="outer.warm_start")
        _check(self.n_trials >= 1, "outer.n_trials", "must be >= 1", self.n_trials)
        _check(self.epoch_budget >= 0, "outer.epoch_budget", "must be >= 0 (0: count trials)",
               self.epoch_budget)
        _check(0 <= self.popsize <= MAX_POPSIZE, "outer.popsize",
               f"must be in 0..{MAX_POPSIZE} (0: CMA-ES default)", self.popsize)
        _check(self.warmup_epochs >= 0, "outer.warmup_epochs", "must be >= 0",
               self.warmup_epochs)
        _check(self.startup_trials >= 0, "outer.startup_trials", "must be >= 0",
               self.startup_trials)
        _check(0 < self.percentile < 100, "outer.percentile", "must be in (0, 100)",
               self.percentile)
        _check(self.patience >= 0, "outer.patience", "must be >= 0", self.patience)
        _check(self.max_retries >= 0, "outer.max_retries", "must be >= 0", self.max_retries)
        _check(1 <= self.heartbeat_interval <= MAX_HEARTBEAT_S, "outer.heartbeat_interval",
               f"must be in 1..{MAX_HEARTBEAT_S} s", self.heartbeat_interval)
        _check(self.heartbeat_interval < self.grace_period <= MAX_GRACE_S, "outer.grace_period",
               f"must exceed outer.heartbeat_interval and be at most {MAX_GRACE_S} s",
               self.grace_period)
        _check(not self.artifacts or self.artifacts.startswith(("file:///", "s3://")),
               "outer.artifacts", "must be file:///PATH or s3://BUCKET (empty: none)",
               self.artifacts)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainConfig:
    """Training a found cell's evaluation network from scratch (``evaluate``, ``compare
    --retrain-epochs``). A setting left out takes the cell space's published protocol
    (NB201: 200 epochs of batch 256, SGD 0.1 cosine, weight decay 5e-4, C=16, N=5; DARTS:
    600 epochs of batch 96, SGD 0.025, weight decay 3e-4, C=36, 20 cells, auxiliary head
    0.4, drop path 0.2, cutout 16). Augmentation follows ``[data]``."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    channels: int | None = None
    cells: int | None = None
    auxiliary_weight: float | None = None
    drop_path: float | None = None
    cutout: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "channels", "cells"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"retrain.{name}", "must be >= 1", value)
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"retrain.{name}", "must be > 0", value)
        for name in ("momentum", "weight_decay", "auxiliary_weight", "cutout"):
            value = getattr(self, name)
            _check(value is None or value >= 0, f"retrain.{name}", "must be >= 0", value)
        _check(self.drop_path is None or 0 <= self.drop_path < 1, "retrain.drop_path",
               "must be in [0, 1)", self.drop_path)

    def overrides(self) -> dict[str, int | float]:
        """The settings the study file gives (the rest follow the space's protocol)."""
        return {name: getattr(self, name) for name in _field_names(self)
                if getattr(self, name) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectConfig:
    """The selection stage (``globaldarts select``): the distinct cells of a study's
    complete trials (its ``top`` by the trial objective; None: all) each trained from
    scratch at ``channels`` and ``cells`` (NB201: cells per stage) on ``train_images``
    training images that no search saw, and measured on ``valid_images`` more, in rungs of
    successive halving: every candidate trains to ``rungs[0]`` epochs, then the best
    ``1 / reduction`` of them on to ``rungs[1]``, and so on, one cosine schedule of
    ``rungs[-1]`` epochs (SGD ``lr``, batch ``batch_size``) throughout, each under
    ``repeats`` seeds. A rung ranks its candidates by ``rank``: ``val`` (validation
    accuracy), ``train-loss`` (the sum of the training losses so far, lower first),
    ``params``, or the average rank of several. ``zero_cost`` names a zero-cost score
    (params, synflow, naswot, jacob_cov) that drops the lowest ``zero_cost_drop`` share of
    the candidates before any training; it never chooses among those that train."""

    top: int | None = None
    rungs: tuple[int, ...] = (2, 6, 18)
    reduction: int = 3
    channels: int = 8
    cells: int = 1
    train_images: int = 2000
    valid_images: int = 1000
    batch_size: int = 64
    lr: float = 0.1
    repeats: int = 1
    rank: tuple[str, ...] = ("val",)
    zero_cost: str = ""
    zero_cost_drop: float = 0.0

    def __post_init__(self) -> None:
        _check(self.top is None or self.top >= 1, "select.top", "must be >= 1 (leave it "
               "out for every cell)", self.top)
        _check(len(self.rungs) >= 1 and self.rungs[0] >= 1 and all(
            a < b for a, b in zip(self.rungs, self.rungs[1:], strict=False)), "select.rungs",
            "must be epochs that grow from rung to rung, the first >= 1", list(self.rungs))
        _check(self.reduction >= 2, "select.reduction", "must be >= 2", self.reduction)
        for name in ("channels", "cells", "train_images", "valid_images", "repeats"):
            _check(getattr(self, name) >= 1, f"select.{name}", "must be >= 1",
                   getattr(self, name))
        _check(self.batch_size >= 2, "select.batch_size", "must be >= 2", self.batch_size)
        _check(self.lr > 0, "select.lr", "must be > 0", self.lr)
        _check(len(self.rank) >= 1 and len(set(self.rank)) == len(self.rank)
               and set(self.rank) <= set(RANK_RULES), "select.rank",
               f"must be one or more of {', '.join(RANK_RULES)}, none twice", list(self.rank))
        _check(0 <= self.zero_cost_drop < 1, "select.zero_cost_drop", "must be in [0, 1)",
               self.zero_cost_drop)
        _check(bool(self.zero_cost) or self.zero_cost_drop == 0, "select.zero_cost_drop",
               "needs select.zero_cost (the score that drops them)", self.zero_cost_drop)


def _field_names(instance: object) -> list[str]:
    return [f.name for f in dataclasses.fields(instance)]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyConfig:
    """Everything that defines a study; stored with it so that a resume can check it."""

    name: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    start: StartConfig = field(default_factory=StartConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def __post_init__(self) -> None:
        check_study_name(self.name)
        _check(0 <= self.seed <= MAX_SEED, "seed", f"must be in 0..{MAX_SEED}", self.seed)
        subset, batch = self.data.subset, self.search.batch_size
        _check(subset == 0 or subset >= 2 * batch, "data.subset",
               f"must be 0 (every image) or hold a batch for each half of the search split "
               f"(>= 2 x search.batch_size = {2 * batch})", subset)
        judged = self.search.accuracy_objective in JUDGED_OBJECTIVES
        _check(not judged or self.data.subset > 0, "data.subset",
               f"must be > 0 with search.objective = {self.search.accuracy_objective!r}: it is "
               "measured on training images outside the search's subset", self.data.subset)
        _check(self.search.accuracy_objective != "zero-cost" or bool(self.select.zero_cost),
               "select.zero_cost", 'must name the score of search.objective = "zero-cost"',
               self.select.zero_cost)
        _check(self.data.holdout == 0 or self.search.accuracy_objective == "trained",
               "data.holdout", 'is measured on by search.objective = "trained" only',
               self.data.holdout)
        _check(self.search.arch_lr > 0 or self.search.selection == "perturbation",
               "search.arch_lr", '0 (alphas fixed at their start) needs search.selection = '
               '"perturbation": argmax would return the start\'s own argmax (from plain '
               "DARTS' uniform start, the all-none cell)", self.search.arch_lr)
        budget, epochs = self.outer.epoch_budget, self.search.epochs
        _check(budget == 0 or budget >= epochs, "outer.epoch_budget",
               f"must be 0 (count trials) or hold one search (>= search.epochs = {epochs})",
               budget)


def check_study_name(name: str, *, key: str = "name") -> None:
    """Refuse a study name that could leave the studies folder or surprise a shell.

    Raises:
        ConfigError: the name is not 1-64 letters, digits, '_', '-' or '.'.
    """
    _check(bool(STUDY_NAME_PATTERN.match(name)) and ".." not in name, key,
           "must be 1-64 letters, digits, '_', '-' or '.', not starting with a symbol", name)


def to_dict(config: StudyConfig) -> dict[str, Any]:
    """Return the config as plain JSON/TOML-able data (tuples become lists; the keys that
    spaces and variants own sit in their section beside the others)."""
    plain: dict[str, Any] = _plain(dataclasses.asdict(config))
    for name, section in (("space", SpaceConfig), ("search", SearchConfig)):
        holder, _ = _plugins(section) or ("", [])
        plain[name].update(plain[name].pop(holder))
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def from_dict(data: Mapping[str, Any]) -> StudyConfig:
    """Build a config from plain data, rejecting unknown keys and wrong types."""
    config: StudyConfig = _build(StudyConfig, data, prefix="")
    return config


def load(path: str | Path, overrides: Iterable[str] = ()) -> StudyConfig:
    """Read a study file, apply ``section.key=value`` overrides and validate.

    The study name defaults to the file's stem.

    Raises:
        ConfigError: the file is missing or malformed, or a key or value is invalid.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"study file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read study file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"study file {path} is not valid TOML: {error}") from None
    data.setdefault("name", path.stem)
    for override in overrides:
        apply_override(data, override)
    return from_dict(data)


def with_overrides(config: StudyConfig, overrides: Iterable[str]) -> StudyConfig:
    """The config with ``section.key=value`` overrides applied and validated.

    Raises:
        ConfigError: a key or value is invalid.
    """
    data = to_dict(config)
    for override in overrides:
        apply_override(data, override)
    return from_dict(data)


def write(config: StudyConfig, path: Path) -> None:
    """Write the config as a study file (settings left at None, which TOML cannot hold,
    are left out: they read back as None).

    Raises:
        ConfigError: the file exists already.
    """
    if path.exists():
        raise ConfigError(f"{path} exists already; choose another name")
    data = {key: ({k: v for k, v in value.items() if v is not None}
                  if isinstance(value, dict) else value)
            for key, value in to_dict(config).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``section.key=value`` in raw study data; the value is read as a TOML value,
    or as a plain string when it is not one."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"unknown key {key!r}: {section!r} is not a section")
        node = child
    node[leaf] = value


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'study'} must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    holder, plugins = _plugins(cls) or ("", [])
    hints.pop(holder, None)
    owned = {key: hint for plugin in plugins for key, hint in typing.get_type_hints(plugin).items()
             if key in _plugin_fields([plugin])}
    unknown = sorted(set(data) - set(hints) - set(owned))
    if unknown:
        raise ConfigError(f"unknown key {prefix + unknown[0]!r} "
                          f"(valid keys: {', '.join(sorted({*hints, *owned}))})")
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()
              if name in hints}
    if holder:
        kwargs[holder] = {name: _coerce(owned[name], value, prefix + name)
                          for name, value in data.items() if name in owned}
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required key is missing
        raise ConfigError(f"{prefix.rstrip('.') or 'study'}: {error}") from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=key + ".")
    if hint is bool:
        _check(isinstance(value, bool), key, "must be true or false", value)
    elif hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key,
               "must be an integer", value)
    elif hint is float:
        _check(isinstance(value, int | float) and not isinstance(value, bool), key,
               "must be a number", value)
        _check(math.isfinite(value), key, "must be a finite number", value)
        return float(value)
    elif hint is str:
        _check(isinstance(value, str), key, "must be a string", value)
    elif isinstance(hint, types.UnionType) and type(None) in hint.__args__:  # int | None
        (inner,) = (arg for arg in hint.__args__ if arg is not type(None))
        return None if value is None else _coerce(inner, value, key)
    elif isinstance(hint, types.UnionType):  # str | tuple[str, ...]
        _check(isinstance(value, str) or (isinstance(value, list) and all(
            isinstance(v, str) for v in value)), key, "must be a string or a list of strings",
            value)
        return value if isinstance(value, str) else tuple(value)
    elif typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is int:
        _check(isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value), key,
            "must be a list of integers", value)
        return tuple(value)
    elif typing.get_origin(hint) is tuple:
        _check(isinstance(value, list) and all(isinstance(v, str) for v in value), key,
               "must be a list of strings", value)
        return tuple(value)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    return value


def without_changeable(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain config without the keys that may change while a study runs (its budget may
    grow; the memory format and compiling change speed, not what is computed) and without
    the sections of what comes after its searches (retraining, selection)."""
    stripped = {name: dict(value) if isinstance(value, Mapping) else value
                for name, value in data.items() if name not in CHANGEABLE_SECTIONS}
    for dotted in CHANGEABLE_KEYS:
        section, key = dotted.split(".")
        stripped.get(section, {}).pop(key, None)
    return stripped


def with_defaults(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config with each setting added since it was written at its default (a new
    setting's default keeps the behaviour from before it existed)."""
    defaults = to_dict(StudyConfig(name=str(stored.get("name", ""))))
    return _fill(stored, defaults)


def _fill(stored: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    filled = dict(stored)
    for key, default in defaults.items():
        if key not in stored:
            filled[key] = default
        elif isinstance(default, dict) and isinstance(stored[key], Mapping):
            filled[key] = _fill(stored[key], default)
    return filled


def diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """List the dotted keys whose values differ between two plain configs."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += diff(a, b, prefix + key + ".")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed


__all__ = [
    "CHANGEABLE_KEYS",
    "ConfigError",
    "DataConfig",
    "OuterConfig",
    "RetrainConfig",
    "SearchConfig",
    "SelectConfig",
    "SpaceConfig",
    "StartConfig",
    "StudyConfig",
    "apply_override",
    "check_study_name",
    "diff",
    "from_dict",
    "load",
    "to_dict",
    "with_defaults",
    "with_overrides",
    "write",
    "without_changeable",
]
