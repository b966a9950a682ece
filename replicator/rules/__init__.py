"""Rule files (the seed's format), the built-in deny-list and the pure ``decide()``.

Imports only the standard library, PyYAML and ``replicator.errors``: it knows nothing of etcd or
value formats. The engine hands ``decide()`` a ``Subject`` (from the key) and a lazy ``facts()``.
"""

from replicator.rules.decide import Action, Decision, decide, needs_object
from replicator.rules.denylist import DenyEntry, denylist_entries
from replicator.rules.loader import load_rules, parse_rules
from replicator.rules.model import (
    Exclude,
    Operator,
    OptIn,
    Requirement,
    ResourceMatcher,
    Rule,
    RuleSet,
    Selector,
)
from replicator.rules.subject import ObjectFacts, Subject

__all__ = [
    "Action",
    "Decision",
    "DenyEntry",
    "Exclude",
    "ObjectFacts",
    "Operator",
    "OptIn",
    "Requirement",
    "ResourceMatcher",
    "Rule",
    "RuleSet",
    "Selector",
    "Subject",
    "decide",
    "denylist_entries",
    "load_rules",
    "needs_object",
    "parse_rules",
]
