"""A Binance-style WebSocket venue on loopback (``hub sim websocket``, the default dialect).

``BinanceSimulator`` is a real server (the ``websockets`` server API) on
127.0.0.1 or ::1 only. It speaks Binance's stream protocol: raw (``/ws``)
and combined (``/stream?streams=``) endpoints, ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` with ids, ``{"result":null,"id":N}``
acknowledgements and ``{"error":{...},"id":N}`` refusals, the 5 messages/s
limit (a client that exceeds it is disconnected, as Binance does), server
pings with a pong deadline, and the REST depth snapshot
(``GET /api/v3/depth?symbol=X&limit=N``, futures ``/fapi/v1/depth``) on the
same port.

Each symbol is a book of the kit's ``MarketModel`` (printed with Binance's 8
decimals) producing ``trade``, ``aggTrade``, ``bookTicker`` and diff-depth
``depthUpdate`` events whose ``U``/``u`` ids chain exactly (``pu`` too, for
futures). ``replay=path`` streams a recorded session instead
(sdk-docs/protocols/websocket.md).

Faults: the kit's async ones (``drop_connections()``, ``stall()``/``resume()``,
``send_malformed(kind)``, ``skip_sequence()``: a depth update id range never
reaches the clients, ``refuse_credentials()``: HTTP 401 upgrades,
``refuse_symbol()``), and Binance's own: ``corrupt_next_depth()``,
``ignore_pongs()`` (server pings go unanswered as far as the server is concerned:
it disconnects), ``server_shutdown()`` (the ``serverShutdown`` event, then a close).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import anyio
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request as HttpRequest, Response as HttpResponse

from hub_core.simulation import Book, ClientLink, Instrument, LevelChange, MarketTrade
from hub_plugin_websocket.ratelimit import RateWindow
from hub_plugin_websocket.simulators.base import (
    ReplayFrame,
    WebSocketClient,
    WebSocketLink,
    WebSocketVenue,
    fmt,
)

log = logging.getLogger("hub_plugin_websocket.simulator")

__all__ = ["DEFAULT_SYMBOLS", "MALFORMED", "BinanceSimulator", "fmt8"]

DEFAULT_SYMBOLS: Final = ("BTCUSDT", "ETHUSDT")
E8: Final = 100_000_000
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
# known symbols: (first bid, tick) in fixed point
_PRICES: Final = {
    "BTCUSDT": (60_000 * 10**9, 10**7),
    "ETHUSDT": (3_000 * 10**9, 10**7),
    "BNBUSDT": (600 * 10**9, 10**7),
}
_LOT: Final = 10**6
"""0.001: Binance sizes here are multiples of it."""
_TRADE_IDS: Final = 1_000_000
_AGG_IDS: Final = 500_000

MALFORMED: Final = {
    "truncated": '{"e":"trade","E":1700000000000,"s":"BTC',
    "garbage": "this is not JSON \x00\x01",
    "wrong_type": '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":60000,"q":"1","T":1,"m":true}',
    "bad_number": '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"6e","q":"1","T":1,"m":true}',
}
"""The frames ``send_malformed(kind)`` sends."""


def fmt8(value: int) -> str:
    """Fixed point (1e-9) -> Binance's decimal text with 8 decimals (``"0.35130000"``)."""
    return fmt(value, 8)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Depth:
    """One symbol's diff-depth stream: update ids and the changes not sent yet."""

    update_id: int
    first_pending: int = 0
    last_sent_u: int = 0
    pending_bids: dict[int, int] = field(default_factory=dict)
    pending_asks: dict[int, int] = field(default_factory=dict)

    def change(self, side: str, price: int, qty: int) -> None:
        """One order-book change: a new update id, recorded for the next depth event."""
        self.update_id += 1
        if not self.first_pending:
            self.first_pending = self.update_id
        (self.pending_bids if side == "B" else self.pending_asks)[price] = qty


class _Client(WebSocketClient[str]):
    """A Binance session: raw (``/ws``) or combined (``/stream``) framing."""

    def __init__(self, venue: BinanceSimulator, link: WebSocketLink, combined: bool) -> None:
        super().__init__(venue, link)
        self.combined = combined
        self.skip_depth: set[str] = set()
        self.corrupt_depth: set[str] = set()
        self.requests = RateWindow(max(1, venue.messages_per_second), 1.0)
        self.depth_since: dict[str, float] = {}
        """Symbol -> monotonic time its diff-depth stream was subscribed."""

    def push(self, stream: str, payload: str) -> None:
        if self.muted and stream.partition("@")[2] in self.muted:
            return
        if self.combined:
            self.send(f'{{"stream":"{stream}","data":{payload}}}')
        else:
            self.send(payload)


