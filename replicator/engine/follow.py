"""Watch phase: apply source changes in revision order, with the checkpoint in the same transaction.

A reader task moves watch responses into a bounded queue; the applier takes everything queued,
groups events by revision, and builds destination transactions that hold whole revisions where
they fit (a revision larger than one transaction is split, and the checkpoint only reaches it with
its last part). Transactions commit one at a time, in order, each moving the fenced checkpoint.

A namespace whose labels change re-evaluates every selected object in it at that revision. A
delete that arrives without its previous value is decided from what this replicator wrote (the
journal's managed keys), never from the value. Compaction surfaces as ``EtcdCompacted`` to the
runner, which starts a new epoch.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from replicator.etcd import EtcdUnavailable, Event, EventType, WatchBatch
from replicator.observability import get_logger

from .apply import Applier
from .context import Context
from .evaluate import is_crd, is_namespace
from .fence import HEARTBEAT
from .guard import StreamGuard
from .streams import WatchBuffer, scan
from .writer import DestWriter

log = get_logger("follow")

_QUEUE_BATCHES = 256  # watch responses buffered before the reader waits (bounds memory)
_IDLE_CHECKPOINT = 1.0  # seconds: how often a checkpoint-only transaction may be written
_QUIET = 5.0  # seconds without a watch response before asking the server for progress
_SILENT_LIMIT = 60.0  # seconds without any response, progress requests included: reconnect


class Follower:
    def __init__(self, ctx: Context, *, epoch_id: int, stream: WatchBuffer) -> None:
        self.ctx = ctx
        self.epoch_id = epoch_id
        self.stream = stream
        self.start_revision = stream.start_revision
        start_revision = stream.start_revision
        self.writer: DestWriter = ctx.writer(epoch_id=epoch_id, ordered=True)
        self.writer.completed_revision = start_revision - 1
        self.applier = Applier(evaluator=ctx.evaluator, sink=ctx.sink, writer=self.writer)
        self._last_checkpoint = time.monotonic()
        self.guard = StreamGuard(cluster_id=ctx.source_cluster_id, revision=start_revision - 1)
        self.queue: asyncio.Queue[WatchBatch] = asyncio.Queue(maxsize=_QUEUE_BATCHES)

    @property
    def committed(self) -> int:
        return self.writer.completed_revision

    async def run(self) -> None:
        """Follow until cancelled or an error (compaction, unavailability) ends the stream."""
        reader = asyncio.create_task(self._read(), name="watch-reader")
        quiet_since = time.monotonic()
        try:
            while True:
                get = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait(
                    {get, reader}, timeout=_QUIET, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    get.cancel()
                    await asyncio.gather(get, return_exceptions=True)
                    quiet_since = await self._quiet(quiet_since)
                    continue
                if get not in done:
                    get.cancel()
                    await asyncio.gather(get, return_exceptions=True)
                    reader.result()  # re-raise the reader's error
                    return
                quiet_since = time.monotonic()
                batches = [get.result()]
                while not self.queue.empty():
                    batches.append(self.queue.get_nowait())
                await self.step(batches)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _quiet(self, since: float) -> float:
        """No watch response for a while: ask for a progress notification; give up when silent."""
        silent = time.monotonic() - since
        if silent > _SILENT_LIMIT:
            raise EtcdUnavailable(f"watch stream silent for {silent:.0f}s, even to progress requests")
        if silent > _QUIET * 3:
            log.warning(
                "no watch response for %.0fs (%.0fs since the checkpoint moved)",
                silent,
                self.ctx.metrics.seconds_since_progress(),
                extra={"epoch": self.epoch_id},
            )
        await self.ctx.source.request_progress()
        await self.flush(force=False)
        return since

    async def _read(self) -> None:
        async for batch in self.stream.batches():
            await self.queue.put(batch)

    async def step(self, batches: list[WatchBatch]) -> None:
        """Apply a run of watch responses; the thin loop above is all that is not tested directly."""
        for b in batches:
            self.guard.check(b.header, b.events[0].kv.mod_revision if b.events else None)
            if b.events:
                self.guard.revision = b.events[-1].kv.mod_revision
        events = [e for b in batches for e in b.events]
        # A progress notification says every event up to its revision was sent, so the checkpoint
        # may move there with no event of its own. Trusted only as the last response of a step:
        # etcd before 3.5.8 could send one ahead of an unsynced watcher's pending events.
        last = batches[-1]
        progress_to = last.header.revision if last.progress and not last.events else 0
        managed = await self.applier.managed_among(list({e.kv.key.decode() for e in events}))
        for revision, group in itertools.groupby(events, key=lambda e: e.kv.mod_revision):
            for event in group:
                await self._apply_event(event, revision=revision, managed=managed)
            self.writer.revision_done(revision)
            self.ctx.metrics.revisions += 1
        if progress_to > self.writer.completed_revision:
            self.writer.completed_revision = progress_to
        await self.flush(force=bool(self.writer.pending.ops))

    async def flush(self, *, force: bool) -> None:
        now = time.monotonic()
        force = force or now - self._last_checkpoint >= HEARTBEAT
        if not force and now - self._last_checkpoint < _IDLE_CHECKPOINT:
            return
        if not force and self.writer.checkpointed == self.writer.completed_revision:
            return
        await self.writer.submit(checkpoint=self.writer.completed_revision)
        self._last_checkpoint = now

    async def _apply_event(self, event: Event, *, revision: int, managed: set[str]) -> None:
        ev = self.ctx.evaluator
        kv = event.kv
        info = ev.parse(kv.key)
        if info is None:
            return  # allocator bitmaps, master leases: never mirrored, not worth a journal row each
        if event.type is EventType.DELETE:
            if is_namespace(info):
                ev.namespaces.remove(info.name)
            is_managed = _managed(self.writer.managed_state(info.key), info.key in managed)
            await self.applier.apply_delete(
                kv.key, revision=revision, managed=is_managed, reason="deleted on source"
            )
            _remember(managed, info.key, self.writer.managed_state(info.key))
            return
        if is_crd(info):
            ev.add_crd(info, kv.value)
        relabelled = False
        if is_namespace(info):
            labels = ev.namespace_labels_of(info, kv.value) or {}
            relabelled = ev.namespaces.set(info.name, labels) and event.prev_kv is not None
        verdict = await self.applier.evaluate(kv, info)
        is_managed = _managed(self.writer.managed_state(info.key), info.key in managed)
        await self.applier.apply_one(kv, verdict, managed=is_managed, revision=revision)
        _remember(managed, info.key, self.writer.managed_state(info.key))
        if relabelled:
            await self._reevaluate_namespace(info.name, revision=revision)

    async def _reevaluate_namespace(self, namespace: str, *, revision: int) -> None:
        """A namespace's labels changed: every selected object in it may enter or leave scope."""
        ev = self.ctx.evaluator
        count = 0
        for rt in ev.types_for():
            if not rt.namespaced:
                continue
            prefix = ev.catalog.key_prefix(rt, namespace).encode()
            async for page in scan(
                self.ctx.source, prefix, revision=revision, page_size=self.ctx.settings.page_size
            ):
                await self.applier.apply_kvs(page.kvs, revision=revision)
                count += len(page.kvs)
        log.info(
            "namespace %s relabelled: re-evaluated %d objects",
            namespace,
            count,
            extra={"epoch": self.epoch_id, "revision": revision},
        )


def _managed(in_flight: bool | None, journaled: bool) -> bool:
    return journaled if in_flight is None else in_flight


def _remember(managed: set[str], key: str, decided: bool | None) -> None:
    """Keep the step's managed set current: the writer's in-flight entry for ``key`` may be gone
    (journaled) before a later event of the same step asks about it."""
    if decided is True:
        managed.add(key)
    elif decided is False:
        managed.discard(key)
