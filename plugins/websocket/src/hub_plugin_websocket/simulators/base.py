"""What the Binance, Coinbase and Kraken loopback venues share, on the kit's LoopbackVenue.

``WebSocketVenue`` is a real WebSocket server (the ``websockets`` server API) on
127.0.0.1 or ::1 only, built on ``hub_core.simulation.LoopbackVenue``: each session is
a ``WebSocketClient`` whose messages one writer sends in order, ``stall()`` holds
everything back and stops reading (so protocol pings go unanswered too) while sockets
stay open, and the market is the kit's ``MarketModel``. A subclass speaks one venue's
subscribe protocol (``on_text``) and turns market events into that venue's messages
(``_on_trade``, ``_on_level``, ``_on_top``, ``_on_tick``). Every venue also has the
handshake fault (``UpgradeFault``: an HTTP status instead of ``101``), malformed and
raw frames, and ``mute_new_sessions``. The venue implements
``hub_core.testing.SimulatorHandle``, so the core's conformance suite drives it as it is.

``replay=`` (a path or a ``recorded.Recording``) streams a recorded session instead of
the random walk: the subclass names the stream of each recorded message
(``_replay_stream``), and every session gets, from its first subscription on and paced
by the recorded times (``replay_speed``), the recorded messages of the streams it
subscribed. A stream subscribed late still gets its messages from the start of the
recording, so the result does not depend on how the client spaces its requests.
Recorded replies, statuses and anything that is not a data message are left out: the
venue answers requests itself.

Prices and sizes are the hub's fixed point (1e-9); ``fmt`` prints them with a venue's
fixed number of decimals. ``E8`` (1e-8 units, as venues print 8 decimals) is kept for
the ``set_level`` of Coinbase and Kraken, which takes prices and sizes in 1e-8 units.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar, Final, Generic, TypeAlias, TypeVar

import anyio
import anyio.abc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest, Response as HttpResponse

from hub_core.simulation import (
    PRICE_SCALE,
    Book as MarketBook,
    Instrument,
    LevelChange as MarketChange,
    LoopbackVenue,
    MarketModel,
    MarketTrade,
    MarketUpdate,
    Message,
    VenueClient,
    host_port,
)
from hub_plugin_websocket.recorded import Recording, load_recording

log = logging.getLogger("hub_plugin_websocket.simulator")

__all__ = [
    "E8",
    "MALFORMED_TEXT",
    "ReplayFrame",
    "Stream",
    "UpgradeFault",
    "WebSocketClient",
    "WebSocketLink",
    "WebSocketVenue",
    "fmt",
    "iso_time",
]

E8: Final = 100_000_000
"""1e-8 units: what ``set_level`` of Coinbase and Kraken takes."""
_QUEUE_LIMIT: Final = 200_000
"""Messages queued for one client past which it is disconnected as too slow."""
_REPLAY_BATCH: Final = 1_000
"""With ``replay_speed=0``: messages queued for one client past which the replay waits
for the writer to catch up (instead of hitting ``_QUEUE_LIMIT``)."""

Stream: TypeAlias = tuple[str, str]
"""(channel, symbol), as Coinbase and Kraken keep a client's subscriptions."""
K = TypeVar("K")
C = TypeVar("C", bound="WebSocketClient[Any]")

MALFORMED_TEXT: Final = {
    "truncated": '{"type":"match","trade_id":1,"sequence":2,"product_id":"BTC',
    "garbage": "this is not JSON \x00\x01",
}
"""The frames ``send_malformed(kind)`` sends (valid for every venue: not JSON at all)."""


def fmt(value: int, decimals: int) -> str:
    """Fixed point (1e-9) -> decimal text with exactly ``decimals`` places (0..9), cut."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), PRICE_SCALE)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{f'{frac:09d}'[:decimals]}"


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
    at run time with ``refuse_upgrades`` (``refuse_credentials()`` is a 401)."""

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


@dataclass(frozen=True)
class ReplayFrame(Generic[K]):
    """One recorded message to replay: when it was received, its text, its stream."""

    ts: float
    text: str
    stream: K


