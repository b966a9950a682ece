"""Services are copied only when both clusters allocate from the same ranges (DOMAIN.md §7).

A Service's ClusterIP and NodePorts are valid on the standby only inside the standby's own service
CIDR and NodePort range; its repair controllers rebuild the allocations (IPAddress objects, the
NodePort bitmap) from the Service objects, never from copied allocator keys. So at start this
reads each cluster's own objects: the ServiceCIDRs (1.33+) or the legacy ``ranges/serviceips``
RangeAllocation, and ``ranges/servicenodeports``; when they differ, or one side has none (a
standby apiserver that never ran), Services are skipped with the reason, unless the operator
says ``--services copy``.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicator.errors import BadValue
from replicator.etcd import EtcdClient
from replicator.kube.values import decode
from replicator.observability import get_logger

from .streams import scan

log = get_logger("services")


@dataclass(frozen=True, slots=True)
class ServiceRanges:
    cidrs: frozenset[str]
    node_ports: str | None

    def describe(self) -> str:
        cidrs = ",".join(sorted(self.cidrs)) or "unknown"
        return f"service CIDR {cidrs}, NodePorts {self.node_ports or 'unknown'}"


async def read_ranges(client: EtcdClient, prefix: str) -> ServiceRanges:
    cidrs: set[str] = set()
    async for page in scan(client, f"{prefix}/servicecidrs/".encode(), revision=0, page_size=100):
        for kv in page.kvs:
            for i in range(2):  # dual-stack: at most one CIDR per family
                value = _field(kv.key.decode(), kv.value, f"spec.cidrs[{i}]")
                if value:
                    cidrs.add(value)
    if not cidrs:
        legacy = await client.get(f"{prefix}/ranges/serviceips".encode())
        if legacy is not None and (value := _field(legacy.key.decode(), legacy.value, "range")):
            cidrs.add(value)
    ports = await client.get(f"{prefix}/ranges/servicenodeports".encode())
    node_ports = _field(ports.key.decode(), ports.value, "range") if ports is not None else None
    return ServiceRanges(frozenset(cidrs), node_ports or None)


def _field(key: str, value: bytes, path: str) -> str | None:
    try:
        return decode(key, value).field(path)
    except BadValue:
        return None


def verdict(source: ServiceRanges, dest: ServiceRanges) -> str | None:
    """None when Services may be copied; otherwise why not."""
    if not source.cidrs or not dest.cidrs or source.node_ports is None or dest.node_ports is None:
        return (
            f"Services skipped: cannot compare allocation ranges (source: {source.describe()}; standby: "
            f"{dest.describe()}); start the standby's apiserver once, or pass --services copy"
        )
    if source != dest:
        return (
            f"Services skipped: the clusters allocate from different ranges (source: {source.describe()}; "
            f"standby: {dest.describe()}): copied ClusterIPs/NodePorts would be invalid on the standby"
        )
    return None
