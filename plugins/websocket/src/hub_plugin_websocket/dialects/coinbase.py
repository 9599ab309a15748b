"""Coinbase Exchange market-data feed (``coinbase``): ``wss://ws-feed.exchange.coinbase.com``.

Sans-I/O. Frames go from bytes straight to msgspec ``Struct``s (a tagged union
on Coinbase's ``type`` field) and from there to the sink's compiled ``*_text``
methods, which parse the decimal strings to fixed point exactly.

Channels: ``ticker`` (best bid/ask -> ``Quote``), ``matches`` (-> ``Trade``),
``level2`` (``snapshot`` + ``l2update`` -> a local book, ``BookSnapshot`` +
``BookUpdate``) and ``heartbeat``.

Protocol facts this module relies on (Coinbase Exchange WebSocket docs):

- A ``subscribe`` must arrive within 5 seconds of the connection opening or the
  venue disconnects. ``CoinbaseDialect.subscribe_deadline_s`` states it; the
  generic connector has no field for it yet (it subscribes as soon as the hub
  asks, which the hub does right after connecting).
- Replies carry no request id: every ``subscribe``/``unsubscribe`` is answered
  by one ``subscriptions`` message (the full current list), and a refusal is an
  ``error`` message. The venue answers in order on one connection, so replies
  complete the oldest request in flight (FIFO).
- In ``match`` messages ``side`` is the **maker's** side: ``"sell"`` means a
  resting sell order was lifted, so the aggressor bought (and vice versa).
- ``sequence`` is per product but counts every message of the product's full
  feed, so on ``ticker`` and ``matches`` alone it increases with holes that are
  normal. What is contiguous on ``matches`` is ``trade_id`` (one per match per
  product), and ``heartbeat`` carries ``last_trade_id`` to check it against. So:
  a ``sequence`` that does not increase is a stale/duplicate message (dropped);
  a hole in ``trade_id`` is a lost trade (``Gap``); a ticker is a state, so a
  missed ticker is superseded by the next one and cannot be detected.
- ``level2`` carries no sequence numbers: the book is only as good as the
  connection. A lost trade on the product, an update before the snapshot, or an
  unreadable level publishes a ``Gap`` (reason says "sequence"), drops the book
  and resubscribes ``level2`` for that product to get a fresh snapshot (see
  ``Resubscribe``). Coinbase now requires authentication for ``level2`` on the
  production feed; this dialect sends no credentials (the simulator accepts the
  channel unauthenticated, a real venue refuses it with an ``error``).
"""

from __future__ import annotations

import calendar
import re
from collections import deque
from collections.abc import Sequence
from typing import Final

import msgspec

from hub_core.plugin import DecodeError, OrderBook, Side, Sink, parse_fixed
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

__all__ = [
    "COINBASE_LIMITS",
    "CoinbaseDialect",
    "CoinbaseSession",
    "Resubscribe",
    "rfc3339_ns",
]

_BUY: Final[str] = str(Side.BUY)
_SELL: Final[str] = str(Side.SELL)
_BID: Final[str] = str(Side.BID)
_ASK: Final[str] = str(Side.ASK)
_PRODUCT_RE: Final = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}")

COINBASE_LIMITS: Final = RateLimits(
    connections=8,
    connections_interval_s=1.0,
    messages_per_second=8.0,
    streams_per_connection=1000,
    streams_per_message=100,
    snapshots_per_second=1.0,
)
"""Coinbase Exchange WebSocket limits: 8 requests per second per IP (bursts up to 20;
we never burst), at most 100 client messages per second per IP. There is no
documented cap on subscriptions per connection (the documented cap is 10 duplicate
subscriptions per product and channel per account), so 1000 streams per
connection is our own bound; 100 products per subscribe message keeps a message
small. Books come over the WebSocket, so ``snapshots_per_second`` is unused."""


# -- time ----------------------------------------------------------------------------------
_DAY_CACHE: dict[str, int] = {}


