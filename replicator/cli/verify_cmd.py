"""`replicator verify`: is the standby what the rules say it should be, at the revision it reached?"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from replicator.engine.verify import VerifyImpossible, report_lines, verify
from replicator.observability import setup_logging

from .options import add_run_arguments, settings_from

DESCRIPTION = """\
Reads the destination checkpoint (source revision R), reads the source AT R with the same rules,
and compares key by key with the destination. Prints missing, different and extra keys (keys
only, never values); exit 0 when there is no drift, 1 on drift, 2 when it cannot compare (no
checkpoint, R compacted on the source, a different source). Extra means a key this replicator
wrote that is not in scope at R; keys the standby holds on its own are never reported.
"""

REPAIR_HELP = (
    "fix the drift: write missing/different values as the source held them at R, delete extra "
    "managed keys, journal each fix (reason 'verify --repair'), then compare again. Only while NO "
    "replicator runs against this destination (a running one makes the fenced writes stop)"
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="compare the destination with the source at the destination's checkpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(p)
    p.add_argument("--repair", action="store_true", help=REPAIR_HELP)


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    setup_logging(debug=settings.debug, fmt=settings.log_format)
    try:
        result = asyncio.run(verify(settings, fix=args.repair))
    except VerifyImpossible as exc:
        print(f"replicator verify: {exc}", file=sys.stderr)
        return 2
    for line in report_lines(result.drift):
        print(line)
    final = result.drift
    if result.after_repair is not None:
        print("repaired; compared again:")
        for line in report_lines(result.after_repair):
            print(line)
        final = result.after_repair
    return 0 if final.clean else 1
