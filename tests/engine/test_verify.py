"""`verify` on real servers: drift found by tampering with etcdctl, repaired, checked with etcdctl."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.engine.evaluate import Evaluation, Verdict
from replicator.engine.verify import Drift, VerifyImpossible, compare, verify
from replicator.etcd import EtcdClient, KeyValue
from replicator.etcd.local import LocalEtcd
from replicator.journal import Journal
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CM = "/registry/configmaps/unit-test/influxdb"
SECRET = "/registry/secrets/unique/test"
GONE = "/registry/secrets/unique/influxdb"
OWN = "/registry/configmaps/unit-test/standby-own"
KIND = "test.io/namespace-kind"


def _bump_checkpoint(endpoint: str, revision: int) -> None:
    """Move the destination checkpoint as the mirror would after following up to ``revision``."""
    state = json.loads(dump(endpoint, CHECKPOINT)[CHECKPOINT])
    state["revision"] = revision
    put_raw(endpoint, CHECKPOINT, json.dumps(state, sort_keys=True).encode())


async def _head(endpoint: str) -> int:
    from replicator.etcd import ClientConfig

    async with await EtcdClient.connect(ClientConfig(endpoints=(endpoint,))) as client:
        return (await client.status()).header.revision


async def test_no_drift_after_a_mirror_even_when_the_source_moved_on(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    await runner.run(settings)
    # After R: a change in scope, a delete; verify compares at R, so neither is drift.
    put_raw(
        source.endpoint, CM, synth.configmap("unit-test", "influxdb", labels={KIND: "x"}, data={"v": "2"})
    )
    run_etcdctl_del(source.endpoint, SECRET)

    result = await verify(settings)

    assert result.drift == Drift(revision=13, in_scope=len(EXPECTED_KEYS))
    assert result.drift.clean and result.after_repair is None


async def test_tampering_is_found_and_repaired(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    await runner.run(settings)
    # A delete on the source that the destination never received (checkpoint moved anyway):
    # GONE is managed, on the destination, and not in scope at the new R.
    run_etcdctl_del(source.endpoint, GONE)
    revision = await _head(source.endpoint)
    _bump_checkpoint(dest.endpoint, revision)
    put_raw(dest.endpoint, CM, b"tampered")
    run_etcdctl_del(dest.endpoint, SECRET)
    put_raw(dest.endpoint, OWN, b"the standby's own key")  # not managed: never reported

    result = await verify(settings)

    assert result.drift == Drift(
        revision=revision, missing=[SECRET], different=[CM], extra=[GONE], in_scope=len(EXPECTED_KEYS) - 1
    )
    assert not result.drift.clean

    repaired = await verify(settings, fix=True)

    assert repaired.after_repair is not None and repaired.after_repair.clean
    again = await verify(settings)
    assert again.drift.clean
    state = dump(dest.endpoint)
    assert set(state) == (EXPECTED_KEYS - {GONE}) | {OWN, CHECKPOINT}
    for key in EXPECTED_KEYS - {GONE}:
        assert state[key] == values[key], key  # the source's bytes (ciphertext for the Secret)
    assert json.loads(state[CHECKPOINT])["revision"] == revision  # repair never moves it
    journal = Journal.open(settings.journal_url)
    try:
        fixes = {k: journal.key_history(k)[0] for k in (SECRET, CM, GONE)}
        assert not journal.key_history(OWN)
    finally:
        journal.close()
    assert {k: d.action for k, d in fixes.items()} == {SECRET: "copy", CM: "copy", GONE: "delete"}
    assert all(d.reason.startswith("verify --repair") for d in fixes.values())


async def test_a_compacted_revision_cannot_be_verified(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    await runner.run(settings)
    put_raw(source.endpoint, "/registry/configmaps/default/later", b"x")
    await _compact_at_head(settings)

    with pytest.raises(VerifyImpossible, match=r"revision 13 .*compacted"):
        await verify(settings)


async def test_no_checkpoint_means_nothing_to_verify(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    with pytest.raises(VerifyImpossible, match="no checkpoint"):
        await verify(make_settings(source, dest))


def _cli(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "verify",
        "--source-endpoints",
        settings.source.endpoints[0],
        "--dest-endpoints",
        settings.dest.endpoints[0],
        "--mirror-rule",
        str(SEED_RULES),
        "--encryption-provider-config",
        str(REAL / "encryption-config.yaml"),
        "--journal",
        settings.journal_url,
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


async def _compact_at_head(settings: Settings) -> None:
    async with await EtcdClient.connect(runner.client_config(settings.source, settings)) as client:
        await client.compact((await client.status()).header.revision, physical=True)


def test_cli_exit_codes_and_keys_only_output(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    asyncio.run(runner.run(settings))
    clean = _cli(settings)
    assert clean.returncode == 0, clean.stderr
    assert "5 keys in scope, 0 missing, 0 different, 0 extra" in clean.stdout

    put_raw(dest.endpoint, SECRET, b"tampered")
    drift = _cli(settings)
    assert drift.returncode == 1, drift.stderr
    assert f"different  {SECRET}" in drift.stdout
    assert values[SECRET].decode(errors="replace") not in drift.stdout + drift.stderr  # keys, never values

    fixed = _cli(settings, "--repair")
    assert fixed.returncode == 0, fixed.stderr
    assert dump(dest.endpoint)[SECRET] == values[SECRET]

    put_raw(source.endpoint, "/registry/configmaps/default/later", b"x")
    asyncio.run(_compact_at_head(settings))
    gone = _cli(settings)
    assert gone.returncode == 2 and "compacted" in gone.stderr, gone.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "replicator", "verify", "--help"], capture_output=True, text=True, check=True
    )
    assert "--repair" in usage.stdout and "NO replicator" in " ".join(usage.stdout.split())


async def _items(*items: object) -> AsyncIterator[object]:
    for item in items:
        yield item


def _kv(key: str, value: bytes = b"v") -> KeyValue:
    return KeyValue(key.encode(), value, 1, 1, 1, 0)


async def test_compare_merges_three_ordered_streams() -> None:
    copy, skip, fail = (Evaluation(v, "r") for v in (Verdict.COPY, Verdict.SKIP, Verdict.FAIL))
    source = _items(
        (_kv("/r/a"), copy),  # missing
        (_kv("/r/b"), copy),  # same
        (_kv("/r/c", b"new"), copy),  # different
        (_kv("/r/d"), skip),  # on dest, managed: extra
        (_kv("/r/e"), skip),  # on dest, not managed: standby's own
        (_kv("/r/f"), fail),  # unreadable: never extra
    )
    dest = _items(
        _kv("/r/b"), _kv("/r/c", b"old"), _kv("/r/d"), _kv("/r/e"), _kv("/r/f"), _kv("/r/g"), _kv("/r/h")
    )
    managed = _items(b"/r/0", b"/r/d", b"/r/f", b"/r/h", b"/r/z")  # /r/h: vanished from the source
    drift = await compare(source, dest, managed, revision=7)  # type: ignore[arg-type]
    assert drift == Drift(
        revision=7,
        missing=["/r/a"],
        different=["/r/c"],
        extra=["/r/d", "/r/h"],
        unreadable=["/r/f"],
        in_scope=3,
    )
