"""Batched, fenced writes to the destination, each transaction journaled after it commits.

Operations accumulate in a ``Pending`` batch bounded by ``max_txn_ops`` and ``max_txn_bytes``;
a full batch becomes one destination transaction. Every transaction carries a compare on the
checkpoint key's mod_revision (the *fence*): a second replicator that wrote the checkpoint makes
our compare fail and we stop instead of interleaving. Transactions that also move the checkpoint
(watch phase, end of full sync) are applied one at a time, in source order; the full sync's
transactions do not touch the checkpoint, so several can be in flight under the same fence.

Ordered transactions go through a pipeline: the caller builds the next batch while a committer
task applies the previous one and a journaler task records the one before (each stage in order,
queues bounded). Keys whose managed state is decided but not journaled yet live in ``overlay``,
which every managed-key lookup consults first; an entry leaves it when its batch is journaled.

A transaction the server refuses as too large is split in halves; a single operation that is too
large on its own is journaled as failed (by key) and dropped, not retried forever.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from replicator.etcd import (
    Delete,
    EtcdClient,
    EtcdRequestTooLarge,
    EtcdTooManyOps,
    Put,
)
from replicator.journal import DecisionRecord, JournalBatch, ManagedKey
from replicator.observability import Metrics, get_logger

from .fence import Fence
from .retry import etcd_policy
from .sink import JournalSink

log = get_logger("writer")
T = TypeVar("T")

_OP_OVERHEAD = 16  # protobuf framing per operation, bytes
_JOURNAL_ONLY_FLUSH = 2000  # decisions without destination work are journaled in chunks this big
_ORDERED_QUEUE = 2  # batches waiting for the committer (built while the previous one commits)
_JOURNAL_QUEUE = 16  # committed batches waiting to be journaled


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


@dataclass(slots=True)
class Pending:
    seq: int = 0
    ops: dict[bytes, Put | Delete] = field(default_factory=dict)
    nbytes: int = 0
    decisions: list[DecisionRecord] = field(default_factory=list)
    upserts: dict[str, ManagedKey] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    revisions: list[int] = field(default_factory=list)
    values: list[tuple[str, int, bytes]] = field(default_factory=list)  # kept source values (opt-in)

    def size_of(self, key: bytes, value: bytes) -> int:
        return len(key) + len(value) + _OP_OVERHEAD

    def add_put(self, key: bytes, value: bytes, managed: ManagedKey) -> None:
        self._drop(key)
        self.ops[key] = Put(key, value)
        self.nbytes += self.size_of(key, value)
        self.upserts[managed.key] = managed
        self.deletes.discard(managed.key)

    def add_delete(self, key: bytes) -> None:
        self._drop(key)
        self.ops[key] = Delete(key)
        self.nbytes += self.size_of(key, b"")
        skey = key.decode()
        self.upserts.pop(skey, None)
        self.deletes.add(skey)

    def _drop(self, key: bytes) -> None:
        old = self.ops.pop(key, None)
        if old is not None:
            self.nbytes -= self.size_of(key, old.value if isinstance(old, Put) else b"")

    def empty(self) -> bool:
        return not self.ops and not self.decisions and not self.revisions


class DestWriter:
    def __init__(
        self,
        *,
        dest: EtcdClient,
        sink: JournalSink,
        fence: Fence,
        metrics: Metrics,
        epoch_id: int,
        source_cluster_id: int,
        max_ops: int,
        max_bytes: int,
        inflight: int,
        ordered: bool = False,
        keep_values: bool = False,
    ) -> None:
        self.dest = dest
        self.sink = sink
        self.fence = fence
        self.metrics = metrics
        self.epoch_id = epoch_id
        self.source_cluster_id = source_cluster_id
        self.max_ops = max_ops - 1  # one operation of every transaction is reserved for the checkpoint
        self.max_bytes = max_bytes
        self.ordered = ordered
        self.keep_values = keep_values
        self.checkpointed = 0  # last revision whose checkpoint transaction is committed and journaled
        self.completed_revision = 0  # ordered mode: last source revision whose events are all in batches
        self.overlay: dict[str, tuple[bool, int]] = {}
        """key -> (managed?, batch seq) for decisions not journaled yet."""
        self._seq = 0
        self.pending = self._new_pending()
        self._slots = asyncio.Semaphore(inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ordered: asyncio.Queue[tuple[Pending, int, str]] = asyncio.Queue(maxsize=_ORDERED_QUEUE)
        self._journal: asyncio.Queue[tuple[JournalBatch, Pending, int | None]] = asyncio.Queue(
            maxsize=_JOURNAL_QUEUE
        )
        self._workers: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None

    def _new_pending(self) -> Pending:
        self._seq += 1
        return Pending(seq=self._seq)

    # -- building batches -------------------------------------------------------------------

    def managed_state(self, key: str) -> bool | None:
        """Whether ``key`` is managed per decisions not journaled yet; None: ask the journal."""
        entry = self.overlay.get(key)
        return None if entry is None else entry[0]

    def revision_done(self, revision: int) -> None:
        """Ordered mode: every event of ``revision`` is in a batch; the checkpoint may reach it."""
        self.pending.revisions.append(revision)
        if revision <= self.completed_revision:
            # Events below a progress notification's revision (etcd < 3.5.8 sends them early):
            # applied now, and the checkpoint never moves back.
            log.warning("watch event at revision %d after progress to %d", revision, self.completed_revision)
        self.completed_revision = max(self.completed_revision, revision)

    async def _make_room(self, nbytes: int) -> None:
        if self.fits(1, nbytes):
            return
        if self.ordered:
            await self.submit(checkpoint=self.completed_revision)
        else:
            await self.submit()

    def fits(self, n_ops: int, n_bytes: int) -> bool:
        p = self.pending
        return not p.ops or (len(p.ops) + n_ops <= self.max_ops and p.nbytes + n_bytes <= self.max_bytes)

    async def put(
        self, key: bytes, value: bytes, *, record: DecisionRecord, rule: str | None, source_value: bytes
    ) -> None:
        """Write ``value``; ``source_value`` is what the source holds (kept when values are journaled)."""
        await self._make_room(self.pending.size_of(key, value))
        managed = ManagedKey(
            key=record.key, mod_revision=record.revision, value_digest=record.value_digest or "", rule=rule
        )
        p = self.pending
        p.add_put(key, value, managed)
        p.decisions.append(record)
        if self.keep_values:
            p.values = [v for v in p.values if v[0] != record.key]
            p.values.append((record.key, record.revision, source_value))
        self.overlay[record.key] = (True, p.seq)

    async def delete(self, key: bytes, *, record: DecisionRecord) -> None:
        await self._make_room(self.pending.size_of(key, b""))
        p = self.pending
        p.add_delete(key)
        p.decisions.append(record)
        p.values = [v for v in p.values if v[0] != record.key]
        self.overlay[record.key] = (False, p.seq)

    async def note(self, record: DecisionRecord) -> None:
        """A decision with no destination work (skip, fail, ignore): journaled with the next batch."""
        self.pending.decisions.append(record)
        if len(self.pending.decisions) >= _JOURNAL_ONLY_FLUSH and not self.pending.ops and not self.ordered:
            await self.submit()

    # -- committing ----------------------------------------------------------------------------

    async def submit(self, *, checkpoint: int | None = None, phase: str = "watching") -> None:
        """Send the pending batch. With ``checkpoint`` it is applied in order, after everything
        submitted before it (without waiting for it: ``drain`` does)."""
        self._raise_failure()
        batch, self.pending = self.pending, self._new_pending()
        if checkpoint is not None:
            if self._tasks:
                await self._wait_tasks()
            self._start_workers()
            await self._put(self._ordered, (batch, checkpoint, phase))
            return
        if batch.empty():
            return
        self._start_workers()
        await self._slots.acquire()
        task = asyncio.create_task(self._commit_released(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def finish(self, *, checkpoint: int | None = None, phase: str = "watching") -> None:
        """Submit what is pending (moving the checkpoint if given), wait for all of it, stop."""
        try:
            if checkpoint is not None or not self.pending.empty():
                await self.submit(checkpoint=checkpoint, phase=phase)
            await self.drain()
        finally:
            await self.close()

    async def drain(self) -> None:
        """Wait until everything submitted is committed and journaled; re-raise the first failure."""
        await self._wait_tasks()
        for queue in (self._ordered, self._journal):
            await self._until(queue.join())
        self._raise_failure()

    async def abort(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.close()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def _start_workers(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._committer(), name="dest-committer"),
                asyncio.create_task(self._journaler(), name="journaler"),
            ]

    async def _wait_tasks(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._raise_failure()

    async def _until(self, work: Awaitable[object]) -> None:
        """Await ``work`` unless a worker dies first (then its error is raised)."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, *self._workers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._raise_failure()

    async def _put(self, queue: asyncio.Queue[T], item: T) -> None:
        await self._until(queue.put(item))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _committer(self) -> None:
        while True:
            batch, checkpoint, phase = await self._ordered.get()
            try:
                await self._commit(batch, checkpoint=checkpoint, phase=phase)
            except BaseException as exc:
                self._failure = self._failure or exc
                raise
            finally:
                self._ordered.task_done()

    async def _journaler(self) -> None:
        while True:
            journal, batch, checkpoint = await self._journal.get()
            try:
                await self.sink.record(journal)
                self._journaled(batch, checkpoint)
            except BaseException as exc:
                self._failure = self._failure or exc
                raise
            finally:
                self._journal.task_done()

    def _journaled(self, batch: Pending, checkpoint: int | None) -> None:
        for key in (*batch.upserts, *batch.deletes):
            entry = self.overlay.get(key)
            if entry is not None and entry[1] == batch.seq:
                del self.overlay[key]
        self._count(batch)
        if checkpoint is not None:
            self.checkpointed = checkpoint
            self.metrics.progressed(checkpoint)

    async def _commit_released(self, batch: Pending) -> None:
        try:
            await self._commit(batch, checkpoint=None, phase="")
        finally:
            self._slots.release()

    async def _commit(self, batch: Pending, *, checkpoint: int | None, phase: str) -> None:
        ops: list[Put | Delete] = list(batch.ops.values())
        failed: list[str] = []
        if ops or checkpoint is not None:
            ckpt_put = None
            if checkpoint is not None:
                value = self.fence.value(
                    revision=checkpoint,
                    epoch=self.epoch_id,
                    source_cluster_id=self.source_cluster_id,
                    phase=phase,
                )
                ckpt_put = Put(self.fence.key, value)
            failed = await self._apply(ops, ckpt_put)
        if failed:
            bad = set(failed)
            batch.decisions = [
                replace(d, action="fail", reason="value exceeds the destination's request size limit")
                if d.key in bad and d.action in ("copy", "delete")
                else d
                for d in batch.decisions
            ]
            batch.values = [v for v in batch.values if v[0] not in bad]
            for k in bad:
                batch.upserts.pop(k, None)
                batch.deletes.discard(k)
                if (entry := self.overlay.get(k)) is not None and entry[1] == batch.seq:
                    del self.overlay[k]  # not written after all: the journal's state stands
        journal = JournalBatch(
            epoch_id=self.epoch_id,
            decisions=batch.decisions,
            revisions=batch.revisions,
            managed_upserts=list(batch.upserts.values()),
            managed_deletes=sorted(batch.deletes),
            checkpoint=checkpoint,
            source_cluster_id=self.source_cluster_id,
            values=batch.values,
        )
        await self._put(self._journal, (journal, batch, checkpoint))

    def _count(self, batch: Pending) -> None:
        m = self.metrics
        for d in batch.decisions:
            if d.action == "copy":
                m.keys_copied += 1
                m.bytes_written += d.value_size or 0
                if d.rule:
                    m.count_rule(d.rule)
            elif d.action == "delete":
                m.keys_deleted += 1
            elif d.action == "skip":
                m.keys_skipped += 1
            elif d.action == "fail":
                m.keys_failed += 1

    async def _apply(self, ops: list[Put | Delete], ckpt_put: Put | None) -> list[str]:
        """Commit ``ops`` (+ checkpoint); split on size errors. Returns the keys of dropped ops."""
        try:
            await self._txn(ops, ckpt_put)
            return []
        except (EtcdRequestTooLarge, EtcdTooManyOps):
            if len(ops) <= 1:
                if ckpt_put is not None:  # alone, without the checkpoint riding along
                    return await self._apply(ops, None) + await self._apply([], ckpt_put)
                key = ops[0].key.decode() if ops else "<checkpoint>"
                log.error("value too large for the destination's request limit; skipped", extra={"key": key})
                return [key]
            half = len(ops) // 2
            first = await self._apply(ops[:half], None)
            return first + await self._apply(ops[half:], ckpt_put)

    async def _txn(self, ops: list[Put | Delete], ckpt_put: Put | None) -> None:
        success: list[Put | Delete] = list(ops)
        if ckpt_put is not None:
            success.append(ckpt_put)
        async for attempt in etcd_policy():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.metrics.txn_retries += 1
                while True:
                    result = await self.dest.txn([self.fence.compare()], success)
                    if result.succeeded:
                        break
                    if not await self.fence.check_lost(self.dest, ckpt_put):
                        return  # an earlier attempt of this very transaction committed
                self.metrics.txns += 1
                if ckpt_put is not None:
                    self.fence.mod_revision = result.header.revision

    async def heartbeat(self, *, revision: int, phase: str) -> None:
        """Rewrite the checkpoint (same revision) so that a starting replicator sees us alive."""
        value = self.fence.value(
            revision=revision, epoch=self.epoch_id, source_cluster_id=self.source_cluster_id, phase=phase
        )
        await self._txn([], Put(self.fence.key, value))
