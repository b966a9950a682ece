"""The built-in deny-list: objects that break or mislead a standby if mirrored (DOMAIN.md §6).

``decide()`` consults it before any rule, so no rule can bring these in by accident (a ``*`` group,
a rule without resources). Only the rule file's explicit ``optIn`` entry for the exact group/kind
lifts an entry. Keys that are not API objects (``ranges/*``, ``masterleases/*``, keys outside the
prefix) never get here: the key parser drops them.

Entries are declarative so that ``rules explain`` can list them. An entry whose conditions are all
on the key (kind, name, namespace) never needs the object decoded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from replicator.rules.subject import ObjectFacts, Subject


@dataclass(frozen=True, slots=True, kw_only=True)
class DenyEntry:
    """One deny-listed kind, optionally narrowed; all given conditions must hold."""

    group: str
    kind: str
    reason: str
    name: str | None = None
    namespace: str | None = None
    label: tuple[str, str] | None = None
    annotation: str | None = None  # present at all
    field_path: str | None = None
    field_values: tuple[str, ...] | None = None  # None: any non-empty value

    @property
    def needs_facts(self) -> bool:
        return self.label is not None or self.annotation is not None or self.field_path is not None

    def covers_kind(self, group: str, kind: str) -> bool:
        return self.group == group and self.kind.lower() == kind.lower()

    def key_matches(self, subject: Subject) -> bool:
        if not self.covers_kind(subject.group, subject.kind):
            return False
        if self.name is not None and subject.name != self.name:
            return False
        return self.namespace is None or subject.namespace == self.namespace

    def facts_match(self, facts: ObjectFacts) -> bool:
        if self.label is not None and facts.labels.get(self.label[0]) != self.label[1]:
            return False
        if self.annotation is not None and self.annotation not in facts.annotations:
            return False
        if self.field_path is not None:
            value = facts.field(self.field_path)
            if self.field_values is None:
                return bool(value)
            return value in self.field_values
        return True

    def describe(self) -> str:
        group = self.group or "core"
        parts = [f"{group} {self.kind}"]
        if self.namespace is not None or self.name is not None:
            parts.append(f"{self.namespace + '/' if self.namespace else ''}{self.name or '*'}")
        if self.label is not None:
            parts.append(f"label {self.label[0]}={self.label[1]}")
        if self.annotation is not None:
            parts.append(f"annotation {self.annotation}")
        if self.field_path is not None:
            wanted = "set" if self.field_values is None else " or ".join(self.field_values)
            parts.append(f"{self.field_path} {wanted}")
        return " ".join(parts)


_ENTRIES: tuple[DenyEntry, ...] = (
    DenyEntry(group="", kind="Event", reason="Events are transient records of the primary"),
    DenyEntry(group="events.k8s.io", kind="Event", reason="Events are transient records of the primary"),
    DenyEntry(
        group="coordination.k8s.io",
        kind="Lease",
        reason="Leases would block leader election of the standby's own controllers",
    ),
    DenyEntry(
        group="coordination.k8s.io",
        kind="LeaseCandidate",
        reason="LeaseCandidates belong to the primary's leader election",
    ),
    DenyEntry(group="", kind="Node", reason="Nodes are the primary's machines"),
    DenyEntry(
        group="networking.k8s.io",
        kind="IPAddress",
        reason="IPAddresses are allocations the standby rebuilds from Services",
    ),
    DenyEntry(
        group="networking.k8s.io",
        kind="ServiceCIDR",
        name="kubernetes",
        reason="the default ServiceCIDR is owned by the standby's apiserver",
    ),
    DenyEntry(
        group="",
        kind="Pod",
        field_path="spec.nodeName",
        reason="Pods bound to a node are garbage-collected on the standby",
    ),
    DenyEntry(group="storage.k8s.io", kind="CSINode", reason="CSINodes describe the primary's nodes"),
    DenyEntry(
        group="storage.k8s.io",
        kind="VolumeAttachment",
        reason="VolumeAttachments bind to the primary's nodes",
    ),
    DenyEntry(
        group="resource.k8s.io", kind="ResourceSlice", reason="ResourceSlices describe the primary's nodes"
    ),
    DenyEntry(
        group="certificates.k8s.io",
        kind="CertificateSigningRequest",
        reason="CertificateSigningRequests are signed by the primary",
    ),
    DenyEntry(
        group="",
        kind="Service",
        namespace="default",
        name="kubernetes",
        reason="Service default/kubernetes is owned by the standby's apiserver",
    ),
    DenyEntry(
        group="",
        kind="Endpoints",
        namespace="default",
        name="kubernetes",
        reason="Endpoints default/kubernetes are owned by the standby's apiserver",
    ),
    DenyEntry(
        group="discovery.k8s.io",
        kind="EndpointSlice",
        namespace="default",
        name="kubernetes",
        reason="EndpointSlice default/kubernetes is owned by the standby's apiserver",
    ),
    DenyEntry(
        group="discovery.k8s.io",
        kind="EndpointSlice",
        label=("endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"),
        reason="controller-managed EndpointSlices list the primary's Pod IPs",
    ),
    DenyEntry(
        group="",
        kind="Endpoints",
        annotation="endpoints.kubernetes.io/last-change-trigger-time",
        reason="controller-maintained Endpoints list the primary's Pod IPs",
    ),
    DenyEntry(
        group="",
        kind="ConfigMap",
        name="kube-root-ca.crt",
        reason="kube-root-ca.crt is published by the standby's own controller",
    ),
    DenyEntry(
        group="",
        kind="Secret",
        field_path="type",
        field_values=("bootstrap.kubernetes.io/token",),
        reason="bootstrap tokens authenticate nodes to the primary",
    ),
    DenyEntry(
        group="",
        kind="Secret",
        field_path="type",
        field_values=("kubernetes.io/service-account-token",),
        reason="ServiceAccount tokens are signed by the primary's key",
    ),
)


def denylist_entries() -> tuple[DenyEntry, ...]:
    """Every built-in entry, in the order ``decide()`` checks them."""
    return _ENTRIES


def is_denylisted_kind(group: str, kind: str) -> bool:
    """Whether any entry concerns this group/kind (an ``optIn`` must name such a kind)."""
    return any(e.covers_kind(group, kind) for e in _ENTRIES)


@functools.cache
def _entries_for(group: str, kind: str) -> tuple[DenyEntry, ...]:
    """The entries about one group/kind, in order (decide() runs per key: no scans, no lower())."""
    return tuple(e for e in _ENTRIES if e.covers_kind(group, kind))


def check_key(subject: Subject) -> DenyEntry | None:
    """The first entry the key alone decides (no facts needed), if any."""
    for entry in _entries_for(subject.group, subject.kind):
        if not entry.needs_facts and entry.key_matches(subject):
            return entry
    return None


def check_facts(subject: Subject, facts: Callable[[], ObjectFacts]) -> DenyEntry | None:
    """The first entry that needs the object and matches it; calls ``facts()`` only if needed."""
    for entry in _entries_for(subject.group, subject.kind):
        if entry.needs_facts and entry.key_matches(subject) and entry.facts_match(facts()):
            return entry
    return None


def needs_facts(group: str, kind: str) -> bool:
    """Whether the deny-list may need the decoded object for this group/kind."""
    return any(e.needs_facts for e in _entries_for(group, kind))
