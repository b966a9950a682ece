"""The rule model: what a rule file says, as frozen values, with the matching primitives.

Design notes:

- **Versions.** The seed names a version in every resource entry and compares it exactly. But
  Kubernetes keeps one resource at several stored versions at once (old objects keep the version
  they were written with), so a version-exact rule silently misses objects. Here a resource entry
  matches by group + kind at ANY stored version; ``pinVersion: true`` in the entry (our extension)
  makes its version binding, and only then does deciding need the decoded object.
- **Kinds** match case-insensitively: Kubernetes never has two kinds in one group that differ only
  in case, and ``configmap`` for ``ConfigMap`` is a typo, not a different resource.
- **Groups** are ``""`` for core. ``*`` matches every group, core included; a pattern such as
  ``*.example.io`` matches any non-empty run of DNS characters (letters, digits, ``.`` and ``-``)
  in place of ``*``, so ``a.example.io`` and ``a-b.c.example.io`` both match (the seed's pattern
  matched neither hyphens nor dots).
- **A rule without resources** selects every kind of its group (as in the seed); it is represented
  by one matcher of kind ``*``.
- **Selectors** follow Kubernetes: ``matchLabels`` and every ``matchExpressions`` entry must all
  hold; ``NotIn`` holds when the key is absent; an empty selector matches everything. A list of
  selectors matches when any entry does, and an empty list is no condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

ANY_KIND = "*"

Stage = Literal["sequential", "secondary"]


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


def _group_regex(pattern: str) -> re.Pattern[str] | None:
    if "*" not in pattern:
        return None
    parts = [re.escape(p) for p in pattern.lower().split("*")]
    return re.compile("[a-z0-9.-]+".join(parts) if pattern != "*" else ".*")


def group_matches(pattern: str, group: str) -> bool:
    """Whether a rule's group (``""``, ``apps``, ``*``, ``*.example.io``) covers ``group``."""
    regex = _group_regex(pattern)
    if regex is None:
        return pattern.lower() == group.lower()
    return regex.fullmatch(group.lower()) is not None


def _version_only(version: str) -> str:
    return version.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceMatcher:
    """One ``resources`` entry: a group (pattern), an optional version and a kind (or ``*``)."""

    group: str
    version: str | None
    kind: str
    pin_version: bool = False

    def matches_kind(self, group: str, kind: str) -> bool:
        """Match on what the key tells; a pinned version still has to be checked on the object."""
        if self.kind != ANY_KIND and self.kind.lower() != kind.lower():
            return False
        return group_matches(self.group, group)

    def matches_version(self, version: str) -> bool:
        if not self.pin_version or self.version is None:
            return True
        return _version_only(version) == self.version

    def __str__(self) -> str:
        group = self.group or "core"
        version = f"/{self.version}" if self.version else ""
        pin = " (pinned)" if self.pin_version else ""
        return f"{group}{version} {self.kind}{pin}"


