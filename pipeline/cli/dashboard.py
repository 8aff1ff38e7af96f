"""``globaldarts dashboard``: a study in optuna-dashboard."""

from __future__ import annotations

import argparse
import ipaddress
import logging

from pipeline.cli.options import DEFAULT_STUDY, artifacts_options, storage_options, whole_number
from pipeline.config import ConfigError

logger = logging.getLogger(__name__)
EXPOSE_HELP = ("listen on a --host other than this machine: optuna-dashboard's API has no "
               "authentication and can change and delete studies, so it is then served "
               "read-only, to anyone who can reach it")


class Dashboard:
    name = "dashboard"
    help = "open a study in optuna-dashboard"
    parents = (storage_options, artifacts_options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", default=DEFAULT_STUDY, help="study name")
        parser.add_argument("--port", type=whole_number(1, 65535), default=8080,
                            help="default: 8080")
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: this machine only)")
        parser.add_argument("--expose", action="store_true", help=EXPOSE_HELP)

    def run(self, args: argparse.Namespace) -> int:
        from pipeline.outer import load_study
        from pipeline.results.dashboard import serve_dashboard

        remote = not _loopback(args.host)
        if remote and not args.expose:
            raise ConfigError(f"--host {args.host} serves the dashboard beyond this machine, "
                              "and its API has no authentication; add --expose to serve it "
                              "read-only there")
        load_study(args.name, root=args.root, storage=args.storage)
        if remote:
            logger.warning("serving study %s read-only on %s to anyone who can reach it: "
                           "optuna-dashboard has no authentication", args.name, args.host)
        print(f"optuna-dashboard for study {args.name}: "
              f"http://{args.host}:{args.port}/dashboard/", flush=True)
        serve_dashboard(args.name, root=args.root, storage=args.storage,
                        artifacts=args.artifacts, host=args.host, port=args.port,
                        read_only=remote)
        return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