class BinanceSimulator(WebSocketVenue[_Client, str]):
    """A Binance-style market-data venue on loopback with fault injection.

    ``async with BinanceSimulator(["BTCUSDT"], rate=200) as sim:`` then connect to
    ``sim.endpoint`` (``ws://127.0.0.1:PORT/ws``); REST snapshots are served on
    ``sim.rest_url``. Or ``await sim.serve(ready)`` in a task.
    """

    venue = "binance"
    name = "Binance"
    path = "/ws"
    malformed = MALFORMED

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 50.0,
        *,
        futures: bool = False,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 60.0,
        messages_per_second: int = 5,
        max_streams: int = 1024,
        depth_interval_s: float = 0.1,
        shutdown_grace_s: float = 0.5,
        refuse_symbols: Sequence[str] = (),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            symbols,
            rate,
            seed=seed,
            refuse_symbols=[s.upper() for s in refuse_symbols],
            **kwargs,
        )
        self.futures = futures
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.messages_per_second = messages_per_second
        self.max_streams = max_streams
        self.depth_interval_s = depth_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        ids = random.Random(f"{seed}:update_ids") if seed is not None else random.Random()
        self._depth = {s: _Depth(ids.randint(1_000, 9_999_999)) for s in self.symbols}
        self._last_depth = time.monotonic()
        self._ignore_pongs = False
        self._snapshot_at: dict[str, float] = {}
        self.snapshots_served = 0
        """REST depth snapshots answered so far."""
        self.rate_limit_violations = 0
        """Clients disconnected for sending more than ``messages_per_second``."""
        self.request_times: list[float] = []

    def _instrument(self, symbol: str, depth: int) -> Instrument:
        first, tick = _PRICES.get(symbol, (100 * 10**9, 10**6))
        return Instrument(
            symbol, first, tick, lot=_LOT, depth=depth, level_lots=(1, 5_000), trade_lots=(1, 50)
        )

    def _symbol(self, symbol: str) -> str:
        return symbol.upper()

    # -- addresses -------------------------------------------------------------------------------
    @property
    def combined_endpoint(self) -> str:
        """The combined-stream URL (``.../stream``)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host_port}/stream"

    @property
    def rest_url(self) -> str:
        """The REST base URL (same port)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host_port}"

    # -- faults ----------------------------------------------------------------------------------
    async def skip_sequence(self) -> None:
        """The next depth update of every symbol never reaches any client: a lost message
        (its ``U..u`` range is missing from the chain).

        The update lost is the first one after a REST snapshot of the symbol was served
        to someone since the client subscribed its depth: a loss before the client has
        a snapshot is one the snapshot covers, which no client could (or should) notice.
        """
        for c in self.connected():
            c.skip_depth.update(self.symbols)

    async def refuse_symbol(self, symbol: str, on: bool = True) -> None:
        """While on, subscriptions of any stream of ``symbol`` are refused (error 2)."""
        await super().refuse_symbol(symbol.upper(), on)

    def corrupt_next_depth(self) -> None:
        """The next depth update of every symbol reaches every client truncated."""
        for c in self.connected():
            c.corrupt_depth.update(self.symbols)

    def ignore_pongs(self, on: bool = True) -> None:
        """While on, the server treats every pong as lost: after ``ping_timeout_s`` past
        its next ping it disconnects the client."""
        self._ignore_pongs = on

    def server_shutdown(self) -> None:
        """Send ``serverShutdown`` to every client, then close each ``shutdown_grace_s``
        later (code 1001), as Binance does before maintenance."""
        event = f'{{"e":"serverShutdown","E":{_now_ms()}}}'
        for c in self.connected():
            c.send(event)
            c.start_soon(self._close_later, c)

    async def _close_later(self, client: _Client) -> None:
        await anyio.sleep(self.shutdown_grace_s)
        await client.ws.close(1001, "server shutdown")

    # -- inspection ------------------------------------------------------------------------------
    def last_update_id(self, symbol: str) -> int:
        """The id of the latest book change of ``symbol``."""
        return self._depth[symbol].update_id

    def set_level(self, symbol: str, side: str, price: str, qty: str) -> int:
        """Put (qty "0": remove) one level from decimal text; it reaches clients in the next
        depth event. Returns its fixed-point (1e-9) price."""
        self._check_live_market()
        p = _parse8(price) * 10
        side = "B" if side in ("B", "bid") else "A"
        self._feed(self.market.set_level(symbol, side, p, _parse8(qty) * 10))
        return p

    def extensions(self) -> list[list[str]]:
        """Each open session's negotiated WebSocket extensions (``permessage-deflate``)."""
        return [[e.name for e in c.ws.protocol.extensions] for c in self.connected()]

    def _snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        bids, asks = self.market.book(symbol).levels(limit)
        return {
            "lastUpdateId": self._depth[symbol].update_id,
            "bids": [[fmt8(p), fmt8(q)] for p, q in bids],
            "asks": [[fmt8(p), fmt8(q)] for p, q in asks],
        }

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
        await self.wait_while_stalled()
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
            body = self._snapshot(symbol, limit) if symbol in self.market else None
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
    def new_client(self, link: ClientLink) -> _Client:
        assert isinstance(link, WebSocketLink)
        request = link.ws.request
        path = urlsplit(request.path if request is not None else "/ws")
        client = _Client(self, link, combined=path.path.startswith("/stream"))
        self._add_streams(client, _url_streams(path.path, path.query))
        return client

    def on_connect(self, client: _Client) -> None:
        client.start_soon(self._pinger, client)
        if self.replaying and client.subscriptions:
            self._replay_subscribed(client, set())  # streams in the URL: the replay starts

    def on_text(self, client: _Client, text: str) -> None:
        now = time.monotonic()
        if client.requests.delay(now) > 0:
            # Binance: more than 5 incoming messages a second closes the connection
            self.rate_limit_violations += 1
            client.close_code = (1008, "Too many requests")
            return
        client.requests.record(now)
        self.request_times.append(now)
        client.send(self._on_request(client, text))

    def _on_request(self, client: _Client, message: str) -> str:
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
            return json.dumps({"result": sorted(client.subscriptions), "id": req_id})
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
            if self.symbol_refused(sym.upper()):
                return _error(2, f"Invalid request: unknown symbol in {stream!r}", req_id)
        if method == "SUBSCRIBE":
            if len(client.subscriptions | set(params)) > self.max_streams:
                return _error(2, f"Invalid request: more than {self.max_streams} streams", req_id)
            self._add_streams(client, params)
        else:
            client.subscriptions.difference_update(params)
        return json.dumps({"result": None, "id": req_id})

    @staticmethod
    def _add_streams(client: _Client, streams: list[str]) -> None:
        client.subscriptions.update(streams)
        if streams:
            client.subscribed.set()
        now = time.monotonic()
        for stream in streams:
            sym, _, channel = stream.partition("@")
            if channel == "depth" or channel.startswith("depth@"):
                client.depth_since.setdefault(sym.upper(), now)

    async def _pinger(self, client: _Client) -> None:
        """Ping every ``ping_interval_s``; no pong within ``ping_timeout_s`` disconnects."""
        ws = client.ws
        while True:
            await anyio.sleep(self.ping_interval_s)
            await self.wait_while_stalled()
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

    # -- replay ------------------------------------------------------------------------------------
    def _replay_stream(self, message: Any) -> str | None:
        if isinstance(message, dict) and isinstance(message.get("stream"), str):
            return str(message["stream"])
        return None

    def _stream_symbol(self, stream: str) -> str:
        return stream.partition("@")[0].upper()

    def _is_muted(self, client: _Client, key: str) -> bool:
        return False  # a muted stream stays subscribed: ``push`` leaves its data out

    def _replay_send(self, client: _Client, frame: ReplayFrame[str]) -> None:
        if client.combined:
            client.send(frame.text)
        else:
            client.send(json.dumps(json.loads(frame.text)["data"], separators=(",", ":")))

    # -- market ------------------------------------------------------------------------------------
    def _emit(self, stream: str, payload: str) -> None:
        for c in self.connected():
            if stream in c.subscriptions:
                c.push(stream, payload)

    def _on_trade(self, book: Book, ts: int, trade: MarketTrade) -> None:
        ms = ts // 1_000_000
        trade_id, agg_id = _TRADE_IDS + trade.trade_id, _AGG_IDS + trade.trade_id
        flag = "true" if trade.side == "A" else "false"  # the maker bought: a seller hit it
        sym = book.symbol
        low = sym.lower()
        p, q = fmt8(trade.price), fmt8(trade.size)
        self._emit(
            f"{low}@trade",
            f'{{"e":"trade","E":{ms},"s":"{sym}","t":{trade_id},"p":"{p}","q":"{q}",'
            f'"T":{ms},"m":{flag},"M":true}}',
        )
        self._emit(
            f"{low}@aggTrade",
            f'{{"e":"aggTrade","E":{ms},"s":"{sym}","a":{agg_id},"p":"{p}","q":"{q}",'
            f'"f":{trade_id},"l":{trade_id},"T":{ms},"m":{flag},"M":true}}',
        )

    def _on_level(self, book: Book, change: LevelChange) -> None:
        self._depth[book.symbol].change(change.side, change.price, change.size)

    def _on_top(self, book: Book, ts: int) -> None:
        ms = ts // 1_000_000
        bid, bid_qty, ask, ask_qty = book.top()
        sym = book.symbol
        u = self._depth[sym].update_id
        if self.futures:
            payload = (
                f'{{"e":"bookTicker","u":{u},"E":{ms},"T":{ms},"s":"{sym}",'
                f'"b":"{fmt8(bid)}","B":"{fmt8(bid_qty)}","a":"{fmt8(ask)}",'
                f'"A":"{fmt8(ask_qty)}"}}'
            )
        else:
            payload = (
                f'{{"u":{u},"s":"{sym}","b":"{fmt8(bid)}","B":"{fmt8(bid_qty)}",'
                f'"a":"{fmt8(ask)}","A":"{fmt8(ask_qty)}"}}'
            )
        self._emit(f"{sym.lower()}@bookTicker", payload)

    def after_market_step(self, ts: int) -> None:
        now = time.monotonic()
        if now - self._last_depth >= self.depth_interval_s:
            self._last_depth = now
            for sym in self.symbols:
                self._flush_depth(sym, ts // 1_000_000)

    def _flush_depth(self, sym: str, ts: int) -> None:
        """One ``depthUpdate`` with every change since the last one (ids ``U..u``)."""
        d = self._depth[sym]
        if not d.first_pending:
            return
        first, last = d.first_pending, d.update_id
        bids = ",".join(f'["{fmt8(p)}","{fmt8(q)}"]' for p, q in d.pending_bids.items())
        asks = ",".join(f'["{fmt8(p)}","{fmt8(q)}"]' for p, q in d.pending_asks.items())
        pu = f',"pu":{d.last_sent_u}' if self.futures else ""
        payload = (
            f'{{"e":"depthUpdate","E":{ts},"T":{ts},"s":"{sym}","U":{first},"u":{last}{pu},'
            f'"b":[{bids}],"a":[{asks}]}}'
            if self.futures
            else f'{{"e":"depthUpdate","E":{ts},"s":"{sym}","U":{first},"u":{last},'
            f'"b":[{bids}],"a":[{asks}]}}'
        )
        d.first_pending = 0
        d.last_sent_u = last
        d.pending_bids = {}
        d.pending_asks = {}
        low = sym.lower()
        for c in self.connected():
            for stream in c.subscriptions:
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
            if any(s.startswith(stream) for c in self.connected() for s in c.subscriptions):
                data = json.dumps(self._snapshot(sym, n), separators=(",", ":"))
                for c in self.connected():
                    for s in c.subscriptions:
                        if s in (stream, stream + "@100ms"):
                            c.push(s, data)


# -- helpers ---------------------------------------------------------------------------------------
def _error(code: int, msg: str, req_id: int | None) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": req_id})


def _json_response(connection: ServerConnection, status: HTTPStatus, body: object) -> HttpResponse:
    response = connection.respond(status, json.dumps(body, separators=(",", ":")))
    response.headers["Content-Type"] = "application/json"
    return response


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


def _url_streams(path: str, query: str) -> list[str]:
    out: list[str] = []
    if path.startswith("/ws/"):
        out.extend(s for s in path[4:].split("/") if s)
    for value in parse_qs(query).get("streams", []):
        out.extend(s for s in value.split("/") if s)
    return out
