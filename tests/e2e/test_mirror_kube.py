"""The replicator between two real control planes, judged by the standby's kube-apiserver.

One scenario, in order (tests share the module's clusters and build on each other):
1. a full sync (``--once``) of the seed's example plus a realistic namespace: the standby serves
   exactly the in-scope objects, each identical to the primary's apart from resourceVersion;
2. the standby's own objects (``default/kubernetes``, its Leases) are untouched and nothing on
   the deny-list (Events, bound Pods, ServiceAccount tokens) arrived;
3. live changes under ``replicator run`` (update, delete, relabel out of and into scope, a
   namespace relabelled both ways) reach the standby;
4. a failover drill: the primary dies, the standby serves the copy and accepts writes, and its
   allocators know the copied Services' ClusterIPs and NodePorts.

Everything is read back with kubectl from the apiservers; the replicator's code is not used.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .cluster import KubeCluster
from .conftest import encryption_config
from .kube import Ref, Replicator, diff_summary, eventually, first_difference, snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("REPLICATOR_SHARED", Path(__file__).resolve().parents[3] / "shared"))
SEED_KUBE = SHARED / "fixtures" / "seed-example" / "kube"
RULES = HERE / "mirror-rules.yaml"

TYPES = (
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "endpoints",
    "endpointslices.discovery.k8s.io",
    "pods",
    "deployments.apps",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "widgets.shop.example.io",
    "gadgets.infra.example.org",
)
TEST_NAMESPACES = {"shop", "lab", "moving", "unique", "unit-test"}
CRD = "customresourcedefinitions.apiextensions.k8s.io"
CM, SECRET, SVC, NS = "configmaps", "secrets", "services", "namespaces"
WIDGET, GADGET = "widgets.shop.example.io", "gadgets.infra.example.org"
BIG = 700_000  # two of these exceed one destination transaction's --max-txn-bytes (1,000,000)


def owned(ref: Ref) -> bool:
    """The objects this test created (or that every CRD rule covers), on either side."""
    rtype, ns, name = ref
    if rtype in (CRD, GADGET):
        return True
    if rtype == NS:
        return name in TEST_NAMESPACES
    if rtype.startswith("cluster"):
        return name.startswith("e2e-")
    return ns in TEST_NAMESPACES


def refs(rtype: str, ns: str, *names: str) -> set[Ref]:
    return {(rtype, ns, n) for n in names}


# Worked out by hand from mirror-rules.yaml and the manifests' labels (CRDs: all, added at run time).
EXPECTED: set[Ref] = (
    refs(NS, "", "unique", "unit-test", "shop", "moving")
    | refs("clusterroles.rbac.authorization.k8s.io", "", "e2e-widget-editor")
    | refs("clusterrolebindings.rbac.authorization.k8s.io", "", "e2e-widget-editor")
    | refs(SECRET, "unique", "influxdb")  # seed: exclude-me-secret excluded; unit-test/mysql out
    | refs(CM, "unit-test", "influxdb1")  # seed: unique/influxdb2 is outside namespace unit-test
    | refs("serviceaccounts", "shop", "default", "builder")
    | refs(CM, "shop", "app-config", "feature-flags", "frozen", "big-1", "big-2")
    | refs(
        SECRET, "shop", "db-creds", "tls-cert", "pull-secret", "basic", "ssh"
    )  # not the SA token, not mirror=false
    | refs(SVC, "shop", "web", "web-headless", "web-nodeport", "docs", "legacy-db")
    | refs("endpoints", "shop", "legacy-db")
    | refs("endpointslices.discovery.k8s.io", "shop", "legacy-db-manual")
    | refs("pods", "shop", "unbound")  # not "bound": spec.nodeName is set
    | refs("deployments.apps", "shop", "web")
    | refs("roles.rbac.authorization.k8s.io", "shop", "reader")
    | refs("rolebindings.rbac.authorization.k8s.io", "shop", "reader")
    | refs(WIDGET, "shop", "blue", "legacy")  # not "scratch" (mirror=false)
    | refs(CM, "moving", "settings")
    | refs(SECRET, "moving", "token")
    | refs(WIDGET, "moving", "mover")
    | refs(GADGET, "", "rack-1")
)


@dataclass
class Scenario:
    primary: KubeCluster
    standby: KubeCluster
    replicator: Replicator
    expected: set[Ref]
    standby_own: dict[str, str] = field(default_factory=dict)
    """uid of the standby's own objects before any replication, by description."""

    def want(self) -> dict[Ref, dict[str, Any]]:
        """The primary's in-scope objects now (CRDs: all of them, by the seed's rule)."""
        current = snapshot(self.primary, TYPES, owned)
        expected = self.expected | {r for r in current if r[0] == CRD}
        missing = expected - set(current)
        assert not missing, f"test setup: expected objects absent on the primary: {sorted(missing)}"
        return {r: v for r, v in current.items() if r in expected}

    def assert_mirrored(self, *, within: float = 45.0) -> dict[Ref, dict[str, Any]]:
        want = self.want()

        def check() -> dict[Ref, dict[str, Any]]:
            got = snapshot(self.standby, TYPES, owned)
            if got != want:
                where = {
                    r: first_difference(want[r], got[r]) for r in set(want) & set(got) if want[r] != got[r]
                }
                raise AssertionError(f"{diff_summary(want, got)}\nfirst differences: {where}")
            return got

        try:
            return eventually(check, within=within)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- replicator log ---\n{self.replicator.log_tail()}") from None


