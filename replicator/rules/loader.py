"""Load a rule file in the seed's (etcd-carry's) format into a ``RuleSet``, strictly.

The seed parsed rule files with ghodss/yaml, i.e. Go's encoding/json: field names match
case-insensitively (the seed's own example writes ``Kind:``), and unknown fields were silently
dropped, so a misspelt selector silently widened or emptied a rule. Here field names still match
case-insensitively (which covers every spelling the seed accepted: ``labelSelectors``,
``LabelSelectors``, ``labelselectors``), but unknown fields, wrong types, unknown operators and
the like are errors with one line naming file, line and field.

Differences from the seed, all deliberate: sequential rules accept every secondary field
(the seed ignored ``namespace``, selectors other than ``labelSelectors`` and ``excludes`` there);
``sequence`` in a secondary rule is an error; ``pinVersion`` and the top-level ``optIn`` list are
our extensions. A resource or exclude entry without ``group`` inherits its rule's group, and a
rule without ``group`` is in the core group (the seed's zero value).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from replicator.errors import RulesError
from replicator.rules import denylist
from replicator.rules.model import (
    ANY_KIND,
    Exclude,
    Operator,
    OptIn,
    Requirement,
    ResourceMatcher,
    Rule,
    RuleSet,
    Selector,
    Stage,
    group_matches,
)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"

_GROUP_RE = re.compile(r"^(\*|[a-z0-9*]([a-z0-9.*-]*[a-z0-9*])?)?$")
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION_RE = re.compile(r"^v[0-9]+[a-z0-9]*$")
_FIELD_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")

_RULE_FIELDS = (
    "group",
    "sequence",
    "resources",
    "namespace",
    "namespaceSelectors",
    "labelSelectors",
    "fieldSelectors",
    "excludes",
)
_OPERATORS = ", ".join(op.value for op in Operator)


@dataclass(frozen=True, slots=True)
class _Field:
    key: ScalarNode
    value: Node


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node, path: str, message: str) -> NoReturn:
        where = path or "(top level)"
        raise RulesError(f"{self.source}:{node.start_mark.line + 1}: {where}: {message}")

    # --- generic shapes -----------------------------------------------------------------------

    def fields(self, node: Node, path: str, allowed: tuple[str, ...]) -> dict[str, _Field]:
        """A mapping's fields by canonical name; names match case-insensitively, like the seed."""
        if not isinstance(node, MappingNode):
            self.fail(node, path, f"expected a mapping, got {_describe(node)}")
        canonical = {name.lower(): name for name in allowed}
        found: dict[str, _Field] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag != _STR:
                self.fail(key, path, "field names must be strings")
            name = canonical.get(key.value.lower())
            if name is None:
                expected = ", ".join(allowed)
                self.fail(key, _join(path, key.value), f"unknown field (expected one of: {expected})")
            if name in found:
                self.fail(key, _join(path, name), "field given twice (names are case-insensitive)")
            found[name] = _Field(key, value)
        return found

    def items(self, node: Node, path: str) -> list[Node]:
        """A list; ``null`` (an empty ``key:``) counts as empty, as in the seed."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, SequenceNode):
            self.fail(node, path, f"expected a list, got {_describe(node)}")
        return list(node.value)

    def string(self, node: Node, path: str, *, null_ok: bool = False) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL and null_ok:
            return None
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            hint = " (quote it)" if isinstance(node, ScalarNode) else ""
            self.fail(node, path, f"expected a string, got {_describe(node)}{hint}")
        return str(node.value)

    def optional_string(self, f: dict[str, _Field], name: str, path: str) -> str | None:
        """An optional string field; absent, null and "" all mean "no condition"."""
        if name not in f:
            return None
        return self.string(f[name].value, f"{path}.{name}", null_ok=True) or None

    def required_string(self, node: Node, path: str) -> str:
        value = self.string(node, path)
        assert value is not None
        if not value:
            self.fail(node, path, "must not be empty")
        return value

    def integer(self, node: Node, path: str) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.fail(node, path, f"expected an integer, got {_describe(node)}")
        value = yaml.safe_load(node.value)
        assert isinstance(value, int)
        return value

    def boolean(self, node: Node, path: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.fail(node, path, f"expected true or false, got {_describe(node)}")
        return bool(node.value.lower() in ("true", "yes", "on"))

    def group(self, node: Node, path: str) -> str:
        value = self.string(node, path, null_ok=True) or ""
        if not _GROUP_RE.match(value):
            self.fail(node, path, f'invalid group "{value}" (lower-case DNS name, "" for core, * wildcards)')
        return value

    # --- the rule file ------------------------------------------------------------------------

    def rule_set(self, root: Node | None) -> RuleSet:
        if root is None:
            raise RulesError(f"{self.source}:1: filters: the rule file is empty")
        top = self.fields(root, "", ("filters", "optIn"))
        if "filters" not in top:
            self.fail(root, "filters", "missing required field")
        filters_node = top["filters"].value
        filters = self.fields(filters_node, "filters", ("sequential", "secondary"))
        rules: list[Rule] = []
        for stage in ("sequential", "secondary"):
            if stage in filters:
                path = f"filters.{stage}"
                for index, item in enumerate(self.items(filters[stage].value, path)):
                    rules.append(self.rule(item, f"{path}[{index}]", stage=stage, index=index))
        if not rules:
            self.fail(filters_node, "filters", "no rules (sequential and secondary are both empty)")
        opt_in: tuple[OptIn, ...] = ()
        if "optIn" in top:
            opt_in = tuple(
                self.opt_in(item, f"optIn[{i}]")
                for i, item in enumerate(self.items(top["optIn"].value, "optIn"))
            )
        return RuleSet(rules=tuple(rules), source=self.source, opt_in=opt_in)

    def rule(self, node: Node, path: str, *, stage: Stage, index: int) -> Rule:
        f = self.fields(node, path, _RULE_FIELDS)
        group = self.group(f["group"].value, f"{path}.group") if "group" in f else ""
        sequence: int | None = None
        if stage == "sequential":
            sequence = self.integer(f["sequence"].value, f"{path}.sequence") if "sequence" in f else 0
        elif "sequence" in f:
            self.fail(f["sequence"].key, f"{path}.sequence", "only sequential rules have a sequence")
        resources: tuple[ResourceMatcher, ...] = (
            ResourceMatcher(group=group, version=None, kind=ANY_KIND),  # the seed: no resources, any kind
        )
        if "resources" in f:
            rpath = f"{path}.resources"
            listed = self.items(f["resources"].value, rpath)
            if listed:
                resources = tuple(
                    self.resource(item, f"{rpath}[{i}]", rule_group=group) for i, item in enumerate(listed)
                )
        excludes: tuple[Exclude, ...] = ()
        if "excludes" in f:
            epath = f"{path}.excludes"
            excludes = tuple(
                self.exclude(item, f"{epath}[{i}]", rule_group=group)
                for i, item in enumerate(self.items(f["excludes"].value, epath))
            )
        rule_id = f"{stage}[{index}]" + (f" (sequence {sequence})" if stage == "sequential" else "")
        return Rule(
            id=rule_id,
            stage=stage,
            index=index,
            sequence=sequence,
            group=group,
            resources=resources,
            namespace=self.optional_string(f, "namespace", path),
            namespace_selectors=self.selectors(f, "namespaceSelectors", path, fields=False),
            label_selectors=self.selectors(f, "labelSelectors", path, fields=False),
            field_selectors=self.selectors(f, "fieldSelectors", path, fields=True),
            excludes=excludes,
            line=node.start_mark.line + 1,
        )

    def resource(self, node: Node, path: str, *, rule_group: str) -> ResourceMatcher:
        f = self.fields(node, path, ("group", "version", "kind", "pinVersion"))
        if "kind" not in f:
            self.fail(node, f"{path}.kind", "missing required field")
        kind = self.required_string(f["kind"].value, f"{path}.kind")
        if not _KIND_RE.match(kind):
            self.fail(f["kind"].value, f"{path}.kind", f"invalid kind {kind!r}")
        group = rule_group
        if "group" in f:
            group = self.group(f["group"].value, f"{path}.group")
            if "*" not in group and not group_matches(rule_group, group):
                self.fail(
                    f["group"].value,
                    f"{path}.group",
                    f'group "{group}" is outside the rule\'s group "{rule_group}", so it could never match',
                )
        version = self.string(f["version"].value, f"{path}.version", null_ok=True) if "version" in f else None
        if version is not None and not _VERSION_RE.match(version):
            self.fail(
                f["version"].value, f"{path}.version", f"invalid version {version!r} (e.g. v1, v1beta1)"
            )
        pin = self.boolean(f["pinVersion"].value, f"{path}.pinVersion") if "pinVersion" in f else False
        if pin and version is None:
            self.fail(f["pinVersion"].key, f"{path}.pinVersion", "pinVersion needs a version")
        return ResourceMatcher(group=group, version=version or None, kind=kind, pin_version=pin)

    def exclude(self, node: Node, path: str, *, rule_group: str) -> Exclude:
        f = self.fields(node, path, ("resource", "name", "namespace", "labelSelectors"))
        resource = (
            self.resource(f["resource"].value, f"{path}.resource", rule_group=rule_group)
            if "resource" in f
            else None
        )
        name = self.optional_string(f, "name", path)
        namespace = self.optional_string(f, "namespace", path)
        selectors = self.selectors(f, "labelSelectors", path, fields=False)
        if resource is None and not name and not namespace and not selectors:
            self.fail(node, path, "an empty exclude would exclude everything the rule selects")
        return Exclude(
            resource=resource,
            name=name,
            namespace=namespace,
            label_selectors=selectors,
            line=node.start_mark.line + 1,
        )

    def selectors(self, f: dict[str, _Field], name: str, path: str, *, fields: bool) -> tuple[Selector, ...]:
        if name not in f:
            return ()
        spath = f"{path}.{name}"
        return tuple(
            self.selector(item, f"{spath}[{i}]", fields=fields)
            for i, item in enumerate(self.items(f[name].value, spath))
        )

    def selector(self, node: Node, path: str, *, fields: bool) -> Selector:
        f = self.fields(node, path, ("matchLabels", "matchExpressions"))
        labels: list[tuple[str, str]] = []
        if "matchLabels" in f:
            lnode = f["matchLabels"].value
            lpath = f"{path}.matchLabels"
            if not (isinstance(lnode, ScalarNode) and lnode.tag == _NULL):
                if not isinstance(lnode, MappingNode):
                    self.fail(lnode, lpath, f"expected a mapping, got {_describe(lnode)}")
                for knode, vnode in lnode.value:
                    key = self.key(knode, lpath, fields=fields)
                    value = self.string(vnode, f"{lpath}.{key}")
                    assert value is not None
                    labels.append((key, value))
        expressions: list[Requirement] = []
        if "matchExpressions" in f:
            epath = f"{path}.matchExpressions"
            for i, item in enumerate(self.items(f["matchExpressions"].value, epath)):
                expressions.append(self.requirement(item, f"{epath}[{i}]", fields=fields))
        return Selector(match_labels=tuple(labels), match_expressions=tuple(expressions))

    def key(self, node: Node, path: str, *, fields: bool) -> str:
        key = self.required_string(node, path)
        if fields and not _FIELD_PATH_RE.match(key):
            self.fail(node, path, f"invalid field path {key!r} (e.g. type, spec.nodeName)")
        return key

    def requirement(self, node: Node, path: str, *, fields: bool) -> Requirement:
        f = self.fields(node, path, ("key", "operator", "values"))
        for required in ("key", "operator"):
            if required not in f:
                self.fail(node, f"{path}.{required}", "missing required field")
        key = self.key(f["key"].value, f"{path}.key", fields=fields)
        op_text = self.required_string(f["operator"].value, f"{path}.operator")
        try:
            operator = Operator(op_text)
        except ValueError:
            self.fail(
                f["operator"].value,
                f"{path}.operator",
                f"unknown operator {op_text!r} (expected {_OPERATORS})",
            )
        values: list[str] = []
        if "values" in f:
            vpath = f"{path}.values"
            for i, item in enumerate(self.items(f["values"].value, vpath)):
                value = self.string(item, f"{vpath}[{i}]")
                assert value is not None
                values.append(value)
        if operator in (Operator.IN, Operator.NOT_IN) and not values:
            self.fail(
                f["values"].key if "values" in f else node, f"{path}.values", f"{operator.value} needs values"
            )
        if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            self.fail(f["values"].key, f"{path}.values", f"{operator.value} takes no values")
        return Requirement(key=key, operator=operator, values=tuple(values))

    def opt_in(self, node: Node, path: str) -> OptIn:
        f = self.fields(node, path, ("group", "kind"))
        if "kind" not in f:
            self.fail(node, f"{path}.kind", "missing required field")
        group = self.group(f["group"].value, f"{path}.group") if "group" in f else ""
        if "*" in group:
            self.fail(f["group"].value, f"{path}.group", "optIn names one group exactly (no wildcards)")
        kind = self.required_string(f["kind"].value, f"{path}.kind")
        if not denylist.is_denylisted_kind(group, kind):
            self.fail(f["kind"].value, f"{path}.kind", f'group "{group}" kind {kind} is not deny-listed')
        return OptIn(group=group, kind=kind, line=node.start_mark.line + 1)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return "nothing"
    return f"{node.tag.rsplit(':', 1)[-1]} {node.value!r}"


def parse_rules(text: str, *, source: str) -> RuleSet:
    """Parse a rule file's text; ``source`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: invalid YAML: {exc}") from None
    return _Parser(source).rule_set(root)


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read and parse a rule file."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise RulesError(f"{source}: cannot read rule file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{source}: rule file is not UTF-8 text") from None
    return parse_rules(text, source=source)
