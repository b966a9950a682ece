"""The etcd adapter: the only package that speaks gRPC.

Public surface: ``EtcdClient``/``ClientConfig`` (client.py), the value types (types.py) and the
``EtcdError`` family (errors.py). ``local.py`` runs throw-away etcd servers for demo and tests.
"""

from replicator.etcd.client import EtcdClient
from replicator.etcd.config import ClientConfig
from replicator.etcd.errors import (
    EtcdAuthError,
    EtcdCompacted,
    EtcdDuplicateKey,
    EtcdError,
    EtcdFutureRevision,
    EtcdNoSpace,
    EtcdPermissionDenied,
    EtcdRequestTooLarge,
    EtcdTimeout,
    EtcdTooManyOps,
    EtcdUnavailable,
    EtcdWatchCanceled,
)
from replicator.etcd.types import (
    Compare,
    Delete,
    Event,
    EventType,
    Get,
    Header,
    KeyValue,
    Member,
    Put,
    RangePage,
    Status,
    TxnResult,
    WatchBatch,
    prefix_end,
)

__all__ = [
    "ClientConfig",
    "Compare",
    "Delete",
    "EtcdAuthError",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdDuplicateKey",
    "EtcdError",
    "EtcdFutureRevision",
    "EtcdNoSpace",
    "EtcdPermissionDenied",
    "EtcdRequestTooLarge",
    "EtcdTimeout",
    "EtcdTooManyOps",
    "EtcdUnavailable",
    "EtcdWatchCanceled",
    "Event",
    "EventType",
    "Get",
    "Header",
    "KeyValue",
    "Member",
    "Put",
    "RangePage",
    "Status",
    "TxnResult",
    "WatchBatch",
    "prefix_end",
]
