"""Shared fakes for the rules tests (pure: no etcd, no value formats)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from replicator.rules import ObjectFacts, RuleSet, parse_rules


@dataclass(frozen=True)
class FakeFacts:
    version: str = "v1"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)

    def field(self, path: str) -> str | None:
        return self.fields.get(path)


class CountingFacts:
    """A ``facts()`` callable that counts its calls."""

    def __init__(self, facts: FakeFacts | None = None) -> None:
        self.facts = facts or FakeFacts()
        self.calls = 0

    def __call__(self) -> ObjectFacts:
        self.calls += 1
        return self.facts


def never_facts() -> ObjectFacts:
    raise AssertionError("facts() must not be called: the key decides")


def ns_labels(table: Mapping[str, Mapping[str, str]]) -> Callable[[str], Mapping[str, str] | None]:
    return table.get


def rules(text: str) -> RuleSet:
    return parse_rules(text, source="rules.yaml")
