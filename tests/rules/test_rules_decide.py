"""decide(): rule semantics, excludes per rule, lazy facts, readable reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import CountingFacts, FakeFacts, never_facts, ns_labels, rules

from replicator.rules import Action, Decision, RuleSet, Subject, decide, load_rules, needs_object

SEED = Path("/work/shared/fixtures/seed-example/rules.yaml")
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "rules.yaml"

NAMESPACES = {
    "unique": {"test.io/namespace-kind": "unique"},
    "unit-test": {"test.io/namespace-kind": "unit-test"},
    "other": {},
}


@pytest.fixture
def seed() -> RuleSet:
    if not SEED.exists():
        pytest.skip("seed fixture not present")
    return load_rules(SEED)


def test_seed_secret_in_selected_namespace_is_copied(seed: RuleSet) -> None:
    facts = CountingFacts(FakeFacts(fields={"type": "Opaque"}))
    d = decide(
        Subject(group="", kind="Secret", namespace="unique", name="s"),
        seed,
        facts=facts,
        namespace_labels=ns_labels(NAMESPACES),
    )
    assert d == Decision(action=Action.COPY, reason="copied by secondary[0]", rule="secondary[0]")
    assert str(d) == "copy: copied by secondary[0]"


def test_seed_secret_excluded_by_name(seed: RuleSet) -> None:
    facts = CountingFacts(FakeFacts(fields={"type": "Opaque"}))
    d = decide(
        Subject(group="", kind="Secret", namespace="unique", name="exclude-me-secret"),
        seed,
        facts=facts,
        namespace_labels=ns_labels(NAMESPACES),
    )
    assert d.action is Action.SKIP
    assert d.reason == "excluded by secondary[0].excludes[0]"


def test_seed_secret_in_unselected_namespace_skips_without_decoding(seed: RuleSet) -> None:
    d = decide(
        Subject(group="", kind="Secret", namespace="unit-test", name="s"),
        seed,
        facts=never_facts,
        namespace_labels=ns_labels(NAMESPACES),
    )
    assert d.action is Action.SKIP
    assert d.reason == 'rule secondary[0]: namespace "unit-test" labels do not match namespaceSelectors'


def test_unknown_namespace_labels_do_not_match(seed: RuleSet) -> None:
    d = decide(
        Subject(group="", kind="Secret", namespace="ghost", name="s"),
        seed,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.SKIP
    assert "unknown" in d.reason and '"ghost"' in d.reason


def test_seed_namespace_by_its_own_labels_in_its_sequence(seed: RuleSet) -> None:
    facts = CountingFacts(FakeFacts(labels={"test.io/namespace-kind": "unit-test"}))
    d = decide(
        Subject(group="", kind="Namespace", namespace=None, name="unit-test"),
        seed,
        facts=facts,
        namespace_labels=ns_labels({}),
    )
    assert str(d) == "copy: copied by sequential[1] (sequence 2)"
    assert d.rule == "sequential[1] (sequence 2)"


def test_seed_crd_matches_at_any_stored_version_without_decoding(seed: RuleSet) -> None:
    d = decide(
        Subject(
            group="apiextensions.k8s.io", kind="CustomResourceDefinition", namespace=None, name="w.example.io"
        ),
        seed,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.COPY


def test_no_rule_reason_and_no_decoding(seed: RuleSet) -> None:
    d = decide(
        Subject(group="apps", kind="Deployment", namespace="unique", name="x"),
        seed,
        facts=never_facts,
        namespace_labels=ns_labels(NAMESPACES),
    )
    assert str(d) == 'skip: no rule for group "apps" kind Deployment'


def test_seed_configmap_needs_namespace_and_label(seed: RuleSet) -> None:
    subject = Subject(group="", kind="ConfigMap", namespace="unit-test", name="c")
    d = decide(
        subject,
        seed,
        facts=CountingFacts(FakeFacts(labels={"test.io/namespace-kind": ""})),
        namespace_labels=ns_labels(NAMESPACES),
    )
    assert d.action is Action.COPY
    d = decide(subject, seed, facts=CountingFacts(), namespace_labels=ns_labels(NAMESPACES))
    assert d.reason == "rule secondary[1]: labels do not match labelSelectors"
    elsewhere = Subject(group="", kind="ConfigMap", namespace="unique", name="c")
    d = decide(elsewhere, seed, facts=never_facts, namespace_labels=ns_labels(NAMESPACES))
    assert d.reason == 'rule secondary[1]: namespace "unique" is not "unit-test"'


def test_facts_called_at_most_once() -> None:
    rs = rules(
        """
