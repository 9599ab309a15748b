"""Kraken spot WebSocket v2 (``kraken``): ``wss://ws.kraken.com/v2``.

Sans-I/O. Kraken v2 writes prices and quantities as JSON *numbers* carrying the
pair's full precision (``0.00100000``). They are decoded as ``msgspec.Raw`` —
the number's own text, never a float — and handed as decimal bytes to the
sink's compiled ``*_bytes`` methods (or ``parse_fixed_bytes`` for the book).
The same text is what the book checksum needs, so the book keeps it per level.

Channels: ``ticker`` (-> ``Quote``), ``trade`` (-> ``Trade``; ``side`` is the
taker's), ``book`` (snapshot + updates -> a local book, ``BookSnapshot`` +
``BookUpdate``; ``book@N`` subscribes depth N, default 10). ``heartbeat`` and
``status`` messages are handled, not mapped.

Book integrity (Kraken's "Book checksum (WebSocket v2)" guide): after each
message's levels are applied and the book truncated to the subscribed depth,
the CRC32 of the top 10 asks (low to high) then the top 10 bids (high to low),
each level's price then qty with the ``.`` removed and leading zeros stripped,
all concatenated, must equal the message's ``checksum`` (unsigned). A mismatch
publishes a ``Gap`` (reason says "checksum"), drops the book and resubscribes
the book channel of that symbol for a fresh snapshot (``Resubscribe``).

Replies: a subscribe naming several symbols is answered by one ack per symbol,
each with the request's ``req_id``; the request completes when every symbol is
acknowledged, and fails at the first ``success: false``.
"""

from __future__ import annotations

import heapq
import re
import time
import zlib
from collections.abc import Sequence
from typing import Final

import msgspec

from hub_core.plugin import (
    DecodeError,
    OrderBook,
    Side,
    Sink,
    SubscriptionError,
    parse_fixed_bytes,
)
from hub_plugin_websocket.codec import (
    Ack,
    Dialect,
    DialectEvent,
    DialectSession,
    Notice,
    RateLimits,
    Refused,
    Request,
    Resubscribe,
    SessionConfig,
    SessionCounters,
)
from hub_plugin_websocket.dialects.coinbase import rfc3339_ns

__all__ = [
    "RESYNC_REFUSALS_TO_ERROR",
    "KRAKEN_LIMITS",
    "KrakenDialect",
    "KrakenSession",
    "Resubscribe",
    "book_checksum",
]

