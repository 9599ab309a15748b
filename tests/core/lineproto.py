"""A tiny line protocol plugin and its loopback server, for supervisor tests.

Real TCP on 127.0.0.1, a real ``ConnectionFactory`` registered in a registry:
the supervisor is exercised exactly as with a shipped plugin, but with faults
that are simple to provoke (refuse logins, rate-limit them, refuse symbols,
ignore subscriptions, go silent, answer with a sequence reset).

Wire: client ``LOGIN <user> <password>`` -> ``OK`` | ``DENIED`` | ``SLOW <seconds>``
| ``SEQ <expected> <received>``; ``SUB <sym>`` -> ``ACK <sym>`` | ``NAK <sym> <reason>``;
``UNSUB <sym>``; ``PING`` -> ``PONG``; server ``T <sym> <price> <size> <seq>`` trades
(``seq`` counts the trades of one connection from 1) and, when asked, ``HB`` heartbeats.

``LineSimulator`` wraps the server as the conformance suite's ``SimulatorHandle``
(tests/core/test_conformance_mutants.py runs the suite against this plugin and
against deliberately broken variants of it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream

from hub_core import (
    AuthenticationError,
    ConfigError,
    ConnectionFactory,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    RateLimited,
    SequenceMismatch,
    SubscriptionError,
    hookimpl,
)
from hub_core.plugin import Side, wait_for_capacity
from hub_core.processor import ConnectionSink

MAX_LINE = 64 * 1024
"""The connection's read bound: a longer line is counted as malformed and skipped."""
OVERSIZED_LINE = 4 * MAX_LINE
"""Padding of the ``"oversized"`` fault's line: far past the bound."""
OVERSIZED_PRICE = "999999.999"
"""The oversized line's price: the random walk (from 100.000 up by 0.001) never sends it."""


