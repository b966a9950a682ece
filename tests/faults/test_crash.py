"""kill -9 the replicator at random points, many times, while the source keeps changing."""

from __future__ import annotations

import random
import time

import pytest
from support import oracle
from support.replicator import converge, synced, wait_for
from support.workload import Workload

from .checks import assert_sole_writer, check_journal
from .conftest import OWN, Rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 20


@pytest.mark.timeout(180)
def test_kill_9_at_random_points_converges_and_journals_each_revision_once(
    rig: Rig, journal_url: str, replicators: list
) -> None:
    workload = Workload(rig.source.endpoint, seed=11, pause=0.01, max_seconds=120)
    workload.seed_initial(objects=60)
    rep = rig.replicator(journal_url)
    replicators.append(rep)
    rng = random.Random(5)
    workload.start()
    try:
        for i in range(KILLS):
            rep.start()
            if i % 4 == 3:
                # some kills well inside the watch phase, not only during start-up or the full sync
                wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=30, log=rep.log_tail())
            time.sleep(rng.uniform(0.2, 2.5))
            rep.assert_alive()  # it must not have died on its own
            rep.kill()
    finally:
        workload.stop()
    assert workload.failed == 0

    rep.start()
    source, dest = converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=45)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    head, source = oracle.dump(rig.source.endpoint)
    _, dest = oracle.dump(rig.dest.endpoint)
    assert not oracle.compare(source, dest, own=tuple(OWN))
    assert_sole_writer(workload.writes, head)
    check_journal(journal_url, writes=workload.writes, source=source, dest=dest)

