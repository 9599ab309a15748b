"""The hub side of every connection: ``ConnectionSink`` and ``EventProcessor`` (compiled).

A connection never touches the bus. It hands market data to its sink
synchronously, either as values (the sink builds the tick natively and
publishes it) or as raw DBN bytes (decoded here a buffer at a time). So
stats, stamping and ``Gap`` bookkeeping happen in exactly one place.
"""

import logging
import time
from collections.abc import Callable
from typing import Final, final

from mypy_extensions import i64

from hub_core.book import LevelTokens, OrderBook
from hub_core.bus import TypedEventBus
from hub_core.dbn import DbnDecoder, RecordHandler
from hub_core.factories import (
    book_update_from_bytes,
    book_update_from_text,
    new_book_update,
    new_quote,
    quote_from_bytes,
    quote_from_text,
    trade_from_bytes,
    trade_from_text,
)
from hub_core.fixed import parse_fixed, parse_level_objects, parse_pairs_json, parse_sided_json
from hub_core.latency import SAMPLE_EVERY, LatencyRecorder
from hub_core.ticks import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    Gap,
    Quote,
    Trade,
)

log = logging.getLogger("hub_core.processor")

_LOG_FIRST: Final = 5
_LOG_EVERY: Final = 1000
_SAMPLE_MASK: Final = SAMPLE_EVERY - 1
_HOLD_MAX: Final = 100_000
"""Ticks held back at most while a session subscribes; past it they flow (in order)."""
_MS_I64_MAX: Final = 9_223_372_036_854
"""Milliseconds whose nanoseconds still fit an i64."""
_BID: Final = "B"
_ASK: Final = "A"
_CLEAR: Final = "R"  # DBN's clear-book action: such an update is published as a BookClear

CONTROL_SYMBOL_MAPPING: Final = "symbol_mapping"
CONTROL_ERROR: Final = "error"
CONTROL_SYSTEM: Final = "system"