Lookup = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def holds(self, lookup: Lookup) -> bool:
        value = lookup(self.key)
        if self.operator is Operator.IN:
            return value is not None and value in self.values
        if self.operator is Operator.NOT_IN:
            return value is None or value not in self.values
        if self.operator is Operator.EXISTS:
            return value is not None
        return value is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """A Kubernetes label selector; for ``fieldSelectors`` its keys are field paths."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, lookup: Lookup) -> bool:
        for key, wanted in self.match_labels:
            if lookup(key) != wanted:
                return False
        return all(req.holds(lookup) for req in self.match_expressions)

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.matches(labels.get)

    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.match_labels) + tuple(r.key for r in self.match_expressions)


def any_selector(selectors: tuple[Selector, ...], lookup: Lookup) -> bool:
    """An empty list is no condition; otherwise any entry must match."""
    return not selectors or any(s.matches(lookup) for s in selectors)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exclude:
    """Takes objects out of the rule it belongs to. Every given condition must hold.

    ``resource`` None means any resource the rule selects (the seed's exclude without a resource
    never matched anything, which reads as a bug). ``name`` alone matches that name in every
    namespace, as in the seed.
    """

    resource: ResourceMatcher | None = None
    name: str | None = None
    namespace: str | None = None
    label_selectors: tuple[Selector, ...] = ()
    line: int = 0

    @property
    def needs_object(self) -> bool:
        return bool(self.label_selectors) or (self.resource is not None and self.resource.pin_version)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One entry of ``filters.sequential`` or ``filters.secondary``; all conditions must hold."""

    id: str
    stage: Stage
    index: int
    sequence: int | None
    group: str
    resources: tuple[ResourceMatcher, ...]
    namespace: str | None = None
    namespace_selectors: tuple[Selector, ...] = ()
    label_selectors: tuple[Selector, ...] = ()
    field_selectors: tuple[Selector, ...] = ()
    excludes: tuple[Exclude, ...] = ()
    line: int = 0

    @property
    def path(self) -> str:
        """Where the rule sits in the file, e.g. ``secondary[1]`` (``id`` adds the sequence)."""
        return f"{self.stage}[{self.index}]"

    def matchers_for(self, group: str, kind: str) -> tuple[ResourceMatcher, ...]:
        if not group_matches(self.group, group):
            return ()
        return tuple(m for m in self.resources if m.matches_kind(group, kind))

    def needs_object(self, group: str, kind: str) -> bool:
        """Whether deciding this rule for ``group``/``kind`` needs more than the key."""
        if self.label_selectors or self.field_selectors:
            return True
        matchers = self.matchers_for(group, kind)
        if matchers and all(m.pin_version for m in matchers):
            return True
        if self.namespace_selectors and group == "" and kind.lower() == "namespace":
            return True  # a Namespace is judged by its own labels
        return any(
            e.needs_object
            for e in self.excludes
            if e.resource is None or e.resource.matches_kind(group, kind)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OptIn:
    """An explicit ``optIn`` entry: re-enables one deny-listed group/kind."""

    group: str
    kind: str
    line: int = 0

    def covers(self, group: str, kind: str) -> bool:
        return self.group == group and self.kind.lower() == kind.lower()


@dataclass(frozen=True, kw_only=True)
class RuleSet:
    """A loaded rule file. Lookups by group/kind are cached: the engine asks once per key."""

    rules: tuple[Rule, ...]
    source: str
    opt_in: tuple[OptIn, ...] = ()
    _cache: dict[tuple[str, str], tuple[Rule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def _in_phase_order(self) -> list[Rule]:
        return [rule for phase in self.phases() for rule in phase]

    def phases(self) -> list[tuple[Rule, ...]]:
        """Sequential rules by ``sequence`` (stable; equal sequences share a phase), then one phase
        holding every secondary rule. The seed ran sequential rules in file order; ordering by
        ``sequence`` is what the field promises."""
        sequential = sorted((r for r in self.rules if r.stage == "sequential"), key=lambda r: r.sequence or 0)
        phases: list[tuple[Rule, ...]] = []
        current: list[Rule] = []
        for rule in sequential:
            if current and current[0].sequence != rule.sequence:
                phases.append(tuple(current))
                current = []
            current.append(rule)
        if current:
            phases.append(tuple(current))
        secondary = tuple(r for r in self.rules if r.stage == "secondary")
        if secondary:
            phases.append(secondary)
        return phases

    def resource_matchers(self) -> list[ResourceMatcher]:
        """Every distinct resource the rules name, in file order (kind ``*``: a whole group)."""
        seen: dict[ResourceMatcher, None] = {}
        for rule in self.rules:
            for matcher in rule.resources:
                seen.setdefault(matcher, None)
        return list(seen)

    def rules_for(self, group: str, kind: str) -> tuple[Rule, ...]:
        """The rules whose group and resources cover ``group``/``kind`` (key-level candidates),
        in phase order, so a decision names the earliest phase that copies the object."""
        cache_key = (group.lower(), kind.lower())
        found = self._cache.get(cache_key)
        if found is None:
            found = tuple(r for r in self._in_phase_order() if r.matchers_for(group, kind))
            self._cache[cache_key] = found
        return found

    def opted_in(self, group: str, kind: str) -> bool:
        return any(o.covers(group, kind) for o in self.opt_in)

    def field_paths(self, group: str, kind: str) -> frozenset[str]:
        """Field paths the candidate rules' ``fieldSelectors`` read for this kind."""
        rules = self.rules_for(group, kind)
        return frozenset(key for rule in rules for sel in rule.field_selectors for key in sel.key_names())

    def field_paths_needed(self, group: str, kind: str) -> bool:
        """Whether the candidate rules read fields beyond metadata (so the full type must decode)."""
        return bool(self.field_paths(group, kind))

    def needs_object(self, group: str, kind: str) -> bool:
        """Whether the rules for this kind need the decoded object (labels, fields, version).

        The deny-list may need it too; ``denylist.needs_object`` answers for both."""
        return any(rule.needs_object(group, kind) for rule in self.rules_for(group, kind))
