"""A minimal protobuf wire-format reader, for reading a few fields without a schema.

Works on ``bytes`` with explicit ``(start, end)`` bounds so nested messages are read in place,
without copies. Only what Kubernetes values use: varints, length-delimited fields, and skipping
fixed32/fixed64. Groups (wire types 3/4) are rejected. Errors raise ``WireError``; callers turn it
into a ``DecodeError`` naming the key.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """Malformed protobuf bytes (truncated, bad varint, unsupported wire type)."""


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``."""
    result = 0
    shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint too long")
    raise WireError("truncated varint")


def fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, wire_type, a, b)`` for each field in ``buf[start:end]``.

    For LEN, FIXED32 and FIXED64 fields ``buf[a:b]`` is the payload; for VARINT ``a`` is the value
    and ``b`` is 0.
    """
    pos = start
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == LEN:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = read_varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise WireError("truncated field")
            yield number, wire, pos, stop
            pos = stop
        elif wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire, value, 0
        elif wire in (FIXED64, FIXED32):
            stop = pos + (8 if wire == FIXED64 else 4)
            if stop > end:
                raise WireError("truncated fixed field")
            yield number, wire, pos, stop
            pos = stop
        else:
            raise WireError(f"unsupported wire type {wire}")


def find(buf: bytes, start: int, end: int, number: int) -> tuple[int, int] | None:
    """Bounds (or ``(value, 0)`` for a varint) of the last occurrence of field ``number``."""
    found: tuple[int, int] | None = None
    for n, _wire, a, b in fields(buf, start, end):
        if n == number:
            found = (a, b)
    return found


def string(buf: bytes, a: int, b: int) -> str:
    try:
        return buf[a:b].decode()
    except UnicodeDecodeError:
        raise WireError("string field is not UTF-8") from None


def map_entry(buf: bytes, a: int, b: int) -> tuple[str, str]:
    """Decode one ``map<string, string>`` entry (key = 1, value = 2)."""
    k = v = ""
    for n, wire, x, y in fields(buf, a, b):
        if wire != LEN:
            raise WireError("map entry field is not length-delimited")
        if n == 1:
            k = string(buf, x, y)
        elif n == 2:
            v = string(buf, x, y)
    return k, v


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_len(number: int, payload: bytes) -> bytes:
    """One length-delimited field (used by tests and by value rewriting)."""
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + payload