class WebSocketLink:
    """A ``ClientLink`` over a ``websockets`` server connection: one frame a message."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def send(self, messages: list[Message]) -> None:
        """Send each message as one frame (text for ``str``, binary for ``bytes``)."""
        for message in messages:
            await self.ws.send(message)

    async def receive(self) -> Message | None:
        """The next message, or None once the connection is closed."""
        try:
            return await self.ws.recv()
        except ConnectionClosed:
            return None

    def abort(self) -> None:
        """Drop the TCP connection now: no close frame."""
        self.ws.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading the socket: pings go unanswered too."""
        if not self.ws.transport.is_closing():
            self.ws.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read the socket again."""
        if not self.ws.transport.is_closing():
            self.ws.transport.resume_reading()

    async def aclose(self) -> None:
        """Nothing to do: the server closes the connection when its handler returns."""


class WebSocketClient(VenueClient[K]):
    """One WebSocket session on a venue: its subscriptions (``K``: the venue's stream
    keys) and the venue's per-session state."""

    def __init__(self, venue: WebSocketVenue[Any, Any], link: WebSocketLink) -> None:
        super().__init__(venue, link)
        self.ws = link.ws
        self.established = True  # a WebSocket session is live once upgraded
        self.subscribed = anyio.Event()
        """Set once the session subscribed anything."""
        self.skip: set[str] = set()
        """Symbols whose next sequenced message is lost (``skip_sequence``)."""
        self.state: dict[str, Any] = {}
        """Per-venue extras (Kraken: each book's depth and last view)."""
        self.muted: frozenset[str] = venue._mute_new
        """Channels this session acknowledges but gets no data of (``mute_new_sessions``)."""
        self.close_code: tuple[int, str] | None = None
        """Set by the venue to end the session with this close code once what is queued
        is sent (a rate limit, a deadline)."""
        self.replay_started = False
        self.replay_seen: set[K] = set()
        """Streams subscribed at least once in this session (replay mode)."""
        self.replay_held: dict[K, list[tuple[int, str]]] = {}
        """Replayed messages (index, text) of streams not subscribed yet, kept until they are."""


