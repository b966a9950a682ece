"""`replicator journal ...`: schema upgrades and audit queries on the journal.

``status`` answers "how far is the standby, and is the mirror alive": the checkpoint and its epoch,
the lag behind the source's head (only when ``--source-endpoints`` is given: the journal alone
does not know the head) and the seconds since the journal last recorded anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replicator.etcd import ClientConfig, EtcdClient
from replicator.journal import DecisionRow, Journal, default_url, upgrade

from .replay_cmd import add_window_arguments, window_from


def add_parser(sub: Any) -> None:
    p = sub.add_parser("journal", help="journal schema and audit queries")
    p.add_argument("--journal", help="SQLAlchemy URL (default: sqlite file in --state-dir)")
    p.add_argument("--state-dir", default=".replicator")
    js = p.add_subparsers(dest="journal_command", required=True, metavar="SUBCOMMAND")
    js.add_parser("upgrade", help="create or upgrade the journal's schema")
    status = js.add_parser("status", help="checkpoint, epoch, lag, counts, time since the last record")
    status.add_argument(
        "--source-endpoints", metavar="VALUE", help="also show the lag behind the source's head"
    )
    for name in ("cacert", "cert", "key", "user"):
        status.add_argument(f"--source-{name}", metavar="VALUE", help=f"source etcd {name} (as for run)")
    hist = js.add_parser("history", help="decisions about one key")
    hist.add_argument("key")
    hist.add_argument("--limit", type=int, default=50)
    by_rule = js.add_parser("rule", help="recent decisions made by one rule")
    by_rule.add_argument("rule")
    by_rule.add_argument("--limit", type=int, default=50)
    prune = js.add_parser(
        "prune", help="retention: drop decisions, revisions and kept values older than the checkpoint - N"
    )
    prune.add_argument("--keep-revisions", type=int, required=True, metavar="N")
    changes = js.add_parser("changes", help="copies and deletes in a revision or time window, oldest first")
    add_window_arguments(changes)
    changes.add_argument("--limit", type=int, default=10_000, help="at most this many lines")


def _url(args: argparse.Namespace) -> str:
    if args.journal:
        return str(args.journal)
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    return default_url(Path(args.state_dir))


async def _source_head(args: argparse.Namespace) -> int:
    def path(name: str) -> Path | None:
        value = getattr(args, f"source_{name}")
        return Path(value) if value else None

    config = ClientConfig(
        endpoints=tuple(e.strip() for e in args.source_endpoints.split(",") if e.strip()),
        cacert=path("cacert"),
        cert=path("cert"),
        key=path("key"),
        username=args.source_user,
        password=os.environ.get("REPLICATOR_SOURCE_PASSWORD") if args.source_user else None,
    )
    async with await EtcdClient.connect(config) as client:
        return (await client.status()).header.revision


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}"


def _status(journal: Journal, args: argparse.Namespace) -> None:
    st = journal.status()
    print(f"journal:     {st.url} (schema {st.schema_revision})")
    if st.checkpoint:
        cp = st.checkpoint
        print(f"checkpoint:  revision {cp.revision} (epoch {cp.epoch_id}, updated {_when(cp.updated_at)})")
    else:
        print("checkpoint:  none yet")
    if st.epoch:
        print(f"epoch:       {st.epoch.id} opened {_when(st.epoch.opened_at)} ({st.epoch.reason})")
    if args.source_endpoints:
        head = asyncio.run(_source_head(args))
        behind = f"{head - st.checkpoint.revision} revisions" if st.checkpoint else "unknown (no checkpoint)"
        print(f"lag:         {behind} (source head {head})")
    if st.last_recorded_at is not None:
        ago = (datetime.now(UTC) - st.last_recorded_at).total_seconds()
        print(f"last record: {ago:.0f} s ago ({_when(st.last_recorded_at)})")
    else:
        print("last record: never")
    print(f"decisions:   {st.decisions}\nrevisions:   {st.revisions}\nmanaged:     {st.managed_keys}")
    print(f"values kept: {st.values}")


def _line(r: DecisionRow) -> str:
    rule = f" [{r.rule}]" if r.rule else ""
    return f"{_when(r.recorded_at)} rev {r.revision:>8} {r.action:<6} {r.key}{rule}: {r.reason}"


def main(args: argparse.Namespace) -> int:
    url = _url(args)
    if args.journal_command == "upgrade":
        upgrade(url)
        print("journal schema is at head")
        return 0
    journal = Journal.open(url)
    try:
        if args.journal_command == "status":
            _status(journal, args)
            return 0
        if args.journal_command == "prune":
            print(f"pruned {journal.prune(keep_revisions=args.keep_revisions)} rows")
            return 0
        if args.journal_command == "changes":
            w = window_from(args)
            stream = journal.iter_changes(
                from_revision=w.from_revision, to_revision=w.to_revision, since=w.since, until=w.until
            )
            for shown, r in enumerate(stream):
                if shown == args.limit:
                    print("... (more; raise --limit or narrow the window)")
                    break
                print(_line(r))
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            return 0
        rows = (
            journal.key_history(args.key, limit=args.limit)
            if args.journal_command == "history"
            else journal.decisions_by_rule(args.rule, limit=args.limit)
        )
        for r in rows:
            print(_line(r))
        return 0
    finally:
        journal.close()
