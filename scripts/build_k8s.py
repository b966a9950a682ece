#!/usr/bin/env python3
"""Build the end-to-end tier's binaries from the Go module proxy at pinned versions.

kube-apiserver and kubectl come from ``k8s.io/kubernetes``, which cannot be built with a plain
``go install pkg@version`` (its go.mod replaces every staging module ``k8s.io/<name>`` with a
path inside its own repository). ``scripts/k8s-build/kubernetes`` is a small module that
requires ``k8s.io/kubernetes`` and replaces each staging module with its published ``v0.X.Y``
release instead; ``--regen`` writes that replace list from k8s.io/kubernetes's own go.mod and
refreshes go.sum. etcd and etcdctl have the same problem (their go.mod files replace the other
etcd modules with ``../``), so ``scripts/k8s-build/etcd`` does the same for them.

Binaries land in ``${XDG_CACHE_HOME:-~/.cache}/etcd-replicator/bin/<name>-<version>`` (override
with ``REPLICATOR_E2E_BIN_DIR``); a present binary is not rebuilt. Beside each one,
``<name>-<version>.json`` records how long the build took and how big the result is. The last
line of stdout is a JSON object mapping each name to its path (``--json``), for the tests.

kubectl: one already on PATH is used when its minor version is within one of the apiserver's
(Kubernetes' supported skew); otherwise it is built (cheap once kube-apiserver is built: they
share almost every package).

Build settings: ``-trimpath``, ``CGO_ENABLED=0``, ``-ldflags=-s -w`` (small static binaries),
``GOTOOLCHAIN=local`` (never download a toolchain), ``-p`` = min(CPUs, 4), one binary at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.17"

HERE = Path(__file__).resolve().parent
MODULES = HERE / "k8s-build"
K8S_MODULE = MODULES / "kubernetes"
ETCD_MODULE = MODULES / "etcd"


@dataclass(frozen=True)
class Target:
    name: str
    version: str
    module_dir: Path
    package: str
    ldflags: tuple[str, ...] = ()


def _k8s_version_ldflags(version: str) -> tuple[str, ...]:
    # What hack/lib/version.sh stamps, so `kubectl version` and /version report the release.
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{var}={val}" for var, val in stamps.items()]
    return tuple(flags)


TARGETS = {
    "etcd": Target("etcd", ETCD_VERSION, ETCD_MODULE, "go.etcd.io/etcd/server/v3"),
    "etcdctl": Target("etcdctl", ETCD_VERSION, ETCD_MODULE, "go.etcd.io/etcd/etcdctl/v3"),
    "kube-apiserver": Target(
        "kube-apiserver",
        K8S_VERSION,
        K8S_MODULE,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        _k8s_version_ldflags(K8S_VERSION),
    ),
    "kubectl": Target(
        "kubectl", K8S_VERSION, K8S_MODULE, "k8s.io/kubernetes/cmd/kubectl", _k8s_version_ldflags(K8S_VERSION)
    ),
}


def bin_dir() -> Path:
    if override := os.environ.get("REPLICATOR_E2E_BIN_DIR"):
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "etcd-replicator" / "bin"


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-trimpath -buildvcs=false -mod=readonly")
    return env


def log(msg: str) -> None:
    print(f"build_k8s: {msg}", file=sys.stderr, flush=True)


def go(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env or go_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"build_k8s: go {' '.join(args)} (in {cwd}) failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


# --- module generation (development time: --regen) -------------------------------------------


def _upstream_gomod(module: str, version: str, cwd: Path) -> str:
    out = go("mod", "download", "-json", f"{module}@{version}", cwd=cwd, env={**go_env(), "GOFLAGS": ""})
    return Path(json.loads(out)["GoMod"]).read_text()


def _directive(gomod: str, name: str) -> str | None:
    m = re.search(rf"^{name} (\S+)$", gomod, re.M)
    return m.group(1) if m else None


def _local_replaces(gomod: str) -> list[str]:
    """Modules that a go.mod replaces with a directory path (``=> ./x`` or ``=> ../x``)."""
    return sorted(set(re.findall(r"^\s*(?:replace\s+)?(\S+)(?: \S+)? => \.\.?/\S+\s*$", gomod, re.M)))


def _required(gomod: str) -> set[str]:
    return set(re.findall(r"^\s*(?:require\s+)?(\S+) v\S+(?: // indirect)?\s*$", gomod, re.M))


def _write_module(
    directory: Path,
    *,
    header: str,
    upstream: str,
    tools: list[str],
    requires: dict[str, str],
    replaces: dict[str, str],
) -> None:
    lines = [
        f"// {header}",
        "// Generated by scripts/build_k8s.py --regen; do not edit.",
        "",
        "module etcd-replicator/k8s-build/" + directory.name,
        "",
    ]
    lines.append(f"go {_directive(upstream, 'go')}")
    if godebug := _directive(upstream, "godebug"):
        lines += ["", f"godebug {godebug}"]
    lines += ["", "tool (", *[f"\t{t}" for t in tools], ")", "", "require ("]
    lines += [f"\t{m} {v}" for m, v in requires.items()] + [")", ""]
    if replaces:
        lines += ["replace ("] + [f"\t{m} => {m} {v}" for m, v in replaces.items()] + [")", ""]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "go.mod").write_text("\n".join(lines))
    (directory / "go.sum").unlink(missing_ok=True)
    go("mod", "tidy", cwd=directory, env={**go_env(), "GOFLAGS": ""})


def regen_k8s(version: str = K8S_VERSION) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upstream = _upstream_gomod("k8s.io/kubernetes", version, Path(tmp))
    staging = f"v0.{version.lstrip('v').split('.', 1)[1]}"  # v1.37.2 -> v0.37.2
    required = _required(upstream)
    # Only staging modules k8s.io/kubernetes requires (at the placeholder v0.0.0) need a
    # replacement; some staging modules (sample-controller, ...) are not published per release.
    replaces = {m: staging for m in _local_replaces(upstream) if m in required}
    _write_module(
        K8S_MODULE,
        header=f"kube-apiserver and kubectl from k8s.io/kubernetes {version}",
        upstream=upstream,
        tools=[TARGETS["kube-apiserver"].package, TARGETS["kubectl"].package],
        requires={"k8s.io/kubernetes": version},
        replaces=replaces,
    )


def regen_etcd(version: str = ETCD_VERSION) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = _upstream_gomod("go.etcd.io/etcd/server/v3", version, Path(tmp))
        ctl = _upstream_gomod("go.etcd.io/etcd/etcdctl/v3", version, Path(tmp))
    # Only modules the two require; the FORBIDDEN_DEPENDENCY guards name nothing required.
    needed = _required(server) | _required(ctl)
    replaces = {
        m: version for m in sorted(set(_local_replaces(server)) | set(_local_replaces(ctl))) if m in needed
    }
    _write_module(
        ETCD_MODULE,
        header=f"etcd and etcdctl {version}",
        upstream=server,
        tools=[TARGETS["etcd"].package, TARGETS["etcdctl"].package],
        requires={"go.etcd.io/etcd/server/v3": version, "go.etcd.io/etcd/etcdctl/v3": version},
        replaces=replaces,
    )


# --- building ----------------------------------------------------------------------------------


def cached_path(target: Target) -> Path:
    return bin_dir() / f"{target.name}-{target.version}"


def build(target: Target) -> Path:
    out = cached_path(target)
    if out.is_file() and os.access(out, os.X_OK):
        return out
    if not (target.module_dir / "go.mod").is_file():
        raise SystemExit(f"build_k8s: {target.module_dir}/go.mod is missing (run with --regen)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    jobs = str(min(os.cpu_count() or 1, 4))
    ldflags = " ".join(("-s", "-w", *target.ldflags))
    log(f"building {target.name} {target.version} (go build -p {jobs}; this can take a while)")
    started = time.monotonic()
    go("build", "-p", jobs, f"-ldflags={ldflags}", "-o", str(tmp), target.package, cwd=target.module_dir)
    seconds = round(time.monotonic() - started, 1)
    tmp.replace(out)
    gov = go("env", "GOVERSION", cwd=target.module_dir).strip()
    record = {
        "name": target.name,
        "version": target.version,
        "build_seconds": seconds,
        "bytes": out.stat().st_size,
        "go": gov,
    }
    out.with_name(out.name + ".json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"built {out} in {seconds}s, {out.stat().st_size / 1e6:.1f} MB")
    return out


def system_kubectl(version: str) -> Path | None:
    """kubectl on PATH when its minor version is within Kubernetes' supported skew of ±1."""
    found = shutil.which("kubectl")
    if not found:
        return None
    proc = subprocess.run(
        [found, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    )
    try:
        minor = int(re.sub(r"\D.*", "", json.loads(proc.stdout)["clientVersion"]["minor"]))
    except (ValueError, KeyError, json.JSONDecodeError):
        return None
    want = int(version.lstrip("v").split(".")[1])
    return Path(found) if abs(minor - want) <= 1 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="etcd,etcdctl,kube-apiserver,kubectl", help="comma-separated names")
    parser.add_argument(
        "--regen", action="store_true", help="rewrite scripts/k8s-build/*/go.mod from upstream, then build"
    )
    parser.add_argument(
        "--locate", action="store_true", help="do not build; print cached paths (missing ones omitted)"
    )
    parser.add_argument("--json", action="store_true", help="print {name: path} as JSON on stdout")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown binaries: {sorted(unknown)}")
    if shutil.which("go") is None and not args.locate:
        missing = [n for n in names if not cached_path(TARGETS[n]).is_file()]
        if missing:
            raise SystemExit(f"build_k8s: Go is not installed; cannot build {', '.join(missing)}")
    if args.regen:
        if {"etcd", "etcdctl"} & set(names):
            regen_etcd()
        if {"kube-apiserver", "kubectl"} & set(names):
            regen_k8s()
    paths: dict[str, str] = {}
    for name in names:
        target = TARGETS[name]
        if (
            name == "kubectl"
            and not cached_path(target).is_file()
            and (found := system_kubectl(target.version))
        ):
            paths[name] = str(found)
        elif args.locate:
            if cached_path(target).is_file():
                paths[name] = str(cached_path(target))
        else:
            paths[name] = str(build(target))
    print(json.dumps(paths) if args.json else "\n".join(f"{k}\t{v}" for k, v in paths.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
