"""Fixtures for the kube layer: the shared real-value fixtures, skipped when absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path("/work/shared/fixtures")
REAL = FIXTURES / "real-values"
OLD = FIXTURES / "old-values"


@pytest.fixture(scope="session")
def real_values() -> dict[str, bytes]:
    """etcd key -> stored value bytes, from the real-values fixture."""
    if not (REAL / "index.json").is_file():
        pytest.skip(f"shared fixtures not present at {REAL}")
    index = json.loads((REAL / "index.json").read_text())
    return {e["key"]: (REAL / e["file"]).read_bytes() for e in index}


@pytest.fixture(scope="session")
def real_encryption_config() -> Path:
    path = REAL / "encryption-config.yaml"
    if not path.is_file():
        pytest.skip(f"shared fixtures not present at {REAL}")
    return path


@pytest.fixture(scope="session")
def old_values() -> list[tuple[str, bytes, dict[str, object]]]:
    """(key, value, expected JSON) for the 2017-era values."""
    if not OLD.is_dir():
        pytest.skip(f"shared fixtures not present at {OLD}")
    out = []
    for bin_path in sorted(OLD.glob("*.bin")):
        resource, ns, name = bin_path.stem.split("__")
        expected = json.loads(bin_path.with_name(bin_path.stem + ".expected.json").read_text())
        out.append((f"/registry/{resource}/{ns}/{name}", bin_path.read_bytes(), expected))
    return out
