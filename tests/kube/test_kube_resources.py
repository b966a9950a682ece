from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import DecodeError
from replicator.kube.resources import (
    KeyInfo,
    ResourceCatalog,
    ResourceType,
    builtin_kubernetes_version,
    crd_resource_type,
)

CAT = ResourceCatalog()


def parsed(key: str) -> tuple[str, str, str | None, str]:
    info = CAT.parse_key(key)
    assert info is not None, key
    return info.resource.group, info.resource.kind, info.namespace, info.name


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/registry/services/specs/ns/web", ("", "Service", "ns", "web")),
        ("/registry/services/endpoints/ns/web", ("", "Endpoints", "ns", "web")),
        ("/registry/minions/node-1", ("", "Node", None, "node-1")),
        ("/registry/controllers/ns/rc", ("", "ReplicationController", "ns", "rc")),
        ("/registry/ingress/ns/ing", ("networking.k8s.io", "Ingress", "ns", "ing")),
        ("/registry/ingressclasses/nginx", ("networking.k8s.io", "IngressClass", None, "nginx")),
        ("/registry/pods/ns/p", ("", "Pod", "ns", "p")),
        ("/registry/podtemplates/ns/t", ("", "PodTemplate", "ns", "t")),
        ("/registry/roles/ns/r", ("rbac.authorization.k8s.io", "Role", "ns", "r")),
        ("/registry/rolebindings/ns/rb", ("rbac.authorization.k8s.io", "RoleBinding", "ns", "rb")),
        ("/registry/deployments/ns/d", ("apps", "Deployment", "ns", "d")),
        ("/registry/events/ns/e.1", ("", "Event", "ns", "e.1")),
        ("/registry/horizontalpodautoscalers/ns/h", ("autoscaling", "HorizontalPodAutoscaler", "ns", "h")),
        (
            "/registry/clustertrustbundles/example.com:signer:abc",
            ("certificates.k8s.io", "ClusterTrustBundle", None, "example.com:signer:abc"),
        ),
        (
            "/registry/apiregistration.k8s.io/apiservices/v1.apps",
            ("apiregistration.k8s.io", "APIService", None, "v1.apps"),
        ),
        (
            "/registry/apiextensions.k8s.io/customresourcedefinitions/a.b.io",
            ("apiextensions.k8s.io", "CustomResourceDefinition", None, "a.b.io"),
        ),
    ],
)
def test_irregular_and_regular_paths(key: str, expected: tuple[str, str, str | None, str]) -> None:
    assert parsed(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        "/registry/ranges/serviceips",
        "/registry/ranges/servicenodeports",
        "/registry/masterleases/10.0.0.1",
        "compact_rev_key",
        "/other/pods/ns/p",
        "/registry",
        "/registry/pods/ns",  # namespaced resource without a name
        "/registry/pods/ns/p/extra",
        "/registry/namespaces/a/b",  # cluster-scoped with a namespace segment
        "/registry/nosuchthing/x",
        "/registry/services/ns/x",  # services live under services/specs
        "/registryx/pods/ns/p",
    ],
)
def test_non_objects_and_unparseable_keys(key: str) -> None:
    assert CAT.parse_key(key) is None


def test_bytes_keys_and_bad_utf8() -> None:
    assert CAT.parse_key(b"/registry/pods/ns/p") == CAT.parse_key("/registry/pods/ns/p")
    assert CAT.parse_key(b"/registry/pods/ns/\xff") is None


def test_unknown_custom_resources_infer_scope() -> None:
    ns = CAT.parse_key("/registry/ceph.rook.io/cephblockpools/rook-ceph/replicapool")
    cl = CAT.parse_key("/registry/example.io/widgets/w1")
    assert ns is not None and cl is not None
    assert (ns.resource.kind, ns.resource.namespaced, ns.namespace, ns.name) == (
        "",
        True,
        "rook-ceph",
        "replicapool",
    )
    assert (cl.resource.group, cl.resource.resource, cl.namespace) == ("example.io", "widgets", None)
    assert not ns.resource.known


def test_custom_prefix() -> None:
    cat = ResourceCatalog("/kubernetes.io/")
    assert cat.prefix == "/kubernetes.io"
    info = cat.parse_key("/kubernetes.io/minions/n")
    assert info is not None and info.resource.kind == "Node"
    assert cat.parse_key("/registry/minions/n") is None