def own_objects(cluster: KubeCluster) -> dict[str, str]:
    """uids of objects a control plane makes for itself (never to be touched by the mirror)."""
    found = {
        "service default/kubernetes": cluster.get_json("service", "-n", "default", "kubernetes")["metadata"][
            "uid"
        ],
        "namespace kube-system": cluster.get_json("namespace", "kube-system")["metadata"]["uid"],
        "namespace default": cluster.get_json("namespace", "default")["metadata"]["uid"],
    }
    for lease in cluster.get_json("leases.coordination.k8s.io", "-n", "kube-system")["items"]:
        found[f"lease kube-system/{lease['metadata']['name']}"] = lease["metadata"]["uid"]
    return found


def big_configmap(name: str, fill: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop"},
            "data": {"blob": fill * BIG},
        }
    )


def load_primary(primary: KubeCluster) -> None:
    if not SEED_KUBE.is_dir():
        pytest.skip(f"seed example manifests not found at {SEED_KUBE}")
    seed = sorted(SEED_KUBE.glob("*.yaml"), key=lambda m: m.name != "ns.yaml")  # namespaces first
    for manifest in seed:
        primary.kubectl("apply", "-f", str(manifest))
    primary.kubectl("apply", "-f", str(HERE / "manifests" / "crds.yaml"))
    primary.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/widgets.shop.example.io",
        "crd/gadgets.infra.example.org",
    )
    # Client-side apply, as most users do: the last-applied annotation holds a copy of each
    # Secret's data. ConfigMaps too big for that annotation are created instead.
    primary.kubectl("apply", "-f", str(HERE / "manifests" / "workloads.yaml"))
    primary.create(big_configmap("big-1", "a"))
    primary.create(big_configmap("big-2", "b"))
    primary.create(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "web.1", "namespace": "shop"},
                "involvedObject": {"kind": "Deployment", "namespace": "shop", "name": "web"},
                "reason": "Tested",
                "message": "events never leave the primary",
                "type": "Normal",
            }
        )
    )


