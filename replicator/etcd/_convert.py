"""Protobuf <-> dataclass conversion; the only module besides the client that sees messages."""

from __future__ import annotations

from replicator.etcd._generated import kv_pb2, rpc_pb2
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
    Status,
    TxnOp,
    TxnResponse,
    TxnResult,
    WatchBatch,
)

_TARGETS = {
    "value": rpc_pb2.Compare.VALUE,
    "mod": rpc_pb2.Compare.MOD,
    "create": rpc_pb2.Compare.CREATE,
    "version": rpc_pb2.Compare.VERSION,
}
_INT_FIELDS = {"mod": "mod_revision", "create": "create_revision", "version": "version"}
_OPS = {
    "=": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}


def header(h: rpc_pb2.ResponseHeader) -> Header:
    return Header(cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term)


def key_value(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(
        key=kv.key,
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )


def event(ev: kv_pb2.Event) -> Event:
    kind = EventType.DELETE if ev.type == kv_pb2.Event.DELETE else EventType.PUT
    prev = key_value(ev.prev_kv) if ev.HasField("prev_kv") else None
    return Event(type=kind, kv=key_value(ev.kv), prev_kv=prev)


def watch_batch(resp: rpc_pb2.WatchResponse) -> WatchBatch:
    events = tuple(event(ev) for ev in resp.events)
    return WatchBatch(
        header=header(resp.header),
        events=events,
        compact_revision=resp.compact_revision,
        progress=not events,
    )


def status(resp: rpc_pb2.StatusResponse) -> Status:
    return Status(
        header=header(resp.header),
        version=resp.version,
        db_size=resp.dbSize,
        leader=resp.leader,
        raft_index=resp.raftIndex,
    )


def member(m: rpc_pb2.Member) -> Member:
    return Member(id=m.ID, name=m.name, client_urls=tuple(m.clientURLs), peer_urls=tuple(m.peerURLs))


def compare(c: Compare) -> rpc_pb2.Compare:
    msg = rpc_pb2.Compare(key=c.key, target=_TARGETS[c.target], result=_OPS[c.op])
    if c.target == "value":
        if not isinstance(c.value, bytes):
            raise TypeError(f"Compare on value needs bytes, got {type(c.value).__name__}")
        msg.value = c.value
    else:
        if not isinstance(c.value, int):
            raise TypeError(f"Compare on {c.target} needs int, got {type(c.value).__name__}")
        setattr(msg, _INT_FIELDS[c.target], c.value)
    return msg


def request_op(op: TxnOp) -> rpc_pb2.RequestOp:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=op.key, value=op.value, lease=op.lease))
    if isinstance(op, Delete):
        return rpc_pb2.RequestOp(
            request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=op.key, range_end=op.range_end or b"", prev_kv=op.prev_kv
            )
        )
    if isinstance(op, Get):
        get = rpc_pb2.RangeRequest(key=op.key, range_end=op.range_end or b"")
        return rpc_pb2.RequestOp(request_range=get)
    raise TypeError(f"not a txn op: {op!r}")


def _response(r: rpc_pb2.ResponseOp) -> TxnResponse:
    which = r.WhichOneof("response")
    if which == "response_range":
        return tuple(key_value(kv) for kv in r.response_range.kvs)
    if which == "response_delete_range":
        return int(r.response_delete_range.deleted)
    if which == "response_put":
        return header(r.response_put.header)
    raise ValueError(f"unexpected txn response {which}")


def txn_result(resp: rpc_pb2.TxnResponse) -> TxnResult:
    return TxnResult(
        succeeded=resp.succeeded,
        header=header(resp.header),
        responses=tuple(_response(r) for r in resp.responses),
    )
