"""A TCP proxy on 127.0.0.1 that a test controls: forward, cut, delay, one-way, heal.

It runs its own asyncio loop on a daemon thread, so synchronous tests (and a replicator running
as a subprocess) can use it; every control method waits for the change to take effect.

Modes:

- ``forward``: bytes pass both ways.
- ``cut()``: every open connection is reset and the listening socket is closed, so new
  connections are refused (what a client sees when the server's host is down).
- ``delay(seconds)``: every chunk is delivered ``seconds`` after it was read, in order, in both
  directions (latency, not throughput loss). ``throttle(bytes_per_s)`` caps throughput.
- ``one_way(pass_="c2s"|"s2c")``: one direction flows, the other is *held*: the proxy stops
  reading it, so the sender's buffers fill and its peer hears nothing, as in a real asymmetric
  partition. Held bytes are delivered after ``heal()`` (TCP would retransmit them), so streams
  are never corrupted. ``blackhole()`` holds both directions on open connections and accepts new
  ones that then hang (a silent network rather than a refused port).
- ``heal()``: back to ``forward``; re-opens the listener after a cut.

The listening port stays the same across cuts, so the replicator's endpoint never changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

_CHUNK = 65536
_CONTROL_TIMEOUT = 10.0


@dataclass
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Proxy:
    def __init__(self, target_port: int, *, listen_port: int = 0, name: str = "proxy") -> None:
        self.name = name
        self.target = ("127.0.0.1", target_port)
        self.listen_port = listen_port or _free_port()
        self.bytes = {"c2s": 0, "s2c": 0}
        self.accepted = 0
        self._delay = 0.0
        self._rate = 0.0  # bytes per second per direction and connection; 0 = unlimited
        self._gates: dict[str, asyncio.Event] = {}
        self._conns: list[_Conn] = []
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-loop", daemon=True)
        self._thread.start()
        self._call(self._init())

    # -- public control, callable from any thread ----------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def cut(self) -> None:
        self._call(self._cut())

    def heal(self) -> None:
        self._call(self._heal())

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def throttle(self, bytes_per_s: float) -> None:
        self._rate = bytes_per_s

    def one_way(self, *, pass_: str) -> None:
        """Let ``pass_`` ("c2s" or "s2c") flow; hold the other direction."""
        if pass_ not in ("c2s", "s2c"):
            raise ValueError(pass_)
        held = "s2c" if pass_ == "c2s" else "c2s"
        self._call(self._set_gates({pass_: True, held: False}))

    def blackhole(self) -> None:
        self._call(self._set_gates({"c2s": False, "s2c": False}))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CONTROL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loop side ------------------------------------------------------------------------------

    def _call(self, coro: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        fut.result(timeout=_CONTROL_TIMEOUT)

    async def _init(self) -> None:
        self._gates = {"c2s": asyncio.Event(), "s2c": asyncio.Event()}
        for gate in self._gates.values():
            gate.set()
        self._conns = []
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.listen_port, reuse_address=True
            )

    async def _set_gates(self, states: dict[str, bool]) -> None:
        for direction, open_ in states.items():
            if open_:
                self._gates[direction].set()
            else:
                self._gates[direction].clear()

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        conns, self._conns = list(self._conns), []
        for conn in conns:
            for w in (conn.client, conn.server):
                w.transport.abort()
            for t in conn.tasks:
                t.cancel()
        for conn in conns:
            await asyncio.gather(*conn.tasks, return_exceptions=True)

    async def _heal(self) -> None:
        self._delay = 0.0
        self._rate = 0.0
        await self._set_gates({"c2s": True, "s2c": True})
        await self._listen()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            s_reader, s_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5.0)
        except (OSError, TimeoutError):
            c_writer.transport.abort()  # target down: the client sees a reset, like a refused port
            return
        conn = _Conn(client=c_writer, server=s_writer)
        conn.tasks = [
            asyncio.create_task(self._pump(c_reader, s_writer, "c2s", conn)),
            asyncio.create_task(self._pump(s_reader, c_writer, "s2c", conn)),
        ]
        self._conns.append(conn)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str, conn: _Conn
    ) -> None:
        """Copy one direction. Chunks go through a queue so that latency does not cut throughput."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=256)
        sender = asyncio.create_task(self._send(queue, writer, direction))
        try:
            while True:
                await self._gates[direction].wait()  # held direction: stop reading (sender blocks)
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._gates[direction].wait()
                await queue.put((time.monotonic() + self._delay, data))
            await queue.put(None)
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            # one side ended: end both, as a real connection would
            for w in (conn.client, conn.server):
                w.transport.abort()
            if conn in self._conns:
                self._conns.remove(conn)

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter, direction: str
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while (item := await queue.get()) is not None:
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self._rate:
                    await asyncio.sleep(len(data) / self._rate)
                await self._gates[direction].wait()
                writer.write(data)
                await writer.drain()
                self.bytes[direction] += len(data)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
