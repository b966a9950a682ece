"""`replicator run`: build the shared objects once, decide where to start, then sync and follow.

Start position, in order of authority:
1. ``--rev N``: the operator says where; watch from N without a full sync (new epoch, "operator").
2. The destination checkpoint (written in the same transactions as the data, so it is exact),
   when it is in the watching phase and names this source cluster: resume the watch after it.
3. Otherwise a full sync opens a new epoch ("first-start", or "resync" after an interrupted sync).

A watch that falls off compacted history starts a new epoch ("compaction") with a full sync that
also prunes keys that vanished meanwhile. A source or destination that is unreachable is retried
with backoff (tenacity, one policy); the watch resumes after the last committed revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from replicator.config import CHECKPOINT_KEY, EndpointSettings, Settings, describe, mask_url
from replicator.errors import ConfigError, JournalUnavailable, MirrorStopped
from replicator.etcd import ClientConfig, EtcdClient, EtcdCompacted, EtcdUnavailable
from replicator.journal import EpochReason, Journal, RunStatus, current_revision, default_url
from replicator.observability import Metrics, get_logger

from .context import Context
from .evaluate import Evaluator
from .fence import Fence
from .follow import Follower
from .fullsync import full_sync, load_context
from .preview import build_evaluator
from .retry import etcd_policy, retrying
from .services import read_ranges
from .services import verdict as services_verdict
from .sink import JournalSink
from .streams import WatchBuffer

log = get_logger("runner")

T = TypeVar("T")
_RETENTION_EVERY = 600.0  # seconds between retention passes
_FINAL_FLUSH = 10.0  # seconds: how long a stop waits to commit the last complete revisions


@dataclass(frozen=True, slots=True)
class RunResult:
    epoch_id: int
    revision: int
    metrics: dict[str, object]


def client_config(ep: EndpointSettings, s: Settings) -> ClientConfig:
    return ClientConfig(
        endpoints=ep.endpoints,
        cacert=ep.cacert,
        cert=ep.cert,
        key=ep.key,
        insecure_transport=ep.insecure_transport,
        insecure_skip_tls_verify=ep.insecure_skip_tls_verify,
        username=ep.username,
        password=ep.password,
        dial_timeout=s.dial_timeout,
        keepalive_time=s.keepalive_time,
        keepalive_timeout=s.keepalive_timeout,
        request_timeout=s.request_timeout,
    )


def replicator_identity(s: Settings) -> str:
    """Who this replicator is across restarts: its host and its journal. A run id starts with it,
    so a restart (say after a crash) recognises its own predecessor's checkpoint and need not wait
    to see whether that one is still alive."""
    digest = hashlib.sha256(mask_url(journal_url(s)).encode()).hexdigest()[:10]
    return f"{socket.gethostname()}:{digest}"


def journal_url(s: Settings) -> str:
    return s.journal_url or default_url(s.state_dir)


def open_journal(url: str) -> Journal:
    """Create the schema on a new journal; refuse an existing one that is not at head."""
    if current_revision(url) is None:
        return Journal.create(url)
    return Journal.open(url)


def prepare(settings: Settings) -> tuple[Evaluator, Journal]:
    """Everything that can fail on bad input, done before any connection or write."""
    evaluator = build_evaluator(settings)
    evaluator.transcoder.check(evaluator.types_for(), prefix=settings.kube_prefix)
    if not settings.journal_url:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    journal = open_journal(journal_url(settings))
    return evaluator, journal


async def connect(settings: Settings) -> tuple[EtcdClient, EtcdClient]:
    source = await EtcdClient.connect(client_config(settings.source, settings))
    try:
        dest = await EtcdClient.connect(client_config(settings.dest, settings))
    except BaseException:
        await source.close()
        raise
    return source, dest


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, journal: Journal
) -> AsyncIterator[tuple[EtcdClient, EtcdClient, JournalSink]]:
    """Both clients and the journal's sink, closed together."""
    sink = JournalSink(journal)
    try:
        source, dest = await connect(settings)
    except BaseException:
        sink.close()
        raise
    try:
        yield source, dest, sink
    finally:
        await source.close()
        await dest.close()
        sink.close()


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_synced: Callable[[int], None] | None = None,
) -> RunResult:
    """Mirror until ``stop`` is set (or, with ``--once``, until the full sync is done)."""
    evaluator, journal = prepare(settings)
    try:
        async with connected(settings, journal) as (source, dest, sink):
            return await _run(settings, source, dest, sink, evaluator, stop=stop, on_synced=on_synced)
    finally:
        evaluator.close()


async def _run(
    settings: Settings,
    source: EtcdClient,
    dest: EtcdClient,
    sink: JournalSink,
    evaluator: Evaluator,
    *,
    stop: asyncio.Event | None,
    on_synced: Callable[[int], None] | None,
) -> RunResult:
    journal = sink.journal
    source_id = await source.cluster_id()
    dest_id = await dest.cluster_id()
    if source_id == dest_id:
        raise ConfigError("--source-endpoints and --dest-endpoints reach the same etcd cluster")
    run_id = await sink.call(
        lambda: journal.start_run(
            source_cluster_id=source_id, dest_cluster_id=dest_id, settings=describe(settings)
        )
    )
    status: RunStatus = "failed"
    try:
        fence = Fence(
            key=CHECKPOINT_KEY.encode(), run_id=f"{replicator_identity(settings)}/{uuid.uuid4().hex[:12]}"
        )
        ctx = Context(
            settings=settings,
            source=source,
            dest=dest,
            sink=sink,
            evaluator=evaluator,
            metrics=Metrics(),
            fence=fence,
            run_id=run_id,
            source_cluster_id=source_id,
            dest_cluster_id=dest_id,
        )
        await _guard_services(ctx)
        pruner = asyncio.create_task(_retain(ctx), name="journal-retention")
        try:
            result = await _supervise(ctx, stop=stop or asyncio.Event(), on_synced=on_synced)
        finally:
            pruner.cancel()
            await asyncio.gather(pruner, return_exceptions=True)
        status = "completed" if settings.once else "stopped"
        return result
    except MirrorStopped:
        status = "stopped"
        raise
    finally:
        with contextlib.suppress(Exception):
            await sink.call(lambda: journal.end_run(run_id, status=status))


async def _retain(ctx: Context) -> None:
    """Retention: every ``_RETENTION_EVERY`` seconds drop decision rows far behind the checkpoint."""
    keep = ctx.settings.journal_retention
    if not keep:
        return
    journal = ctx.sink.journal
    while True:
        await asyncio.sleep(_RETENTION_EVERY)
        try:
            gone = await ctx.sink.call(lambda: journal.prune(keep_revisions=keep))
        except JournalUnavailable as exc:
            log.warning("journal retention skipped: %s", exc)
            continue
        if gone:
            log.info("journal retention: removed %d rows more than %d revisions old", gone, keep)


async def _guard_services(ctx: Context) -> None:
    ev = ctx.evaluator
    if not any(rt.group == "" and rt.kind == "Service" for rt in ev.types_for()):
        return
    mode = ctx.settings.services
    reason: str | None
    if mode == "skip":
        reason = "Services skipped: --services skip"
    elif mode == "copy":
        reason = None
    else:
        prefix = ctx.settings.kube_prefix
        source, dest = await read_ranges(ctx.source, prefix), await read_ranges(ctx.dest, prefix)
        reason = services_verdict(source, dest)
    if reason is not None:
        log.warning(reason)
        ev.blocked[("", "Service")] = reason


async def _start(ctx: Context) -> tuple[int, int, bool]:
    """(epoch id, revision to watch from, whether a full sync is needed first)."""
    s = ctx.settings
    journal = ctx.sink.journal
    state = await ctx.fence.load(ctx.dest)
    head = (await ctx.source.status()).header
    ctx.guard().check(head)
    if state is not None and str(state.get("source_cluster_id")) != str(ctx.source_cluster_id):
        if not s.new_epoch:
            raise MirrorStopped(
                f"destination checkpoint {CHECKPOINT_KEY} was written for source cluster "
                f"{int(str(state.get('source_cluster_id'))):x}, but the source is cluster "
                f"{ctx.source_cluster_id:x}: "
                "a different or restored source. Stopping (use --new-epoch to mirror it from scratch)."
            )
        return await _new_epoch(ctx, "cluster-changed")
    checkpointed = state.get("revision") if state is not None else None
    if isinstance(checkpointed, int) and head.revision < checkpointed:
        if not s.new_epoch:
            raise MirrorStopped(
                f"the source is at revision {head.revision}, behind the destination checkpoint "
                f"({checkpointed}): it was restored from a snapshot. Stopping (use --new-epoch to "
                "mirror it from scratch)."
            )
        return await _new_epoch(ctx, "cluster-changed")
    if s.new_epoch:
        return await _new_epoch(ctx, "operator")
    if s.rev:
        epoch = await ctx.sink.call(
            lambda: journal.open_epoch(run_id=ctx.run_id, reason="operator", start_revision=s.rev)
        )
        return epoch, s.rev, False
    epoch_row = await ctx.sink.call(journal.current_epoch)
    if (
        state is not None
        and state.get("phase") == "watching"
        and epoch_row is not None
        and epoch_row.id == state.get("epoch")
        and not s.once
    ):
        revision = int(str(state["revision"]))
        noted = await ctx.sink.call(journal.checkpoint)
        if noted is not None and noted.epoch_id == epoch_row.id and noted.revision < revision:
            # The journal is recorded after each destination commit; a crash in between leaves it
            # behind. Re-deciding those revisions re-applies identical writes and journals them.
            log.info(
                "journal is %d revisions behind the destination: re-deciding them",
                revision - noted.revision,
                extra={"epoch": epoch_row.id, "revision": noted.revision},
            )
            revision = noted.revision
        log.info("resuming after the checkpoint", extra={"epoch": epoch_row.id, "revision": revision})
        return epoch_row.id, revision + 1, False
    return await _new_epoch(ctx, "first-start" if state is None else "resync")