@pytest.fixture(scope="module")
def scenario(
    primary: KubeCluster,
    standby: KubeCluster,
    shared_encryption: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    work = tmp_path_factory.mktemp("mirror")
    standby_own = own_objects(standby)
    load_primary(primary)
    args = [
        f"--source-endpoints={primary.etcd_endpoint}",
        f"--dest-endpoints={standby.etcd_endpoint}",
        f"--mirror-rule={RULES}",
        f"--encryption-provider-config={shared_encryption}",
        f"--state-dir={work}",
    ]
    replicator = Replicator(args, work / "replicator.log")
    sc = Scenario(primary, standby, replicator, set(EXPECTED), standby_own)
    try:
        yield sc
    finally:
        replicator.stop()


def test_full_sync_serves_exactly_the_in_scope_objects(scenario: Scenario) -> None:
    proc = scenario.replicator.once()
    assert proc.returncode == 0, f"replicator --once failed:\n{scenario.replicator.log_tail()}"
    got = scenario.assert_mirrored()
    # The Secrets the standby serves decrypted with the shared aescbc key: spot-check content.
    secret = got[(SECRET, "shop", "db-creds")]
    assert secret["type"] == "Opaque" and set(secret["data"]) == {"username", "password"}
    assert got[(SVC, "shop", "web-headless")]["spec"]["clusterIP"] == "None"
    # Created at v1beta1, stored at v1 (the storage version, "extra" pruned by the v1 schema).
    assert got[(WIDGET, "shop", "legacy")]["apiVersion"] == "shop.example.io/v1"


def test_standby_keeps_its_own_objects_and_gets_nothing_denylisted(scenario: Scenario) -> None:
    now = own_objects(scenario.standby)
    for what, uid in scenario.standby_own.items():
        if what.startswith("lease") and what not in now:
            continue  # the standby's own short-lived leases may have expired and been replaced
        assert now.get(what) == uid, f"the standby's own {what} was replaced by the mirror"
    primary_leases = {k: v for k, v in own_objects(scenario.primary).items() if k.startswith("lease")}
    assert not set(primary_leases.values()) & set(now.values()), "a primary Lease reached the standby"
    s = scenario.standby
    for rtype, name in (
        ("events", "web.1"),
        ("pods", "bound"),
        ("secrets", "builder-token"),
        ("secrets", "primary-only"),
    ):
        proc = s.kubectl("get", rtype, "-n", "shop", name, check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr, f"{rtype} shop/{name} is on the standby"
    # Keys that are not API objects stay each side's own: the standby's endpoint lease names
    # only its own address (etcdctl, not the replicator's client).
    keys = subprocess.run(
        [
            s.bins["etcdctl"],
            f"--endpoints={s.etcd.url}",
            "get",
            "--prefix",
            "--keys-only",
            "/registry/masterleases/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert keys == [f"/registry/masterleases/{s.advertise_address}"], keys
    # Events the standby writes itself (its repair controllers about copied Services): printed
    # for the record, they are the standby's own objects.
    own_events = s.get_json("events", "-n", "shop")["items"]
    print(
        "\nstandby's own events in shop:",
        sorted({(e["involvedObject"]["kind"], e["reason"]) for e in own_events}),
    )
    # The standby still answers for itself: its kubernetes Service points at its own address.
    slice_ = s.get_json("endpointslices.discovery.k8s.io", "-n", "default", "kubernetes")
    assert slice_["endpoints"][0]["addresses"] == [s.advertise_address]


def test_live_changes_reach_the_standby(scenario: Scenario) -> None:
    p, sc = scenario.primary, scenario
    sc.replicator.start()
    try:
        p.kubectl(
            "patch",
            "configmap",
            "app-config",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            '{"data":{"mode":"maintenance"}}',
        )
        p.kubectl("delete", "secret", "db-creds", "-n", "shop")
        p.kubectl("label", "configmap", "feature-flags", "-n", "shop", "mirror=false")
        p.kubectl("label", "widget.shop.example.io", "scratch", "-n", "shop", "mirror-")
        p.kubectl("delete", "gadget.infra.example.org", "rack-1")
        p.kubectl("label", "gadget.infra.example.org", "rack-2", "mirror=true")
        p.kubectl("label", "namespace", "moving", "mirror=false", "--overwrite")
        p.kubectl("label", "namespace", "lab", "mirror=true", "--overwrite")
        p.kubectl("create", "configmap", "fresh", "-n", "shop", "--from-literal=k=v")
        p.kubectl("create", "service", "clusterip", "api-v2", "-n", "shop", "--tcp=8080:8080")
        sc.expected -= (
            refs(SECRET, "shop", "db-creds") | refs(CM, "shop", "feature-flags") | refs(GADGET, "", "rack-1")
        )
        sc.expected -= (
            refs(NS, "", "moving") | refs(CM, "moving", "settings") | refs(SECRET, "moving", "token")
        )
        sc.expected -= refs(WIDGET, "moving", "mover")
        sc.expected |= (
            refs(WIDGET, "shop", "scratch") | refs(GADGET, "", "rack-2") | refs(CM, "shop", "fresh")
        )
        sc.expected |= refs(SVC, "shop", "api-v2") | refs(NS, "", "lab") | refs(CM, "lab", "notes")
        sc.expected |= refs("deployments.apps", "lab", "api")
        got = sc.assert_mirrored()
        assert got[(CM, "shop", "app-config")]["data"]["mode"] == "maintenance"
        assert sc.replicator.running, f"replicator exited:\n{sc.replicator.log_tail()}"
    finally:
        code = sc.replicator.stop()
    assert code == 0, f"replicator exit code {code} after SIGTERM:\n{sc.replicator.log_tail()}"


def test_failover_drill(scenario: Scenario) -> None:
    p, s, sc = scenario.primary, scenario.standby, scenario
    sc.replicator.start()
    try:
        p.kubectl("create", "configmap", "last-words", "-n", "shop", "--from-literal=at=failover")
        sc.expected |= refs(CM, "shop", "last-words")
        final = sc.assert_mirrored()
        # Disaster: the primary's apiserver and etcd vanish without a goodbye.
        p.stop_apiserver()
        p.etcd.kill()
        assert sc.replicator.stop() == 0, (
            f"replicator did not stop cleanly with its source gone:\n{sc.replicator.log_tail()}"
        )

        s.wait_ready(timeout=30)
        got = snapshot(s, TYPES, owned)
        assert got == final, diff_summary(final, got)
        kubernetes = s.get_json("service", "-n", "default", "kubernetes")
        assert kubernetes["metadata"]["uid"] == sc.standby_own["service default/kubernetes"]
        assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"
        leases = s.get_json("leases.coordination.k8s.io", "-n", "kube-system")["items"]
        assert any(le["metadata"]["name"].startswith("apiserver-") for le in leases), (
            "standby's identity lease gone"
        )

        # The standby takes writes, and its allocators know what the copied Services hold
        # (its repair controllers rebuild allocations from Service objects).
        s.kubectl("create", "configmap", "after-failover", "-n", "shop", "--from-literal=ok=yes")
        web_ip = got[(SVC, "shop", "web")]["spec"]["clusterIP"]
        taken_ip = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "steal-ip", "namespace": "shop"},
                "spec": {"clusterIP": web_ip, "ports": [{"port": 1}]},
            }
        )
        taken_port = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "steal-port", "namespace": "shop"},
                "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30080}]},
            }
        )

        def refused(manifest: str, name: str) -> None:
            proc = s.kubectl("create", "-f", "-", input=manifest, check=False)
            if proc.returncode == 0:
                s.kubectl("delete", "service", "-n", "shop", name)
                raise AssertionError(f"standby allocated a copied Service's address again ({name})")
            assert re.search(r"already allocated", proc.stderr), proc.stderr

        # ClusterIPs: the IPAddress repair follows Services through an informer, at once.
        eventually(lambda: refused(taken_ip, "steal-ip"), within=60, every=2)
        # NodePorts: the bitmap repair runs at start and then every 3 minutes, so a standby that
        # ran while Services were copied may hand out their ports until its next pass. The
        # runbook restarts the standby's apiserver at failover; after that the port is taken.
        try:
            refused(taken_port, "steal-port")
            print("\nNodePort of a copied Service refused before the standby restart")
        except AssertionError as exc:
            print(f"\nbefore the standby restart: {exc}")
        s.stop_apiserver()
        s.start()
        eventually(lambda: refused(taken_port, "steal-port"), within=60, every=2)
        fresh = s.get_json("service", "-n", "shop", "api-v2")["spec"]["clusterIP"]
        s.kubectl("create", "service", "clusterip", "post-failover", "-n", "shop", "--tcp=80:80")
        new_ip = s.get_json("service", "-n", "shop", "post-failover")["spec"]["clusterIP"]
        copied = {v["spec"].get("clusterIP") for r, v in got.items() if r[0] == SVC}
        assert new_ip not in copied | {fresh}
    finally:
        sc.replicator.stop()
        if not p.apiserver_running:  # later modules may still use the primary
            p.start()


