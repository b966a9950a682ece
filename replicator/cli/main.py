"""The `replicator` command: argument parsing, signals, and one clear line per error.

Exit codes: 0 done, 1 the mirror stopped on an error, 2 bad input (flag, rule file, config),
130 interrupted. Nothing below this module reads argv or the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from replicator import __version__
from replicator.config import Settings, describe
from replicator.engine import runner
from replicator.errors import ConfigError, JournalSchemaError, ReplicatorError
from replicator.observability import setup_logging

from . import journal_cmd, replay_cmd, rules_cmd, verify_cmd
from .options import add_run_arguments, settings_from


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="replicator", description="Mirror a Kubernetes cluster's etcd into a standby."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="full sync, then follow the source's watch")
    add_run_arguments(run)
    run.add_argument("--print-config", action="store_true", help="print the effective settings and exit")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="evaluate the whole source against the rules and print counts; write nothing",
    )

    demo = sub.add_parser(
        "demo", help="run the mirror on two local etcd servers with a small realistic cluster"
    )
    demo.add_argument("--keep", action="store_true", help="leave the servers' directory in place")

    journal_cmd.add_parser(sub)
    rules_cmd.add_parser(sub)
    verify_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "demo":
            from .demo import run_demo

            setup_logging(fmt="text")
            return run_demo(keep=args.keep)
        if args.command == "journal":
            return journal_cmd.main(args)
        if args.command == "rules":
            return rules_cmd.main(args)
        if args.command == "verify":
            return verify_cmd.main(args)
        if args.command == "replay":
            return replay_cmd.main(args)
    except (ConfigError, JournalSchemaError) as exc:
        print(f"replicator: {exc}", file=sys.stderr)
        return 2
    except ReplicatorError as exc:
        print(f"replicator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args, need_dest=not args.dry_run)
    if args.print_config:
        print(describe(settings))
        return 0
    setup_logging(debug=settings.debug, fmt=settings.log_format)
    if args.dry_run:
        return asyncio.run(rules_cmd.dry_run(settings))
    return asyncio.run(_run_async(settings))


async def _run_async(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    result = await runner.run(settings, stop=stop)
    where = (
        f"stopped at source revision {result.revision}"
        if result.revision >= 0
        else "stopped before the full sync completed (the next start syncs again)"
    )
    print(
        f"{where} (epoch {result.epoch_id}): "
        f"{result.metrics['keys_copied']} copied, {result.metrics['keys_skipped']} skipped, "
        f"{result.metrics['keys_deleted']} deleted, {result.metrics['keys_failed']} failed",
        file=sys.stderr,
    )
    return 0
