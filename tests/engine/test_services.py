"""Services are copied only when both clusters allocate from the same ranges; allocators never."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd
from replicator.journal import Journal
from replicator.kube import synth

from .conftest import CHECKPOINT, dump, put_raw

pytestmark = pytest.mark.integration

RULES = """
filters:
  secondary:
    - group: ""
      resources:
        - {version: v1, kind: Service}
      namespace: shop
"""
WEB = "/registry/services/specs/shop/web"
HEADLESS = "/registry/services/specs/shop/db"


def load(server: LocalEtcd, *, cidr: str | None, ports: str | None, services: bool) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    if cidr is not None:
        values["/registry/ranges/serviceips"] = synth.range_allocation(cidr, b"\x01")
    if ports is not None:
        values["/registry/ranges/servicenodeports"] = synth.range_allocation(ports, b"\x01")
    if services:
        values[WEB] = synth.service(
            "shop", "web", cluster_ip="10.96.7.7", type="NodePort", ports=(("http", 80),)
        )
        values[HEADLESS] = synth.service("shop", "db", cluster_ip="None")
    for key, value in values.items():
        put_raw(server.endpoint, key, value)
    return values


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.mark.parametrize(
    ("dest_cidr", "dest_ports", "copied", "why"),
    [
        ("10.96.0.0/12", "30000-32767", True, None),
        ("10.100.0.0/16", "30000-32767", False, "different ranges"),
        (None, None, False, "cannot compare"),
    ],
)
async def test_services_follow_the_allocation_ranges(
    etcd_pair: tuple[LocalEtcd, LocalEtcd],
    make_settings: Callable[..., Settings],
    rules: Path,
    dest_cidr: str | None,
    dest_ports: str | None,
    copied: bool,
    why: str | None,
) -> None:
    source, dest = etcd_pair
    values = load(source, cidr="10.96.0.0/12", ports="30000-32767", services=True)
    own = load(dest, cidr=dest_cidr, ports=dest_ports, services=False)
    settings = make_settings(source, dest, once=True, rules_file=rules, encryption_provider_config=None)

    await runner.run(settings)

    mirrored = dump(dest.endpoint)
    expected = set(own) | {CHECKPOINT} | ({WEB, HEADLESS} if copied else set())
    assert set(mirrored) == expected  # allocator keys are never copied, the standby's stay its own
    for key in own:
        assert mirrored[key] == own[key]
    if copied:
        assert mirrored[HEADLESS] == values[HEADLESS]  # byte for byte: a headless Service stays headless
        assert mirrored[WEB] == values[WEB]
    else:
        with Journal.open(settings.journal_url) as journal:
            (decision,) = journal.key_history(WEB)
        assert decision.action == "skip" and why is not None and why in decision.reason
