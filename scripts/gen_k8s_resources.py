"""Generate replicator/kube/_generated/resources.json from Kubernetes' own data (development time).

Sources, both inside the k8s.io/kubernetes Go module at a pinned version:

- ``test/integration/etcd/data.go`` (``GetEtcdStorageData``): every persisted built-in GVR and
  the etcd path it is stored under (``ExpectedEtcdPath``), plus ``ExpectedGVK`` when the object is
  stored under another group/version than the one it is served at.
- ``api/discovery/api__v1.json`` and ``api/discovery/aggregated_v2.json``: each resource's kind
  and scope, as the apiserver itself advertises them.

Entries of data.go whose resource no discovery document lists (the test CRDs' custom resources)
are left out: they are not built-ins. A path's scope from data.go (``+ namespace +`` in the path)
is cross-checked against discovery; a disagreement aborts the run.

Usage: ``python scripts/gen_k8s_resources.py [--version v1.37.2] [--module-dir DIR]``.
Without ``--module-dir`` the module is fetched with ``go mod download`` (about 150 MB).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from _gomod import download

DEFAULT_VERSION = "v1.37.2"
OUT = Path(__file__).resolve().parent.parent / "replicator" / "kube" / "_generated" / "resources.json"

_ENTRY = re.compile(r'gvr\("([^"]*)",\s*"([^"]+)",\s*"([^"]+)"\):\s*\{(.*?)\n\t\t\},', re.S)
_PATH = re.compile(r'ExpectedEtcdPath:\s*"/registry/([^"]*)"(\s*\+\s*namespace\s*\+\s*"/[^"]*")?')
_GVK = re.compile(r'ExpectedGVK:\s*gvkP\("([^"]*)",\s*"([^"]+)",\s*"([^"]+)"\)')
_REMOVED = re.compile(r'RemovedVersion:\s*"([^"]+)"')


def discovery(module: Path) -> dict[tuple[str, str], tuple[str, bool]]:
    """(group, resource) -> (kind, namespaced), from the checked-in discovery documents."""
    found: dict[tuple[str, str], tuple[str, bool]] = {}
    core = json.loads((module / "api/discovery/api__v1.json").read_text())
    for r in core["resources"]:
        if "/" not in r["name"]:
            found[("", r["name"])] = (r["kind"], bool(r["namespaced"]))
    agg = json.loads((module / "api/discovery/aggregated_v2.json").read_text())
    for group in agg["items"]:
        name = group["metadata"].get("name", "")
        for version in group["versions"]:
            for r in version.get("resources", []):
                kind = r["responseKind"]["kind"]
                found.setdefault((name, r["resource"]), (kind, r["scope"] == "Namespaced"))
    return found


def build(module: Path, version: str) -> dict[str, Any]:
    data_go = (module / "test/integration/etcd/data.go").read_text()
    kinds = discovery(module)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for group, ver, resource, body in _ENTRY.findall(data_go):
        m = _PATH.search(body)
        if m is None:
            raise SystemExit(f"no ExpectedEtcdPath for {group}/{ver}/{resource}")
        if (group, resource) not in kinds:
            continue  # a test CRD's custom resource, not a built-in
        kind, namespaced = kinds[(group, resource)]
        full, ns_suffix = m.group(1), m.group(2)
        path = full.rstrip("/") if ns_suffix else full.rsplit("/", 1)[0]
        if bool(ns_suffix) != namespaced:
            raise SystemExit(f"scope of {group}/{resource} disagrees between data.go and discovery")
        gvk = _GVK.search(body)
        entry = table.setdefault(
            (group, resource),
            {
                "group": group,
                "resource": resource,
                "kind": kind,
                "path": path,
                "namespaced": namespaced,
                "versions": [],
            },
        )
        if entry["path"] != path:
            raise SystemExit(f"{group}/{resource} has two paths: {entry['path']} and {path}")
        removed = _REMOVED.search(body)
        entry["versions"].append({"version": ver, **({"removed": removed.group(1)} if removed else {})})
        if gvk is not None:
            entry["stored_as"] = {"group": gvk.group(1), "version": gvk.group(2), "kind": gvk.group(3)}
    rows = sorted(table.values(), key=lambda e: (e["group"], e["resource"]))
    return {
        "generated": "by scripts/gen_k8s_resources.py; do not edit",
        "source": f"k8s.io/kubernetes@{version} test/integration/etcd/data.go + api/discovery",
        "kubernetes_version": version,
        "resources": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--module-dir", type=Path, help="an unpacked k8s.io/kubernetes module")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    module = args.module_dir or download("k8s.io/kubernetes", args.version)
    doc = build(module, args.version)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {len(doc['resources'])} resources to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
