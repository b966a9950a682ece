"""Network faults through the proxies: the replicator pauses without spinning, then converges."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from support.replicator import Replicator, converge, synced, wait_for
from support.workload import Workload

from .conftest import OWN, Rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FAULT_SECONDS = 4.0
MAX_CPU_SHARE = 0.25  # of one core while the fault lasts; a busy retry loop uses ~1.0


FAULTS: dict[str, Callable[[Rig], None]] = {
    "cut-source": lambda r: r.source_proxy.cut(),
    "cut-dest": lambda r: r.dest_proxy.cut(),
    "source-answers-lost": lambda r: r.source_proxy.one_way(pass_="c2s"),  # requests arrive, replies don't
    "source-requests-lost": lambda r: r.source_proxy.one_way(pass_="s2c"),
    "dest-answers-lost": lambda r: r.dest_proxy.one_way(pass_="c2s"),  # txns may commit unacknowledged
    "dest-silent": lambda r: r.dest_proxy.blackhole(),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_partition_pauses_without_spinning_and_resumes(
    rig: Rig, fault: str, replicators: list[Replicator]
) -> None:
    workload = Workload(rig.source.endpoint, seed=21, pause=0.02, max_seconds=60)
    workload.seed_initial(objects=40)
    journal = f"sqlite:///{rig.tmp / 'journal.db'}"
    rep = rig.replicator(journal)
    replicators.append(rep)
    rep.start()
    wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=30, rep=rep)
    workload.start()
    try:
        workload.wait_ops(30)
        FAULTS[fault](rig)
        time.sleep(1.0)  # let in-flight calls fail and the retry policy settle
        cpu0, t0 = rep.cpu_seconds(), time.monotonic()
        time.sleep(FAULT_SECONDS)
        rep.assert_alive()
        share = (rep.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        rig.source_proxy.heal()
        rig.dest_proxy.heal()
        workload.wait_ops(30)
    finally:
        rig.source_proxy.heal()
        rig.dest_proxy.heal()
        workload.stop()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=45)
    assert share < MAX_CPU_SHARE, f"replicator used {share:.0%} of a core while {fault}: a busy loop"
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(journal)


@pytest.mark.timeout(90)
def test_latency_on_both_sides_still_converges(rig: Rig, replicators: list[Replicator]) -> None:
    workload = Workload(rig.source.endpoint, seed=22, pause=0.02, max_seconds=60)
    workload.seed_initial(objects=40)
    journal = f"sqlite:///{rig.tmp / 'journal.db'}"
    rep = rig.replicator(journal)
    replicators.append(rep)
    rig.source_proxy.delay(0.2)
    rig.dest_proxy.delay(0.2)
    rep.start()
    wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=45, rep=rep)
    workload.start()
    try:
        workload.wait_ops(80, timeout=20)
    finally:
        workload.stop()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=45)
    assert rep.stop() == 0, rep.log_tail()
    rig.verify(rep.journal)
