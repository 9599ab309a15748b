"""What the Coinbase and Kraken loopback venues share: the server, clients, a market.

``LoopbackVenue`` is a real WebSocket server (the ``websockets`` server API) on
127.0.0.1 or ::1 only. A subclass speaks one venue's subscribe protocol
(``_on_text``) and turns market events into that venue's messages
(``_on_trade``, ``_on_level``, ``_on_tick``). The base runs the market clock,
one writer per client (so ``stall`` holds everything back while sockets stay
open), and the faults every venue has: drop, stall, malformed JSON, raw frames.
The base implements ``hub_core.testing.SimulatorHandle`` (its fault methods are
coroutines), so the core's conformance suite drives a subclass as it is.

``replay=`` (a path or a ``recorded.Recording``) streams a recorded session
instead of the random walk: the subclass names the (channel, symbol) stream of
each recorded message (``_replay_stream``), and every session gets, from its
first subscription on and paced by the recorded times (``replay_speed``), the
recorded messages of the streams it subscribed. A stream subscribed late still
gets its messages from the start of the recording, so the result does not
depend on how the client spaces its requests. Recorded replies, statuses and
anything that is not a data message are left out: the venue answers requests
itself.

Prices and sizes are integers in 1e-8 units (``E8``); ``fmt`` prints them with
a venue's fixed number of decimals, ``fixed`` converts to the hub's 1e-9.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import math
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, TypeAlias

import anyio
import anyio.abc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest, Response as HttpResponse

from hub_core.simulation import BackgroundServer, host_port
from hub_plugin_websocket.codec import LOOPBACK_HOSTS
from hub_plugin_websocket.recorded import Recording, load_recording

log = logging.getLogger("hub_plugin_websocket.simulator")

__all__ = [
    "E8",
    "UpgradeFault",
    "LoopbackVenue",
    "Market",
    "ReplayFrame",
    "Stream",
    "VenueClient",
    "fmt",
    "iso_time",
]

E8: Final = 100_000_000
_TICK_S: Final = 0.02
"""Market clock: events are generated in 20 ms steps."""
_QUEUE_LIMIT: Final = 200_000
"""Messages queued for one client past which it is disconnected as too slow."""
_TRADE_LOG: Final = 100_000
_REPLAY_BATCH: Final = 1_000
"""With ``replay_speed=0``: messages queued for one client past which the replay waits
for the writer to catch up (instead of hitting ``_QUEUE_LIMIT``)."""

Stream: TypeAlias = tuple[str, str]
"""(channel, symbol), as a venue keeps a client's subscriptions."""

MALFORMED_TEXT: Final = {
    "truncated": '{"type":"match","trade_id":1,"sequence":2,"product_id":"BTC',
    "garbage": "this is not JSON \x00\x01",
}
"""The frames ``send_malformed(kind)`` sends (valid for every venue: not JSON at all)."""


