"""Which API resource an etcd key belongs to.

The built-in table is generated (``_generated/resources.json``, by ``scripts/gen_k8s_resources.py``)
from Kubernetes' own integration-test data, because built-in paths are irregular (``minions``,
``services/specs``, ``ingress``) and can't be derived from kinds. Custom resources live at
``<prefix>/<group>/<plural>/[<ns>/]<name>``; their kind is known only once their CRD is added
(``with_custom`` / ``crd_resource_type``), before that they parse with ``kind == ""``.

Invariant: a resource path matches a key only up to a ``/``: ``ingress`` never claims
``ingressclasses/...``, ``pods`` never ``podtemplates/...``. Keys that are not API objects
(``ranges/*``, ``masterleases/*``, anything outside the prefix) parse to ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources as _pkg
from typing import Any

from replicator.errors import DecodeError

# Segments right under the prefix that hold allocator state, never API objects.
_NOT_OBJECTS = frozenset({"ranges", "masterleases", "peerserverleases"})  # allocators, apiserver leases


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One API resource: ``group`` is "" for core; ``path`` is the key segment(s) after the prefix."""

    group: str
    resource: str
    kind: str
    path: str
    namespaced: bool

    @property
    def known(self) -> bool:
        """False for a group-qualified path whose CRD the catalog has not seen."""
        return bool(self.kind)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key: str
    resource: ResourceType
    namespace: str | None
    name: str


@cache
def _builtin_table() -> tuple[tuple[ResourceType, ...], tuple[ResourceType, ...], str]:
    """(types that own their path, aliases served elsewhere, Kubernetes version) from the JSON."""
    text = _pkg.files("replicator.kube._generated").joinpath("resources.json").read_text()
    doc = json.loads(text)
    owners: list[ResourceType] = []
    aliases: list[ResourceType] = []
    for row in doc["resources"]:
        rt = ResourceType(
            group=row["group"],
            resource=row["resource"],
            kind=row["kind"],
            path=row["path"],
            namespaced=row["namespaced"],
        )
        stored = row.get("stored_as")
        # events.k8s.io/events is stored as core Events under the same path: the key belongs to core.
        (aliases if stored is not None and stored["group"] != rt.group else owners).append(rt)
    return tuple(owners), tuple(aliases), str(doc["kubernetes_version"])


@cache
def _stored_versions() -> tuple[dict[tuple[str, str], str], str]:
    """((group, kind) -> stored version, release "1.37") from the generated table."""
    text = _pkg.files("replicator.kube._generated").joinpath("resources.json").read_text()
    doc = json.loads(text)
    out: dict[tuple[str, str], str] = {}
    for row in doc["resources"]:
        stored = row.get("stored_as")
        # No stored_as: every served version stores as itself, which data.go allows only for one.
        out[(row["group"], row["kind"])] = stored["version"] if stored else row["versions"][0]["version"]
    major_minor = ".".join(str(doc["kubernetes_version"]).lstrip("v").split(".")[:2])
    return out, major_minor


def stored_version(group: str, kind: str, release: str = "1.37") -> str | None:
    """The version kube-apiserver of ``release`` writes ``group``/``kind`` at (``autoscaling``,
    ``HorizontalPodAutoscaler`` -> ``v2``; core Events served as ``events.k8s.io`` -> ``v1``).

    ``None`` for a kind that is not built in, and for a release other than the one the table was
    generated from: older objects may still hold older versions, so a rule that pins a version
    should be checked against this, not trusted to see every object."""
    table, generated = _stored_versions()
    if release != generated:
        return None
    return table.get((group, kind))


def builtin_kubernetes_version() -> str:
    """The Kubernetes release the built-in table was generated from."""
    return _builtin_table()[2]


