from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import DecodeError
from replicator.kube.encryption import EncryptionConfig
from replicator.kube.protowire import encode_len, encode_varint
from replicator.kube.resources import ResourceCatalog
from replicator.kube.values import Format, decode, detect_format, split_path


def s(n: int, text: str) -> bytes:
    return encode_len(n, text.encode())


def entry(n: int, k: str, v: str) -> bytes:
    return encode_len(n, s(1, k) + s(2, v))


def envelope(api_version: str, kind: str, obj: bytes) -> bytes:
    return (
        b"k8s\x00"
        + encode_len(1, s(1, api_version) + s(2, kind))
        + encode_len(2, obj)
        + s(4, "application/vnd.kubernetes.protobuf")
    )


def meta(name: str, ns: str = "", labels: dict[str, str] | None = None) -> bytes:
    out = s(1, name) + s(3, ns) + s(5, "uid-1")
    out += encode_len(8, bytes([0x08]) + encode_varint(1_500_000_000))
    for k, v in (labels or {}).items():
        out += entry(11, k, v)
    out += entry(12, "kubectl.kubernetes.io/last-applied-configuration", "{}")
    owner = s(1, "ReplicaSet") + s(3, "rs") + s(4, "uid-rs") + s(5, "apps/v1") + bytes([0x30, 1])
    out += encode_len(13, owner)
    out += encode_len(17, b"\x0a\x03abc")  # managedFields: skipped
    return out


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (b"k8s\x00\x0a", Format.PROTOBUF),
        (b"{}", Format.JSON),
        (b" \n\t{", Format.JSON),
        (b"\xd9\xd9\xf7\xa1", Format.CBOR),
        (b"k8s:enc:aescbc:v1:key:xx", Format.ENCRYPTED),
        (b"k8s:enc:kms:v2:p:", Format.ENCRYPTED),
        (b"", Format.UNKNOWN),
        (b"[1]", Format.UNKNOWN),
        (b"k8s", Format.UNKNOWN),
    ],
)
def test_detect_format(value: bytes, fmt: Format) -> None:
    assert detect_format(value) is fmt


def test_synthetic_pod_fields() -> None:
    spec = s(8, "sa") + s(10, "node-7") + s(3, "Always")
    pod = envelope(
        "v1", "Pod", encode_len(1, meta("p", "ns", {"app": "web", "a.b/c": "d"})) + encode_len(2, spec)
    )
    obj = decode("/registry/pods/ns/p", pod)
    assert (obj.api_version, obj.version, obj.group, obj.kind, obj.format) == (
        "v1",
        "v1",
        "",
        "Pod",
        Format.PROTOBUF,
    )
    assert obj.meta.creation_timestamp == "2017-07-14T02:40:00Z"
    assert obj.meta.owner_references[0].kind == "ReplicaSet" and obj.meta.owner_references[0].controller
    assert obj.meta.owner_references[0].api_version == "apps/v1"
    assert obj.field("spec.nodeName") == "node-7"
    assert obj.field("spec.serviceAccountName") == "sa"
    assert obj.field("status.phase") == ""
    assert obj.field("spec.containers") is None  # unknown on protobuf
    assert obj.field("metadata.name") == "p"
    assert obj.field("metadata.namespace") == "ns"
    assert obj.field("metadata.labels.app") == "web"
    assert obj.field("metadata.labels.a.b/c") == "d"
    assert obj.field('metadata.labels["a.b/c"]') == "d"
    assert obj.field("metadata.labels.missing") is None
    assert "last-applied" not in repr(obj)


def test_unscheduled_pod_node_name_is_empty() -> None:
    pod = envelope("v1", "Pod", encode_len(1, meta("p", "ns")) + encode_len(2, s(8, "sa")))
    assert decode("k", pod).field("spec.nodeName") == ""


def test_secret_and_configmap_fields() -> None:
    secret = envelope(
        "v1",
        "Secret",
        encode_len(1, meta("s", "ns")) + entry(2, "pw", "x") + s(3, "kubernetes.io/tls") + bytes([0x28, 1]),
    )
    obj = decode("k", secret)
    assert obj.field("type") == "kubernetes.io/tls"
    assert obj.field("immutable") == "true"
    cm = envelope("v1", "ConfigMap", encode_len(1, meta("c", "ns")))
    assert decode("k", cm).field("immutable") == "false"


