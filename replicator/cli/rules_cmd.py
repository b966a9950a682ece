"""`replicator rules check FILE` and `replicator rules explain`: rule files without a cluster."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from replicator.config import Settings
from replicator.engine import preview
from replicator.engine.preview import explain
from replicator.engine.runner import client_config
from replicator.etcd import EtcdClient
from replicator.kube.resources import builtin_kubernetes_version, stored_version
from replicator.rules import RuleSet, denylist_entries, load_rules

from .options import add_run_arguments, settings_from


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rules", help="check a rule file, list the built-in deny-list")
    rs = p.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rs.add_parser("check", help="load a rule file and print its phases")
    check.add_argument("file")
    rs.add_parser("denylist", help="what is never mirrored unless a rule file opts it in")
    explain = rs.add_parser("explain", help="why one key is in or out of scope, read from the source")
    explain.add_argument("--key", required=True, help="the etcd key, e.g. /registry/secrets/ns/name")
    add_run_arguments(explain)


def main(args: argparse.Namespace) -> int:
    if args.rules_command == "explain":
        settings = settings_from(args, need_dest=False)
        return asyncio.run(_explain(settings, args.key))
    if args.rules_command == "check":
        rules = load_rules(args.file)
        print(f"{args.file}: {len(rules.rules)} rules, OK")
        for number, phase in enumerate(rules.phases(), start=1):
            print(f"phase {number}:")
            for rule in phase:
                kinds = ", ".join(str(m) for m in rule.resources)
                print(f"  {rule.id}: {kinds}")
        for warning in version_warnings(rules):
            print(f"warning: {warning}")
        return 0
    for entry in denylist_entries():
        print(entry.describe())
    print(
        "\nA rule file lifts an entry only explicitly, per kind: `optIn: [{group: ..., kind: ...}]`.\n"
        "Never copied at all: keys outside the prefix, allocator bitmaps (ranges/*), apiserver leases\n"
        "(masterleases/*, peerserverleases/*), and any key attached to an etcd lease."
    )
    return 0


def version_warnings(rules: RuleSet) -> list[str]:
    """Pinned versions that are not what the target release stores (objects would be missed)."""
    out = []
    for rule in rules.rules:
        for m in rule.resources:
            if not m.pin_version or m.version is None or "*" in m.kind:
                continue
            stored = stored_version(m.group, m.kind)
            if stored is not None and stored != m.version:
                out.append(
                    f"{rule.id}: pins {m.kind} to {m.version}, but Kubernetes {builtin_kubernetes_version()} "
                    f"stores it as {stored}: objects at other versions will not match"
                )
    return out


async def _connected(settings: Settings) -> EtcdClient:
    return await EtcdClient.connect(client_config(settings.source, settings))


async def _explain(settings: Settings, key: str) -> int:
    source = await _connected(settings)
    try:
        ev, exists = await explain(settings, source, key)
    finally:
        await source.close()
    what = (
        f"{ev.info.resource.kind or ev.info.resource.resource} {ev.info.namespace or ''}/{ev.info.name}"
        if ev.info
        else key
    )
    print(f"{key}: {ev.verdict.value}")
    print(f"  object:  {what}{'' if exists else ' (not on the source)'}")
    print(f"  reason:  {ev.reason}")
    if ev.rule:
        print(f"  rule:    {ev.rule}")
    return 0


async def dry_run(settings: Settings) -> int:
    source = await _connected(settings)
    try:
        report = await preview.dry_run(settings, source)
    finally:
        await source.close()
    print(
        f"dry run at source revision {report.revision}: "
        + ", ".join(f"{n} {v}" for v, n in sorted(report.verdicts.items()))
        + " (nothing written)"
    )
    print("\nper rule (copied):")
    for rule, n in sorted(report.by_rule.items()):
        print(f"  {n:>8}  {rule}")
    print("\nper resource:")
    for (resource, verdict), n in sorted(report.by_resource.items()):
        print(f"  {n:>8}  {verdict:<5} {resource}")
    if report.failures:
        print("\nvalues that cannot be read (first 100):")
        for key, reason in report.failures:
            print(f"  {key}: {reason}")
    return 0
