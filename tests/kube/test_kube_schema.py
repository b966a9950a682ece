"""Full protobuf decoding through the generated descriptors, and CBOR custom resources."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from replicator.errors import DecodeError
from replicator.kube import schema, synth
from replicator.kube.encryption import EncryptionConfig
from replicator.kube.protowire import encode_len
from replicator.kube.resources import ResourceCatalog, stored_version
from replicator.kube.values import Format, decode


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    typemeta = encode_len(1, api_version.encode()) + encode_len(2, kind.encode())
    return b"k8s\x00" + encode_len(1, typemeta) + encode_len(2, raw)


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path in our syntax, scalar) for every scalar in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f'{path}["{k}"]' if "." in k or "/" in k else f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, node


def as_field(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def test_runtime_is_upb() -> None:
    assert schema.implementation() == "upb"
    assert schema.schema_version() == "v0.37.2"


def test_old_values_decode_fully(old_values: list[tuple[str, bytes, dict[str, Any]]]) -> None:
    """Every scalar of the expected JSON reads back through field(), the same path syntax as JSON."""
    for key, value, expected in old_values:
        obj = decode(key, value)
        checked = 0
        for path, want in leaves(expected):
            if path in ("apiVersion", "kind"):
                continue
            assert obj.field(path) == as_field(want), f"{key} {path}"
            checked += 1
        assert checked > 20
    pod = decode(*old_values[1][:2])
    assert pod.kind == "Pod"
    assert (
        pod.field("spec.volumes[0].secret.secretName") == "default-token-nm27w"
    )  # through inline VolumeSource
    assert pod.values("spec.containers[*].image") == ("perl",)
    assert pod.field("spec.containers[*].image") is None  # no single value
    assert pod.field("spec.containers[0].resources.requests.cpu") == "100m"  # Quantity
    assert pod.field("spec.containers[5].image") is None and pod.field("spec.nope") is None
    assert pod.field("status.startTime") == "2017-06-27T16:35:34Z"  # Time


def test_real_values_decode_fully(real_values: dict[str, bytes], real_encryption_config: Any) -> None:
    config = EncryptionConfig.load(real_encryption_config)
    svc = decode("k", real_values["/registry/services/specs/unique/test"])
    assert svc.field("spec.clusterIP") == "10.244.102.146"
    assert svc.field("spec.ports[0].port") is not None and svc.field("spec.ports[0].port").isdigit()
    assert svc.field("spec.ports[0].targetPort") is not None  # IntOrString
    key = "/registry/secrets/unique/influxdb"
    plain = config.decrypt(key=key, value=real_values[key], group="", resource="secrets")
    secret = decode(key, plain)
    assert secret.field("type") == "Opaque"
    keys = sorted(secret.message().data)
    assert keys and all(secret.field(f'data["{k}"]') for k in keys)  # bytes render as base64


def test_synth_pod() -> None:
    obj = decode("k", synth.pod("ns", "web-1", node_name="n1", image="nginx:1.27", labels={"app": "web"}))
    assert obj.field("spec.nodeName") == "n1"
    assert obj.field("spec.containers[0].image") == "nginx:1.27"
    assert obj.field("spec.containers.0.imagePullPolicy") == "IfNotPresent"
    assert obj.field("spec.terminationGracePeriodSeconds") == "30"
    assert obj.field("status.phase") == "Running"
    assert obj.field("spec.hostNetwork") == "false"  # absent scalar: zero value, as field selectors see it


def _stored_kinds() -> list[tuple[str, str]]:
    out = []
    for rt in ResourceCatalog().types():
        version = stored_version(rt.group, rt.kind)
        api_version = f"{rt.group}/{version}" if rt.group else str(version)
        if schema.message_name(api_version, rt.kind) is not None:
            out.append((api_version, rt.kind))
    return sorted(set(out))


def test_every_stored_builtin_kind_has_a_message() -> None:
    kinds = _stored_kinds()
    assert len(kinds) >= 60
    assert ("v1", "Pod") in kinds and ("autoscaling/v2", "HorizontalPodAutoscaler") in kinds
    assert schema.message_name("apiextensions.k8s.io/v1", "CustomResourceDefinition") is not None
    assert schema.message_name("apiregistration.k8s.io/v1", "APIService") is not None
    assert schema.message_name("example.io/v1", "Widget") is None


@pytest.mark.parametrize(("api_version", "kind"), _stored_kinds())
def test_table_round_trip(api_version: str, kind: str) -> None:
    """Build each stored kind with its own descriptor class, store it, read fields back."""
    cls = schema.message_class(api_version, kind)
    assert cls is not None
    msg: Any = cls()
    msg.metadata.name = "obj"
    msg.metadata.namespace = "ns"
    msg.metadata.labels["a.b/c"] = "d"
    msg.metadata.creationTimestamp.seconds = 1_700_000_000
    msg.metadata.finalizers.append("example.io/f")
    scalars = []
    for f in msg.DESCRIPTOR.fields:  # every top-level scalar gets a value and must read back
        if f.message_type is None and not f.is_repeated:
            if f.type == f.TYPE_STRING:
                setattr(msg, f.name, f"v-{f.name}")
            elif f.type == f.TYPE_BOOL:
                setattr(msg, f.name, True)
            elif f.type in (f.TYPE_INT32, f.TYPE_INT64):
                setattr(msg, f.name, 7)
            scalars.append(f.name)
    obj = decode("/registry/x/ns/obj", envelope(api_version, kind, msg.SerializeToString()))
    assert (obj.kind, obj.meta.name, obj.labels["a.b/c"]) == (kind, "obj", "d")
    assert obj.field("metadata.finalizers[0]") == "example.io/f"
    assert obj.field("metadata.creationTimestamp") == "2023-11-14T22:13:20Z"
    for name in scalars:
        assert obj.field(name) in (f"v-{name}", "true", "7")
    assert obj.message() == msg


def test_deployment_paths() -> None:
    cls = schema.message_class("apps/v1", "Deployment")
    assert cls is not None
    d: Any = cls()
    d.metadata.name = "web"
    d.spec.replicas = 3
    d.spec.strategy.rollingUpdate.maxSurge.type = 1
    d.spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    d.spec.strategy.rollingUpdate.maxUnavailable.intVal = 1
    c = d.spec.template.spec.containers.add()
    c.name, c.image = "app", "nginx"
    c.env.add(name="A", value="1")
    # proto: secretKeyRef.localObjectReference.name (inline in Go); JSON and our paths: secretKeyRef.name
    c.env.add(name="B").valueFrom.secretKeyRef.localObjectReference.name = "s"
    d.spec.template.spec.containers.add(name="side", image="envoy")
    obj = decode("k", envelope("apps/v1", "Deployment", d.SerializeToString()))
    assert obj.field("spec.replicas") == "3"
    assert obj.field("spec.strategy.rollingUpdate.maxSurge") == "25%"
    assert obj.field("spec.strategy.rollingUpdate.maxUnavailable") == "1"
    assert obj.values("spec.template.spec.containers[*].image") == ("nginx", "envoy")
    assert obj.field("spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef.name") == "s"
    assert obj.field("spec.paused") == "false"
    assert obj.field("metadata.deletionTimestamp") is None
    assert obj.field("spec.template") is None  # not a scalar


def test_unknown_kind_and_bad_bytes() -> None:
    meta = encode_len(1, encode_len(1, b"x"))
    unknown = decode("k", envelope("example.io/v1", "Widget", meta))
    assert unknown.meta.name == "x" and unknown.field("spec.a") is None and unknown.message() is None
    bad = decode("/registry/pods/ns/x", envelope("v1", "Pod", meta + encode_len(2, b"\x0a\xff")))
    assert bad.meta.name == "x"  # metadata fast path never parses the rest
    with pytest.raises(DecodeError, match="bad protobuf") as info:
        bad.field("spec.nodeName")
    assert info.value.key == "/registry/pods/ns/x"


def test_decoding_speed_metadata_vs_full() -> None:
    value = synth.pod("ns", "web-1", node_name="n1", labels={"app": "web"}, pad_to=4096)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        decode("k", value).field("metadata.name")
    meta_us = (time.perf_counter() - t0) / n * 1e6
    decode("k", value).field("spec.nodeName")  # warm the schema
    t0 = time.perf_counter()
    for _ in range(n):
        decode("k", value).field("spec.nodeName")
    full_us = (time.perf_counter() - t0) / n * 1e6
    print(f"\nmetadata-only {meta_us:.1f} us/value, full decode {full_us:.1f} us/value")
    assert meta_us < 1000 and full_us < 5000


# -- CBOR ---------------------------------------------------------------------------------------


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def cbor(value: Any) -> bytes:
    """A tiny independent CBOR encoder for tests (definite lengths)."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def test_cbor_custom_resource() -> None:
    doc = {
        "apiVersion": "example.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "labels": {"a.b/c": "d"}, "uid": "u1"},
        "spec": {
            "size": 3,
            "ratio": 0.5,
            "neg": -2,
            "on": True,
            "off": False,
            "nil": None,
            "blob": b"\x01\x02",
        },
        "items": [{"x": "y"}, {"x": "z"}],
    }
    value = b"\xd9\xd9\xf7" + cbor(doc)
    obj = decode("/registry/example.io/widgets/ns/w", value)
    assert obj.format is Format.CBOR
    assert (obj.api_version, obj.kind, obj.meta.name, obj.meta.namespace) == (
        "example.io/v1",
        "Widget",
        "w",
        "ns",
    )
    assert obj.labels == {"a.b/c": "d"}
    assert (
        obj.field("spec.size") == "3" and obj.field("spec.ratio") == "0.5" and obj.field("spec.neg") == "-2"
    )
    assert (obj.field("spec.on"), obj.field("spec.off"), obj.field("spec.nil")) == ("true", "false", None)
    assert obj.field("spec.blob") == "AQI="
    assert obj.values("items[*].x") == ("y", "z")
    # indefinite-length map and string, a float16, a nested tag (all valid CBOR)
    indefinite = b"\xd9\xd9\xf7\xbf" + cbor("kind") + b"\x7f\x61W\x61x\xff" + cbor("h") + b"\xf9\x3c\x00"
    indefinite += cbor("t") + b"\xc1\x1a\x00\x00\x00\x01" + b"\xff"
    obj = decode("k", indefinite)
    assert (obj.kind, obj.field("h"), obj.field("t")) == ("Wx", "1.0", "1")


