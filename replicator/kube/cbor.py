"""A minimal CBOR (RFC 8949) reader for custom resources stored as CBOR.

kube-apiserver writes custom resources as CBOR behind an alpha feature gate (``CBORServingAndStorage``),
prefixed by the self-describe tag 55799 (``d9 d9 f7``). What its encoder emits is JSON-shaped:
maps with text keys, arrays, text and byte strings, integers, floats, booleans and null. This
reader turns that into the same Python values ``json.loads`` gives, with byte strings as ``bytes``;
tags are skipped (their content is returned). Indefinite lengths are accepted too. Anything else
(undefined, unknown simple values, reserved additional info) raises ``CBORError``.
"""

from __future__ import annotations

import struct
from typing import Any

_MAX_DEPTH = 256


class CBORError(ValueError):
    """Malformed or unsupported CBOR."""


def loads(data: bytes) -> Any:
    """The single data item in ``data``; trailing bytes are an error."""
    value, pos = _item(data, 0, 0)
    if pos != len(data):
        raise CBORError("trailing bytes after the data item")
    return value


def _head(data: bytes, pos: int) -> tuple[int, int, int | None, int]:
    """(major type, additional info, argument or None for indefinite, next position)."""
    if pos >= len(data):
        raise CBORError("truncated")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise CBORError("truncated")
        return major, info, int.from_bytes(data[pos : pos + size], "big"), pos + size
    if info == 31 and major in (2, 3, 4, 5, 7):
        return major, info, None, pos
    raise CBORError(f"reserved additional information {info}")


def _item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise CBORError("nested too deeply")
    start = pos
    major, info, arg, pos = _head(data, pos)
    if major == 0 and arg is not None:
        return arg, pos
    if major == 1 and arg is not None:
        return -1 - arg, pos
    if major in (2, 3):
        raw, pos = _string(data, pos, major, arg, depth)
        if major == 2:
            return raw, pos
        try:
            return raw.decode(), pos
        except UnicodeDecodeError:
            raise CBORError("text string is not UTF-8") from None
    if major == 4:
        items: list[Any] = []
        while arg is None or len(items) < arg:
            if arg is None and _at_break(data, pos):
                return items, pos + 1
            value, pos = _item(data, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        out: dict[Any, Any] = {}
        count = 0
        while arg is None or count < arg:
            if arg is None and _at_break(data, pos):
                return out, pos + 1
            key, pos = _item(data, pos, depth + 1)
            if isinstance(key, (list, dict)):
                raise CBORError("map key is not a scalar")
            out[key], pos = _item(data, pos, depth + 1)
            count += 1
        return out, pos
    if major == 6:
        return _item(data, pos, depth + 1)  # tags (self-describe, timestamps, ...) are skipped
    if major == 7:
        return _simple(data, start, info, arg)
    raise CBORError(f"unsupported item at offset {start}")


def _at_break(data: bytes, pos: int) -> bool:
    if pos >= len(data):
        raise CBORError("truncated")
    return data[pos] == 0xFF


def _string(data: bytes, pos: int, major: int, arg: int | None, depth: int) -> tuple[bytes, int]:
    if arg is not None:
        if pos + arg > len(data):
            raise CBORError("truncated string")
        return data[pos : pos + arg], pos + arg
    chunks = []
    while not _at_break(data, pos):
        chunk_major, _, chunk_len, pos = _head(data, pos)
        if chunk_major != major or chunk_len is None:
            raise CBORError("bad chunk in indefinite-length string")
        chunk, pos = _string(data, pos, major, chunk_len, depth)
        chunks.append(chunk)
    return b"".join(chunks), pos + 1


def _simple(data: bytes, start: int, info: int, arg: int | None) -> tuple[Any, int]:
    end = start + 1 + {25: 2, 26: 4, 27: 8}.get(info, 1 if info == 24 else 0)
    if info == 20:
        return False, end
    if info == 21:
        return True, end
    if info == 22:
        return None, end
    if info in (25, 26, 27):
        fmt = {25: ">e", 26: ">f", 27: ">d"}[info]
        return struct.unpack(fmt, data[start + 1 : end])[0], end
    raise CBORError(f"unsupported simple value {arg}")
