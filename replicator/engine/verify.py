"""`replicator verify`: compare source and destination at a revision the destination has reached.

The destination checkpoint names a source revision R whose changes the destination holds in
full. Verify reads the source *at R* (not at its head: a source that moved on would otherwise
show every later change as drift), evaluates each key with the same rules and the same namespace
and CRD state the mirror had at R, and merge-joins three key-ordered streams: the source's
in-scope keys, the destination's keys under the prefix, and the journal's managed keys. Memory
stays flat: pages stream, nothing holds the keyspace.

Differences come back as data (``Drift``): *missing* (in scope at R, absent on the destination),
*different* (present with other bytes), *extra* (a key this replicator manages that is not in
scope at R). A destination key the replicator never wrote is never extra: the standby may hold
keys of its own. A source value that cannot be read is neither (``unreadable``, reported apart):
the mirror keeps its last good copy of such keys.

``repair`` writes the missing and different values as the source held them at R and deletes the
extra keys, through the mirror's own fenced, journaled writer (decisions with reason
"verify --repair"). It does not move the checkpoint. It is safe only while no replicator writes
the destination; the fence turns a concurrent writer into a clear stop, not an interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from replicator.config import CHECKPOINT_KEY, Settings
from replicator.errors import ConfigError, MirrorStopped, ReplicatorError
from replicator.etcd import EtcdClient, EtcdCompacted, EtcdFutureRevision, KeyValue
from replicator.journal import DecisionRecord, Journal, ManagedKey
from replicator.kube.encryption import is_encrypted
from replicator.kube.resources import KeyInfo
from replicator.observability import Metrics, get_logger

from . import runner
from .context import Context
from .evaluate import Evaluation, Evaluator, Verdict
from .fence import Fence
from .fullsync import load_context
from .preview import build_evaluator
from .sink import JournalSink
from .writer import digest

log = get_logger("verify")

_MANAGED_CHUNK = 1000  # managed keys fetched from the journal per worker-thread call
_REPAIR_READS = 64  # source reads in flight while repairing

T = TypeVar("T")


class VerifyImpossible(ReplicatorError):
    """Verify cannot compare at the destination's revision (no checkpoint, compacted, wrong source)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """What differs between the source at ``revision`` and the destination. Keys only, never values."""

    revision: int
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # source values that failed to decode/decrypt
    in_scope: int = 0  # in-scope source keys compared

    @property
    def clean(self) -> bool:
        return not (self.missing or self.different or self.extra)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    drift: Drift
    checkpoint: dict[str, object]
    after_repair: Drift | None = None  # the second comparison, when --repair wrote something


# -- the comparison: three key-ordered streams, one pass ----------------------------------------


class _Cursor(Generic[T]):
    """An async iterator with one item of look-ahead."""

    def __init__(self, items: AsyncIterator[T]) -> None:
        self._items = items
        self._head: T | None = None
        self._primed = False

    async def peek(self) -> T | None:
        if not self._primed:
            self._head = await anext(self._items, None)
            self._primed = True
        return self._head

    def advance(self) -> None:
        self._primed = False


