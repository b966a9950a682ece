#!/usr/bin/env python3
"""Generate ``replicator/kube/_generated/k8s-descriptors.binpb`` (development time only).

Fetches k8s.io/api, k8s.io/apimachinery, k8s.io/apiextensions-apiserver and k8s.io/kube-aggregator
(APIService) at one pinned version with ``go mod download -json`` (the Go module proxy), collects
every ``generated.proto`` (test-only groups such as apimachinery's ``testapigroup`` are skipped),
and compiles them with ``grpc_tools.protoc --include_imports --descriptor_set_out`` into ONE
FileDescriptorSet. The modules are linked under ``k8s.io/<module>`` in a scratch include root so
that import paths resolve exactly as written in the protos
(``k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto``).

A sidecar ``k8s-descriptors.json`` records the version, the modules and the file list, so a
reader can tell what the binary holds without parsing it, and the *inline* fields: Go structs
embedded with ``json:",inline"`` (``Volume.VolumeSource``, ``*.LocalObjectReference``) are one
proto field but no JSON level, so JSON paths (``volumes[0].secret``) must step through them. The
protos do not say which fields are inline; the Go ``types.go`` next to each ``generated.proto``
does, so they are read from there. Likewise the API group of each proto package
(``k8s.io.api.rbac.v1`` serves ``rbac.authorization.k8s.io``) is its Go package's ``+groupName``
marker or ``GroupName`` constant, recorded under ``groups``.

Usage: ``.venv/bin/python scripts/gen_k8s_descriptors.py [--version v0.37.2]``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _gomod import download

PINNED_VERSION = "v0.37.2"
MODULES = ("k8s.io/api", "k8s.io/apimachinery", "k8s.io/apiextensions-apiserver", "k8s.io/kube-aggregator")
SKIP_PARTS = ("testapigroup",)  # apimachinery's test group: not a served API
OUT_DIR = Path(__file__).resolve().parent.parent / "replicator" / "kube" / "_generated"
OUT = OUT_DIR / "k8s-descriptors.binpb"
SIDECAR = OUT_DIR / "k8s-descriptors.json"


def collect(root: Path) -> list[str]:
    """Every generated.proto under the include root, as an import path."""
    found = []
    for path in sorted(root.glob("k8s.io/*/**/generated.proto")):
        rel = path.relative_to(root).as_posix()
        if not any(part in SKIP_PARTS for part in rel.split("/")):
            found.append(rel)
    return found


_STRUCT = re.compile(r"^type (\w+) struct \{", re.M)
_EMBED = re.compile(r'^\t\*?(?:\w+\.)?(\w+) `json:"(?:,inline)?"[^`]*protobuf:"([^"]*)"', re.M)
_PACKAGE = re.compile(r"^package ([\w.]+);", re.M)


def inline_fields(root: Path, files: list[str]) -> list[str]:
    """``<proto package>.<Message>.<field>`` of every embedded (inline) struct field."""
    found = []
    for rel in files:
        proto = root / rel
        package = _PACKAGE.search(proto.read_text())
        if package is None:
            continue
        for go in sorted(proto.parent.glob("types*.go")):
            text = go.read_text()
            structs = [(m.start(), m.group(1)) for m in _STRUCT.finditer(text)]
            for m in _EMBED.finditer(text):
                tag = m.group(2)
                if tag == "-":
                    continue
                owner = max((s for s in structs if s[0] < m.start()), default=None)
                if owner is None:
                    continue
                named = re.search(r"name=(\w+)", tag)
                name = named.group(1) if named else m.group(1)[:1].lower() + m.group(1)[1:]
                found.append(f"{package.group(1)}.{owner[1]}.{name}")
    return sorted(set(found))


_GROUP_NAME = re.compile(r'^// \+groupName=(\S*)$|^const GroupName = "([^"]*)"', re.M)


def group_names(root: Path, files: list[str]) -> dict[str, str]:
    """proto package -> API group ("" for core), from the ``+groupName`` marker beside the proto."""
    found = {}
    for rel in files:
        proto = root / rel
        package = _PACKAGE.search(proto.read_text())
        for go in sorted(proto.parent.glob("*.go")):
            marker = _GROUP_NAME.search(go.read_text())
            if package is not None and marker is not None:
                found[package.group(1)] = marker.group(1) or marker.group(2) or ""
                break
    return dict(sorted(found.items()))


def generate(version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="k8s-descriptors-") as tmp:
        root = Path(tmp)
        (root / "k8s.io").mkdir()
        for module in MODULES:
            (root / module).symlink_to(download(module, version), target_is_directory=True)
        files = collect(root)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{root}",
                "--include_imports",
                f"--descriptor_set_out={OUT}",
                *files,
            ],
            cwd=root,
            check=True,
        )
        inline = inline_fields(root, files)
        groups = group_names(root, files)
    SIDECAR.write_text(
        json.dumps(
            {
                "generated": "by scripts/gen_k8s_descriptors.py; do not edit",
                "version": version,
                "modules": [f"{m}@{version}" for m in MODULES],
                "files": files,
                "groups": groups,
                "inline": inline,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(files)} files)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default=PINNED_VERSION, help=f"default {PINNED_VERSION}")
    generate(parser.parse_args().version)


if __name__ == "__main__":
    main()