_BUY: Final[str] = str(Side.BUY)
_SELL: Final[str] = str(Side.SELL)
_BID: Final[str] = str(Side.BID)
_ASK: Final[str] = str(Side.ASK)
_SYMBOL_RE: Final = re.compile(r"[A-Z0-9.]{1,16}/[A-Z0-9.]{1,16}")
_BOOK_RE: Final = re.compile(r"book(?:@(10|25|100|500|1000))?")
_CHECKSUM_LEVELS: Final = 10
RESYNC_REFUSALS_TO_ERROR: Final = 3
"""Refused resubscriptions of one book in a row past which a per-symbol error is raised
through the sink (``sink.symbol_error``: shown per symbol until a resync is accepted)."""
_RESYNC_RETRY_S: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Backoff between retries of a refused resync (the last one repeats)."""

KRAKEN_LIMITS: Final = RateLimits(
    connections=150,
    connections_interval_s=600.0,
    messages_per_second=5.0,
    streams_per_connection=1000,
    streams_per_message=100,
    snapshots_per_second=1.0,
)
"""Kraken: about 150 connection attempts per rolling 10 minutes per IP before the
edge (Cloudflare) blocks the address. Kraken publishes no per-connection message
or subscription cap for public channels; 5 control messages per second (paced at
4) and 1000 streams per connection are our own conservative bounds. Books come
over the WebSocket, so ``snapshots_per_second`` is unused."""


# -- wire types ------------------------------------------------------------------------------
class _TickerData(msgspec.Struct, gc=False):
    symbol: str
    bid: msgspec.Raw
    bid_qty: msgspec.Raw
    ask: msgspec.Raw
    ask_qty: msgspec.Raw
    timestamp: str = ""


class _TickerMsg(msgspec.Struct, tag_field="channel", tag="ticker", gc=False):
    type: str
    data: list[_TickerData]


class _TradeData(msgspec.Struct, gc=False):
    symbol: str
    side: str
    price: msgspec.Raw
    qty: msgspec.Raw
    ord_type: str = ""
    trade_id: int = 0
    timestamp: str = ""


class _TradeMsg(msgspec.Struct, tag_field="channel", tag="trade", gc=False):
    type: str
    data: list[_TradeData]


class _Level(msgspec.Struct, gc=False):
    price: msgspec.Raw
    qty: msgspec.Raw


class _BookData(msgspec.Struct, gc=False):
    symbol: str
    bids: list[_Level]
    asks: list[_Level]
    checksum: int
    timestamp: str = ""


class _BookMsg(msgspec.Struct, tag_field="channel", tag="book", gc=False):
    type: str
    data: list[_BookData]


class _HeartbeatMsg(msgspec.Struct, tag_field="channel", tag="heartbeat", gc=False):
    pass


class _StatusData(msgspec.Struct, gc=False):
    system: str = ""
    api_version: str = ""
    connection_id: int = 0
    version: str = ""


class _StatusMsg(msgspec.Struct, tag_field="channel", tag="status", gc=False):
    type: str = ""
    data: list[_StatusData] = []


_Data = _TickerMsg | _TradeMsg | _BookMsg | _HeartbeatMsg | _StatusMsg

_NO_RAW: Final = msgspec.Raw(b"")


class _Reply(msgspec.Struct, gc=False):
    """A method reply (``subscribe``, ``unsubscribe``, ``pong``) or a channel we do not map."""

    method: str = ""
    success: bool | None = None
    error: str = ""
    req_id: int | None = None
    symbol: str = ""
    result: msgspec.Raw = _NO_RAW
    channel: str = ""


_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, DecodeError, ValueError)


def _number(raw: msgspec.Raw) -> bytes:
    """A JSON number's own text (a quoted decimal is accepted too)."""
    text = bytes(raw)
    if text[:1] == b'"' and text[-1:] == b'"':
        return text[1:-1]
    return text


def _token(text: bytes, value: int, decimals: int) -> bytes:
    """One checksum field: the venue's digits without ``.`` or leading zeros.

    Text in exponent form (which a JSON encoder may emit for tiny numbers) is
    rewritten at ``decimals`` places, the precision the book's plain numbers show."""
    if b"e" in text or b"E" in text:
        whole, frac = divmod(abs(value), 1_000_000_000)
        digits = f"{frac:09d}"[:decimals] if decimals else ""
        text = f"{whole}{digits}".encode()
    return text.replace(b".", b"").lstrip(b"0")


def _decimals(text: bytes) -> int:
    dot = text.find(b".")
    return 0 if dot < 0 or b"e" in text or b"E" in text else len(text) - dot - 1


def book_checksum(asks: Sequence[bytes], bids: Sequence[bytes]) -> int:
    """Kraken's CRC32 over ready tokens (``price digits + qty digits`` per level):
    the top 10 asks best first, then the top 10 bids best first; unsigned."""
    return zlib.crc32(b"".join(asks[:_CHECKSUM_LEVELS]) + b"".join(bids[:_CHECKSUM_LEVELS]))


class _Book:
    """One symbol's book: fixed-point levels plus each level's checksum token."""

    __slots__ = (
        "asks_tok",
        "bids_tok",
        "blind_since",
        "book",
        "live",
        "price_dec",
        "qty_dec",
        "resyncing",
    )

    def __init__(self) -> None:
        self.book = OrderBook()
        self.bids_tok: dict[int, bytes] = {}
        self.asks_tok: dict[int, bytes] = {}
        self.live = False
        self.resyncing = False
        self.blind_since = 0
        """Wall-clock ns up to which a Gap covers a book being resynchronised (0: none)."""
        self.price_dec = 0
        self.qty_dec = 0

    def clear(self) -> None:
        self.book.clear()
        self.bids_tok.clear()
        self.asks_tok.clear()
        self.live = False

    def checksum(self) -> int:
        asks = heapq.nsmallest(_CHECKSUM_LEVELS, self.asks_tok)
        bids = heapq.nlargest(_CHECKSUM_LEVELS, self.bids_tok)
        a, b = self.asks_tok, self.bids_tok
        return book_checksum([a[p] for p in asks], [b[p] for p in bids])