async def compare(
    source: AsyncIterator[tuple[KeyValue, Evaluation]],
    dest: AsyncIterator[KeyValue],
    managed: AsyncIterator[bytes],
    *,
    revision: int,
    same: Callable[[Evaluation, bytes, bytes], bool] = lambda _ev, a, b: a == b,
) -> Drift:
    """Merge-join the source's evaluated keys (at ``revision``), the destination's keys and the
    managed keys, all in byte-wise key order, into a ``Drift``. ``same(evaluation, source value,
    destination value)`` says whether the destination holds the source's content."""
    drift = Drift(revision=revision)
    src: _Cursor[tuple[KeyValue, Evaluation]] = _Cursor(source)
    dst: _Cursor[KeyValue] = _Cursor(dest)
    man: _Cursor[bytes] = _Cursor(managed)
    in_scope = 0

    async def is_managed(key: bytes) -> bool:
        while (m := await man.peek()) is not None and m < key:
            man.advance()
        return m == key

    while True:
        s, d = await src.peek(), await dst.peek()
        if s is None and d is None:
            break
        if d is None or (s is not None and s[0].key < d.key):
            assert s is not None
            kv, ev = s
            if ev.verdict is Verdict.COPY:
                in_scope += 1
                drift.missing.append(kv.key.decode())
            elif ev.verdict is Verdict.FAIL:
                drift.unreadable.append(kv.key.decode())
            src.advance()
            continue
        if s is None or d.key < s[0].key:
            if await is_managed(d.key):
                drift.extra.append(d.key.decode())
            dst.advance()
            continue
        kv, ev = s
        if ev.verdict is Verdict.COPY:
            in_scope += 1
            if not same(ev, kv.value, d.value):
                drift.different.append(kv.key.decode())
        elif ev.verdict is Verdict.FAIL:
            drift.unreadable.append(kv.key.decode())
        elif await is_managed(d.key):
            drift.extra.append(d.key.decode())
        src.advance()
        dst.advance()
    return Drift(
        revision=revision,
        missing=drift.missing,
        different=drift.different,
        extra=drift.extra,
        unreadable=drift.unreadable,
        in_scope=in_scope,
    )


def same_content(evaluator: Evaluator, ev: Evaluation, source: bytes, dest: bytes) -> bool:
    """Equal bytes; or, when the mirror re-encrypts for the standby (``--dest-encryption-provider-
    config``, fresh nonces each time), equal plaintext under each side's configuration. The
    plaintext is compared in memory only."""
    if source == dest:
        return True
    tc = evaluator.transcoder
    info: KeyInfo | None = ev.info
    if tc.dest is None or info is None:
        return False
    group, resource = info.resource.group, info.resource.resource
    try:
        mine = evaluator.plain(info, source)
        theirs = (
            tc.dest.decrypt(key=info.key, value=dest, group=group, resource=resource)
            if is_encrypted(dest)
            else dest
        )
    except ReplicatorError:  # unreadable on the standby: certainly not the same
        return False
    return mine == theirs


def scan_prefixes(evaluator: Evaluator) -> list[bytes]:
    """The key prefixes of every rule-selected resource type, sorted, none inside another.

    Ranges over sorted, non-nested prefixes come out in global key order, which the merge needs
    (the full sync reads them in phase order instead). A nested prefix is covered by its parent's
    range; the evaluator parses every key it sees on its own.
    """
    found = sorted({evaluator.catalog.key_prefix(rt).encode() for rt in evaluator.types_for()})
    out: list[bytes] = []
    for p in found:
        if not out or not p.startswith(out[-1]):
            out.append(p)
    return out


async def source_in_scope(
    source: EtcdClient, evaluator: Evaluator, *, revision: int, page_size: int
) -> AsyncIterator[tuple[KeyValue, Evaluation]]:
    """Every key of the rule-selected types at ``revision``, evaluated, in key order."""
    for prefix in scan_prefixes(evaluator):
        # Pinned pages, not ``streams.scan``: a compacted R must fail, not move to a newer revision.
        async for page in source.range_pages(prefix, revision=revision, page_size=page_size):
            for kv in page.kvs:
                yield kv, evaluator.evaluate(kv.key, kv.value, lease=kv.lease)


async def dest_keys(
    dest: EtcdClient, prefix: bytes, *, revision: int, page_size: int
) -> AsyncIterator[KeyValue]:
    async for page in dest.range_pages(prefix, revision=revision, page_size=page_size):
        for kv in page.kvs:
            yield kv


async def managed_keys(sink: JournalSink, prefix: str) -> AsyncIterator[bytes]:
    """The journal's managed keys under ``prefix`` in key order, fetched in chunks on its thread."""
    holder: list[Iterator[ManagedKey]] = []

    def chunk() -> list[ManagedKey]:
        if not holder:
            holder.append(sink.journal.iter_managed(prefix))
        return list(itertools.islice(holder[0], _MANAGED_CHUNK))

    try:
        while rows := await sink.call(chunk):
            for row in rows:
                yield row.key.encode()
    finally:
        if holder:
            stream = holder[0]
            close = getattr(stream, "close", None)
            if close is not None:
                await sink.call(close)


