"""The destination checkpoint key as a fence: one replicator per standby, and where it got to.

The key (outside the Kubernetes prefix) holds JSON: the last source revision the standby has
completely, the epoch, the source cluster, the phase (``syncing``/``watching``), the writing run's
id and a wall-clock stamp. Every destination transaction compares the key's mod_revision with the
one this run last wrote or saw, so a write by anyone else makes our next transaction fail.

Start-up claims the key before writing any data. If another replicator's checkpoint (another
host or journal: run ids start with that identity) moved recently, it may be alive: we watch the
key for up to ``LIVENESS_WAIT`` seconds and refuse to start if it moves (a running replicator
keeps it moving with heartbeats every ``HEARTBEAT`` seconds); if it stays still, the other is
gone and a fenced put of our own value takes over. A replicator that is overtaken anyway (a
claim raced with our write) stops at its next write.
"""

from __future__ import annotations

import asyncio
import json
import time

from replicator.errors import MirrorStopped
from replicator.etcd import Compare, EtcdClient, KeyValue, Put

HEARTBEAT = 10.0  # seconds: the longest a running replicator leaves its checkpoint unwritten
LIVENESS_WAIT = 2.5 * HEARTBEAT  # seconds a starting replicator watches a recent checkpoint


class Fence:
    def __init__(self, *, key: bytes, run_id: str) -> None:
        self.key = key
        self.run_id = run_id
        self.mod_revision = 0
        self.state: dict[str, object] | None = None

    async def load(self, dest: EtcdClient) -> dict[str, object] | None:
        kv = await dest.get(self.key)
        self._adopt(kv)
        return self.state

    def _adopt(self, kv: KeyValue | None) -> None:
        self.mod_revision = kv.mod_revision if kv else 0
        self.state = _parse(kv.value) if kv else None

    def compare(self) -> Compare:
        return Compare(self.key, "mod", "=", self.mod_revision)

    def value(self, *, revision: int, epoch: int, source_cluster_id: int, phase: str) -> bytes:
        doc = {
            "revision": revision,
            "epoch": epoch,
            "source_cluster_id": str(source_cluster_id),
            "phase": phase,
            "run": self.run_id,
            "at": round(time.time(), 3),
        }
        return json.dumps(doc, sort_keys=True).encode()

    async def wait_until_idle(self, dest: EtcdClient, *, wait: float = LIVENESS_WAIT) -> None:
        """Refuse to go on while another run's checkpoint keeps moving."""
        state = self.state
        owner = str(state.get("run", "")) if state is not None else ""
        if state is None or owner.partition("/")[0] == self.run_id.partition("/")[0]:
            return  # nobody, or this replicator's own previous process (same host and journal)
        stamp = state.get("at")
        if not isinstance(stamp, (int, float)) or time.time() - stamp > wait:
            return  # written long ago (or by a version without stamps): nobody is writing
        seen = self.mod_revision
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            kv = await dest.get(self.key)
            if kv is not None and kv.mod_revision != seen:
                raise MirrorStopped(
                    f"another replicator (run {state.get('run')}) is writing this standby: its checkpoint "
                    f"{self.key.decode()} moved while we watched. Stop it first; two replicators must not "
                    "write the same standby."
                )
        await self.load(dest)

    async def claim(self, dest: EtcdClient, value: bytes) -> None:
        """Take the fence with a compare on what we loaded; fail if anyone wrote since."""
        result = await dest.txn([self.compare()], [Put(self.key, value)])
        if not result.succeeded:
            raise MirrorStopped(
                f"destination checkpoint {self.key.decode()} changed while this replicator started: another "
                "replicator is writing this standby. Stopping."
            )
        self.mod_revision = result.header.revision
        self.state = _parse(value)

    async def check_lost(self, dest: EtcdClient, attempted: Put | None) -> bool:
        """A fenced transaction failed its compare. True: retry (our own write moved the key, or
        our previous attempt committed when ``attempted`` is not None — then nothing to retry)."""
        kv = await dest.get(self.key)
        if kv is not None and attempted is not None and kv.value == attempted.value:
            self.mod_revision = kv.mod_revision  # our lost-response attempt did commit
            return False
        current = _parse(kv.value) if kv else None
        if current is not None and current.get("run") == self.run_id:
            self.mod_revision = kv.mod_revision if kv else 0  # our own heartbeat: compare again
            return True
        owner = current.get("run") if current else "none (the key was deleted)"
        raise MirrorStopped(
            f"destination checkpoint {self.key.decode()} was changed by another writer (run {owner}); "
            "two replicators must not write the same standby. Stopping."
        )


def _parse(raw: bytes) -> dict[str, object]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
