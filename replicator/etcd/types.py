"""Plain values the etcd adapter hands to the rest of the replicator.

Everything here is a frozen, slotted dataclass or an enum: protobuf messages never leave
``replicator.etcd``. Keys and values are ``bytes`` (etcd keys are arbitrary bytes; Kubernetes
values are often protobuf). Revisions are plain ``int``; ``0`` means "unset" exactly as in etcd.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypeAlias


@dataclass(frozen=True, slots=True)
class Header:
    """The response header etcd puts on every reply; ``revision`` is the store revision it saw."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, ``kv`` holds only the key and the deletion's ``mod_revision``."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response. ``progress`` is True for a progress notification (no events): it says
    the stream has seen everything up to ``header.revision``."""

    header: Header
    events: tuple[Event, ...]
    compact_revision: int
    progress: bool


@dataclass(frozen=True, slots=True)
class RangePage:
    """One range reply. ``count`` is the number of keys in the whole range, not in this page."""

    header: Header
    kvs: tuple[KeyValue, ...]
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes | None = None
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    range_end: bytes | None = None


TxnOp: TypeAlias = Put | Delete | Get
CompareTarget: TypeAlias = Literal["value", "mod", "create", "version"]
CompareOp: TypeAlias = Literal["=", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """``Compare(b"k", "mod", "=", 0)`` reads "key k does not exist"; ``value`` must be bytes for
    the ``value`` target and int for the others."""

    key: bytes
    target: CompareTarget
    op: CompareOp
    value: bytes | int


# Per executed op: Get -> tuple of KeyValue, Delete -> deleted count, Put -> Header.
TxnResponse: TypeAlias = tuple[KeyValue, ...] | int | Header


@dataclass(frozen=True, slots=True)
class TxnResult:
    """``responses`` line up with the branch that ran (``success`` if ``succeeded``)."""

    succeeded: bool
    header: Header
    responses: tuple[TxnResponse, ...]


@dataclass(frozen=True, slots=True)
class Status:
    header: Header
    version: str
    db_size: int
    leader: int
    raft_index: int


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    name: str
    client_urls: tuple[str, ...]
    peer_urls: tuple[str, ...]


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end).

    Trailing 0xff bytes cannot be incremented, so they are dropped; an empty or all-0xff prefix
    yields ``b"\\0"``, which etcd reads as "to the end of the keyspace".
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"
