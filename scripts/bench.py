#!/usr/bin/env python
"""Benchmark the replicator against a plain batched writer and `etcdctl make-mirror`.

Everything runs on this machine against local etcd servers (``LocalEtcd``, 127.0.0.1 only) in a
temporary directory that is removed at the end, together with every process started here.

Steps (each destination is a fresh, empty etcd, stopped again after its step):

1. load N realistic objects into the source (ConfigMaps, Secrets, Pods, some bound to nodes,
   custom resources of one CRD, across namespaces; 1-20 KB values, log-uniform), fast: batched
   transactions, 8 in flight;
2. baseline: read the source keyspace and write it with 8 transactions of <=128 puts in flight;
3. `etcdctl make-mirror` into a fresh etcd: poll the destination's key count until it has N keys
   or a time cap (extrapolated from the measured rate when capped);
4. replicator full sync (`replicator run --once`, a subprocess, so its peak RSS is its own), with
   the journal, then again with ``Journal.record`` replaced by a no-op (the journal's cost);
5. watch phase: `replicator run` against the synced standby; a paced writer puts updated objects
   on the source at --rate for --duration seconds; an observer process watches the destination
   checkpoint key (written in the same transaction as the data) and the lag of every source
   revision is (first checkpoint >= revision seen) - (the source acknowledged the put); then a
   burst (as fast as this writer goes) and a catch-up (replicator paused while a backlog is
   written, then resumed: its apply rate without the writer competing).

Prints a markdown table (metric | value | target | met?) and writes it to --out.

Usage: .venv/bin/python scripts/bench.py --keys 10000 --out /tmp/bench-10k.md
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import json
import math
import os
import pstats
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from replicator.config import CHECKPOINT_KEY  # noqa: E402
from replicator.etcd import ClientConfig, EtcdClient, Put  # noqa: E402
from replicator.etcd.local import LocalEtcd, etcdctl_path  # noqa: E402

PREFIX = b"/registry/"
ETCD_ARGS = (
    "--quota-backend-bytes=8589934592",  # 8 GiB: 100k x ~6 KB plus history fits many times over
    "--auto-compaction-retention=0",  # off: nothing may compact under a running sync or watch
)
TXN_OPS = 128
TXN_BYTES = 1_000_000  # same bound as the replicator's --max-txn-bytes (etcd refuses > 1.5 MiB)
INFLIGHT = 8
GROUP, KIND, PLURAL = "bench.example.io", "Widget", "widgets"
MIRROR_LABEL = "bench.example.io/mirror"

RULES = f"""\
filters:
  sequential:
    - group: apiextensions.k8s.io
      sequence: 1
      resources:
        - version: v1
          kind: CustomResourceDefinition
    - group: ""
      sequence: 2
      resources:
        - version: v1
          kind: Namespace
      labelSelectors:
        - matchExpressions:
            - key: {MIRROR_LABEL}
              operator: In
              values: ["yes"]
  secondary:
    - group: ""
      resources:
        - version: v1
          kind: ConfigMap
        - version: v1
          kind: Secret
        - version: v1
          kind: Pod
      namespaceSelectors:
        - matchExpressions:
            - key: {MIRROR_LABEL}
              operator: In
              values: ["yes"]
    - group: {GROUP}
      resources:
        - version: v1
          kind: {KIND}
      namespaceSelectors:
        - matchExpressions:
            - key: {MIRROR_LABEL}
              operator: In
              values: ["yes"]
