"""The Binance session: one connection's protocol state, and frames to ticks.

Sans-I/O. Frames go from bytes straight to msgspec ``Struct``s (no dict is
ever built for market data; the structs are in ``wire``) and from there to the
sink's compiled ``*_text`` methods, which parse the decimal strings to fixed
point exactly.

Diff-depth books follow Binance's documented procedure ("How to manage a
local order book correctly"): buffer the stream's events, fetch a REST
snapshot, drop events with ``u <= lastUpdateId``, check the first event
spans ``lastUpdateId + 1`` (spot: ``U <= lastUpdateId+1 <= u``; futures:
``U <= lastUpdateId <= u``), then check every event continues the previous
one (spot: ``U == previous u + 1``; futures: ``pu == previous u``). Any break
publishes a ``Gap`` for the symbol and starts over from a fresh snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from hub_core.plugin import OrderBook, Side, Sink
from hub_plugin_websocket.codec import (
    Ack,
    DialectEvent,
    DialectSession,
    NeedSnapshot,
    Notice,
    RateLimits,
    Refused,
    Request,
    ServerShutdown,
    SessionConfig,
    SessionCounters,
)
from hub_plugin_websocket.dialects.binance.wire import (
    _DEC_BOOK_TICKER,
    _DEC_COMBINED,
    _DEC_COMBINED_BOOK_TICKER,
    _DEC_COMBINED_EVENT,
    _DEC_COMBINED_FUTURES_EVENT,
    _DEC_ENVELOPE,
    _DEC_EVENT,
    _DEC_EVENT_TYPE,
    _DEC_FUTURES_EVENT,
    _DEC_SNAPSHOT,
    _DECODE_ERRORS,
    _ENC,
    _KNOWN_EVENTS,
    _PARTIAL_CHANNELS,
    _PARTIAL_RE,
    _AggTrade,
    _AnyDepth,
    _AnyEvent,
    _Combined,
    _CombinedEvent,
    _CombinedFuturesEvent,
    _DepthSnapshot,
    _DepthUpdate,
    _Envelope,
    _FuturesBookTicker,
    _FuturesDepthUpdate,
    _Kline,
    _levels,
    _raw_levels,
    _streams_in_url,
    _Trade,
    stream_name,
)

__all__ = ["BinanceSession"]

log = logging.getLogger("hub_plugin_websocket.binance")

_NS_PER_MS: Final = 1_000_000
# Side's values as plain module constants: reading an attribute of the compiled Side
# class from interpreted code costs about half a microsecond, more than the whole parse
_BUY: Final[str] = str(Side.BUY)
_SELL: Final[str] = str(Side.SELL)
_BID: Final[str] = str(Side.BID)
_ASK: Final[str] = str(Side.ASK)
if (_SELL, _BUY, _ASK, _BID) != ("A", "B", "A", "B"):  # pragma: no cover - hot path literals
    raise ImportError("hub_core.Side changed its values; update the Binance dialect")


class _BookSync:
    """One symbol's diff-depth book and where it stands in the sync procedure."""

    __slots__ = ("book", "buffer", "requested", "symbol", "synced")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = OrderBook()
        self.synced = False
        self.requested = False
        self.buffer: list[_AnyDepth] = []

    def restart(self) -> None:
        """Back to step one: no book, nothing buffered, no snapshot asked for."""
        self.book.clear()
        self.synced = False
        self.requested = False
        self.buffer.clear()


