"""A Binance-style WebSocket venue on loopback: what ``hub sim websocket`` runs.

``BinanceSimulator`` is a real server (the ``websockets`` server API) on
127.0.0.1 or ::1 only. It speaks Binance's stream protocol: raw (``/ws``)
and combined (``/stream?streams=``) endpoints, ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` with ids, ``{"result":null,"id":N}``
acknowledgements and ``{"error":{...},"id":N}`` refusals, the 5 messages/s
limit (a client that exceeds it is disconnected, as Binance does), server
pings with a pong deadline, and the REST depth snapshot
(``GET /api/v3/depth?symbol=X&limit=N``, futures ``/fapi/v1/depth``) on the
same port.

Each symbol is a random-walk order book (prices in 1e-8 units, as Binance
prints them with 8 decimals) producing ``trade``, ``aggTrade``,
``bookTicker`` and diff-depth ``depthUpdate`` events whose ``U``/``u`` ids
chain exactly (``pu`` too, for futures). ``replay=path`` streams a recorded
session instead (sdk-docs/protocols/websocket.md).

Fault injection: ``drop_connections()``, ``stall()``/``resume()``,
``send_malformed()``, ``skip_sequence()`` (a depth update id range never
reaches the clients), ``corrupt_next_depth()``, ``ignore_pongs()`` (server
pings go unanswered as far as the server is concerned: it disconnects),
``server_shutdown()`` (the ``serverShutdown`` event, then a close).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest, Response as HttpResponse

from hub_core.simulation import BackgroundServer, host_port, simulator_options as convert_options
from hub_plugin_websocket.codec import LOOPBACK_HOSTS, RateWindow
from hub_plugin_websocket.recorded import Recording, load_recording
from hub_plugin_websocket.sim_base import UpgradeFault

log = logging.getLogger("hub_plugin_websocket.simulator")

__all__ = ["DEFAULT_SYMBOLS", "BinanceSimulator", "main", "serve_simulator"]

DEFAULT_SYMBOLS: Final = ("BTCUSDT", "ETHUSDT")
E8: Final = 100_000_000
"""Binance prints 8 decimals: the simulator keeps prices and quantities in 1e-8 units."""
_TICK_S: Final = 0.02
"""Market clock: events are generated in 20 ms steps."""
_TRADE_LOG: Final = 100_000
_QUEUE_LIMIT: Final = 200_000
"""Messages queued for one client past which it is disconnected as too slow (Binance
drops slow consumers the same way)."""
_CHANNELS: Final = frozenset(
    {
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "depth@100ms",
        "depth@1000ms",
        "depth@250ms",
        "depth@500ms",
        "depth@0ms",
    }
)
_PARTIAL: Final = frozenset(f"depth{n}{s}" for n in (5, 10, 20) for s in ("", "@100ms"))
# known symbols: (first bid, tick) in 1e-8 units
_PRICES: Final = {
    "BTCUSDT": (60_000 * E8, E8 // 100),
    "ETHUSDT": (3_000 * E8, E8 // 100),
    "BNBUSDT": (600 * E8, E8 // 100),
}

MALFORMED: Final = {
    "truncated": '{"e":"trade","E":1700000000000,"s":"BTC',
    "garbage": "this is not JSON \x00\x01",
    "wrong_type": '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":60000,"q":"1","T":1,"m":true}',
    "bad_number": '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"6e","q":"1","T":1,"m":true}',
}
"""The frames ``send_malformed(kind)`` sends."""


def fmt8(value: int) -> str:
    """1e-8 units -> Binance's decimal text with 8 decimals (``"0.35130000"``)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // E8}.{value % E8:08d}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- market model ----------------------------------------------------------------------------
@dataclass
class _Market:
    symbol: str
    tick: int
    bids: dict[int, int]
    asks: dict[int, int]
    update_id: int
    trade_id: int = 1_000_000
    agg_id: int = 500_000
    budget: float = 0.0
    first_pending: int = 0
    last_sent_u: int = 0
    pending_bids: dict[int, int] = field(default_factory=dict)
    pending_asks: dict[int, int] = field(default_factory=dict)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def set_level(self, side: str, price: int, qty: int) -> None:
        """One order-book change: a new update id, recorded for the next depth event."""
        levels = self.bids if side == "B" else self.asks
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)
        self.update_id += 1
        if not self.first_pending:
            self.first_pending = self.update_id
        (self.pending_bids if side == "B" else self.pending_asks)[price] = qty

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [[fmt8(p), fmt8(q)] for p, q in bids],
            "asks": [[fmt8(p), fmt8(q)] for p, q in asks],
        }


