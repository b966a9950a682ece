"""Read the journal database directly (sqlite3 / psycopg), not through ``replicator.journal``."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=10) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]


def revisions_by_epoch(url: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for epoch, revision in query(url, "SELECT epoch_id, revision FROM revisions ORDER BY epoch_id, revision"):
        out[int(epoch)].append(int(revision))
    return dict(out)


def gaps(revisions: list[int], *, eventless: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    """Revisions missing between the first and last recorded one (ignoring ``eventless`` ones)."""
    if not revisions:
        return []
    have = set(revisions)
    return [r for r in range(revisions[0], revisions[-1] + 1) if r not in have and r not in eventless]