class BinanceSession(DialectSession):
    """One connection's worth of Binance protocol state (request ids, books)."""

    def __init__(
        self,
        sink: Sink,
        config: SessionConfig,
        *,
        futures: bool,
        depth_path: str,
        limits: RateLimits,
    ) -> None:
        self.counters = SessionCounters()
        self._config = config
        self._futures = futures
        self._per_message = limits.streams_per_message
        self._depth_url = f"{config.rest_url}{depth_path}"
        self._channels = config.channels
        self._diff_depth = any(ch == "depth" or ch.startswith("depth@") for ch in config.channels)
        self._next_id = 1
        self._streams: set[str] = set()
        self._inflight: dict[int, Request] = {}
        self._books: dict[str, _BookSync] = {}
        self._partial_symbols: dict[str, str] = {}
        self._bind(sink)
        # futures and spot differ in two payloads (depthUpdate's key order, bookTicker's
        # "e"), so each has its own event union
        self._decode_event: Callable[[bytes | msgspec.Raw], _AnyEvent] = (
            _DEC_FUTURES_EVENT if futures else _DEC_EVENT
        ).decode
        self._decode_combined_event: Callable[[bytes], _CombinedEvent | _CombinedFuturesEvent] = (
            _DEC_COMBINED_FUTURES_EVENT if futures else _DEC_COMBINED_EVENT
        ).decode
        self._dec_book_ticker = _DEC_BOOK_TICKER
        self._dec_combined = _DEC_COMBINED
        self._dec_snapshot = _DEC_SNAPSHOT
        self._dec_envelope = _DEC_ENVELOPE
        self._dec_event_type = _DEC_EVENT_TYPE
        self._enc = _ENC
        url_streams = _streams_in_url(config.endpoint)
        # Spot's bookTicker and partial-depth payloads carry no "e": only a session that
        # can receive them looks for them in combined frames (see _make_feed)
        channels = {*config.channels, *(st.partition("@")[2] for st in url_streams)}
        self._untagged = (
            not futures and "bookTicker" in channels,
            not futures and any(_PARTIAL_RE.fullmatch(ch) for ch in channels),
        )
        self._feed = self._make_feed()
        for stream in url_streams:
            self._add_stream(stream)

    # -- subscriptions ---------------------------------------------------------------------
    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self._streams)

    def _add_stream(self, stream: str) -> None:
        self._streams.add(stream)
        sym, _, channel = stream.partition("@")
        symbol = sym.upper()
        if channel == "depth" or channel.startswith("depth@"):
            self._books.setdefault(symbol, _BookSync(symbol))
        elif _PARTIAL_RE.fullmatch(channel):
            self._partial_symbols[stream] = symbol

    def _drop_symbol(self, symbol: str) -> None:
        self._books.pop(symbol, None)
        prefix = symbol.lower() + "@"
        for stream in [s for s in self._streams if s.startswith(prefix)]:
            self._streams.discard(stream)
            self._partial_symbols.pop(stream, None)

    def _take_id(self) -> int:
        req_id = self._next_id
        # Binance wants an unsigned int; wrap long before any 64-bit limit
        self._next_id = 1 if req_id >= 2**31 - 1 else req_id + 1
        return req_id

    def _requests(self, method: str, op: str, streams: list[str]) -> list[Request]:
        out: list[Request] = []
        step = self._per_message
        for i in range(0, len(streams), step):
            chunk = streams[i : i + step]
            req_id = self._take_id()
            payload = self._enc.encode({"method": method, "params": chunk, "id": req_id})
            symbols = tuple(dict.fromkeys(s.partition("@")[0].upper() for s in chunk))
            req = Request(req_id, op, payload, tuple(chunk), symbols)
            self._inflight[req_id] = req
            out.append(req)
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[Request]:
        wanted = [
            stream_name(sym, ch)
            for sym in symbols
            for ch in self._channels
            if stream_name(sym, ch) not in self._streams
        ]
        for stream in wanted:
            self._add_stream(stream)
        return self._requests("SUBSCRIBE", "subscribe", wanted)

    def unsubscribe(self, symbols: Sequence[str]) -> list[Request]:
        gone: list[str] = []
        for sym in symbols:
            prefix = sym.lower() + "@"
            gone.extend(sorted(s for s in self._streams if s.startswith(prefix)))
            self._drop_symbol(sym)
        return self._requests("UNSUBSCRIBE", "unsubscribe", gone)

    def list_subscriptions(self) -> Request:
        req_id = self._take_id()
        payload = self._enc.encode({"method": "LIST_SUBSCRIPTIONS", "id": req_id})
        req = Request(req_id, "list", payload)
        self._inflight[req_id] = req
        return req

    def _bind(self, sink: Sink) -> None:
        # bound once: the hot path makes one attribute-free call per tick
        self._sink = sink
        self._trade_text = sink.trade_text
        self._trade_ms: Callable[[str, str, str, str, int, int, int], object] = getattr(
            sink, "trade_text_ms", self._trade_ms_fallback
        )
        self._quote_text = sink.quote_text
        self._book_update = sink.book_update
        # one compiled call per depth message, the levels as the frame's JSON bytes; a
        # sink of an older hub-core lacks it, and the levels then go one by one
        self._book_levels: Callable[..., int] | None = getattr(sink, "book_levels_json", None)

    def _trade_ms_fallback(
        self, symbol: str, price: str, size: str, side: str, ms: int, ts_recv: int, tid: int
    ) -> None:
        """``sink.trade_text_ms`` for a sink of an older hub-core, which lacks it."""
        self._trade_text(symbol, price, size, side, ms * _NS_PER_MS, ts_recv, tid, str(tid))

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (the connector's gap-free rotation)."""
        self._bind(sink)
        self._feed = self._make_feed()

    # -- frames ----------------------------------------------------------------------------
    def feed(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """One text frame: ticks to the sink; replies and book needs returned. Never raises."""
        return self._feed(frame, ts_recv)

    def frame_handler(self) -> Callable[[bytes, int], DialectEvent | None]:
        return self._feed

    def _make_feed(self) -> Callable[[bytes, int], DialectEvent | None]:
        """``feed`` as a closure: every name it uses on the hot path is a local cell, not
        an attribute or a global (about a quarter of the per-frame cost otherwise).

        One msgspec decode per frame, raw or combined (a combined frame's ``data`` is
        decoded straight into the event union, never kept as Raw and decoded again),
        then dispatch on the struct's exact type (``type(ev) is``, not an
        ``isinstance`` chain), the busiest payloads handled inline."""
        decode_event = self._decode_event
        decode_combined_event = self._decode_combined_event
        decode_book_ticker = self._dec_book_ticker.decode
        decode_combined_book_ticker = _DEC_COMBINED_BOOK_TICKER.decode
        decode_combined = self._dec_combined.decode
        trade_ms = self._trade_ms
        quote_text = self._quote_text
        on_event = self._on_event
        on_depth = self._on_depth
        on_combined = self._on_combined
        general = self._general
        malformed = self._sink.malformed
        book_ticker_type: Final = _FuturesBookTicker
        agg_trade_type: Final = _AggTrade
        trade_type: Final = _Trade
        # only one of the two is in the session's union: the other test never matches
        depth_type: Final = _FuturesDepthUpdate
        spot_depth_type: Final = _DepthUpdate
        spot_book_ticker, partial = self._untagged
        partial_channels = _PARTIAL_CHANNELS
        validation_error = msgspec.ValidationError
        decode_errors = (*_DECODE_ERRORS, IndexError)

        def feed(frame: bytes, ts_recv: int) -> DialectEvent | None:
            try:
                # Binance writes its keys in a fixed order, so the third byte picks the
                # decoder ({"e":..., {"stream":..., {"u":...); a frame of another shape
                # fails that decoder's validation and takes the general path, which
                # accepts any key order.
                c = frame[2]
                if c == 115:  # {"stream":"<symbol>@<channel>","data":{...}}
                    # Spot bookTicker and partial-depth payloads have no "e". The first
                    # is told by its last field, a string: only its frames end in '"}}'
                    # (a guess that misses costs one failed decode, and the general path
                    # still decides). Partial depth by the stream name, looked at only
                    # by sessions that have such streams.
                    if spot_book_ticker and frame[-3] == 34:
                        t = decode_combined_book_ticker(frame).data
                        quote_text(t.s, t.b, t.B, t.a, t.A, ts_recv, ts_recv, t.u)
                        return None
                    if partial:
                        channel = frame[frame.find(b"@", 11) + 1 : frame.find(b'"', 11)]
                        if channel in partial_channels:
                            return on_combined(decode_combined(frame), ts_recv)
                    ev: _AnyEvent = decode_combined_event(frame).data
                elif c == 101:  # {"e":
                    ev = decode_event(frame)
                elif c == 117:  # {"u": spot bookTicker, the one payload without "e"
                    t = decode_book_ticker(frame)
                    quote_text(t.s, t.b, t.B, t.a, t.A, ts_recv, ts_recv, t.u)
                    return None
                else:
                    return general(frame, ts_recv)
                # busiest first (futures: bookTicker, spot: trade); "A" is Side.SELL, "B"
                # is Side.BUY (checked at import above); m: the buyer is the maker, so
                # the aggressor sold
                if type(ev) is book_ticker_type:
                    quote_text(
                        ev.s,
                        ev.b,
                        ev.B,
                        ev.a,
                        ev.A,
                        ev.T * 1_000_000 if ev.T else ts_recv,
                        ts_recv,
                        ev.u,
                    )
                    return None
                if type(ev) is trade_type:
                    # the trade id: sequence and trade_id, as elsewhere
                    trade_ms(ev.s, ev.p, ev.q, "A" if ev.m else "B", ev.T, ts_recv, ev.t)
                    return None
                if type(ev) is agg_trade_type:
                    # the aggregate's id is sequence and trade_id; the sink makes the
                    # text and the ns time in compiled code
                    trade_ms(ev.s, ev.p, ev.q, "A" if ev.m else "B", ev.T, ts_recv, ev.a)
                    return None
                if type(ev) is depth_type or type(ev) is spot_depth_type:
                    return on_depth(ev, ts_recv)
                return on_event(ev, ts_recv)
            except validation_error:
                pass  # not the shape its first bytes suggested: the general path decides
            except decode_errors as exc:
                malformed(f"binance: {type(exc).__name__}: {exc}")
                return None
            return general(frame, ts_recv)

        return feed

    def _general(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        try:
            return self._on_other(frame, ts_recv)
        except msgspec.ValidationError as exc:
            self._on_invalid(frame, exc)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"binance: {type(exc).__name__}: {exc}")
        return None

    def _on_invalid(self, frame: bytes | msgspec.Raw, exc: Exception) -> None:
        # Valid JSON of the wrong shape. An event type we do not turn into ticks
        # (24hrTicker, avgPrice, ...) is well-formed: count it as ignored, not malformed.
        try:
            kind = self._dec_event_type.decode(frame).e
        except _DECODE_ERRORS:
            kind = ""
        if kind and kind not in _KNOWN_EVENTS:
            self._ignored(kind)
        else:
            self._sink.malformed(f"binance: {exc}")

    def _ignored(self, kind: str) -> None:
        c = self.counters
        c.ignored += 1
        c.by_kind[kind] = c.by_kind.get(kind, 0) + 1

    def _on_event(self, ev: _AnyEvent, ts_recv: int) -> DialectEvent | None:
        # m: the buyer is the maker, so the aggressor sold
        if isinstance(ev, _Trade | _AggTrade):
            tid = ev.t if isinstance(ev, _Trade) else ev.a  # aggTrade: the aggregate's id
            self._trade_text(
                ev.s, ev.p, ev.q, _SELL if ev.m else _BUY, ev.T * _NS_PER_MS, ts_recv, tid, str(tid)
            )
            return None
        if isinstance(ev, _DepthUpdate | _FuturesDepthUpdate):
            return self._on_depth(ev, ts_recv)
        if isinstance(ev, _FuturesBookTicker):
            ts_event = ev.T * _NS_PER_MS if ev.T else ts_recv
            self._quote_text(ev.s, ev.b, ev.B, ev.a, ev.A, ts_event, ts_recv, ev.u)
            return None
        if isinstance(ev, _Kline):
            self._ignored("kline")
            return None
        return ServerShutdown("the venue sent serverShutdown: it is about to close this connection")

    def _on_combined(self, msg: _Combined, ts_recv: int) -> DialectEvent | None:
        channel = msg.stream.partition("@")[2]
        data = msg.data
        try:
            if channel == "bookTicker" and not self._futures:
                t = self._dec_book_ticker.decode(data)
                self._quote_text(t.s, t.b, t.B, t.a, t.A, ts_recv, ts_recv, t.u)
                return None
            if _PARTIAL_RE.fullmatch(channel):
                self._on_partial(msg.stream, self._dec_snapshot.decode(data), ts_recv)
                return None
            return self._on_event(self._decode_event(data), ts_recv)
        except msgspec.ValidationError as exc:
            self._on_invalid(data, exc)
            return None

    def _on_other(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        env = self._dec_envelope.decode(frame)
        if env.stream is not None and len(env.data):
            return self._on_combined(_Combined(env.stream, env.data), ts_recv)
        if len(env.event):  # {"event": {"e": "serverShutdown", ...}}
            return self.feed(bytes(env.event), ts_recv)
        if env.e is not None:
            return self._on_event(self._decode_event(frame), ts_recv)
        if env.id is not None or len(env.result) or env.error is not None or env.code is not None:
            return self._on_reply(env)
        if env.u is not None:
            t = self._dec_book_ticker.decode(frame)
            self._quote_text(t.s, t.b, t.B, t.a, t.A, ts_recv, ts_recv, t.u)
            return None
        self._sink.malformed(f"binance: unrecognised message {bytes(frame[:80])!r}")
        return None

    def _on_reply(self, env: _Envelope) -> DialectEvent:
        req_id = env.id if isinstance(env.id, int) else None
        req = self._inflight.pop(req_id, None) if req_id is not None else None
        if env.error is not None or env.code is not None:
            code = env.error.code if env.error is not None else (env.code or 0)
            message = env.error.msg if env.error is not None else (env.msg or "")
            if req is not None and req.op == "subscribe":
                # the venue did not take these streams: forget them and their books
                for stream in req.streams:
                    self._streams.discard(stream)
                    self._partial_symbols.pop(stream, None)
                for sym in req.symbols:
                    if not any(s.startswith(sym.lower() + "@") for s in self._streams):
                        self._books.pop(sym, None)
            return Refused(req_id, code, message)
        result: object = None
        if len(env.result):
            result = msgspec.json.decode(env.result)
        if req_id is None:
            return Notice(f"reply without a request id: {result!r}")
        return Ack(req_id, result)

    # -- books -----------------------------------------------------------------------------
    def _on_partial(self, stream: str, snap: _DepthSnapshot, ts_recv: int) -> None:
        symbol = self._partial_symbols.get(stream) or stream.partition("@")[0].upper()
        bids = tuple(_levels(snap.bids))
        asks = tuple(_levels(snap.asks))
        self._sink.book_snapshot(symbol, bids, asks, ts_recv, ts_recv, snap.lastUpdateId)

    def _on_depth(self, ev: _AnyDepth, ts_recv: int) -> DialectEvent | None:
        st = self._books.get(ev.s)
        if st is None:
            # a stream we no longer (or never) asked for: no book to keep
            self._ignored("depthUpdate (not subscribed)")
            return None
        if not st.synced:
            if len(st.buffer) >= self._config.max_buffered_events:
                self._sink.gap(
                    ev.s,
                    st.buffer[0].E * _NS_PER_MS,
                    ev.E * _NS_PER_MS,
                    f"sequence sync of the {ev.s} depth stream: {len(st.buffer)} events "
                    "buffered and still no usable snapshot; starting over",
                    st.buffer[0].U,
                    ev.u,
                )
                st.restart()
            st.buffer.append(ev)
            if not st.requested:
                st.requested = True
                return NeedSnapshot(ev.s, self._snapshot_url(ev.s))
            return None
        last = st.book.last_sequence
        if self._futures:
            if ev.u < last:
                return None
            in_order = ev.pu == last
        else:
            if ev.u <= last:
                return None  # already in the book (the snapshot covered it)
            in_order = last + 1 >= ev.U
        if not in_order:
            return self._break(st, ev, f"expected update {last + 1}, got {ev.U}..{ev.u}")
        book = st.book
        ts_event = ev.E * _NS_PER_MS
        seq = ev.u  # the venue's update id is the book's sequence
        book_levels = self._book_levels
        try:
            if book_levels is not None:
                # parse, apply, publish and stamp in the core's compiled code
                book_levels(ev.s, book, bytes(ev.b), bytes(ev.a), ts_event, ts_recv, seq)
                return None
            # every level parsed before any is applied: an unreadable one changes nothing
            bids = _raw_levels(ev.b)
            asks = _raw_levels(ev.a)
        except _DECODE_ERRORS as exc:
            # the event is lost: the book cannot be trusted past it
            self._sink.malformed(f"binance: depthUpdate {ev.s} {ev.U}..{ev.u}: {exc}")
            return self._break(st, ev, f"update {ev.U}..{ev.u} unreadable")
        apply = book.apply
        publish = self._book_update
        symbol = ev.s
        # "B" is Side.BID, "A" is Side.ASK (checked at import above)
        for price, size in bids:
            action = apply("B", price, size)
            if action:
                publish(symbol, "B", price, size, ts_event, ts_recv, action, seq)
        for price, size in asks:
            action = apply("A", price, size)
            if action:
                publish(symbol, "A", price, size, ts_event, ts_recv, action, seq)
        book.stamp(ts_event, seq)
        return None

    def _break(self, st: _BookSync, ev: _AnyDepth, what: str) -> NeedSnapshot:
        """A sequence break: publish the ``Gap``, drop the book, buffer, ask for a snapshot."""
        last = st.book.last_sequence
        self._sink.gap(
            st.symbol,
            st.book.last_update_ns,
            ev.E * _NS_PER_MS,
            f"sequence gap in the {st.symbol} depth stream ({what}); "
            "book resynchronised from a new snapshot",
            last + 1,
            max(last + 1, ev.U - 1),
        )
        st.restart()
        st.buffer.append(ev)
        st.requested = True
        return NeedSnapshot(st.symbol, self._snapshot_url(st.symbol))

    def _snapshot_url(self, symbol: str) -> str:
        return f"{self._depth_url}?symbol={symbol}&limit={self._config.snapshot_limit}"

    def snapshot_received(self, symbol: str, body: bytes, ts_recv: int) -> DialectEvent | None:
        st = self._books.get(symbol)
        if st is None or st.synced:
            return None  # unsubscribed meanwhile, or a late duplicate
        try:
            snap = self._dec_snapshot.decode(body)
            snap_bids = _levels(snap.bids)
            snap_asks = _levels(snap.asks)
        except _DECODE_ERRORS as exc:
            self._sink.malformed(f"binance: {symbol} depth snapshot: {exc}")
            st.requested = False
            return None
        last_id = snap.lastUpdateId
        buf = st.buffer
        if buf and last_id < buf[0].U - (0 if self._futures else 1):
            # older than everything buffered: the events in between are not here, so
            # Binance's procedure says fetch the snapshot again
            return NeedSnapshot(symbol, self._snapshot_url(symbol))
        if self._futures:
            pending = [e for e in buf if e.u >= last_id]
        else:
            pending = [e for e in buf if e.u > last_id]
        if pending:
            first = pending[0]
            spans = (
                first.U <= last_id <= first.u
                if self._futures
                else first.U <= last_id + 1 <= first.u
            )
            if not spans:
                return self._resync_from_snapshot(
                    st, first, f"snapshot at {last_id} does not join update {first.U}..{first.u}"
                )
        book = st.book
        book.replace(tuple(snap_bids), tuple(snap_asks))  # size 0 levels are left out
        prev = last_id
        ts_event = snap.T * _NS_PER_MS if snap.T else ts_recv
        for i, ev in enumerate(pending):
            if i > 0 and not (ev.pu == prev if self._futures else prev + 1 == ev.U):
                return self._resync_from_snapshot(
                    st, ev, f"buffered update {ev.U}..{ev.u} does not follow {prev}"
                )
            try:
                for price, size in _raw_levels(ev.b):
                    book.apply(_BID, price, size)
                for price, size in _raw_levels(ev.a):
                    book.apply(_ASK, price, size)
            except _DECODE_ERRORS as exc:
                self._sink.malformed(f"binance: depthUpdate {ev.s} {ev.U}..{ev.u}: {exc}")
                return self._resync_from_snapshot(st, ev, f"update {ev.U}..{ev.u} unreadable")
            prev = ev.u
            ts_event = ev.E * _NS_PER_MS
        book.stamp(ts_event, prev)
        st.synced = True
        st.requested = False
        buf.clear()
        bids, asks = book.levels()
        self._sink.book_snapshot(symbol, bids, asks, ts_event, ts_recv, prev)
        return None

    def _resync_from_snapshot(self, st: _BookSync, ev: _AnyDepth, what: str) -> NeedSnapshot:
        st.book.clear()
        return self._break(st, ev, what)

    def snapshot_failed(self, symbol: str, reason: str) -> None:
        st = self._books.get(symbol)
        if st is not None and not st.synced:
            st.requested = False  # the next buffered event asks again

    def book(self, symbol: str) -> OrderBook | None:
        """The local book of ``symbol`` once synced (tests and diagnostics)."""
        st = self._books.get(symbol)
        return st.book if st is not None and st.synced else None