def rfc3339_ns(text: str) -> int:
    """``2014-11-07T08:19:27.028459Z`` -> ns since the epoch (UTC, ``Z`` or ``+00:00``).

    Hand-rolled for the hot path: the day's epoch is cached, the rest is integer
    arithmetic (``datetime`` would also lose the nanoseconds). ``ValueError`` if
    the text is not of that shape."""
    if len(text) < 20 or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    day = text[:10]
    base = _DAY_CACHE.get(day)
    if base is None:
        if day[4] != "-" or day[7] != "-" or not (day[:4] + day[5:7] + day[8:]).isdigit():
            raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
        base = calendar.timegm((int(day[:4]), int(day[5:7]), int(day[8:]), 0, 0, 0))
        if len(_DAY_CACHE) > 64:  # a long-running feed crosses days: keep it small
            _DAY_CACHE.clear()
        _DAY_CACHE[day] = base
    hms = text[11:13] + text[14:16] + text[17:19]
    if not hms.isdigit():
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    secs = base + int(hms[:2]) * 3600 + int(hms[2:4]) * 60 + int(hms[4:])
    rest = text[19:]
    frac = 0
    if rest[:1] == ".":
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
        frac = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest not in ("Z", "+00:00"):
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    return secs * 1_000_000_000 + frac


# -- wire types (declared in Coinbase's key order) -----------------------------------------
class _Ticker(msgspec.Struct, tag_field="type", tag="ticker", gc=False):
    sequence: int
    product_id: str
    price: str
    best_bid: str
    best_bid_size: str
    best_ask: str
    best_ask_size: str
    side: str = ""
    time: str = ""
    trade_id: int = 0
    last_size: str = ""


class _Match(msgspec.Struct, tag_field="type", tag="match", gc=False):
    trade_id: int
    sequence: int
    time: str
    product_id: str
    size: str
    price: str
    side: str
    maker_order_id: str = ""
    taker_order_id: str = ""


class _LastMatch(msgspec.Struct, tag_field="type", tag="last_match", gc=False):
    """Sent once on subscribing ``matches``: the latest trade, from before we joined."""

    trade_id: int
    sequence: int
    time: str
    product_id: str
    size: str
    price: str
    side: str


class _Snapshot(msgspec.Struct, tag_field="type", tag="snapshot", gc=False):
    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: str = ""


class _L2Update(msgspec.Struct, tag_field="type", tag="l2update", gc=False):
    product_id: str
    changes: list[tuple[str, str, str]]
    time: str = ""


class _Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat", gc=False):
    sequence: int
    last_trade_id: int
    product_id: str
    time: str = ""


class _Channel(msgspec.Struct, gc=False):
    name: str
    product_ids: list[str] = []


class _Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions", gc=False):
    channels: list[_Channel | str] = []


class _Error(msgspec.Struct, tag_field="type", tag="error", gc=False):
    message: str = ""
    reason: str = ""


_Message = (
    _Ticker | _Match | _L2Update | _Snapshot | _Heartbeat | _LastMatch | _Subscriptions | _Error
)


class _Type(msgspec.Struct, gc=False):
    type: str


_KNOWN: Final = frozenset(
    {"ticker", "match", "last_match", "snapshot", "l2update", "heartbeat", "subscriptions", "error"}
)
_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, DecodeError, ValueError)


