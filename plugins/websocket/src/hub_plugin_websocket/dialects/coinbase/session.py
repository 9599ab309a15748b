"""The Coinbase session: subscriptions, replies matched in order, frames to ticks, and
the ``level2`` book, resynchronised by resubscribing (on the shared ``ChannelSession``).

Sans-I/O. Frames go from bytes straight to msgspec ``Struct``s (``wire``) and from
there to the sink's compiled ``*_text`` methods, which parse the decimal strings
to fixed point exactly. The protocol facts this relies on are in the package's
docstring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from hub_core.plugin import Side, Sink, parse_fixed
from hub_plugin_websocket.codec import DialectEvent, Notice, RateLimits, Request, SessionConfig
from hub_plugin_websocket.dialects._channel_session import (
    DECODE_ERRORS,
    ChannelSession,
    SymbolState,
)
from hub_plugin_websocket.dialects.coinbase.wire import (
    _CHANGES,
    _DEC,
    _DEC_L2_STRICT,
    _DEC_TYPE,
    _KNOWN,
    _Error,
    _Heartbeat,
    _L2Update,
    _LastMatch,
    _levels,
    _Match,
    _Message,
    _Snapshot,
    _Subscriptions,
    _Ticker,
)
from hub_plugin_websocket.dialects.timestamps import rfc3339_ns

__all__ = ["CoinbaseSession"]

_BUY: Final[str] = str(Side.BUY)
_SELL: Final[str] = str(Side.SELL)
_BID: Final[str] = str(Side.BID)
_ASK: Final[str] = str(Side.ASK)


class _Product(SymbolState):
    """What the session knows about one product: its stream positions and its book."""

    __slots__ = ("last_trade_id", "match_seq", "ticker_seq")

    def __init__(self, wants_book: bool) -> None:
        super().__init__(wants_book)
        self.ticker_seq = 0
        self.match_seq = 0
        self.last_trade_id = 0


class CoinbaseSession(ChannelSession[_Product, _Message]):
    """One connection's worth of Coinbase protocol state (requests in flight, books)."""

    venue = "coinbase"

    def __init__(self, sink: Sink, config: SessionConfig, limits: RateLimits) -> None:
        # replies carry no id: they answer the oldest request in flight
        self._inflight: deque[Request] = deque()
        super().__init__(sink, config, limits)
        self._decode = _DEC.decode
        self._dec_type = _DEC_TYPE

    def _new_state(self, wants_book: bool) -> _Product:
        return _Product(wants_book)

    def _is_book(self, channel: str) -> bool:
        return channel == "level2"

    # -- subscriptions ---------------------------------------------------------------------
    def _payload(self, op: str, symbols: list[str], channels: Sequence[str], req_id: int) -> bytes:
        return self._enc.encode({"type": op, "product_ids": symbols, "channels": list(channels)})

    def _track(self, req: Request) -> None:
        self._inflight.append(req)

    # -- frames ----------------------------------------------------------------------------
    def _on_invalid(self, frame: bytes, exc: msgspec.ValidationError) -> DialectEvent | None:
        # a well-formed message of a kind we do not map (status, received, ...) is not
        # malformed: Coinbase may add message types at any time
        try:
            kind = self._dec_type.decode(frame).type
        except DECODE_ERRORS:
            kind = ""
        if kind == "l2update":
            # its changes are decoded late: the error as the whole frame's decode words it
            try:
                _DEC_L2_STRICT.decode(frame)
            except msgspec.ValidationError as strict:
                exc = strict
        if kind and kind not in _KNOWN:
            self._ignored(kind)
        else:
            self._sink.malformed(f"coinbase: {exc}")
        return None

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
            st = self._symbols.get(msg.product_id)
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
        st = self._symbols.get(msg.product_id)
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
        st = self._symbols.get(msg.product_id)
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
        st = self._symbols.get(msg.product_id)
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
        if st.wants_book and not st.resyncing:
            return self._resync(product, st, ts, None)
        return None

    # -- books -----------------------------------------------------------------------------
    def _on_snapshot(self, msg: _Snapshot, ts_recv: int) -> DialectEvent | None:
        st = self._symbols.get(msg.product_id)
        if st is None or not st.wants_book:
            self._ignored("snapshot (not subscribed)")
            return None
        bids = _levels(msg.bids)
        asks = _levels(msg.asks)
        book = st.book
        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
        # a new snapshot replaces the book whole: nothing old survives
        book.replace(tuple(bids), tuple(asks), ts_event)
        st.live = True
        st.resyncing = False
        b, a = book.levels()
        self._sink.book_snapshot(msg.product_id, b, a, ts_event, ts_recv, 0)
        return None

    def _on_l2update(self, msg: _L2Update, ts_recv: int) -> DialectEvent | None:
        st = self._symbols.get(msg.product_id)
        if st is not None and st.wants_book and st.live and not st.resyncing:
            # the hot path: parsed, applied in the order sent and published in one
            # compiled call (nothing applied if anything in it cannot be read)
            try:
                ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
                self._book_changes(msg.product_id, st.book, bytes(msg.changes), ts_event, ts_recv)
            except ValueError:  # MalformedNumber too
                pass  # change by change below, which says what is wrong as it always did
            else:
                return None
        # a ValidationError here is the frame's (ChannelSession.feed)
        wire_changes = _CHANGES.decode(msg.changes)
        if st is None or not st.wants_book:
            self._ignored("l2update (not subscribed)")
            return None
        if st.resyncing:
            return None  # the old subscription's tail: the new snapshot replaces it all
        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
        if not st.live:
            return self._broken(msg.product_id, st, ts_event, "an l2update before its snapshot")
        try:
            changes = [
                (
                    _BID if side == "buy" else _ASK if side == "sell" else "",
                    parse_fixed(p),
                    parse_fixed(q),
                )
                for side, p, q in wire_changes
            ]
            if any(not side for side, _, _ in changes):
                raise ValueError("an l2update change side is neither buy nor sell")
        except DECODE_ERRORS as exc:
            self._sink.malformed(f"coinbase: l2update {msg.product_id}: {exc}")
            return self._broken(msg.product_id, st, ts_event, "an unreadable l2update")
        book = st.book
        publish = self._sink.book_update
        product = msg.product_id
        for side, price, size in changes:
            action = book.apply(side, price, size)
            if action:
                publish(product, side, price, size, ts_event, ts_recv, action, 0)
        book.stamp(ts_event, 0)
        return None

    def _broken(self, product: str, st: _Product, ts: int, what: str) -> DialectEvent:
        """The ``level2`` book cannot be trusted (``what``): ``Gap`` and a new snapshot."""
        return self._resync(
            product,
            st,
            ts,
            f"sequence of the {product} level2 book broken ({what}); "
            "book resynchronised from a new snapshot",
        )

    # -- replies ---------------------------------------------------------------------------
    def _on_reply(self, err: _Error | None, subs: _Subscriptions | None) -> DialectEvent | None:
        req = self._inflight.popleft() if self._inflight else None
        if err is not None:
            return self._refused(req, f"{err.message}: {err.reason}" if err.reason else err.message)
        result: list[str] = []
        for ch in subs.channels if subs is not None else []:
            if isinstance(ch, str):
                result.append(ch)
            else:
                result.extend(f"{ch.name}:{p}" for p in ch.product_ids)
        if req is None:
            return Notice(f"coinbase: subscriptions without a request: {result}")
        return self._accepted(req, result)

    def frame_handler(self) -> Callable[[bytes, int], DialectEvent | None]:
        """``feed`` as a closure over what it reads, with the l2update hot path of
        ``_on_l2update`` inlined (a call and the type tests saved per frame); every
        other frame, and an l2update that path cannot take, goes the way ``feed``
        sends it. The connector fetches it again after ``rebind``."""
        counters = self.counters
        decode = self._decode
        undecodable = self._undecodable
        dispatch = self._dispatch
        unusable = self._unusable
        symbols = self._symbols
        changes = self._book_changes
        l2update = _L2Update

        def feed(frame: bytes, ts_recv: int) -> DialectEvent | None:
            counters.frames += 1
            try:
                msg = decode(frame)
            except DECODE_ERRORS as exc:
                return undecodable(frame, exc)
            if type(msg) is l2update:
                st = symbols.get(msg.product_id)
                if st is not None and st.wants_book and st.live and not st.resyncing:
                    try:
                        ts_event = rfc3339_ns(msg.time) if msg.time else ts_recv
                        changes(msg.product_id, st.book, bytes(msg.changes), ts_event, ts_recv)
                    except ValueError:
                        pass  # _on_l2update (through dispatch) says what is wrong
                    else:
                        return None
            try:
                return dispatch(msg, ts_recv)
            except DECODE_ERRORS as exc:
                return unusable(msg, frame, exc)

        return feed

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (also the constructor's binding)."""
        super().rebind(sink)
        self._trade_text = sink.trade_text
        self._quote_text = sink.quote_text
        self._book_changes = sink.book_changes_json
