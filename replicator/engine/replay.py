"""`replicator replay`: re-apply journaled copies and deletes to a destination (rebuild a standby).

The journal holds every copy and delete decision, with the source revision it was made at and
the digest of the value copied, but not the value. Replay takes the value from the source's
history (the key read *at* the decision's revision), and once the source has compacted that
revision, from the values the journal kept with ``run --journal-values`` (byte for byte as etcd
stored them: ciphertext stays ciphertext). Either way the value must match the journaled digest.
A copy whose value is available from neither is reported by key and revision, never skipped
silently.

Order: as ``Journal.iter_changes`` streams them (epoch, revision, recording order), which is the
order the mirror applied them. Writes go in batched transactions bounded like the mirror's, one
at a time; within one transaction the later operation on a key replaces the earlier one, so each
commit leaves the state the sequence would. Every transaction is fenced on the destination
checkpoint key, which replay never writes: a replicator writing the same destination stops the
replay instead of interleaving with it. With ``dry_run`` nothing is written; values are still
located, so the listing says which are unavailable.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from replicator.config import CHECKPOINT_KEY, Settings
from replicator.errors import MirrorStopped, ReplicatorError
from replicator.etcd import Delete, EtcdClient, EtcdCompacted, Put
from replicator.journal import DecisionRow, Journal
from replicator.observability import get_logger

from . import runner
from .evaluate import Evaluator
from .fence import Fence
from .fullsync import load_context
from .preview import build_evaluator
from .retry import etcd_policy, retrying
from .sink import JournalSink

log = get_logger("replay")

_CHUNK = 256  # decisions read from the journal, and values located, at a time
_OP_OVERHEAD = 16  # protobuf framing per operation, bytes (as the writer counts)

Origin = Literal["source", "journal", "unavailable", "-"]


@dataclass(frozen=True, slots=True)
class Step:
    """One journaled change as replay handles it. ``origin`` says where the value came from."""

    revision: int
    key: str
    action: Literal["copy", "delete"]
    origin: Origin
    detail: str = ""  # why a value is unavailable


@dataclass(slots=True)
class ReplayResult:
    copies: int = 0
    deletes: int = 0
    txns: int = 0
    from_source: int = 0
    from_journal: int = 0
    unavailable: list[Step] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unavailable


@dataclass(frozen=True, slots=True)
class Window:
    """Which decisions to replay: revisions inclusive on both ends, times as ``[since, until)``."""

    from_revision: int = 0
    to_revision: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def changes(sink: JournalSink, window: Window) -> AsyncIterator[list[DecisionRow]]:
    """The window's copies and deletes, in replay order, a chunk at a time (flat memory)."""
    holder: list[Iterator[DecisionRow]] = []

    def chunk() -> list[DecisionRow]:
        if not holder:
            holder.append(
                sink.journal.iter_changes(
                    from_revision=window.from_revision,
                    to_revision=window.to_revision,
                    since=window.since,
                    until=window.until,
                )
            )
        return list(itertools.islice(holder[0], _CHUNK))

    while rows := await sink.call(chunk):
        yield rows


class ValueLocator:
    """Finds the value a copy decision wrote: the source at that revision, else the journal."""

    def __init__(self, source: EtcdClient, sink: JournalSink) -> None:
        self.source = source
        self.sink = sink
        self.compacted = 0  # the source's compaction point, once a read has run into it

    async def _from_source(self, d: DecisionRow) -> bytes | None:
        if d.revision < self.compacted:
            return None
        try:
            page = await retrying(
                etcd_policy(), lambda: self.source.range(d.key.encode(), revision=d.revision)
            )
        except EtcdCompacted as exc:
            self.compacted = max(self.compacted, exc.compact_revision, d.revision + 1)
            return None
        return page.kvs[0].value if page.kvs else None

    async def locate(self, copies: list[DecisionRow]) -> dict[int, tuple[bytes | None, Step]]:
        """For each copy decision (by id): its value (None when unavailable) and the step."""
        found = await asyncio.gather(*(self._from_source(d) for d in copies))
        out: dict[int, tuple[bytes | None, Step]] = {}
        missing: list[DecisionRow] = []
        for d, value in zip(copies, found, strict=True):
            if value is not None and _digest(value) == d.value_digest:
                out[d.id] = (value, Step(d.revision, d.key, "copy", "source"))
            else:
                missing.append(d)
        if missing:
            pairs = [(d.key, d.revision) for d in missing]
            kept = await self.sink.call(lambda: self.sink.journal.kept_values(pairs))
            for d in missing:
                value = kept.get((d.key, d.revision))
                if value is not None and _digest(value) == d.value_digest:
                    out[d.id] = (value, Step(d.revision, d.key, "copy", "journal"))
                    continue
                why = (
                    "compacted on the source and not kept in the journal (run --journal-values)"
                    if d.revision < self.compacted
                    else "the source's value at this revision does not match the journaled digest"
                )
                out[d.id] = (None, Step(d.revision, d.key, "copy", "unavailable", why))
        return out


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


