"""kill -9 the replicator at random points, many times, while the source keeps changing."""

from __future__ import annotations

import random
import time

import pytest
from support import oracle
from support.replicator import Replicator, converge, synced, wait_for
from support.workload import Workload, cm_key

from .checks import assert_sole_writer, check_journal
from .conftest import OWN, Rig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 20


def _checkpoint_revision(rig: Rig) -> int:
    try:
        _, kvs = oracle.dump(rig.dest.endpoint, oracle.CHECKPOINT, timeout=10)
    except AssertionError:
        return -1
    ck = oracle.checkpoint(kvs)
    return int(str(ck["revision"])) if ck else -1


def _log_has(rep: Replicator, since: int, *needles: str) -> bool:
    text = rep.log_path.read_bytes()[since:].decode(errors="replace")
    return any(n in text for n in needles)


@pytest.mark.timeout(200)
def test_kill_9_at_random_points_converges_and_journals_each_revision_once(
    rig: Rig, journal_url: str, replicators: list[Replicator]
) -> None:
    workload = Workload(
        rig.source.endpoint, seed=11, pause=0.01, max_seconds=150, mix=("cm",) * 5 + ("secret",) * 4 + ("ns",)
    )
    workload.seed_initial(objects=60)
    workload.bulk(500)  # a full sync that takes a moment: kills can land inside it
    rep = rig.replicator(journal_url)
    replicators.append(rep)
    rng = random.Random(5)
    kinds: list[str] = []
    workload.start()
    try:
        for i in range(KILLS):
            mark = rep.log_path.stat().st_size if rep.log_path.exists() else 0
            before = _checkpoint_revision(rig)
            rep.start()
            kind = ("start-up", "sync-or-first-batch", "watch")[i % 3]
            if kind == "start-up":
                time.sleep(rng.uniform(0.0, 1.5))
            elif kind == "sync-or-first-batch":
                wait_for(
                    "the run to start working",
                    lambda m=mark: _log_has(rep, m, "full sync starting", "resuming after"),  # type: ignore[misc]
                    timeout=30,
                    interval=0.02,
                    rep=rep,
                )
                time.sleep(rng.uniform(0.0, 0.4))
            else:
                wait_for(
                    "the checkpoint to move in this run",
                    lambda b=before: synced(rig.dest.endpoint) and _checkpoint_revision(rig) > b,  # type: ignore[misc]
                    timeout=30,
                    interval=0.05,
                    rep=rep,
                )
                time.sleep(rng.uniform(0.0, 0.6))
            rep.assert_alive()  # it must not have died on its own
            rep.kill()
            kinds.append(kind)
    finally:
        workload.stop()
    assert workload.failed == 0
    assert len(kinds) >= 20

    rep.start()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=60)
    assert rep.stop() == 0, rep.log_tail()
    rig.own_intact()
    rig.verify(journal_url)
    head, source = oracle.dump(rig.source.endpoint)
    _, dest = oracle.dump(rig.dest.endpoint)
    assert not oracle.compare(source, dest, own=tuple(OWN))
    assert_sole_writer(workload.writes, head)
    check_journal(journal_url, writes=workload.writes, source=source, dest=dest)


@pytest.mark.timeout(90)
def test_a_restarted_replicator_still_knows_namespace_labels(rig: Rig, replicators: list[Replicator]) -> None:
    """Resume from the checkpoint (no full sync), then change a ConfigMap in a mirrored namespace.

    The rule selects ConfigMaps by their namespace's labels; a resumed run must know them."""
    journal = f"sqlite:///{rig.tmp / 'journal.db'}"
    workload = Workload(rig.source.endpoint, seed=3)
    workload.seed_initial(objects=0)  # ns-a and ns-c mirrored, ns-b and ns-d not
    from replicator.kube import synth

    key = cm_key("ns-a", "probe")
    rep = rig.replicator(journal)
    replicators.append(rep)
    _put(rig, key, synth.configmap("ns-a", "probe", labels={"app": "x"}, data={"v": "1"}))
    rep.start()
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=30)
    assert rep.stop() == 0, rep.log_tail()

    rep.start()  # resumes after the checkpoint
    wait_for("the resumed run", lambda: _log_has(rep, 0, "resuming after"), timeout=30, rep=rep)
    _put(rig, key, synth.configmap("ns-a", "probe", labels={"app": "x"}, data={"v": "2"}))
    converge(rep, rig.source.endpoint, rig.dest.endpoint, own=tuple(OWN), timeout=20)
    assert rep.stop() == 0, rep.log_tail()


def _put(rig: Rig, key: str, value: bytes) -> None:
    import asyncio

    from replicator.etcd import ClientConfig, EtcdClient

    async def go() -> None:
        async with await EtcdClient.connect(ClientConfig(endpoints=(rig.source.endpoint,))) as c:
            await c.put(key.encode(), value)

    asyncio.run(go())