class WebSocketVenue(LoopbackVenue[C], UpgradeFault, abc.ABC, Generic[C, K]):
    """A WebSocket venue on loopback: subclass it for one venue (see the module docs)."""

    venue: ClassVar[str] = ""
    """The venue's dialect name (``binance``, ``coinbase``, ``kraken``)."""
    path: ClassVar[str] = "/"
    stall_reads = True
    client_errors = (ConnectionClosed,)
    malformed: ClassVar[dict[str, str]] = MALFORMED_TEXT
    """The frames ``send_malformed(kind)`` sends, by kind."""
    heartbeat_interval_s: float | None = None
    """The venue's periodic heartbeat (``heartbeat``), None for none."""

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
        if not 1 <= depth_levels <= 1000:
            raise ValueError(f"depth_levels must be 1..1000, got {depth_levels}")
        if not (replay_speed >= 0 and math.isfinite(replay_speed)):
            raise ValueError(
                f"replay_speed must be >= 0 (0: as fast as possible), got {replay_speed}"
            )
        self.replay_speed = float(replay_speed)
        """Recorded time runs this much faster on replay (0: no pacing at all)."""
        self._recording: Recording | None = None
        self._replay: list[ReplayFrame[K]] | None = None
        if replay is not None:
            self._recording = replay if isinstance(replay, Recording) else load_recording(replay)
            self._replay = self._replay_frames(self._recording)
            if not symbols:
                symbols = sorted({self._stream_symbol(f.stream) for f in self._replay})
        market = MarketModel(
            [self._instrument(self._symbol(s), depth_levels) for s in symbols], seed=seed
        )
        super().__init__(
            market,
            rate,
            host=host,
            port=port,
            ssl_context=ssl_context,
            refuse_symbols=refuse_symbols,
        )
        self.market: MarketModel = market
        self._mute_new: frozenset[str] = frozenset()
        self._server: Server | None = None
        self.requests_received: list[dict[str, Any]] = []
        """Every control message received, in order."""

    # -- addresses ------------------------------------------------------------------------------
    @property
    def host_port(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        return host_port(self.host, self.port)

    @property
    def endpoint(self) -> str:
        """The stream URL (``ws://127.0.0.1:PORT/...``, ``wss://`` with TLS)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host_port}{self.path}"

    @property
    def replaying(self) -> bool:
        """Whether this venue replays a recording (its random-walk market stays idle)."""
        return self._replay is not None

    # -- the server -----------------------------------------------------------------------------
    async def listen(
        self,
        tg: anyio.abc.TaskGroup,
        ready: Callable[[str, int], None] | None,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """The ``websockets`` server on the venue's port: closed (sessions kept) while
        ``refuse_connections()`` is in force, opened again on the same port."""
        first = True
        try:
            while True:
                await self._accepting.wait_open()
                self._server = await serve(
                    self._handle,
                    self.host,
                    self.port,
                    process_request=self._process_request,
                    ssl=self.ssl_context,
                    ping_interval=None,  # a venue pings on its own schedule, if at all
                    max_size=64 * 1024,
                    max_queue=64,
                )
                self.port = self._server.sockets[0].getsockname()[1]
                with anyio.CancelScope() as scope:
                    self._listen_scope = scope
                    if first:
                        first = False
                        self._started(ready, task_status)
                    await anyio.sleep_forever()
                self._listen_scope = None
                self._server.close(close_connections=False)
        finally:
            for client in self.connected():
                client.link.abort()
            server, self._server = self._server, None
            if server is not None:
                server.close()
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections_accepted += 1
        await self.run_client(self.new_client(WebSocketLink(ws)))

    async def _process_request(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        return self._refused_upgrade(connection)

    async def serve_client(self, client: C) -> None:
        while (message := await client.receive()) is not None:
            text = message if isinstance(message, str) else message.decode()
            before = set(client.subscriptions) if self._replay is not None else None
            self.on_text(client, text)
            if client.muted:
                # acknowledged (and greeted) above; no data from here on
                client.subscriptions = {
                    k for k in client.subscriptions if not self._is_muted(client, k)
                }
            if before is not None:
                self._replay_subscribed(client, before)
            if client.close_code is not None:
                break
        if client.close_code is not None:
            with anyio.move_on_after(1):
                await client.drained()
            await client.ws.close(*client.close_code)

    def before_write(self, client: C) -> None:
        if client.pending > _QUEUE_LIMIT:
            client.discard_queue()
            client.close_code = (1008, "client too slow")
            client.start_soon(client.ws.close, 1008, "client too slow")

    def heartbeat_due(self, client: C) -> float | None:
        interval = self.heartbeat_interval_s
        if interval is None:
            return None
        return max(0.0, client.last_heartbeat + interval - time.monotonic())

    # -- faults (``SimulatorHandle``) -----------------------------------------------------------
    async def send_malformed(self, kind: str = "truncated") -> None:
        """Send one malformed frame (see ``malformed``) to every client, then go on."""
        text = self.malformed.get(kind)
        if text is None:
            raise ValueError(
                f"unknown malformed kind {kind!r} (known: {', '.join(self.malformed)})"
            )
        self.send_raw(text)

    async def skip_sequence(self) -> None:
        """The venue's sequence fault: see the subclass."""
        for c in self.connected():
            c.skip.update(self.symbols)

    async def refuse_credentials(self, on: bool = True) -> None:
        """While on, every upgrade is answered with HTTP 401 (wrong credentials)."""
        await super().refuse_credentials(on)
        self.refuse_upgrades(401 if on else 0)

    def mute_new_sessions(self, channels: Sequence[str]) -> None:
        """Sessions opened from now on acknowledge subscriptions of ``channels`` (the
        venue's names: ``matches``, ``trade``...) but get none of their data: a
        replacement session that stays silent on a stream. Empty: everything again."""
        self._mute_new = frozenset(channels)

    async def send_oversized(self, size: int = 2 << 20) -> None:
        """Send every client one text frame of ``size`` bytes (over the client's default
        1 MiB ``max_frame_bytes``): valid JSON, a trade padded past the bound."""
        head = '{"e":"trade","s":"OVERSIZED","p":"1","q":"1","pad":"'
        self.send_raw(head + "x" * max(0, size - len(head) - 2) + '"}')

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one text frame to every client."""
        for c in self.connected():
            c.send(text)

    # -- inspection -----------------------------------------------------------------------------
    def book(self, symbol: str, depth: int | None = None) -> tuple[dict[int, int], dict[int, int]]:
        """The venue's own book of ``symbol`` (top ``depth``) as fixed point ``price -> size``."""
        bids, asks = self.market.book(symbol).levels(depth)
        return dict(bids), dict(asks)

    # -- the market -----------------------------------------------------------------------------
    def market_symbols(self) -> list[str]:
        # every market moves, watched or not; a replay has no market of its own
        return [] if self._replay is not None else list(self.symbols)

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        book = self.market.book(update.symbol)
        if update.trade is not None:
            self._on_trade(book, ts, update.trade)
        for change in update.changes:
            self._on_level(book, change)
        if update.top_changed:
            self._on_top(book, ts)

    def after_market_step(self, ts: int) -> None:
        for c in self.connected():
            self._on_tick(c, ts)

    def _feed(self, update: MarketUpdate) -> None:
        """A change made by hand (``set_level``) reaches clients like any market step."""
        ts = time.time_ns()
        self.on_market(update, ts)
        self.after_market_step(ts)

    def set_level_e8(self, symbol: str, side: str, price: int, size: int) -> int:
        """Put (size 0: remove) one level given in 1e-8 units (the wire's precision of
        the Coinbase and Kraken simulators); clients get it like any change. Returns the
        fixed-point (1e-9) price."""
        self._check_live_market()
        side = "B" if side in ("B", "bid") else "A"
        self._feed(self.market.set_level(symbol, side, price * 10, size * 10))
        return price * 10

    def _check_live_market(self) -> None:
        if self._replay is not None:
            raise RuntimeError("set_level: the market is idle while a recording is replayed")

    # -- replay ---------------------------------------------------------------------------------
    def _replay_frames(self, recording: Recording) -> list[ReplayFrame[K]]:
        """The recording's received data messages with their streams (see the module docs)."""
        frames: list[ReplayFrame[K]] = []
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

    def _replay_subscribed(self, client: C, before: set[K]) -> None:
        """After a request in replay mode: a stream subscribed for the first time gets what
        the replay already passed (in recorded order); the first subscription starts it."""
        fresh = client.subscriptions - before - client.replay_seen
        if fresh:
            client.replay_seen |= fresh
            frames = self._replay
            assert frames is not None
            held = sorted(item for s in fresh for item in client.replay_held.pop(s, ()))
            for i, _ in held:
                self._replay_send(client, frames[i])
        if client.subscriptions and not client.replay_started:
            client.replay_started = True
            client.start_soon(self._replay_to, client)

    async def _replay_to(self, client: C) -> None:
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
            elif client.pending >= _REPLAY_BATCH:
                await client.drained()
            if frame.stream in client.subscriptions:
                self._replay_send(client, frame)
            elif frame.stream not in client.replay_seen:
                # not subscribed yet: kept for when it is (a stream once left gets nothing)
                client.replay_held.setdefault(frame.stream, []).append((i, frame.text))

    def _replay_send(self, client: C, frame: ReplayFrame[K]) -> None:
        """Queue one replayed message (a venue may re-wrap it for the session)."""
        client.send(frame.text)

    # -- the venue's part -----------------------------------------------------------------------
    def _symbol(self, symbol: str) -> str:
        """The venue's spelling of a configured symbol."""
        return symbol

    def _stream_symbol(self, stream: K) -> str:
        """The symbol of a stream key (for the symbols of a recording)."""
        assert isinstance(stream, tuple)
        return str(stream[1])

    def _is_muted(self, client: C, key: K) -> bool:
        """Whether ``key`` is a stream of a channel the session is muted on."""
        return isinstance(key, tuple) and key[0] in client.muted

    @abc.abstractmethod
    def _instrument(self, symbol: str, depth: int) -> Instrument:
        """The simulated instrument of ``symbol`` (first price, tick, lot, depth)."""

    @abc.abstractmethod
    def on_text(self, client: C, text: str) -> None:
        """One message from a client: queue the replies with ``client.send``."""

    @abc.abstractmethod
    def _replay_stream(self, message: Any) -> K | None:
        """The stream a recorded message (decoded JSON) belongs to, as the session's
        ``subscriptions`` hold it; ``None`` for anything not replayed (replies,
        statuses, heartbeats the venue sends itself)."""

    @abc.abstractmethod
    def _on_trade(self, book: MarketBook, ts: int, trade: MarketTrade) -> None:
        """A trade happened (``trade.side`` is the aggressor's)."""

    def _on_level(self, book: MarketBook, change: MarketChange) -> None:
        """One book level changed (size 0: removed)."""

    def _on_top(self, book: MarketBook, ts: int) -> None:
        """The best bid or ask changed."""

    def _on_tick(self, client: C, ts: int) -> None:
        """End of one market step for ``client`` (flush batched book changes)."""