# -- the session: same objects as `run`, positioned at the destination's checkpoint -------------


@dataclass(slots=True)
class _Position:
    revision: int  # source revision R the destination has reached
    dest_revision: int  # destination store revision the checkpoint was read at
    state: dict[str, object]


async def _position(ctx: Context) -> _Position:
    page = await ctx.dest.range(ctx.fence.key)
    if not page.kvs:
        raise VerifyImpossible(
            f"destination has no checkpoint {CHECKPOINT_KEY}: nothing has been mirrored there to verify"
        )
    kv = page.kvs[0]
    try:
        state = json.loads(kv.value)
        revision = int(state["revision"])
    except (ValueError, KeyError, TypeError):
        raise VerifyImpossible(f"destination checkpoint {CHECKPOINT_KEY} is not readable") from None
    if str(state.get("source_cluster_id")) != str(ctx.source_cluster_id):
        raise VerifyImpossible(
            f"destination checkpoint names source cluster {state.get('source_cluster_id')}, but the source "
            f"is cluster {ctx.source_cluster_id}: verify needs the source the destination was mirrored from"
        )
    ctx.fence.mod_revision = kv.mod_revision
    ctx.fence.state = state
    return _Position(revision=revision, dest_revision=page.header.revision, state=state)


async def _drift(ctx: Context, pos: _Position) -> Drift:
    s = ctx.settings
    try:
        # Fails at once when R is compacted; ``load_context`` would read on at a newer revision. If
        # compaction passes R later, the pinned comparison below fails: the result is never inexact.
        await ctx.source.range(ctx.prefix, revision=pos.revision, limit=1, keys_only=True)
        await load_context(ctx.source, ctx.evaluator, revision=pos.revision, page_size=s.page_size)
        return await compare(
            source_in_scope(ctx.source, ctx.evaluator, revision=pos.revision, page_size=s.page_size),
            dest_keys(ctx.dest, ctx.prefix, revision=pos.dest_revision, page_size=s.page_size),
            managed_keys(ctx.sink, ctx.prefix.decode()),
            revision=pos.revision,
            same=functools.partial(same_content, ctx.evaluator),
        )
    except EtcdCompacted as exc:
        raise VerifyImpossible(
            f"source revision {pos.revision} (the destination checkpoint) is compacted on the source "
            f"(compacted at {exc.compact_revision}): the source's state at that revision is gone, so it "
            "cannot be compared exactly. Verify while the mirror keeps up (its checkpoint then stays "
            "inside the compaction window), or resync."
        ) from None
    except EtcdFutureRevision:
        raise VerifyImpossible(
            f"source has not reached revision {pos.revision} that the destination checkpoint names: "
            "a restored or different source?"
        ) from None


async def repair(ctx: Context, drift: Drift, *, epoch_id: int) -> int:
    """Write the missing and different keys as the source held them at ``drift.revision`` and
    delete the extra managed keys, journaled as decisions; returns the number of keys fixed."""
    writer = ctx.writer(epoch_id=epoch_id, ordered=False)
    revision = drift.revision
    fixed = 0
    try:
        wanted = [(k, "missing") for k in drift.missing] + [(k, "different") for k in drift.different]
        for start in range(0, len(wanted), _REPAIR_READS):
            chunk = wanted[start : start + _REPAIR_READS]
            pages = await asyncio.gather(*(ctx.source.range(k.encode(), revision=revision) for k, _ in chunk))
            for (key, why), page in zip(chunk, pages, strict=True):
                kv = page.kvs[0] if page.kvs else None
                ev = ctx.evaluator.evaluate(kv.key, kv.value, lease=kv.lease) if kv else None
                if kv is None or ev is None or ev.verdict is not Verdict.COPY:
                    log.warning(
                        "not in scope any more at the repair's revision; left alone", extra={"key": key}
                    )
                    continue
                try:
                    out = ctx.evaluator.transcoder.output(ev.info, kv.value) if ev.info else kv.value
                except ReplicatorError as exc:
                    log.warning("cannot re-encrypt for the standby; left alone: %s", exc, extra={"key": key})
                    continue
                record = DecisionRecord(
                    revision=kv.mod_revision,
                    key=key,
                    action="copy",
                    reason=f"verify --repair: {why} at revision {revision}",
                    rule=ev.rule,
                    value_digest=digest(kv.value),
                    value_size=len(kv.value),
                )
                await writer.put(kv.key, out, record=record, rule=ev.rule, source_value=kv.value)
                fixed += 1
        for key in drift.extra:
            record = DecisionRecord(
                revision=revision,
                key=key,
                action="delete",
                reason=f"verify --repair: managed but not in scope at revision {revision}",
            )
            await writer.delete(key.encode(), record=record)
            fixed += 1
        await writer.submit()
        await writer.drain()
    except MirrorStopped:
        await writer.abort()
        raise MirrorStopped(
            f"destination checkpoint {CHECKPOINT_KEY} changed during verify --repair: a replicator is "
            "writing this destination. Stop it before repairing; nothing more was written."
        ) from None
    except BaseException:
        await writer.abort()
        raise
    return fixed


