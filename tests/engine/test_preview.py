"""Read-only commands: `run --dry-run` and `rules explain` write nothing and say why."""

from __future__ import annotations

import subprocess
import sys

import pytest

from replicator.etcd.local import LocalEtcd

from .conftest import REAL, SEED_RULES, dump, load_fixtures

pytestmark = pytest.mark.integration


def replicator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator", *args], capture_output=True, text=True, timeout=60, check=False
    )


def common(source: LocalEtcd) -> list[str]:
    return [
        "--source-endpoints",
        source.endpoint,
        "--mirror-rule",
        str(SEED_RULES),
        "--encryption-provider-config",
        str(REAL / "encryption-config.yaml"),
    ]


def test_dry_run_counts_per_rule_and_resource_and_writes_nothing(
    etcd_pair: tuple[LocalEtcd, LocalEtcd],
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    before = dump(source.endpoint)
    proc = replicator("run", "--dry-run", *common(source), "--dest-endpoints", dest.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert "5 copy" in proc.stdout and "5 skip" in proc.stdout and "nothing written" in proc.stdout
    assert "       2  copy  secrets" in proc.stdout
    assert dump(dest.endpoint) == {} and dump(source.endpoint) == before


def test_explain_names_the_rule_or_the_failing_condition(etcd_pair: tuple[LocalEtcd, LocalEtcd]) -> None:
    source, _ = etcd_pair
    load_fixtures(source)
    inside = replicator("rules", "explain", "--key", "/registry/secrets/unique/test", *common(source))
    assert inside.returncode == 0, inside.stderr
    assert "copy" in inside.stdout and "secondary[0]" in inside.stdout
    outside = replicator("rules", "explain", "--key", "/registry/secrets/unit-test/influxdb", *common(source))
    assert "skip" in outside.stdout and "namespaceSelectors" in outside.stdout
    allocator = replicator("rules", "explain", "--key", "/registry/ranges/serviceips", *common(source))
    assert "not a Kubernetes object key" in allocator.stdout