filters:
  secondary:
    - group: ""
      resources: [{kind: ConfigMap}]
      labelSelectors: [{matchLabels: {a: "1"}}]
      fieldSelectors: [{matchLabels: {data.x: "y"}}]
    - group: ""
      resources: [{kind: ConfigMap}]
      labelSelectors: [{matchLabels: {b: "1"}}]
"""
    )
    facts = CountingFacts(FakeFacts(labels={"a": "1"}))
    d = decide(
        Subject(group="", kind="ConfigMap", namespace="n", name="c"),
        rs,
        facts=facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.SKIP
    assert d.reason.startswith("no rule matched: rule secondary[0]: fields do not match fieldSelectors; ")
    assert facts.calls == 1


EXCLUDES = """
filters:
  secondary:
    - group: ""
      resources: [{kind: ConfigMap}]
      excludes:
        - {name: skip-me}
    - group: ""
      resources: [{kind: ConfigMap}]
      namespace: keep
"""


def test_excludes_are_per_rule() -> None:
    rs = rules(EXCLUDES)
    kept = decide(
        Subject(group="", kind="ConfigMap", namespace="keep", name="skip-me"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert str(kept) == "copy: copied by secondary[1]"
    dropped = decide(
        Subject(group="", kind="ConfigMap", namespace="other", name="skip-me"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert str(dropped) == "skip: excluded by secondary[0].excludes[0]"
    assert dropped.rule == "secondary[0]"


def test_exclude_by_labels_and_namespace() -> None:
    rs = rules(
        """
filters:
  secondary:
    - group: ""
      resources: [{kind: ConfigMap}]
      excludes:
        - namespace: a
          labelSelectors: [{matchLabels: {mirror: "false"}}]
"""
    )
    off = FakeFacts(labels={"mirror": "false"})
    subject_a = Subject(group="", kind="ConfigMap", namespace="a", name="c")
    subject_b = Subject(group="", kind="ConfigMap", namespace="b", name="c")
    assert (
        decide(subject_a, rs, facts=CountingFacts(off), namespace_labels=ns_labels({})).action is Action.SKIP
    )
    assert decide(subject_b, rs, facts=never_facts, namespace_labels=ns_labels({})).action is Action.COPY
    assert decide(subject_a, rs, facts=CountingFacts(), namespace_labels=ns_labels({})).action is Action.COPY


def test_cluster_scoped_objects_never_satisfy_namespace_conditions() -> None:
    rs = rules(
        """
filters:
  secondary:
    - group: rbac.authorization.k8s.io
      resources: [{kind: ClusterRole}]
      namespace: default
    - group: rbac.authorization.k8s.io
      resources: [{kind: ClusterRole}]
      namespaceSelectors: [{}]
"""
    )
    d = decide(
        Subject(group="rbac.authorization.k8s.io", kind="ClusterRole", namespace=None, name="r"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.SKIP
    assert "cluster-scoped" in d.reason


def test_namespace_object_is_its_own_namespace() -> None:
    rs = rules(
        """
filters:
  secondary:
    - {group: "", resources: [{kind: Namespace}], namespace: prod}