class _Batches:
    """Fenced destination transactions bounded by operations and bytes, committed in order."""

    def __init__(self, dest: EtcdClient, fence: Fence, *, max_ops: int, max_bytes: int) -> None:
        self.dest = dest
        self.fence = fence
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self.ops: dict[bytes, Put | Delete] = {}
        self.nbytes = 0
        self.txns = 0

    async def add(self, op: Put | Delete) -> None:
        size = len(op.key) + (len(op.value) if isinstance(op, Put) else 0) + _OP_OVERHEAD
        if self.ops and (len(self.ops) + 1 > self.max_ops or self.nbytes + size > self.max_bytes):
            await self.flush()
        old = self.ops.pop(op.key, None)  # the later operation on a key wins, as applied in order
        if old is not None:
            self.nbytes -= len(old.key) + (len(old.value) if isinstance(old, Put) else 0) + _OP_OVERHEAD
        self.ops[op.key] = op
        self.nbytes += size

    async def flush(self) -> None:
        if not self.ops:
            return
        ops = list(self.ops.values())
        self.ops, self.nbytes = {}, 0
        result = await retrying(etcd_policy(), lambda: self.dest.txn([self.fence.compare()], ops))
        if not result.succeeded:
            raise MirrorStopped(
                f"destination checkpoint {CHECKPOINT_KEY} changed during replay: a replicator is writing "
                f"this destination. Stop it first; {self.txns} transactions were applied."
            )
        self.txns += 1


async def replay_changes(
    *,
    source: EtcdClient,
    dest: EtcdClient,
    sink: JournalSink,
    evaluator: Evaluator,
    window: Window,
    max_ops: int,
    max_bytes: int,
    dry_run: bool,
    on_step: Callable[[Step], None] | None = None,
) -> ReplayResult:
    """The replay itself, with every object handed in (tests call it directly)."""
    fence = Fence(key=CHECKPOINT_KEY.encode(), run_id=f"replay-{uuid.uuid4().hex}")
    await fence.load(dest)
    batches = _Batches(dest, fence, max_ops=max_ops, max_bytes=max_bytes)
    locator = ValueLocator(source, sink)
    result = ReplayResult()
    async for rows in changes(sink, window):
        values = await locator.locate([d for d in rows if d.action == "copy"])
        for d in rows:
            if d.action == "delete":
                step = Step(d.revision, d.key, "delete", "-")
                op: Put | Delete = Delete(d.key.encode())
                result.deletes += 1
            else:
                value, step = values[d.id]
                if value is not None:
                    value, step = _output(evaluator, d, value, step)
                if value is None:
                    result.unavailable.append(step)
                    log.warning(
                        "value unavailable: %s", step.detail, extra={"key": d.key, "revision": d.revision}
                    )
                    if on_step is not None:
                        on_step(step)
                    continue
                op = Put(d.key.encode(), value)
                result.copies += 1
                result.from_source += step.origin == "source"
                result.from_journal += step.origin == "journal"
            if on_step is not None:
                on_step(step)
            if not dry_run:
                await batches.add(op)
    if not dry_run:
        await batches.flush()
    result.txns = batches.txns
    return result


def _output(evaluator: Evaluator, d: DecisionRow, value: bytes, step: Step) -> tuple[bytes | None, Step]:
    """What the mirror would write for ``value`` (re-encrypted when the standby has its own keys)."""
    info = evaluator.parse(d.key.encode())
    if info is None:
        return value, step
    try:
        return evaluator.transcoder.output(info, value), step
    except ReplicatorError as exc:
        reason = getattr(exc, "reason", str(exc))
        return None, Step(d.revision, d.key, "copy", "unavailable", f"cannot re-encrypt: {reason}")


async def replay(
    settings: Settings,
    window: Window,
    *,
    dry_run: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> ReplayResult:
    """Replay ``window`` from the journal of ``settings`` to its destination."""
    evaluator = build_evaluator(settings)
    journal = Journal.open(runner.journal_url(settings))
    async with runner.connected(settings, journal) as (source, dest, sink):
        if evaluator.transcoder.dest is not None:
            # Re-encryption needs each key's resource type, custom ones included.
            head = (await source.status()).header.revision
            await load_context(source, evaluator, revision=head, page_size=settings.page_size)
        return await replay_changes(
            source=source,
            dest=dest,
            sink=sink,
            evaluator=evaluator,
            window=window,
            max_ops=settings.max_txn_ops,
            max_bytes=settings.max_txn_bytes,
            dry_run=dry_run,
            on_step=on_step,
        )
