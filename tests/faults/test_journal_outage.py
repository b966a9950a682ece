"""The journal's PostgreSQL server stops for a while: the replicator waits, then goes on."""

from __future__ import annotations

import time

import pytest
from support import oracle
from support.postgres import PgServer
from support.replicator import Replicator, converge, synced, wait_for
from support.workload import Workload

from .checks import assert_sole_writer, check_journal
from .conftest import OWN, Rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.timeout(120)
def test_postgres_journal_down_for_five_seconds(
    rig: Rig, pg: PgServer, replicators: list[Replicator]
) -> None:
    journal = pg.new_database()
    workload = Workload(rig.source.endpoint, seed=51, pause=0.02, max_seconds=60)
    workload.seed_initial(objects=40)
    rep = rig.replicator(journal)
    replicators.append(rep)
    rep.start()
    wait_for("the full sync", lambda: synced(rig.dest.endpoint), timeout=30, rep=rep)
    workload.start()
    try:
        workload.wait_ops(30)
        pg.stop()
        try:
            time.sleep(5.0)
            rep.assert_alive()
        finally:
            pg.start()
        workload.wait_ops(50)
    finally:
        workload.stop()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=45)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(journal)
    head, source = oracle.dump(rig.source.endpoint)
    _, dest = oracle.dump(rig.dest.endpoint)
    assert_sole_writer(workload.writes, head)
    check_journal(journal, writes=workload.writes, source=source, dest=dest)
