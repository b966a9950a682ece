"""`replicator rules check FILE` and `replicator rules explain`: rule files without a cluster."""

from __future__ import annotations

import argparse
from typing import Any

from replicator.rules import denylist_entries, load_rules


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rules", help="check a rule file, list the built-in deny-list")
    rs = p.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rs.add_parser("check", help="load a rule file and print its phases")
    check.add_argument("file")
    rs.add_parser("denylist", help="what is never mirrored unless a rule file opts it in")


def main(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        rules = load_rules(args.file)
        print(f"{args.file}: {len(rules.rules)} rules, OK")
        for number, phase in enumerate(rules.phases(), start=1):
            print(f"phase {number}:")
            for rule in phase:
                kinds = ", ".join(str(m) for m in rule.resources)
                print(f"  {rule.id}: {kinds}")
        return 0
    for entry in denylist_entries():
        print(entry.describe())
    return 0
