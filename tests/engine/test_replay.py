"""`replay` on real servers: rebuild a wiped standby from the journal, checked with etcdctl dumps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.engine.replay import Step, Window, replay
from replicator.etcd import EtcdClient
from replicator.etcd.local import LocalEtcd, etcdctl_path
from replicator.journal import DecisionRecord, Journal, JournalBatch, ManagedKey
from replicator.kube import synth

from .conftest import (
    CHECKPOINT,
    EXPECTED_KEYS,
    REAL,
    SEED_RULES,
    dump,
    load_fixtures,
    put_raw,
    run_etcdctl_del,
)
from .test_watch import eventually, mirroring

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NEW_CM = "/registry/configmaps/unit-test/new"
KIND = "test.io/namespace-kind"


def _wipe(endpoint: str) -> None:
    """What an incident leaves: every Kubernetes key gone, the checkpoint still there."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    cmd = [str(etcdctl_path()), f"--endpoints={endpoint}", "del", "--prefix", "/registry/"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=30)


async def _mirror_with_live_changes(
    settings: Settings, source: LocalEtcd, dest: LocalEtcd
) -> dict[str, bytes]:
    """Full sync, then create, update and delete while watching; returns the destination's state."""
    async with mirroring(settings):
        put_raw(
            source.endpoint, NEW_CM, synth.configmap("unit-test", "new", labels={KIND: "x"}, data={"v": "1"})
        )
        v2 = synth.configmap("unit-test", "new", labels={KIND: "x"}, data={"v": "2"})
        put_raw(source.endpoint, NEW_CM, v2)
        run_etcdctl_del(source.endpoint, "/registry/secrets/unique/test")
        return await eventually(
            lambda s: s.get(NEW_CM) == v2 and "/registry/secrets/unique/test" not in s, dest.endpoint
        )


async def test_replay_rebuilds_a_wiped_destination(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest)
    before = await _mirror_with_live_changes(settings, source, dest)
    assert set(before) == (EXPECTED_KEYS - {"/registry/secrets/unique/test"}) | {NEW_CM, CHECKPOINT}
    _wipe(dest.endpoint)
    wiped = dump(dest.endpoint)
    assert set(wiped) == {CHECKPOINT}

    result = await replay(settings, Window())

    after = dump(dest.endpoint)
    assert after[CHECKPOINT] == wiped[CHECKPOINT]  # replay never moves the checkpoint
    assert {k: v for k, v in after.items() if k != CHECKPOINT} == {
        k: v for k, v in before.items() if k != CHECKPOINT
    }
    assert result.complete and result.from_journal == 0
    assert (result.copies, result.deletes) == (len(EXPECTED_KEYS) + 2, 1)
    assert result.txns == 1  # everything fits one transaction under the default bounds


async def test_dry_run_lists_and_writes_nothing(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest)
    await _mirror_with_live_changes(settings, source, dest)
    _wipe(dest.endpoint)
    steps: list[Step] = []

    result = await replay(settings, Window(from_revision=14), dry_run=True, on_step=steps.append)

    assert set(dump(dest.endpoint)) == {CHECKPOINT}
    assert result.txns == 0
    assert [(s.action, s.key, s.origin) for s in steps] == [
        ("copy", NEW_CM, "source"),
        ("copy", NEW_CM, "source"),
        ("delete", "/registry/secrets/unique/test", "-"),
    ]
    assert [s.revision for s in steps] == sorted(s.revision for s in steps)


async def test_compacted_values_come_from_the_journal_or_are_reported_by_key(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    await runner.run(settings)
    before = dump(dest.endpoint)
    async with await EtcdClient.connect(runner.client_config(settings.source, settings)) as client:
        head = (await client.status()).header.revision
        await client.compact(head, physical=True)
    journal = Journal.open(settings.journal_url)
    try:
        copies = [d for d in journal.iter_changes() if d.action == "copy"]
    finally:
        journal.close()
    compacted = sorted(d.key for d in copies if d.revision < head)
    assert compacted  # the fixtures were written at revisions 2..13

    _wipe(dest.endpoint)
    result = await replay(settings, Window())

    assert sorted(s.key for s in result.unavailable) == compacted
    assert all("compacted" in s.detail and "--journal-values" in s.detail for s in result.unavailable)
    assert set(dump(dest.endpoint)) == {CHECKPOINT} | {d.key for d in copies if d.revision >= head}

    # What `run --journal-values` records with each copy (the writer's side, simulated here).
    journal = Journal.open(settings.journal_url)
    try:
        epoch = journal.current_epoch()
        assert epoch is not None
        kept = [
            DecisionRecord(d.revision, d.key, "copy", "kept", d.rule, d.value_digest, d.value_size)
            for d in copies
        ]
        journal.record(
            JournalBatch(
                epoch.id,
                decisions=kept,
                managed_upserts=[ManagedKey(d.key, d.revision, d.value_digest or "") for d in kept],
                values=[(d.key, d.revision, values[d.key]) for d in kept],
            )
        )
    finally:
        journal.close()
    _wipe(dest.endpoint)

    result = await replay(settings, Window())

    assert result.complete and result.from_journal >= len(compacted)
    assert dump(dest.endpoint) == before  # the Secrets' ciphertext, byte for byte


def test_cli_dry_run(etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    asyncio.run(runner.run(settings))
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "replay",
        "--source-endpoints",
        source.endpoint,
        "--dest-endpoints",
        dest.endpoint,
        "--mirror-rule",
        str(SEED_RULES),
        "--encryption-provider-config",
        str(REAL / "encryption-config.yaml"),
        "--journal",
        settings.journal_url,
        "--dry-run",
        "--to-revision",
        "13",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("would copy") for line in lines) == len(EXPECTED_KEYS)
    assert "(value from the source)" in lines[0]
    assert lines[-1].startswith(f"would replay {len(EXPECTED_KEYS)} copies")
