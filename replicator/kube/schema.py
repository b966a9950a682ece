"""Full decoding of built-in kinds, from the descriptor set generated out of k8s.io/api.

``_generated/k8s-descriptors.binpb`` (``scripts/gen_k8s_descriptors.py``) holds every
``generated.proto`` of the pinned Kubernetes release; ``k8s-descriptors.json`` beside it maps each
proto package to its API group and lists the inline (embedded) struct fields. Both are loaded once,
on first use, into a private ``DescriptorPool``: a process that never looks past metadata never
pays for it. Message classes come from ``message_factory.GetMessageClass``; with protobuf >= 4 the
upb C implementation backs them (``implementation()`` says which one is active).

Paths use Kubernetes JSON names, which in these protos are the proto field names
(``spec.nodeName``). Inline Go structs have a proto field but no JSON level, so a name not found
on a message is looked up through its inline fields (``volumes[0].secret`` finds
``volumes[0].volumeSource.secret``). Absent scalars read as their zero value, as Kubernetes field
selectors see them; an absent or zero Time, or an absent Quantity or IntOrString, reads as ``None``
(JSON ``null``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources as _pkg
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_TIME, _MICRO_TIME, _DURATION = _META + "Time", _META + "MicroTime", _META + "Duration"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"


@dataclass(frozen=True, slots=True)
class _Schema:
    pool: descriptor_pool.DescriptorPool
    types: dict[tuple[str, str, str], str]  # (group, version, kind) -> message full name
    inline: frozenset[str]  # "<message full name>.<field>"
    version: str


@cache
def _schema() -> _Schema:
    files = _pkg.files("replicator.kube._generated")
    fds = descriptor_pb2.FileDescriptorSet.FromString(files.joinpath("k8s-descriptors.binpb").read_bytes())
    side = json.loads(files.joinpath("k8s-descriptors.json").read_text())
    pool = descriptor_pool.DescriptorPool()
    groups: dict[str, str] = side["groups"]
    types: dict[tuple[str, str, str], str] = {}
    for f in fds.file:
        pool.Add(f)
        group = groups.get(f.package)
        if group is None or group == "meta.k8s.io":
            continue
        version = f.package.rpartition(".")[2]
        for m in f.message_type:
            types[(group, version, m.name)] = f"{f.package}.{m.name}"
    return _Schema(pool=pool, types=types, inline=frozenset(side["inline"]), version=side["version"])


def implementation() -> str:
    """The protobuf runtime in use: ``upb`` (C, the default), ``cpp`` or ``python``."""
    return api_implementation.Type()


def schema_version() -> str:
    """The k8s.io/api module version the descriptors were generated from."""
    return _schema().version


def message_name(api_version: str, kind: str) -> str | None:
    """Full proto message name for a stored ``apiVersion``/``kind``, or ``None`` if not built in."""
    group, _, version = api_version.rpartition("/")
    return _schema().types.get((group, version, kind))


@cache
def _message_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(_schema().pool.FindMessageTypeByName(full_name))


def message_class(api_version: str, kind: str) -> type[Message] | None:
    name = message_name(api_version, kind)
    return None if name is None else _message_class(name)


def parse(api_version: str, kind: str, raw: bytes) -> Message | None:
    """The object's message, or ``None`` for a type the schema does not know.

    Raises ``ValueError`` (never the library's error type) for bytes that do not parse."""
    cls = message_class(api_version, kind)
    if cls is None:
        return None
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except ProtoDecodeError:
        raise ValueError(f"bytes do not parse as {kind}") from None
    return msg


def lookup(msg: Message, parts: list[str]) -> list[str | None]:
    """Rendered values at ``parts`` below ``msg``; ``*`` matches every list element or map value.

    An empty list means the path does not exist (unknown field, index out of range, missing key)."""
    return [render(v) for v in _walk(msg, parts, 0)]


def _walk(node: Any, parts: list[str], i: int) -> Iterator[Any]:
    if i == len(parts):
        yield node
        return
    part = parts[i]
    if isinstance(node, Message):
        desc = node.DESCRIPTOR
        if desc.full_name in _LEAVES:
            return
        found = _field(desc, part)
        if found is None:
            return
        path, f = found
        for step in path:
            node = getattr(node, step.name)
        leaf = f.message_type is not None and not f.is_repeated and f.message_type.full_name in _LEAVES
        if leaf and not node.HasField(f.name):
            yield from (None,) if i + 1 == len(parts) else ()
            return
        yield from _walk(getattr(node, f.name), parts, i + 1)
    elif hasattr(node, "keys"):  # map container
        if part == "*":
            for k in sorted(node.keys()):
                yield from _walk(node[k], parts, i + 1)
        elif part in node:
            yield from _walk(node[part], parts, i + 1)
    elif isinstance(node, (str, bytes)):
        return
    elif hasattr(node, "__len__"):  # repeated container
        if part == "*":
            for item in node:
                yield from _walk(item, parts, i + 1)
        elif part.isdigit() and int(part) < len(node):
            yield from _walk(node[int(part)], parts, i + 1)


@cache
def _field(desc: Descriptor, name: str) -> tuple[tuple[FieldDescriptor, ...], FieldDescriptor] | None:
    """(inline fields to step through, the field) for a JSON name on ``desc``."""
    f = desc.fields_by_name.get(name) or next((x for x in desc.fields if x.json_name == name), None)
    if f is not None:
        return (), f
    for inline in desc.fields:
        if f"{desc.full_name}.{inline.name}" in _schema().inline and inline.message_type is not None:
            below = _field(inline.message_type, name)
            if below is not None:
                return (inline, *below[0]), below[1]
    return None


def render(value: Any) -> str | None:
    """A scalar (or Time / Quantity / IntOrString) as Kubernetes JSON shows it; other values ``None``."""
    if isinstance(value, Message):
        renderer = _LEAVES.get(value.DESCRIPTOR.full_name)
        return renderer(value) if renderer is not None else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None


def _time(m: Any) -> str | None:
    if m.seconds == 0 and m.nanos == 0:
        return None  # metav1.Time's zero value (its proto form is {0, 0}); JSON shows null
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.seconds))


def _micro_time(m: Any) -> str | None:
    if m.seconds == 0 and m.nanos == 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(m.seconds)) + f".{m.nanos // 1000:06d}Z"


def _int_or_string(m: Any) -> str:
    return str(m.intVal) if m.type == 0 else str(m.strVal)


def _duration(m: Any) -> str:
    """Go's ``time.Duration.String()`` for whole units (``1h2m3s``, ``500ms``, ``0s``)."""
    ns = int(m.duration)
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{ns / size:g}{unit}"
    h, rest = divmod(ns, 3600 * 10**9)
    mnt, rest = divmod(rest, 60 * 10**9)
    secs = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".")
    return sign + (f"{h}h" if h else "") + (f"{mnt}m" if h or mnt else "") + f"{secs}s"


_LEAVES: dict[str, Callable[[Any], str | None]] = {
    _TIME: _time,
    _MICRO_TIME: _micro_time,
    _DURATION: _duration,
    _QUANTITY: lambda m: str(m.string),
    _INT_OR_STRING: _int_or_string,
}