def test_no_secret_plaintext_in_logs_or_journal(scenario: Scenario) -> None:
    """Secret values (and their base64, as in last-applied annotations) never leave the stores."""
    needles = [b"s3cr3t-value", b"hunter2", b"not-a-real-key"]
    needles += [base64.b64encode(n) for n in needles]
    files = [f for f in scenario.replicator.log.parent.rglob("*") if f.is_file()]
    assert files
    for f in files:
        data = f.read_bytes()
        leaked = [n.decode() for n in needles if n in data]
        assert not leaked, f"{f.name} holds Secret plaintext"


def test_standby_with_other_keys_reencrypts(
    scenario: Scenario, e2e_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A standby with its own aescbc key serves the Secrets (the replicator re-encrypts)."""
    helptext = subprocess.run(
        [*scenario.replicator.args, "--help"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    if "--dest-encryption-provider-config" not in helptext:
        pytest.skip("re-encryption lands with issue 4 (no --dest-encryption-provider-config yet)")
    work = tmp_path_factory.mktemp("rekeyed")
    own = encryption_config(work / "standby-encryption.yaml", os.urandom(32), key_name="standby-key")
    other = KubeCluster("rekeyed", work / "cluster", e2e_bins, own, "192.0.2.3")
    try:
        other.start()
        args = [
            a for a in scenario.replicator.args[4:] if not a.startswith(("--dest-endpoints", "--state-dir"))
        ]
        rep = Replicator(
            [
                *args,
                f"--dest-endpoints={other.etcd_endpoint}",
                f"--dest-encryption-provider-config={own}",
                f"--state-dir={work}",
            ],
            work / "replicator.log",
        )
        proc = rep.once()
        assert proc.returncode == 0, rep.log_tail()
        want = {r: v for r, v in scenario.want().items() if r[0] == SECRET}
        got = {r: v for r, v in snapshot(other, ("secrets",), owned).items()}
        assert got == want, diff_summary(want, got)
        # Stored under the standby's own key (etcdctl reads the raw values).
        raw = subprocess.run(
            [
                e2e_bins["etcdctl"],
                f"--endpoints={other.etcd.url}",
                "get",
                "--prefix",
                "/registry/secrets/shop/",
                "-w",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        values = [base64.b64decode(kv["value"]) for kv in json.loads(raw).get("kvs", [])]
        assert values and all(v.startswith(b"k8s:enc:aescbc:v1:standby-key:") for v in values)
    finally:
        other.stop()
