"""Synthetic Kubernetes storage values, laid out byte for byte as kube-apiserver stores them.

For the demo, the tests and the benchmarks: a built-in object is the protobuf envelope
(``k8s\\x00`` + runtime.Unknown{typeMeta, raw, contentEncoding "", contentType ""}) around the
object's own message, written the way Kubernetes' generated marshallers write it: fields in
ascending order, non-pointer strings and ints always present (even when empty), map entries
sorted by key. CRDs and custom resources are compact JSON as the apiserver's JSON serializer
writes them (``<``, ``>``, ``&`` escaped, newline-terminated).

Field numbers come from k8s.io/api core/v1 and coordination/v1 ``generated.proto`` and were
checked against values captured from a real cluster (tests/kube/test_kube_synth.py). Only the
fields a small cluster needs are written; this is not a general encoder.

``pad_to`` makes a value exactly that many bytes (a length prefix crossing a varint boundary can
add one or two) through a filler annotation, for benchmarks that need 1-20 KB values.
Speed matters here (a benchmark builds 100k values): plain ``bytes`` concatenation, no schema.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MAGIC = b"k8s\x00"
PADDING_ANNOTATION = "synth.replicator.example.io/padding"
"""Annotation that carries ``pad_to`` filler; never used by Kubernetes itself."""

_SMALL = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement, as in Go
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Tags of fields 1..31 (all this module writes), precomputed: tags dominate the build time.
_LD_TAG = [_varint(n << 3 | 2) for n in range(32)]
_V_TAG = [_varint(n << 3) for n in range(32)]


def _ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    n = len(payload)
    return _LD_TAG[number] + (_SMALL[n] if n < 128 else _varint(n)) + payload


def _s(number: int, text: str) -> bytes:
    return _ld(number, text.encode())


def _v(number: int, value: int) -> bytes:
    """A varint field (wire type 0); bools are 0/1."""
    return _V_TAG[number] + (_SMALL[value] if 0 <= value < 128 else _varint(value))


def _map(number: int, entries: Mapping[str, str] | Mapping[str, bytes] | None) -> bytes:
    if not entries:
        return b""
    parts = []
    for k in sorted(entries):
        v = entries[k]
        raw = v if isinstance(v, bytes) else v.encode()
        parts.append(_ld(number, _s(1, k) + _ld(2, raw)))
    return b"".join(parts)


def _time(seconds: int) -> bytes:
    """metav1.Time / MicroTime {1 seconds, 2 nanos}."""
    return _v(1, seconds) + _v(2, 0)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """Wrap an object's protobuf bytes in the runtime.Unknown envelope kube-apiserver stores."""
    return MAGIC + _ld(1, _s(1, api_version) + _s(2, kind)) + _ld(2, raw) + _s(3, "") + _s(4, "")


def object_meta(
    name: str,
    *,
    namespace: str = "",
    uid: str | None = None,
    created: int | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    generation: int = 0,
) -> bytes:
    """ObjectMeta {1 name, 2 generateName, 3 namespace, 4 selfLink, 5 uid, 6 resourceVersion
    (blank in storage), 7 generation, 8 creationTimestamp, 11 labels, 12 annotations}."""
    return b"".join(
        (
            _s(1, name),
            _s(2, ""),
            _s(3, namespace),
            _s(4, ""),
            _s(5, uid or str(uuid.uuid4())),
            _s(6, ""),
            _v(7, generation),
            _ld(8, _time(int(time.time()) if created is None else created)),
            _map(11, labels),
            _map(12, annotations),
        )
    )


def _ident(uid: str | None, created: int | None) -> tuple[str, int]:
    """Resolve the defaults once per object, so every padding attempt builds the same object."""
    return uid or str(uuid.uuid4()), int(time.time()) if created is None else created


# A builder takes the filler (None: no padding annotation) and returns the whole stored value.
_Build = Callable[[str | None], bytes]


def _annotated(annotations: Mapping[str, str] | None, filler: str | None) -> Mapping[str, str] | None:
    if filler is None:
        return annotations
    return {**(annotations or {}), PADDING_ANNOTATION: filler}


def _fit(build: _Build, pad_to: int) -> bytes:
    """``build`` with filler sized so the value is ``pad_to`` bytes (or the smallest size above it
    when a length prefix crossing a varint boundary makes ``pad_to`` itself unreachable)."""
    value = build(None)
    if len(value) >= pad_to:
        return value
    # First guess: the missing bytes minus the entry's own overhead (tags, key, length prefixes).
    n = max(0, pad_to - len(value) - len(PADDING_ANNOTATION) - 8)
    best: bytes | None = None
    tried: set[int] = set()
    while n not in tried:
        tried.add(n)
        value = build("x" * n)
        if len(value) == pad_to:
            return value
        if len(value) > pad_to and (best is None or len(value) < len(best)):
            best = value
        n = max(0, n + pad_to - len(value))
    while best is None:  # only short values so far: grow until past the target
        n += 1
        value = build("x" * n)
        if len(value) >= pad_to:
            best = value
    return best