async def _new_epoch(ctx: Context, reason: EpochReason) -> tuple[int, int, bool]:
    journal = ctx.sink.journal
    epoch = await ctx.sink.call(
        lambda: journal.open_epoch(run_id=ctx.run_id, reason=reason, start_revision=0)
    )
    log.info("new epoch (%s): full sync", reason, extra={"epoch": epoch})
    return epoch, 0, True


async def _supervise(
    ctx: Context, *, stop: asyncio.Event, on_synced: Callable[[int], None] | None
) -> RunResult:
    epoch, start, need_sync = await _start(ctx)
    revision = start - 1
    await ctx.fence.wait_until_idle(ctx.dest)
    claimed = ctx.fence.value(
        revision=0 if need_sync else revision,
        epoch=epoch,
        source_cluster_id=ctx.source_cluster_id,
        phase="syncing" if need_sync else "watching",
    )
    await ctx.fence.claim(ctx.dest, claimed)
    while True:
        buffer: WatchBuffer | None = None
        if need_sync:
            synced = await _unless_stopped(
                retrying(etcd_policy(), functools.partial(_sync, ctx, epoch)), stop
            )
            if synced is None:
                return RunResult(epoch, revision, ctx.metrics.snapshot())
            revision, buffer = synced
            if on_synced is not None:
                on_synced(revision)
            if buffer is None:  # --once
                return RunResult(epoch, revision, ctx.metrics.snapshot())
            start = revision + 1
        else:
            # Resuming: rules need every namespace's labels and the CRD-defined types as they were.
            await retrying(
                etcd_policy(),
                functools.partial(
                    load_context,
                    ctx.source,
                    ctx.evaluator,
                    revision=start - 1,
                    page_size=ctx.settings.page_size,
                ),
            )
        try:
            revision = await _follow_until_stopped(ctx, epoch=epoch, start=start, buffer=buffer, stop=stop)
            return RunResult(epoch, revision, ctx.metrics.snapshot())
        except EtcdCompacted as exc:
            log.warning(
                "watch fell off compacted history (compacted at %d): new epoch with a full sync",
                exc.compact_revision,
                extra={"epoch": epoch},
            )
            epoch = await ctx.sink.call(
                lambda: ctx.sink.journal.open_epoch(run_id=ctx.run_id, reason="compaction", start_revision=0)
            )
            need_sync = True


async def _sync(ctx: Context, epoch: int) -> tuple[int, WatchBuffer | None]:
    """A full sync at the current revision, with the watch after it already buffering."""
    revision = (await ctx.source.status()).header.revision
    buffer = None
    if not ctx.settings.once:
        buffer = WatchBuffer(ctx.source, ctx.prefix, start_revision=revision + 1, spill_dir=None)
    try:
        await full_sync(ctx, epoch_id=epoch, revision=revision)
    except BaseException:
        if buffer is not None:
            await buffer.close()
        raise
    return revision, buffer


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``await work``, unless ``stop`` is set first (then the work is cancelled: None)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _follow_until_stopped(
    ctx: Context, *, epoch: int, start: int, buffer: WatchBuffer | None, stop: asyncio.Event
) -> int:
    """Follow from ``start``; reconnect after outages; returns the last committed revision on stop."""
    while True:
        if buffer is None:
            buffer = WatchBuffer(ctx.source, ctx.prefix, start_revision=start, spill_dir=None)
        follower = Follower(ctx, epoch_id=epoch, stream=buffer)
        try:
            await _unless_stopped(follower.run(), stop)
        except EtcdUnavailable as exc:
            log.warning("source unavailable (%s); resuming the watch after %d", exc, follower.committed)
            await follower.writer.finish(checkpoint=follower.committed)
            start = follower.committed + 1
            await asyncio.sleep(1.0)
            with contextlib.suppress(EtcdUnavailable):  # still down: the new watch says so
                head = (await ctx.source.status()).header
                guard = ctx.guard()
                guard.revision = follower.committed
                guard.check(head)  # a source restored from a snapshot while we were cut off
            continue
        except EtcdCompacted:
            await follower.writer.finish(checkpoint=follower.committed)  # keep what is complete
            raise
        except BaseException:
            await follower.writer.abort()
            raise
        finally:
            await buffer.close()
            buffer = None
        # Stopped (or the stream ended): commit what is complete, but never hang on a dead destination.
        try:
            await asyncio.wait_for(follower.writer.finish(checkpoint=follower.committed), _FINAL_FLUSH)
        except TimeoutError:
            log.warning(
                "destination unreachable at stop: the last revisions are re-applied at the next start"
            )
            await follower.writer.abort()
        return follower.committed