"""


# ---------------------------------------------------------------------------------------------
# processes: every one started here is tracked and stopped in cleanup()

_ETCDS: list[LocalEtcd] = []
_PROCS: list[subprocess.Popen[bytes]] = []


def start_etcd(name: str, base: Path) -> LocalEtcd:
    e = LocalEtcd.create(name, base / name, extra_args=ETCD_ARGS)
    _ETCDS.append(e)
    e.start()
    return e


def stop_etcd(e: LocalEtcd, *, remove: bool = True) -> None:
    e.stop()
    if e in _ETCDS:
        _ETCDS.remove(e)
    if remove:
        shutil.rmtree(e.spec.data_dir, ignore_errors=True)


def popen(cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(cmd, start_new_session=True, **kw)  # type: ignore[call-overload]
    _PROCS.append(p)
    return p


def end_proc(p: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGCONT)
            os.kill(p.pid, sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass
    if p in _PROCS:
        _PROCS.remove(p)


def cleanup() -> None:
    for p in list(_PROCS):
        end_proc(p, timeout=5.0)
    for e in list(_ETCDS):
        try:
            e.stop(timeout=5.0)
        except Exception:
            e.kill()
    _ETCDS.clear()


async def client(e: LocalEtcd) -> EtcdClient:
    return await EtcdClient.connect(
        ClientConfig(endpoints=(e.endpoint,), request_timeout=60.0, keepalive_time=30.0)
    )


async def key_count(e: LocalEtcd, prefix: bytes = PREFIX) -> int:
    async with await client(e) as c:
        from replicator.etcd.types import prefix_end

        return (await c.range(prefix, prefix_end(prefix), count_only=True)).count


# ---------------------------------------------------------------------------------------------
# the data set


@dataclass
class DataSet:
    n: int
    seed: int = 42
    namespaces: list[str] = field(default_factory=list)
    mirrored: set[str] = field(default_factory=set)
    update_targets: list[tuple[str, str]] = field(default_factory=list)  # mirrored ConfigMaps (ns, name)
    total_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)


_BLOB = "".join(random.Random(7).choices(string.ascii_letters + string.digits + " \n:-_", k=1 << 20))


def _text(rng: random.Random, size: int) -> str:
    start = rng.randrange(0, len(_BLOB) - size - 1)
    return _BLOB[start : start + size]


def _size(rng: random.Random) -> int:
    """Log-uniform between 1 and 20 KB: many small objects, a tail of large ones (mean ~6.3 KB)."""
    return int(math.exp(rng.uniform(math.log(1024), math.log(20 * 1024))))


def _value(built: object) -> bytes:
    """synth builders return the stored value; accept (key, value) or an object with .value too."""
    if isinstance(built, (bytes, bytearray)):
        return bytes(built)
    if isinstance(built, tuple):
        return bytes(built[-1])
    return bytes(built.value)  # type: ignore[attr-defined]


def configmap_update(rng: random.Random, ns: str, name: str) -> bytes:
    from replicator.kube import synth

    size = _size(rng)
    return _value(
        synth.configmap(
            ns,
            name,
            labels={"app": name[:20]},
            data={"config.yaml": _text(rng, size), "rev": str(rng.random())},
        )
    )


def generate(ds: DataSet) -> Iterator[tuple[bytes, bytes]]:
    """Deterministic N objects: namespaces, one CRD, then a mix of namespaced objects."""
    from replicator.kube import synth

    rng = random.Random(ds.seed)
    n_ns = max(8, ds.n // 2500)
    ds.namespaces = [f"team-{i:03d}" for i in range(n_ns)]
    ds.mirrored = {ns for i, ns in enumerate(ds.namespaces) if i % 10 != 9}  # 90% of namespaces
    counts: dict[str, int] = {}

    def emit(kind: str, key: str, value: bytes) -> tuple[bytes, bytes]:
        counts[kind] = counts.get(kind, 0) + 1
        ds.total_bytes += len(key) + len(value)
        return key.encode(), value

    for ns in ds.namespaces:
        labels = {"kubernetes.io/metadata.name": ns, MIRROR_LABEL: "yes" if ns in ds.mirrored else "no"}
        yield emit("Namespace", f"/registry/namespaces/{ns}", _value(synth.namespace(ns, labels=labels)))
    yield emit(
        "CRD",
        f"/registry/apiextensions.k8s.io/customresourcedefinitions/{PLURAL}.{GROUP}",
        _value(synth.crd(GROUP, KIND, PLURAL)),
    )
    kinds = ("ConfigMap", "Secret", "Pod", KIND)
    weights = (35, 20, 30, 15)
    for i in range(ds.n - n_ns - 1):
        kind = rng.choices(kinds, weights)[0]
        ns = ds.namespaces[i % n_ns]
        name = f"{kind.lower()}-{i:07d}"
        size = _size(rng)
        labels = {"app": f"app-{i % 97}", "tier": rng.choice(("web", "db", "batch"))}
        if kind == "ConfigMap":
            v = synth.configmap(ns, name, labels=labels, data={"config.yaml": _text(rng, size)})
            key = f"/registry/configmaps/{ns}/{name}"
            if ns in ds.mirrored and len(ds.update_targets) < 5000:
                ds.update_targets.append((ns, name))
        elif kind == "Secret":
            v = synth.secret(ns, name, labels=labels, data={"tls.key": _text(rng, size).encode()})
            key = f"/registry/secrets/{ns}/{name}"
        elif kind == "Pod":
            node = f"node-{i % 50}" if rng.random() < 0.4 else ""  # bound pods are deny-listed
            v = synth.pod(ns, name, labels=labels, node_name=node, pad_to=size)
            key = f"/registry/pods/{ns}/{name}"
            kind = "Pod (bound)" if node else "Pod"
        else:
            v = synth.custom_resource(
                GROUP,
                "v1",
                KIND,
                ns,
                name,
                labels=labels,
                spec={"replicas": i % 5, "payload": _text(rng, size)},
            )
            key = f"/registry/{GROUP}/{PLURAL}/{ns}/{name}"
        yield emit(kind, key, _value(v))
    ds.counts = counts


class BatchedWriter:
    """Puts in transactions of <= TXN_OPS ops / TXN_BYTES bytes, ``inflight`` of them at once."""

    def __init__(self, c: EtcdClient, inflight: int = INFLIGHT) -> None:
        self.c = c
        self.sem = asyncio.Semaphore(inflight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.ops: list[Put] = []
        self.nbytes = 0
        self.keys = 0
        self.bytes = 0

    async def put(self, key: bytes, value: bytes) -> None:
        size = len(key) + len(value)
        if self.ops and (len(self.ops) >= TXN_OPS or self.nbytes + size > TXN_BYTES):
            await self.flush()
        self.ops.append(Put(key, value))
        self.nbytes += size
        self.keys += 1
        self.bytes += size

    async def flush(self) -> None:
        if not self.ops:
            return
        ops, self.ops, self.nbytes = self.ops, [], 0
        await self.sem.acquire()
        task = asyncio.create_task(self._txn(ops))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _txn(self, ops: list[Put]) -> None:
        try:
            await self.c.txn([], ops)
        finally:
            self.sem.release()

    async def close(self) -> None:
        await self.flush()
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


async def load(src: LocalEtcd, ds: DataSet) -> float:
    t0 = time.monotonic()
    async with await client(src) as c:
        w = BatchedWriter(c)
        for key, value in generate(ds):
            await w.put(key, value)
        await w.close()
    return time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# 1. baseline


async def baseline(src: LocalEtcd, dst: LocalEtcd) -> dict[str, float]:
    t0 = time.monotonic()
    async with await client(src) as s, await client(dst) as d:
        w = BatchedWriter(d)
        async for page in s.range_pages(PREFIX, page_size=1000):
            for kv in page.kvs:
                await w.put(kv.key, kv.value)
        await w.close()
    dt = time.monotonic() - t0
    return {
        "keys": w.keys,
        "bytes": w.bytes,
        "seconds": dt,
        "keys_s": w.keys / dt,
        "mb_s": w.bytes / dt / 1e6,
    }


# ---------------------------------------------------------------------------------------------
# 2. etcdctl make-mirror


def count_via_etcdctl(e: LocalEtcd) -> int:
    out = subprocess.run(
        [
            str(etcdctl_path()),
            f"--endpoints={e.endpoint}",
            "get",
            "--prefix",
            PREFIX.decode(),
            "--count-only",
            "-w",
            "fields",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=30,
        check=True,
    )
    m = re.search(r'"Count"\s*:\s*(\d+)', out.stdout)
    return int(m.group(1)) if m else 0


def make_mirror(src: LocalEtcd, dst: LocalEtcd, total: int, cap: float, log: Path) -> dict[str, float]:
    cmd = [
        str(etcdctl_path()),
        f"--endpoints={src.endpoint}",
        "make-mirror",
        f"--prefix={PREFIX.decode()}",
        f"--dest-prefix={PREFIX.decode()}",
        dst.endpoint,
    ]
    with log.open("wb") as out:
        t0 = time.monotonic()
        p = popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "ETCDCTL_API": "3"})
    samples: list[tuple[float, int]] = []
    try:
        while True:
            time.sleep(1.0)
            n = count_via_etcdctl(dst)
            samples.append((time.monotonic() - t0, n))
            if n >= total or samples[-1][0] >= cap or p.poll() is not None:
                break
    finally:
        end_proc(p)
    t_end, n_end = samples[-1]
    capped = n_end < total
    # rate over the copying part: from the first sample with keys to the last
    first = next(((t, n) for t, n in samples if n > 0), (0.0, 0))
    rate = (n_end - first[1]) / (t_end - first[0]) if t_end > first[0] and n_end > first[1] else n_end / t_end
    return {
        "keys": n_end,
        "seconds": t_end,
        "keys_s": rate,
        "capped": float(capped),
        "extrapolated_seconds": total / rate if rate else float("inf"),
    }


# ---------------------------------------------------------------------------------------------
# 3. replicator full sync (subprocess)


def replicator_cmd(
    src: LocalEtcd,
    dst: LocalEtcd,
    rules: Path,
    journal: str,
    *,
    once: bool,
    no_journal: bool = False,
    profile: Path | None = None,
) -> list[str]:
    wrapper = [sys.executable, str(Path(__file__).resolve()), "_run"]
    if no_journal:
        wrapper.append("--no-journal")
    if profile is not None:
        wrapper += ["--profile", str(profile)]
    args = [
        "run",
        "--source-endpoints",
        src.endpoint,
        "--dest-endpoints",
        dst.endpoint,
        "--mirror-rule",
        str(rules),
        "--journal",
        journal,
        "--log-format",
        "json",
    ]
    if once:
        args.append("--once")
    return [*wrapper, "--", *args]


def parse_log(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _sync_result(log: Path) -> dict[str, float] | None:
    """Sync-phase figures from the JSON log, once "full sync done" is there."""
    events = parse_log(log)
    done = next((e for e in events if str(e.get("msg", "")).startswith("full sync done")), None)
    if done is None:
        return None
    start = next(float(e["ts"]) for e in events if str(e.get("msg", "")).startswith("full sync starting"))
    copied = int(str(done["msg"]).split(":")[1].split()[0])
    sync_s = float(done["ts"]) - start
    return {"seconds": sync_s, "copied": copied, "keys_s": copied / sync_s}


def full_sync(
    src: LocalEtcd,
    dst: LocalEtcd,
    rules: Path,
    journal: str,
    log: Path,
    *,
    once: bool = True,
    no_journal: bool = False,
    profile: Path | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 900.0,
) -> tuple[dict[str, float], subprocess.Popen[bytes] | None]:
    """Run the replicator until its full sync is done. With ``once`` it exits and its peak RSS
    comes from wait4; otherwise it keeps running (returned, for the watch phase) and the peak RSS
    so far is VmHWM."""
    cmd = replicator_cmd(src, dst, rules, journal, once=once, no_journal=no_journal, profile=profile) + list(
        extra
    )
    with log.open("wb") as out:
        t0 = time.monotonic()
        p = popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = t0 + timeout
    while True:
        if once:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                _PROCS.remove(p)
                if p.returncode != 0:
                    raise RuntimeError(f"replicator --once exited {p.returncode}:\n{log.read_text()[-3000:]}")
                res = _sync_result(log)
                assert res is not None, f"no 'full sync done' in {log}"
                res.update(wall=time.monotonic() - t0, rss_mb=usage.ru_maxrss / 1024)
                return res, None
        else:
            if p.poll() is not None:
                raise RuntimeError(f"replicator exited {p.returncode}:\n{log.read_text()[-3000:]}")
            res = _sync_result(log)
            if res is not None:
                res.update(wall=time.monotonic() - t0, rss_mb=rss_mb(p.pid)[1])
                return res, p
        if time.monotonic() > deadline:
            end_proc(p)
            raise RuntimeError(f"replicator full sync exceeded {timeout}s; see {log}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# 4. watch phase


class Observer:
    """A separate process watching the destination checkpoint: lines of "monotonic revision"."""

    def __init__(self, dst: LocalEtcd, path: Path) -> None:
        self.path = path
        self.proc = popen(
            [sys.executable, str(Path(__file__).resolve()), "_observe", dst.endpoint, str(path)]
        )
        self._pos = 0
        self.times: list[float] = []
        self.revs: list[int] = []

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as f:
            f.seek(self._pos)
            data = f.read()
        cut = data.rfind("\n") + 1
        self._pos += len(data[:cut].encode())
        for line in data[:cut].splitlines():
            t, r = line.split()
            self.times.append(float(t))
            self.revs.append(int(r))

    @property
    def revision(self) -> int:
        self.poll()
        return self.revs[-1] if self.revs else 0

    async def wait_for(self, revision: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.revision >= revision:
                return True
            await asyncio.sleep(0.02)
        return False

    def seen_at(self, revision: int) -> float | None:
        """When the destination checkpoint first reached ``revision``."""
        i = bisect.bisect_left(self.revs, revision)
        return self.times[i] if i < len(self.revs) else None

    def stop(self) -> None:
        end_proc(self.proc)


async def _observe(endpoint: str, path: str) -> None:
    c = await EtcdClient.connect(ClientConfig(endpoints=(endpoint,), keepalive_time=30.0))
    with open(path, "w", buffering=1) as out:
        kv = await c.get(CHECKPOINT_KEY.encode())
        if kv is not None:
            out.write(f"{time.monotonic():.6f} {json.loads(kv.value)['revision']}\n")
        async for batch in c.watch(CHECKPOINT_KEY.encode(), prev_kv=False, progress_notify=False):
            now = time.monotonic()
            for ev in batch.events:
                if ev.kv.value:
                    out.write(f"{now:.6f} {json.loads(ev.kv.value)['revision']}\n")


@dataclass
class Writes:
    sent: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)
    revs: list[int] = field(default_factory=list)


async def drive(
    c: EtcdClient,
    ds: DataSet,
    *,
    rate: float | None,
    seconds: float,
    count: int | None = None,
    concurrency: int = 64,
    pool: list[bytes] | None = None,
) -> Writes:
    """Puts of updated ConfigMaps: paced at ``rate``/s, or as fast as possible (rate None)."""
    rng = random.Random(11)
    pool = pool or [configmap_update(rng, *ds.update_targets[i % len(ds.update_targets)]) for i in range(256)]
    keys = [f"/registry/configmaps/{ns}/{name}".encode() for ns, name in ds.update_targets]
    w = Writes()
    sem = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            t = time.monotonic()
            h = await c.put(keys[i % len(keys)], pool[i % len(pool)])
            w.sent.append(t)
            w.acked.append(time.monotonic())
            w.revs.append(h.revision)
        finally:
            sem.release()

    t0 = time.monotonic()
    i = 0
    while True:
        now = time.monotonic()
        if (count is not None and i >= count) or (count is None and now - t0 >= seconds):
            break
        due = int((now - t0) * rate) + 1 if rate else i + concurrency
        if i >= due:
            await asyncio.sleep(min(0.002, (i + 1) / rate - (now - t0)) if rate else 0)
            continue
        while i < due and (count is None or i < count):
            await sem.acquire()
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    while tasks:
        await asyncio.gather(*list(tasks))
    return w


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1)]


def lags(w: Writes, obs: Observer) -> dict[str, float]:
    obs.poll()
    from_ack, from_send, missing = [], [], 0
    for t_send, t_ack, rev in zip(w.sent, w.acked, w.revs, strict=True):
        seen = obs.seen_at(rev)
        if seen is None:
            missing += 1
            continue
        from_ack.append(max(0.0, seen - t_ack) * 1000)
        from_send.append((seen - t_send) * 1000)
    first, last = min(w.sent), max(w.acked)
    revs = len(w.revs)
    end = obs.seen_at(max(w.revs)) if w.revs else None
    return {
        "revisions": revs,
        "source_rev_s": revs / (last - first),
        "standby_rev_s": revs / (end - first) if end else 0.0,
        "p50": pct(from_ack, 50),
        "p99": pct(from_ack, 99),
        "max": max(from_ack, default=float("nan")),
        "p99_send": pct(from_send, 99),
        "missing": missing,
    }


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


async def watch_phase(
    rep: subprocess.Popen[bytes],
    log: Path,
    dst: LocalEtcd,
    src: LocalEtcd,
    ds: DataSet,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """``rep`` is the replicator that just finished its full sync and now follows the source."""
    obs = Observer(dst, work / "checkpoints.txt")
    results: dict[str, dict[str, float]] = {}
    try:
        async with await client(src) as c:
            # warm-up: the replicator is watching once a probe write reaches the standby
            probe = await drive(c, ds, rate=None, seconds=0, count=1)
            if not await obs.wait_for(probe.revs[-1], 60):
                raise RuntimeError(f"replicator did not reach the probe revision; see {log}")
            paced = await drive(c, ds, rate=args.rate, seconds=args.duration)
            await obs.wait_for(max(paced.revs), 30)
            results["paced"] = lags(paced, obs)
            results["paced"]["rss"] = rss_mb(rep.pid)[0]
            burst = await drive(c, ds, rate=None, seconds=min(args.duration, 10))
            await obs.wait_for(max(burst.revs), 60)
            results["burst"] = lags(burst, obs)
            # catch-up: pause the replicator, write a backlog, resume: its apply rate alone
            n_backlog = max(5000, int(args.rate * 5))
            os.kill(rep.pid, signal.SIGSTOP)
            try:
                backlog = await drive(c, ds, rate=None, seconds=0, count=n_backlog)
            finally:
                os.kill(rep.pid, signal.SIGCONT)
            t_resume = time.monotonic()
            cpu0 = cpu_seconds(rep.pid)
            ok = await obs.wait_for(max(backlog.revs), 120)
            t_done = obs.seen_at(max(backlog.revs)) if ok else time.monotonic()
            cpu = cpu_seconds(rep.pid) - cpu0
            results["catchup"] = {
                "revisions": n_backlog,
                "seconds": t_done - t_resume,
                "rev_s": n_backlog / (t_done - t_resume),
                "complete": float(ok),
                "cpu": cpu / max(1e-9, time.monotonic() - t_resume),
            }
            rss, hwm = rss_mb(rep.pid)
            results["memory"] = {"rss": rss, "hwm": hwm}
            results["reconnects"] = {
                "n": float(sum("resuming the watch" in str(e.get("msg", "")) for e in parse_log(log)))
            }
    finally:
        end_proc(rep, timeout=30)
        obs.stop()
    return results


# ---------------------------------------------------------------------------------------------
# hidden entry points (subprocesses of this script)


def _run_entry(argv: list[str]) -> int:
    """`bench.py _run [--no-journal] [--profile F] -- <replicator args>`: the replicator CLI,
    optionally with the journal's record() a no-op (its cost) or under cProfile."""
    p = argparse.ArgumentParser(prog="bench.py _run")
    p.add_argument("--no-journal", action="store_true")
    p.add_argument("--profile")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    rest = a.rest[1:] if a.rest and a.rest[0] == "--" else a.rest
    if a.no_journal:
        from replicator.journal.store import Journal

        Journal.record = lambda self, batch: None  # type: ignore[method-assign]
        Journal.managed = lambda self, keys: {}  # type: ignore[method-assign]
    from replicator.cli.main import main

    if not a.profile:
        return main(rest)
    prof = cProfile.Profile()
    try:
        return prof.runcall(main, rest)
    finally:
        prof.dump_stats(a.profile)


