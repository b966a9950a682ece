"""EtcdClient against real etcd servers: reads, pagination, watch, txn, limits, compaction."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from replicator.etcd import (
    ClientConfig,
    Compare,
    Delete,
    EtcdClient,
    EtcdCompacted,
    EtcdRequestTooLarge,
    EtcdTooManyOps,
    Event,
    EventType,
    Get,
    Put,
    prefix_end,
)
from replicator.etcd.local import LocalEtcd

if TYPE_CHECKING:
    from tests.conftest import Etcdctl, EtcdFactory

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_tasks")]


@pytest.fixture
def server(etcd_factory: EtcdFactory) -> LocalEtcd:
    return etcd_factory("kv", extra_args=("--experimental-watch-progress-notify-interval=500ms",))


@pytest.fixture
async def client(server: LocalEtcd) -> AsyncIterator[EtcdClient]:
    async with await EtcdClient.connect(ClientConfig(endpoints=(server.endpoint,))) as c:
        yield c


async def test_put_get_delete_checked_with_etcdctl(
    client: EtcdClient, server: LocalEtcd, etcdctl: Etcdctl
) -> None:
    header = await client.put(b"/a/1", b"one")
    assert header.revision > 1
    assert etcdctl(server.endpoint, "get", "/a/1", "--print-value-only").stdout.strip() == "one"
    kv = await client.get(b"/a/1")
    assert kv is not None and kv.value == b"one" and kv.mod_revision == header.revision
    assert await client.get(b"/nope") is None
    etcdctl(server.endpoint, "put", "/a/2", "two")
    assert await client.delete(b"/a/", prefix=True) == 2
    assert etcdctl(server.endpoint, "get", "/a/", "--prefix", "--keys-only").stdout.strip() == ""


async def test_range_revision_limit_and_continuation(client: EtcdClient) -> None:
    for i in range(5):
        await client.put(b"/r/%d" % i, b"v%d" % i)
    rev = (await client.put(b"/r/2", b"changed")).revision
    old = await client.range(b"/r/", prefix_end(b"/r/"), revision=rev - 1)
    assert [kv.value for kv in old.kvs] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    first = await client.range(b"/r/", prefix_end(b"/r/"), limit=2)
    assert [kv.key for kv in first.kvs] == [b"/r/0", b"/r/1"] and first.more and first.count == 5
    rest = await client.range(first.kvs[-1].key + b"\0", prefix_end(b"/r/"), limit=10)
    assert [kv.key for kv in rest.kvs] == [b"/r/2", b"/r/3", b"/r/4"] and not rest.more
    assert rest.kvs[0].value == b"changed"
    counted = await client.range(b"/r/", prefix_end(b"/r/"), count_only=True)
    assert counted.count == 5 and counted.kvs == ()
    keys = await client.range(b"/r/", prefix_end(b"/r/"), keys_only=True)
    assert all(kv.value == b"" for kv in keys.kvs)


async def test_pagination_pinned_to_first_revision(client: EtcdClient) -> None:
    """Pages read after later writes still show exactly the snapshot of the first page."""
    for i in range(23):
        await client.put(b"/p/%02d" % i, b"old-%d" % i)
    expected = {b"/p/%02d" % i: b"old-%d" % i for i in range(23)}
    pages = client.range_pages(b"/p/", page_size=4)
    first = await anext(pages)
    # concurrent churn: modify, delete, add - before the remaining pages are read
    await client.put(b"/p/05", b"new")
    await client.delete(b"/p/10")
    await client.put(b"/p/99", b"added")
    await client.put(b"/p/005", b"added-between")
    seen = {kv.key: kv.value for kv in first.kvs}
    revisions = {first.header.revision}
    async for page in pages:
        assert len(page.kvs) <= 4
        seen.update({kv.key: kv.value for kv in page.kvs})
        revisions.add(page.header.revision)
    assert seen == expected
    # explicit revision: same answer
    explicit = {
        kv.key: kv.value
        async for page in client.range_pages(b"/p/", revision=first.header.revision, page_size=7)
        for kv in page.kvs
    }
    assert explicit == expected


async def test_watch_from_revision_with_prev_kv(client: EtcdClient) -> None:
    start = (await client.put(b"/w/a", b"1")).revision
    await client.put(b"/w/a", b"2")
    await client.delete(b"/w/a")
    await client.put(b"/other", b"x")
    events: list[Event] = []
    stream = client.watch(b"/w/", prefix=True, start_revision=start, progress_notify=False)
    async for batch in stream:
        events.extend(batch.events)
        if len(events) >= 3:
            break
    await stream.aclose()
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        (EventType.PUT, b"/w/a", b"1"),
        (EventType.PUT, b"/w/a", b"2"),
        (EventType.DELETE, b"/w/a", b""),
    ]
    assert events[0].prev_kv is None
    assert events[1].prev_kv is not None and events[1].prev_kv.value == b"1"
    assert events[2].prev_kv is not None and events[2].prev_kv.value == b"2"
    assert events[2].kv.mod_revision == start + 2


async def test_progress_notifications_reach_the_consumer(client: EtcdClient) -> None:
    rev = (await client.put(b"/quiet", b"x")).revision
    stream = client.watch(b"/quiet/", prefix=True, start_revision=rev + 1)
    async with asyncio.timeout(5):
        batch = await anext(stream)
    await stream.aclose()
    assert batch.progress and batch.events == () and batch.header.revision >= rev


async def test_request_progress(etcd_factory: EtcdFactory) -> None:
    server = etcd_factory("noprogress")  # default 10 min interval: only requested progress
    async with await EtcdClient.connect(ClientConfig(endpoints=(server.endpoint,))) as client:
        rev = (await client.put(b"/k", b"v")).revision
        stream = client.watch(b"/q/", prefix=True, start_revision=rev + 1)
        next_batch = asyncio.ensure_future(anext(stream))
        async with asyncio.timeout(5):
            while not next_batch.done():
                await client.request_progress()
                await asyncio.sleep(0.1)
        batch = next_batch.result()
        await stream.aclose()
        assert batch.progress and batch.header.revision == rev


async def test_watch_compacted_start_revision(client: EtcdClient) -> None:
    for i in range(5):
        await client.put(b"/c", b"%d" % i)
    rev = (await client.put(b"/c", b"last")).revision
    await client.compact(rev - 1, physical=True)
    with pytest.raises(EtcdCompacted) as info:
        async for _ in client.watch(b"/c", start_revision=2):
            pass
    assert info.value.compact_revision == rev - 1


async def test_range_compacted_revision(client: EtcdClient, server: LocalEtcd, etcdctl: Etcdctl) -> None:
    for i in range(5):
        await client.put(b"/c", b"%d" % i)
    rev = (await client.put(b"/c", b"last")).revision
    etcdctl(server.endpoint, "compact", str(rev - 2))  # compacted by another tool
    with pytest.raises(EtcdCompacted) as info:
        await client.range(b"/c", revision=rev - 3)
    assert info.value.compact_revision == rev - 2
    assert "compacted" in str(info.value)
    assert (await client.range(b"/c", revision=rev - 2)).kvs[0].value == b"3"


async def test_txn_success_and_failure_branches(
    client: EtcdClient, server: LocalEtcd, etcdctl: Etcdctl
) -> None:
    created = await client.txn(
        [Compare(b"/t/lock", "create", "=", 0)],
        [Put(b"/t/lock", b"me"), Put(b"/t/data", b"1")],
        [Get(b"/t/lock")],
    )
    assert created.succeeded and len(created.responses) == 2
    assert etcdctl(server.endpoint, "get", "/t/data", "--print-value-only").stdout.strip() == "1"
    again = await client.txn(
        [Compare(b"/t/lock", "create", "=", 0)],
        [Put(b"/t/lock", b"other")],
        [Get(b"/t/", prefix_end(b"/t/")), Delete(b"/t/data")],
    )
    assert not again.succeeded
    got, deleted = again.responses
    assert isinstance(got, tuple) and [kv.key for kv in got] == [b"/t/data", b"/t/lock"]
    assert deleted == 1
    by_value = await client.txn(
        [Compare(b"/t/lock", "value", "=", b"me")], [Delete(b"/t/lock", prev_kv=True)]
    )
    assert by_value.succeeded and by_value.responses == (1,)
    mod = await client.txn([Compare(b"/t/lock", "mod", ">", 0)], [Put(b"/x", b"y")])
    assert not mod.succeeded and mod.responses == ()


async def test_too_many_txn_ops(etcd_factory: EtcdFactory) -> None:
    server = etcd_factory("small", extra_args=("--max-txn-ops=4",))
    async with await EtcdClient.connect(ClientConfig(endpoints=(server.endpoint,))) as client:
        assert (await client.txn([], [Put(b"/k%d" % i, b"v") for i in range(4)])).succeeded
        with pytest.raises(EtcdTooManyOps):
            await client.txn([], [Put(b"/k%d" % i, b"v") for i in range(5)])


async def test_request_too_large(etcd_factory: EtcdFactory, etcdctl: Etcdctl) -> None:
    server = etcd_factory("tiny", extra_args=("--max-request-bytes=4096",))
    async with await EtcdClient.connect(ClientConfig(endpoints=(server.endpoint,))) as client:
        with pytest.raises(EtcdRequestTooLarge, match="too large"):
            await client.put(b"/big", b"x" * 8192)
        await client.put(b"/ok", b"x" * 3000)
    small = ClientConfig(endpoints=(server.endpoint,), max_receive_bytes=1024)
    async with await EtcdClient.connect(small) as client:
        with pytest.raises(EtcdRequestTooLarge):
            await client.get(b"/ok")


async def test_status_and_cluster_id(client: EtcdClient, server: LocalEtcd, etcdctl: Etcdctl) -> None:
    status = await client.status()
    out = json.loads(etcdctl(server.endpoint, "endpoint", "status", "-w", "json").stdout)[0]["Status"]
    assert status.header.cluster_id == out["header"]["cluster_id"]
    assert await client.cluster_id() == out["header"]["cluster_id"]
    assert status.leader == out["leader"] and status.version == out["version"]
    assert status.db_size > 0 and status.raft_index > 0
    (member,) = await client.member_list()
    assert member.name == "kv" and member.client_urls == (server.url,)


async def test_lease_grant(client: EtcdClient, server: LocalEtcd, etcdctl: Etcdctl) -> None:
    lease = await client.lease_grant(60)
    await client.put(b"/leased", b"v", lease=lease)
    kv = await client.get(b"/leased")
    assert kv is not None and kv.lease == lease
    assert f"{lease:x}" in etcdctl(server.endpoint, "lease", "list").stdout


def _watchers(server: LocalEtcd) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=2) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return float(line.split()[1])
    raise AssertionError("watcher gauge not found")


async def test_leaving_a_watch_cancels_the_stream(client: EtcdClient, server: LocalEtcd) -> None:
    rev = (await client.put(b"/s", b"1")).revision
    async for batch in client.watch(b"/s", start_revision=rev, progress_notify=False):
        assert batch.events[0].kv.value == b"1"
        assert _watchers(server) == 1
        break  # no aclose(): the async generator finaliser must still cancel the stream
    for _ in range(50):
        if _watchers(server) == 0:
            break
        await asyncio.sleep(0.05)
    assert _watchers(server) == 0
