"""Fault-test fixtures: real source and destination etcd, a proxy in front of each, the replicator
as a subprocess pointed at the proxies, the test rule file, and a journal on SQLite or PostgreSQL.

The destination also holds standby-own keys (``OWN``) that the replicator must never touch.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import oracle  # tests/ is on sys.path: tests/faults is a package under it
from support.postgres import PgServer, pg_server
from support.proxy import Proxy
from support.replicator import Replicator

from replicator.etcd.local import LocalEtcd

OWN = {
    "/registry/configmaps/standby-only/own": b"the standby's own configmap",
    "/standby/own": b"outside the kube prefix",
}

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Rig:
    source: LocalEtcd
    dest: LocalEtcd
    source_proxy: Proxy
    dest_proxy: Proxy
    rules: Path
    tmp: Path

    def replicator(
        self, journal: str, *, extra: tuple[str, ...] = (), name: str = "replicator"
    ) -> Replicator:
        return Replicator(
            source=self.source_proxy.endpoint,
            dest=self.dest_proxy.endpoint,
            rules=self.rules,
            journal=journal,
            state_dir=self.tmp / "state",
            log_path=self.tmp / f"{name}.log",
            extra=extra,
        )

    def verify(self, journal: str) -> None:
        """``replicator verify`` (another implementation's view) must report no drift."""
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "replicator",
                "verify",
                f"--source-endpoints={self.source.endpoint}",
                f"--dest-endpoints={self.dest.endpoint}",
                f"--mirror-rule={self.rules}",
                f"--journal={journal}",
                f"--state-dir={self.tmp / 'state'}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, (
            f"replicator verify exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )

    def own_intact(self) -> None:
        _, dst = oracle.dump(self.dest.endpoint)
        for key, value in OWN.items():
            assert dst.get(key) == value, f"standby-own key {key} was changed or removed"


def make_rig(factory: Any, tmp_path: Path, *, source_args: tuple[str, ...] = ()) -> Iterator[Rig]:
    source = factory("source", extra_args=source_args)
    dest = factory("dest")
    rules = tmp_path / "rules.yaml"
    rules.write_text(oracle.RULES_YAML)
    for key, value in OWN.items():
        oracle.etcdctl(dest.endpoint, "put", key, value.decode())
    sp = Proxy(source.spec.client_port, name="source-proxy")
    dp = Proxy(dest.spec.client_port, name="dest-proxy")
    try:
        yield Rig(source, dest, sp, dp, rules, tmp_path)
    finally:
        sp.close()
        dp.close()


@pytest.fixture
def rig(etcd_factory: Any, tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(etcd_factory, tmp_path)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    server: PgServer = request.getfixturevalue("pg")
    return server.new_database()


@pytest.fixture
def replicators() -> Iterator[list[Replicator]]:
    """Register every replicator a test starts here: each is killed at teardown."""
    started: list[Replicator] = []
    yield started
    for rep in started:
        rep.kill()
