"""The built-in deny-list wins over rules; only an explicit optIn lifts an entry."""

from __future__ import annotations

import pytest
from rules_helpers import CountingFacts, FakeFacts, never_facts, ns_labels, rules

from replicator.rules import Action, Subject, decide, denylist_entries, needs_object

# Every group/kind of interest is selected, in every namespace, by a rule that needs no facts.
EVERYTHING = """
filters:
  secondary:
    - group: "*"
"""

KEY_DECIDED = [
    Subject(group="", kind="Event", namespace="n", name="e"),
    Subject(group="events.k8s.io", kind="Event", namespace="n", name="e"),
    Subject(group="coordination.k8s.io", kind="Lease", namespace="kube-system", name="l"),
    Subject(group="coordination.k8s.io", kind="LeaseCandidate", namespace="kube-system", name="l"),
    Subject(group="", kind="Node", namespace=None, name="node-1"),
    Subject(group="networking.k8s.io", kind="IPAddress", namespace=None, name="10.0.0.1"),
    Subject(group="networking.k8s.io", kind="ServiceCIDR", namespace=None, name="kubernetes"),
    Subject(group="storage.k8s.io", kind="CSINode", namespace=None, name="node-1"),
    Subject(group="storage.k8s.io", kind="VolumeAttachment", namespace=None, name="va"),
    Subject(group="resource.k8s.io", kind="ResourceSlice", namespace=None, name="rs"),
    Subject(group="certificates.k8s.io", kind="CertificateSigningRequest", namespace=None, name="csr"),
    Subject(group="", kind="Service", namespace="default", name="kubernetes"),
    Subject(group="", kind="Endpoints", namespace="default", name="kubernetes"),
    Subject(group="discovery.k8s.io", kind="EndpointSlice", namespace="default", name="kubernetes"),
    Subject(group="", kind="ConfigMap", namespace="any", name="kube-root-ca.crt"),
]


@pytest.mark.parametrize("subject", KEY_DECIDED, ids=str)
def test_key_decided_entries_skip_without_decoding(subject: Subject) -> None:
    d = decide(subject, rules(EVERYTHING), facts=never_facts, namespace_labels=ns_labels({}))
    assert d.action is Action.SKIP
    assert d.reason.startswith("deny-listed: ")
    assert d.rule is None


FACT_DECIDED = [
    (Subject(group="", kind="Pod", namespace="n", name="p"), FakeFacts(fields={"spec.nodeName": "node-1"})),
    (
        Subject(group="discovery.k8s.io", kind="EndpointSlice", namespace="n", name="s-abc"),
        FakeFacts(labels={"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
    ),
    (
        Subject(group="", kind="Endpoints", namespace="n", name="s"),
        FakeFacts(annotations={"endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"}),
    ),
    (
        Subject(group="", kind="Secret", namespace="kube-system", name="bootstrap-token-abc"),
        FakeFacts(fields={"type": "bootstrap.kubernetes.io/token"}),
    ),
    (
        Subject(group="", kind="Secret", namespace="n", name="sa-token"),
        FakeFacts(fields={"type": "kubernetes.io/service-account-token"}),
    ),
]


@pytest.mark.parametrize(("subject", "facts"), FACT_DECIDED, ids=[str(s) for s, _ in FACT_DECIDED])
def test_fact_decided_entries(subject: Subject, facts: FakeFacts) -> None:
    rs = rules(EVERYTHING)
    assert needs_object(rs, subject.group, subject.kind)
    denied = decide(subject, rs, facts=CountingFacts(facts), namespace_labels=ns_labels({}))
    assert denied.action is Action.SKIP
    assert denied.reason.startswith("deny-listed: ")
    allowed = decide(subject, rs, facts=CountingFacts(), namespace_labels=ns_labels({}))
    assert str(allowed) == "copy: copied by secondary[0]"


def test_similar_objects_are_not_denied() -> None:
    rs = rules(EVERYTHING)
    for subject in (
        Subject(group="", kind="Service", namespace="shop", name="kubernetes"),
        Subject(group="networking.k8s.io", kind="ServiceCIDR", namespace=None, name="extra"),
        Subject(group="", kind="ConfigMap", namespace="any", name="settings"),
        Subject(group="apps", kind="Deployment", namespace="default", name="kubernetes"),
    ):
        d = decide(subject, rs, facts=CountingFacts(), namespace_labels=ns_labels({}))
        assert d.action is Action.COPY, subject


def test_opt_in_lifts_only_the_named_kind() -> None:
    rs = rules(
        """
optIn:
  - {group: coordination.k8s.io, kind: Lease}
  - {group: "", kind: Secret}
filters:
  secondary:
    - group: "*"
"""
    )
    lease = Subject(group="coordination.k8s.io", kind="Lease", namespace="n", name="l")
    assert decide(lease, rs, facts=never_facts, namespace_labels=ns_labels({})).action is Action.COPY
    token = Subject(group="", kind="Secret", namespace="n", name="t")
    sa = FakeFacts(fields={"type": "kubernetes.io/service-account-token"})
    assert decide(token, rs, facts=CountingFacts(sa), namespace_labels=ns_labels({})).action is Action.COPY
    assert not needs_object(rs, "", "Secret")
    event = Subject(group="", kind="Event", namespace="n", name="e")
    assert decide(event, rs, facts=never_facts, namespace_labels=ns_labels({})).action is Action.SKIP


def test_facts_deny_entry_not_decoded_when_no_rule_selects_by_key() -> None:
    rs = rules('filters:\n  secondary:\n    - {group: "", resources: [{kind: Secret}], namespace: only}\n')
    d = decide(
        Subject(group="", kind="Secret", namespace="other", name="s"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.SKIP


def test_entries_are_listed_with_reasons() -> None:
    entries = denylist_entries()
    assert len(entries) >= 20
    assert all(e.reason for e in entries)
    assert any(e.describe() == "core Pod spec.nodeName set" for e in entries)
