"""The end-to-end tier: a real kube-apiserver on each side of the replicator.

Binaries (etcd 3.6, etcdctl, kube-apiserver 1.37, kubectl) come from ``scripts/build_k8s.py``,
which builds them from the Go module proxy once and caches them by version. The ``e2e_bins``
fixture locates them and builds what is missing; without Go, or when the build fails, every e2e
test skips with the reason (so ``pytest`` on a fresh machine without Go still passes). With
``REPLICATOR_E2E_REQUIRED=1`` (CI) a missing binary is an error instead of a skip.

A cold build takes tens of minutes on two cores, far beyond the per-test timeout; when
binaries are missing and Go is present, the first e2e test (whose setup runs the build) gets a
timeout of ``REPLICATOR_E2E_BUILD_TIMEOUT`` seconds (default 3600) on top of its own.

One primary and one standby cluster serve the whole session; they share the aescbc key, as a
standby that receives ciphertext byte for byte must.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build_k8s.py"
NAMES = ("etcd", "etcdctl", "kube-apiserver", "kubectl")
BUILD_TIMEOUT = float(os.environ.get("REPLICATOR_E2E_BUILD_TIMEOUT", "3600"))
REQUIRED = os.environ.get("REPLICATOR_E2E_REQUIRED", "") not in ("", "0", "false")


def _build_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _located() -> dict[str, str]:
    proc = _build_script("--locate", timeout=60)
    if proc.returncode != 0:
        return {}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"e2e binaries unavailable and REPLICATOR_E2E_REQUIRED is set: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    if not e2e or shutil.which("go") is None:
        return
    if set(NAMES) <= set(_located()):
        return
    own = e2e[0].get_closest_marker("timeout")
    base = float(own.args[0]) if own and own.args else float(config.getini("timeout") or 300)
    e2e[0].add_marker(pytest.mark.timeout(base + BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def e2e_bins() -> dict[str, str]:
    """name -> path of each binary; builds the missing ones (see the module docstring)."""
    found = _located()
    if set(NAMES) <= set(found):
        return found
    if shutil.which("go") is None:
        _unavailable(
            f"e2e tier needs {', '.join(sorted(set(NAMES) - set(found)))}: Go is not installed "
            f"(install Go 1.26+ and run {BUILD_SCRIPT.relative_to(ROOT)})"
        )
    try:
        proc = _build_script(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        _unavailable(f"{BUILD_SCRIPT.relative_to(ROOT)} took longer than {BUILD_TIMEOUT:.0f}s")
    if proc.returncode != 0:
        _unavailable(f"{BUILD_SCRIPT.relative_to(ROOT)} failed: {proc.stderr.strip()[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def encryption_config(path: Path, key: bytes, *, key_name: str = "e2e-key") -> Path:
    """Secrets encrypted with aescbc (identity still reads plaintext), as kube-apiserver takes it."""
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"aescbc": {"keys": [{"name": key_name, "secret": base64.b64encode(key).decode()}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    path.write_text(json.dumps(doc, indent=1))
    return path


@pytest.fixture(scope="session")
def shared_encryption(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encryption_config(tmp_path_factory.mktemp("encryption") / "encryption.yaml", os.urandom(32))


def _cluster(name: str, bins: dict[str, str], root: Path, enc: Path, address: str) -> Iterator[KubeCluster]:
    cluster = KubeCluster(name, root, bins, enc, address)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def primary(
    e2e_bins: dict[str, str], shared_encryption: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    yield from _cluster(
        "primary", e2e_bins, tmp_path_factory.mktemp("primary"), shared_encryption, "192.0.2.1"
    )


@pytest.fixture(scope="session")
def standby(
    e2e_bins: dict[str, str], shared_encryption: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    yield from _cluster(
        "standby", e2e_bins, tmp_path_factory.mktemp("standby"), shared_encryption, "192.0.2.2"
    )