def top_functions(path: Path, n: int = 25) -> str:
    import io

    buf = io.StringIO()
    st = pstats.Stats(str(path), stream=buf)
    st.sort_stats("tottime").print_stats(n)
    st.sort_stats("cumulative").print_stats(n)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# report


def fmt(x: float, digits: int = 0) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        return "n/a"
    return f"{x:,.{digits}f}"


def report(args: argparse.Namespace, ds: DataSet, r: dict[str, object]) -> str:
    base, mm, rs = r["baseline"], r.get("make_mirror"), r["sync"]
    rows: list[tuple[str, str, str, str]] = []

    def row(metric: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append((metric, value, target, "" if met is None else ("yes" if met else "**no**")))

    mean_kb = ds.total_bytes / ds.n / 1024
    row(
        "load (batched txns, 8 in flight)",
        f"{fmt(r['load_s'], 1)} s, {fmt(ds.n / r['load_s'])} keys/s, "
        f"{fmt(ds.total_bytes / r['load_s'] / 1e6, 1)} MB/s",
    )
    row(
        "baseline: plain batched writer (8 x 128 puts)",
        f"{fmt(base['keys_s'])} keys/s, {fmt(base['mb_s'], 1)} MB/s ({fmt(base['seconds'], 1)} s)",
    )
    if mm:
        extra = (
            f"; capped at {fmt(mm['seconds'])} s with {fmt(mm['keys'])} keys, full copy extrapolated to "
            f"{fmt(mm['extrapolated_seconds'])} s"
            if mm["capped"]
            else f" ({fmt(mm['seconds'], 1)} s)"
        )
        row(
            "etcdctl make-mirror (all keys)",
            f"{fmt(mm['keys_s'])} keys/s, {fmt(mm['keys_s'] * mean_kb / 1024, 1)} MB/s{extra}",
        )
    sync_mb_s = rs["keys_s"] * r["copied_bytes_per_key"] / 1e6
    row(
        "replicator full sync: keys copied",
        f"{fmt(rs['copied'])} of {fmt(ds.n)} (rest: out of scope or deny-listed)",
    )
    row(
        "replicator full sync: copied keys/s (sync phase)",
        f"{fmt(rs['keys_s'])} keys/s, {fmt(sync_mb_s, 1)} MB/s ({fmt(rs['seconds'], 1)} s; process wall "
        f"{fmt(rs['wall'], 1)} s); cluster scan {fmt(ds.n / rs['seconds'])} keys/s",
    )
    if mm:
        ratio = rs["keys_s"] / mm["keys_s"]
        row("full sync vs make-mirror", f"{fmt(ratio, 1)}x", ">= 10x", ratio >= 10)
    ratio_b = rs["keys_s"] / base["keys_s"]
    row("full sync vs plain batched writer", f"{fmt(100 * ratio_b)} %", ">= 75 %", ratio_b >= 0.75)
    row(
        "replicator peak RSS (full sync)",
        f"{fmt(rs['rss_mb'])} MB",
        "<= 200 MB at 1M keys, flat in N",
        rs["rss_mb"] <= 200,
    )
    row(
        "journal size on disk after full sync",
        f"{fmt(r['journal_bytes'] / 1e6, 1)} MB "
        f"({fmt(r['journal_bytes'] / max(1, rs['copied']))} B/copied key)",
    )
    nj = r.get("sync_nojournal")
    if nj:
        cost = 1 - rs["keys_s"] / nj["keys_s"]
        row(
            "full sync without journal (record() no-op)",
            f"{fmt(nj['keys_s'])} keys/s, peak RSS {fmt(nj['rss_mb'])} MB",
        )
        row("journal cost (throughput lost, full sync)", f"{fmt(100 * cost)} %", "<= 20 %", cost <= 0.20)
    w = r.get("watch")
    if w:
        pw, bw, cw = w["paced"], w["burst"], w["catchup"]
        row(
            f"watch, paced {fmt(args.rate)} writes/s for {fmt(args.duration)} s",
            f"source {fmt(pw['source_rev_s'])} rev/s, standby {fmt(pw['standby_rev_s'])} rev/s "
            f"({fmt(pw['revisions'])} revisions, {fmt(pw['missing'])} not seen)",
        )
        row(
            "watch lag p50 / p99 / max (source ack -> standby checkpoint)",
            f"{fmt(pw['p50'], 1)} / {fmt(pw['p99'], 1)} / {fmt(pw['max'], 1)} ms "
            f"(p99 from send: {fmt(pw['p99_send'], 1)} ms)",
            "p99 <= 100 ms",
            pw["p99"] <= 100,
        )
        row(
            "watch, burst (writer as fast as it goes)",
            f"source {fmt(bw['source_rev_s'])} rev/s, standby {fmt(bw['standby_rev_s'])} rev/s; lag p50 "
            f"{fmt(bw['p50'], 1)} ms, p99 {fmt(bw['p99'], 1)} ms",
        )
        row(
            "watch, catch-up of a backlog (replicator alone)",
            f"{fmt(cw['revisions'])} revisions in {fmt(cw['seconds'], 2)} s = {fmt(cw['rev_s'])} rev/s"
            + f"; replicator CPU {fmt(100 * cw['cpu'])} % of one core"
            + ("" if cw["complete"] else " (INCOMPLETE after 120 s)"),
            ">= 5,000 rev/s",
            cw["rev_s"] >= 5000 and bool(cw["complete"]),
        )
        row("watch stream broken and resumed (GOAWAY too_many_pings etc.)", fmt(w["reconnects"]["n"]))
        row(
            "replicator RSS in the watch phase",
            f"{fmt(w['memory']['rss'])} MB (peak {fmt(w['memory']['hwm'])} MB)",
        )

    counts = ", ".join(f"{k} {v}" for k, v in sorted(ds.counts.items()))
    head = (
        f"### N = {ds.n:,} keys\n\n{counts}, {len(ds.namespaces)} namespaces "
        f"({len(ds.mirrored)} selected); values 1-20 KB log-uniform, mean {mean_kb:.1f} KB, "
        f"{ds.total_bytes / 1e6:,.0f} MB in all. Machine: {os.cpu_count()} cores; etcd "
        f"--unsafe-no-fsync, journal: {r['journal_desc']}.\n\n"
    )
    table = "| metric | value | target | met? |\n|---|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows
    )
    return head + table + "\n"


