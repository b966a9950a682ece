"""Loading rule files: the seed's file unchanged, and one-line errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import rules

from replicator.errors import RulesError
from replicator.rules import Operator, ResourceMatcher, load_rules, parse_rules

SEED = Path("/work/shared/fixtures/seed-example/rules.yaml")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "examples" / "rules.yaml"


@pytest.fixture
def seed_path() -> Path:
    if not SEED.exists():
        pytest.skip("seed fixture not present")
    return SEED


def test_seed_example_loads_unchanged(seed_path: Path) -> None:
    rs = load_rules(seed_path)
    assert rs.source == str(seed_path)
    assert [r.id for r in rs.rules] == [
        "sequential[0] (sequence 1)",
        "sequential[1] (sequence 2)",
        "secondary[0]",
        "secondary[1]",
    ]
    crd, ns, secrets, configmaps = rs.rules
    assert crd.group == "apiextensions.k8s.io"
    assert crd.resources == (
        ResourceMatcher(group="apiextensions.k8s.io", version="v1beta1", kind="CustomResourceDefinition"),
    )
    assert ns.resources == (ResourceMatcher(group="", version="v1", kind="Namespace"),)
    assert ns.label_selectors[0].match_expressions[0].values == ("unique", "unit-test")
    # the seed writes `Kind: Secret`
    assert secrets.resources[0].kind == "Secret"
    assert secrets.namespace_selectors[0].match_expressions[0].operator is Operator.IN
    assert secrets.field_selectors[0].match_expressions[0].key == "type"
    assert secrets.field_selectors[0].match_expressions[0].operator is Operator.NOT_IN
    (exclude,) = secrets.excludes
    assert (exclude.name, exclude.namespace) == ("exclude-me-secret", "unique")
    assert exclude.resource == ResourceMatcher(group="", version="v1", kind="Secret")
    assert configmaps.namespace == "unit-test"
    assert configmaps.label_selectors[0].match_expressions[0].operator is Operator.EXISTS
    assert [r.line for r in rs.rules] == [3, 9, 22, 44]


def test_seed_example_phases(seed_path: Path) -> None:
    phases = load_rules(seed_path).phases()
    assert [[r.id for r in phase] for phase in phases] == [
        ["sequential[0] (sequence 1)"],
        ["sequential[1] (sequence 2)"],
        ["secondary[0]", "secondary[1]"],
    ]


def test_phases_sort_by_sequence_stably_and_share_equal_sequences() -> None:
    rs = rules(
        """
filters:
  sequential:
    - {group: "", sequence: 3, resources: [{kind: Secret}]}
    - {group: "", sequence: 1, resources: [{kind: Namespace}]}
    - {group: "", sequence: 3, resources: [{kind: ConfigMap}]}
  secondary:
    - {group: apps, resources: [{kind: Deployment}]}
"""
    )
    assert [[r.path for r in phase] for phase in rs.phases()] == [
        ["sequential[1]"],
        ["sequential[0]", "sequential[2]"],
        ["secondary[0]"],
    ]


def test_field_names_match_case_insensitively() -> None:
    rs = rules(
        """
Filters:
  SECONDARY:
    - Group: apps
      Resources:
        - KIND: Deployment
          Version: v1
      labelselectors:
        - MatchLabels: {app: web}
      NamespaceSelectors:
        - matchexpressions:
            - {Key: tier, Operator: Exists}
"""
    )
    (rule,) = rs.rules
    assert rule.resources == (ResourceMatcher(group="apps", version="v1", kind="Deployment"),)
    assert rule.label_selectors[0].match_labels == (("app", "web"),)
    assert rule.namespace_selectors[0].match_expressions[0].operator is Operator.EXISTS


def test_resource_group_defaults_to_rule_group_and_missing_resources_mean_any_kind() -> None:
    rs = rules(
        """
filters:
  secondary:
    - group: "*.example.io"
    - group: apps
      resources: [{kind: Deployment, version: v1, pinVersion: true}]
"""
    )
    anykind, deploy = rs.rules
    assert anykind.resources == (ResourceMatcher(group="*.example.io", version=None, kind="*"),)
    assert deploy.resources[0].pin_version is True
    assert rs.resource_matchers() == [anykind.resources[0], deploy.resources[0]]
    assert rs.rules_for("a-b.c.example.io", "Widget") == (anykind,)
    assert rs.rules_for("apps", "deployment") == (deploy,)


def test_opt_in_parses() -> None:
    rs = rules(
        """
optIn:
  - {group: coordination.k8s.io, kind: Lease}
filters:
  secondary:
    - {group: coordination.k8s.io, resources: [{kind: Lease}]}
"""
    )
    assert rs.opted_in("coordination.k8s.io", "Lease")
    assert not rs.opted_in("", "Event")


BAD = [
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}]
      labelSelectors:
        - matchExpressions:
            - key: a
              operator: Inn
              values: [x]
""",
        "rules.yaml:8: filters.secondary[0].labelSelectors[0].matchExpressions[0].operator: "
        "unknown operator 'Inn' (expected In, NotIn, Exists, DoesNotExist)",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resourses: [{kind: Secret}]
