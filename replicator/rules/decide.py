"""``decide()``: is one object in scope? A pure function that explains itself in one line.

Order: deny-list entries that the key decides, then the rules that name the object's group/kind,
conditions on the key first. Deny-list entries that need the object (a Secret's ``type``, a Pod's
``spec.nodeName``) are checked before any COPY is returned, and before any SKIP once the object has
been decoded anyway, so they always win and name themselves; but an object that no rule could
select by its key alone is never decoded just to be deny-listed.

Semantics (DOMAIN.md §9, and the seed's code where it is deliberate):

- Within one rule every condition must hold: resource, ``namespace``, any ``namespaceSelectors``
  entry (on the namespace's labels), any ``labelSelectors`` entry, any ``fieldSelectors`` entry
  (keys are field paths, values compare as strings). The seed ignored ``namespaceSelectors`` when
  ``namespace`` was set; here both must hold.
- Any matching rule brings the object in. Excludes are **per rule**, as in the seed: an exclude
  removes the object from its own rule only, so another rule may still copy it.
- A Namespace object's "namespace" is itself: ``namespace:`` compares its name and
  ``namespaceSelectors`` read its own labels. Other cluster-scoped objects never satisfy a
  ``namespace`` or ``namespaceSelectors`` condition.
- A namespace whose labels are unknown (``namespace_labels`` returns None) does not match
  ``namespaceSelectors``; the reason says so, so the engine can re-decide once it knows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from replicator.rules import denylist
from replicator.rules.model import Exclude, Rule, RuleSet, any_selector
from replicator.rules.subject import ObjectFacts, Subject

__all__ = ["Action", "Decision", "ObjectFacts", "Subject", "decide"]


class Action(Enum):
    COPY = "copy"
    SKIP = "skip"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    action: Action
    reason: str
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.action.value}: {self.reason}"


class _Memo:
    """Calls the engine's ``facts()`` at most once per decision."""

    def __init__(self, facts: Callable[[], ObjectFacts]) -> None:
        self._facts = facts
        self._value: ObjectFacts | None = None

    @property
    def fetched(self) -> bool:
        return self._value is not None

    def __call__(self) -> ObjectFacts:
        if self._value is None:
            self._value = self._facts()
        return self._value


def _is_namespace(subject: Subject) -> bool:
    return subject.group == "" and subject.kind.lower() == "namespace"


def _own_namespace(subject: Subject) -> str | None:
    return subject.name if _is_namespace(subject) else subject.namespace


def decide(
    subject: Subject,
    rules: RuleSet,
    *,
    facts: Callable[[], ObjectFacts],
    namespace_labels: Callable[[str], Mapping[str, str] | None],
) -> Decision:
    """Decide whether ``subject`` is mirrored under ``rules``. No I/O beyond the two callables."""
    lazy = _Memo(facts)
    opted_in = rules.opted_in(subject.group, subject.kind)
    if not opted_in and (entry := denylist.check_key(subject)) is not None:
        return Decision(action=Action.SKIP, reason=f"deny-listed: {entry.reason}")

    candidates = rules.rules_for(subject.group, subject.kind)
    if not candidates:
        return Decision(action=Action.SKIP, reason=f'no rule for group "{subject.group}" kind {subject.kind}')

    def denied() -> Decision | None:
        if opted_in or (entry := denylist.check_facts(subject, lazy)) is None:
            return None
        return Decision(action=Action.SKIP, reason=f"deny-listed: {entry.reason}")

    failures: list[str] = []
    excluded: tuple[Rule, str] | None = None
    for rule in candidates:
        failure = _rule_failure(rule, subject, lazy, namespace_labels)
        if failure is None:
            exclude_id = _excluded_by(rule, subject, lazy)
            if exclude_id is None:
                return denied() or Decision(action=Action.COPY, reason=f"copied by {rule.id}", rule=rule.id)
            excluded = excluded or (rule, exclude_id)
            failures.append(f"excluded by {exclude_id}")
        else:
            failures.append(f"rule {rule.path}: {failure}")

    if lazy.fetched and (denial := denied()) is not None:
        return denial
    if excluded is not None:
        return Decision(action=Action.SKIP, reason=f"excluded by {excluded[1]}", rule=excluded[0].id)
    if len(failures) == 1:
        return Decision(action=Action.SKIP, reason=failures[0])
    return Decision(action=Action.SKIP, reason="no rule matched: " + "; ".join(failures))


def _rule_failure(
    rule: Rule,
    subject: Subject,
    facts: Callable[[], ObjectFacts],
    namespace_labels: Callable[[str], Mapping[str, str] | None],
) -> str | None:
    """Why ``rule`` does not select ``subject``, or None if it does (excludes aside).

    Conditions the key decides come first so that facts are fetched only when still relevant."""
    namespace = _own_namespace(subject)
    if rule.namespace is not None:
        if namespace is None:
            return f'cluster-scoped object is not in namespace "{rule.namespace}"'
        if namespace != rule.namespace:
            return f'namespace "{namespace}" is not "{rule.namespace}"'

    if rule.namespace_selectors:
        if namespace is None:
            return "cluster-scoped object cannot match namespaceSelectors"
        labels = facts().labels if _is_namespace(subject) else namespace_labels(namespace)
        if labels is None:
            return f'labels of namespace "{namespace}" are unknown, so namespaceSelectors do not match'
        if not any_selector(rule.namespace_selectors, labels.get):
            return f'namespace "{namespace}" labels do not match namespaceSelectors'

    matchers = rule.matchers_for(subject.group, subject.kind)
    if matchers and all(m.pin_version for m in matchers):
        version = facts().version
        if not any(m.matches_version(version) for m in matchers):
            pinned = ", ".join(sorted({m.version or "" for m in matchers}))
            return f"stored version {version} is not the pinned {pinned}"

    if rule.label_selectors and not any_selector(rule.label_selectors, facts().labels.get):
        return "labels do not match labelSelectors"

    if rule.field_selectors and not any_selector(rule.field_selectors, facts().field):
        return "fields do not match fieldSelectors"
    return None


def _exclude_matches(exclude: Exclude, subject: Subject, facts: Callable[[], ObjectFacts]) -> bool:
    resource = exclude.resource
    if resource is not None and not resource.matches_kind(subject.group, subject.kind):
        return False
    if exclude.name is not None and exclude.name != subject.name:
        return False
    if exclude.namespace is not None and exclude.namespace != _own_namespace(subject):
        return False
    if resource is not None and resource.pin_version and not resource.matches_version(facts().version):
        return False
    return any_selector(exclude.label_selectors, lambda key: facts().labels.get(key))


def _excluded_by(rule: Rule, subject: Subject, facts: Callable[[], ObjectFacts]) -> str | None:
    for index, exclude in enumerate(rule.excludes):
        if _exclude_matches(exclude, subject, facts):
            return f"{rule.path}.excludes[{index}]"
    return None


def needs_object(rules: RuleSet, group: str, kind: str) -> bool:
    """Whether deciding ``group``/``kind`` may need the decoded object (rules or deny-list)."""
    if not rules.rules_for(group, kind):
        return False
    if not rules.opted_in(group, kind) and denylist.needs_facts(group, kind):
        return True
    return rules.needs_object(group, kind)
