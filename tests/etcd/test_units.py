"""Pure helpers: prefix_end and the gRPC status -> error table."""

from __future__ import annotations

import grpc
import pytest

from replicator.etcd import (
    EtcdCompacted,
    EtcdDuplicateKey,
    EtcdError,
    EtcdFutureRevision,
    EtcdRequestTooLarge,
    EtcdTimeout,
    EtcdTooManyOps,
    EtcdUnavailable,
    prefix_end,
)
from replicator.etcd.config import host_port
from replicator.etcd.errors import EtcdInvalidToken, classify


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/a/", b"/a0"), (b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


C = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        (C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", EtcdCompacted),
        (C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision", EtcdFutureRevision),
        (C.INVALID_ARGUMENT, "etcdserver: request is too large", EtcdRequestTooLarge),
        (C.RESOURCE_EXHAUSTED, "Received message larger than max (5 vs. 4)", EtcdRequestTooLarge),
        (C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request", EtcdTooManyOps),
        (C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request", EtcdDuplicateKey),
        (C.UNAUTHENTICATED, "etcdserver: invalid auth token", EtcdInvalidToken),
        (C.UNAVAILABLE, "etcdserver: no leader", EtcdUnavailable),
        (C.UNAVAILABLE, "etcdserver: request timed out", EtcdTimeout),
        (C.DEADLINE_EXCEEDED, "Deadline Exceeded", EtcdTimeout),
        (C.UNAVAILABLE, "failed to connect to all addresses", EtcdUnavailable),
        (C.INTERNAL, "something odd", EtcdError),
    ],
)
def test_classify(code: grpc.StatusCode, details: str, cls: type[EtcdError]) -> None:
    error = classify(code, details, endpoint="h:1")
    assert type(error) is cls
    assert str(error).startswith("h:1: ")


def test_host_port() -> None:
    assert host_port("https://127.0.0.1:2379") == "127.0.0.1:2379"
    assert host_port("http://[::1]:2379") == "[::1]:2379"
    assert host_port("h:1") == "h:1"
