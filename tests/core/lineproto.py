"""A tiny line protocol plugin and its loopback server, for supervisor tests.

Real TCP on 127.0.0.1, a real ``ConnectionFactory`` registered in a registry:
the supervisor is exercised exactly as with a shipped plugin, but with faults
that are simple to provoke (refuse logins, ignore subscriptions, go silent).

Wire: client ``LOGIN <user> <password>`` -> ``OK`` | ``DENIED``; ``SUB <sym>``,
``UNSUB <sym>``, ``PING`` -> ``PONG``; server ``T <sym> <price> <size>`` trades.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import SocketStream

from hub_core import (
    AuthenticationError,
    ConnectionFactory,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    hookimpl,
)
from hub_core.processor import ConnectionSink


class LineServer:
    """The loopback server. Faults are plain attributes the tests flip."""

    def __init__(self) -> None:
        self.port = 0
        self.password = "pw"
        self.ignore_subscriptions = False
        self.silent = False
        self.logins = 0
        self.connections = 0
        self._clients: list[SocketStream] = []

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        async with listener:
            await listener.serve(self._client)

    async def drop_all(self) -> None:
        for c in list(self._clients):
            await c.aclose()

    async def _client(self, stream: SocketStream) -> None:
        self.connections += 1
        self._clients.append(stream)
        subs: set[str] = set()
        buf = b""
        try:
            async with anyio.create_task_group() as tg:

                async def feed() -> None:
                    price = 100_000
                    while True:
                        await anyio.sleep(0.01)
                        if self.silent:
                            continue
                        price += 1
                        for s in sorted(subs):
                            await stream.send(f"T {s} {price / 1000:.3f} 1\n".encode())

                while True:
                    data = await stream.receive()
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        parts = line.decode().split()
                        if parts[0] == "LOGIN":
                            self.logins += 1
                            if parts[2] != self.password:
                                await stream.send(b"DENIED\n")
                                await stream.aclose()
                                return
                            await stream.send(b"OK\n")
                            tg.start_soon(feed)
                        elif parts[0] == "SUB" and not self.ignore_subscriptions:
                            subs.add(parts[1])
                        elif parts[0] == "UNSUB":
                            subs.discard(parts[1])
                        elif parts[0] == "PING" and not self.silent:
                            await stream.send(b"PONG\n")
        except* (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away or a test dropped it
        finally:
            if stream in self._clients:
                self._clients.remove(stream)
            with anyio.CancelScope(shield=True):
                await stream.aclose()


class LineConnection:
    def __init__(self, config: ExchangeConfig, sink: ConnectionSink) -> None:
        self.config = config
        self.sink = sink
        self.stream: SocketStream | None = None
        self._health = ConnectionHealth()
        self._buf = b""

    async def connect(self, endpoint: str) -> None:
        host, port = endpoint.rsplit(":", 1)
        try:
            self.stream = await anyio.connect_tcp(host, int(port))
        except OSError as exc:
            raise ConnectionFailed(f"connect failed: {exc}", endpoint=endpoint) from exc
        pw = self.config.credentials.password
        await self.stream.send(f"LOGIN u {pw.get_secret_value() if pw else ''}\n".encode())
        reply = await self._line()
        if reply != "OK":
            raise AuthenticationError("login refused", endpoint=endpoint, hint="check password")
        self._health = ConnectionHealth(True, endpoint, time.monotonic_ns())

    async def _line(self) -> str:
        assert self.stream is not None
        while b"\n" not in self._buf:
            self._buf += await self.stream.receive()
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    async def subscribe(self, symbols: Sequence[str]) -> None:
        assert self.stream is not None
        for s in symbols:
            await self.stream.send(f"SUB {s}\n".encode())

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        assert self.stream is not None
        for s in symbols:
            await self.stream.send(f"UNSUB {s}\n".encode())

    async def run(self) -> None:
        while True:
            try:
                line = await self._line()
            except anyio.EndOfStream as exc:
                raise ConnectionFailed("closed by server") from exc
            self._health.last_activity_ns = time.monotonic_ns()
            parts = line.split()
            if parts[0] == "T":
                self.sink.trade_text(parts[1], parts[2], parts[3], "N", 0, time.time_ns())

    async def probe(self) -> None:
        assert self.stream is not None
        await self.stream.send(b"PING\n")

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()

    def health(self) -> ConnectionHealth:
        return self._health


class LineFactory(ConnectionFactory):
    protocol = "lineproto"

    def create(self, config: ExchangeConfig, sink: ConnectionSink) -> LineConnection:
        return LineConnection(config, sink)


class Plugin:
    @hookimpl
    def hub_connection_factories(self) -> list[ConnectionFactory]:
        return [LineFactory()]