def _levels(pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    return [(parse_fixed(p), parse_fixed(q)) for p, q in pairs]


class _Product:
    """What the session knows about one product: its stream positions and its book."""

    __slots__ = (
        "book",
        "book_live",
        "book_wanted",
        "last_trade_id",
        "match_seq",
        "resyncing",
        "ticker_seq",
    )

    def __init__(self) -> None:
        self.ticker_seq = 0
        self.match_seq = 0
        self.last_trade_id = 0
        self.book = OrderBook()
        self.book_wanted = False
        self.book_live = False
        self.resyncing = False


# shared by every session: msgspec decoders and encoders hold no per-call state, and
# an idle connection should not carry its own copies
_DEC: Final = msgspec.json.Decoder(_Message)
_DEC_TYPE: Final = msgspec.json.Decoder(_Type)
_ENC: Final = msgspec.json.Encoder()


class CoinbaseSession(DialectSession):
    """One connection's worth of Coinbase protocol state (requests in flight, books)."""

    def __init__(self, sink: Sink, config: SessionConfig, limits: RateLimits) -> None:
        self.counters = SessionCounters()
        self._channels = config.channels
        self._per_message = limits.streams_per_message
        self._next_id = 1
        self._streams: set[str] = set()
        self._products: dict[str, _Product] = {}
        # replies carry no id: they answer the oldest request in flight
        self._inflight: deque[Request] = deque()
        self._internal: set[int] = set()  # our own resync requests: no one awaits them
        self._dec = _DEC
        self._dec_type = _DEC_TYPE
        self._enc = _ENC
        self.rebind(sink)

    # -- subscriptions ---------------------------------------------------------------------
    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self._streams)

    def _request(
        self, op: str, products: list[str], channels: Sequence[str], *, internal: bool = False
    ) -> Request:
        req_id = self._next_id
        self._next_id += 1
        payload = self._enc.encode(
            {"type": op, "product_ids": products, "channels": list(channels)}
        )
        streams = tuple(f"{ch}:{p}" for p in products for ch in channels)
        req = Request(req_id, op, payload, streams, tuple(products))
        self._inflight.append(req)
        if internal:
            self._internal.add(req_id)
        return req

    def _requests(self, op: str, products: list[str]) -> list[Request]:
        step = self._per_message
        return [
            self._request(op, products[i : i + step], self._channels)
            for i in range(0, len(products), step)
        ]

    def subscribe(self, symbols: Sequence[str]) -> list[Request]:
        wanted = [
            s for s in dict.fromkeys(symbols) if f"{self._channels[0]}:{s}" not in self._streams
        ]
        for sym in wanted:
            st = self._products.setdefault(sym, _Product())
            st.book_wanted = "level2" in self._channels
            self._streams.update(f"{ch}:{sym}" for ch in self._channels)
        return self._requests("subscribe", wanted)

    def unsubscribe(self, symbols: Sequence[str]) -> list[Request]:
        gone = [s for s in dict.fromkeys(symbols) if s in self._products]
        for sym in gone:
            del self._products[sym]
            self._streams.difference_update(f"{ch}:{sym}" for ch in self._channels)
        return self._requests("unsubscribe", gone)

    # -- frames ----------------------------------------------------------------------------
    def feed(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """One text frame: ticks to the sink; replies and resyncs returned. Never raises."""
        self.counters.frames += 1
        try:
            msg = self._dec.decode(frame)
        except msgspec.ValidationError as exc:
            self._on_invalid(frame, exc)
            return None
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"coinbase: {type(exc).__name__}: {exc}")
            return None
        try:
            return self._dispatch(msg, ts_recv)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"coinbase: {type(msg).__name__[1:]}: {exc}")
            return None

    def _on_invalid(self, frame: bytes, exc: msgspec.ValidationError) -> None:
        # a well-formed message of a kind we do not map (status, received, ...) is not
        # malformed: Coinbase may add message types at any time
        try:
            kind = self._dec_type.decode(frame).type
        except _DECODE_ERRORS:
            kind = ""
        if kind and kind not in _KNOWN:
            self._ignored(kind)
        else:
            self._sink.malformed(f"coinbase: {exc}")

    def _ignored(self, kind: str) -> None:
        c = self.counters
        c.ignored += 1
        c.by_kind[kind] = c.by_kind.get(kind, 0) + 1

    def _dispatch(self, msg: _Message, ts_recv: int) -> DialectEvent | None:
        if isinstance(msg, _Match):
            return self._on_match(msg, ts_recv)
        if isinstance(msg, _L2Update):
            return self._on_l2update(msg, ts_recv)
        if isinstance(msg, _Ticker):
            self._on_ticker(msg, ts_recv)
            return None
        if isinstance(msg, _Snapshot):
            return self._on_snapshot(msg, ts_recv)
        if isinstance(msg, _Heartbeat):
            return self._on_heartbeat(msg, ts_recv)
        if isinstance(msg, _LastMatch):
            st = self._products.get(msg.product_id)
            if st is not None and msg.sequence > st.match_seq:
                # a trade from before we joined: it sets where the trade ids continue
                st.match_seq = msg.sequence
                st.last_trade_id = msg.trade_id
            self._ignored("last_match")
            return None
        if isinstance(msg, _Subscriptions):
            return self._on_reply(None, msg)
        return self._on_reply(msg, None)

    def _on_ticker(self, msg: _Ticker, ts_recv: int) -> None:
        st = self._products.get(msg.product_id)
        if st is None:
            self._ignored("ticker (not subscribed)")
            return
        if msg.sequence <= st.ticker_seq:
            self._ignored("ticker (stale sequence)")
            return
        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
        self._quote_text(
            msg.product_id,
            msg.best_bid,
            msg.best_bid_size,
            msg.best_ask,
            msg.best_ask_size,
            ts_event,
            ts_recv,
            msg.sequence,
        )
        st.ticker_seq = msg.sequence

    def _on_match(self, msg: _Match, ts_recv: int) -> DialectEvent | None:
        st = self._products.get(msg.product_id)
        if st is None:
            self._ignored("match (not subscribed)")
            return None
        if msg.sequence <= st.match_seq:
            self._ignored("match (stale sequence)")
            return None
        # side is the maker's: a resting sell was hit by a buyer, so the aggressor bought
        if msg.side == "sell":
            aggressor = _BUY
        elif msg.side == "buy":
            aggressor = _SELL
        else:
            raise ValueError(f"match side {msg.side!r} is neither buy nor sell")
        ts_event = rfc3339_ns(msg.time)
        self._trade_text(
            msg.product_id,
            msg.price,
            msg.size,
            aggressor,
            ts_event,
            ts_recv,
            msg.sequence,
            str(msg.trade_id),
        )
        event: DialectEvent | None = None
        last = st.last_trade_id
        if last and msg.trade_id > last + 1:
            event = self._lost(
                msg.product_id,
                st,
                ts_event,
                f"trade_id {last + 1}..{msg.trade_id - 1} missing "
                f"(sequence {st.match_seq} -> {msg.sequence})",
                last + 1,
                msg.trade_id - 1,
            )
        st.match_seq = msg.sequence
        st.last_trade_id = max(last, msg.trade_id)
        return event

    def _on_heartbeat(self, msg: _Heartbeat, ts_recv: int) -> DialectEvent | None:
        self._ignored("heartbeat")
        st = self._products.get(msg.product_id)
        if st is None or "matches" not in self._channels:
            return None
        last = st.last_trade_id
        # last_trade_id is 0 on feeds that do not fill it in: nothing to check then
        if last and msg.last_trade_id > last:
            st.last_trade_id = msg.last_trade_id
            ts = rfc3339_ns(msg.time) if msg.time else ts_recv
            return self._lost(
                msg.product_id,
                st,
                ts,
                f"heartbeat says last trade_id {msg.last_trade_id}, matches stopped at {last}",
                last + 1,
                msg.last_trade_id,
            )
        return None

    def _lost(
        self, product: str, st: _Product, ts: int, what: str, first: int, last: int
    ) -> DialectEvent | None:
        """Messages of ``product`` were lost on this connection: ``Gap``, and the book
        (which has no sequence of its own to tell) is rebuilt too."""
        # the book's last update may be stamped after the message that showed the loss:
        # a Gap never ends before it starts
        self._sink.gap(
            product,
            min(st.book.last_update_ns or ts, ts),
            ts,
            f"sequence gap in {product} matches: {what}",
            first,
            last,
        )
        if st.book_wanted and not st.resyncing:
            return self._resync(product, st, ts, "", gap_published=True)
        return None

    # -- books -----------------------------------------------------------------------------
    def _on_snapshot(self, msg: _Snapshot, ts_recv: int) -> DialectEvent | None:
        st = self._products.get(msg.product_id)
        if st is None or not st.book_wanted:
            self._ignored("snapshot (not subscribed)")
            return None
        bids = _levels(msg.bids)
        asks = _levels(msg.asks)
        book = st.book
        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
        # a new snapshot replaces the book whole: nothing old survives
        book.replace(tuple(bids), tuple(asks), ts_event)
        st.book_live = True
        st.resyncing = False
        b, a = book.levels()
        self._sink.book_snapshot(msg.product_id, b, a, ts_event, ts_recv, 0)
        return None

    def _on_l2update(self, msg: _L2Update, ts_recv: int) -> DialectEvent | None:
        st = self._products.get(msg.product_id)
        if st is None or not st.book_wanted:
            self._ignored("l2update (not subscribed)")
            return None
        if st.resyncing:
            return None  # the old subscription's tail: the new snapshot replaces it all
        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
        if not st.book_live:
            return self._resync(msg.product_id, st, ts_event, "an l2update before its snapshot")
        try:
            changes = [
                (
                    _BID if side == "buy" else _ASK if side == "sell" else "",
                    parse_fixed(p),
                    parse_fixed(q),
                )
                for side, p, q in msg.changes
            ]
            if any(not side for side, _, _ in changes):
                raise ValueError("an l2update change side is neither buy nor sell")
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"coinbase: l2update {msg.product_id}: {exc}")
            return self._resync(msg.product_id, st, ts_event, "an unreadable l2update")
        book = st.book
        publish = self._sink.book_update
        product = msg.product_id
        for side, price, size in changes:
            action = book.apply(side, price, size)
            if action:
                publish(product, side, price, size, ts_event, ts_recv, action, 0)
        book.stamp(ts_event, 0)
        return None

    def _resync(
        self, product: str, st: _Product, ts: int, what: str, *, gap_published: bool = False
    ) -> Resubscribe:
        """Drop the book and ask for a fresh snapshot by subscribing ``level2`` anew."""
        if not gap_published:
            self._sink.gap(
                product,
                min(st.book.last_update_ns or ts, ts),  # a Gap never ends before it starts
                ts,
                f"sequence of the {product} level2 book broken ({what}); "
                "book resynchronised from a new snapshot",
            )
        st.book.clear()
        st.book_live = False
        st.resyncing = True
        requests = (
            self._request("unsubscribe", [product], ["level2"], internal=True),
            self._request("subscribe", [product], ["level2"], internal=True),
        )
        return Resubscribe(
            f"coinbase: the {product} book must be rebuilt from a new level2 snapshot",
            requests,
        )

    # -- replies ---------------------------------------------------------------------------
    def _on_reply(self, err: _Error | None, subs: _Subscriptions | None) -> DialectEvent | None:
        req = self._inflight.popleft() if self._inflight else None
        internal = req is not None and req.id in self._internal
        if req is not None:
            self._internal.discard(req.id)
        if err is not None:
            message = f"{err.message}: {err.reason}" if err.reason else err.message
            if req is None:
                return Refused(None, 0, message)
            if req.op == "subscribe" and not internal:
                for sym in req.symbols:
                    self._products.pop(sym, None)
                self._streams.difference_update(req.streams)
            if internal:
                return Notice(f"coinbase: resync request refused: {message}")
            return Refused(req.id, 0, message)
        result: list[str] = []
        for ch in subs.channels if subs is not None else []:
            if isinstance(ch, str):
                result.append(ch)
            else:
                result.extend(f"{ch.name}:{p}" for p in ch.product_ids)
        if req is None:
            return Notice(f"coinbase: subscriptions without a request: {result}")
        if internal:
            return None
        return Ack(req.id, result)

    def book(self, symbol: str) -> OrderBook | None:
        """The local book of ``symbol`` once a snapshot made it live (tests, diagnostics)."""
        st = self._products.get(symbol)
        return st.book if st is not None and st.book_live else None

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (also the constructor's binding)."""
        self._sink = sink
        self._trade_text = sink.trade_text
        self._quote_text = sink.quote_text


class CoinbaseDialect(Dialect):
    """Coinbase Exchange market data (``wss://ws-feed.exchange.coinbase.com``)."""

    name = "coinbase"
    description = "Coinbase Exchange: ticker, matches, level2 book, heartbeat"
    limits = COINBASE_LIMITS
    channels: tuple[str, ...] = ("ticker", "matches", "level2", "heartbeat")
    default_channels: tuple[str, ...] = ("matches", "ticker", "heartbeat")
    subscribe_deadline_s: float = 5.0
    """The venue closes a connection that has not subscribed within this many seconds.
    Not read by the generic connector (its interface has no such field): the hub
    subscribes right after connecting, well inside it."""

    def validate_symbol(self, symbol: str) -> str:
        if not _PRODUCT_RE.fullmatch(symbol):
            hint = " (write it in upper case)" if _PRODUCT_RE.fullmatch(symbol.upper()) else ""
            raise ValueError(f"{symbol!r} is not a {self.name} product id like BTC-USD{hint}")
        return symbol

    def new_session(self, sink: Sink, config: SessionConfig) -> CoinbaseSession:
        return CoinbaseSession(sink, config, self.limits)
