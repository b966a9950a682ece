"""An independent oracle: what the destination must hold, computed from the SOURCE's etcdctl dump.

It implements only the test rule file (``RULES_YAML``), with its own few-line protobuf reader,
and shares no code with the replicator (no ``replicator.kube``, ``replicator.rules``):

- ``/registry/namespaces/<ns>``            in when the Namespace's labels have ``mirror=true``;
- ``/registry/configmaps/<ns>/<name>``     in when namespace ``<ns>`` is in and the ConfigMap
                                            carries ``app=x``;
- ``/registry/secrets/<ns>/<name>``        in when namespace ``<ns>`` is in.

Values are compared byte for byte. Keys outside ``/registry/`` (the checkpoint, standby-own keys)
and the standby-own keys the test names are left out of the comparison.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from replicator.etcd.local import etcdctl_path  # only the binary's location

PREFIX = "/registry/"
CHECKPOINT = "/etcd-replicator/checkpoint"

RULES_YAML = """\
filters:
  sequential:
    - group: ""
      sequence: 1
      resources:
        - {version: v1, kind: Namespace}
      labelSelectors:
        - matchLabels: {mirror: "true"}
  secondary:
    - group: ""
      resources:
        - {version: v1, kind: ConfigMap}
      namespaceSelectors:
        - matchLabels: {mirror: "true"}
      labelSelectors:
        - matchLabels: {app: x}
    - group: ""
      resources:
        - {version: v1, kind: Secret}
      namespaceSelectors:
        - matchLabels: {mirror: "true"}
"""


# -- a minimal protobuf reader: just enough to find metadata.labels --------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, bytes | int]]:
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            n, pos = _varint(buf, pos)
            yield number, buf[pos : pos + n]
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")


def labels_of(value: bytes) -> dict[str, str]:
    """``k8s\\0`` + Unknown{2: raw}; raw = object{1: ObjectMeta{11: map entry{1 key, 2 value}}}."""
    if not value.startswith(b"k8s\x00"):
        raise ValueError("not a protobuf-encoded Kubernetes object")
    raw = next(v for n, v in _fields(value[4:]) if n == 2)
    assert isinstance(raw, bytes)
    meta = next(v for n, v in _fields(raw) if n == 1)
    assert isinstance(meta, bytes)
    labels: dict[str, str] = {}
    for n, entry in _fields(meta):
        if n == 11 and isinstance(entry, bytes):
            kv = dict(_fields(entry))
            labels[bytes(kv.get(1, b"")).decode()] = bytes(kv.get(2, b"")).decode()  # type: ignore[arg-type]
    return labels


# -- the test rule file's semantics ---------------------------------------------------------------


def expected(source: Mapping[str, bytes]) -> dict[str, bytes]:
    """The in-scope subset of a source dump."""
    mirrored_ns = {
        key.split("/")[3]
        for key, value in source.items()
        if key.startswith("/registry/namespaces/") and labels_of(value).get("mirror") == "true"
    }
    out: dict[str, bytes] = {}
    for key, value in source.items():
        parts = key.split("/")  # ['', 'registry', resource, ns, name]
        if not key.startswith(PREFIX):
            continue
        if parts[2] == "namespaces" and len(parts) == 4 and parts[3] in mirrored_ns:
            out[key] = value
        elif parts[2] == "configmaps" and len(parts) == 5 and parts[3] in mirrored_ns:
            if labels_of(value).get("app") == "x":
                out[key] = value
        elif parts[2] == "secrets" and len(parts) == 5 and parts[3] in mirrored_ns:
            out[key] = value
    return out


# -- etcdctl dumps and the comparison -------------------------------------------------------------


def dump(endpoint: str, prefix: str = "/", *, timeout: float = 60.0) -> tuple[int, dict[str, bytes]]:
    """(header revision, every key under ``prefix``) read with etcdctl."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    proc = subprocess.run(
        [
            str(etcdctl_path()),
            f"--endpoints={endpoint}",
            "--command-timeout=30s",
            "get",
            "--prefix",
            prefix,
            "-w",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"etcdctl get on {endpoint} failed: {proc.stderr.strip()}")
    doc = json.loads(proc.stdout)
    kvs = {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
        for kv in doc.get("kvs", [])
    }
    return int(doc["header"]["revision"]), kvs


@dataclass(frozen=True)
class Diff:
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    different: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.different)

    def __str__(self) -> str:
        def few(keys: tuple[str, ...]) -> str:
            return f"{len(keys)} {list(keys[:8])}"

        return f"missing {few(self.missing)}, extra {few(self.extra)}, different {few(self.different)}"


def compare(source: Mapping[str, bytes], dest: Mapping[str, bytes], *, own: Iterable[str] = ()) -> Diff:
    want = expected(source)
    skip = set(own)
    have = {k: v for k, v in dest.items() if k.startswith(PREFIX) and k not in skip}
    return Diff(
        missing=tuple(sorted(set(want) - set(have))),
        extra=tuple(sorted(set(have) - set(want))),
        different=tuple(sorted(k for k in set(want) & set(have) if want[k] != have[k])),
    )


def checkpoint(dest: Mapping[str, bytes]) -> dict[str, object] | None:
    raw = dest.get(CHECKPOINT)
    return None if raw is None else dict(json.loads(raw))


def etcdctl(endpoint: str, *args: str, timeout: float = 30.0) -> str:
    """Run etcdctl (API v3) against ``endpoint``; fails the test on a non-zero exit."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    cmd = [str(etcdctl_path()), f"--endpoints={endpoint}", "--command-timeout=20s", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout
