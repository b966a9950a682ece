"""`replicator demo` as a user runs it: a subprocess that must finish fast, report, clean up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from replicator.cli import main as cli_main
from replicator.etcd.local import LocalEtcd, LocalEtcdError

REPO = Path(__file__).resolve().parents[2]


def _run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator", "demo", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _demo_dir(stdout: str) -> Path:
    found = re.search(r"dir (\S*replicator-demo-\S+)", stdout)
    assert found, stdout
    return Path(found.group(1))


def _looks_random(token: str) -> bool:
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (the demo's etcd servers would)."""
    hits = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            hits.append(cmdline)
    return hits


@pytest.mark.integration
def test_demo_runs_reports_and_cleans_up() -> None:
    proc = _run_demo()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for line in (
        "1. full sync at source revision",
        "2. live changes on the source",
        "3. standby check, reading it back",
        "OK: the standby holds exactly what the rules select, as the source has it.",
    ):
        assert line in out
    # Why things were skipped, from the journal.
    assert re.search(r"secrets/shop/default-token-\S+ +deny-listed: ServiceAccount tokens", out)
    assert re.search(r"pods/shop/\S+ +deny-listed: Pods bound to a node", out)
    assert re.search(r"configmaps/shop/kube-root-ca.crt +deny-listed", out)
    assert re.search(r"configmaps/shop/tmp-cache +excluded by", out)
    assert re.search(r"ranges/serviceips +not an API object", out)
    # The live changes reached the standby.
    assert re.search(r"create ConfigMap shop/feature-flags +-> copy: .*\[standby: present, identical\]", out)
    assert re.search(r"delete ConfigMap shop/old-config +-> delete: .*\[standby: absent\]", out)
    assert re.search(
        r"relabel Secret shop/api-token mirror=false +-> delete: left scope.*\[standby: absent\]", out
    )
    assert "namespace billing entered scope, copied: configmaps/billing/invoice-template" in out
    assert "14/14 byte-identical to the source" in out
    # Nothing of Secret contents: the demo's random tokens are 32 base64 characters with mixed case
    # and digits, unlike any key or word in the report; the ServiceAccount token is fixed.
    assert [t for t in re.findall(r"[A-Za-z0-9+=]{20,}", out + proc.stderr) if _looks_random(t)] == []
    assert "eyJhbGciOiJSUzI1NiJ9" not in out + proc.stderr
    # No servers or files left behind.
    base = _demo_dir(out)
    assert not base.exists()
    assert _processes_under(base) == []


@pytest.mark.integration
def test_demo_keep_leaves_the_directory_but_no_servers() -> None:
    proc = _run_demo("--keep")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = _demo_dir(proc.stdout)
    try:
        assert f"kept {base}" in proc.stdout
        assert (base / "journal.db").is_file() and (base / "source" / "etcd.log").is_file()
        assert _processes_under(base) == []
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_demo_start_failure_is_one_line_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(self: LocalEtcd, **_: object) -> None:
        raise LocalEtcdError(f"{self.spec.name}: etcd exited at start\nlog line 1\nlog line 2")

    monkeypatch.setattr(LocalEtcd, "start", fail)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli_main.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("replicator: source: etcd exited at start")
    assert list(tmp_path.iterdir()) == []


def test_packaged_rules_match_the_example() -> None:
    """The demo ships a copy of deploy/examples/rules.yaml as package data; keep them identical."""
    packaged = REPO / "replicator" / "cli" / "demo_rules.yaml"
    assert packaged.read_bytes() == (REPO / "deploy" / "examples" / "rules.yaml").read_bytes()


def test_example_rules_pass_rules_check() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "replicator",
            "rules",
            "check",
            str(REPO / "deploy" / "examples" / "rules.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