# ---------------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, work: Path) -> str:
    extra = tuple(args.replicator_args.split()) if args.replicator_args else ()
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    ds = DataSet(args.keys)
    r: dict[str, object] = {}
    src = start_etcd("src", work)

    def say(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    say(f"loading {args.keys:,} objects")
    r["load_s"] = await load(src, ds)
    say(f"loaded in {r['load_s']:.1f} s ({ds.total_bytes / 1e6:.0f} MB)")

    dst = start_etcd("baseline", work)
    r["baseline"] = await baseline(src, dst)
    stop_etcd(dst)
    say(f"baseline: {r['baseline']['keys_s']:.0f} keys/s")

    if not args.skip_make_mirror:
        dst = start_etcd("mirror", work)
        r["make_mirror"] = make_mirror(src, dst, ds.n, args.make_mirror_cap, work / "make-mirror.log")
        stop_etcd(dst)
        say(f"make-mirror: {r['make_mirror']['keys_s']:.0f} keys/s")

    if args.journal == "none":
        journal, no_journal, r["journal_desc"] = f"sqlite:///{work}/journal.db", True, "none (record() no-op)"
    elif args.journal_url:
        journal, no_journal, r["journal_desc"] = args.journal_url, False, "given URL"
    else:
        journal, no_journal, r["journal_desc"] = (
            f"sqlite:///{work}/journal.db",
            False,
            "SQLite file on local disk",
        )
    dst = start_etcd("standby", work)
    prof = work / "run.prof" if args.profile else None
    watching = args.duration > 0
    log = work / "sync-and-watch.log"
    r["sync"], rep = full_sync(
        src, dst, rules, journal, log, once=not watching, no_journal=no_journal, profile=prof, extra=extra
    )
    say(f"full sync: {r['sync']['keys_s']:.0f} keys/s, peak RSS {r['sync']['rss_mb']:.0f} MB")
    r["journal_bytes"] = sum(f.stat().st_size for f in work.glob("journal.db*"))
    async with await client(dst) as c:
        copied_bytes = 0
        async for page in c.range_pages(PREFIX, page_size=1000):
            copied_bytes += sum(len(kv.key) + len(kv.value) for kv in page.kvs)
    r["copied_bytes_per_key"] = copied_bytes / max(1, r["sync"]["copied"])

    if rep is not None:
        say(f"watch phase: {args.rate} writes/s for {args.duration} s, then burst and catch-up")
        r["watch"] = await watch_phase(rep, log, dst, src, ds, work, args)
    stop_etcd(dst)
    # after the measured run, so that it is not the one paying for a cold source
    if not args.no_journal_compare and not no_journal:
        dst = start_etcd("nojournal", work)
        r["sync_nojournal"], _ = full_sync(
            src,
            dst,
            rules,
            f"sqlite:///{work}/nj.db",
            work / "sync-nojournal.log",
            no_journal=True,
            extra=extra,
        )
        stop_etcd(dst)
        say(f"full sync without journal: {r['sync_nojournal']['keys_s']:.0f} keys/s")

    stop_etcd(src)

    text = report(args, ds, r)
    if args.profile:
        for name in ("run.prof",):
            path = work / name
            if path.exists():
                keep = Path(args.profile) / f"{ds.n}-{name}"
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, keep)
                say(f"profile kept at {keep}")
    return text


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_run":
        return _run_entry(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_observe":
        asyncio.run(_observe(sys.argv[2], sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=100_000, help="objects in the source (default 100000)")
    p.add_argument("--rate", type=float, default=2000, help="watch-phase writes/s (default 2000)")
    p.add_argument("--duration", type=float, default=20, help="seconds of the paced watch phase (0: skip it)")
    p.add_argument(
        "--journal",
        choices=("sqlite", "none"),
        default="sqlite",
        help="journal of the measured runs (none: record() is a no-op)",
    )
    p.add_argument("--journal-url", help="SQLAlchemy URL of the journal instead (e.g. a PostgreSQL database)")
    p.add_argument("--no-journal-compare", action="store_true", help="skip the full sync without journal")
    p.add_argument("--skip-make-mirror", action="store_true")
    p.add_argument(
        "--make-mirror-cap", type=float, default=60, help="seconds make-mirror may run (default 60)"
    )
    p.add_argument(
        "--profile", metavar="DIR", help="run the measured replicator under cProfile, keep stats in DIR"
    )
    p.add_argument(
        "--replicator-args", default="", help="extra `replicator run` flags, e.g. '--keepalive-time 10s'"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, journal)")
    p.add_argument("--out", help="also write the markdown table to this file")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="replicator-bench-"))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        text = asyncio.run(main_async(args, work))
    finally:
        cleanup()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