@final
class ConnectionSink(RecordHandler):
    """Where one connection delivers its data. Created by the hub, one per connection.

    Value methods (``trade``, ``quote_text``, ...) build the tick in compiled
    code and publish it; ``feed_dbn`` decodes DBN records. ``ts_recv`` is the
    wall-clock ns (``time.time_ns()``) when the bytes were read: read it once
    per buffer, not per tick.
    """

    exchange: Final[str]
    trades: int
    quotes: int
    book_updates: int
    snapshots: int
    book_clears: int
    gaps: int
    malformed_count: int
    reconnects: int
    data_count: int
    venue_errors: int
    last_error: str
    last_recv_ns: int
    """Wall-clock ns (``ts_recv``) of the last market data delivered; 0 = none yet."""
    blind_since_ns: int
    """Start of the open blind window (wall-clock ns); 0 = not blind. See ``begin_blind``."""
    blind_reason: str
    holding: bool
    _attention: bool
    """``holding`` or a blind window open: the one flag the per-tick path tests."""
    latency: Final[LatencyRecorder]
    """This connection's receive-to-callback latency (the hub's is ``EventProcessor.latency``)."""
    """True while the supervisor holds a new session's data back (``hold()``)."""
    _held: list[object]
    symbol_errors: dict[str, str]
    """Symbols the plugin reported in error mid-session (``symbol_error``), with why."""
    last_by_symbol: dict[str, object]
    """The last market-data tick of each symbol (its ``ts_recv`` says when): one dict
    store per tick, no allocation; read by the supervisor to report quiet symbols."""
    control: Callable[[str, int, str], object] | None
    """Set by a plugin whose control messages travel as DBN records: called as
    ``control(kind, number, text)`` with kind ``"symbol_mapping"`` (instrument
    id, symbol), ``"error"`` (code, message) or ``"system"`` (code, message)."""
    dbn_tap: Callable[[bytes, int, int, int], object] | None
    """Set by the recorder (``set_dbn_tap``): after each ``feed_dbn``, called as
    ``dbn_tap(records, ts_recv, decoded, malformed)`` with the whole records just
    decoded, how many, and how many malformed reports the buffer caused."""
    dbn_recorded: bool
    """True once a tapped ``feed_dbn`` ran: this connection's DBN is recorded as bytes."""
    relay_factory: "Callable[[str], ConnectionSink] | None"
    """Set by the ``EventProcessor``: what ``relay`` asks for another exchange's sink."""

    def __init__(self, exchange: str, bus: TypedEventBus, latency: LatencyRecorder) -> None:
        self.exchange = exchange
        self._bus = bus
        self._latency = latency
        self.latency = LatencyRecorder()
        self.trades = 0
        self.quotes = 0
        self.book_updates = 0
        self.snapshots = 0
        self.book_clears = 0
        self.gaps = 0
        self.malformed_count = 0
        self.reconnects = 0
        self.data_count = 0
        self.venue_errors = 0
        self.last_error = ""
        self.last_recv_ns = 0
        self.blind_since_ns = 0
        self._attention = False
        self.blind_reason = ""
        self.last_by_symbol = {}
        self.symbol_errors = {}
        self.control = None
        self.dbn_tap = None
        self.dbn_recorded = False
        self.relay_factory = None
        self.holding = False
        self._held = []
        self._decoder = DbnDecoder(exchange, self)

    # -- stamping and accounting -------------------------------------------
    def _sample(self, ts_recv: int) -> None:
        self.data_count += 1
        self.last_recv_ns = ts_recv
        if (self.data_count & _SAMPLE_MASK) == 0:
            self._record_latency(ts_recv)

    def _record_latency(self, ts_recv: int) -> None:
        ns = time.time_ns() - ts_recv
        self._latency.record(ns)  # the hub's, across connections
        self.latency.record(ns)  # this connection's

    # -- RecordHandler: what the DBN decoder (and the value methods) emit ---
    # Each checks for an open blind window first (one int test per tick): the first
    # data after the blindness closes it, so its Gap reaches subscribers before it.
    def on_trade(self, tick: Trade) -> None:
        if self._attention:  # one test per tick: holding, or a blind window open
            if self.holding:
                self._hold(tick)
                return
            self.end_blind(tick.ts_recv)
        self.trades += 1
        self._bus.publish_trade(tick)
        self.last_by_symbol[tick.symbol] = tick
        self._sample(tick.ts_recv)

    def on_quote(self, tick: Quote) -> None:
        if self._attention:  # one test per tick: holding, or a blind window open
            if self.holding:
                self._hold(tick)
                return
            self.end_blind(tick.ts_recv)
        self.quotes += 1
        self._bus.publish_quote(tick)
        self.last_by_symbol[tick.symbol] = tick
        self._sample(tick.ts_recv)

    def on_book_update(self, tick: BookUpdate) -> None:
        if self._attention:  # one test per tick: holding, or a blind window open
            if self.holding:
                self._hold(tick)
                return
            self.end_blind(tick.ts_recv)
        self.book_updates += 1
        self._bus.publish_book_update(tick)
        self.last_by_symbol[tick.symbol] = tick
        self._sample(tick.ts_recv)

    def on_snapshot(self, tick: BookSnapshot) -> None:
        if self._attention:  # one test per tick: holding, or a blind window open
            if self.holding:
                self._hold(tick)
                return
            self.end_blind(tick.ts_recv)
        self.snapshots += 1
        self._bus.publish_snapshot(tick)
        self.last_by_symbol[tick.symbol] = tick
        self._sample(tick.ts_recv)

    def on_book_clear(self, tick: BookClear) -> None:
        if self._attention:  # one test per tick: holding, or a blind window open
            if self.holding:
                self._hold(tick)
                return
            self.end_blind(tick.ts_recv)
        self.book_clears += 1
        self._bus.publish_book_clear(tick)
        self.last_by_symbol[tick.symbol] = tick
        self._sample(tick.ts_recv)

    def on_symbol_mapping(self, instrument_id: int, symbol: str, ts_event: int) -> None:
        # the decoder keeps the map itself; the plugin may want it as an ack
        control = self.control
        if control is not None:
            control(CONTROL_SYMBOL_MAPPING, instrument_id, symbol)

    def on_error_record(self, message: str, code: int, ts_event: int) -> None:
        self.venue_errors += 1
        self.last_error = message
        control = self.control
        if control is not None:
            control(CONTROL_ERROR, code, message)
        else:
            log.warning("[%s] venue error record (code %d): %s", self.exchange, code, message)

    def on_system_record(self, message: str, code: int, ts_event: int) -> None:
        control = self.control
        if control is not None:
            control(CONTROL_SYSTEM, code, message)

    def on_malformed(self, reason: str) -> None:
        self.malformed(reason)

    def on_sequence_gap(self, expected: int, got: int, ts_event: int) -> None:
        now = time.time_ns()
        self.gap(
            "", ts_event, now, f"sequence gap: expected {expected}, got {got}", expected, got - 1
        )

    # -- value methods for text and struct protocols --------------------------
    def trade(
        self,
        symbol: str,
        price: int,
        size: int,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from fixed-point ints."""
        self.on_trade(
            Trade(self.exchange, symbol, price, size, side, ts_event, ts_recv, sequence, trade_id)
        )

    def trade_text(
        self,
        symbol: str,
        price: str,
        size: str,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from decimal text (raises ``MalformedNumber``)."""
        self.on_trade(
            trade_from_text(
                self.exchange, symbol, price, size, side, ts_event, ts_recv, sequence, trade_id
            )
        )

    def trade_text_ms(
        self,
        symbol: str,
        price: str,
        size: str,
        side: str,
        ts_event_ms: int,
        ts_recv: int,
        trade_id: int,
    ) -> None:
        """``trade_text`` for a venue that stamps trades in milliseconds and numbers them
        (Binance's ``T`` and ``a``/``t``): ``ts_event`` is ``ts_event_ms`` * 1e6,
        ``sequence`` is ``trade_id`` and ``trade_id`` its decimal text. The product
        and the text are made here, in compiled code, instead of per tick by the
        plugin (raises ``MalformedNumber``)."""
        if -_MS_I64_MAX <= ts_event_ms <= _MS_I64_MAX:
            ms: i64 = ts_event_ms
            ts_event: int = ms * 1_000_000  # i64: a tagged-int product this big is slow
        else:
            ts_event = ts_event_ms * 1_000_000
        self.on_trade(
            trade_from_text(
                self.exchange, symbol, price, size, side, ts_event, ts_recv, trade_id, str(trade_id)
            )
        )

    def trade_bytes(
        self,
        symbol: str,
        price: bytes,
        size: bytes,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from decimal ASCII bytes (raises ``MalformedNumber``)."""
        self.on_trade(
            trade_from_bytes(
                self.exchange, symbol, price, size, side, ts_event, ts_recv, sequence, trade_id
            )
        )

    def quote(
        self,
        symbol: str,
        bid_price: int,
        bid_size: int,
        ask_price: int,
        ask_size: int,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a quote from fixed-point ints."""
        self.on_quote(
            new_quote(
                self.exchange,
                symbol,
                bid_price,
                bid_size,
                ask_price,
                ask_size,
                ts_event,
                ts_recv,
                sequence,
            )
        )

    def quote_text(
        self,
        symbol: str,
        bid_price: str,
        bid_size: str,
        ask_price: str,
        ask_size: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a quote from decimal text (raises ``MalformedNumber``)."""
        self.on_quote(
            quote_from_text(
                self.exchange,
                symbol,
                bid_price,
                bid_size,
                ask_price,
                ask_size,
                ts_event,
                ts_recv,
                sequence,
            )
        )

    def quote_bytes(
        self,
        symbol: str,
        bid_price: bytes,
        bid_size: bytes,
        ask_price: bytes,
        ask_size: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a quote from decimal ASCII bytes (raises ``MalformedNumber``)."""
        self.on_quote(
            quote_from_bytes(
                self.exchange,
                symbol,
                bid_price,
                bid_size,
                ask_price,
                ask_size,
                ts_event,
                ts_recv,
                sequence,
            )
        )

    def book_update(
        self,
        symbol: str,
        side: str,
        price: int,
        size: int,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish a price-level update (``size`` 0 removes the level); action ``R``
        publishes a ``BookClear`` instead (``book_clear``)."""
        if action == _CLEAR:
            self.book_clear(symbol, ts_event, ts_recv, sequence)
            return
        self.on_book_update(
            new_book_update(
                self.exchange, symbol, side, price, size, ts_event, ts_recv, action, sequence
            )
        )

    def book_update_text(
        self,
        symbol: str,
        side: str,
        price: str,
        size: str,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish a price-level update from decimal text (action ``R``: a ``BookClear``)."""
        if action == _CLEAR:
            self.book_clear(symbol, ts_event, ts_recv, sequence)
            return
        self.on_book_update(
            book_update_from_text(
                self.exchange, symbol, side, price, size, ts_event, ts_recv, action, sequence
            )
        )

    def book_update_bytes(
        self,
        symbol: str,
        side: str,
        price: bytes,
        size: bytes,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish a price-level update from decimal ASCII bytes (action ``R``: a
        ``BookClear``)."""
        if action == _CLEAR:
            self.book_clear(symbol, ts_event, ts_recv, sequence)
            return
        self.on_book_update(
            book_update_from_bytes(
                self.exchange, symbol, side, price, size, ts_event, ts_recv, action, sequence
            )
        )

    def book_level(
        self,
        symbol: str,
        book: OrderBook,
        side: str,
        price: int,
        size: int,
        ts_event: int,
        ts_recv: int,
        action: str = "",
        sequence: int = 0,
    ) -> str:
        """Set one level of the plugin's own ``book`` (``size`` 0 removes it) and publish
        it as a ``BookUpdate``, in one call: for a plugin compiled on its own, each
        call into the core is a Python-level call, and this saves one per level.

        Returns the book's action (``A``/``M``/``C``, ``""`` when the level already
        was as sent). With ``action`` ``""`` that is what is published, and nothing
        when it is ``""``; a venue that states its own action (FIX's MDUpdateAction)
        passes it, and the update is published with it whatever the book says. The
        book is stamped with ``ts_event`` and ``sequence``."""
        book._writable()  # the hub's read-only book raises HubError
        got = book._set(side, price, size, ts_event, sequence)
        letter = action if action else got
        if letter:
            self.on_book_update(
                BookUpdate(
                    self.exchange, symbol, side, price, size, ts_event, ts_recv, letter, 0, sequence
                )
            )
        return got

    def book_levels_text(
        self,
        symbol: str,
        book: OrderBook,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> int:
        """Apply a depth message's levels, ``(price, size)`` decimal text, to the
        plugin's own ``book`` and publish a ``BookUpdate`` per level that changed it.

        Every number is parsed before anything is applied: on ``MalformedNumber``
        the book is as it was and nothing is published. Then the bids, then the asks,
        each in the order given (size 0 removes the level; a level that changes
        nothing is not published), and the book is stamped with ``ts_event`` and
        ``sequence``. Returns how many updates were published. One call per message
        instead of three per level: the parse, the book and the ticks stay in
        compiled code.
        """
        parsed: list[int] = []
        for p, q in bids:
            parsed.append(parse_fixed(p))
            parsed.append(parse_fixed(q))
        n_bids = len(parsed)
        for p, q in asks:
            parsed.append(parse_fixed(p))
            parsed.append(parse_fixed(q))
        return self._apply_levels(symbol, book, parsed, n_bids, ts_event, ts_recv, sequence)

    def book_levels_json(
        self,
        symbol: str,
        book: OrderBook,
        bids: bytes,
        asks: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> int:
        """``book_levels_text`` with the levels still as JSON: ``bids`` and ``asks`` are
        each the bytes of a JSON array of ``["price", "size"]`` decimal strings (as
        Binance writes them; e.g. a ``msgspec.Raw`` field, ``bytes(raw)``).

        The same contract: everything parsed first (``MalformedNumber`` for a bad
        number or any other shape: nothing applied, nothing published), then bids,
        then asks, in order. Cheaper than decoding the levels into ``str`` pairs
        first: no string or tuple per level is ever built."""
        parsed: list[int] = []
        parse_pairs_json(bids, parsed)
        n_bids = len(parsed)
        parse_pairs_json(asks, parsed)
        return self._apply_levels(symbol, book, parsed, n_bids, ts_event, ts_recv, sequence)

    def book_changes_json(
        self,
        symbol: str,
        book: OrderBook,
        changes: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        bid: bytes = b"buy",
        ask: bytes = b"sell",
    ) -> int:
        """A depth message whose changes name their side, in one call: ``changes`` is
        the bytes of a JSON array of ``[side, "price", "size"]`` strings (Coinbase's
        ``l2update``; ``side`` is ``bid`` or ``ask``). Everything is parsed first
        (``MalformedNumber`` for a bad number, side or shape: nothing applied, nothing
        published); then each change is applied to the plugin's own ``book`` in the
        order sent, a ``BookUpdate`` published per change that changed it, and the book
        stamped with ``ts_event`` and ``sequence``. Returns how many were published."""
        parsed: list[int] = []
        parse_sided_json(changes, bid, ask, parsed)
        book._writable()  # the hub's read-only book raises HubError
        exchange = self.exchange
        bus = self._bus
        published = 0
        direct = 0
        last: BookUpdate | None = None
        i: i64 = 0
        n: i64 = len(parsed)
        while i < n:
            side = _BID if parsed[i] else _ASK
            price = parsed[i + 1]
            size = parsed[i + 2]
            action = book._set(side, price, size, 0, 0)
            if action:
                tick = BookUpdate(
                    exchange, symbol, side, price, size, ts_event, ts_recv, action, 0, sequence
                )
                if self._attention:  # holding, or the first tick after a blind window
                    self.on_book_update(tick)
                else:
                    bus.publish_book_update(tick)
                    direct += 1
                    last = tick
                published += 1
            i += 3
        book._last_update_ns = ts_event
        book._last_sequence = sequence
        if last is not None:
            self._account(symbol, last, direct, ts_recv)
        return published

    def book_levels_checked(
        self,
        symbol: str,
        book: OrderBook,
        tokens: LevelTokens,
        bids: bytes,
        asks: bytes,
        depth: int,
        checksum: int,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        price_key: bytes = b"price",
        size_key: bytes = b"qty",
    ) -> int:
        """A depth message checked before it is published, in one call: ``bids`` and
        ``asks``, each the bytes of a JSON array of level objects as
        ``parse_level_objects`` reads them (keys ``price_key`` and ``size_key``), are
        parsed first (``MalformedNumber``: nothing applied, nothing published), then
        applied to the plugin's own ``book`` and ``tokens``, bids then asks, in order;
        each side is trimmed to ``depth`` (0: no trim; a trimmed level is a removal,
        ``C``); then ``tokens.crc32(10)`` must equal ``checksum``. If it does, a
        ``BookUpdate`` is published per level that changed the book, the trimmed ones
        last, the book is stamped with ``ts_event`` and ``sequence``, and the count is
        returned. If not, nothing is published and -1 is returned: the book holds the
        message, and the caller drops it and asks the venue for a new snapshot."""
        levels: list[int] = []
        texts: list[bytes] = []
        parse_level_objects(bids, price_key, size_key, levels, texts)
        n_bids = len(levels)
        parse_level_objects(asks, price_key, size_key, levels, texts)
        book._writable()  # the hub's read-only book raises HubError
        changes: list[tuple[str, int, int, str]] = []
        n: i64 = len(levels)
        i: i64 = 0
        side = _BID
        while i < n:
            if i == n_bids:
                side = _ASK
            price = levels[i]
            size = levels[i + 1]
            action = book._set(side, price, size, 0, 0)
            tokens.set(side, price, size, texts[i], texts[i + 1])
            if action:
                changes.append((side, price, size, action))
            i += 2
        if depth > 0:
            for worst in book._bids.trim(depth):
                tokens.drop(_BID, worst)
                changes.append((_BID, worst, 0, "C"))
            for worst in book._asks.trim(depth):
                tokens.drop(_ASK, worst)
                changes.append((_ASK, worst, 0, "C"))
        if tokens.crc32(10) != checksum:
            return -1
        exchange = self.exchange
        bus = self._bus
        direct = 0
        last: BookUpdate | None = None
        for side, price, size, action in changes:
            tick = BookUpdate(
                exchange, symbol, side, price, size, ts_event, ts_recv, action, 0, sequence
            )
            if self._attention:  # holding, or the first tick after a blind window
                self.on_book_update(tick)
            else:
                bus.publish_book_update(tick)
                direct += 1
                last = tick
        book._last_update_ns = ts_event
        book._last_sequence = sequence
        if last is not None:
            self._account(symbol, last, direct, ts_recv)
        return len(changes)

    def _account(self, symbol: str, last: BookUpdate, direct: int, ts_recv: int) -> None:
        """on_book_update's accounting, once for ``direct`` ticks published straight to
        the bus: the counters end the same, the symbol's last tick is ``last``."""
        self.book_updates += direct
        self.last_by_symbol[symbol] = last
        before = self.data_count
        after = before + direct
        self.data_count = after
        self.last_recv_ns = ts_recv
        # a sample each time the count passed a multiple of SAMPLE_EVERY, as per tick
        passed = ((after & ~_SAMPLE_MASK) - (before & ~_SAMPLE_MASK)) // SAMPLE_EVERY
        while passed > 0:
            self._record_latency(ts_recv)
            passed -= 1

    def _apply_levels(
        self,
        symbol: str,
        book: OrderBook,
        parsed: list[int],
        n_bids: int,
        ts_event: int,
        ts_recv: int,
        sequence: int,
    ) -> int:
        """``parsed`` (price, size, price, size, ...; bids before index ``n_bids``) into
        ``book``, a ``BookUpdate`` published per level that changed it."""
        book._writable()  # the hub's read-only book raises HubError
        exchange = self.exchange
        bus = self._bus
        published = 0
        direct = 0
        last: BookUpdate | None = None
        i = 0
        n = len(parsed)
        side = _BID
        while i < n:
            if i == n_bids:
                side = _ASK
            price = parsed[i]
            size = parsed[i + 1]
            action = book._set(side, price, size, 0, 0)
            if action:
                tick = BookUpdate(
                    exchange, symbol, side, price, size, ts_event, ts_recv, action, 0, sequence
                )
                if self._attention:  # holding, or the first tick after a blind window
                    self.on_book_update(tick)
                else:
                    bus.publish_book_update(tick)
                    direct += 1
                    last = tick
                published += 1
            i += 2
        book._last_update_ns = ts_event
        book._last_sequence = sequence
        if last is not None:
            self._account(symbol, last, direct, ts_recv)
        return published

    def book_snapshot(
        self,
        symbol: str,
        bids: tuple[tuple[int, int], ...],
        asks: tuple[tuple[int, int], ...],
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a book snapshot (levels best first)."""
        self.on_snapshot(
            BookSnapshot(self.exchange, symbol, bids, asks, ts_event, ts_recv, sequence)
        )

    def book_clear(
        self, symbol: str, ts_event: int, ts_recv: int, sequence: int = 0, reason: str = ""
    ) -> None:
        """Publish a ``BookClear``: every level of ``symbol`` is gone (``reason``: the
        venue's word for why, "" when it gives none)."""
        self.on_book_clear(BookClear(self.exchange, symbol, ts_event, ts_recv, sequence, reason))

    def publish(self, tick: object) -> None:
        """Publish a tick built elsewhere; it must carry this connection's exchange.
        A ``BookUpdate`` with action ``R`` is published as the ``BookClear`` it means."""
        if isinstance(tick, Trade):
            self._check_exchange(tick.exchange)
            self.on_trade(tick)
        elif isinstance(tick, Quote):
            self._check_exchange(tick.exchange)
            self.on_quote(tick)
        elif isinstance(tick, BookUpdate):
            self._check_exchange(tick.exchange)
            if tick.action == _CLEAR:
                self.book_clear(tick.symbol, tick.ts_event, tick.ts_recv, tick.sequence)
            else:
                self.on_book_update(tick)
        elif isinstance(tick, BookSnapshot):
            self._check_exchange(tick.exchange)
            self.on_snapshot(tick)
        elif isinstance(tick, BookClear):
            self._check_exchange(tick.exchange)
            self.on_book_clear(tick)
        elif isinstance(tick, Gap):
            self._check_exchange(tick.exchange)
            if self.holding:
                self._hold(tick)
                return
            self.gaps += 1
            self._bus.publish(tick)
        else:
            raise TypeError(f"a connection cannot publish {type(tick).__name__}")

    def _check_exchange(self, exchange: str) -> None:
        if exchange != self.exchange:
            raise ValueError(
                f"tick for exchange {exchange!r} published through the sink of {self.exchange!r}"
            )

    # -- DBN ------------------------------------------------------------------
    def feed_dbn(self, data: bytes, ts_recv: int) -> int:
        """Decode DBN records from ``data``; a partial record at the end is kept
        for the next call. Returns the number of records decoded."""
        tap = self.dbn_tap
        if tap is None:
            return self._decoder.feed(data, ts_recv)
        self.dbn_recorded = True
        before = self.malformed_count
        count = self._decoder.feed(data, ts_recv)
        tap(self._decoder.whole, ts_recv, count, self.malformed_count - before)
        return count

    def relay(self, exchange: str) -> "ConnectionSink":
        """The sink of ``exchange``, an exchange another hub connects to, whose ticks
        this connection brings in (a NATS source): ticks keep their original
        exchange name, are counted under it, and the hub's own DBN system records
        (size decimals, Gaps) are understood. Created on first use; a name that is
        one of this hub's own connections is refused (``ValueError``)."""
        factory = self.relay_factory
        if factory is None:
            raise ValueError(
                f"the sink of {self.exchange!r} belongs to no hub: nothing to relay to"
            )
        return factory(exchange)

    def set_dbn_tap(self, tap: Callable[[bytes, int, int, int], object] | None) -> None:
        """Hand every buffer's whole decoded records to ``tap`` (None: stop); see ``dbn_tap``."""
        self.dbn_tap = tap
        self._decoder.keep_whole = tap is not None

    @property
    def dbn_pending(self) -> int:
        """Bytes of a partial DBN record ``feed_dbn`` keeps for the next call: the next
        buffer's first record boundary is that record's length minus this."""
        return self._decoder.pending

    @property
    def dbn(self) -> DbnDecoder:
        """The decoder: its ``symbols`` map, ``check_sequence`` switch, ``reset()``."""
        return self._decoder

    def configure_dbn(
        self, check_sequence: bool, max_record_len: int, mbp1_trades: bool = False
    ) -> None:
        """How ``feed_dbn`` decodes: check record sequence numbers (a break is a
        ``Gap``), the largest record accepted (a bigger length is malformed), and
        whether an mbp-1 record of a trade is also a ``Trade``."""
        self._decoder.check_sequence = check_sequence
        self._decoder.max_record_len = max_record_len
        self._decoder.mbp1_trades = mbp1_trades

    def map_symbol(self, instrument_id: int, symbol: str) -> None:
        """Tell the DBN decoder which symbol ``instrument_id`` is."""
        self._decoder.symbols[instrument_id] = symbol

    def ignore_instrument(self, instrument_id: int, on: bool = True) -> None:
        """Stop (``on``) or resume publishing the market records of ``instrument_id``
        that ``feed_dbn`` decodes, for a venue that cannot unsubscribe within a session.
        A new session (``reset_session``) forgets it."""
        self._decoder.ignore(instrument_id, on)

    # -- control ----------------------------------------------------------------
    def venue_error(self, code: int, text: str) -> None:
        """Count and log an error the venue reported (a reject, an error record).

        Plugins call this instead of writing ``venue_errors`` / ``last_error``;
        the counter is ``hub_venue_errors_total`` in the metrics.
        """
        self.venue_errors += 1
        self.last_error = text
        n = self.venue_errors
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning("[%s] venue error %d (%d so far): %s", self.exchange, code, n, text)

    def symbol_error(self, symbol: str, reason: str) -> None:
        """One symbol is in error mid-session (a book that cannot be resynchronised, a
        stream the venue cut): the hub shows it per symbol until ``symbol_ok``."""
        if self.symbol_errors.get(symbol) == reason:
            return
        self.symbol_errors[symbol] = reason
        self.venue_errors += 1
        self.last_error = reason
        log.warning("[%s] %s: %s", self.exchange, symbol, reason)

    def symbol_ok(self, symbol: str) -> None:
        """A symbol reported with ``symbol_error`` is healthy again."""
        if self.symbol_errors.pop(symbol, None) is not None:
            log.info("[%s] %s: recovered", self.exchange, symbol)

    def take_counts(self, other: object) -> None:
        """Add what ``other`` (a diverted sink) counted, malformed frames and venue
        errors, to this sink, and zero them there: idempotent until it counts more."""
        if not isinstance(other, ConnectionSink) or other is self:
            return
        self.malformed_count += other.malformed_count
        self.venue_errors += other.venue_errors
        if other.last_error:
            self.last_error = other.last_error
        other.malformed_count = 0
        other.venue_errors = 0

    def malformed(self, reason: str) -> None:
        """Count and log a frame the codec could not use. Never raises."""
        self.malformed_count += 1
        n = self.malformed_count
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning("[%s] malformed input (%d so far): %s", self.exchange, n, reason)

    def gap(
        self,
        symbol: str,
        start_ts: int,
        end_ts: int,
        reason: str,
        start_seq: int = 0,
        end_seq: int = 0,
    ) -> None:
        """Publish a ``Gap``: data for ``symbol`` ("" = all) may be missing."""
        now = time.time_ns()
        gap = Gap(self.exchange, symbol, start_ts, end_ts, reason, start_seq, end_seq, end_ts, now)
        if self.holding:
            self._hold(gap)
            return
        self.gaps += 1
        self._bus.publish(gap)

    # -- a session's first data waits for its `connected` state ----------------
    def hold(self) -> None:
        """Hold data back until ``release()``: the supervisor holds a session's data while
        it subscribes, so no subscriber sees a tick before the ``connected`` state."""
        self.holding = True
        self._attention = True

    def release(self) -> None:
        """Deliver what was held, in arrival order, and stop holding."""
        self.holding = False
        self._attention = self.blind_since_ns != 0
        held = self._held
        self._held = []
        for tick in held:
            if isinstance(tick, Gap):
                self.gaps += 1
                self._bus.publish(tick)
            else:
                self.publish(tick)

    def _hold(self, tick: object) -> None:
        self._held.append(tick)
        if len(self._held) >= _HOLD_MAX:
            log.warning(
                "[%s] %d ticks arrived before the subscription was confirmed: delivering",
                self.exchange,
                len(self._held),
            )
            self.release()

    def begin_blind(self, since_ns: int, reason: str) -> None:
        """The connection went blind; data since ``since_ns`` (wall-clock ns) may be lost.

        The supervisor calls this when a link drops or goes stale, with the time
        of the last data received before it. A window already open keeps its
        earlier start. The window closes with a ``Gap`` at the first data that
        arrives afterwards (``end_ts`` = that data's ``ts_recv``), or at
        ``end_blind(now)`` when the connection stops for good.
        """
        if self.blind_since_ns:
            return
        self.blind_since_ns = since_ns if since_ns > 0 else time.time_ns()
        self._attention = True
        self.blind_reason = reason

    def last_seen_ns(self, symbol: str) -> int:
        """Wall-clock ns of the last market data of ``symbol``; 0 = none yet."""
        tick = self.last_by_symbol.get(symbol)
        if isinstance(tick, Trade):
            return tick.ts_recv
        if isinstance(tick, Quote):
            return tick.ts_recv
        if isinstance(tick, BookUpdate):
            return tick.ts_recv
        if isinstance(tick, BookSnapshot):
            return tick.ts_recv
        if isinstance(tick, BookClear):
            return tick.ts_recv
        return 0

    def recover_blind(self) -> tuple[int, str]:
        """The plugin recovers what the connection missed (a venue's replay): the open
        blind window is taken away, so no ``Gap`` comes when data flows again. Returns the
        window's ``(start ns, reason)``, ``(0, "")`` when none is open. A plugin whose
        recovery falls short publishes a ``Gap`` for what is missing (``gap``)."""
        start, reason = self.blind_since_ns, self.blind_reason
        self.blind_since_ns = 0
        self.blind_reason = ""
        self._attention = self.holding
        return start, reason

    def end_blind(self, end_ns: int) -> None:
        """Close the open blind window (if any) with a ``Gap`` ending at ``end_ns``."""
        start = self.blind_since_ns
        if not start:
            return
        self.blind_since_ns = 0
        self._attention = self.holding
        reason = self.blind_reason
        self.blind_reason = ""
        self.gap("", start, end_ns if end_ns > start else start, reason)

    def state(self, state: str, reason: str, endpoint: str = "", attempt: int = 0) -> None:
        """Publish a ``ConnectionStateChanged`` (the supervisor calls this)."""
        now = time.time_ns()
        self._bus.publish(
            ConnectionStateChanged(self.exchange, state, reason, now, now, endpoint, attempt)
        )

    def reset_session(self) -> None:
        """A new session begins: forget partial records, sequence state and per-symbol
        errors (the new session reports its own)."""
        self._decoder.reset()
        self.symbol_errors.clear()

    @property
    def backpressured(self) -> bool:
        """True while a ``"block"`` stream is full: the reader should wait
        (``await hub_core.streams.wait_for_capacity(sink)``)."""
        return self._bus.backpressured

    def add_capacity_waiter(self, wake: Callable[[], object]) -> None:
        """Call ``wake()`` once no ``"block"`` stream is over capacity."""
        self._bus.add_capacity_waiter(wake)


@final
class ExchangeStats:
    """Counts for one connection, as of ``get_stats()``."""

    def __init__(self, sink: ConnectionSink) -> None:
        self.exchange = sink.exchange
        self.trades = sink.trades
        self.quotes = sink.quotes
        self.book_updates = sink.book_updates
        self.snapshots = sink.snapshots
        self.book_clears = sink.book_clears
        self.gaps = sink.gaps
        self.malformed = sink.malformed_count
        self.reconnects = sink.reconnects
        self.venue_errors = sink.venue_errors
        self.last_recv_ns = sink.last_recv_ns
        """Wall-clock ns of the last market data received (0: none yet)."""
        self.latency_ns: dict[str, int] = sink.latency.percentiles()
        """Receive-to-callback percentiles of this connection (``{"p50": ns, ...}``)."""

    def __repr__(self) -> str:
        return (
            f"ExchangeStats({self.exchange!r}, trades={self.trades}, quotes={self.quotes}, "
            f"book_updates={self.book_updates}, snapshots={self.snapshots}, "
            f"book_clears={self.book_clears}, gaps={self.gaps}, "
            f"malformed={self.malformed}, reconnects={self.reconnects})"
        )


@final
class ProcessorStats:
    """A snapshot of the hub's counters (``EventProcessor.get_stats()``)."""

    def __init__(self, proc: "EventProcessor") -> None:
        self.per_exchange: dict[str, ExchangeStats] = {
            name: ExchangeStats(s) for name, s in proc.sinks.items()
        }
        self.trades_processed = sum(s.trades for s in self.per_exchange.values())
        self.quotes_processed = sum(s.quotes for s in self.per_exchange.values())
        self.book_updates_processed = sum(s.book_updates for s in self.per_exchange.values())
        self.snapshots_processed = sum(s.snapshots for s in self.per_exchange.values())
        self.book_clears_processed = sum(s.book_clears for s in self.per_exchange.values())
        self.gaps = sum(s.gaps for s in self.per_exchange.values())
        self.malformed_frames = sum(s.malformed for s in self.per_exchange.values())
        self.reconnects = sum(s.reconnects for s in self.per_exchange.values())
        self.handler_errors = proc.bus.handler_errors
        self.dropped = sum(b.dropped for b in proc.bus.streams())
        self.conflated = sum(b.conflated for b in proc.bus.streams())
        self.streams: list[dict[str, object]] = [
            {
                "type": getattr(b.tick_type, "__name__", "?"),
                "overflow": b.policy_name,
                "maxsize": b.maxsize,
                "depth": len(b),
                "dropped": b.dropped,
                "conflated": b.conflated,
                "delivered": b.delivered,
            }
            for b in proc.bus.streams()
        ]
        self.latency_ns: dict[str, int] = proc.latency.percentiles()
        self._started_ns = proc.started_ns

    def uptime(self) -> float:
        """Seconds since the processor started."""
        return (time.monotonic_ns() - self._started_ns) / 1e9

    def __repr__(self) -> str:
        return (
            # the attribute names, so what a user reads in a log is what they type
            f"ProcessorStats(trades_processed={self.trades_processed}, "
            f"quotes_processed={self.quotes_processed}, "
            f"book_updates_processed={self.book_updates_processed}, "
            f"snapshots_processed={self.snapshots_processed}, "
            f"book_clears_processed={self.book_clears_processed}, gaps={self.gaps}, "
            f"malformed_frames={self.malformed_frames}, handler_errors={self.handler_errors})"
        )


@final
class EventProcessor:
    """Owns the sinks of every connection and aggregates their stats."""

    bus: Final[TypedEventBus]
    latency: Final[LatencyRecorder]
    started_ns: int

    def __init__(self, bus: TypedEventBus) -> None:
        self.bus = bus
        self.latency = LatencyRecorder()
        self.sinks: dict[str, ConnectionSink] = {}
        self.relays: set[str] = set()
        """Exchanges whose ticks a connection relays from another hub (``relay``)."""
        self.started_ns = time.monotonic_ns()

    def sink_for(self, exchange: str) -> ConnectionSink:
        """The sink of connection ``exchange`` (created on first use, kept for stats)."""
        name = str(exchange)
        if name in self.relays:
            raise ValueError(
                f"{name!r} is already the name of an exchange relayed from another hub: "
                "give this connection another name"
            )
        sink = self.sinks.get(name)
        if sink is None:
            sink = ConnectionSink(name, self.bus, self.latency)
            sink.relay_factory = self.relay_sink
            self.sinks[name] = sink
        return sink

    def relay_sink(self, exchange: str) -> ConnectionSink:
        """The sink of relayed exchange ``exchange`` (see ``ConnectionSink.relay``)."""
        name = str(exchange)
        sink = self.sinks.get(name)
        if sink is not None:
            if name not in self.relays:
                raise ValueError(
                    f"a relayed exchange is named {name!r}, like a connection of this hub: "
                    "rename the connection"
                )
            return sink
        from hub_core.recording import HubRecords  # interpreted (zstandard): at first use

        sink = ConnectionSink(name, self.bus, self.latency)
        sink.relay_factory = self.relay_sink
        sink.control = HubRecords(sink)
        sink._decoder.record_ts_recv = True  # the other hub's receive time, as it was
        self.sinks[name] = sink
        self.relays.add(name)
        return sink

    def get_stats(self) -> ProcessorStats:
        """Counters: ``.trades_processed``, ``.quotes_processed``,
        ``.book_updates_processed``, ``.uptime()``, ``.per_exchange[name]`` ..."""
        return ProcessorStats(self)
