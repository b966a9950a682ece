"""One key in, one verdict out: the glue between the key table, the value decoder and the rules.

``Evaluator.evaluate(key, value, lease)`` never does I/O. It parses the key (the catalog drops keys
that are not API objects), asks the rules with a lazy ``facts()`` that decrypts and decodes only
when a rule needs labels or fields, and turns a bad value into a FAIL verdict rather than an
exception: one bad value must not stop the sync.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from replicator.errors import BadValue, DecryptError
from replicator.kube.encryption import EncryptionConfig, is_encrypted
from replicator.kube.resources import KeyInfo, ResourceCatalog, ResourceType, crd_resource_type
from replicator.kube.values import DecodedObject, decode
from replicator.observability import get_logger
from replicator.rules.decide import Action, Subject, decide
from replicator.rules.model import RuleSet

from .transcode import Transcoder

log = get_logger("evaluate")


class Verdict(enum.Enum):
    COPY = "copy"
    SKIP = "skip"
    IGNORE = "ignore"  # not an API object (allocator bitmaps, leases, outside the prefix)
    FAIL = "fail"  # value could not be read; journaled and skipped


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdict: Verdict
    reason: str
    rule: str | None = None
    info: KeyInfo | None = None


class _Facts:
    """What the rules may ask of a decoded object (``replicator.rules.decide.ObjectFacts``)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: DecodedObject) -> None:
        self._obj = obj

    @property
    def version(self) -> str:
        return self._obj.version

    @property
    def labels(self) -> Mapping[str, str]:
        return self._obj.labels  # as the API serves them (read-time defaulting included)

    @property
    def annotations(self) -> Mapping[str, str]:
        return self._obj.meta.annotations

    def field(self, path: str) -> str | None:
        return self._obj.field(path)


class NamespaceIndex:
    """Labels of every source namespace, mirrored or not; kept current by the watch."""

    def __init__(self) -> None:
        self._labels: dict[str, dict[str, str]] = {}

    def get(self, name: str) -> Mapping[str, str] | None:
        return self._labels.get(name)

    def set(self, name: str, labels: Mapping[str, str]) -> bool:
        """Record ``labels``; True when they differ from what was known."""
        new = dict(labels)
        changed = self._labels.get(name) != new
        self._labels[name] = new
        return changed

    def clear(self) -> None:
        self._labels.clear()

    def remove(self, name: str) -> None:
        self._labels.pop(name, None)

    def __len__(self) -> int:
        return len(self._labels)


class Evaluator:
    def __init__(
        self,
        *,
        catalog: ResourceCatalog,
        rules: RuleSet,
        encryption: EncryptionConfig | None,
        namespaces: NamespaceIndex,
        transcoder: Transcoder | None = None,
    ) -> None:
        self.transcoder = transcoder or Transcoder(source=encryption, dest=None)
        self.catalog = catalog
        self.rules = rules
        self.encryption = encryption
        self.namespaces = namespaces
        self.blocked: dict[tuple[str, str], str] = {}
        """(group, kind) -> why the whole kind is skipped this run (decided at start, e.g. Services)."""

    def parse(self, key: bytes) -> KeyInfo | None:
        return self.catalog.parse_key(key)

    def close(self) -> None:
        """Release the encryption configurations' KMS plugin channels."""
        for cfg in (self.encryption, self.transcoder.dest):
            if cfg is not None:
                cfg.close()

    def plain(self, info: KeyInfo, value: bytes) -> bytes:
        """The value decrypted with the source configuration; raises ``BadValue`` subclasses."""
        if not is_encrypted(value):
            return value
        if self.encryption is None:
            raise DecryptError(info.key, "value is encrypted and no --encryption-provider-config was given")
        return self.encryption.decrypt(
            key=info.key, value=value, group=info.resource.group, resource=info.resource.resource
        )

    def read(self, info: KeyInfo, value: bytes) -> DecodedObject:
        """Decrypt (source configuration) and decode; raises ``BadValue`` subclasses."""
        return decode(info.key, self.plain(info, value))

    def add_crd(self, info: KeyInfo, value: bytes) -> ResourceType | None:
        """Learn the custom resource type a CRD defines; a bad CRD leaves its resources unknown."""
        try:
            rt = crd_resource_type(self.plain(info, value), key=info.key)
        except BadValue as exc:
            log.warning("cannot read CustomResourceDefinition: %s", exc.reason, extra={"key": info.key})
            return None
        self.catalog.add(rt)
        return rt

    def evaluate(self, key: bytes, value: bytes, *, lease: int = 0) -> Evaluation:
        info = self.catalog.parse_key(key)
        if info is None:
            return Evaluation(Verdict.IGNORE, "not a Kubernetes object key")
        return self.evaluate_info(info, value, lease=lease)

    def evaluate_info(self, info: KeyInfo, value: bytes, *, lease: int = 0) -> Evaluation:
        if lease:
            return Evaluation(
                Verdict.SKIP, "attached to an etcd lease (would live forever on the standby)", info=info
            )
        blocked = self.blocked.get((info.resource.group, info.resource.kind))
        if blocked is not None:
            return Evaluation(Verdict.SKIP, blocked, info=info)
        cache: list[_Facts] = []

        def facts() -> _Facts:
            if not cache:
                cache.append(_Facts(self.read(info, value)))
            return cache[0]

        rt = info.resource
        subject = Subject(group=rt.group, kind=rt.kind, namespace=info.namespace, name=info.name)
        try:
            decision = decide(subject, self.rules, facts=facts, namespace_labels=self.namespaces.get)
        except BadValue as exc:
            return Evaluation(Verdict.FAIL, exc.reason, info=info)
        verdict = Verdict.COPY if decision.action is Action.COPY else Verdict.SKIP
        return Evaluation(verdict, decision.reason, decision.rule, info)

    def namespace_labels_of(self, info: KeyInfo, value: bytes) -> Mapping[str, str] | None:
        """Labels of a Namespace value, or None when it cannot be read."""
        try:
            return self.read(info, value).meta.labels
        except BadValue:
            return None

    def types_for(self, rules: tuple[object, ...] | None = None) -> list[ResourceType]:
        """Resource types that any of ``rules`` (default: all) may select, in catalog order."""
        wanted = None if rules is None else {id(r) for r in rules}
        out = []
        for rt in self.catalog.types():
            if not rt.kind:
                continue
            matching = self.rules.rules_for(rt.group, rt.kind)
            if matching and (wanted is None or any(id(r) in wanted for r in matching)):
                out.append(rt)
        return out


def is_namespace(info: KeyInfo) -> bool:
    return info.resource.group == "" and info.resource.kind == "Namespace"


def is_crd(info: KeyInfo) -> bool:
    return info.resource.group == "apiextensions.k8s.io" and info.resource.kind == "CustomResourceDefinition"
