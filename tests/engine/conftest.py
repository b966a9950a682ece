"""Fixtures for mirror tests: the real fixture values in a source etcd, and an independent reader.

The destination is always read back with etcdctl (``-w json``, base64 keys and values), never
with the replicator's own client.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from replicator.config import EndpointSettings, Settings
from replicator.etcd.local import LocalEtcd, etcdctl_path

SHARED = Path(os.environ.get("REPLICATOR_SHARED", Path(__file__).resolve().parents[3] / "shared"))
REAL = SHARED / "fixtures" / "real-values"
SEED_RULES = SHARED / "fixtures" / "seed-example" / "rules.yaml"

# Worked out by hand from the seed's rules and the fixtures' labels (tests/kube prints them):
#  - sequential 1: every CRD                                   -> nodes.longhorn.io
#  - sequential 2: Namespaces labelled namespace-kind In (unique, unit-test)
#                  unique=unique (in); unit-test=unit (out); rook-ceph has no such label (out)
#  - secondary 0: Secrets in namespaces labelled unique, type NotIn SA-token, exclude unique/exclude-me-secret
#                  unique/influxdb and unique/test (Opaque) in; unit-test/* out (namespace label is "unit")
#  - secondary 1: ConfigMaps in namespace unit-test with label namespace-kind Exists -> unit-test/influxdb
#  Service, CephBlockPool: no rule names them.
EXPECTED_KEYS = {
    "/registry/apiextensions.k8s.io/customresourcedefinitions/nodes.longhorn.io",
    "/registry/namespaces/unique",
    "/registry/secrets/unique/influxdb",
    "/registry/secrets/unique/test",
    "/registry/configmaps/unit-test/influxdb",
}
CHECKPOINT = "/etcd-replicator/checkpoint"


def need_fixtures() -> None:
    if not (REAL / "index.json").is_file():
        pytest.skip(f"shared fixtures not found at {REAL} (set REPLICATOR_SHARED to the shared/ folder)")


def fixture_values() -> dict[str, bytes]:
    need_fixtures()
    index = json.loads((REAL / "index.json").read_text())
    return {e["key"]: (REAL / e["file"]).read_bytes() for e in index}


def dump(endpoint: str, prefix: str = "/") -> dict[str, bytes]:
    """Every key under ``prefix`` on a server, read with etcdctl."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    out = subprocess.run(
        [str(etcdctl_path()), f"--endpoints={endpoint}", "get", "--prefix", prefix, "-w", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    doc = json.loads(out)
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
        for kv in doc.get("kvs", [])
    }


def put_raw(endpoint: str, key: str, value: bytes) -> None:
    """Write one value with etcdctl (stdin carries binary values unchanged)."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    subprocess.run(
        [str(etcdctl_path()), f"--endpoints={endpoint}", "put", key],
        input=value,
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )


def load_fixtures(server: LocalEtcd) -> dict[str, bytes]:
    values = fixture_values()
    for key, value in values.items():
        put_raw(server.endpoint, key, value)
    return values


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(source: LocalEtcd, dest: LocalEtcd, **overrides: object) -> Settings:
        need_fixtures()
        base: dict[str, object] = dict(
            source=EndpointSettings(endpoints=(source.endpoint,)),
            dest=EndpointSettings(endpoints=(dest.endpoint,)),
            rules_file=SEED_RULES,
            encryption_provider_config=REAL / "encryption-config.yaml",
            journal_url=f"sqlite:///{tmp_path / 'journal.db'}",
            state_dir=tmp_path,
        )
        base.update(overrides)
        return Settings(**base)  # type: ignore[arg-type]

    return make


def run_etcdctl_del(endpoint: str, key: str) -> None:
    env = {**os.environ, "ETCDCTL_API": "3"}
    subprocess.run(
        [str(etcdctl_path()), f"--endpoints={endpoint}", "del", key],
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )


def replicator_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m replicator ARGS`` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "replicator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_once(
    source: str, dest: str, journal: Path, *extra: str, rules: Path = SEED_RULES, encrypted: bool = True
) -> subprocess.CompletedProcess[str]:
    """`replicator run --once` from ``source`` to ``dest`` (endpoints) with an SQLite journal."""
    enc = ["--encryption-provider-config", str(REAL / "encryption-config.yaml")] if encrypted else []
    return replicator_cli(
        "run",
        "--source-endpoints",
        source,
        "--dest-endpoints",
        dest,
        "--mirror-rule",
        str(rules),
        *enc,
        "--journal",
        f"sqlite:///{journal}",
        "--once",
        *extra,
    )
