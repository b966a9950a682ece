"""Stored values: format detection and decoding for rules.

The replicator copies values byte-for-byte; it decodes only to answer rule questions (name,
labels, fields). A protobuf value is first read with a hand-written wire reader (``protowire``)
that reads the envelope and ObjectMeta and skips the rest, so that metadata questions cost
microseconds; labels and annotations are decoded on first access. Only when ``field()`` asks for a
path the metadata fast path does not answer is the whole object parsed, with the message type
from the generated schema (``schema``), once per object. JSON and CBOR values are parsed whole.

Paths are one syntax for every format: dotted Kubernetes JSON names, bracketed keys for map keys
with dots (``metadata.labels["a.b/c"]``), ``[0]`` (or ``.0``) for list elements and ``[*]`` for
every element (``values()`` only). A known scalar that is absent on a protobuf value reads as its
zero value (``""``, ``"false"``, ``"0"``), as Kubernetes field selectors see it.

Never put value bytes in an error message or a repr: Secret data and annotations hold secrets.
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator.errors import DecodeError
from replicator.kube import cbor, schema
from replicator.kube import protowire as pw

PROTOBUF_MAGIC = b"k8s\x00"
CBOR_MAGIC = b"\xd9\xd9\xf7"
ENCRYPTED_PREFIX = b"k8s:enc:"
_JSON_WS = b" \t\r\n"


class Format(enum.Enum):
    PROTOBUF = "protobuf"
    JSON = "json"
    CBOR = "cbor"
    ENCRYPTED = "encrypted"
    UNKNOWN = "unknown"


def detect_format(value: bytes) -> Format:
    """The format of a stored value, from its first bytes only."""
    if value.startswith(PROTOBUF_MAGIC):
        return Format.PROTOBUF
    if value.startswith(ENCRYPTED_PREFIX):
        return Format.ENCRYPTED
    if value.startswith(CBOR_MAGIC):
        return Format.CBOR
    if value[:1] == b"{" or value.lstrip(_JSON_WS)[:1] == b"{":
        return Format.JSON
    return Format.UNKNOWN


class _LazyStringMap(Mapping[str, str]):
    """A ``map<string,string>`` decoded from protobuf entries on first access."""

    __slots__ = ("_buf", "_decoded", "_key", "_spans")

    def __init__(self, buf: bytes, spans: list[tuple[int, int]], key: str) -> None:
        self._buf = buf
        self._spans = spans
        self._key = key
        self._decoded: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        if self._decoded is None:
            try:
                self._decoded = dict(pw.map_entry(self._buf, a, b) for a, b in self._spans)
            except pw.WireError as exc:
                raise DecodeError(self._key, f"bad metadata map: {exc}") from None
        return self._decoded

    def __getitem__(self, k: str) -> str:
        return self._dict()[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


@dataclass(frozen=True, slots=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    # Annotations may hold a copy of Secret data (last-applied-configuration): keep out of reprs.
    annotations: Mapping[str, str] = field(default_factory=dict, repr=False)
    owner_references: tuple[OwnerReference, ...] = ()
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


_TEMPLATE_LABEL_DEFAULTS = frozenset({("batch", "Job"), ("", "ReplicationController")})


@dataclass(frozen=True, slots=True)
class DecodedObject:
    api_version: str
    kind: str
    meta: ObjectMeta
    format: Format
    key: str = ""
    _buf: bytes = field(default=b"", repr=False, compare=False)
    _obj: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)
    _doc: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    # The fully parsed message, once a field needs it (a one-slot memo on a frozen object).
    _full: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def labels(self) -> Mapping[str, str]:
        """The labels the API serves. For Jobs and ReplicationControllers stored without labels, the
        apiserver's read-time defaulting copies the pod template's labels (SetDefaults_Job,
        SetDefaults_ReplicationController), so rules must see those, as kubectl does."""
        if (self.group, self.kind) not in _TEMPLATE_LABEL_DEFAULTS or self.meta.labels:
            return self.meta.labels
        msg = self.message()
        try:
            return dict(msg.spec.template.metadata.labels) if msg is not None else self.meta.labels
        except AttributeError:
            return self.meta.labels

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.meta.annotations

    def field(self, path: str) -> str | None:
        """The scalar at a path rendered as a string, or ``None`` if unknown, absent or not a scalar.

        A path with ``[*]`` has no single value: ``None`` here, use ``values()``."""
        parts = split_path(path)
        if parts is None or "*" in parts:
            return None
        if len(parts) >= 2 and parts[0] == "metadata":
            known = self._meta_field(parts[1:])
            if known is not _UNSET:
                return known  # type: ignore[return-value]
        found = self._lookup(parts)
        return found[0] if len(found) == 1 else None

    def values(self, path: str) -> tuple[str, ...]:
        """Every scalar a path reaches, ``[*]`` matching each list element or map value."""
        parts = split_path(path)
        if parts is None:
            return ()
        return tuple(v for v in self._lookup(parts) if v is not None)

    def _lookup(self, parts: list[str]) -> list[str | None]:
        if self._doc is not None:
            return [_render(v) for v in _walk(self._doc, parts, 0)]
        msg = self.message()
        return [] if msg is None else schema.lookup(msg, parts)

    def message(self) -> Any:
        """The whole object as its protobuf message (parsed once), or ``None`` for JSON/CBOR values
        and for kinds the generated schema does not know."""
        if self.format is not Format.PROTOBUF:
            return None
        if not self._full:
            try:
                msg = schema.parse(self.api_version, self.kind, self._buf[self._obj[0] : self._obj[1]])
            except ValueError as exc:
                raise DecodeError(self.key, f"bad protobuf: {exc}") from None
            self._full.append(msg)
        return self._full[0]

    def _meta_field(self, rest: list[str]) -> str | object | None:
        m = self.meta
        if len(rest) == 1:
            simple = {"name": m.name, "namespace": m.namespace, "generateName": m.generate_name, "uid": m.uid}
            if rest[0] in simple:
                return simple[rest[0]]
            if rest[0] == "creationTimestamp":
                return m.creation_timestamp
            if rest[0] == "deletionTimestamp":
                return m.deletion_timestamp
        elif len(rest) == 2 and rest[0] in ("labels", "annotations"):
            mapping = self.labels if rest[0] == "labels" else m.annotations
            return mapping.get(rest[1])
        return _UNSET


_UNSET = object()

_BRACKET = re.compile(r'\[("([^"]*)"|\'([^\']*)\'|(\d+|\*))\]')


def split_path(path: str) -> list[str] | None:
    """Split ``a.b["c.d/e"].f[0]`` into ``["a", "b", "c.d/e", "f", "0"]``; ``metadata.labels.<rest>`` keeps
    the rest whole, since label keys contain dots. ``None`` for a malformed path."""
    if path.startswith(("metadata.labels.", "metadata.annotations.")):
        head, _, rest = path.partition(".")[2].partition(".")
        return ["metadata", head, rest] if rest else None
    parts: list[str] = []
    pos = 0
    for m in _BRACKET.finditer(path):
        parts.extend(p for p in path[pos : m.start()].split(".") if p)
        parts.append(next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None))
        pos = m.end()
    tail = path[pos:]
    parts.extend(p for p in tail.split(".") if p)
    if not parts or "[" in tail or "]" in tail:
        return None
    return parts


def _walk(node: Any, parts: list[str], i: int) -> Iterator[Any]:
    """Values at ``parts[i:]`` below a JSON/CBOR node; ``*`` fans out over lists and maps."""
    if i == len(parts):
        yield node
        return
    part = parts[i]
    if isinstance(node, dict):
        if part == "*":
            for k in sorted(node, key=str):
                yield from _walk(node[k], parts, i + 1)
        elif part in node:
            yield from _walk(node[part], parts, i + 1)
    elif isinstance(node, list):
        if part == "*":
            for item in node:
                yield from _walk(item, parts, i + 1)
        elif part.isdigit() and int(part) < len(node):
            yield from _walk(node[int(part)], parts, i + 1)


def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, bytes):
        return schema.render(value)
    return None


def decode(key: str, value: bytes) -> DecodedObject:
    """Decode a plaintext stored value (protobuf envelope, JSON or CBOR) far enough for rules."""
    fmt = detect_format(value)
    if fmt is Format.PROTOBUF:
        return _decode_protobuf(key, value)
    if fmt is Format.JSON:
        return _decode_json(key, value)
    if fmt is Format.CBOR:
        return _decode_cbor(key, value)
    if fmt is Format.ENCRYPTED:
        raise DecodeError(key, "value is encrypted; decrypt it before decoding")
    raise DecodeError(key, "unknown value format")


def _decode_protobuf(key: str, value: bytes) -> DecodedObject:
    buf = bytes(value)
    try:
        return _decode_envelope(key, buf, len(buf))
    except DecodeError:
        # Values captured through text tools (etcdctl output, published test data) can carry
        # one trailing newline after a complete envelope; read them as the apiserver wrote them.
        if not buf.endswith(b"\n"):
            raise
        return _decode_envelope(key, buf, len(buf) - 1)


def _decode_envelope(key: str, buf: bytes, end: int) -> DecodedObject:
    api_version = kind = ""
    raw: tuple[int, int] | None = None
    try:
        for n, wire, a, b in pw.fields(buf, 4, end):
            if n == 1 and wire == pw.LEN:
                for tn, tw, ta, tb in pw.fields(buf, a, b):
                    if tw == pw.LEN and tn == 1:
                        api_version = pw.string(buf, ta, tb)
                    elif tw == pw.LEN and tn == 2:
                        kind = pw.string(buf, ta, tb)
            elif n == 2 and wire == pw.LEN:
                raw = (a, b)
            elif n == 3 and wire == pw.LEN and b > a:
                raise DecodeError(key, "protobuf envelope has an unsupported content encoding")
        if raw is None:
            raise DecodeError(key, "protobuf envelope has no object")
        meta_span = pw.find(buf, raw[0], raw[1], 1)
        meta = _proto_meta(key, buf, meta_span) if meta_span else ObjectMeta(name="")
    except pw.WireError as exc:
        raise DecodeError(key, f"bad protobuf: {exc}") from None
    return DecodedObject(
        api_version=api_version, kind=kind, meta=meta, format=Format.PROTOBUF, key=key, _buf=buf, _obj=raw
    )


def _proto_meta(key: str, buf: bytes, span: tuple[int, int]) -> ObjectMeta:
    strings = {1: "", 2: "", 3: "", 5: ""}
    times: dict[int, str] = {}
    labels: list[tuple[int, int]] = []
    annotations: list[tuple[int, int]] = []
    owners: list[OwnerReference] = []
    for n, wire, a, b in pw.fields(buf, span[0], span[1]):
        if wire != pw.LEN:
            continue
        if n in strings:
            strings[n] = pw.string(buf, a, b)
        elif n == 11:
            labels.append((a, b))
        elif n == 12:
            annotations.append((a, b))
        elif n in (8, 9):
            times[n] = _proto_time(buf, a, b)
        elif n == 13:
            owners.append(_proto_owner(buf, a, b))
    return ObjectMeta(
        name=strings[1],
        generate_name=strings[2],
        namespace=strings[3],
        uid=strings[5],
        labels=_LazyStringMap(buf, labels, key),
        annotations=_LazyStringMap(buf, annotations, key),
        owner_references=tuple(owners),
        creation_timestamp=times.get(8),
        deletion_timestamp=times.get(9),
    )


def _proto_time(buf: bytes, a: int, b: int) -> str:
    seconds = 0
    for n, wire, x, _ in pw.fields(buf, a, b):
        if n == 1 and wire == pw.VARINT:
            seconds = x - (1 << 64) if x >= 1 << 63 else x
    # metav1.Time serialises with second precision in RFC 3339, as Kubernetes' JSON does.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _proto_owner(buf: bytes, a: int, b: int) -> OwnerReference:
    s = {1: "", 3: "", 4: "", 5: ""}
    controller = False
    for n, wire, x, y in pw.fields(buf, a, b):
        if wire == pw.LEN and n in s:
            s[n] = pw.string(buf, x, y)
        elif n == 6 and wire == pw.VARINT:
            controller = bool(x)
    return OwnerReference(api_version=s[5], kind=s[1], name=s[3], uid=s[4], controller=controller)


def _decode_json(key: str, value: bytes) -> DecodedObject:
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(key, f"bad JSON ({type(exc).__name__})") from None
    return _decode_doc(key, doc, Format.JSON)


def _decode_cbor(key: str, value: bytes) -> DecodedObject:
    try:
        doc = cbor.loads(value)
    except cbor.CBORError as exc:
        raise DecodeError(key, f"bad CBOR: {exc}") from None
    return _decode_doc(key, doc, Format.CBOR)


def _decode_doc(key: str, doc: Any, fmt: Format) -> DecodedObject:
    what = fmt.value.upper()
    if not isinstance(doc, dict):
        raise DecodeError(key, f"{what} value is not an object")
    m = doc.get("metadata") or {}
    if not isinstance(m, dict):
        raise DecodeError(key, f"{what} metadata is not an object")
    owners = tuple(
        OwnerReference(
            api_version=str(o.get("apiVersion", "")),
            kind=str(o.get("kind", "")),
            name=str(o.get("name", "")),
            uid=str(o.get("uid", "")),
            controller=o.get("controller") is True,
        )
        for o in m.get("ownerReferences") or ()
        if isinstance(o, dict)
    )
    meta = ObjectMeta(
        name=str(m.get("name", "")),
        generate_name=str(m.get("generateName", "")),
        namespace=str(m.get("namespace", "")),
        uid=str(m.get("uid", "")),
        labels=_str_map(key, m.get("labels"), what),
        annotations=_str_map(key, m.get("annotations"), what),
        owner_references=owners,
        creation_timestamp=m.get("creationTimestamp"),
        deletion_timestamp=m.get("deletionTimestamp"),
    )
    return DecodedObject(
        api_version=str(doc.get("apiVersion", "")),
        kind=str(doc.get("kind", "")),
        meta=meta,
        format=fmt,
        key=key,
        _doc=doc,
    )


def _str_map(key: str, value: Any, what: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise DecodeError(key, f"{what} metadata labels/annotations are not a string map")
    return value
