"""The Kraken v2 session: subscriptions, replies by ``req_id``, frames to ticks, and the
checksummed book, resynchronised by resubscribing (on the shared ``ChannelSession``).

Sans-I/O. Prices and sizes stay the venue's own decimal text (``msgspec.Raw``) and go
as bytes to the sink's compiled ``*_bytes`` methods (``parse_fixed_bytes`` for the
book, which also keeps each level's checksum token). The protocol is described in
the package's docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from hub_core.plugin import (
    LevelTokens,
    MalformedNumber,
    Side,
    Sink,
    SubscriptionError,
    parse_fixed_bytes,
    parse_level_objects,
    rfc3339_ns,
)
from hub_plugin_websocket.codec import (
    DialectEvent,
    Notice,
    RateLimits,
    Request,
    Resubscribe,
    SessionConfig,
)
from hub_plugin_websocket.dialects._channel_session import (
    DECODE_ERRORS,
    ChannelSession,
    SymbolState,
)
from hub_plugin_websocket.dialects.kraken.wire import (
    _BOOK_RE,
    _CHECKSUM_LEVELS,
    _DEC,
    _DEC_REPLY,
    _LEVELS,
    _BookData,
    _BookMsg,
    _Data,
    _HeartbeatMsg,
    _number,
    _Reply,
    _StatusMsg,
    _TickerMsg,
    _TradeData,
    _TradeMsg,
)

__all__ = ["RESYNC_REFUSALS_TO_ERROR", "KrakenSession"]

_BUY: Final[str] = str(Side.BUY)
_SELL: Final[str] = str(Side.SELL)
_BID: Final[str] = str(Side.BID)
_ASK: Final[str] = str(Side.ASK)
RESYNC_REFUSALS_TO_ERROR: Final = 3
"""Refused resubscriptions of one book in a row past which a per-symbol error is raised
through the sink (``sink.symbol_error``: shown per symbol until a resync is accepted)."""
_RESYNC_RETRY_S: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Backoff between retries of a refused resync (the last one repeats)."""


class _Book(SymbolState):
    """One symbol: fixed-point book levels plus each level's checksum token."""

    __slots__ = ("tokens",)

    def __init__(self, wants_book: bool) -> None:
        super().__init__(wants_book)
        self.tokens = LevelTokens()

    def clear(self) -> None:
        super().clear()
        self.tokens.clear()

    def checksum(self) -> int:
        return self.tokens.crc32(_CHECKSUM_LEVELS)


_Parsed = tuple[list[int], list[bytes], int]
"""A book item's levels as ``parse_level_objects`` gives them: values, texts, and where
the asks start."""


