"""``globaldarts list``, ``fork`` and ``delete``: the studies of a root or a storage."""

from __future__ import annotations

import argparse

from pipeline.cli.options import artifacts_options, set_options, storage_options
from pipeline.config import ConfigError


class List:
    name = "list"
    help = "list the studies under --root (or in --storage)"
    parents = (storage_options,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer.catalog import list_studies

        listings = list_studies(root=args.root, storage=args.storage)
        if not listings:
            print(f"no studies under {args.root}" if args.storage is None else "no studies")
        for study in listings:
            if study.problem is not None:
                print(f"{study.name:30} unreadable: {study.problem}")
                continue
            states = ", ".join(f"{n} {state.lower()}" for state, n in study.states.items())
            best = "-" if study.best is None else f"{study.best:.2f} %"
            print(f"{study.name:30} {study.space:6} {study.sampler:7} best {best:9} "
                  f"{study.spent}/{study.budget} {study.unit}  ({states or 'no trials'})")
        return 0


class Fork:
    name = "fork"
    help = "start a new study from another's settings (and its trials, for CMA-ES)"
    parents = (set_options, storage_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", help="the study to fork")
        parser.add_argument("new", help="the new study's name (ROOT/NEW.toml is written)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer.catalog import fork_study

        fork = fork_study(args.study, args.new, args.set, root=args.root,
                          storage=args.storage)
        print(f"study file     {fork.path}")
        print(f"warm start     {fork.warm} complete trials of {args.study}" if fork.warm else
              f"warm start     none: {fork.why_not}")
        print(f"next           globaldarts search {fork.path}"
              + ("" if args.storage is None else " --storage URL"))
        return 0


class Delete:
    name = "delete"
    help = "delete a study and its folder (its study file stays)"
    parents = (storage_options, artifacts_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", help="the study to delete")
        parser.add_argument("--yes", action="store_true",
                            help="really delete it: its trials, checkpoints and artifacts")
        parser.add_argument("--force", action="store_true",
                            help="delete it even while a worker runs it (that worker stops)")

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.config import check_study_name
        from pipeline.outer.catalog import delete_study

        check_study_name(args.study)
        if not args.yes:
            raise ConfigError(f"deleting study {args.study!r} removes its trials, checkpoints "
                              "and artifacts for good; add --yes to do it")
        deleted = delete_study(args.study, root=args.root, storage=args.storage,
                               artifacts=args.artifacts, force=args.force)
        print(f"deleted        study {args.study} ({deleted.trials} trials)"
              + ("" if deleted.folder is None else f" and its folder {deleted.folder}"))
        for note in deleted.notes:
            print(f"note           {note}")
        return 0
