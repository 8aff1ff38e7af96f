"""``globaldarts evaluate``: measure a cell: its evaluation network's size, its ground truth
in a table, or its test accuracy trained from scratch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.options import (
    add_moved,
    device_options,
    pick_device,
    set_options,
    show_progress,
    storage_options,
)
from pipeline.config import ConfigError

if TYPE_CHECKING:
    from pipeline.config import StudyConfig
    from pipeline.spaces import Genotype

# Options that became study settings, and the override that replaces each.
MOVED = {"--dataset": "--set data.dataset=NAME", "--data-root": "--set data.root=FOLDER",
         "--download": "--set data.download=true", "--epochs": "--set retrain.epochs=N",
         "--batch-size": "--set retrain.batch_size=N", "--lr": "--set retrain.lr=X",
         "--channels": "--set retrain.channels=N", "--cells": "--set retrain.cells=N",
         "--seed": "--set seed=N"}


class Evaluate:
    name = "evaluate"
    help = "measure a cell"
    parents = (set_options, device_options, storage_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--genotype", required=True,
                            help="an NB201 cell string, a DARTS Genotype(...) literal, or "
                                 "STUDY[:TRIAL] (that study's settings apply)")
        parser.add_argument("--count-params", action="store_true",
                            help="print the evaluation network's parameters without training")
        parser.add_argument("--nb201-table", help="look the cell up in a NAS-Bench-201 "
                                                  "ground-truth CSV (arch_str, <dataset>_test)")
        parser.add_argument("--out", default="evaluations",
                            help="folder of training checkpoints (a rerun resumes)")
        add_moved(parser, MOVED)

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.config import with_overrides
        from pipeline.results.ground_truth import count_params, load_table, lookup
        from pipeline.spaces import space_of

        genotype, config = _cell(args.genotype, args)
        config = with_overrides(config, args.set)
        print(f"cell           {genotype.to_str()}")
        if not (args.count_params or args.nb201_table):
            return _retrain(genotype, config, args)
        params = count_params(genotype)
        print("params (M)     " + "  ".join(f"{k} {v:.6f}" for k, v in params.items())
              + f"   ({space_of(genotype).network_description})")
        if args.nb201_table:
            score = lookup(load_table(args.nb201_table), genotype)
            print("test acc (%)   " + "  ".join(f"{k} {v:.2f}" for k, v in score.items())
                  + f"   (ground truth: {args.nb201_table})")
        return 0


def _cell(spec: str, args: argparse.Namespace) -> tuple[Genotype, StudyConfig]:
    """A cell and the settings to train it with: a cell's text form (CIFAR-10 and its
    space's protocol), or ``STUDY[:TRIAL]`` for a study's best (or given) cell and that
    study's settings."""
    from pipeline.config import DataConfig, StudyConfig
    from pipeline.outer import trial_cells
    from pipeline.outer.study import stored_config
    from pipeline.spaces import SPACES, parse_genotype

    if any(space.claims(spec) for space in SPACES.values()):
        return parse_genotype(spec), StudyConfig(name="evaluate",
                                                 data=DataConfig(dataset="cifar10"))
    name, _, number = spec.partition(":")
    if number and not number.isdigit():
        raise ConfigError(f"--genotype {spec!r}: a trial number must follow the colon")
    (trial, cell), *_ = trial_cells(name, trial=int(number) if number else None,
                                    root=args.root, storage=args.storage)
    return parse_genotype(cell), stored_config(name, root=args.root, storage=args.storage)


def _retrain(genotype: Genotype, config: StudyConfig, args: argparse.Namespace) -> int:
    """Train the cell's evaluation network from scratch and print its test accuracy."""
    from pipeline.results.retrain import (
        evaluation_checkpoint,
        evaluation_key,
        result_path,
        retrain_cell,
    )
    from pipeline.search.training import train_settings

    settings = train_settings(config, genotype)
    checkpoint = evaluation_checkpoint(Path(args.out), config, genotype)
    result = retrain_cell(config, genotype, device=pick_device(args.device),
                          checkpoint=checkpoint, progress=show_progress(args),
                          key=evaluation_key(config, genotype))
    if result.resumed_after:
        print(f"resumed        after epoch {result.resumed_after} of {result.epochs}, from "
              f"{checkpoint}")
    print(f"test acc (%)   {result.test_acc:.2f}   ({config.data.dataset} test split, "
          f"{result.epochs} epochs from scratch)")
    if result.at_chance:
        print(f"warning        within a point of chance ({100 / result.classes:.2f} % for "
              f"{result.classes} classes): the network learned next to nothing (too few "
              "epochs, or a cell cut off from its input?)")
    print(f"params (M)     {result.params_m:.6f}   (C={settings.channels}, "
          f"{settings.cells} cells)")
    print(f"result         {result_path(checkpoint)}")
    return 0