def test_apps_group_version() -> None:
    obj = decode("k", envelope("apps/v1", "Deployment", encode_len(1, meta("d", "ns"))))
    assert (obj.group, obj.version) == ("apps", "v1")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"k8s\x00\x0a\x05ab", "bad protobuf"),
        (b"k8s\x00" + encode_len(1, s(1, "v1")), "no object"),
        (b"k8s\x00" + encode_len(2, b"") + s(3, "gzip"), "content encoding"),
        (b"\xd9\xd9\xf7\xa1", "bad CBOR"),
        (b"k8s:enc:aescbc:v1:k:secretstuff", "encrypted"),
        (b"{not json", "bad JSON"),
        (b"[]", "unknown value format"),
        (b'{"metadata": {"labels": {"a": 1}}}', "string map"),
    ],
)
def test_decode_errors_name_key_not_value(value: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        decode("/registry/x/y", value)
    assert info.value.key == "/registry/x/y"
    assert "secretstuff" not in str(info.value)


def test_json_fields() -> None:
    doc = {
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephBlockPool",
        "metadata": {"name": "p", "namespace": "ns", "labels": {"x": "y"}},
        "spec": {
            "replicated": {"size": 3, "requireSafeReplicaSize": True},
            "ratio": 0.5,
            "items": [{"a": "b"}],
            "nil": None,
            "dotted.key": "v",
        },
    }
    obj = decode("k", json.dumps(doc).encode())
    assert obj.format is Format.JSON and obj.version == "v1" and obj.group == "ceph.rook.io"
    assert obj.field("spec.replicated.size") == "3"
    assert obj.field("spec.replicated.requireSafeReplicaSize") == "true"
    assert obj.field("spec.ratio") == "0.5"
    assert obj.field("spec.items.0.a") == "b"
    assert obj.field('spec["dotted.key"]') == "v"
    assert obj.field("spec.nil") is None
    assert obj.field("spec.replicated") is None  # not a scalar
    assert obj.field("spec.missing.deep") is None
    assert obj.labels == {"x": "y"}


def test_split_path() -> None:
    assert split_path('a.b["c.d/e"].f') == ["a", "b", "c.d/e", "f"]
    assert split_path("metadata.labels.app.kubernetes.io/name") == [
        "metadata",
        "labels",
        "app.kubernetes.io/name",
    ]
    assert split_path("a[") is None
    assert split_path("") is None


def test_real_values(real_values: dict[str, bytes], real_encryption_config: Any) -> None:
    cat = ResourceCatalog()
    config = EncryptionConfig.load(real_encryption_config)
    seen = {}
    for key, value in real_values.items():
        info = cat.parse_key(key)
        assert info is not None
        fmt = detect_format(value)
        if info.resource.resource == "secrets":
            assert fmt is Format.ENCRYPTED
            value = config.decrypt(key=key, value=value, group="", resource="secrets")
        obj = decode(key, value)
        assert obj.meta.name == info.name
        assert (obj.meta.namespace or None) == info.namespace
        seen[key] = (fmt, obj)
    ns_labels = {k.rsplit("/", 1)[1]: dict(o.labels) for k, (f, o) in seen.items() if o.kind == "Namespace"}
    assert ns_labels == {
        "unit-test": {"test.io/namespace-kind": "unit"},
        "unique": {"test.io/namespace-kind": "unique"},
        "rook-ceph": {"operator": "rook"},
    }
    for fmt, obj in seen.values():
        if obj.kind == "Secret":
            assert obj.field("type") == "Opaque"
        if obj.kind in ("Namespace", "ConfigMap", "Service"):
            assert fmt is Format.PROTOBUF
    secret_labels = {k: dict(o.labels) for k, (f, o) in seen.items() if o.kind == "Secret"}
    assert secret_labels == {
        "/registry/secrets/unit-test/exclude-me-secret": {"test.io/namespace-kind": "unit"},
        "/registry/secrets/unique/influxdb": {"test.io/namespace-kind": "unit"},
        "/registry/secrets/unit-test/influxdb": {"test.io/namespace-kind": "unit"},
        "/registry/secrets/unique/test": {},
    }
    svc = seen["/registry/services/specs/unique/test"][1]
    assert (svc.field("spec.type"), svc.field("spec.clusterIP")) == ("ClusterIP", "10.244.102.146")
    crd_fmt, crd = seen["/registry/apiextensions.k8s.io/customresourcedefinitions/nodes.longhorn.io"]
    assert crd_fmt is Format.JSON and crd.api_version == "apiextensions.k8s.io/v1beta1"
    assert crd.labels["app.kubernetes.io/managed-by"] == "Helm"
    pool_fmt, pool = seen["/registry/ceph.rook.io/cephblockpools/rook-ceph/replicapool"]
    assert (pool_fmt, pool.kind, pool.api_version) == (Format.JSON, "CephBlockPool", "ceph.rook.io/v1")


def test_old_values(old_values: list[tuple[str, bytes, dict[str, Any]]]) -> None:
    assert len(old_values) == 2
    for key, value, expected in old_values:
        obj = decode(key, value)
        m = expected["metadata"]
        assert (obj.api_version, obj.kind) == (expected["apiVersion"], expected["kind"])
        assert obj.meta.name == m["name"] and obj.meta.namespace == m["namespace"]
        assert obj.meta.uid == m["uid"]
        assert obj.meta.generate_name == m.get("generateName", "")
        assert obj.meta.creation_timestamp == m["creationTimestamp"]
        assert dict(obj.labels) == m.get("labels", {})
        assert dict(obj.meta.annotations) == m.get("annotations", {})
        owners = [(o.api_version, o.kind, o.name, o.uid, o.controller) for o in obj.meta.owner_references]
        assert owners == [
            (o["apiVersion"], o["kind"], o["name"], o["uid"], o.get("controller", False))
            for o in m.get("ownerReferences", [])
        ]
        if obj.kind == "Pod":
            assert obj.field("spec.nodeName") == expected["spec"].get("nodeName", "")
            assert obj.field("status.phase") == expected["status"]["phase"]


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-./", min_size=1, max_size=30)


@given(labels=st.dictionaries(_label, st.text(max_size=20), max_size=5), name=_label)
def test_protobuf_labels_roundtrip(labels: dict[str, str], name: str) -> None:
    obj = decode("k", envelope("v1", "ConfigMap", encode_len(1, meta(name, "ns", labels))))
    assert dict(obj.labels) == labels and obj.meta.name == name


@given(value=st.binary(max_size=64))
def test_decode_garbage_raises_only_decode_error(value: bytes) -> None:
    for candidate in (b"k8s\x00" + value, b"{" + value):
        try:
            obj = decode("k", candidate)
            dict(obj.labels)
        except DecodeError:
            pass
