"""Source streams in layers: a snapshot scan, and a watch buffered from a revision.

``scan`` reads a prefix page by page, pinned to one revision for a consistent snapshot; if that
revision is compacted mid-way it goes on from the same key at the newest revision instead of
failing. That is safe because of ``WatchBuffer``: the runner opens the watch at the snapshot's
revision + 1 *before* scanning, so every change after the snapshot reaches the destination later,
in order, whatever revision a page was read at. So a full sync never depends on the compaction
window, however long it takes.

``WatchBuffer`` keeps the watch's responses in a temporary file while nobody consumes them (the
full sync can take minutes; memory must not grow with the churn meanwhile), then, once the
consumer has caught up with the file, hands them over through a small in-memory queue.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from replicator.etcd import EtcdClient, EtcdCompacted, RangePage, WatchBatch, prefix_end
from replicator.observability import get_logger

log = get_logger("streams")

_FRAME = struct.Struct(">I")
_QUEUE = 256  # watch responses held in memory once the consumer keeps up


async def scan(
    source: EtcdClient, prefix: bytes, *, revision: int, page_size: int
) -> AsyncIterator[RangePage]:
    """Pages of ``prefix`` at ``revision``; at the newest revision once ``revision`` is compacted."""
    key, end, rev = prefix, prefix_end(prefix), revision
    nxt: asyncio.Task[RangePage] | None = None

    def fetch(start: bytes, at: int) -> asyncio.Task[RangePage]:
        return asyncio.ensure_future(source.range(start, end, revision=at, limit=page_size))

    try:
        nxt = fetch(key, rev)
        while True:
            try:
                page = await nxt
            except EtcdCompacted as exc:
                if rev == 0:
                    raise
                log.warning(
                    "snapshot revision %d compacted (at %d) during the scan of %s: continuing at the "
                    "newest revision; the buffered watch brings everything after the snapshot",
                    rev,
                    exc.compact_revision,
                    prefix.decode(errors="replace"),
                )
                rev = 0
                nxt = fetch(key, rev)
                continue
            nxt = None
            if page.more and page.kvs:
                key = page.kvs[-1].key + b"\0"
                nxt = fetch(key, rev)  # prefetch the next page while this one is processed
            yield page
            if nxt is None:
                return
    finally:
        if nxt is not None and not nxt.done():
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)


class WatchBuffer:
    """The source's watch from ``start_revision``, spilled to disk until consumed."""

    def __init__(
        self, source: EtcdClient, prefix: bytes, *, start_revision: int, spill_dir: Path | None
    ) -> None:
        self.start_revision = start_revision
        self._file = tempfile.TemporaryFile(dir=spill_dir, prefix="watch-spill-")  # noqa: SIM115 - closed in close()
        self._write_pos = 0
        self._read_pos = 0
        self._spilled = 0
        self._spilling = True
        self._queue: asyncio.Queue[WatchBatch | BaseException] = asyncio.Queue(maxsize=_QUEUE)
        self._new = asyncio.Event()
        self._error: BaseException | None = None
        self._task = asyncio.create_task(self._run(source, prefix), name="watch-buffer")

    async def _run(self, source: EtcdClient, prefix: bytes) -> None:
        try:
            async for batch in source.watch(
                prefix, prefix=True, start_revision=self.start_revision, prev_kv=True, progress_notify=True
            ):
                if batch.compact_revision:
                    raise EtcdCompacted(batch.compact_revision)
                if self._spilling:
                    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
                    self._file.seek(self._write_pos)
                    self._file.write(_FRAME.pack(len(data)) + data)
                    self._write_pos += _FRAME.size + len(data)
                    self._spilled += 1
                    self._new.set()
                else:
                    await self._queue.put(batch)
        except BaseException as exc:  # handed to the consumer, which decides
            self._error = exc
            self._new.set()
            if not self._spilling:
                await self._queue.put(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    @property
    def spilled(self) -> int:
        return self._spilled

    async def batches(self) -> AsyncIterator[WatchBatch]:
        while self._spilling:
            if self._read_pos < self._write_pos:
                self._file.seek(self._read_pos)
                (size,) = _FRAME.unpack(self._file.read(_FRAME.size))
                batch = pickle.loads(self._file.read(size))
                self._read_pos += _FRAME.size + size
                yield batch
            elif self._error is not None:
                raise self._error
            else:
                self._spilling = False  # caught up: from now on, through memory
                self._file.close()
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if not self._file.closed:
            self._file.close()