class KrakenSession(ChannelSession[_Book, _Data]):
    """One connection's worth of Kraken v2 protocol state (requests in flight, books)."""

    venue = "kraken"
    one_channel_per_message = True

    def __init__(self, sink: Sink, config: SessionConfig, limits: RateLimits) -> None:
        super().__init__(sink, config, limits)
        self._depth = 10
        for ch in config.channels:
            m = _BOOK_RE.fullmatch(ch)
            if m and m.group(1):
                self._depth = int(m.group(1))
        # req_id -> [request, acks still expected]
        self._inflight: dict[int, tuple[Request, list[int]]] = {}
        self._resync_refusals: dict[str, int] = {}
        """symbol -> resubscriptions of its book the venue refused in a row"""
        self._decode = _DEC.decode
        self._dec_reply = _DEC_REPLY

    def _new_state(self, wants_book: bool) -> _Book:
        return _Book(wants_book)

    def _is_book(self, channel: str) -> bool:
        return _BOOK_RE.fullmatch(channel) is not None

    def _venue_channel(self, channel: str) -> str:
        return "book" if _BOOK_RE.fullmatch(channel) else channel

    # -- subscriptions ---------------------------------------------------------------------
    def _payload(self, op: str, symbols: list[str], channels: Sequence[str], req_id: int) -> bytes:
        (channel,) = channels  # one channel per message
        venue = self._venue_channel(channel)
        params: dict[str, object] = {"channel": venue, "symbol": symbols}
        if venue == "book":
            params["depth"] = self._depth
        elif venue == "trade" and op == "subscribe":
            # no replay of the last 50 trades: after a reconnect they would be duplicates
            params["snapshot"] = False
        return self._enc.encode({"method": op, "params": params, "req_id": req_id})

    def _track(self, req: Request) -> None:
        self._inflight[req.id] = (req, [len(req.symbols)])

    # -- frames ----------------------------------------------------------------------------
    def _dispatch(self, msg: _Data, ts_recv: int) -> DialectEvent | None:
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
        symbols = self._symbols
        for t, side, ts_event in items:
            if t.symbol not in symbols:
                self._ignored("trade (not subscribed)")
                continue
            # _number inlined (a call per number is most of what is left to save): a
            # Raw that starts with a quote is a JSON string, so it ends with one too
            price = bytes(t.price)
            if price[:1] == b'"':
                price = price[1:-1]
            qty = bytes(t.qty)
            if qty[:1] == b'"':
                qty = qty[1:-1]
            trade(
                t.symbol,
                price,
                qty,
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
        data = msg.data
        if len(data) == 1 and msg.type == "update":
            # the hot path: one update of a live book, parsed, applied, checksummed and
            # published in one compiled call
            d = data[0]
            st = self._symbols.get(d.symbol)
            if st is not None and st.live and not st.resyncing:
                try:
                    ts_event = rfc3339_ns(d.timestamp) if d.timestamp else ts_recv
                    published = self._book_checked(
                        d.symbol,
                        st.book,
                        st.tokens,
                        bytes(d.bids),
                        bytes(d.asks),
                        self._depth,
                        d.checksum,
                        ts_event,
                        ts_recv,
                        0,
                    )
                except ValueError:  # MalformedNumber too: nothing was applied
                    pass  # the general path below says what is wrong, as it always did
                else:
                    if published < 0:
                        return self._mismatch(d, st, ts_event)
                    return None
        return self._on_book_items(msg, ts_recv)

    def _on_book_items(self, msg: _BookMsg, ts_recv: int) -> DialectEvent | None:
        # every item's levels first: a frame whose levels are not price/qty objects is
        # refused whole, before any item is used (as when they were decoded as structs)
        parsed = [self._read_levels(d) for d in msg.data]
        event: DialectEvent | None = None
        for d, levels in zip(msg.data, parsed, strict=True):
            st = self._symbols.get(d.symbol)
            if st is None or not st.wants_book:
                self._ignored("book (not subscribed)")
                continue
            if msg.type == "snapshot":
                event = self._on_snapshot(d, st, ts_recv, levels) or event
            elif msg.type == "update":
                event = self._on_update(d, st, ts_recv, levels) or event
            else:
                raise ValueError(f"book message type {msg.type!r}")
        return event

    @staticmethod
    def _read_levels(d: _BookData) -> _Parsed | None:
        """``d``'s levels parsed in compiled code; ``None`` when a number cannot be read
        there (the slow path reads them again, level by level, to say which). Raises
        ``msgspec.ValidationError`` when the levels are not ``_Level`` objects."""
        values: list[int] = []
        texts: list[bytes] = []
        try:
            parse_level_objects(bytes(d.bids), b"price", b"qty", values, texts)
            n_bids = len(values)
            parse_level_objects(bytes(d.asks), b"price", b"qty", values, texts)
        except MalformedNumber:
            # the shape is checked as the structs checked it (ValidationError: the
            # whole frame is one the decoder does not know)
            _LEVELS.decode(d.bids)
            _LEVELS.decode(d.asks)
            return None
        return values, texts, n_bids

    def _parse_levels(self, raw: msgspec.Raw) -> list[tuple[int, int, bytes, bytes]]:
        """The slow path: each level on its own (``MalformedNumber`` names the number)."""
        out: list[tuple[int, int, bytes, bytes]] = []
        for lv in _LEVELS.decode(raw):
            ptext = _number(lv.price)
            qtext = _number(lv.qty)
            out.append((parse_fixed_bytes(ptext), parse_fixed_bytes(qtext), ptext, qtext))
        return out

    @staticmethod
    def _levels_of(parsed: _Parsed) -> tuple[list[tuple[int, int, bytes, bytes]], ...]:
        values, texts, n_bids = parsed
        rows = [
            (values[i], values[i + 1], texts[i], texts[i + 1]) for i in range(0, len(values), 2)
        ]
        return rows[: n_bids // 2], rows[n_bids // 2 :]

    def _set(self, st: _Book, side: str, level: tuple[int, int, bytes, bytes]) -> str:
        price, size, ptext, qtext = level
        action = st.book.apply(side, price, size)
        st.tokens.set(side, price, size, ptext, qtext)
        return action

    def _on_snapshot(
        self, d: _BookData, st: _Book, ts_recv: int, parsed: _Parsed | None
    ) -> DialectEvent | None:
        if parsed is not None:
            bids, asks = self._levels_of(parsed)
        else:
            bids = self._parse_levels(d.bids)
            asks = self._parse_levels(d.asks)
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
            return self._broken(
                d.symbol, st, ts_event, f"snapshot checksum {d.checksum}, {computed} computed"
            )
        st.live = True
        st.blind_since = 0
        if self._resync_refusals.pop(d.symbol, 0) >= RESYNC_REFUSALS_TO_ERROR:
            self._sink.symbol_ok(d.symbol)
        b, a = st.book.levels()
        self._sink.book_snapshot(d.symbol, b, a, ts_event, ts_recv, 0)
        return None

    def _on_update(
        self, d: _BookData, st: _Book, ts_recv: int, parsed: _Parsed | None
    ) -> DialectEvent | None:
        if st.resyncing:
            return None  # the old subscription's tail: the new snapshot replaces it all
        ts_event = rfc3339_ns(d.timestamp) if d.timestamp else ts_recv
        if not st.live:
            return self._broken(d.symbol, st, ts_event, "an update before the snapshot")
        if parsed is None:
            return self._on_update_slow(d, st, ts_recv, ts_event)
        # applied, trimmed to the depth (levels pushed out get no qty 0 from the venue),
        # checksummed, and published only if the checksum holds: all in compiled code
        published = self._book_checked(
            d.symbol,
            st.book,
            st.tokens,
            bytes(d.bids),
            bytes(d.asks),
            self._depth,
            d.checksum,
            ts_event,
            ts_recv,
            0,
        )
        if published < 0:
            return self._mismatch(d, st, ts_event)
        return None

    def _mismatch(self, d: _BookData, st: _Book, ts_event: int) -> Resubscribe:
        """``d`` applied, the book's checksum is not the venue's: ``Gap`` and resync."""
        return self._broken(
            d.symbol,
            st,
            ts_event,
            f"checksum {d.checksum} from the venue, {st.checksum()} computed",
        )

    def _on_update_slow(
        self, d: _BookData, st: _Book, ts_recv: int, ts_event: int
    ) -> DialectEvent | None:
        """An update with a number the compiled parser could not read: level by level,
        so that the malformed report names it (and the book resyncs)."""
        try:
            bids = self._parse_levels(d.bids)
            asks = self._parse_levels(d.asks)
        except DECODE_ERRORS as exc:
            self._sink.malformed(f"kraken: {d.symbol} book update: {exc}")
            return self._broken(d.symbol, st, ts_event, "an unreadable update")
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
            st.tokens.drop(_BID, worst)
            changed.append((_BID, worst, 0, "C"))
        for worst in book.trim(_ASK, depth):
            st.tokens.drop(_ASK, worst)
            changed.append((_ASK, worst, 0, "C"))
        computed = st.checksum()
        if computed != d.checksum:
            return self._broken(
                symbol,
                st,
                ts_event,
                f"checksum {d.checksum} from the venue, {computed} computed",
            )
        for side, price, size, action in changed:
            publish(symbol, side, price, size, ts_event, ts_recv, action, 0)
        book.stamp(ts_event, 0)
        return None

    def _broken(self, symbol: str, st: _Book, ts: int, what: str) -> Resubscribe:
        """The book does not add up (``what``): ``Gap`` and a new snapshot."""
        return self._resync(
            symbol,
            st,
            ts,
            f"checksum/sequence break in the {symbol} book ({what}); "
            "book resynchronised from a new snapshot",
        )

    def _resync_refused(self, req: Request, reason: str) -> DialectEvent | None:
        """The venue refused the subscribe that was to bring a book back: a ``Gap`` for
        the time it has been blind, a retry with backoff, and past
        ``RESYNC_REFUSALS_TO_ERROR`` refusals a per-symbol error through the sink (the book
        must never stay frozen without a word)."""
        if req.op != "subscribe":
            # an unsubscribe of a stream the venue no longer has: the subscribe that
            # follows it is what brings the book back
            return super()._resync_refused(req, reason)
        now = time.time_ns()
        event: DialectEvent | None = None
        for symbol in req.symbols:
            st = self._symbols.get(symbol)
            if st is None:  # unsubscribed meanwhile
                continue
            n = self._resync_refusals.get(symbol, 0) + 1
            self._resync_refusals[symbol] = n
            self._sink.gap(
                symbol,
                st.blind_since or now,
                now,
                f"the {symbol} book resync was refused by the venue ({reason}); "
                f"refusal {n}, retrying",
            )
            st.blind_since = now
            if n == RESYNC_REFUSALS_TO_ERROR:
                err = SubscriptionError(
                    f"kraken: the {symbol} book cannot be resynchronised: the venue refused "
                    f"{n} resubscriptions ({reason}); the book publishes nothing until one "
                    "is accepted",
                    refused={symbol: reason},
                    hint="the hub keeps retrying; check the symbol and the book depth",
                )
                # shown per symbol (symbol_states(), a state event, metrics) until the
                # venue accepts a resync
                self._sink.symbol_error(symbol, err.reason)
            delay = _RESYNC_RETRY_S[min(n, len(_RESYNC_RETRY_S)) - 1]
            retry = self._book_request("subscribe", symbol)
            event = Resubscribe(
                f"kraken: the {symbol} book resync was refused ({reason}); retrying in {delay:g}s",
                (retry,),
                delay,
            )
        return event

    def resync_refusals(self, symbol: str) -> int:
        """How many resubscriptions of ``symbol``'s book the venue refused in a row."""
        return self._resync_refusals.get(symbol, 0)

    # -- replies ---------------------------------------------------------------------------
    def _on_invalid(self, frame: bytes, exc: msgspec.ValidationError) -> DialectEvent | None:
        # not market data: a method reply, or a channel we do not map
        try:
            reply = self._dec_reply.decode(frame)
        except DECODE_ERRORS as err:
            self._sink.malformed(f"kraken: {type(err).__name__}: {err}")
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
                return self._refused(None, reply.error or f"{reply.method} failed")
            return None  # a late ack of a request already completed or refused
        req, remaining = entry
        if reply.success is False:
            del self._inflight[req.id]
            message = f"{reply.symbol}: {reply.error}" if reply.symbol else reply.error
            return self._refused(req, message or f"{req.op} failed", reply.error or "refused")
        remaining[0] -= 1
        if remaining[0] > 0:
            return None
        del self._inflight[req.id]
        return self._accepted(req, list(req.streams))

    def frame_handler(self) -> Callable[[bytes, int], DialectEvent | None]:
        """``feed`` as a closure over what it reads, with the book-update hot path of
        ``_on_book`` inlined (two calls and the type tests saved per frame); every other
        frame, and an update that path cannot take, goes the way ``feed`` sends it. The
        connector fetches it again after ``rebind``."""
        counters = self.counters
        decode = self._decode
        undecodable = self._undecodable
        dispatch = self._dispatch
        unusable = self._unusable
        symbols = self._symbols
        checked = self._book_checked
        mismatch = self._mismatch
        depth = self._depth
        book_msg = _BookMsg

        def feed(frame: bytes, ts_recv: int) -> DialectEvent | None:
            counters.frames += 1
            try:
                msg = decode(frame)
            except DECODE_ERRORS as exc:
                return undecodable(frame, exc)
            if type(msg) is book_msg and len(msg.data) == 1 and msg.type == "update":
                d = msg.data[0]
                st = symbols.get(d.symbol)
                if st is not None and st.live and not st.resyncing:
                    try:
                        ts_event = rfc3339_ns(d.timestamp) if d.timestamp else ts_recv
                        published = checked(
                            d.symbol,
                            st.book,
                            st.tokens,
                            bytes(d.bids),
                            bytes(d.asks),
                            depth,
                            d.checksum,
                            ts_event,
                            ts_recv,
                            0,
                        )
                    except ValueError:
                        pass  # _on_book (through dispatch) says what is wrong
                    else:
                        return mismatch(d, st, ts_event) if published < 0 else None
            try:
                return dispatch(msg, ts_recv)
            except DECODE_ERRORS as exc:
                return unusable(msg, frame, exc)

        return feed

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (also the constructor's binding)."""
        super().rebind(sink)
        self._trade_bytes = sink.trade_bytes
        self._quote_bytes = sink.quote_bytes
        self._book_checked = sink.book_levels_checked
