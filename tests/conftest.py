"""Fixtures shared by every test directory: real local etcd servers and an independent etcdctl.

``etcd_factory`` starts ``LocalEtcd`` servers under the test's ``tmp_path`` and stops every one
at teardown, even after a failure. ``etcdctl`` runs the real etcdctl binary (API v3) so tests
check results with a tool other than the code under test. ``no_leaked_tasks`` fails a test that
leaves asyncio tasks running behind it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from replicator.etcd.local import LocalEtcd, TlsFiles, etcdctl_path


class EtcdFactory(Protocol):
    def __call__(
        self,
        name: str = "etcd",
        *,
        extra_args: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
        start: bool = True,
    ) -> LocalEtcd: ...


class Etcdctl(Protocol):
    def __call__(
        self, endpoint: str, *args: str, check: bool = True, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]: ...


def run_etcdctl(
    endpoint: str, *args: str, check: bool = True, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``etcdctl --endpoints=<endpoint> <extra> <args>``; ``extra`` carries --user, --cacert..."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    cmd = [str(etcdctl_path()), f"--endpoints={endpoint}", "--command-timeout=5s", *extra, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def etcdctl() -> Etcdctl:
    return run_etcdctl


@pytest.fixture
def etcd_factory(tmp_path: Path) -> Iterator[EtcdFactory]:
    started: list[LocalEtcd] = []

    def factory(
        name: str = "etcd",
        *,
        extra_args: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
        start: bool = True,
    ) -> LocalEtcd:
        server = LocalEtcd.create(name, tmp_path / name, extra_args=extra_args, tls=tls)
        started.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def etcd_pair(etcd_factory: EtcdFactory) -> tuple[LocalEtcd, LocalEtcd]:
    """A source and a destination server, independent single-member clusters."""
    return etcd_factory("source"), etcd_factory("dest")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail the test if it leaves tasks of its own running (give them a moment to finish)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(20):
        leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
        leaked = {t for t in leaked if not t.done()}
        if not leaked:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"leaked asyncio tasks: {sorted(t.get_name() + ' ' + repr(t.get_coro()) for t in leaked)}")
