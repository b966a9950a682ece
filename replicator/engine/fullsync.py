"""Full sync: copy every in-scope key as of one source revision, then prune what left scope.

Order: the namespace label index and the CRD-defined resource types first (rules need both), then
the rule file's phases (sequential groups by sequence, then the secondary groups), each phase a
barrier: its transactions all commit before the next phase starts. Only the prefixes of resource
types some rule names are read, page by page, one page prefetched: memory is bounded by a page
and the transactions in flight, not by the cluster.

The sync ends by deleting managed keys that this epoch did not confirm (they vanished from the
source or left scope while we were away), then moves the destination checkpoint to the sync's
revision in a fenced transaction. Everything after that revision comes from the watch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from replicator.errors import BadValue
from replicator.journal import ManagedKey
from replicator.kube.encryption import is_encrypted
from replicator.kube.resources import KeyInfo, ResourceType, crd_resource_type
from replicator.observability import get_logger

from .apply import Applier
from .context import Context
from .evaluate import is_namespace
from .streams import scan

log = get_logger("fullsync")

_PRUNE_CHUNK = 1000


async def load_namespaces(ctx: Context, *, revision: int) -> None:
    ev = ctx.evaluator
    prefix = ev.catalog.key_prefix(ev.catalog.by_kind("", "Namespace") or _missing("Namespace")).encode()
    async for page in scan(ctx.source, prefix, revision=revision, page_size=ctx.settings.page_size):
        for kv in page.kvs:
            info = ev.parse(kv.key)
            if info is not None and is_namespace(info):
                ev.namespaces.set(info.name, ev.namespace_labels_of(info, kv.value) or {})


async def load_crds(ctx: Context, *, revision: int) -> None:
    ev = ctx.evaluator
    rt = ev.catalog.by_kind("apiextensions.k8s.io", "CustomResourceDefinition") or _missing("CRD")
    prefix = ev.catalog.key_prefix(rt).encode()
    async for page in scan(ctx.source, prefix, revision=revision, page_size=ctx.settings.page_size):
        for kv in page.kvs:
            add_crd(ctx, kv.key, kv.value)


def add_crd(ctx: Context, key: bytes, value: bytes) -> ResourceType | None:
    ev = ctx.evaluator
    info = ev.parse(key)
    if info is None:
        return None
    try:
        rt = crd_resource_type(_plain(ctx, info, value), key=info.key)
    except BadValue as exc:  # a bad CRD must not stop the sync; its resources stay unknown
        log.warning("cannot read CustomResourceDefinition: %s", exc, extra={"key": info.key})
        return None
    ev.catalog.add(rt)
    return rt


def _plain(ctx: Context, info: KeyInfo, value: bytes) -> bytes:
    enc = ctx.evaluator.encryption
    if is_encrypted(value) and enc is not None:
        return enc.decrypt(
            key=info.key, value=value, group=info.resource.group, resource=info.resource.resource
        )
    return value


def _missing(kind: str) -> ResourceType:
    raise RuntimeError(f"built-in resource table has no {kind}")


async def full_sync(ctx: Context, *, epoch_id: int, revision: int) -> int:
    """Copy the in-scope state as of ``revision`` (see ``streams.scan``); returns ``revision``.

    The caller has opened the watch at ``revision + 1`` already.
    """
    log.info("full sync starting", extra={"epoch": epoch_id, "revision": revision})
    await load_namespaces(ctx, revision=revision)
    await load_crds(ctx, revision=revision)
    writer = ctx.writer(epoch_id=epoch_id, ordered=False)
    applier = Applier(evaluator=ctx.evaluator, sink=ctx.sink, writer=writer)
    scanned: set[ResourceType] = set()
    try:
        for number, phase in enumerate(ctx.evaluator.rules.phases(), start=1):
            types = [rt for rt in ctx.evaluator.types_for(phase) if rt not in scanned]
            scanned.update(types)
            log.info(
                "phase %d: %s",
                number,
                ", ".join(f"{rt.group or 'core'}/{rt.kind}" for rt in types) or "nothing",
                extra={"epoch": epoch_id, "revision": revision},
            )
            for rt in types:
                prefix = ctx.evaluator.catalog.key_prefix(rt).encode()
                async for page in scan(
                    ctx.source, prefix, revision=revision, page_size=ctx.settings.page_size
                ):
                    await applier.apply_kvs(page.kvs)
            await writer.submit()
            await writer.drain()
        await writer.submit()
        await writer.drain()
        await prune(ctx, applier, epoch_id=epoch_id, revision=revision)
        await writer.submit(checkpoint=revision, phase="watching")
    except BaseException:
        await writer.abort()
        raise
    log.info(
        "full sync done: %d copied, %d skipped, %d deleted, %d failed",
        ctx.metrics.keys_copied,
        ctx.metrics.keys_skipped,
        ctx.metrics.keys_deleted,
        ctx.metrics.keys_failed,
        extra={"epoch": epoch_id, "revision": revision},
    )
    return revision


async def prune(ctx: Context, applier: Applier, *, epoch_id: int, revision: int) -> None:
    """Delete managed keys this epoch's sync did not confirm: they vanished or left scope."""
    journal = ctx.sink.journal
    holder: list[Iterator[ManagedKey]] = []

    def chunk() -> list[ManagedKey]:
        if not holder:
            holder.append(journal.iter_managed())
        return list(itertools.islice(holder[0], _PRUNE_CHUNK))

    stale: list[str] = []
    while rows := await ctx.sink.call(chunk):
        stale.extend(r.key for r in rows if r.epoch_id != epoch_id and r.key not in applier.failed_managed)
        # Keys are collected before deleting: deleting while the journal streams them would move the cursor.
    for key in stale:
        await applier.apply_delete(
            key.encode(),
            revision=revision,
            managed=True,
            reason=f"not in scope at revision {revision} (full sync of epoch {epoch_id})",
        )
    if stale:
        log.info(
            "pruned %d keys no longer in scope", len(stale), extra={"epoch": epoch_id, "revision": revision}
        )
