"""Synthetic values must be what a kube-apiserver stores: decodable by ``values.decode``, laid out
like the real values captured from a cluster, encryptable, and sized on request."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.kube import protowire as pw
from replicator.kube import synth
from replicator.kube.encryption import EncryptionConfig
from replicator.kube.resources import ResourceCatalog, crd_resource_type
from replicator.kube.values import Format, decode, detect_format

LABELS = {"app.kubernetes.io/name": "web", "mirror": "true"}


def test_namespace_round_trips() -> None:
    obj = decode("/registry/namespaces/shop", synth.namespace("shop", labels=LABELS))
    assert (obj.api_version, obj.kind, obj.format) == ("v1", "Namespace", Format.PROTOBUF)
    assert obj.meta.name == "shop" and obj.meta.namespace == ""
    assert dict(obj.labels) == LABELS
    assert obj.field("status.phase") == "Active"


def test_configmap_round_trips() -> None:
    value = synth.configmap(
        "shop",
        "cfg",
        labels=LABELS,
        data={"a": "1"},
        annotations={"note": "x"},
        uid="u-1",
        created=1_700_000_000,
    )
    obj = decode("/registry/configmaps/shop/cfg", value)
    assert (obj.kind, obj.meta.name, obj.meta.namespace, obj.meta.uid) == ("ConfigMap", "cfg", "shop", "u-1")
    assert dict(obj.labels) == LABELS
    assert dict(obj.meta.annotations) == {"note": "x"}
    assert obj.meta.creation_timestamp == "2023-11-14T22:13:20Z"
    assert obj.field("immutable") == "false"


@pytest.mark.parametrize(
    "stype", ["Opaque", "kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token"]
)
def test_secret_type_round_trips(stype: str) -> None:
    obj = decode(
        "/registry/secrets/ns/s", synth.secret("ns", "s", labels=LABELS, data={"k": b"\x00\xff"}, type=stype)
    )
    assert obj.kind == "Secret" and obj.field("type") == stype
    assert dict(obj.labels) == LABELS


def test_secret_data_is_bytes_map() -> None:
    value = synth.secret("ns", "s", data={"b": b"\x01\x02", "a": b"zz"})
    obj = decode("k", value)
    raw = pw.find(value, obj._obj[0], obj._obj[1], 2)  # the last data entry: entries are sorted by key
    assert raw is not None and value[raw[0] : raw[1]] == pw.encode_len(1, b"b") + pw.encode_len(
        2, b"\x01\x02"
    )


@pytest.mark.parametrize(("node", "phase"), [("node-1", "Running"), ("", "Pending")])
def test_pod_round_trips(node: str, phase: str) -> None:
    obj = decode(
        "/registry/pods/ns/p", synth.pod("ns", "p", labels=LABELS, node_name=node, image="nginx:1.27")
    )
    assert obj.kind == "Pod" and dict(obj.labels) == LABELS
    assert obj.field("spec.nodeName") == node
    assert obj.field("status.phase") == phase
    assert obj.field("spec.schedulerName") == "default-scheduler"
    assert obj.field("spec.serviceAccountName") == "default"
    assert obj.field("spec.restartPolicy") == "Always"


def test_service_round_trips() -> None:
    value = synth.service("ns", "web", labels=LABELS, selector={"app": "web"}, cluster_ip="None")
    obj = decode("/registry/services/specs/ns/web", value)
    assert (
        obj.kind == "Service"
        and obj.field("spec.clusterIP") == "None"
        and obj.field("spec.type") == "ClusterIP"
    )


def test_other_builtins_decode() -> None:
    ev = decode(
        "k", synth.event("ns", "p.1", involved_kind="Pod", involved_name="p", reason="r", message="m")
    )
    lease = decode("k", synth.lease("kube-system", "kcm", holder="cp-1"))
    ep = decode("k", synth.endpoints_lease("10.0.0.1"))
    rng = decode("k", synth.range_allocation("10.96.0.0/12", b"\x01"))
    assert (ev.kind, ev.meta.namespace) == ("Event", "ns")
    assert (lease.api_version, lease.kind, lease.meta.name) == ("coordination.k8s.io/v1", "Lease", "kcm")
    assert (ep.kind, ep.meta.name) == ("Endpoints", "10.0.0.1")
    assert rng.kind == "RangeAllocation"


def _fields(buf: bytes, a: int, b: int) -> list[tuple[int, int]]:
    return [(n, w) for n, w, _, _ in pw.fields(buf, a, b)]


def test_layout_matches_real_values(real_values: dict[str, bytes]) -> None:
    """Envelope, ObjectMeta field order and Namespace spec/status as a real apiserver wrote them."""
    real = real_values["/registry/configmaps/default/influxdb"]
    ours = synth.configmap("default", "influxdb", labels={"a": "b"}, annotations={"c": "d"}, data={"x": "y"})
    assert _fields(real, 4, len(real)) == _fields(ours, 4, len(ours)) == [(1, 2), (2, 2), (3, 2), (4, 2)]
    for value in (real, ours):
        obj = decode("k", value)
        meta = pw.find(value, obj._obj[0], obj._obj[1], 1)
        assert meta is not None
        numbers = [n for n, _ in _fields(value, *meta)]
        assert numbers[:8] == [1, 2, 3, 4, 5, 6, 7, 8]  # every non-pointer scalar written, in order
    real_ns = real_values["/registry/namespaces/rook-ceph"]
    ours_ns = synth.namespace("rook-ceph")

    def tail(value: bytes, number: int) -> bytes:
        obj = decode("k", value)
        span = pw.find(value, obj._obj[0], obj._obj[1], number)
        assert span is not None
        return value[span[0] : span[1]]

    assert tail(ours_ns, 2) == tail(real_ns, 2)  # spec{finalizers: [kubernetes]}
    assert tail(ours_ns, 3) == tail(real_ns, 3)  # status{phase: Active}


def test_service_layout_matches_real_value(real_values: dict[str, bytes]) -> None:
    real = real_values["/registry/services/specs/unique/test"]
    obj = decode("k", real)
    ours = synth.service(
        "unique",
        "test",
        selector={"test.io/app": "test"},
        cluster_ip="10.244.102.146",
        ports=(("http", 10086),),
    )
    mine = decode("k", ours)
    for number in (2, 3):  # spec and status, byte for byte
        a = pw.find(real, obj._obj[0], obj._obj[1], number)
        b = pw.find(ours, mine._obj[0], mine._obj[1], number)
        assert a is not None and b is not None
        assert ours[b[0] : b[1]] == real[a[0] : a[1]]


def test_crd_is_stored_json() -> None:
    value = synth.crd("demo.example.io", "Widget", "widgets", labels={"x": "<&>"})
    assert value.endswith(b"}\n") and b"\\u003c\\u0026\\u003e" in value
    assert detect_format(value) is Format.JSON
    doc = json.loads(value)
    assert (
        doc["apiVersion"] == "apiextensions.k8s.io/v1"
        and doc["metadata"]["name"] == "widgets.demo.example.io"
    )
    assert dict(decode("k", value).labels) == {"x": "<&>"}
    rt = crd_resource_type(value)
    assert (rt.group, rt.resource, rt.kind, rt.namespaced) == ("demo.example.io", "widgets", "Widget", True)
    assert crd_resource_type(synth.crd("g.io", "K", "ks", scope="Cluster")).namespaced is False
    catalog = ResourceCatalog().with_custom([rt])
    info = catalog.parse_key("/registry/demo.example.io/widgets/ns/w")
    assert info is not None and info.resource.kind == "Widget"


def test_custom_resource_is_stored_json() -> None:
    value = synth.custom_resource(
        "demo.example.io", "v1", "Widget", "ns", "w", labels=LABELS, spec={"size": 3, "b": {"z": 1, "a": 2}}
    )
    assert value.endswith(b"\n") and value.count(b"\n") == 1
    obj = decode("/registry/demo.example.io/widgets/ns/w", value)
    assert (obj.api_version, obj.kind, obj.meta.name, obj.meta.namespace) == (
        "demo.example.io/v1",
        "Widget",
        "w",
        "ns",
    )
    assert dict(obj.labels) == LABELS
    assert obj.field("spec.size") == "3"
    assert value.index(b'"a":2') < value.index(b'"z":1')  # unstructured maps marshal with sorted keys


@pytest.mark.parametrize(
    "provider",
    [
        {"aescbc": {"keys": [{"name": "k1", "secret": base64.b64encode(b"\x01" * 32).decode()}]}},
        {"aesgcm": {"keys": [{"name": "k1", "secret": base64.b64encode(b"\x02" * 16).decode()}]}},
        {"secretbox": {"keys": [{"name": "k1", "secret": base64.b64encode(b"\x03" * 32).decode()}]}},
    ],
    ids=["aescbc", "aesgcm", "secretbox"],
)
def test_encrypted_secret_decrypts_back(provider: dict[str, object]) -> None:
    enc = EncryptionConfig.from_dict(
        {
            "kind": "EncryptionConfiguration",
            "apiVersion": "apiserver.config.k8s.io/v1",
            "resources": [{"resources": ["secrets"], "providers": [provider, {"identity": {}}]}],
        }
    )
    key = "/registry/secrets/ns/s"
    plain = synth.secret("ns", "s", labels=LABELS, data={"password": b"hunter2"}, type="kubernetes.io/tls")
    sealed = enc.encrypt(key=key, plaintext=plain, group="", resource="secrets")
    assert detect_format(sealed) is Format.ENCRYPTED and b"hunter2" not in sealed
    back = enc.decrypt(key=key, value=sealed, group="", resource="secrets")
    assert back == plain
    assert decode(key, back).field("type") == "kubernetes.io/tls"


BUILDERS: dict[str, Callable[[int], bytes]] = {
    "namespace": lambda n: synth.namespace("ns", labels=LABELS, pad_to=n),
    "configmap": lambda n: synth.configmap("ns", "c", labels=LABELS, data={"a": "b"}, pad_to=n),
    "secret": lambda n: synth.secret("ns", "s", data={"a": b"b"}, pad_to=n),
    "pod": lambda n: synth.pod("ns", "p", node_name="n1", pad_to=n),
    "service": lambda n: synth.service("ns", "s", pad_to=n),
    "crd": lambda n: synth.crd("g.example.io", "K", "ks", pad_to=n),
    "custom_resource": lambda n: synth.custom_resource("g.example.io", "v1", "K", "ns", "k", pad_to=n),
}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(BUILDERS)), size=st.integers(min_value=1024, max_value=20 * 1024))
def test_pad_to_hits_the_size(kind: str, size: int) -> None:
    value = BUILDERS[kind](size)
    # Exact, except where every filler length makes a length prefix jump past the target.
    assert size <= len(value) <= size + 2
    obj = decode("k", value)
    assert obj.meta.annotations[synth.PADDING_ANNOTATION].strip("x") == ""
    if kind == "pod":
        assert obj.field("spec.nodeName") == "n1"


@pytest.mark.parametrize("size", [1024, 4096, 16 * 1024, 20 * 1024])
def test_pad_to_is_exact_for_round_sizes(size: int) -> None:
    for build in BUILDERS.values():
        assert len(build(size)) == size


def test_pad_to_smaller_than_the_object_changes_nothing() -> None:
    value = synth.configmap("ns", "c", data={"a": "b" * 500}, uid="u", created=1, pad_to=10)
    assert value == synth.configmap("ns", "c", data={"a": "b" * 500}, uid="u", created=1)
    assert synth.PADDING_ANNOTATION not in dict(decode("k", value).meta.annotations)


def test_building_is_fast() -> None:
    """The benchmark builds 100k values: a padded 4 KiB value must cost well under a millisecond."""
    start = time.perf_counter()
    for i in range(2000):
        synth.configmap("ns", f"c-{i}", labels=LABELS, data={"k": "v"}, pad_to=4096)
    assert (time.perf_counter() - start) / 2000 < 1e-3
