"""The journal, seen from the event loop: every call runs on one dedicated worker thread.

One thread keeps the journal's calls in submission order (a lookup submitted after a record sees
that record) and keeps SQLite's connection on the thread that made it. The event loop never
blocks on the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TypeVar

from replicator.journal import Journal, JournalBatch, ManagedKey

from .retry import journal_policy, retrying

T = TypeVar("T")


class JournalSink:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def record(self, batch: JournalBatch) -> None:
        """Record after the destination committed: an unreachable database is waited for, not fatal."""
        await retrying(journal_policy(), lambda: self.call(lambda: self.journal.record(batch)))

    async def managed(self, keys: Sequence[str]) -> dict[str, ManagedKey]:
        if not keys:
            return {}
        found: dict[str, ManagedKey] = await retrying(
            journal_policy(), lambda: self.call(lambda: self.journal.managed(keys))
        )
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.journal.close()
