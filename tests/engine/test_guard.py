"""A different or restored source stops the mirror, unless the operator asks for a new epoch."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd
from replicator.kube import synth

from .conftest import CHECKPOINT, EXPECTED_KEYS, dump, load_fixtures, need_fixtures, put_raw, run_once

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def run(source: LocalEtcd, dest: LocalEtcd, journal: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_once(source.endpoint, dest.endpoint, journal, *extra)


def test_another_source_cluster_stops_the_mirror_until_a_new_epoch_is_asked_for(
    etcd_factory: object, tmp_path: Path
) -> None:
    need_fixtures()
    factory = etcd_factory  # type: ignore[assignment]
    first, dest, second = factory("first"), factory("dest"), factory("second")  # type: ignore[operator]
    values = load_fixtures(first)
    journal = tmp_path / "j.db"
    assert run(first, dest, journal).returncode == 0
    before = dump(dest.endpoint)

    # The "primary" is now another cluster holding only one of the keys.
    only = "/registry/namespaces/unique"
    put_raw(second.endpoint, only, values[only])
    refused = run(second, dest, journal)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("replicator:")]
    assert len(errors) == 1 and "different or restored source" in errors[0], refused.stderr
    assert dump(dest.endpoint) == before  # nothing written

    accepted = run(second, dest, journal, "--new-epoch")
    assert accepted.returncode == 0, accepted.stderr
    after = dump(dest.endpoint)
    assert set(after) == {only, CHECKPOINT}  # the first cluster's other keys were ours: pruned
    assert set(before) == EXPECTED_KEYS | {CHECKPOINT}


async def test_a_second_replicator_on_a_live_standby_is_refused_and_the_first_goes_on(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    stop = asyncio.Event()
    synced = asyncio.Event()
    first = asyncio.create_task(
        runner.run(make_settings(source, dest), stop=stop, on_synced=lambda _: synced.set())
    )
    await asyncio.wait_for(synced.wait(), 30)
    before = dump(dest.endpoint)

    second = await asyncio.to_thread(run, source, dest, tmp_path / "other-journal.db")  # another replicator

    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if line.startswith("replicator:")]
    assert len(errors) == 1 and "another replicator" in errors[0], second.stderr
    assert {k: v for k, v in dump(dest.endpoint).items() if k != CHECKPOINT} == {
        k: v for k, v in before.items() if k != CHECKPOINT
    }
    put_raw(
        source.endpoint,
        "/registry/configmaps/unit-test/after",
        synth.configmap("unit-test", "after", labels={"test.io/namespace-kind": "x"}, data={}),
    )
    for _ in range(100):
        if "/registry/configmaps/unit-test/after" in dump(dest.endpoint):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the first replicator stopped mirroring")
    assert not first.done()
    stop.set()
    await asyncio.wait_for(first, 30)