def _new_market(symbol: str, depth: int, rng: random.Random) -> _Market:
    first, tick = _PRICES.get(symbol, (100 * E8, E8 // 1000))
    bids = {first - i * tick: _lot(rng) for i in range(depth)}
    asks = {first + (i + 1) * tick: _lot(rng) for i in range(depth)}
    return _Market(symbol, tick, bids, asks, update_id=rng.randint(1_000, 9_999_999))


def _top(m: _Market) -> tuple[int, int, int, int]:
    bid, ask = m.best_bid(), m.best_ask()
    return (bid, m.bids[bid], ask, m.asks[ask])


def _lot(rng: random.Random) -> int:
    return rng.randint(1, 5_000) * 100_000  # multiples of 0.001


# -- clients ---------------------------------------------------------------------------------
@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    combined: bool
    streams: set[str] = field(default_factory=set)
    queue: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    skip_depth: set[str] = field(default_factory=set)
    corrupt_depth: set[str] = field(default_factory=set)
    requests: RateWindow = field(default_factory=lambda: RateWindow(5, 1.0))
    depth_since: dict[str, float] = field(default_factory=dict)
    """Symbol -> monotonic time its diff-depth stream was subscribed."""
    replaying: bool = False
    muted: frozenset[str] = frozenset()
    """Channels (``trade``, ``bookTicker``...) this session acknowledges but never gets
    data of (``mute_new_sessions``)."""

    def push(self, stream: str, payload: str) -> None:
        if self.muted and stream.partition("@")[2] in self.muted:
            return
        if self.combined:
            self.queue.append(f'{{"stream":"{stream}","data":{payload}}}')
        else:
            self.queue.append(payload)

    def push_raw(self, text: str) -> None:
        self.queue.append(text)
        self.wake.set()


class BinanceSimulator(UpgradeFault, BackgroundServer):
    """A Binance-style market-data venue on loopback with fault injection.

    ``async with BinanceSimulator(["BTCUSDT"], rate=200) as sim:`` then connect to
    ``sim.endpoint`` (``ws://127.0.0.1:PORT/ws``); REST snapshots are served on
    ``sim.rest_url``. Or ``await sim.serve(ready)`` in a task.
    """

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 50.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        depth_levels: int = 20,
        futures: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 60.0,
        messages_per_second: int = 5,
        max_streams: int = 1024,
        depth_interval_s: float = 0.1,
        shutdown_grace_s: float = 0.5,
        replay: str | Path | Recording | None = None,
        replay_speed: float = 1.0,
        refuse_symbols: Sequence[str] = (),
        upgrade_status: int = 0,
        upgrade_retry_after: str = "",
    ) -> None:
        self._init_upgrade_fault(upgrade_status, upgrade_retry_after)
        if host == "localhost":
            host = "127.0.0.1"
        if host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the simulator listens on loopback only ({' or '.join(LOOPBACK_HOSTS)}), "
                f"not {host!r}"
            )
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        if not 1 <= depth_levels <= 1000:
            raise ValueError(f"depth_levels must be 1..1000, got {depth_levels}")
        self.host = host
        self.port = port
        self.rate = float(rate)
        self.futures = futures
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.messages_per_second = messages_per_second
        self.max_streams = max_streams
        self.depth_interval_s = depth_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self.replay_speed = replay_speed
        self.refuse_symbols = {s.upper() for s in refuse_symbols}
        self._ssl = ssl_context
        self._rng = random.Random(seed)
        self._recording: Recording | None = None
        if replay is not None:
            self._recording = replay if isinstance(replay, Recording) else load_recording(replay)
        syms = list(symbols)
        if self._recording is not None and not symbols:
            syms = sorted(_recorded_symbols(self._recording))
        self.symbols = tuple(s.upper() for s in syms)
        self._markets = {s: _new_market(s, depth_levels, self._rng) for s in self.symbols}
        self._trade_log: dict[str, deque[tuple[int, int, str]]] = {
            s: deque(maxlen=_TRADE_LOG) for s in self.symbols
        }
        self._clients: set[_Client] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._ignore_pongs = False
        self._mute_new: frozenset[str] = frozenset()
        self._snapshot_at: dict[str, float] = {}
        self._tg_cm: anyio.abc.TaskGroup | None = None
        self._server: Server | None = None
        self.connections_accepted = 0
        """WebSocket sessions opened so far."""
        self.snapshots_served = 0
        """REST depth snapshots answered so far."""
        self.rate_limit_violations = 0
        """Clients disconnected for sending more than ``messages_per_second``."""
        self.requests_received: list[dict[str, Any]] = []
        """Every control message received, in order (tests check ids and pacing)."""
        self.request_times: list[float] = []

    # -- addresses -------------------------------------------------------------------------------
    @property
    def host_port(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        return host_port(self.host, self.port)

    @property
    def endpoint(self) -> str:
        """The raw-stream URL (``ws://127.0.0.1:PORT/ws``, ``wss://`` with TLS)."""
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{self.host_port}/ws"

    @property
    def combined_endpoint(self) -> str:
        """The combined-stream URL (``.../stream``)."""
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{self.host_port}/stream"

    @property
    def rest_url(self) -> str:
        """The REST base URL (same port)."""
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self.host_port}"

    @property
    def clients(self) -> int:
        """Open WebSocket sessions."""
        return len(self._clients)

    # -- lifecycle --------------------------------------------------------------------------------
    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; ``ready(host, port)`` once listening."""
        async with serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            ssl=self._ssl,
            ping_interval=None,  # the server pings on its own schedule (see _pinger)
            max_size=64 * 1024,
            max_queue=64,
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            log.info("Binance simulator listening on %s", self.host_port)
            if ready is not None:
                ready(self.host, self.port)
            task_status.started()
            try:
                if self._recording is None:
                    await self._market_loop()
                else:
                    await anyio.sleep_forever()
            finally:
                for client in list(self._clients):
                    client.ws.transport.abort()
                self._server = None

    # -- fault injection -------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every client connection now (no close frame). Returns how many."""
        clients = list(self._clients)
        for c in clients:
            c.ws.transport.abort()
        return len(clients)

    def stall(self) -> None:
        """Behave like a frozen venue until ``resume()``: send nothing (data, replies,
        snapshots) and read nothing, so pings go unanswered too; sockets stay open."""
        self._resumed.clear()
        for c in self._clients:
            c.ws.transport.pause_reading()

    def resume(self) -> None:
        """End a stall: what was queued meanwhile is sent."""
        self._resumed.set()
        for c in self._clients:
            if not c.ws.transport.is_closing():
                c.ws.transport.resume_reading()

    def send_malformed(self, kind: str = "truncated") -> None:
        """Send one malformed frame (see ``MALFORMED``) to every client, then go on."""
        text = MALFORMED.get(kind)
        if text is None:
            raise ValueError(f"unknown malformed kind {kind!r} (known: {', '.join(MALFORMED)})")
        for c in self._clients:
            c.push_raw(text)

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one text frame to every client (tests: oversized frames...)."""
        for c in self._clients:
            c.push_raw(text)

    def skip_sequence(self) -> None:
        """The next depth update of every symbol never reaches any client: a lost message
        (its ``U..u`` range is missing from the chain).

        The update lost is the first one after a REST snapshot of the symbol was served
        to someone since the client subscribed its depth: a loss before the client has
        a snapshot is one the snapshot covers, which no client could (or should) notice.
        """
        for c in self._clients:
            c.skip_depth.update(self.symbols)

    def corrupt_next_depth(self) -> None:
        """The next depth update of every symbol reaches every client truncated."""
        for c in self._clients:
            c.corrupt_depth.update(self.symbols)

    def ignore_pongs(self, on: bool = True) -> None:
        """While on, the server treats every pong as lost: after ``ping_timeout_s`` past
        its next ping it disconnects the client."""
        self._ignore_pongs = on

    def mute_new_sessions(self, channels: Sequence[str]) -> None:
        """Sessions opened from now on acknowledge subscriptions of ``channels`` (e.g.
        ``["trade"]``) but get none of their data: a replacement session that stays
        silent on a stream (rotation tests). Empty: new sessions get everything."""
        self._mute_new = frozenset(channels)

    def server_shutdown(self) -> None:
        """Send ``serverShutdown`` to every client, then close each ``shutdown_grace_s``
        later (code 1001), as Binance does before maintenance."""
        event = f'{{"e":"serverShutdown","E":{_now_ms()}}}'
        for c in list(self._clients):
            c.push_raw(event)
            asyncio.get_running_loop().call_later(self.shutdown_grace_s, _close_soon, c.ws)

    # -- inspection ------------------------------------------------------------------------------
    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Every trade generated for ``symbol``: (price, size, aggressor side), fixed point."""
        return list(self._trade_log.get(symbol, ()))

    def book(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        """The simulator's own book of ``symbol`` as fixed-point (1e-9) ``price -> size``."""
        m = self._markets[symbol]
        return (
            {p * 10: q * 10 for p, q in m.bids.items()},
            {p * 10: q * 10 for p, q in m.asks.items()},
        )

    def last_update_id(self, symbol: str) -> int:
        """The id of the latest book change of ``symbol``."""
        return self._markets[symbol].update_id

    def set_level(self, symbol: str, side: str, price: str, qty: str) -> int:
        """Put (qty "0": remove) one level from decimal text; it reaches clients in the next
        depth event. Returns its fixed-point (1e-9) price."""
        m = self._markets[symbol]
        p = _parse8(price)
        m.set_level("B" if side in ("B", "bid") else "A", p, _parse8(qty))
        return p * 10

    def subscriptions(self) -> list[set[str]]:
        """Each open session's streams."""
        return [set(c.streams) for c in self._clients]

    def extensions(self) -> list[list[str]]:
        """Each open session's negotiated WebSocket extensions (``permessage-deflate``)."""
        return [[e.name for e in c.ws.protocol.extensions] for c in self._clients]

    # -- REST --------------------------------------------------------------------------------------
    async def _process_request(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        parts = urlsplit(request.path)
        path = parts.path
        if path in ("/ws", "/stream") or path.startswith("/ws/"):
            return self._refused_upgrade(connection)  # None: the handshake goes on
        depth_path = "/fapi/v1/depth" if self.futures else "/api/v3/depth"
        if path != depth_path:
            return _json_response(
                connection, HTTPStatus.NOT_FOUND, {"code": -1, "msg": f"no such path {path}"}
            )
        await self._resumed.wait()
        query = parse_qs(parts.query)
        symbol = (query.get("symbol") or [""])[0]
        try:
            limit = int((query.get("limit") or ["100"])[0])
        except ValueError:
            limit = -1
        if not 1 <= limit <= 5000:
            return _json_response(
                connection, HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal limit."}
            )
        if self._recording is not None:
            body = self._replay_snapshot(symbol)
        else:
            m = self._markets.get(symbol)
            body = m.snapshot(limit) if m is not None else None
        if body is None:
            return _json_response(
                connection, HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."}
            )
        if self.futures:
            body["E"] = body["T"] = _now_ms()
        self.snapshots_served += 1
        self._snapshot_at[symbol] = time.monotonic()
        return _json_response(connection, HTTPStatus.OK, body)

    def _replay_snapshot(self, symbol: str) -> dict[str, Any] | None:
        """In replay mode: an empty book just before the recording's first depth update (the
        recording has no snapshot, so the book is what its updates build)."""
        assert self._recording is not None
        for msg in self._recording.received:
            data = _payload(msg.text)
            if data.get("e") == "depthUpdate" and data.get("s") == symbol:
                first = int(data["U"])
                return {"lastUpdateId": first - 1, "bids": [], "asks": []}
        return None

    # -- one session -------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        path = urlsplit(request.path if request is not None else "/ws")
        client = _Client(ws, combined=path.path.startswith("/stream"))
        client.requests = RateWindow(max(1, self.messages_per_second), 1.0)
        self._add_streams(client, _url_streams(path.path, path.query))
        client.muted = self._mute_new
        self._clients.add(client)
        self.connections_accepted += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, client)
                tg.start_soon(self._pinger, client)
                if self._recording is not None and client.streams:
                    client.replaying = True
                    tg.start_soon(self._replay, client)
                await self._reader(client, tg)
                tg.cancel_scope.cancel()
        except* (ConnectionClosed, OSError) as group:
            log.debug("simulator session ended: %r", group.exceptions)
        finally:
            self._clients.discard(client)

    async def _reader(self, client: _Client, tg: anyio.abc.TaskGroup) -> None:
        async for message in client.ws:
            now = time.monotonic()
            if client.requests.delay(now) > 0:
                # Binance: more than 5 incoming messages a second closes the connection
                self.rate_limit_violations += 1
                await client.ws.close(1008, "Too many requests")
                return
            client.requests.record(now)
            self.request_times.append(now)
            reply = self._on_request(client, message)
            client.push_raw(reply)
            if self._recording is not None and client.streams and not client.replaying:
                client.replaying = True
                tg.start_soon(self._replay, client)

    def _on_request(self, client: _Client, message: str | bytes) -> str:
        try:
            req = json.loads(message)
        except ValueError as exc:
            return json.dumps({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None})
        if not isinstance(req, dict):
            return _error(2, "Invalid request: expected an object", None)
        self.requests_received.append(req)
        req_id = req.get("id")
        if not isinstance(req_id, int) or isinstance(req_id, bool) or req_id < 0:
            return _error(2, "Invalid request: request ID must be an unsigned integer", None)
        method = req.get("method")
        params = req.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(client.streams), "id": req_id})
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return _error(2, f"Invalid request: unknown method {method!r}", req_id)
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _error(2, "Invalid request: params must be a list of stream names", req_id)
        for stream in params:
            sym, _, channel = stream.partition("@")
            if (
                not sym
                or sym != sym.lower()
                or (channel not in _CHANNELS and channel not in _PARTIAL)
            ):
                return _error(2, f"Invalid request: invalid stream name {stream!r}", req_id)
            if sym.upper() in self.refuse_symbols:
                return _error(2, f"Invalid request: unknown symbol in {stream!r}", req_id)
        if method == "SUBSCRIBE":
            if len(client.streams | set(params)) > self.max_streams:
                return _error(2, f"Invalid request: more than {self.max_streams} streams", req_id)
            self._add_streams(client, params)
        else:
            client.streams.difference_update(params)
        return json.dumps({"result": None, "id": req_id})

    @staticmethod
    def _add_streams(client: _Client, streams: list[str]) -> None:
        client.streams.update(streams)
        now = time.monotonic()
        for stream in streams:
            sym, _, channel = stream.partition("@")
            if channel == "depth" or channel.startswith("depth@"):
                client.depth_since.setdefault(sym.upper(), now)

    async def _writer(self, client: _Client) -> None:
        ws = client.ws
        while True:
            await client.wake.wait()
            client.wake.clear()
            await self._resumed.wait()
            queue = client.queue
            while queue:
                if len(queue) > _QUEUE_LIMIT:
                    await ws.close(1008, "client too slow")
                    return
                await ws.send(queue.popleft())

    async def _pinger(self, client: _Client) -> None:
        """Ping every ``ping_interval_s``; no pong within ``ping_timeout_s`` disconnects."""
        ws = client.ws
        while True:
            await anyio.sleep(self.ping_interval_s)
            await self._resumed.wait()
            waiter = await ws.ping()
            try:
                with anyio.fail_after(self.ping_timeout_s):
                    if self._ignore_pongs:
                        await anyio.sleep_forever()
                    await waiter
            except TimeoutError:
                log.info("simulator: no pong within %gs: disconnecting", self.ping_timeout_s)
                ws.transport.abort()
                return

    # -- market ------------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        last = time.monotonic()
        last_depth = last
        while True:
            await anyio.sleep(_TICK_S)
            now = time.monotonic()
            dt, last = now - last, now
            ts = _now_ms()
            for m in self._markets.values():
                m.budget += self.rate * dt
                n = int(m.budget)
                m.budget -= n
                # cap a burst after a long pause (a stalled event loop)
                for _ in range(min(n, int(self.rate) + 1)):
                    self._step(m, ts)
            if now - last_depth >= self.depth_interval_s:
                last_depth = now
                for m in self._markets.values():
                    self._flush_depth(m, ts)
            for c in self._clients:
                if c.queue:
                    c.wake.set()

    def _emit(self, stream: str, payload: str) -> None:
        for c in self._clients:
            if stream in c.streams:
                c.push(stream, payload)

    def _step(self, m: _Market, ts: int) -> None:
        rng = self._rng
        r = rng.random()
        top = _top(m)
        if r < 0.35:
            self._trade(m, ts, buy=rng.random() < 0.5)
        elif r < 0.8:
            side = "B" if rng.random() < 0.5 else "A"
            levels = m.bids if side == "B" else m.asks
            prices = sorted(levels, reverse=side == "B")
            price = prices[min(len(prices) - 1, int(rng.expovariate(0.3)))]
            m.set_level(side, price, _lot(rng))
        else:
            self._move(m, up=rng.random() < 0.5)
        if _top(m) != top:
            self._book_ticker(m, ts)

    def _trade(self, m: _Market, ts: int, buy: bool) -> None:
        rng = self._rng
        levels = m.asks if buy else m.bids
        price = m.best_ask() if buy else m.best_bid()
        available = levels[price]
        qty = min(available, rng.randint(1, 50) * 100_000)
        m.trade_id += 1
        m.agg_id += 1
        maker_is_buyer = not buy  # the aggressor sold into a resting bid
        flag = "true" if maker_is_buyer else "false"
        sym = m.symbol
        low = sym.lower()
        p, q = fmt8(price), fmt8(qty)
        self._trade_log[sym].append((price * 10, qty * 10, "B" if buy else "A"))
        self._emit(
            f"{low}@trade",
            f'{{"e":"trade","E":{ts},"s":"{sym}","t":{m.trade_id},"p":"{p}","q":"{q}",'
            f'"T":{ts},"m":{flag},"M":true}}',
        )
        self._emit(
            f"{low}@aggTrade",
            f'{{"e":"aggTrade","E":{ts},"s":"{sym}","a":{m.agg_id},"p":"{p}","q":"{q}",'
            f'"f":{m.trade_id},"l":{m.trade_id},"T":{ts},"m":{flag},"M":true}}',
        )
        side = "A" if buy else "B"
        if available > qty:
            m.set_level(side, price, available - qty)
        else:
            m.set_level(side, price, 0)
            self._refill(m, side)

    def _refill(self, m: _Market, side: str) -> None:
        """Keep a side deep after its best level went: a new level at the far end."""
        levels = m.bids if side == "B" else m.asks
        if not levels:
            anchor = m.best_ask() - m.tick if side == "B" else m.best_bid() + m.tick
            m.set_level(side, anchor, _lot(self._rng))
            return
        far = min(levels) - m.tick if side == "B" else max(levels) + m.tick
        if far > 0:
            m.set_level(side, far, _lot(self._rng))

    def _move(self, m: _Market, up: bool) -> None:
        """A new best level inside the spread, or the best level of one side pulled."""
        rng = self._rng
        bid, ask = m.best_bid(), m.best_ask()
        if ask - bid > m.tick:
            if up:
                m.set_level("B", bid + m.tick, _lot(rng))
            else:
                m.set_level("A", ask - m.tick, _lot(rng))
            return
        side = "A" if up else "B"
        levels = m.asks if up else m.bids
        if len(levels) > 1:
            m.set_level(side, ask if up else bid, 0)
            self._refill(m, side)

    def _book_ticker(self, m: _Market, ts: int) -> None:
        bid, ask = m.best_bid(), m.best_ask()
        sym = m.symbol
        if self.futures:
            payload = (
                f'{{"e":"bookTicker","u":{m.update_id},"E":{ts},"T":{ts},"s":"{sym}",'
                f'"b":"{fmt8(bid)}","B":"{fmt8(m.bids[bid])}","a":"{fmt8(ask)}",'
                f'"A":"{fmt8(m.asks[ask])}"}}'
            )
        else:
            payload = (
                f'{{"u":{m.update_id},"s":"{sym}","b":"{fmt8(bid)}","B":"{fmt8(m.bids[bid])}",'
                f'"a":"{fmt8(ask)}","A":"{fmt8(m.asks[ask])}"}}'
            )
        self._emit(f"{sym.lower()}@bookTicker", payload)

    def _flush_depth(self, m: _Market, ts: int) -> None:
        """One ``depthUpdate`` with every change since the last one (ids ``U..u``)."""
        if not m.first_pending:
            return
        first, last = m.first_pending, m.update_id
        bids = ",".join(f'["{fmt8(p)}","{fmt8(q)}"]' for p, q in m.pending_bids.items())
        asks = ",".join(f'["{fmt8(p)}","{fmt8(q)}"]' for p, q in m.pending_asks.items())
        pu = f',"pu":{m.last_sent_u}' if self.futures else ""
        sym = m.symbol
        payload = (
            f'{{"e":"depthUpdate","E":{ts},"T":{ts},"s":"{sym}","U":{first},"u":{last}{pu},'
            f'"b":[{bids}],"a":[{asks}]}}'
            if self.futures
            else f'{{"e":"depthUpdate","E":{ts},"s":"{sym}","U":{first},"u":{last},'
            f'"b":[{bids}],"a":[{asks}]}}'
        )
        m.first_pending = 0
        m.last_sent_u = last
        m.pending_bids = {}
        m.pending_asks = {}
        low = sym.lower()
        for c in self._clients:
            for stream in c.streams:
                if stream.startswith(low + "@depth") and stream[len(low) + 6 : len(low) + 7] in (
                    "",
                    "@",
                ):
                    has_book = self._snapshot_at.get(sym, 0.0) > c.depth_since.get(sym, 1e300)
                    if sym in c.skip_depth and has_book:
                        c.skip_depth.discard(sym)
                    elif sym in c.corrupt_depth and has_book:
                        c.corrupt_depth.discard(sym)
                        c.push(stream, payload[: len(payload) // 2])
                    else:
                        c.push(stream, payload)
        for n in (5, 10, 20):
            stream = f"{low}@depth{n}"
            if any(s.startswith(stream) for c in self._clients for s in c.streams):
                snap = m.snapshot(n)
                data = json.dumps(snap, separators=(",", ":"))
                for c in self._clients:
                    for s in c.streams:
                        if s in (stream, stream + "@100ms"):
                            c.push(s, data)

    # -- replay ------------------------------------------------------------------------------------
    async def _replay(self, client: _Client) -> None:
        """Send the recording's messages of the client's streams, keeping their pacing."""
        assert self._recording is not None
        received = self._recording.received
        if not received:
            return
        speed = self.replay_speed
        start = time.monotonic()
        t0 = received[0].ts
        for msg in received:
            if speed > 0:
                due = start + (msg.ts - t0) / speed
                wait = due - time.monotonic()
                if wait > 0:
                    await anyio.sleep(wait)
            stream, data = _split_combined(msg.text)
            if stream is None or stream not in client.streams:
                continue
            client.queue.append(msg.text.decode() if client.combined else data)
            client.wake.set()
            if speed <= 0 and len(client.queue) > 1000:
                await anyio.lowlevel.checkpoint()


# -- helpers ---------------------------------------------------------------------------------------
def _error(code: int, msg: str, req_id: int | None) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": req_id})


def _json_response(connection: ServerConnection, status: HTTPStatus, body: object) -> HttpResponse:
    response = connection.respond(status, json.dumps(body, separators=(",", ":")))
    response.headers["Content-Type"] = "application/json"
    return response


def _close_soon(ws: ServerConnection) -> None:
    _BACKGROUND.add(task := asyncio.ensure_future(_close(ws)))
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()
"""Close tasks in flight (kept referenced until done)."""


async def _close(ws: ServerConnection) -> None:
    try:
        await ws.close(1001, "server shutdown")
    except Exception as exc:  # already gone
        log.debug("close after serverShutdown: %r", exc)


def _parse8(text: str) -> int:
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        raise ValueError(f"{text!r}: more than 8 decimals")
    return int(whole or "0") * E8 + int((frac + "0" * 8)[:8])


def _payload(text: bytes) -> dict[str, Any]:
    obj = json.loads(text)
    if isinstance(obj, dict) and "data" in obj and isinstance(obj["data"], dict):
        return obj["data"]
    return obj if isinstance(obj, dict) else {}


def _split_combined(text: bytes) -> tuple[str | None, str]:
    obj = json.loads(text)
    if isinstance(obj, dict) and isinstance(obj.get("stream"), str):
        return obj["stream"], json.dumps(obj["data"], separators=(",", ":"))
    return None, text.decode()


def _recorded_symbols(rec: Recording) -> set[str]:
    out: set[str] = set()
    for msg in rec.received:
        stream, _ = _split_combined(msg.text)
        if stream:
            out.add(stream.partition("@")[0].upper())
    return out


def _url_streams(path: str, query: str) -> list[str]:
    out: list[str] = []
    if path.startswith("/ws/"):
        out.extend(s for s in path[4:].split("/") if s)
    for value in parse_qs(query).get("streams", []):
        out.extend(s for s in value.split("/") if s)
    return out


# -- SimulatorSpec.serve and the command line ------------------------------------------------------
def _text_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


_FROM_TEXT: Final[dict[str, tuple[Callable[[str], object], str]]] = {
    "seed": (int, "an integer"),
    "depth_levels": (int, "an integer"),
    "messages_per_second": (int, "an integer"),
    "max_streams": (int, "an integer"),
    "replay_speed": (float, "a number"),
    "ping_interval_s": (float, "a number"),
    "ping_timeout_s": (float, "a number"),
    "depth_interval_s": (float, "a number"),
    "shutdown_grace_s": (float, "a number"),
    "subscribe_deadline_s": (float, "a number"),
    "heartbeat_interval_s": (float, "a number"),
    "refuse_symbols": (_text_list, "a comma-separated list"),
    "refuse_resyncs": (int, "an integer (-1: all)"),
    "replay": (str, "a file"),
    "upgrade_status": (int, "an HTTP status (0: accept upgrades)"),
    "upgrade_retry_after": (str, "a Retry-After value"),
}
"""How an option given as text (``hub sim -o KEY=VALUE``) becomes the keyword's type."""
_COMMON_OPTIONS: Final = frozenset(
    {
        "seed",
        "depth_levels",
        "refuse_symbols",
        "replay",
        "replay_speed",
        "ssl_context",
        "upgrade_status",
        "upgrade_retry_after",
    }
)
_OPTIONS: Final = {
    "binance": _COMMON_OPTIONS
    | {
        "ping_interval_s",
        "ping_timeout_s",
        "messages_per_second",
        "max_streams",
        "depth_interval_s",
        "shutdown_grace_s",
    },
    "coinbase": _COMMON_OPTIONS | {"subscribe_deadline_s", "heartbeat_interval_s"},
    "kraken": _COMMON_OPTIONS | {"heartbeat_interval_s", "refuse_resyncs"},
}
"""The keywords each venue's simulator takes besides host, port, symbols and rate."""


def simulator_options(dialect: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for the ``dialect`` venue's simulator, text values converted to the
    keyword's type (``"0.5"`` -> 0.5); ``ValueError`` naming the option otherwise."""
    known = _OPTIONS["binance" if dialect == "binance-futures" else dialect]
    return convert_options(dialect, options, {key: _FROM_TEXT.get(key) for key in known})


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    *,
    dialect: str = "binance",
    **kwargs: Any,
) -> None:
    """Run a simulator until cancelled (``SimulatorSpec.serve`` for ``hub sim``/``hub demo``).

    ``dialect`` picks the venue: ``binance``, ``binance-futures``, ``coinbase`` or
    ``kraken``. ``hub sim`` passes the spec's default symbols (Binance's) when
    ``--symbols`` is absent; those are no Coinbase or Kraken symbols, so that list
    means "the venue's own defaults" there, and "the recording's symbols" with
    ``replay=FILE``. ``kwargs`` are the venue's options (``hub sim -o KEY=VALUE``:
    text is converted, see ``simulator_options``).
    """
    if dialect not in ("binance", "binance-futures", "coinbase", "kraken"):
        raise ValueError(
            f"the simulator speaks binance, binance-futures, coinbase and kraken, not {dialect!r}"
        )
    kwargs = simulator_options(dialect, kwargs)
    replaying = kwargs.get("replay") is not None
    if list(symbols) == list(DEFAULT_SYMBOLS) and (replaying or dialect in ("coinbase", "kraken")):
        symbols = []  # hub sim's stand-in for "no --symbols"
    if dialect in ("coinbase", "kraken"):
        from hub_plugin_websocket.sim_coinbase import COINBASE_SYMBOLS, CoinbaseSimulator
        from hub_plugin_websocket.sim_kraken import KRAKEN_SYMBOLS, KrakenSimulator

        defaults = COINBASE_SYMBOLS if dialect == "coinbase" else KRAKEN_SYMBOLS
        cls = CoinbaseSimulator if dialect == "coinbase" else KrakenSimulator
        # no symbols: the recording's, or else the venue's own
        venue = cls(
            symbols or ([] if replaying else defaults), rate, host=host, port=port, **kwargs
        )
        await venue.serve(ready)
        return
    sim = BinanceSimulator(
        symbols or ([] if replaying else DEFAULT_SYMBOLS),
        rate,
        host=host,
        port=port,
        futures=dialect == "binance-futures",
        **kwargs,
    )
    await sim.serve(ready)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hub_plugin_websocket.simulator --dialect binance [--replay FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m hub_plugin_websocket.simulator",
        description="A Binance-, Coinbase- or Kraken-style WebSocket venue on loopback",
    )
    parser.add_argument(
        "--dialect",
        default="binance",
        choices=["binance", "binance-futures", "coinbase", "kraken"],
    )
    parser.add_argument("--host", default="127.0.0.1", choices=list(LOOPBACK_HOSTS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--symbols",
        help="comma-separated (default: the venue's own two; the recording's with --replay)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="events/s per symbol")
    parser.add_argument("--replay", metavar="FILE", help="replay a recorded session")
    parser.add_argument("--replay-speed", type=float, default=1.0, help="0 = as fast as possible")
    parser.add_argument("--duration", type=float, help="stop after S seconds")
    args = parser.parse_args(argv)
    symbols = [s.strip() for s in (args.symbols or "").split(",") if s.strip()]
    extra: dict[str, Any] = {}
    if args.replay:
        if not Path(args.replay).is_file():
            parser.error(f"--replay: no such file: {args.replay}")
        if args.replay_speed < 0:
            parser.error("--replay-speed: give a number >= 0 (0: as fast as possible)")
        extra = {"replay": args.replay, "replay_speed": args.replay_speed}

    def ready(host: str, port: int) -> None:
        h = f"[{host}]" if ":" in host else host
        print(f"listening on {h}:{port}", flush=True)

    async def run() -> None:
        with anyio.move_on_after(args.duration):
            await serve_simulator(
                args.host,
                args.port,
                symbols,
                args.rate,
                ready,
                dialect=args.dialect,
                **extra,
            )

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
