"""A source writer for fault tests: keeps changing a source etcd, bounded in count and time.

It is test setup, not the thing under test, so it uses the replicator's own etcd client (fast,
and it hands back each write's revision) on a background thread with its own event loop.

The changes cover what the test rule file (``oracle.RULES_YAML``) reacts to: ConfigMaps and
Secrets created, updated and deleted in mirrored and unmirrored namespaces, ConfigMaps relabelled
into and out of scope (``app=x`` / ``app=y``), namespaces relabelled (``mirror=true`` / ``false``).
Values come from ``replicator.kube.synth``. Every write is one source revision under
``/registry/`` and is remembered as ``(revision, key)`` in ``writes`` when its outcome is known;
a write that failed (source down, paused, timing out) is counted in ``failed`` and skipped.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field

from replicator.etcd import ClientConfig, Delete, EtcdClient, EtcdError, Put
from replicator.kube import synth

NAMESPACES = ("ns-a", "ns-b", "ns-c", "ns-d")
BULK_NS = "ns-bulk"


def ns_key(ns: str) -> str:
    return f"/registry/namespaces/{ns}"


def cm_key(ns: str, name: str) -> str:
    return f"/registry/configmaps/{ns}/{name}"


def secret_key(ns: str, name: str) -> str:
    return f"/registry/secrets/{ns}/{name}"


@dataclass
class Workload:
    endpoint: str
    seed: int = 1
    max_ops: int = 100_000
    max_seconds: float = 120.0
    pause: float = 0.005
    """Seconds between writes (keeps CPU for the replicator on small CI machines)."""
    names: int = 12
    """Distinct ConfigMap / Secret names per namespace."""
    mix: tuple[str, ...] = ("cm", "cm", "cm", "secret", "secret", "ns")
    """What the background writer picks from: ConfigMap, Secret or Namespace changes."""
    writes: list[tuple[int, str]] = field(default_factory=list)
    failed: int = 0
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _rng: random.Random = field(init=False)
    _ns_mirrored: dict[str, bool] = field(default_factory=dict)
    _exists: set[str] = field(default_factory=set)
    _counter: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- synchronous helpers (setup before the replicator starts) -------------------------------

    def seed_initial(self, *, objects: int = 40) -> None:
        """Create the namespaces (half mirrored) and ``objects`` ConfigMaps/Secrets, synchronously."""
        asyncio.run(self._seed(objects))

    def bulk(self, count: int, *, namespace: str = BULK_NS, size: int = 64, batch: int = 100) -> None:
        """``count`` small in-scope ConfigMaps ``bulk-<i>`` in ``namespace`` (created mirrored; the
        background writer never relabels it), ``batch`` per transaction."""

        async def go() -> None:
            async with await self._client() as client:
                await self._write(client, ns_key(namespace), self._namespace(namespace, mirrored=True))
                value = synth.configmap(namespace, "bulk", labels={"app": "x"}, data={"v": "x" * size})
                for start in range(0, count, batch):
                    ops = [
                        Put(cm_key(namespace, f"bulk-{i:06d}").encode(), value)
                        for i in range(start, min(count, start + batch))
                    ]
                    result = await client.txn([], ops)
                    self.writes.append((result.header.revision, ops[0].key.decode()))

        asyncio.run(go())

    # -- background writer -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="workload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "workload thread did not stop"
        if self.error is not None:
            raise AssertionError(f"workload failed: {self.error!r}") from self.error

    @property
    def ops(self) -> int:
        return len(self.writes)

    def wait_ops(self, n: int, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        target = self.ops + n
        while self.ops < target and time.monotonic() < deadline:
            time.sleep(0.02)

    def _main(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _client(self) -> EtcdClient:
        return await EtcdClient.connect(
            ClientConfig(endpoints=(self.endpoint,), dial_timeout=2.0, request_timeout=2.0)
        )

    async def _seed(self, objects: int) -> None:
        async with await self._client() as client:
            for i, ns in enumerate(NAMESPACES):
                await self._write(client, ns_key(ns), self._namespace(ns, mirrored=i % 2 == 0))
            for _ in range(objects):
                await self._one(client, kinds=("cm", "secret"))

    async def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        client: EtcdClient | None = None
        try:
            for _ in range(self.max_ops):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                if client is None:
                    try:
                        client = await self._client()
                    except EtcdError:
                        self.failed += 1
                        await asyncio.sleep(0.2)
                        continue
                await self._one(client, kinds=self.mix)
                await asyncio.sleep(self.pause)
        finally:
            if client is not None:
                await client.close()

    # -- one change ------------------------------------------------------------------------------

    def _namespace(self, ns: str, *, mirrored: bool) -> bytes:
        self._ns_mirrored[ns] = mirrored
        return synth.namespace(ns, labels={"mirror": "true" if mirrored else "false"})

    async def _one(self, client: EtcdClient, *, kinds: tuple[str, ...]) -> None:
        rng = self._rng
        kind = rng.choice(kinds)
        ns = rng.choice(NAMESPACES)
        self._counter += 1
        if kind == "ns":
            await self._write(client, ns_key(ns), self._namespace(ns, mirrored=not self._ns_mirrored[ns]))
            return
        name = f"{kind}-{rng.randrange(self.names)}"
        key = cm_key(ns, name) if kind == "cm" else secret_key(ns, name)
        if key in self._exists and rng.random() < 0.25:
            await self._write(client, key, None)
            return
        if kind == "cm":
            app = rng.choice(("x", "x", "y"))  # relabels in and out of scope
            value = synth.configmap(ns, name, labels={"app": app}, data={"n": str(self._counter)})
        else:
            value = synth.secret(ns, name, data={"n": str(self._counter).encode()})
        await self._write(client, key, value)

    async def _write(self, client: EtcdClient, key: str, value: bytes | None) -> None:
        op = Delete(key.encode()) if value is None else Put(key.encode(), value)
        try:
            result = await client.txn([], [op])
        except EtcdError:
            self.failed += 1  # outcome unknown: the oracle reads the source, so no model needed
            self._exists.discard(key)
            await asyncio.sleep(0.05)
            return
        if value is None:
            self._exists.discard(key)
        else:
            self._exists.add(key)
        self.writes.append((result.header.revision, key))