# shared by every session: msgspec decoders and encoders hold no per-call state, and
# an idle connection should not carry its own copies
_DEC: Final = msgspec.json.Decoder(_Data)
_DEC_REPLY: Final = msgspec.json.Decoder(_Reply)
_ENC: Final = msgspec.json.Encoder()


class KrakenSession(DialectSession):
    """One connection's worth of Kraken v2 protocol state (requests in flight, books)."""

    def __init__(self, sink: Sink, config: SessionConfig, limits: RateLimits) -> None:
        self.counters = SessionCounters()
        self._channels = config.channels
        self._per_message = limits.streams_per_message
        self._depth = 10
        for ch in config.channels:
            m = _BOOK_RE.fullmatch(ch)
            if m and m.group(1):
                self._depth = int(m.group(1))
        self._next_id = 1
        self._streams: set[str] = set()
        self._symbols: set[str] = set()
        self._books: dict[str, _Book] = {}
        # req_id -> [request, acks still expected]
        self._inflight: dict[int, tuple[Request, list[int]]] = {}
        self._internal: set[int] = set()
        self._resync_refusals: dict[str, int] = {}
        """symbol -> resubscriptions of its book the venue refused in a row"""
        self._dec = _DEC
        self._dec_reply = _DEC_REPLY
        self._enc = _ENC
        self.rebind(sink)

    # -- subscriptions ---------------------------------------------------------------------
    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self._streams)

    def _venue_channel(self, channel: str) -> str:
        return "book" if _BOOK_RE.fullmatch(channel) else channel

    def _request(
        self, op: str, channel: str, symbols: list[str], *, internal: bool = False
    ) -> Request:
        req_id = self._next_id
        self._next_id = 1 if req_id >= 2**31 - 1 else req_id + 1
        venue = self._venue_channel(channel)
        params: dict[str, object] = {"channel": venue, "symbol": symbols}
        if venue == "book":
            params["depth"] = self._depth
        elif venue == "trade" and op == "subscribe":
            # no replay of the last 50 trades: after a reconnect they would be duplicates
            params["snapshot"] = False
        payload = self._enc.encode({"method": op, "params": params, "req_id": req_id})
        streams = tuple(f"{venue}:{s}" for s in symbols)
        req = Request(req_id, op, payload, streams, tuple(symbols))
        self._inflight[req_id] = (req, [len(symbols)])
        if internal:
            self._internal.add(req_id)
        return req

    def _requests(self, op: str, symbols: list[str]) -> list[Request]:
        out: list[Request] = []
        step = self._per_message
        for ch in self._channels:
            for i in range(0, len(symbols), step):
                out.append(self._request(op, ch, symbols[i : i + step]))
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[Request]:
        wanted = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        for sym in wanted:
            self._symbols.add(sym)
            for ch in self._channels:
                venue = self._venue_channel(ch)
                self._streams.add(f"{venue}:{sym}")
                if venue == "book":
                    self._books[sym] = _Book()
        return self._requests("subscribe", wanted)

    def unsubscribe(self, symbols: Sequence[str]) -> list[Request]:
        gone = [s for s in dict.fromkeys(symbols) if s in self._symbols]
        for sym in gone:
            self._symbols.discard(sym)
            self._books.pop(sym, None)
            self._streams.difference_update(
                f"{self._venue_channel(ch)}:{sym}" for ch in self._channels
            )
        return self._requests("unsubscribe", gone)

    # -- frames ----------------------------------------------------------------------------
    def feed(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """One text frame: ticks to the sink; replies and resyncs returned. Never raises."""
        self.counters.frames += 1
        try:
            msg = self._dec.decode(frame)
        except msgspec.ValidationError:
            return self._other(frame)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"kraken: {type(exc).__name__}: {exc}")
            return None
        try:
            if isinstance(msg, _TradeMsg):
                self._on_trade(msg, ts_recv)
                return None
            if isinstance(msg, _BookMsg):
                return self._on_book(msg, ts_recv)
            if isinstance(msg, _TickerMsg):
                self._on_ticker(msg, ts_recv)
                return None
            if isinstance(msg, _HeartbeatMsg):
                self._ignored("heartbeat")
                return None
            return self._on_status(msg)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"kraken: {type(msg).__name__[1:]}: {exc}")
            return None

    def _ignored(self, kind: str) -> None:
        c = self.counters
        c.ignored += 1
        c.by_kind[kind] = c.by_kind.get(kind, 0) + 1

    def _on_ticker(self, msg: _TickerMsg, ts_recv: int) -> None:
        quote = self._quote_bytes
        for t in msg.data:
            if t.symbol not in self._symbols:
                self._ignored("ticker (not subscribed)")
                continue
            ts_event = rfc3339_ns(t.timestamp) if t.timestamp else ts_recv
            quote(
                t.symbol,
                _number(t.bid),
                _number(t.bid_qty),
                _number(t.ask),
                _number(t.ask_qty),
                ts_event,
                ts_recv,
                0,
            )

    def _on_trade(self, msg: _TradeMsg, ts_recv: int) -> None:
        if msg.type == "snapshot":
            # trades from before the subscription (we ask for none; a venue may send some)
            self._ignored("trade snapshot")
            return
        trade = self._trade_bytes
        # check every item before publishing any: a frame is taken whole or not at all
        items: list[tuple[_TradeData, str, int]] = []
        for t in msg.data:
            if t.side == "buy":
                side = _BUY  # Kraken's side is the taker's: the aggressor bought
            elif t.side == "sell":
                side = _SELL
            else:
                raise ValueError(f"trade side {t.side!r} is neither buy nor sell")
            items.append((t, side, rfc3339_ns(t.timestamp) if t.timestamp else ts_recv))
        for t, side, ts_event in items:
            if t.symbol not in self._symbols:
                self._ignored("trade (not subscribed)")
                continue
            trade(
                t.symbol,
                _number(t.price),
                _number(t.qty),
                side,
                ts_event,
                ts_recv,
                t.trade_id,
                str(t.trade_id) if t.trade_id else "",
            )

    def _on_status(self, msg: _StatusMsg) -> DialectEvent | None:
        self._ignored("status")
        for d in msg.data:
            if d.system and d.system != "online":
                return Notice(f"kraken: system status {d.system!r} (not trading normally)")
        return None

    # -- books -----------------------------------------------------------------------------
    def _on_book(self, msg: _BookMsg, ts_recv: int) -> DialectEvent | None:
        event: DialectEvent | None = None
        for d in msg.data:
            st = self._books.get(d.symbol)
            if st is None:
                self._ignored("book (not subscribed)")
                continue
            if msg.type == "snapshot":
                event = self._on_snapshot(d, st, ts_recv) or event
            elif msg.type == "update":
                event = self._on_update(d, st, ts_recv) or event
            else:
                raise ValueError(f"book message type {msg.type!r}")
        return event

    def _parse_levels(self, st: _Book, levels: list[_Level]) -> list[tuple[int, int, bytes, bytes]]:
        out: list[tuple[int, int, bytes, bytes]] = []
        for lv in levels:
            ptext = _number(lv.price)
            qtext = _number(lv.qty)
            out.append((parse_fixed_bytes(ptext), parse_fixed_bytes(qtext), ptext, qtext))
        return out

    def _set(self, st: _Book, side: str, level: tuple[int, int, bytes, bytes]) -> str:
        price, size, ptext, qtext = level
        toks = st.bids_tok if side == _BID else st.asks_tok
        action = st.book.apply(side, price, size)
        if size:
            st.price_dec = max(st.price_dec, _decimals(ptext))
            st.qty_dec = max(st.qty_dec, _decimals(qtext))
            toks[price] = _token(ptext, price, st.price_dec) + _token(qtext, size, st.qty_dec)
        else:
            toks.pop(price, None)
        return action

    def _on_snapshot(self, d: _BookData, st: _Book, ts_recv: int) -> DialectEvent | None:
        bids = self._parse_levels(st, d.bids)
        asks = self._parse_levels(st, d.asks)
        st.clear()  # a snapshot replaces the book whole: no level from before survives
        for lv in bids:
            self._set(st, _BID, lv)
        for lv in asks:
            self._set(st, _ASK, lv)
        ts_event = rfc3339_ns(d.timestamp) if d.timestamp else ts_recv
        st.book.stamp(ts_event, 0)
        st.resyncing = False
        computed = st.checksum()
        if computed != d.checksum:
            # not even the snapshot adds up: publish nothing of it and ask again
            return self._resync(
                d.symbol, st, ts_event, f"snapshot checksum {d.checksum}, {computed} computed"
            )
        st.live = True
        st.blind_since = 0
        if self._resync_refusals.pop(d.symbol, 0) >= RESYNC_REFUSALS_TO_ERROR:
            self._sink.symbol_ok(d.symbol)
        b, a = st.book.levels()
        self._sink.book_snapshot(d.symbol, b, a, ts_event, ts_recv, 0)
        return None

    def _on_update(self, d: _BookData, st: _Book, ts_recv: int) -> DialectEvent | None:
        if st.resyncing:
            return None  # the old subscription's tail: the new snapshot replaces it all
        ts_event = rfc3339_ns(d.timestamp) if d.timestamp else ts_recv
        if not st.live:
            return self._resync(d.symbol, st, ts_event, "an update before the snapshot")
        try:
            bids = self._parse_levels(st, d.bids)
            asks = self._parse_levels(st, d.asks)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"kraken: {d.symbol} book update: {exc}")
            return self._resync(d.symbol, st, ts_event, "an unreadable update")
        publish = self._sink.book_update
        symbol = d.symbol
        changed: list[tuple[str, int, int, str]] = []
        for lv in bids:
            action = self._set(st, _BID, lv)
            if action:
                changed.append((_BID, lv[0], lv[1], action))
        for lv in asks:
            action = self._set(st, _ASK, lv)
            if action:
                changed.append((_ASK, lv[0], lv[1], action))
        # levels pushed out of the subscribed depth get no qty 0 from the venue
        depth = self._depth
        book = st.book
        for worst in book.trim(_BID, depth):
            st.bids_tok.pop(worst, None)
            changed.append((_BID, worst, 0, "C"))
        for worst in book.trim(_ASK, depth):
            st.asks_tok.pop(worst, None)
            changed.append((_ASK, worst, 0, "C"))
        computed = st.checksum()
        if computed != d.checksum:
            return self._resync(
                symbol,
                st,
                ts_event,
                f"checksum {d.checksum} from the venue, {computed} computed",
            )
        for side, price, size, action in changed:
            publish(symbol, side, price, size, ts_event, ts_recv, action, 0)
        book.stamp(ts_event, 0)
        return None

    def _resync(self, symbol: str, st: _Book, ts: int, what: str) -> Resubscribe:
        """``Gap``, drop the book, and resubscribe its channel for a fresh snapshot."""
        self._sink.gap(
            symbol,
            st.book.last_update_ns or ts,
            ts,
            f"checksum/sequence break in the {symbol} book ({what}); "
            "book resynchronised from a new snapshot",
        )
        st.clear()
        st.resyncing = True
        st.blind_since = ts
        book_channel = next(ch for ch in self._channels if _BOOK_RE.fullmatch(ch))
        requests = (
            self._request("unsubscribe", book_channel, [symbol], internal=True),
            self._request("subscribe", book_channel, [symbol], internal=True),
        )
        return Resubscribe(
            f"kraken: the {symbol} book must be rebuilt from a new snapshot", requests
        )

    def _resync_refused(self, req: Request, error: str) -> DialectEvent | None:
        """The venue refused the subscribe that was to bring a book back: a ``Gap`` for
        the time it has been blind, a retry with backoff, and past
        ``RESYNC_REFUSALS_TO_ERROR`` refusals a per-symbol error through the sink (the book
        must never stay frozen without a word)."""
        now = time.time_ns()
        event: DialectEvent | None = None
        for symbol in req.symbols:
            st = self._books.get(symbol)
            if st is None:  # unsubscribed meanwhile
                continue
            n = self._resync_refusals.get(symbol, 0) + 1
            self._resync_refusals[symbol] = n
            self._sink.gap(
                symbol,
                st.blind_since or now,
                now,
                f"the {symbol} book resync was refused by the venue ({error}); "
                f"refusal {n}, retrying",
            )
            st.blind_since = now
            if n == RESYNC_REFUSALS_TO_ERROR:
                err = SubscriptionError(
                    f"kraken: the {symbol} book cannot be resynchronised: the venue refused "
                    f"{n} resubscriptions ({error}); the book publishes nothing until one "
                    "is accepted",
                    refused={symbol: error},
                    hint="the hub keeps retrying; check the symbol and the book depth",
                )
                # shown per symbol (symbol_states(), a state event, metrics) until the
                # venue accepts a resync
                self._sink.symbol_error(symbol, err.reason)
            delay = _RESYNC_RETRY_S[min(n, len(_RESYNC_RETRY_S)) - 1]
            book_channel = next(ch for ch in self._channels if _BOOK_RE.fullmatch(ch))
            retry = self._request("subscribe", book_channel, [symbol], internal=True)
            event = Resubscribe(
                f"kraken: the {symbol} book resync was refused ({error}); retrying in {delay:g}s",
                (retry,),
                delay,
            )
        return event

    def resync_refusals(self, symbol: str) -> int:
        """How many resubscriptions of ``symbol``'s book the venue refused in a row."""
        return self._resync_refusals.get(symbol, 0)

    # -- replies ---------------------------------------------------------------------------
    def _other(self, frame: bytes) -> DialectEvent | None:
        try:
            reply = self._dec_reply.decode(frame)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"kraken: {type(exc).__name__}: {exc}")
            return None
        if reply.method in ("subscribe", "unsubscribe"):
            return self._on_reply(reply)
        if reply.method == "pong":
            self._ignored("pong")
            return None
        if reply.channel and reply.channel not in ("ticker", "trade", "book"):
            self._ignored(reply.channel)  # a channel we do not map (instrument, ohlc, ...)
            return None
        if reply.method:
            self._ignored(reply.method)
            return None
        self._sink.malformed(f"kraken: unrecognised message {bytes(frame[:80])!r}")
        return None

    def _on_reply(self, reply: _Reply) -> DialectEvent | None:
        entry = self._inflight.get(reply.req_id) if reply.req_id is not None else None
        if entry is None:
            if reply.success is False:
                return Refused(None, 0, reply.error or f"{reply.method} failed")
            return None  # a late ack of a request already completed or refused
        req, remaining = entry
        internal = req.id in self._internal
        if reply.success is False:
            del self._inflight[req.id]
            self._internal.discard(req.id)
            message = f"{reply.symbol}: {reply.error}" if reply.symbol else reply.error
            if internal:
                if req.op == "subscribe":
                    return self._resync_refused(req, reply.error or "refused")
                # an unsubscribe of a stream the venue no longer has: the subscribe
                # that follows it is what brings the book back
                return Notice(f"kraken: resync unsubscribe refused: {message}")
            if req.op == "subscribe":
                for sym in req.symbols:
                    self._symbols.discard(sym)
                    self._books.pop(sym, None)
                self._streams.difference_update(req.streams)
            return Refused(req.id, 0, message or f"{req.op} failed")
        remaining[0] -= 1
        if remaining[0] > 0:
            return None
        del self._inflight[req.id]
        self._internal.discard(req.id)
        if internal:
            return None
        return Ack(req.id, list(req.streams))

    def book(self, symbol: str) -> OrderBook | None:
        """The local book of ``symbol`` once a snapshot made it live (tests, diagnostics)."""
        st = self._books.get(symbol)
        return st.book if st is not None and st.live else None

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (also the constructor's binding)."""
        self._sink = sink
        self._trade_bytes = sink.trade_bytes
        self._quote_bytes = sink.quote_bytes


class KrakenDialect(Dialect):
    """Kraken spot WebSocket API v2 (``wss://ws.kraken.com/v2``)."""

    name = "kraken"
    description = "Kraken v2: ticker, trade, book with CRC32 checksum"
    limits = KRAKEN_LIMITS
    channels: tuple[str, ...] = (
        "ticker",
        "trade",
        "book",
        "book@10",
        "book@25",
        "book@100",
        "book@500",
        "book@1000",
    )
    default_channels: tuple[str, ...] = ("trade", "ticker")

    def validate_channels(self, channels: Sequence[str]) -> tuple[str, ...]:
        out = super().validate_channels(channels)
        if sum(1 for ch in out if _BOOK_RE.fullmatch(ch)) > 1:
            raise ValueError("at most one book channel (book or book@N) per connection")
        return out

    def validate_symbol(self, symbol: str) -> str:
        if not _SYMBOL_RE.fullmatch(symbol):
            hint = " (write it in upper case)" if _SYMBOL_RE.fullmatch(symbol.upper()) else ""
            raise ValueError(f"{symbol!r} is not a {self.name} pair like BTC/USD{hint}")
        return symbol

    def new_session(self, sink: Sink, config: SessionConfig) -> KrakenSession:
        return KrakenSession(sink, config, self.limits)