def test_lookups_and_key_prefix() -> None:
    svc = CAT.by_kind("", "Service")
    assert svc is not None and svc.path == "services/specs" and svc.resource == "services"
    assert CAT.by_resource("networking.k8s.io", "ingresses") == CAT.by_kind("networking.k8s.io", "Ingress")
    assert CAT.key_prefix(svc) == "/registry/services/specs/"
    assert CAT.key_prefix(svc, "ns") == "/registry/services/specs/ns/"
    ns_type = CAT.by_kind("", "Namespace")
    assert ns_type is not None
    with pytest.raises(ValueError, match="cluster-scoped"):
        CAT.key_prefix(ns_type, "x")
    # events.k8s.io/events shares core's path; the key belongs to core Event.
    ev = CAT.by_resource("events.k8s.io", "events")
    assert ev is not None and ev.path == "events"
    assert CAT.by_kind("", "Event") is not None and CAT.by_kind("", "Event") != ev


def test_builtin_table_is_generated_and_complete() -> None:
    assert builtin_kubernetes_version().startswith("v1.37")
    paths = [rt.path for rt in CAT.types() if rt.group != "events.k8s.io"]
    assert len(paths) == len(set(paths))
    assert len(CAT.types()) >= 70
    for rt in CAT.types():
        assert rt.kind and rt.resource and rt.path


def test_with_custom_and_add() -> None:
    pool = ResourceType(
        group="ceph.rook.io",
        resource="cephblockpools",
        kind="CephBlockPool",
        path="ceph.rook.io/cephblockpools",
        namespaced=True,
    )
    cat = CAT.with_custom([pool])
    info = cat.parse_key("/registry/ceph.rook.io/cephblockpools/rook-ceph/replicapool")
    assert info == KeyInfo(
        key="/registry/ceph.rook.io/cephblockpools/rook-ceph/replicapool",
        resource=pool,
        namespace="rook-ceph",
        name="replicapool",
    )
    assert cat.by_kind("ceph.rook.io", "CephBlockPool") == pool
    assert CAT.by_kind("ceph.rook.io", "CephBlockPool") is None  # the original is unchanged
    assert cat.with_custom([]).by_kind("ceph.rook.io", "CephBlockPool") == pool


def crd(version: str, scope: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": f"apiextensions.k8s.io/{version}",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.io"},
            "spec": {"group": "example.io", "scope": scope, "names": {"plural": "widgets", "kind": "Widget"}},
        }
    ).encode()


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_crd_resource_type(version: str) -> None:
    rt = crd_resource_type(crd(version, "Cluster"))
    assert rt == ResourceType(
        group="example.io", resource="widgets", kind="Widget", path="example.io/widgets", namespaced=False
    )
    assert crd_resource_type(crd(version, "Namespaced")).namespaced


def test_crd_resource_type_errors() -> None:
    with pytest.raises(DecodeError):
        crd_resource_type(b"not json")
    with pytest.raises(DecodeError):
        crd_resource_type(b'{"spec": {"group": "x.io"}}')
    with pytest.raises(DecodeError, match="scope"):
        crd_resource_type(crd("v1", "Galaxy"))


def test_real_crd_fixture(real_values: dict[str, bytes]) -> None:
    key = "/registry/apiextensions.k8s.io/customresourcedefinitions/nodes.longhorn.io"
    rt = crd_resource_type(real_values[key])
    assert (rt.group, rt.resource, rt.kind, rt.namespaced) == ("longhorn.io", "nodes", "Node", True)


_seg = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20)


@given(ns=_seg, name=_seg)
def test_namespaced_keys_roundtrip(ns: str, name: str) -> None:
    for rt in CAT.types():
        if rt.namespaced and rt.group != "events.k8s.io":
            info = CAT.parse_key(CAT.key_prefix(rt, ns) + name)
            assert info == KeyInfo(key=CAT.key_prefix(rt, ns) + name, resource=rt, namespace=ns, name=name)


@given(key=st.text(max_size=60))
def test_parse_key_never_raises(key: str) -> None:
    CAT.parse_key("/registry/" + key)
