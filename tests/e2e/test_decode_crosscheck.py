"""The replicator's decoder against a real kube-apiserver: every stored value, read raw from the
primary's etcd with etcdctl, decoded with ``replicator.kube.values.decode`` (after decryption
with ``replicator.kube.encryption``), must agree with what kubectl shows for the same object.

The decoder and the key table (``ResourceCatalog.parse_key``) are under test here; kubectl is the
oracle. The primary holds one object of as many built-in kinds as a control plane without
controllers accepts (manifests/decode.yaml), plus everything the apiserver writes for itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.kube.encryption import EncryptionConfig
from replicator.kube.resources import ResourceCatalog, crd_resource_type
from replicator.kube.values import DecodedObject, Format, decode

from .cluster import KubeCluster
from .pki import csr_pem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MANIFEST = Path(__file__).resolve().parent / "manifests" / "decode.yaml"
# Allocator bitmaps and the apiservers' endpoint leases (etcd-leased Endpoints/Leases without a
# uid, not served by any API): decoded, but not API objects.
NOT_OBJECTS = ("/registry/ranges/", "/registry/masterleases/", "/registry/peerserverleases/")
# For a value stored at another version than kubectl serves, only these paths are compared.
STABLE_JSON_PATHS = ("spec.group", "spec.scope", "spec.names.kind", "spec.names.plural", "kind")

# Paths the decoder knows in protobuf values, and how a missing one reads (field selectors' view).
PROTO_FIELDS: dict[tuple[str, str], dict[str, str]] = {
    ("", "Secret"): {"type": "string", "immutable": "bool"},
    ("", "ConfigMap"): {"immutable": "bool"},
    ("", "Pod"): {
        "spec.nodeName": "string",
        "spec.serviceAccountName": "string",
        "spec.restartPolicy": "string",
        "spec.schedulerName": "string",
        "status.phase": "string",
    },
    ("", "Service"): {"spec.clusterIP": "string", "spec.type": "string", "spec.externalName": "string"},
    ("", "Namespace"): {"status.phase": "string"},
}


@dataclass
class Stored:
    key: str
    obj: DecodedObject


def render(value: Any, kind: str | None = None) -> str | None:
    if value is None:
        return {"string": "", "bool": "false"}.get(kind or "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None


def walk(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def leaves(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(field path, scalar) pairs; keys with dots or slashes use the bracket form."""
    out: list[tuple[str, Any]] = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else None
    if items is None:
        return [(prefix, doc)]
    for k, v in items:
        k = str(k)
        dotted = any(c in k for c in './[]"')
        path = f'{prefix}["{k}"]' if dotted else (f"{prefix}.{k}" if prefix else k)
        out += leaves(v, path)
    return out


def create_decode_objects(primary: KubeCluster) -> list[str]:
    """Create every document of decode.yaml; return the ones this apiserver does not serve."""
    text = MANIFEST.read_text().replace("CSR_PLACEHOLDER", base64.b64encode(csr_pem("decode")).decode())
    skipped = []
    for doc in yaml.safe_load_all(text):
        proc = primary.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
        if proc.returncode != 0:
            if "no matches for kind" in proc.stderr or "ensure CRDs are installed" in proc.stderr:
                skipped.append(f"{doc['apiVersion']} {doc['kind']}")
                continue
            raise AssertionError(f"creating {doc['kind']} {doc['metadata']['name']}: {proc.stderr}")
    primary.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/things.decode.example.net")
    thing = {
        "apiVersion": "decode.example.net/v1",
        "kind": "Thing",
        "metadata": {"name": "t1", "namespace": "decode", "labels": {"x": "y"}},
        "spec": {"count": 3, "ratio": 0.5, "on": True, "tags": ["a", "b"], "nested": {"a.b": "dotted"}},
    }
    primary.create(json.dumps(thing))
    parent = primary.get_json("configmap", "-n", "decode", "plain")["metadata"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": "decode",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "plain",
                    "uid": parent["uid"],
                    "controller": True,
                }
            ],
        },
    }
    primary.create(json.dumps(child))
    doomed = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "doomed", "namespace": "decode", "finalizers": ["e2e.example.io/hold"]},
    }
    primary.create(json.dumps(doomed))
    primary.kubectl("delete", "configmap", "-n", "decode", "doomed", "--wait=false")
    return skipped