class ResourceCatalog:
    """Maps keys to resources. Built once; ``with_custom`` returns a new catalog."""

    __slots__ = ("_by_kind", "_by_path", "_by_resource", "_prefix", "_types")

    def __init__(self, prefix: str = "/registry", *, extra: Iterable[ResourceType] = ()) -> None:
        self._prefix = prefix.rstrip("/") + "/"
        owners, aliases, _ = _builtin_table()
        self._types: tuple[ResourceType, ...] = owners + aliases
        self._by_path: dict[str, ResourceType] = {rt.path: rt for rt in owners}
        self._by_resource: dict[tuple[str, str], ResourceType] = {
            (rt.group, rt.resource): rt for rt in self._types
        }
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for rt in self._types:
            self._by_kind.setdefault((rt.group, rt.kind), rt)
        for rt in extra:
            self.add(rt)

    @property
    def prefix(self) -> str:
        """The key prefix, without its trailing slash."""
        return self._prefix[:-1]

    def types(self) -> tuple[ResourceType, ...]:
        return self._types

    def add(self, rt: ResourceType) -> None:
        """Register a (custom) resource type; it replaces any type at the same group/resource."""
        old = self._by_resource.get((rt.group, rt.resource))
        if old is not None:
            self._types = tuple(t for t in self._types if t is not old)
            if self._by_path.get(old.path) is old:
                del self._by_path[old.path]
            if self._by_kind.get((old.group, old.kind)) is old:
                del self._by_kind[(old.group, old.kind)]
        self._types += (rt,)
        self._by_path[rt.path] = rt
        self._by_resource[(rt.group, rt.resource)] = rt
        self._by_kind[(rt.group, rt.kind)] = rt

    def with_custom(self, types: Iterable[ResourceType]) -> ResourceCatalog:
        builtin = {(rt.group, rt.resource) for rt in ResourceCatalog(self.prefix)._types}
        custom = [rt for rt in self._types if (rt.group, rt.resource) not in builtin]
        return ResourceCatalog(self.prefix, extra=[*custom, *types])

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, kind))

    def by_resource(self, group: str, resource: str) -> ResourceType | None:
        return self._by_resource.get((group, resource))

    def key_prefix(self, rt: ResourceType, namespace: str | None = None) -> str:
        """Prefix of every key of ``rt`` (in ``namespace``), with a trailing slash."""
        base = f"{self._prefix}{rt.path}/"
        if namespace is not None:
            if not rt.namespaced:
                raise ValueError(f"{rt.resource} is cluster-scoped; it has no namespace prefix")
            return f"{base}{namespace}/"
        return base

    def parse_key(self, key: str | bytes) -> KeyInfo | None:
        if isinstance(key, bytes):
            try:
                key = key.decode()
            except UnicodeDecodeError:
                return None
        if not key.startswith(self._prefix):
            return None
        parts = key[len(self._prefix) :].split("/")
        if parts[0] in _NOT_OBJECTS:
            return None
        # Two-segment paths first: "services/specs" must win over a one-segment guess.
        for width in (2, 1):
            if len(parts) <= width:
                continue
            rt = self._by_path.get("/".join(parts[:width]))
            if rt is not None:
                return _info(key, rt, parts[width:])
        if "." in parts[0] and len(parts) in (3, 4):
            # A custom resource whose CRD we have not seen: scope follows from the segment count.
            rt = ResourceType(
                group=parts[0],
                resource=parts[1],
                kind="",
                path=f"{parts[0]}/{parts[1]}",
                namespaced=len(parts) == 4,
            )
            return _info(key, rt, parts[2:])
        return None

    @staticmethod
    def crd_resource_type(value: bytes) -> ResourceType:
        return crd_resource_type(value)


def _info(key: str, rt: ResourceType, rest: list[str]) -> KeyInfo | None:
    if rt.namespaced:
        if len(rest) != 2 or not rest[0] or not rest[1]:
            return None
        return KeyInfo(key=key, resource=rt, namespace=rest[0], name=rest[1])
    if len(rest) != 1 or not rest[0]:
        return None
    return KeyInfo(key=key, resource=rt, namespace=None, name=rest[0])


def crd_resource_type(value: bytes, *, key: str = "CustomResourceDefinition") -> ResourceType:
    """The type of the custom resource a CRD (JSON, v1 or v1beta1) defines."""
    try:
        doc: Any = json.loads(value)
        spec = doc["spec"]
        group, names, scope = spec["group"], spec["names"], spec.get("scope", "Namespaced")
        plural, kind = names["plural"], names["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(key, f"not a CustomResourceDefinition ({type(exc).__name__})") from None
    if not all(isinstance(s, str) and s for s in (group, plural, kind)):
        raise DecodeError(key, "CustomResourceDefinition lacks spec.group or spec.names")
    if scope not in ("Namespaced", "Cluster"):
        raise DecodeError(key, f"CustomResourceDefinition has unknown spec.scope {scope!r}")
    return ResourceType(
        group=group, resource=plural, kind=kind, path=f"{group}/{plural}", namespaced=scope == "Namespaced"
    )
