"""The journal, seen from the event loop: calls run on dedicated worker threads.

Writes (records, epochs, runs) go to one thread, in submission order. Managed-key lookups go to
a second thread so they do not queue behind records: what they cannot see yet (decisions still
on their way to the journal) the writer's overlay answers. The event loop never blocks on the
database.
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
        self._reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-read")

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def read(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    async def record(self, batch: JournalBatch) -> None:
        """Record after the destination committed: an unreachable database is waited for, not fatal."""
        await retrying(journal_policy(), lambda: self.call(lambda: self.journal.record(batch)))

    async def managed(self, keys: Sequence[str]) -> dict[str, ManagedKey]:
        if not keys:
            return {}
        found: dict[str, ManagedKey] = await retrying(
            journal_policy(), lambda: self.read(lambda: self.journal.managed(keys))
        )
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self.journal.close()
