"""A replicator paused (SIGSTOP) while the source moves on catches up when continued.

The paused process's watch falls behind; etcd then answers it as an unsynced watcher, whose
headers and progress notifications must not be mistaken for a restored source or for progress
past events not yet received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.etcd import ClientConfig, EtcdClient
from replicator.etcd.local import LocalEtcd
from replicator.kube import synth

from .conftest import dump

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RULES = """
filters:
  secondary:
    - group: ""
      resources: [{kind: ConfigMap, version: v1}]
"""


async def test_a_paused_replicator_catches_up_when_continued(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = (tmp_path / "replicator.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "replicator",
        "run",
        "--source-endpoints",
        source.endpoint,
        "--dest-endpoints",
        dest.endpoint,
        "--mirror-rule",
        str(rules),
        "--journal",
        f"sqlite:///{tmp_path / 'j.db'}",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220 - returns at once
    try:
        async with await EtcdClient.connect(ClientConfig(endpoints=(source.endpoint,))) as client:
            await asyncio.sleep(3)
            for i in range(200):
                await client.put(f"/registry/configmaps/a/x{i}".encode(), synth.configmap("a", f"x{i}"))
            await asyncio.sleep(2)
            os.kill(proc.pid, signal.SIGSTOP)
            for start in range(0, 3000, 100):
                await asyncio.gather(
                    *[
                        client.put(
                            f"/registry/configmaps/a/y{i}".encode(),
                            synth.configmap("a", f"y{i}", data={"d": "z" * 2000}),
                        )
                        for i in range(start, start + 100)
                    ]
                )
            await asyncio.sleep(6)  # long enough for progress notifications to be queued
            os.kill(proc.pid, signal.SIGCONT)
            for _ in range(300):
                if len([k for k in await asyncio.to_thread(dump, dest.endpoint, "/registry/") if k]) == 3200:
                    break
                assert proc.poll() is None, (tmp_path / "replicator.log").read_text()[-2000:]
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the replicator did not catch up")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "replicator.log").read_text()[-2000:]
        log.close()