"""
    )
    copy = decide(
        Subject(group="", kind="Namespace", namespace=None, name="prod"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    skip = decide(
        Subject(group="", kind="Namespace", namespace=None, name="dev"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert (copy.action, skip.action) == (Action.COPY, Action.SKIP)


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("a.example.io", Action.COPY),
        ("a-b.c.example.io", Action.COPY),
        ("example.io", Action.SKIP),
        ("a.example.iox", Action.SKIP),
        ("aexample.io", Action.SKIP),
        ("", Action.SKIP),
    ],
)
def test_wildcard_group(group: str, expected: Action) -> None:
    rs = rules('filters:\n  secondary:\n    - group: "*.example.io"\n')
    d = decide(
        Subject(group=group, kind="Widget", namespace="n", name="w"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is expected


def test_kind_matches_case_insensitively() -> None:
    rs = rules("filters:\n  secondary:\n    - {group: apps, resources: [{kind: deployment}]}\n")
    d = decide(
        Subject(group="apps", kind="Deployment", namespace="n", name="d"),
        rs,
        facts=never_facts,
        namespace_labels=ns_labels({}),
    )
    assert d.action is Action.COPY


def test_pinned_version_needs_the_object_and_binds() -> None:
    rs = rules(
        """
filters:
  secondary:
    - group: autoscaling
      resources: [{kind: HorizontalPodAutoscaler, version: v2, pinVersion: true}]
"""
    )
    subject = Subject(group="autoscaling", kind="HorizontalPodAutoscaler", namespace="n", name="h")
    assert needs_object(rs, "autoscaling", "HorizontalPodAutoscaler")
    v2 = decide(
        subject, rs, facts=CountingFacts(FakeFacts(version="autoscaling/v2")), namespace_labels=ns_labels({})
    )
    v1 = decide(subject, rs, facts=CountingFacts(FakeFacts(version="v1")), namespace_labels=ns_labels({}))
    assert v2.action is Action.COPY
    assert v1.reason == "rule secondary[0]: stored version v1 is not the pinned v2"


def test_needs_object_and_field_paths(seed: RuleSet) -> None:
    assert not needs_object(seed, "apiextensions.k8s.io", "CustomResourceDefinition")
    assert needs_object(seed, "", "Namespace")  # labelSelectors
    assert needs_object(seed, "", "Secret")  # fieldSelectors (and the deny-list)
    assert not needs_object(seed, "apps", "Deployment")  # no rule
    assert seed.field_paths("", "Secret") == frozenset({"type"})
    assert seed.field_paths_needed("", "Secret")
    assert not seed.field_paths_needed("", "ConfigMap")


def test_deploy_example_decisions() -> None:
    rs = load_rules(EXAMPLE)
    labels = ns_labels({"shop": {"mirror": "true"}, "tmp": {}})
    crd = Subject(
        group="apiextensions.k8s.io",
        kind="CustomResourceDefinition",
        namespace=None,
        name="widgets.demo.example.io",
    )
    d = decide(
        crd,
        rs,
        facts=CountingFacts(FakeFacts(fields={"spec.group": "demo.example.io"})),
        namespace_labels=labels,
    )
    assert d.rule == "sequential[0] (sequence 1)"
    widget = Subject(group="demo.example.io", kind="Widget", namespace="shop", name="w")
    assert decide(widget, rs, facts=never_facts, namespace_labels=labels).action is Action.COPY
    cm = Subject(group="", kind="ConfigMap", namespace="shop", name="settings")
    assert decide(cm, rs, facts=CountingFacts(), namespace_labels=labels).action is Action.COPY
    cm_tmp = Subject(group="", kind="ConfigMap", namespace="tmp", name="settings")
    assert decide(cm_tmp, rs, facts=never_facts, namespace_labels=labels).action is Action.SKIP
    token = Subject(group="", kind="Secret", namespace="shop", name="t")
    sa = FakeFacts(fields={"type": "kubernetes.io/service-account-token"})
    assert decide(token, rs, facts=CountingFacts(sa), namespace_labels=labels).reason.startswith(
        "deny-listed"
    )
    deploy = Subject(group="apps", kind="Deployment", namespace="tmp", name="web")
    demo = FakeFacts(labels={"app.kubernetes.io/part-of": "demo"})
    assert decide(deploy, rs, facts=CountingFacts(demo), namespace_labels=labels).action is Action.COPY
