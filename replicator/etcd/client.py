"""``EtcdClient``: the asyncio etcd v3 client the replicator uses (grpc.aio, our own stubs).

Why our own: the ``etcd3`` package no longer imports with current protobuf, and ``aetcd`` drops
``revision``/``limit`` on range reads, which a snapshot pinned to a revision cannot live with.
See docs/etcd-client.md.

Failover: the client talks to one endpoint at a time, starting with the first one that answers
at ``connect``. When a call fails with ``EtcdUnavailable`` (refused, no leader, deadline), the
error is raised and the *next* call goes to the next endpoint, round robin. The client itself
never retries: retrying (and the backoff) is the caller's one retry policy. One channel per
endpoint is kept and reused, so failing over and back does not pile up connections; a running
watch stays on the channel it started on and ends with an error if that endpoint dies.

Every unary call carries ``request_timeout`` as its gRPC deadline. Watches carry no deadline
(they live for hours) but the channel's keepalive notices a dead peer, and the ``hasleader``
metadata makes etcd end a watch whose member lost its leader instead of leaving it silent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from replicator.etcd import _convert
from replicator.etcd._generated import rpc_pb2, rpc_pb2_grpc
from replicator.etcd.config import ClientConfig, TlsMaterial, load_tls, make_channel
from replicator.etcd.errors import (
    EtcdCompacted,
    EtcdError,
    EtcdInvalidToken,
    EtcdUnavailable,
    EtcdWatchCanceled,
    translate,
)
from replicator.etcd.types import (
    Compare,
    Header,
    KeyValue,
    Member,
    RangePage,
    Status,
    TxnOp,
    TxnResult,
    WatchBatch,
    prefix_end,
)

__all__ = ["ClientConfig", "EtcdClient"]

T = TypeVar("T")


class _Stubs:
    """The generated service stubs bound to one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)


