"""`replicator replay`: re-apply the journal's copies and deletes in a window to a destination."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from replicator.engine.replay import ReplayResult, Step, Window, replay
from replicator.errors import ConfigError
from replicator.observability import setup_logging

from .options import add_run_arguments, settings_from

DESCRIPTION = """\
Re-applies the copy and delete decisions the journal holds for a window of source revisions
(--from-revision/--to-revision, inclusive) or of journal times (--since/--until, ISO 8601, UTC
unless an offset is given) to the destination, in the order the mirror applied them, in batched
transactions. Values come from the source's history at each decision's revision; once compacted
there, from the values the journal kept (`run --journal-values`), exactly as etcd stored them.
A value available from neither is listed by key and the exit code is 1. Run it while no
replicator writes the destination; the destination checkpoint is never moved.
"""


def iso_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-03T17:00:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-revision", type=int, default=0, metavar="REV", help="first source revision")
    p.add_argument("--to-revision", type=int, default=None, metavar="REV", help="last source revision")
    p.add_argument("--since", type=iso_time, default=None, metavar="TIME", help="journaled at or after")
    p.add_argument("--until", type=iso_time, default=None, metavar="TIME", help="journaled before")


def window_from(args: argparse.Namespace) -> Window:
    if args.to_revision is not None and args.to_revision < args.from_revision:
        raise ConfigError("--to-revision: must not be below --from-revision")
    return Window(args.from_revision, args.to_revision, args.since, args.until)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="re-apply journaled changes in a revision or time window to a destination",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(p)
    add_window_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be done; write nothing")


def step_line(step: Step, *, dry_run: bool) -> str:
    verb = f"would {step.action}" if dry_run else step.action
    if step.origin == "unavailable":
        return f"UNAVAILABLE rev {step.revision:>8} {step.key}: {step.detail}"
    origin = f" (value from the {step.origin})" if step.action == "copy" else ""
    return f"{verb:<12} rev {step.revision:>8} {step.key}{origin}"


def summary(result: ReplayResult, *, dry_run: bool) -> str:
    done = "would replay" if dry_run else "replayed"
    return (
        f"{done} {result.copies} copies ({result.from_source} from the source, {result.from_journal} "
        f"from the journal) and {result.deletes} deletes in {result.txns} transactions; "
        f"{len(result.unavailable)} unavailable"
    )


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    window = window_from(args)
    setup_logging(debug=settings.debug, fmt=settings.log_format)

    def show(step: Step) -> None:
        if args.dry_run or step.origin == "unavailable":
            print(step_line(step, dry_run=args.dry_run))

    result = asyncio.run(replay(settings, window, dry_run=args.dry_run, on_step=show))
    print(summary(result, dry_run=args.dry_run))
    return 0 if result.complete else 1