@contextlib.asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[Context]:
    """The objects `run` builds (rules, catalog, encryption, journal, both clients), for one check."""
    evaluator, journal = runner.prepare(settings)
    async with runner.connected(settings, journal) as (source, dest, sink):
        source_id, dest_id = await source.cluster_id(), await dest.cluster_id()
        if source_id == dest_id:
            raise ConfigError("--source-endpoints and --dest-endpoints reach the same etcd cluster")
        yield Context(
            settings=settings,
            source=source,
            dest=dest,
            sink=sink,
            evaluator=evaluator,
            metrics=Metrics(),
            fence=Fence(key=CHECKPOINT_KEY.encode(), run_id=f"verify-{uuid.uuid4().hex}"),
            run_id=0,  # verify opens no run: its repairs are journaled under the current epoch
            source_cluster_id=source_id,
            dest_cluster_id=dest_id,
        )


def _fresh_evaluator(ctx: Context) -> None:
    """A second comparison rebuilds the namespace and CRD state from the source at R."""
    ctx.evaluator = build_evaluator(ctx.settings)


async def verify(settings: Settings, *, fix: bool = False) -> VerifyResult:
    """Compare at the destination's checkpoint; with ``fix``, repair and compare again."""
    async with session(settings) as ctx:
        pos = await _position(ctx)
        drift = await _drift(ctx, pos)
        log.info(
            "verified at source revision %d: %d in scope, %d missing, %d different, %d extra",
            drift.revision,
            drift.in_scope,
            len(drift.missing),
            len(drift.different),
            len(drift.extra),
        )
        if not fix or drift.clean:
            return VerifyResult(drift=drift, checkpoint=pos.state)
        epoch = await ctx.sink.call(lambda: _current_epoch(ctx.sink.journal))
        fixed = await repair(ctx, drift, epoch_id=epoch)
        log.info("repaired %d keys", fixed, extra={"epoch": epoch, "revision": drift.revision})
        pos = await _position(ctx)
        _fresh_evaluator(ctx)
        return VerifyResult(drift=drift, checkpoint=pos.state, after_repair=await _drift(ctx, pos))


def _current_epoch(journal: Journal) -> int:
    epoch = journal.current_epoch()
    if epoch is None:
        raise VerifyImpossible(
            f"journal {journal.url} has no epoch: --repair journals its fixes in the journal the "
            "mirror uses; give its --journal"
        )
    return epoch.id


def report_lines(drift: Drift) -> list[str]:
    """Lines for the operator: a summary, then each key with its kind of drift."""
    lines = [
        f"source revision {drift.revision}: {drift.in_scope} keys in scope, {len(drift.missing)} missing, "
        f"{len(drift.different)} different, {len(drift.extra)} extra"
        + (f", {len(drift.unreadable)} unreadable on the source" if drift.unreadable else "")
    ]
    for kind, keys in (
        ("missing", drift.missing),
        ("different", drift.different),
        ("extra", drift.extra),
        ("unreadable", drift.unreadable),
    ):
        lines.extend(f"{kind:<10} {k}" for k in keys)
    return lines