def fmt(value: int, decimals: int) -> str:
    """1e-8 units -> decimal text with exactly ``decimals`` places (``0 <= decimals <= 8``)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole, frac = divmod(value, E8)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{f'{frac:08d}'[:decimals]}"


def iso_time(ns: int) -> str:
    """ns since the epoch -> ``2024-01-02T03:04:05.123456Z`` (microseconds, as both venues)."""
    secs, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest // 1000:06d}Z"


class UpgradeFault:
    """The handshake fault every simulator has: answer the WebSocket upgrade with an HTTP
    status instead of ``101`` (401/403 a refusal, 429/418 a rate limit with an optional
    ``Retry-After``, anything else a broken venue), counting each attempt refused.

    Set it at construction (``upgrade_status=401, upgrade_retry_after="2"``; from the
    command line ``hub sim websocket -o upgrade_status=429 -o upgrade_retry_after=2``) or
    at run time with ``refuse_upgrades``."""

    upgrade_status: int = 0
    """0: upgrades are accepted."""
    upgrade_retry_after: str = ""
    """The ``Retry-After`` header sent with a refusal (seconds or an HTTP date; "" none)."""
    upgrades_refused: int = 0
    """Upgrade attempts answered with ``upgrade_status`` so far."""

    def _init_upgrade_fault(self, status: int, retry_after: str) -> None:
        if status and not 300 <= status <= 599:
            raise ValueError(f"upgrade_status must be 0 or an HTTP status 300..599, got {status}")
        self.upgrade_status = status
        self.upgrade_retry_after = retry_after
        self.upgrades_refused = 0

    def refuse_upgrades(self, status: int, retry_after: str | None = None) -> None:
        """Answer every upgrade from now on with ``status`` (0: accept again)."""
        self._init_upgrade_fault(status, retry_after or "")

    def _refused_upgrade(self, connection: ServerConnection) -> HttpResponse | None:
        status = self.upgrade_status
        if not status:
            return None
        self.upgrades_refused += 1
        response = connection.respond(HTTPStatus(status), f"upgrade refused: HTTP {status}\n")
        if self.upgrade_retry_after:
            response.headers["Retry-After"] = self.upgrade_retry_after
        return response


@dataclass
class Market:
    """One symbol's random-walk book (1e-8 units) and its trade counter."""

    symbol: str
    tick: int
    lot: int
    bids: dict[int, int]
    asks: dict[int, int]
    trade_id: int = 1_000
    sequence: int = 10_000
    budget: float = 0.0
    trades: deque[tuple[int, int, str]] = field(default_factory=lambda: deque(maxlen=_TRADE_LOG))
    """(price, size, aggressor side) of every trade, fixed point 1e-9 (``sent_trades``)."""

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def top(self) -> tuple[int, int, int, int]:
        bid, ask = self.best_bid(), self.best_ask()
        return (bid, self.bids[bid], ask, self.asks[ask])

    def levels(
        self, depth: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first), at most ``depth`` each."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if depth is not None:
            return bids[:depth], asks[:depth]
        return bids, asks


@dataclass(frozen=True)
class ReplayFrame:
    """One recorded message to replay: when it was received, its text, its stream."""

    ts: float
    text: str
    stream: Stream