class EtcdClient:
    """An etcd v3 client; build it with ``await EtcdClient.connect(config)``."""

    def __init__(self, config: ClientConfig, *, tls: TlsMaterial | None, index: int) -> None:
        self._config = config
        self._tls = tls
        self._index = index
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._stubs: dict[int, _Stubs] = {}
        self._token: str | None = None
        self._watch_calls: set[Any] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def connect(cls, config: ClientConfig) -> EtcdClient:
        """Dial the endpoints in order and keep the first that answers within ``dial_timeout``."""
        tls = load_tls(config)  # ConfigError for bad files, before any dialling
        failures: list[str] = []
        for index, endpoint in enumerate(config.endpoints):
            client = cls(config, tls=tls, index=index)
            try:
                channel = client._channel(index)
                await asyncio.wait_for(channel.channel_ready(), config.dial_timeout)
            except (TimeoutError, OSError) as exc:
                failures.append(f"{endpoint} ({type(exc).__name__})")
                await client.close()
                continue
            try:
                if config.username is not None:
                    await client._authenticate()
            except BaseException:
                await client.close()
                raise
            return client
        tried = ", ".join(failures)
        raise EtcdUnavailable(f"no etcd endpoint reachable within {config.dial_timeout}s: {tried}")

    async def close(self) -> None:
        for call in list(self._watch_calls):
            call.cancel()
        channels, self._channels = list(self._channels.values()), {}
        self._stubs.clear()
        for channel in channels:
            await channel.close(grace=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def endpoint(self) -> str:
        """The endpoint the next call goes to."""
        return self._config.endpoints[self._index]

    # ---- plumbing --------------------------------------------------------------------------

    def _channel(self, index: int) -> grpc.aio.Channel:
        if index not in self._channels:
            self._channels[index] = make_channel(self._config, self._config.endpoints[index], self._tls)
            self._stubs[index] = _Stubs(self._channels[index])
        return self._channels[index]

    def _current(self) -> tuple[int, _Stubs]:
        self._channel(self._index)
        return self._index, self._stubs[self._index]

    def _failed(self, index: int, error: EtcdError) -> None:
        if isinstance(error, EtcdUnavailable) and index == self._index:
            self._index = (index + 1) % len(self._config.endpoints)

    def _metadata(self, *, watch: bool = False) -> tuple[tuple[str, str], ...]:
        md: list[tuple[str, str]] = [("token", self._token)] if self._token else []
        if watch:
            md.append(("hasleader", "true"))
        return tuple(md)

    async def _authenticate(self) -> None:
        index, stubs = self._current()
        request = rpc_pb2.AuthenticateRequest(name=self._config.username, password=self._config.password)
        call = stubs.auth.Authenticate(request, timeout=self._config.request_timeout)
        resp = await self._call(index, call)
        self._token = resp.token

    async def _call(self, index: int, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            error = translate(exc, endpoint=self._config.endpoints[index])
        self._failed(index, error)
        raise error

    async def _unary(self, pick: Callable[[_Stubs], Any], request: Any) -> Any:
        """One unary call with deadline and token; re-authenticates once on an invalid token."""
        for attempt in (1, 2):
            index, stubs = self._current()
            call = pick(stubs)(request, timeout=self._config.request_timeout, metadata=self._metadata())
            try:
                return await self._call(index, call)
            except EtcdInvalidToken:
                if attempt == 2 or self._config.username is None:
                    raise
                await self._authenticate()
        raise AssertionError("unreachable")

    # ---- cluster -----------------------------------------------------------------------------

    async def status(self) -> Status:
        """Status of the member this client currently talks to."""
        resp = await self._unary(lambda s: s.maintenance.Status, rpc_pb2.StatusRequest())
        return _convert.status(resp)

    async def member_list(self) -> tuple[Member, ...]:
        resp = await self._unary(lambda s: s.cluster.MemberList, rpc_pb2.MemberListRequest(linearizable=True))
        return tuple(_convert.member(m) for m in resp.members)

    async def cluster_id(self) -> int:
        return (await self.status()).header.cluster_id

    # ---- key-value ---------------------------------------------------------------------------

    async def get(self, key: bytes) -> KeyValue | None:
        page = await self.range(key)
        return page.kvs[0] if page.kvs else None

    async def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangePage:
        """Read ``[key, range_end)`` (just ``key`` if ``range_end`` is None) at ``revision``
        (0 = latest), at most ``limit`` keys (0 = all), in key order."""
        request = rpc_pb2.RangeRequest(
            key=key,
            range_end=range_end or b"",
            revision=revision,
            limit=limit,
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
        )
        try:
            resp = await self._unary(lambda s: s.kv.Range, request)
        except EtcdCompacted as exc:
            raise EtcdCompacted(await self._probe_compact_revision(), str(exc)) from None
        return RangePage(
            header=_convert.header(resp.header),
            kvs=tuple(_convert.key_value(kv) for kv in resp.kvs),
            more=resp.more,
            count=resp.count,
        )

    async def range_pages(
        self, prefix: bytes, *, revision: int = 0, page_size: int = 1000, keys_only: bool = False
    ) -> AsyncGenerator[RangePage, None]:
        """All keys under ``prefix`` in pages of ``page_size``, all read at one revision.

        With ``revision=0`` the first page's header revision pins every later page, so the
        pages form one consistent snapshot (or fail with EtcdCompacted if compaction overtakes
        the walk). Each next page starts at the last key + b"\\0". ``count`` counts the keys
        from the page's start key, not the whole prefix.
        """
        end = prefix_end(prefix)
        key = prefix or b"\0"
        while True:
            page = await self.range(key, end, revision=revision, limit=page_size, keys_only=keys_only)
            revision = revision or page.header.revision
            yield page
            if not page.more or not page.kvs:
                return
            key = page.kvs[-1].key + b"\0"

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> Header:
        resp = await self._unary(lambda s: s.kv.Put, rpc_pb2.PutRequest(key=key, value=value, lease=lease))
        return _convert.header(resp.header)

    async def delete(self, key: bytes, *, prefix: bool = False) -> int:
        """Delete ``key`` (or every key under it with ``prefix=True``); returns the count."""
        request = rpc_pb2.DeleteRangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
        resp = await self._unary(lambda s: s.kv.DeleteRange, request)
        return int(resp.deleted)

    async def txn(
        self, compare: Iterable[Compare], success: Iterable[TxnOp], failure: Iterable[TxnOp] = ()
    ) -> TxnResult:
        request = rpc_pb2.TxnRequest(
            compare=[_convert.compare(c) for c in compare],
            success=[_convert.request_op(op) for op in success],
            failure=[_convert.request_op(op) for op in failure],
        )
        return _convert.txn_result(await self._unary(lambda s: s.kv.Txn, request))

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        """Compact history up to ``revision``; ``physical`` waits until it is applied on disk."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        await self._unary(lambda s: s.kv.Compact, request)

    async def lease_grant(self, ttl: int) -> int:
        resp = await self._unary(lambda s: s.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=ttl))
        return int(resp.ID)

    # ---- watch -------------------------------------------------------------------------------

    async def watch(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = True,
        progress_notify: bool = True,
    ) -> AsyncGenerator[WatchBatch, None]:
        """Changes to ``key`` (or ``[key, range_end)``, or the prefix) from ``start_revision``.

        One gRPC stream per call. Raises EtcdCompacted(compact_revision) when the start revision
        is compacted, EtcdWatchCanceled when the server cancels, EtcdUnavailable when the stream
        breaks. Leaving the ``async for`` (or ``aclose()``) cancels the stream.
        """
        if prefix:
            range_end = prefix_end(key)
        create = rpc_pb2.WatchCreateRequest(
            key=key,
            range_end=range_end or b"",
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
        )
        index, stubs = self._current()
        endpoint = self._config.endpoints[index]
        call = stubs.watch.Watch(metadata=self._metadata(watch=True))
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=create))
            self._watch_calls.add(call)
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise EtcdUnavailable(f"{endpoint}: watch stream ended by the server")
                if resp.compact_revision:
                    raise EtcdCompacted(resp.compact_revision)
                if resp.canceled:
                    reason = resp.cancel_reason or "no reason given"
                    raise EtcdWatchCanceled(f"{endpoint}: watch canceled: {reason}")
                if resp.created:
                    continue
                yield _convert.watch_batch(resp)
        except grpc.aio.AioRpcError as exc:
            error = translate(exc, endpoint=endpoint)
            self._failed(index, error)
            raise error from None
        finally:
            self._watch_calls.discard(call)
            call.cancel()

    async def request_progress(self) -> None:
        """Ask every open watch stream of this client for a progress notification."""
        for call in list(self._watch_calls):
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.write(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    async def _probe_compact_revision(self) -> int:
        """The current compaction point, learnt from a watch at revision 1 (the Range error does
        not carry it). 0 if the probe fails."""
        try:
            async with asyncio.timeout(self._config.request_timeout):
                stream = self.watch(b"\0", start_revision=1, prev_kv=False, progress_notify=False)
                try:
                    async for _ in stream:
                        break
                finally:
                    await stream.aclose()
        except EtcdCompacted as exc:
            return exc.compact_revision
        except (EtcdError, TimeoutError):
            pass
        return 0