""",
        "rules.yaml:4: filters.secondary[0].resourses: unknown field",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources:
        - version: v1
""",
        "rules.yaml:5: filters.secondary[0].resources[0].kind: missing required field",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}]
      labelSelectors:
        - matchExpressions:
            - {key: a, operator: In}
""",
        "rules.yaml:7: filters.secondary[0].labelSelectors[0].matchExpressions[0].values: In needs values",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}]
      labelSelectors:
        - matchExpressions:
            - key: a
              operator: NotIn
              values: []
""",
        "rules.yaml:9: filters.secondary[0].labelSelectors[0].matchExpressions[0].values: NotIn needs values",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}]
      labelSelectors:
        - matchExpressions:
            - key: a
              operator: Exists
              values: [x]
""",
        "rules.yaml:9: filters.secondary[0].labelSelectors[0].matchExpressions[0].values: "
        "Exists takes no values",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: Secret
""",
        "rules.yaml:4: filters.secondary[0].resources: expected a list, got str 'Secret'",
    ),
    (
        """filters:
  sequential:
    - group: ""
      sequence: first
      resources: [{kind: Namespace}]
""",
        "rules.yaml:4: filters.sequential[0].sequence: expected an integer, got str 'first'",
    ),
    (
        """filters:
  secondary:
    - group: ""
      sequence: 2
      resources: [{kind: Namespace}]
""",
        "rules.yaml:4: filters.secondary[0].sequence: only sequential rules have a sequence",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}]
      labelSelectors:
        - matchLabels:
            enabled: true
""",
        "rules.yaml:7: filters.secondary[0].labelSelectors[0].matchLabels.enabled: "
        "expected a string, got bool 'true' (quote it)",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources:
        - kind: Secret
          Kind: Secret
""",
        "rules.yaml:6: filters.secondary[0].resources[0].kind: field given twice",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources:
        - {kind: Deployment, group: apps}
""",
        'rules.yaml:5: filters.secondary[0].resources[0].group: group "apps" is outside the rule\'s group',
    ),
    (
        """filters:
  secondary:
    - group: Apps
""",
        'rules.yaml:3: filters.secondary[0].group: invalid group "Apps"',
    ),
    (
        """filters:
  secondary:
    - group: apps
      resources: [{kind: Deployment, pinVersion: true}]
""",
        "rules.yaml:4: filters.secondary[0].resources[0].pinVersion: pinVersion needs a version",
    ),
    (
        """filters:
  secondary:
    - group: apps
      resources: [{kind: Deployment, version: 1}]
""",
        "rules.yaml:4: filters.secondary[0].resources[0].version: expected a string, got int '1'",
    ),
    (
        """filters:
  secondary:
    - group: apps
      resources: [{kind: Deployment}]
      excludes:
        - {}
""",
        "rules.yaml:6: filters.secondary[0].excludes[0]: an empty exclude would exclude everything",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Pod}]
      fieldSelectors:
        - matchLabels: {"spec..nodeName": x}
""",
        "rules.yaml:6: filters.secondary[0].fieldSelectors[0].matchLabels: "
        "invalid field path 'spec..nodeName'",
    ),
    (
        """filters:
  secondary: []
  sequential: []
""",
        "rules.yaml:2: filters: no rules (sequential and secondary are both empty)",
    ),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: ConfigMap}]
optIn:
  - {group: "", kind: ConfigMap}
  - {group: "", kind: Widget}
""",
        'rules.yaml:7: optIn[1].kind: group "" kind Widget is not deny-listed',
    ),
    (
        """optIn:
  - {group: "", kind: Event}
""",
        "rules.yaml:1: filters: missing required field",
    ),
    (
        """filters:
  tertiary: []
""",
        "rules.yaml:2: filters.tertiary: unknown field (expected one of: sequential, secondary)",
    ),
    ("", "rules.yaml:1: filters: the rule file is empty"),
    ("# only a comment\n", "rules.yaml:1: filters: the rule file is empty"),
    ("- just\n- a list\n", "rules.yaml:1: (top level): expected a mapping"),
    (
        """filters:
  secondary:
    - group: ""
      resources: [{kind: Secret}
""",
        "rules.yaml:5: invalid YAML:",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_errors_are_one_line_naming_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, source="rules.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RulesError, match=r"nope\.yaml: cannot read rule file"):
        load_rules(missing)


def test_load_from_disk_names_the_path_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("filters:\n  secondary:\n    - grup: x\n", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}:3: filters.secondary[0].grup: unknown field")


def test_deploy_example_loads() -> None:
    rs = load_rules(EXAMPLE)
    assert rs.rules
    assert rs.phases()[-1][0].stage == "secondary"
