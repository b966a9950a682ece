"""What ``decide()`` is asked about: a key's identity and, lazily, the object's facts.

``Subject`` is what the key alone tells (group, kind, namespace, name). ``ObjectFacts`` is what
only the decoded value tells; the engine hands it over behind a callable so that objects whose key
decides them are never decoded (nor decrypted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Subject:
    """One object as its etcd key names it. ``group`` is ``""`` for the core group."""

    group: str
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace is not None else self.name
        group = self.group or "core"
        return f"{group} {self.kind} {where}"


class ObjectFacts(Protocol):
    """The parts of a decoded object that rules may look at."""

    @property
    def version(self) -> str:
        """The stored API version, e.g. ``v1`` (a ``group/v1`` form is tolerated)."""
        ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    def field(self, path: str) -> str | None:
        """The value at a dotted path (``type``, ``spec.nodeName``) as a string, or None if absent."""
        ...
