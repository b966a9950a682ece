"""Live changes while watching, restart from the checkpoint; results read back with etcdctl."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd import ClientConfig, EtcdClient
from replicator.etcd.local import LocalEtcd
from replicator.journal import Journal
from replicator.kube import synth

from .conftest import CHECKPOINT, EXPECTED_KEYS, dump, load_fixtures, put_raw, run_etcdctl_del

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KIND = "test.io/namespace-kind"
NEW_CM = "/registry/configmaps/unit-test/new"


@asynccontextmanager
async def mirroring(
    settings: Settings, *, synced: bool = True
) -> AsyncIterator[asyncio.Task[runner.RunResult]]:
    """Run the mirror in the background; yield once the full sync is done (or at once)."""
    stop = asyncio.Event()
    done = asyncio.Event()
    task = asyncio.create_task(runner.run(settings, stop=stop, on_synced=lambda _rev: done.set()))
    if synced:
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
        waiter.cancel()
        if task.done():
            task.result()
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def eventually(
    check: Callable[[dict[str, bytes]], bool], endpoint: str, *, within: float = 15.0
) -> dict[str, bytes]:
    deadline = time.monotonic() + within
    while True:
        state = await asyncio.to_thread(dump, endpoint)
        if check(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"destination did not converge; it holds {sorted(state)}")
        await asyncio.sleep(0.1)


def cm(labels: dict[str, str], data: str) -> bytes:
    return synth.configmap("unit-test", "new", labels=labels, data={"value": data})


async def test_live_changes_create_update_relabel_delete(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    async with mirroring(make_settings(source, dest)):
        v1 = cm({KIND: "x"}, "1")
        put_raw(source.endpoint, NEW_CM, v1)
        await eventually(lambda s: s.get(NEW_CM) == v1, dest.endpoint)

        v2 = cm({KIND: "x"}, "2")
        put_raw(source.endpoint, NEW_CM, v2)
        await eventually(lambda s: s.get(NEW_CM) == v2, dest.endpoint)

        put_raw(source.endpoint, NEW_CM, cm({}, "3"))  # label removed: leaves scope
        await eventually(lambda s: NEW_CM not in s, dest.endpoint)

        v4 = cm({KIND: "y"}, "4")  # label back: enters scope again
        put_raw(source.endpoint, NEW_CM, v4)
        await eventually(lambda s: s.get(NEW_CM) == v4, dest.endpoint)

        run_etcdctl_del(source.endpoint, NEW_CM)
        state = await eventually(lambda s: NEW_CM not in s, dest.endpoint)
        assert set(state) == EXPECTED_KEYS | {CHECKPOINT}


async def test_namespace_relabel_brings_its_objects_in_and_out(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    entering = {
        "/registry/namespaces/unit-test",
        "/registry/secrets/unit-test/influxdb",
        "/registry/secrets/unit-test/exclude-me-secret",  # the exclude names namespace "unique" only
    }
    async with mirroring(make_settings(source, dest)):
        put_raw(
            source.endpoint,
            "/registry/namespaces/unit-test",
            synth.namespace("unit-test", labels={KIND: "unique"}),
        )
        state = await eventually(lambda s: entering <= set(s), dest.endpoint)
        for key in entering - {"/registry/namespaces/unit-test"}:
            assert state[key] == values[key]  # still the source's ciphertext, byte for byte

        put_raw(
            source.endpoint,
            "/registry/namespaces/unit-test",
            synth.namespace("unit-test", labels={KIND: "unit"}),
        )
        state = await eventually(lambda s: not (entering & set(s)), dest.endpoint)
        assert set(state) == EXPECTED_KEYS | {CHECKPOINT}


async def test_keys_the_replicator_did_not_write_are_never_removed(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    own = b"the standby's own value"
    put_raw(dest.endpoint, NEW_CM, own)
    async with mirroring(make_settings(source, dest)):
        put_raw(source.endpoint, NEW_CM, cm({}, "out of scope"))
        run_etcdctl_del(source.endpoint, NEW_CM)
        put_raw(source.endpoint, "/registry/configmaps/unit-test/marker", cm({KIND: "x"}, "m"))
        state = await eventually(lambda s: "/registry/configmaps/unit-test/marker" in s, dest.endpoint)
    assert state[NEW_CM] == own


async def test_restart_resumes_from_the_checkpoint_without_a_new_full_sync(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest)
    async with mirroring(settings):
        pass
    # While the replicator is down: a delete, a create, and a Secret that only a namespace
    # selector brings in (the resumed run must know the namespaces' labels without a full sync).
    run_etcdctl_del(source.endpoint, "/registry/secrets/unique/test")
    v = cm({KIND: "x"}, "while down")
    put_raw(source.endpoint, NEW_CM, v)
    new_secret = "/registry/secrets/unique/created-while-down"
    sv = synth.secret("unique", "created-while-down", labels={}, data={"k": b"v"})
    put_raw(source.endpoint, new_secret, sv)

    async with mirroring(settings, synced=False) as task:
        state = await eventually(
            lambda s: (
                s.get(NEW_CM) == v and s.get(new_secret) == sv and "/registry/secrets/unique/test" not in s
            ),
            dest.endpoint,
        )
    result = task.result()
    expected = (EXPECTED_KEYS - {"/registry/secrets/unique/test"}) | {NEW_CM, new_secret, CHECKPOINT}
    assert set(state) == expected
    assert result.metrics["keys_copied"] == 2 and result.metrics["keys_deleted"] == 1  # no second full sync
    assert json.loads(state[CHECKPOINT])["epoch"] == 1
    journal = Journal.open(settings.journal_url)
    try:
        status = journal.status()
    finally:
        journal.close()
    assert status.epoch is not None and status.epoch.id == 1


async def test_a_key_created_and_deleted_within_one_long_catch_up_is_deleted(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    """Catching up, one step can span many transactions; a copy journaled mid-step must still be
    known as managed when its delete arrives later in the same step."""
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest)
    async with mirroring(settings):
        pass
    victims = [f"/registry/configmaps/unit-test/victim{i}" for i in range(3)]
    fillers = 600  # several destination transactions between each create and its delete
    async with await EtcdClient.connect(ClientConfig(endpoints=(source.endpoint,))) as client:
        for round_, victim in enumerate(victims):
            await client.put(victim.encode(), cm({KIND: "x"}, "victim"))
            for start in range(0, fillers, 100):
                keys = [
                    f"/registry/configmaps/unit-test/filler-{round_}-{i}" for i in range(start, start + 100)
                ]
                await asyncio.gather(*[client.put(k.encode(), cm({KIND: "x"}, k)) for k in keys])
            await client.delete(victim.encode())
    async with mirroring(settings, synced=False):
        state = await eventually(
            lambda s: sum(k.startswith("/registry/configmaps/unit-test/filler-") for k in s) == 3 * fillers,
            dest.endpoint,
            within=60,
        )
    assert not set(victims) & set(state)