@dataclass(eq=False)
class VenueClient:
    """One WebSocket session on the venue: what it subscribed and what waits to be sent."""

    ws: ServerConnection
    queue: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the writer whenever it has sent everything queued."""
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[Stream] = field(default_factory=set)
    """(channel, symbol) pairs subscribed."""
    skip: set[str] = field(default_factory=set)
    """Symbols whose next sequenced message is lost (``skip_sequence``)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Per-venue extras (Kraken: each book's depth and last view)."""
    replay_started: bool = False
    replay_seen: set[Stream] = field(default_factory=set)
    """Streams subscribed at least once in this session (replay mode)."""
    replay_held: dict[Stream, list[tuple[int, str]]] = field(default_factory=dict)
    """Replayed messages (index, text) of streams not subscribed yet, kept until they are."""
    muted: frozenset[str] = frozenset()
    """Channels this session acknowledges but gets no data of (``mute_new_sessions``)."""

    def push(self, text: str) -> None:
        self.queue.append(text)


class LoopbackVenue(abc.ABC, UpgradeFault, BackgroundServer):
    """A venue on loopback: subclass it for one venue's protocol (see the module docs)."""

    venue = ""
    path = "/"

    def __init__(
        self,
        symbols: Sequence[str],
        rate: float = 50.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        depth_levels: int = 20,
        ssl_context: ssl.SSLContext | None = None,
        refuse_symbols: Sequence[str] = (),
        replay: str | Path | Recording | None = None,
        replay_speed: float = 1.0,
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
        if not (replay_speed >= 0 and math.isfinite(replay_speed)):
            raise ValueError(
                f"replay_speed must be >= 0 (0: as fast as possible), got {replay_speed}"
            )
        self.host = host
        self.port = port
        self.rate = float(rate)
        self.replay_speed = float(replay_speed)
        """Recorded time runs this much faster on replay (0: no pacing at all)."""
        self._replay: list[ReplayFrame] | None = None
        if replay is not None:
            self._replay = self._replay_frames(
                replay if isinstance(replay, Recording) else load_recording(replay)
            )
            if not symbols:
                symbols = sorted({f.stream[1] for f in self._replay})
        self.symbols = tuple(symbols)
        self.refuse_symbols = set(refuse_symbols)
        self._ssl = ssl_context
        self._rng = random.Random(seed)
        self._markets = {s: self._new_market(s, depth_levels) for s in self.symbols}
        self._clients: set[VenueClient] = set()
        self._mute_new: frozenset[str] = frozenset()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tg_cm: anyio.abc.TaskGroup | None = None
        self._server: Server | None = None
        self.connections_accepted = 0
        """WebSocket sessions opened so far."""
        self.requests_received: list[dict[str, Any]] = []
        """Every control message received, in order."""

    # -- addresses ------------------------------------------------------------------------------
    @property
    def host_port(self) -> str:
        return host_port(self.host, self.port)

    @property
    def endpoint(self) -> str:
        """The stream URL (``ws://127.0.0.1:PORT/...``, ``wss://`` with TLS)."""
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{self.host_port}{self.path}"

    @property
    def clients(self) -> int:
        """Open WebSocket sessions."""
        return len(self._clients)

    @property
    def replaying(self) -> bool:
        """Whether this venue replays a recording (its random-walk market stays idle)."""
        return self._replay is not None

    # -- lifecycle ------------------------------------------------------------------------------
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
            ping_interval=None,
            max_size=64 * 1024,
            max_queue=64,
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            log.info("%s simulator listening on %s", self.venue, self.host_port)
            if ready is not None:
                ready(self.host, self.port)
            task_status.started()
            try:
                if self._replay is None:
                    await self._market_loop()
                else:
                    await anyio.sleep_forever()
            finally:
                for client in list(self._clients):
                    client.ws.transport.abort()
                self._server = None

    async def _process_request(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        return self._refused_upgrade(connection)

    # -- faults (``SimulatorHandle``) -----------------------------------------------------------
    async def drop_connections(self) -> None:
        """Abort every client connection now (no close frame)."""
        for c in list(self._clients):
            c.ws.transport.abort()

    async def stall(self) -> None:
        """Behave like a frozen venue until ``resume()``: send nothing, and read nothing,
        so pings go unanswered too; sockets stay open."""
        self._resumed.clear()
        for c in self._clients:
            c.ws.transport.pause_reading()

    async def resume(self) -> None:
        """End a stall: what was queued meanwhile is sent."""
        self._resumed.set()
        for c in self._clients:
            if not c.ws.transport.is_closing():
                c.ws.transport.resume_reading()

    async def send_malformed(self, kind: str = "truncated") -> None:
        """Send one frame that is not JSON (see ``MALFORMED_TEXT``) to every client."""
        self.send_raw(MALFORMED_TEXT[kind])

    async def skip_sequence(self) -> None:
        """The venue's sequence fault: see the subclass."""
        for c in self._clients:
            c.skip.update(self.symbols)

    def mute_new_sessions(self, channels: Sequence[str]) -> None:
        """Sessions opened from now on acknowledge subscriptions of ``channels`` (the
        venue's names: ``matches``, ``trade``...) but get none of their data: a
        replacement session that stays silent on a stream. Empty: everything again."""
        self._mute_new = frozenset(channels)

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one text frame to every client."""
        for c in self._clients:
            c.push(text)
            c.wake.set()

    # -- inspection -----------------------------------------------------------------------------
    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Every trade generated for ``symbol``: (price, size, aggressor side), fixed point."""
        m = self._markets.get(symbol)
        return list(m.trades) if m is not None else []

    def book(self, symbol: str, depth: int | None = None) -> tuple[dict[int, int], dict[int, int]]:
        """The venue's own book of ``symbol`` (top ``depth``) as fixed point ``price -> size``."""
        bids, asks = self._markets[symbol].levels(depth)
        return ({p * 10: q * 10 for p, q in bids}, {p * 10: q * 10 for p, q in asks})

    def subscriptions(self) -> list[set[tuple[str, str]]]:
        """Each open session's (channel, symbol) pairs."""
        return [set(c.streams) for c in self._clients]

    def set_level(self, symbol: str, side: str, price: int, size: int) -> int:
        """Put (size 0: remove) one level, 1e-8 units; clients get it like any change.
        Returns the fixed-point (1e-9) price."""
        if self._replay is not None:
            raise RuntimeError("set_level: the market is idle while a recording is replayed")
        m = self._markets[symbol]
        self._set_level(m, "B" if side in ("B", "bid") else "A", price, size)
        for c in self._clients:
            self._on_tick(c, time.time_ns())
            c.wake.set()
        return price * 10

    # -- one session ----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        client = VenueClient(ws, muted=self._mute_new)
        self._clients.add(client)
        self.connections_accepted += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, client)
                self._on_open(client, tg)
                async for message in ws:
                    text = message if isinstance(message, str) else message.decode()
                    before = set(client.streams) if self._replay is not None else None
                    self._on_text(client, text)
                    if client.muted:
                        # acknowledged (and greeted) above; no data from here on
                        client.streams = {s for s in client.streams if s[0] not in client.muted}
                    if before is not None:
                        self._replay_subscribed(client, before, tg)
                    client.wake.set()
                tg.cancel_scope.cancel()
        except* (ConnectionClosed, OSError) as group:
            log.debug("%s simulator session ended: %r", self.venue, group.exceptions)
        finally:
            self._clients.discard(client)

    async def _writer(self, client: VenueClient) -> None:
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
            client.drained.set()

    # -- replay ---------------------------------------------------------------------------------
    def _replay_frames(self, recording: Recording) -> list[ReplayFrame]:
        """The recording's received data messages with their streams (see the module docs)."""
        frames: list[ReplayFrame] = []
        for msg in recording.received:
            try:
                text = msg.text.decode()
                stream = self._replay_stream(json.loads(text))
            except ValueError:  # not UTF-8 or not JSON: no data message of any stream
                continue
            if stream is not None:
                frames.append(ReplayFrame(msg.ts, text, stream))
        if not frames:
            where = recording.url or "the recording"
            raise ValueError(f"{where}: no {self.venue} market-data message to replay")
        return frames

    def _replay_subscribed(
        self, client: VenueClient, before: set[Stream], tg: anyio.abc.TaskGroup
    ) -> None:
        """After a request in replay mode: a stream subscribed for the first time gets what
        the replay already passed (in recorded order); the first subscription starts it."""
        fresh = client.streams - before - client.replay_seen
        if fresh:
            client.replay_seen |= fresh
            held = sorted(item for s in fresh for item in client.replay_held.pop(s, ()))
            client.queue.extend(text for _, text in held)
        if client.streams and not client.replay_started:
            client.replay_started = True
            tg.start_soon(self._replay_to, client)

    async def _replay_to(self, client: VenueClient) -> None:
        """Send the recording to one session, keeping its pacing (``replay_speed``)."""
        frames = self._replay
        assert frames is not None
        speed = self.replay_speed
        start = time.monotonic()
        t0 = frames[0].ts
        for i, frame in enumerate(frames):
            if speed > 0:
                wait = start + (frame.ts - t0) / speed - time.monotonic()
                if wait > 0:
                    await anyio.sleep(wait)
            elif len(client.queue) >= _REPLAY_BATCH:
                client.drained.clear()
                client.wake.set()
                await client.drained.wait()
            if frame.stream in client.streams:
                client.push(frame.text)
                client.wake.set()
            elif frame.stream not in client.replay_seen:
                # not subscribed yet: kept for when it is (a stream once left gets nothing)
                client.replay_held.setdefault(frame.stream, []).append((i, frame.text))

    # -- market ---------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(_TICK_S)
            now = time.monotonic()
            dt, last = now - last, now
            ts = time.time_ns()
            for m in self._markets.values():
                m.budget += self.rate * dt
                n = int(m.budget)
                m.budget -= n
                for _ in range(min(n, int(self.rate) + 1)):  # no burst after a stalled loop
                    self._step(m, ts)
            for c in self._clients:
                self._on_tick(c, ts)
                if c.queue:
                    c.wake.set()

    def _new_market(self, symbol: str, depth: int) -> Market:
        first, tick, lot = self._instrument(symbol)
        rng = self._rng
        bids = {first - i * tick: rng.randint(1, 5_000) * lot for i in range(depth)}
        asks = {first + (i + 1) * tick: rng.randint(1, 5_000) * lot for i in range(depth)}
        return Market(symbol, tick, lot, bids, asks)

    def _set_level(self, m: Market, side: str, price: int, size: int) -> None:
        levels = m.bids if side == "B" else m.asks
        if size:
            levels[price] = size
        else:
            levels.pop(price, None)
        m.sequence += 1
        self._on_level(m, side, price, size)

    def _step(self, m: Market, ts: int) -> None:
        rng = self._rng
        r = rng.random()
        top = m.top()
        if r < 0.35:
            self._trade(m, ts, buy=rng.random() < 0.5)
        elif r < 0.8:
            side = "B" if rng.random() < 0.5 else "A"
            levels = m.bids if side == "B" else m.asks
            prices = sorted(levels, reverse=side == "B")
            price = prices[min(len(prices) - 1, int(rng.expovariate(0.3)))]
            self._set_level(m, side, price, rng.randint(1, 5_000) * m.lot)
        else:
            self._move(m, up=rng.random() < 0.5)
        if m.top() != top:
            self._on_top(m, ts)

    def _trade(self, m: Market, ts: int, buy: bool) -> None:
        levels = m.asks if buy else m.bids
        price = m.best_ask() if buy else m.best_bid()
        available = levels[price]
        qty = min(available, self._rng.randint(1, 50) * m.lot)
        m.trade_id += 1
        m.sequence += 1
        m.trades.append((price * 10, qty * 10, "B" if buy else "A"))
        self._on_trade(m, ts, price, qty, buy)
        side = "A" if buy else "B"
        if available > qty:
            self._set_level(m, side, price, available - qty)
        else:
            self._set_level(m, side, price, 0)
            self._refill(m, side)

    def _refill(self, m: Market, side: str) -> None:
        """Keep a side deep after its best level went: a new level at the far end."""
        levels = m.bids if side == "B" else m.asks
        lot = self._rng.randint(1, 5_000) * m.lot
        if not levels:
            anchor = m.best_ask() - m.tick if side == "B" else m.best_bid() + m.tick
            self._set_level(m, side, anchor, lot)
            return
        far = min(levels) - m.tick if side == "B" else max(levels) + m.tick
        if far > 0:
            self._set_level(m, side, far, lot)

    def _move(self, m: Market, up: bool) -> None:
        """A new best level inside the spread, or the best level of one side pulled."""
        bid, ask = m.best_bid(), m.best_ask()
        lot = self._rng.randint(1, 5_000) * m.lot
        if ask - bid > m.tick:
            if up:
                self._set_level(m, "B", bid + m.tick, lot)
            else:
                self._set_level(m, "A", ask - m.tick, lot)
            return
        side = "A" if up else "B"
        levels = m.asks if up else m.bids
        if len(levels) > 1:
            self._set_level(m, side, ask if up else bid, 0)
            self._refill(m, side)

    # -- the venue's part -----------------------------------------------------------------------
    @abc.abstractmethod
    def _instrument(self, symbol: str) -> tuple[int, int, int]:
        """(first bid, price tick, size lot) of ``symbol`` in 1e-8 units."""

    def _on_open(self, client: VenueClient, tg: anyio.abc.TaskGroup) -> None:
        """A client connected (greet it, start per-client timers)."""

    @abc.abstractmethod
    def _on_text(self, client: VenueClient, text: str) -> None:
        """One message from a client: queue the replies with ``client.push``."""

    @abc.abstractmethod
    def _replay_stream(self, message: Any) -> Stream | None:
        """The (channel, symbol) stream a recorded message (decoded JSON) belongs to, as
        ``VenueClient.streams`` holds it; ``None`` for anything not replayed (replies,
        statuses, heartbeats the venue sends itself)."""

    @abc.abstractmethod
    def _on_trade(self, m: Market, ts: int, price: int, qty: int, buy: bool) -> None:
        """A trade happened (``buy``: the aggressor bought)."""

    def _on_level(self, m: Market, side: str, price: int, size: int) -> None:
        """One book level changed (size 0: removed)."""

    def _on_top(self, m: Market, ts: int) -> None:
        """The best bid or ask changed."""

    def _on_tick(self, client: VenueClient, ts: int) -> None:
        """End of one market step for ``client`` (flush batched book changes)."""
