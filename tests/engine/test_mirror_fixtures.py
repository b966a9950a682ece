"""The main job on real data: the twelve real values mirrored under the seed's example rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd
from replicator.journal import Journal

from .conftest import CHECKPOINT, EXPECTED_KEYS, REAL, SEED_RULES, dump, load_fixtures, put_raw

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
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "run",
        "--master-endpoints",
        source.endpoint,  # the seed walkthrough's spellings
        "--slave-endpoints",
        dest.endpoint,
        "--mirror-rule",
        str(SEED_RULES),
        "--encryption-provider-config",
        str(REAL / "encryption-config.yaml"),
        "--master-insecure-transport=true",
        "--dial-timeout",
        "2s",
        "--journal",
        f"sqlite:///{tmp_path / 'j.db'}",
        "--once",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
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
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "run",
        "--source-endpoints",
        source.endpoint,
        "--dest-endpoints",
        dest.endpoint,
        "--mirror-rule",
        str(bad),
        "--once",
        "--journal",
        f"sqlite:///{tmp_path / 'j.db'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rules.yaml:9" in lines[0] and "Inn" in lines[0], proc.stderr
    assert dump(dest.endpoint) == {}


def test_unreachable_endpoint_is_one_clear_line(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, _ = etcd_pair
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "run",
        "--source-endpoints",
        source.endpoint,
        "--dest-endpoints",
        "127.0.0.1:1",
        "--mirror-rule",
        str(SEED_RULES),
        "--once",
        "--journal",
        f"sqlite:///{tmp_path / 'j.db'}",
        "--dial-timeout",
        "1s",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
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
