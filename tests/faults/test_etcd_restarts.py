"""The source or destination etcd paused (SIGSTOP/SIGCONT) or killed and restarted."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from support.replicator import Replicator, converge, synced, wait_for
from support.workload import Workload

from replicator.etcd.local import LocalEtcd

from .conftest import OWN, Rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_SECONDS = 4.0


def _pause(server: LocalEtcd) -> Callable[[], None]:
    server.pause()
    return server.resume


def _kill(server: LocalEtcd) -> Callable[[], None]:
    server.kill()
    return server.start  # same data directory and ports


FAULTS: dict[str, Callable[[Rig], Callable[[], None]]] = {
    "pause-source": lambda r: _pause(r.source),
    "pause-dest": lambda r: _pause(r.dest),
    "kill-source": lambda r: _kill(r.source),
    "kill-dest": lambda r: _kill(r.dest),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_etcd_outage_is_survived(rig: Rig, fault: str, replicators: list[Replicator]) -> None:
    workload = Workload(rig.source.endpoint, seed=31, pause=0.02, max_seconds=60)
    workload.seed_initial(objects=40)
    journal = f"sqlite:///{rig.tmp / 'journal.db'}"
    rep = rig.replicator(journal)
    replicators.append(rep)
    rep.start()
    wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=30, rep=rep)
    workload.start()
    try:
        workload.wait_ops(30)
        restore = FAULTS[fault](rig)
        try:
            time.sleep(OUTAGE_SECONDS)
            rep.assert_alive()
        finally:
            restore()
        workload.wait_ops(30)
    finally:
        rig.source.resume()
        rig.dest.resume()
        workload.stop()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=45)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(journal)