class LineServer:
    """The loopback server. Faults are plain attributes the tests flip."""

    def __init__(self) -> None:
        self.port = 0
        self.password = "pw"
        self.ignore_subscriptions = False
        """No trades, but PINGs are answered: a quiet market on a live link."""
        self.silent = False
        """Nothing at all (no trades, no PONG, no heartbeat): a frozen venue."""
        self.heartbeat_s = 0.0
        self.refuse: dict[str, str] = {}
        """Symbols answered with ``NAK``, and the reason."""
        self.slow_logins: list[float] = []
        """Retry-After seconds for the next logins (one entry used per login)."""
        self.sequence_reset = False
        self.mute_symbols: set[str] = set()
        """Subscribed symbols that get no trades (a quiet instrument)."""
        self.logins = 0
        self.login_times: list[int] = []
        """``time.monotonic_ns()`` of each LOGIN received."""
        self.pings = 0
        self.connections = 0
        self.refuse_logins = False
        """Every LOGIN is answered ``DENIED`` (the venue refuses our credentials)."""
        self.sent: list[tuple[str, int]] = []
        """(symbol, price) of every trade sent, in order."""
        self._clients: list[SocketStream] = []
        self._faults: dict[int, list[str]] = {}
        """Faults each client's feed still has to inject (see ``inject``)."""

    def inject(self, fault: str) -> None:
        """Make every connected client's feed inject ``fault`` once, in its byte order:
        ``"skip"`` (one sequence number is never sent), ``"malformed"`` (a trade line
        whose price is not a number), ``"oversized"`` (a trade line padded past
        ``OVERSIZED_LINE`` bytes, whose trade must never be delivered)."""
        for pending in self._faults.values():
            pending.append(fault)

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
        faults: list[str] = []
        self._faults[id(stream)] = faults
        buf = b""
        lock = anyio.Lock()  # the feed, the heartbeat and the replies never interleave

        async def send(data: bytes) -> None:
            async with lock:
                await stream.send(data)

        try:
            async with anyio.create_task_group() as tg:

                async def feed() -> None:
                    price = 100_000
                    seq = 0
                    while True:
                        await anyio.sleep(0.01)
                        if self.silent or self.ignore_subscriptions:
                            continue
                        while faults:
                            fault = faults.pop(0)
                            if fault == "skip":
                                seq += 1  # lost on the way: the client sees a hole
                            elif fault == "malformed":
                                await send(b"T AAA 1.2.3 1\n")
                            elif fault == "oversized":
                                seq += 1
                                sym = min(subs, default="AAA")
                                pad = b" " * OVERSIZED_LINE
                                await send(
                                    f"T {sym} {OVERSIZED_PRICE} 1 {seq}".encode() + pad + b"\n"
                                )
                        price += 1
                        for s in sorted(subs - self.mute_symbols):
                            seq += 1
                            self.sent.append((s, price))
                            await send(f"T {s} {price / 1000:.3f} 1 {seq}\n".encode())

                async def heartbeat() -> None:
                    while True:
                        await anyio.sleep(self.heartbeat_s)
                        if not self.silent:
                            await send(b"HB\n")

                while True:
                    data = await stream.receive()
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        parts = line.decode().split()
                        if parts[0] == "LOGIN":
                            self.logins += 1
                            self.login_times.append(time.monotonic_ns())
                            if self.slow_logins:
                                await send(f"SLOW {self.slow_logins.pop(0)}\n".encode())
                                return
                            if self.sequence_reset:
                                await send(b"SEQ 4 1\n")
                                return
                            if self.refuse_logins or parts[2] != self.password:
                                await send(b"DENIED\n")
                                return
                            await send(b"OK\n")
                            tg.start_soon(feed)
                            if self.heartbeat_s:
                                tg.start_soon(heartbeat)
                        elif parts[0] == "SUB":
                            sym = parts[1]
                            if sym in self.refuse:
                                await send(f"NAK {sym} {self.refuse[sym]}\n".encode())
                            else:
                                subs.add(sym)
                                await send(f"ACK {sym}\n".encode())
                        elif parts[0] == "UNSUB":
                            subs.discard(parts[1])
                        elif parts[0] == "PING":
                            self.pings += 1
                            if not self.silent:
                                await send(b"PONG\n")
        except* (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away or a test dropped it
        finally:
            self._faults.pop(id(stream), None)
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
        self._replies: dict[str, anyio.Event] = {}
        self._refused: dict[str, str] = {}
        self._next_seq = 0
        self._last_data_ns = 0
        self._skipping = False
        """Inside a line longer than ``MAX_LINE``: its bytes are dropped up to its end."""

    async def connect(self, endpoint: str) -> None:
        # "user:password@host:port" is allowed, as for a real venue; only host:port is dialled
        if endpoint.endswith(":0"):
            raise ConfigError("port 0 cannot be dialled", endpoint=endpoint)
        host, port = endpoint.rsplit("@", 1)[-1].rsplit(":", 1)
        try:
            self.stream = await anyio.connect_tcp(host, int(port))
        except OSError as exc:
            raise ConnectionFailed(f"connect failed: {exc}", endpoint=endpoint) from exc
        pw = self.config.credentials.password
        await self.stream.send(f"LOGIN u {pw.get_secret_value() if pw else ''}\n".encode())
        try:
            reply = (await self._line()).split()
        except anyio.EndOfStream as exc:
            raise ConnectionFailed("closed during login", endpoint=endpoint) from exc
        if reply[0] == "SLOW":
            raise RateLimited("too many logins", retry_after_s=float(reply[1]), endpoint=endpoint)
        if reply[0] == "SEQ":
            raise SequenceMismatch(
                f"the venue expects sequence {reply[1]}, we sent {reply[2]}", endpoint=endpoint
            )
        if reply[0] != "OK":
            raise AuthenticationError("login refused", endpoint=endpoint, hint="check password")
        self._health = ConnectionHealth(True, endpoint, time.monotonic_ns())

    async def _line(self) -> str:
        assert self.stream is not None
        while True:
            line, nl, rest = self._buf.partition(b"\n")
            if nl:
                self._buf = rest
                if self._skipping:  # the end of an oversized line: drop it, go on
                    self._skipping = False
                    continue
                return line.decode(errors="replace")
            if len(self._buf) > MAX_LINE:
                # bounded reads: never buffer more than MAX_LINE of one line
                if not self._skipping:
                    self.sink.malformed(f"a line longer than {MAX_LINE} bytes")
                self._skipping = True
                self._buf = b""
            self._buf += await self.stream.receive()

    async def subscribe(self, symbols: Sequence[str]) -> None:
        assert self.stream is not None
        waits = []
        for s in symbols:
            self._replies[s] = anyio.Event()
            waits.append(self._replies[s])
            await self.stream.send(f"SUB {s}\n".encode())
        for w in waits:
            await w.wait()
        refused = {s: self._refused.pop(s) for s in symbols if s in self._refused}
        if refused:
            raise SubscriptionError(
                "refused: " + ", ".join(sorted(refused)),
                refused=refused,
                exchange=self.sink.exchange,
            )

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
            if not parts:
                continue
            if parts[0] == "T":
                try:
                    self._trade(parts, time.time_ns())
                except (ValueError, IndexError) as exc:  # MalformedNumber is a ValueError
                    self.sink.malformed(f"bad trade line {line[:80]!r}: {exc}")
                await self._pace()
            elif parts[0] in ("ACK", "NAK"):
                if parts[0] == "NAK":
                    self._refused[parts[1]] = " ".join(parts[2:])
                event = self._replies.pop(parts[1], None)
                if event is not None:
                    event.set()

    def _trade(self, parts: list[str], ts_recv: int) -> None:
        seq = int(parts[4]) if len(parts) > 4 else 0
        if seq:
            expected = self._next_seq
            if expected and seq > expected:
                self._sequence_gap(parts[1], expected, seq, ts_recv)
            self._next_seq = seq + 1
        self.sink.trade_text(parts[1], parts[2], parts[3], Side.NONE, 0, ts_recv, seq)
        self._last_data_ns = ts_recv

    def _sequence_gap(self, symbol: str, expected: int, seq: int, ts_recv: int) -> None:
        """A hole in the connection's numbering (noticed on a trade of ``symbol``): the
        numbers ``expected``..``seq - 1`` were lost since the last trade, on every symbol."""
        self.sink.gap(
            "",
            self._last_data_ns or ts_recv,
            ts_recv,
            f"sequence gap: expected {expected}, got {seq}",
            expected,
            seq - 1,
        )

    async def _pace(self) -> None:
        """After each trade: a consumer chose overflow="block", so stop reading until it
        catches up (TCP flow control then holds the server back)."""
        if self.sink.backpressured:
            await wait_for_capacity(self.sink)

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

    def __init__(self, connection: type[LineConnection] = LineConnection) -> None:
        self.connection = connection

    def check_endpoint(self, endpoint: str) -> None:
        if ":" not in endpoint:
            raise ValueError(f"{endpoint!r} is not host:port")

    def create(self, config: ExchangeConfig, sink: ConnectionSink) -> LineConnection:
        return self.connection(config, sink)


class Plugin:
    """The plugin; ``connection`` swaps in a subclass with a fault of its own."""

    def __init__(self, connection: type[LineConnection] = LineConnection) -> None:
        self.connection = connection

    @hookimpl
    def hub_connection_factories(self) -> list[ConnectionFactory]:
        return [LineFactory(self.connection)]


class LineSimulator:
    """The server as the conformance suite's ``SimulatorHandle``: ``async with`` listens
    on 127.0.0.1 (a free port), leaving stops it. Every fault is async, as the suite
    awaits them; the optional ``send_oversized``, ``refuse_symbol`` and
    ``refuse_credentials`` are here too."""

    def __init__(self) -> None:
        self.server = LineServer()
        self.endpoint = ""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LineSimulator]:
        """Serve until the block ends."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.server.serve)
            self.endpoint = f"127.0.0.1:{self.server.port}"
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        # prices are sent with three decimals: thousandths -> 1e-9 fixed point
        return [
            (p * 1_000_000, 1_000_000_000, Side.NONE) for s, p in self.server.sent if s == symbol
        ]

    async def drop_connections(self) -> None:
        await self.server.drop_all()

    async def stall(self) -> None:
        self.server.silent = True

    async def resume(self) -> None:
        self.server.silent = False

    async def send_malformed(self) -> None:
        self.server.inject("malformed")

    async def skip_sequence(self) -> None:
        self.server.inject("skip")

    async def send_oversized(self) -> None:
        """One trade line far longer than ``MAX_LINE``; its trade is not in ``sent``."""
        self.server.inject("oversized")

    async def refuse_symbol(self, symbol: str) -> None:
        """Answer later subscriptions of ``symbol`` with ``NAK``."""
        self.server.refuse[symbol] = "not-entitled"

    async def refuse_credentials(self, on: bool) -> None:
        """Answer every later LOGIN with ``DENIED`` (``on``), or accept them again."""
        self.server.refuse_logins = on
