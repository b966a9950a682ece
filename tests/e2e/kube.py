"""Reading a cluster with kubectl for comparisons: snapshots of the test's objects, normalised.

Nothing here uses the replicator's code: kubectl against a real kube-apiserver is the oracle.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .cluster import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
Ref = tuple[str, str, str]  # (kubectl resource, namespace or "", name)
T = TypeVar("T")


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus what legitimately differs between the sides.

    Only ``metadata.resourceVersion``: the apiserver derives it from the etcd mod_revision, which
    is the standby's own. Everything else comes from the stored bytes, copied unchanged.
    """
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


def snapshot(
    cluster: KubeCluster, types: Iterable[str], owned: Callable[[Ref], bool]
) -> dict[Ref, dict[str, Any]]:
    """Every object of ``types`` for which ``owned(ref)`` holds, normalised, keyed by reference.

    A type the cluster does not serve (a CRD not copied yet) contributes nothing.
    """
    found: dict[Ref, dict[str, Any]] = {}
    for rtype in types:
        proc = cluster.kubectl("get", rtype, "-A", "-o", "json", check=False)
        if proc.returncode != 0:
            if "doesn't have a resource type" in proc.stderr:
                continue
            raise AssertionError(f"[{cluster.name}] kubectl get {rtype}: {proc.stderr}")
        for item in json.loads(proc.stdout)["items"]:
            md = item["metadata"]
            ref = (rtype, md.get("namespace", ""), md["name"])
            if owned(ref):
                found[ref] = normalise(item)
    return found


def eventually(check: Callable[[], T], *, within: float = 30.0, every: float = 0.5) -> T:
    """Call ``check`` until it stops raising AssertionError; re-raise the last one at the deadline."""
    deadline = time.monotonic() + within
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(every)


def diff_summary(want: dict[Ref, Any], got: dict[Ref, Any]) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(r for r in set(want) & set(got) if want[r] != got[r])
    return f"missing on standby: {missing}\nunexpected on standby: {extra}\ndifferent content: {changed}"


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON documents first differ (a path), without printing values (Secrets)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k} only on one side"
            if (d := first_difference(a[k], b[k], f"{path}.{k}")) is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if (d := first_difference(x, y, f"{path}[{i}]")) is not None:
                return d
        return None
    return None if a == b else f"{path} differs"


class Replicator:
    """``python -m replicator run ...`` as a child process, its output in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = [sys.executable, "-m", "replicator", "run", *args]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def once(self, *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.args, "--once"], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
        )
        with self.log.open("a") as f:
            f.write(f"$ {' '.join(self.args)} --once -> {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        return proc

    def start(self) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                self.args, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )

    def stop(self, *, timeout: float = 30) -> int:
        """SIGTERM (the documented way to stop it); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.terminate()
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"replicator did not stop within {timeout}s of SIGTERM") from None
        return proc.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