def _proto(api_version: str, kind: str, pad_to: int, body: Callable[[str | None], bytes]) -> bytes:
    def build(filler: str | None) -> bytes:
        return envelope(api_version, kind, body(filler))

    return _fit(build, pad_to) if pad_to else build(None)


def _namespaced(
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    rest: bytes,
    *,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    uid: str | None,
    created: int | None,
    pad_to: int,
) -> bytes:
    """A namespaced object: its ObjectMeta (field 1) followed by the kind's own fields ``rest``."""
    ident = _ident(uid, created)

    def body(filler: str | None) -> bytes:
        meta = object_meta(
            name,
            namespace=namespace,
            uid=ident[0],
            created=ident[1],
            labels=labels,
            annotations=_annotated(annotations, filler),
        )
        return _ld(1, meta) + rest

    return _proto(api_version, kind, pad_to, body)


def namespace(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    phase: str = "Active",
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """core/v1 Namespace {1 metadata, 2 spec{1 finalizers}, 3 status{1 phase}}."""

    ident = _ident(uid, created)

    def body(filler: str | None) -> bytes:
        meta = object_meta(
            name, uid=ident[0], created=ident[1], labels=labels, annotations=_annotated(annotations, filler)
        )
        return _ld(1, meta) + _ld(2, _s(1, "kubernetes")) + _ld(3, _s(1, phase))

    return _proto("v1", "Namespace", pad_to, body)


def configmap(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """core/v1 ConfigMap {1 metadata, 2 data map<string,string>}."""

    return _namespaced(
        "v1",
        "ConfigMap",
        name,
        namespace,
        _map(2, data),
        labels=labels,
        annotations=annotations,
        uid=uid,
        created=created,
        pad_to=pad_to,
    )


def secret(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    data: Mapping[str, bytes] | None = None,
    type: str = "Opaque",
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """core/v1 Secret {1 metadata, 2 data map<string,bytes>, 3 type} (stringData is never stored)."""

    return _namespaced(
        "v1",
        "Secret",
        name,
        namespace,
        _map(2, data) + _s(3, type),
        labels=labels,
        annotations=annotations,
        uid=uid,
        created=created,
        pad_to=pad_to,
    )


def pod(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    node_name: str = "",
    image: str = "nginx",
    phase: str | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """core/v1 Pod with one container. PodSpec {2 containers{1 name, 2 image, 13
    terminationMessagePath, 14 imagePullPolicy, 20 terminationMessagePolicy}, 3 restartPolicy,
    4 terminationGracePeriodSeconds, 6 dnsPolicy, 8 serviceAccountName, 9 serviceAccount,
    10 nodeName, 19 schedulerName}; PodStatus {1 phase}. ``phase`` defaults to Running when bound."""
    container = b"".join(
        (
            _s(1, name.split("-")[0] or "app"),
            _s(2, image),
            _s(13, "/dev/termination-log"),
            _s(14, "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent"),
            _s(20, "File"),
        )
    )
    spec = b"".join(
        (
            _ld(2, container),
            _s(3, "Always"),
            _v(4, 30),
            _s(6, "ClusterFirst"),
            _s(8, "default"),
            _s(9, "default"),
            _s(10, node_name),
            _s(19, "default-scheduler"),
        )
    )
    status = _s(1, phase or ("Running" if node_name else "Pending"))

    return _namespaced(
        "v1",
        "Pod",
        name,
        namespace,
        _ld(2, spec) + _ld(3, status),
        labels=labels,
        annotations=annotations,
        uid=uid,
        created=created,
        pad_to=pad_to,
    )


def service(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    selector: Mapping[str, str] | None = None,
    cluster_ip: str = "10.96.0.10",
    type: str = "ClusterIP",
    ports: Iterable[tuple[str, int]] = (("http", 80),),
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """core/v1 Service. ServiceSpec {1 ports{1 name, 2 protocol, 3 port, 4 targetPort{1 type, 2
    intVal, 3 strVal}, 5 nodePort}, 2 selector, 3 clusterIP, 4 type, 7 sessionAffinity,
    ...}; ServiceStatus {1 loadBalancer{}}."""
    port_fields = b"".join(
        _ld(
            1,
            _s(1, pname) + _s(2, "TCP") + _v(3, port) + _ld(4, _v(1, 0) + _v(2, port) + _s(3, "")) + _v(5, 0),
        )
        for pname, port in ports
    )
    spec = b"".join(
        (
            port_fields,
            _map(2, selector),
            _s(3, cluster_ip),
            _s(4, type),
            _s(7, "None"),
            _s(8, ""),
            _s(10, ""),
            _s(11, ""),
            _v(12, 0),
            _v(13, 0),
        )
    )

    return _namespaced(
        "v1",
        "Service",
        name,
        namespace,
        _ld(2, spec) + _ld(3, _ld(1, b"")),
        labels=labels,
        annotations=annotations,
        uid=uid,
        created=created,
        pad_to=pad_to,
    )


def event(
    namespace: str,
    name: str,
    *,
    involved_kind: str,
    involved_name: str,
    reason: str,
    message: str,
    component: str = "kubelet",
    count: int = 1,
    created: int | None = None,
) -> bytes:
    """core/v1 Event {1 metadata, 2 involvedObject{1 kind, 2 namespace, 3 name}, 3 reason,
    4 message, 5 source{1 component}, 6 firstTimestamp, 7 lastTimestamp, 8 count, 9 type,
    10 eventTime}."""
    when = int(time.time()) if created is None else created
    raw = b"".join(
        (
            _ld(1, object_meta(name, namespace=namespace, created=when)),
            _ld(2, _s(1, involved_kind) + _s(2, namespace) + _s(3, involved_name)),
            _s(3, reason),
            _s(4, message),
            _ld(5, _s(1, component)),
            _ld(6, _time(when)),
            _ld(7, _time(when)),
            _v(8, count),
            _s(9, "Normal"),
            _ld(10, b""),
        )
    )
    return envelope("v1", "Event", raw)


def lease(
    namespace: str,
    name: str,
    *,
    holder: str,
    duration_seconds: int = 15,
    renewed: int | None = None,
) -> bytes:
    """coordination.k8s.io/v1 Lease {1 metadata, 2 spec{1 holderIdentity, 2
    leaseDurationSeconds, 3 acquireTime, 4 renewTime, 5 leaseTransitions}}."""
    when = int(time.time()) if renewed is None else renewed
    spec = _s(1, holder) + _v(2, duration_seconds) + _ld(3, _time(when)) + _ld(4, _time(when)) + _v(5, 0)
    return envelope(
        "coordination.k8s.io/v1", "Lease", _ld(1, object_meta(name, namespace=namespace)) + _ld(2, spec)
    )


def endpoints_lease(ip: str, *, port: int = 6443) -> bytes:
    """The core/v1 Endpoints kube-apiserver keeps at ``/registry/masterleases/<ip>``:
    {1 metadata, 2 subsets{1 addresses{1 ip}, 3 ports{1 name, 2 port, 3 protocol}}}."""
    subset = _ld(1, _s(1, ip)) + _ld(3, _s(1, "https") + _v(2, port) + _s(3, "TCP"))
    return envelope("v1", "Endpoints", _ld(1, object_meta(ip)) + _ld(2, subset))


def range_allocation(range_: str, data: bytes) -> bytes:
    """core/v1 RangeAllocation at ``/registry/ranges/serviceips``: {1 metadata, 2 range, 3 data}."""
    return envelope("v1", "RangeAllocation", _ld(1, object_meta("")) + _s(2, range_) + _ld(3, data))


# ---- JSON (CRDs and custom resources) -------------------------------------------------------


def _go_json(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON with Go's HTML escaping, newline-terminated, as the apiserver stores it."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode() + b"\n"


def _rfc3339(seconds: int | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) if seconds is None else seconds))


def _json_meta(
    name: str,
    *,
    namespace: str = "",
    uid: str | None,
    created: int | None,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["uid"] = uid or str(uuid.uuid4())
    meta["generation"] = 1
    meta["creationTimestamp"] = _rfc3339(created)
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta


def crd(
    group: str,
    kind: str,
    plural: str,
    *,
    version: str = "v1",
    scope: str = "Namespaced",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """An apiextensions.k8s.io/v1 CustomResourceDefinition as stored (JSON, typed field order)."""
    singular = kind.lower()
    names = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": singular}

    ident = _ident(uid, created)

    def build(filler: str | None) -> bytes:
        meta = _json_meta(
            f"{plural}.{group}",
            uid=ident[0],
            created=ident[1],
            labels=labels,
            annotations=_annotated(annotations, filler),
        )
        doc = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": meta,
            "spec": {
                "group": group,
                "names": names,
                "scope": scope,
                "versions": [
                    {
                        "name": version,
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
                "conversion": {"strategy": "None"},
            },
            "status": {
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "lastTransitionTime": meta["creationTimestamp"],
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "lastTransitionTime": meta["creationTimestamp"],
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                ],
                "acceptedNames": names,
                "storedVersions": [version],
            },
        }
        return _go_json(doc)

    return _fit(build, pad_to) if pad_to else build(None)


def custom_resource(
    group: str,
    version: str,
    kind: str,
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    created: int | None = None,
    pad_to: int = 0,
) -> bytes:
    """A custom resource as stored: unstructured JSON (keys sorted, as Go marshals maps).
    An empty ``namespace`` makes a cluster-scoped object."""

    ident = _ident(uid, created)

    def build(filler: str | None) -> bytes:
        meta = _json_meta(
            name,
            namespace=namespace,
            uid=ident[0],
            created=ident[1],
            labels=labels,
            annotations=_annotated(annotations, filler),
        )
        doc = {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": meta, "spec": dict(spec or {})}
        return _go_json(_sorted(doc))

    return _fit(build, pad_to) if pad_to else build(None)


def _sorted(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _sorted(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sorted(x) for x in node]
    return node
