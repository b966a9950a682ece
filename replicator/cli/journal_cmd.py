"""`replicator journal ...`: schema upgrades and audit queries on the journal."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from replicator.journal import Journal, default_url, upgrade


def add_parser(sub: Any) -> None:
    p = sub.add_parser("journal", help="journal schema and audit queries")
    p.add_argument("--journal", help="SQLAlchemy URL (default: sqlite file in --state-dir)")
    p.add_argument("--state-dir", default=".replicator")
    js = p.add_subparsers(dest="journal_command", required=True, metavar="SUBCOMMAND")
    js.add_parser("upgrade", help="create or upgrade the journal's schema")
    js.add_parser("status", help="checkpoint, epoch, counts")
    hist = js.add_parser("history", help="decisions about one key")
    hist.add_argument("key")
    hist.add_argument("--limit", type=int, default=50)
    by_rule = js.add_parser("rule", help="recent decisions made by one rule")
    by_rule.add_argument("rule")
    by_rule.add_argument("--limit", type=int, default=50)


def _url(args: argparse.Namespace) -> str:
    if args.journal:
        return str(args.journal)
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    return default_url(Path(args.state_dir))


def main(args: argparse.Namespace) -> int:
    url = _url(args)
    if args.journal_command == "upgrade":
        upgrade(url)
        print("journal schema is at head")
        return 0
    journal = Journal.open(url)
    try:
        if args.journal_command == "status":
            st = journal.status()
            print(f"journal:     {st.url} (schema {st.schema_revision})")
            if st.checkpoint:
                print(
                    f"checkpoint:  revision {st.checkpoint.revision} (epoch {st.checkpoint.epoch_id}, "
                    f"updated {st.checkpoint.updated_at:%Y-%m-%d %H:%M:%S})"
                )
            if st.epoch:
                opened = f"{st.epoch.opened_at:%Y-%m-%d %H:%M:%S}"
                print(f"epoch:       {st.epoch.id} opened {opened} ({st.epoch.reason})")
            print(f"decisions:   {st.decisions}\nrevisions:   {st.revisions}\nmanaged:     {st.managed_keys}")
            return 0
        rows = (
            journal.key_history(args.key, limit=args.limit)
            if args.journal_command == "history"
            else journal.decisions_by_rule(args.rule, limit=args.limit)
        )
        for r in rows:
            rule = f" [{r.rule}]" if r.rule else ""
            when = f"{r.recorded_at:%Y-%m-%d %H:%M:%S}"
            print(f"{when} rev {r.revision:>8} {r.action:<6} {r.key}{rule}: {r.reason}")
        return 0
    finally:
        journal.close()
