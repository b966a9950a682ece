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

import asyncio
import itertools
from collections.abc import Iterator

from replicator.etcd import EtcdClient
from replicator.journal import ManagedKey
from replicator.kube.resources import ResourceType
from replicator.observability import get_logger

from .apply import Applier
from .context import Context
from .evaluate import Evaluator, is_crd, is_namespace
from .fence import HEARTBEAT
from .streams import scan
from .writer import DestWriter

log = get_logger("fullsync")

_PRUNE_CHUNK = 1000


async def load_context(source: EtcdClient, evaluator: Evaluator, *, revision: int, page_size: int) -> None:
    """Namespace labels (rules need them whether or not namespaces are mirrored) and the types
    the source's CRDs define, as of ``revision``."""
    cat = evaluator.catalog
    evaluator.namespaces.clear()
    for kind in (("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")):
        rt = cat.by_kind(*kind)
        if rt is None:
            raise RuntimeError(f"built-in resource table has no {kind[1]}")
        async for page in scan(source, cat.key_prefix(rt).encode(), revision=revision, page_size=page_size):
            for kv in page.kvs:
                info = evaluator.parse(kv.key)
                if info is None:
                    continue
                if is_namespace(info):
                    evaluator.namespaces.set(info.name, evaluator.namespace_labels_of(info, kv.value) or {})
                elif is_crd(info):
                    evaluator.add_crd(info, kv.value)


# Owners before dependents, so that a standby whose garbage collector runs never sees an orphan:
# namespaces and definitions first, then kinds that typically own others, workloads' pods last.
_RANK = {
    ("", "Namespace"): 0,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): 1,
    ("apiregistration.k8s.io", "APIService"): 1,
    ("", "ServiceAccount"): 2,
    ("rbac.authorization.k8s.io", "ClusterRole"): 2,
    ("rbac.authorization.k8s.io", "Role"): 2,
    ("apps", "Deployment"): 4,
    ("apps", "StatefulSet"): 4,
    ("apps", "DaemonSet"): 4,
    ("batch", "CronJob"): 4,
    ("", "ReplicationController"): 5,
    ("apps", "ReplicaSet"): 5,
    ("batch", "Job"): 5,
    ("", "Pod"): 7,
}
_CUSTOM_RANK = 3  # custom resources are often operators' owner objects
_DEFAULT_RANK = 6


def owner_rank(rt: ResourceType) -> tuple[int, str, str]:
    rank = _RANK.get((rt.group, rt.kind))
    if rank is None:
        rank = _CUSTOM_RANK if "." in rt.group and not rt.group.endswith(".k8s.io") else _DEFAULT_RANK
    return rank, rt.group, rt.kind


async def full_sync(ctx: Context, *, epoch_id: int, revision: int) -> int:
    """Copy the in-scope state as of ``revision`` (see ``streams.scan``); returns ``revision``.

    The caller has opened the watch at ``revision + 1`` already.
    """
    log.info("full sync starting", extra={"epoch": epoch_id, "revision": revision})
    await load_context(ctx.source, ctx.evaluator, revision=revision, page_size=ctx.settings.page_size)
    writer = ctx.writer(epoch_id=epoch_id, ordered=False)
    applier = Applier(evaluator=ctx.evaluator, sink=ctx.sink, writer=writer)
    beating = asyncio.create_task(_heartbeat(writer), name="sync-heartbeat")
    scanned: set[ResourceType] = set()
    guard = ctx.guard()
    try:
        for number, phase in enumerate(ctx.evaluator.rules.phases(), start=1):
            types = sorted((rt for rt in ctx.evaluator.types_for(phase) if rt not in scanned), key=owner_rank)
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
                    guard.check(page.header)
                    await applier.apply_kvs(page.kvs)
            await writer.submit()
            await writer.drain()
        await writer.submit()
        await writer.drain()
        await prune(ctx, applier, epoch_id=epoch_id, revision=revision)
        await _stop(beating)
        await writer.finish(checkpoint=revision, phase="watching")
    except BaseException:
        await _stop(beating)
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


async def _heartbeat(writer: DestWriter) -> None:
    """Keep the checkpoint moving during a long sync, so no second replicator starts meanwhile."""
    while True:
        await asyncio.sleep(HEARTBEAT)
        await writer.heartbeat(revision=0, phase="syncing")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    if isinstance(results[0], Exception):
        raise results[0]


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
