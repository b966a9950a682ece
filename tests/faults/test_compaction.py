"""Compaction storms: the source compacts at its head over and over while it changes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import journal_db, oracle
from support.replicator import Replicator, converge, synced, wait_for
from support.workload import Workload

from .conftest import OWN, Rig, make_rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

AUTO_COMPACTION = ("--auto-compaction-mode=periodic", "--auto-compaction-retention=1s")


@pytest.fixture
def compacting_rig(etcd_factory: Any, tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(etcd_factory, tmp_path, source_args=AUTO_COMPACTION)


@contextlib.contextmanager
def compacting(endpoint: str, *, every: float, max_seconds: float = 120.0) -> Iterator[list[int]]:
    """A thread that runs ``etcdctl compact <head>`` every ``every`` seconds (bounded in time)."""
    stop = threading.Event()
    done: list[int] = []

    def loop() -> None:
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(AssertionError, Exception):
                head, _ = oracle.dump(endpoint, "/nothing-here", timeout=10)
                out = oracle.etcdctl(endpoint, "compact", str(head), timeout=10)
                if "compacted revision" in out:
                    done.append(head)
            stop.wait(every)

    thread = threading.Thread(target=loop, name="compactor", daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.mark.timeout(120)
def test_compaction_storm_with_watch_falling_off_history_converges(
    compacting_rig: Rig, replicators: list[Replicator]
) -> None:
    rig = compacting_rig
    workload = Workload(rig.source.endpoint, seed=41, pause=0.01, max_seconds=60)
    workload.seed_initial(objects=60)
    journal = f"sqlite:///{rig.tmp / 'journal.db'}"
    rep = rig.replicator(journal)
    replicators.append(rep)
    rep.start()
    wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=30, rep=rep)
    workload.start()
    try:
        with compacting(rig.source.endpoint, every=0.3) as compactions:
            for _ in range(2):
                workload.wait_ops(40)
                rig.source_proxy.cut()  # the watch must restart from a revision compacted meanwhile
                workload.wait_ops(60)
                rig.source_proxy.heal()
                time.sleep(1.5)
                rep.assert_alive()
            workload.wait_ops(40)
    finally:
        rig.source_proxy.heal()
        workload.stop()
    assert len(compactions) >= 5
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=60)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(journal)
    reasons = [r for (r,) in journal_db.query(journal, "SELECT reason FROM epochs ORDER BY id")]
    assert "compaction" in reasons, f"no epoch opened for compaction: {reasons}"


@pytest.mark.timeout(150)
def test_full_sync_longer_than_the_compaction_interval_succeeds(
    compacting_rig: Rig, replicators: list[Replicator]
) -> None:
    rig = compacting_rig
    workload = Workload(rig.source.endpoint, seed=42, pause=0.05, max_seconds=90)
    workload.seed_initial(objects=20)
    workload.bulk(30_000)
    rep = rig.replicator(f"sqlite:///{rig.tmp / 'journal.db'}", extra=("--page-size=500",))
    replicators.append(rep)
    rig.source_proxy.delay(0.03)  # ~60 pages, each at least one delayed round trip
    started = time.monotonic()
    workload.start()
    try:
        with compacting(rig.source.endpoint, every=2.0) as compactions:
            rep.start()
            wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=100, interval=0.5, rep=rep)
    finally:
        workload.stop()
    took = time.monotonic() - started
    assert len(compactions) >= 2, f"only {len(compactions)} compactions during a {took:.0f}s full sync"
    rig.source_proxy.heal()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=60)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(rep.journal)