def read_etcd(etcdctl: str, endpoint: str) -> dict[str, bytes]:
    out = subprocess.run(
        [etcdctl, f"--endpoints={endpoint}", "get", "--prefix", "/registry", "-w", "json"],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    kvs = json.loads(out).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")) for kv in kvs}


def list_everything(primary: KubeCluster) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """uid -> [(resource name as kubectl knows it, object)] over every listable resource."""
    names = primary.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    by_uid: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for name in names:
        for item in primary.get_json(name, "-A")["items"]:
            if uid := item.get("metadata", {}).get("uid"):
                by_uid[uid].append((name, item))
    return by_uid


def compare_meta(stored: Stored, item: dict[str, Any]) -> list[str]:
    d, md, problems = stored.obj, item["metadata"], []
    want = {
        "name": md["name"],
        "namespace": md.get("namespace", ""),
        "uid": md["uid"],
        "generateName": md.get("generateName", ""),
        "creationTimestamp": md.get("creationTimestamp"),
        "deletionTimestamp": md.get("deletionTimestamp"),
    }
    got = {
        "name": d.meta.name,
        "namespace": d.meta.namespace,
        "uid": d.meta.uid,
        "generateName": d.meta.generate_name,
        "creationTimestamp": d.meta.creation_timestamp,
        "deletionTimestamp": d.meta.deletion_timestamp,
    }
    for k in want:
        if want[k] != got[k]:
            problems.append(f"meta.{k}: decoded {got[k]!r}, kubectl {want[k]!r}")
        via_field = d.field(f"metadata.{k}")
        if via_field != want[k] and not (want[k] is None and via_field in (None, "")):
            problems.append(f"field(metadata.{k}): {via_field!r}, kubectl {want[k]!r}")
    if dict(d.labels) != md.get("labels", {}):
        problems.append("labels differ")
    if dict(d.meta.annotations) != md.get("annotations", {}):
        problems.append("annotations differ")  # never print values: last-applied holds Secret data
    for mapping in ("labels", "annotations"):
        for k, v in md.get(mapping, {}).items():
            if d.field(f"metadata.{mapping}.{k}") != v:
                problems.append(f"field(metadata.{mapping}.{k}) differs")
    owners = [
        (o["apiVersion"], o["kind"], o["name"], o["uid"], bool(o.get("controller", False)))
        for o in md.get("ownerReferences", [])
    ]
    decoded_owners = [(o.api_version, o.kind, o.name, o.uid, o.controller) for o in d.meta.owner_references]
    if owners != decoded_owners:
        problems.append(f"ownerReferences: decoded {decoded_owners}, kubectl {owners}")
    if d.kind != item["kind"]:
        problems.append(f"kind: decoded {d.kind!r}, kubectl {item['kind']!r}")
    return problems


def known_divergence(stored: Stored, item: dict[str, Any]) -> str | None:
    """A difference that comes from the apiserver, not the stored bytes; the decoder should
    model it (see test_known_divergences_are_modelled)."""
    d, md = stored.obj, item["metadata"]
    template = (item.get("spec", {}).get("template") or {}).get("metadata", {}).get("labels")
    if (d.group, d.kind) == ("batch", "Job") and not d.labels and md.get("labels") == template:
        # SetDefaults_Job copies the pod template's labels into empty Job labels on every read;
        # the create-time defaulting ran before the template got its labels, so etcd has none.
        return "Job labels come from defaulting on read (template labels), not from storage"
    return None


def compare_fields(stored: Stored, item: dict[str, Any]) -> list[str]:
    d, problems = stored.obj, []
    if d.format is Format.JSON:
        same_version = d.api_version == item["apiVersion"]
        for path, value in leaves({k: v for k, v in item.items() if k != "metadata"}):
            want = render(value)
            if not same_version and path not in STABLE_JSON_PATHS:
                continue
            if want is not None and d.field(path) != want:
                problems.append(f"field({path}) = {d.field(path)!r}, kubectl {want!r}")
    for path, kind in PROTO_FIELDS.get((d.group, d.kind), {}).items():
        want = render(walk(item, path), kind)
        if d.field(path) != want:
            problems.append(f"field({path}) = {d.field(path)!r}, kubectl {want!r}")
    return problems


@pytest.fixture(scope="module")
def decoded(primary: KubeCluster, e2e_bins: dict[str, str], shared_encryption: Path) -> dict[str, Any]:
    skipped = create_decode_objects(primary)
    raw = read_etcd(e2e_bins["etcdctl"], primary.etcd.url)
    enc = EncryptionConfig.load(shared_encryption)
    crds = [
        v for k, v in raw.items() if k.startswith("/registry/apiextensions.k8s.io/customresourcedefinitions/")
    ]
    catalog = ResourceCatalog().with_custom(crd_resource_type(v) for v in crds)
    stored: dict[str, Stored] = {}
    failures: dict[str, str] = {}
    for key, value in raw.items():
        info = catalog.parse_key(key)
        try:
            if value.startswith(b"k8s:enc:"):
                assert info is not None, f"encrypted value at a key the catalog cannot parse: {key}"
                value = enc.decrypt(
                    key=key, value=value, group=info.resource.group, resource=info.resource.resource
                )
            stored[key] = Stored(key, decode(key, value))
        except Exception as exc:  # every failure is reported by key below
            failures[key] = f"{type(exc).__name__}: {exc}"
    return {
        "skipped": skipped,
        "stored": stored,
        "failures": failures,
        "catalog": catalog,
        "listed": list_everything(primary),
    }


def test_every_stored_value_decodes(decoded: dict[str, Any]) -> None:
    assert not decoded["failures"], json.dumps(decoded["failures"], indent=1)
    assert len(decoded["stored"]) > 200  # the apiserver's own objects plus decode.yaml's


def test_decoder_agrees_with_kubectl_for_every_object(decoded: dict[str, Any]) -> None:
    stored: dict[str, Stored] = decoded["stored"]
    listed: dict[str, list[tuple[str, dict[str, Any]]]] = decoded["listed"]
    problems: dict[str, list[str]] = {}
    kinds: set[str] = set()
    for key, s in stored.items():
        if key.startswith(NOT_OBJECTS):
            continue
        matches = listed.get(s.obj.meta.uid)
        if not matches:
            problems[key] = [f"uid {s.obj.meta.uid!r} (decoded) is not among the objects kubectl lists"]
            continue
        kinds.add(f"{s.obj.group}/{s.obj.kind}")
        for _resource, item in matches:
            if known_divergence(s, item):
                continue
            found = compare_meta(s, item) + compare_fields(s, item)
            if found:
                problems.setdefault(key, []).extend(found)
    stored_uids = {s.obj.meta.uid for s in stored.values()}
    unlisted = sorted(
        f"{r[0][0]} {r[0][1]['metadata'].get('namespace', '')}/{r[0][1]['metadata']['name']}"
        for uid, r in listed.items()
        if uid not in stored_uids
    )
    assert not unlisted, f"objects kubectl lists that no stored value decoded to: {unlisted}"
    assert not problems, json.dumps(problems, indent=1)
    assert len(kinds) >= 40, sorted(kinds)
    print(f"\n{len(kinds)} kinds checked; not served by this apiserver: {decoded['skipped']}")


def test_known_divergences_are_modelled(decoded: dict[str, Any]) -> None:
    """Labels the API shows but storage lacks: rules selecting Jobs by label miss them today."""
    found = {}
    for key, s in decoded["stored"].items():
        for _resource, item in decoded["listed"].get(s.obj.meta.uid, []):
            if why := known_divergence(s, item):
                found[key] = why
    assert not found, json.dumps(found, indent=1)


def test_key_table_agrees_with_kubectl(decoded: dict[str, Any]) -> None:
    """``ResourceCatalog.parse_key`` names the resource kubectl lists the object under."""
    stored: dict[str, Stored] = decoded["stored"]
    catalog: ResourceCatalog = decoded["catalog"]
    problems: dict[str, str] = {}
    for key, s in stored.items():
        info = catalog.parse_key(key)
        if key.startswith(NOT_OBJECTS):
            if info is not None:
                problems[key] = "allocator/lease key parsed as an object"
            continue
        if info is None:
            problems[key] = "catalog cannot parse the key"
            continue
        resources = {name.split(".", 1)[0] for name, _ in decoded["listed"].get(s.obj.meta.uid, [])}
        if info.resource.resource not in resources:
            problems[key] = (
                f"catalog says {info.resource.resource!r}, kubectl lists it as {sorted(resources)}"
            )
        if info.resource.kind != s.obj.kind:
            problems[key] = f"catalog kind {info.resource.kind!r}, stored kind {s.obj.kind!r}"
        if (info.name, info.namespace or "") != (s.obj.meta.name, s.obj.meta.namespace):
            problems[key] = "key's namespace/name differ from the object's"
        if info.resource.namespaced != bool(s.obj.meta.namespace):
            problems[key] = f"catalog namespaced={info.resource.namespaced}"
    assert not problems, json.dumps(problems, indent=1)
