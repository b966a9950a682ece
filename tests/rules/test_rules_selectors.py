"""Selector semantics (DOMAIN.md §9), as properties over arbitrary labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replicator.rules import Operator, Requirement, Selector
from replicator.rules.model import group_matches

keys = st.sampled_from(["a", "b", "c", "x.io/k"])
values = st.sampled_from(["1", "2", "3", ""])
label_maps = st.dictionaries(keys, values, max_size=4)
value_lists = st.lists(values, min_size=1, max_size=3).map(tuple)


@given(labels=label_maps, key=keys, listed=value_lists)
def test_not_in_holds_when_key_absent_or_value_unlisted(
    labels: dict[str, str], key: str, listed: tuple[str, ...]
) -> None:
    req = Requirement(key=key, operator=Operator.NOT_IN, values=listed)
    assert req.holds(labels.get) == (key not in labels or labels[key] not in listed)
    if key not in labels:
        assert req.holds(labels.get)


@given(labels=label_maps, key=keys, listed=value_lists)
def test_in_needs_key_present_and_listed(labels: dict[str, str], key: str, listed: tuple[str, ...]) -> None:
    req = Requirement(key=key, operator=Operator.IN, values=listed)
    assert req.holds(labels.get) == (key in labels and labels[key] in listed)


@given(labels=label_maps, key=keys)
def test_exists_and_does_not_exist_are_presence(labels: dict[str, str], key: str) -> None:
    exists = Requirement(key=key, operator=Operator.EXISTS)
    absent = Requirement(key=key, operator=Operator.DOES_NOT_EXIST)
    assert exists.holds(labels.get) == (key in labels)
    assert absent.holds(labels.get) == (key not in labels)
    assert exists.holds(labels.get) != absent.holds(labels.get)


requirements = st.builds(
    Requirement,
    key=keys,
    operator=st.sampled_from(list(Operator)),
    values=value_lists,
).map(
    lambda r: (
        r if r.operator in (Operator.IN, Operator.NOT_IN) else Requirement(key=r.key, operator=r.operator)
    )
)


@given(
    labels=label_maps,
    match_labels=st.dictionaries(keys, values, max_size=2),
    expressions=st.lists(requirements, max_size=3),
)
def test_match_labels_and_expressions_are_a_conjunction(
    labels: dict[str, str], match_labels: dict[str, str], expressions: list[Requirement]
) -> None:
    selector = Selector(match_labels=tuple(match_labels.items()), match_expressions=tuple(expressions))
    expected = all(labels.get(k) == v for k, v in match_labels.items()) and all(
        r.holds(labels.get) for r in expressions
    )
    assert selector.matches_labels(labels) == expected


@given(labels=label_maps)
def test_empty_selector_matches_everything(labels: dict[str, str]) -> None:
    assert Selector().matches_labels(labels)


segments = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)


@given(prefix=st.lists(segments, min_size=1, max_size=3))
def test_wildcard_group_matches_dotted_and_hyphenated_subdomains(prefix: list[str]) -> None:
    group = ".".join(prefix) + ".example.io"
    assert group_matches("*.example.io", group)
    assert group_matches("*", group)
    assert not group_matches("*.example.io", group + "x")
    assert not group_matches("*.other.io", group)


def test_wildcard_edges() -> None:
    assert group_matches("*", "")
    assert not group_matches("*.example.io", "example.io")
    assert not group_matches("", "apps")
    assert group_matches("", "")
    assert group_matches("apps", "apps")