@pytest.mark.parametrize(
    "value",
    [
        b"\xd9\xd9\xf7\xa1\x61a",
        b"\xd9\xd9\xf7\x82\x01",
        b"\xd9\xd9\xf7\x01",
        b"\xd9\xd9\xf7\xa1\x01\x01\x00",
        b"\xd9\xd9\xf7\xfc",
    ],
)
def test_bad_cbor(value: bytes) -> None:
    with pytest.raises(DecodeError):
        decode("k", value)


def test_jobs_and_replication_controllers_without_labels_show_their_templates_labels() -> None:
    """The apiserver's read-time defaulting copies the pod template's labels into empty labels."""
    from replicator.kube import schema
    from replicator.kube.synth import envelope
    from replicator.kube.values import decode

    for api_version, kind, key in (
        ("batch/v1", "Job", "/registry/jobs/default/pi"),
        ("v1", "ReplicationController", "/registry/controllers/default/rc"),
    ):
        msg = schema.message_class(api_version, kind)()
        msg.metadata.name = "x"
        msg.spec.template.metadata.labels["app"] = "pi"
        obj = decode(key, envelope(api_version, kind, msg.SerializeToString()))
        assert dict(obj.labels) == {"app": "pi"} and not obj.meta.labels
        msg.metadata.labels["own"] = "yes"  # labels of its own win: no defaulting
        obj = decode(key, envelope(api_version, kind, msg.SerializeToString()))
        assert dict(obj.labels) == {"own": "yes"}
