"""The main job on real data: the twelve real values mirrored under the seed's example rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd
from replicator.journal import Journal

from .conftest import (
    CHECKPOINT,
    EXPECTED_KEYS,
    REAL,
    SEED_RULES,
    dump,
    load_fixtures,
    put_raw,
    replicator_cli,
    run_once,
)

pytestmark = pytest.mark.integration


async def test_full_sync_copies_exactly_the_selected_keys_byte_for_byte(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    settings = make_settings(source, dest, once=True)

    result = await runner.run(settings)

    mirrored = dump(dest.endpoint)
    assert set(mirrored) == EXPECTED_KEYS | {CHECKPOINT}
    for key in EXPECTED_KEYS:
        assert mirrored[key] == values[key], key
    checkpoint = json.loads(mirrored[CHECKPOINT])
    assert checkpoint["revision"] == result.revision == 13  # a new etcd is at revision 1; twelve puts follow
    assert checkpoint["phase"] == "watching"

    journal = Journal.open(settings.journal_url)
    try:
        (copy,) = journal.key_history("/registry/secrets/unique/test")
    finally:
        journal.close()
    assert copy.action == "copy" and copy.rule is not None and copy.rule.startswith("secondary[0]")


async def test_decisions_name_their_rule_and_reason(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    settings = make_settings(source, dest, once=True)
    await runner.run(settings)
    journal = Journal.open(settings.journal_url)
    try:
        ns = journal.key_history("/registry/namespaces/unit-test")
        secret = journal.key_history("/registry/secrets/unit-test/influxdb")
        cm = journal.key_history("/registry/configmaps/default/influxdb")
    finally:
        journal.close()
    assert [d.action for d in ns] == ["skip"] and "labelSelectors" in ns[0].reason
    assert [d.action for d in secret] == ["skip"] and "namespace" in secret[0].reason
    assert [d.action for d in cm] == ["skip"] and "namespace" in cm[0].reason
    # A skipped Secret is journaled by digest only: no decrypted content anywhere in its record.
    assert secret[0].value_digest is None


def test_cli_once_with_the_seed_flags_mirrors_the_same_set(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    proc = replicator_cli(
        *("run", "--master-endpoints", source.endpoint, "--slave-endpoints", dest.endpoint),  # seed spellings
        *("--mirror-rule", str(SEED_RULES)),
        *("--encryption-provider-config", str(REAL / "encryption-config.yaml")),
        *("--master-insecure-transport=true", "--dial-timeout", "2s", "--once"),
        *("--journal", f"sqlite:///{tmp_path / 'j.db'}"),
    )
    assert proc.returncode == 0, proc.stderr
    assert set(dump(dest.endpoint)) == EXPECTED_KEYS | {CHECKPOINT}
    assert "5 copied" in proc.stderr


def test_bad_rule_file_stops_before_anything_is_written(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "filters:\n  secondary:\n    - group: ''\n      resources:\n        - kind: ConfigMap\n"
        "      labelSelectors:\n        - matchExpressions:\n            - key: a\n"
        "              operator: Inn\n"
    )
    proc = run_once(source.endpoint, dest.endpoint, tmp_path / "j.db", rules=bad, encrypted=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rules.yaml:9" in lines[0] and "Inn" in lines[0], proc.stderr
    assert dump(dest.endpoint) == {}


def test_unreachable_endpoint_is_one_clear_line(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, _ = etcd_pair
    rules = tmp_path / "rules.yaml"  # this test is about the endpoint: no shared fixtures needed
    rules.write_text("filters:\n  secondary:\n    - group: ''\n      resources:\n        - kind: ConfigMap\n")
    proc = run_once(
        source.endpoint,
        "127.0.0.1:1",
        tmp_path / "j.db",
        "--dial-timeout",
        "1s",
        rules=rules,
        encrypted=False,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], proc.stderr


async def test_a_bad_value_is_journaled_and_skipped_without_stopping_the_sync(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings]
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    bad_key = "/registry/configmaps/unit-test/broken"
    put_raw(source.endpoint, bad_key, b"k8s\x00\x0a\xff\xff garbage")
    settings = make_settings(source, dest, once=True)

    result = await runner.run(settings)

    mirrored = dump(dest.endpoint)
    assert bad_key not in mirrored
    assert set(mirrored) == EXPECTED_KEYS | {CHECKPOINT}
    assert result.metrics["keys_failed"] == 1
    journal = Journal.open(settings.journal_url)
    try:
        (failed,) = journal.key_history(bad_key)
    finally:
        journal.close()
    assert failed.action == "fail" and failed.reason
