"""Ticks grouped and encoded as DBN records for a sink that ships them elsewhere.

A sink that sends ticks to another process (NATS, say) wants, per flush, one
payload per (exchange, kind, symbol) stream: the records of that stream in bus
order, encoded by the core's compiled DBN encoders. ``DbnBatcher`` does that
in one compiled call per tick, with no per-tick dict or string building: the
stream of a tick is found by two dict lookups (exchange, then symbol) in the
table of its kind.

Each stream has an instrument id of its own (per exchange, 1, 2, ... first
seen first, stable for the batcher's life), so a receiver can give each stream
its own size scale: DBN sizes are whole units, a venue's may be fractional, so
a stream whose sizes need decimals is written in 10**-d units and says so in
the hub's size-decimals system record (``hub_core.dbn.size_decimals_text``), as ``hub run
--record`` files do.
"""

from __future__ import annotations

from typing import Final, final

from hub_core.dbn import (
    SIZE_DECIMALS_CODE,
    encode_book_clear,
    encode_mbp1_raw,
    encode_snapshot,
    encode_symbol_mapping,
    encode_system,
    encode_trade_raw,
    mbo_record_raw,
    size_decimals_text,
)
from hub_core.fixed import PRICE_SCALE
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Quote, Trade

KIND_TRADE: Final = "trade"
KIND_QUOTE: Final = "quote"
KIND_BOOK_UPDATE: Final = "book_update"
"""``BookUpdate`` and ``BookClear``: one stream, so a clear keeps its place among updates."""
KIND_BOOK_SNAPSHOT: Final = "book_snapshot"
KINDS: Final = (KIND_TRADE, KIND_QUOTE, KIND_BOOK_UPDATE, KIND_BOOK_SNAPSHOT)

MBP10_DEPTH: Final = 10
"""Levels a side an mbp-10 record holds: a deeper snapshot ships its best ten (counted)."""


def _decimals(size: int) -> int:
    """Decimal places a fixed-point size needs (0: whole units)."""
    unit = PRICE_SCALE
    for places in range(10):
        if size % unit == 0:
            return places
        unit //= 10
    return 9


@final
class RecordGroup:
    """One stream's records of one flush: what a sink sends as one payload."""

    exchange: Final[str]
    kind: Final[str]
    """``"trade"``, ``"quote"``, ``"book_update"`` (with clears) or ``"book_snapshot"``."""
    symbol: Final[str]
    instrument_id: Final[int]
    """The stream's DBN instrument id (stable per exchange for the batcher's life)."""
    size_decimals: Final[int]
    """Sizes in ``body`` are in units of 10**-size_decimals (0: whole units)."""
    body: Final[bytes]
    """The market-data records alone, in bus order."""
    count: Final[int]
    """How many records ``body`` holds."""
    ts_recv: Final[int]
    """``ts_recv`` of the group's first record (the mapping record's timestamp)."""

    def __init__(
        self,
        exchange: str,
        kind: str,
        symbol: str,
        instrument_id: int,
        size_decimals: int,
        body: bytes,
        count: int,
        ts_recv: int,
    ) -> None:
        self.exchange = exchange
        self.kind = kind
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.size_decimals = size_decimals
        self.body = body
        self.count = count
        self.ts_recv = ts_recv

    def prefix(self) -> bytes:
        """The records a receiver needs before ``body``: the symbol mapping of the
        stream's instrument id, and its size-decimals record (always, so a receiver
        that decodes several streams of one instrument never keeps a stale scale)."""
        return encode_symbol_mapping(self.instrument_id, self.symbol, self.ts_recv) + encode_system(
            size_decimals_text(self.instrument_id, self.size_decimals),
            SIZE_DECIMALS_CODE,
            self.ts_recv,
        )

    @property
    def records(self) -> bytes:
        """``prefix() + body``: a payload that a fresh decoder reads on its own."""
        return self.prefix() + self.body

    def __repr__(self) -> str:
        return (
            f"RecordGroup({self.exchange!r}, {self.kind!r}, {self.symbol!r}, "
            f"instrument_id={self.instrument_id}, count={self.count})"
        )


@final
class _Stream:
    """A stream's state: its id, size scale, and the records since the last take."""

    exchange: Final[str]
    kind: Final[str]
    symbol: Final[str]
    instrument_id: Final[int]
    decimals: int
    factor: int
    chunks: list[bytes]
    first_ts: int
    queued: bool

    def __init__(self, exchange: str, kind: str, symbol: str, instrument_id: int) -> None:
        self.exchange = exchange
        self.kind = kind
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.decimals = 0
        self.factor = 1
        self.chunks = []
        self.first_ts = 0
        self.queued = False


@final
class DbnBatcher:
    """Groups market-data ticks by (exchange, kind, symbol) and encodes them as DBN.

    ``add(tick)`` per tick (False for a tick that is not market data: ``Gap``,
    ``ConnectionStateChanged``, which a sink encodes its own way);
    ``take()`` returns the groups filled since the last take, in the order
    their streams first got a record, and starts afresh. A stream whose sizes
    need more decimals than before is cut there: the records before keep their
    scale in a group of their own, in order.
    """

    cut_snapshots: int
    """Snapshots deeper than ten levels a side shipped as their best ten (mbp-10)."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, dict[str, _Stream]]] = {k: {} for k in KINDS}
        self._trades: dict[str, dict[str, _Stream]] = self._tables[KIND_TRADE]
        self._quotes: dict[str, dict[str, _Stream]] = self._tables[KIND_QUOTE]
        self._updates: dict[str, dict[str, _Stream]] = self._tables[KIND_BOOK_UPDATE]
        self._snapshots: dict[str, dict[str, _Stream]] = self._tables[KIND_BOOK_SNAPSHOT]
        self._next_id: dict[str, int] = {}
        self._order: list[_Stream] = []
        self._ready: list[RecordGroup] = []
        self.cut_snapshots = 0

    def _stream(
        self, table: dict[str, dict[str, _Stream]], kind: str, exchange: str, symbol: str
    ) -> _Stream:
        by_symbol = table.get(exchange)
        if by_symbol is None:
            by_symbol = table[exchange] = {}
        s = by_symbol.get(symbol)
        if s is None:
            iid = self._next_id.get(exchange, 0) + 1
            self._next_id[exchange] = iid
            s = by_symbol[symbol] = _Stream(exchange, kind, symbol, iid)
        return s

    def _scale(self, s: _Stream, size: int) -> None:
        """Raise ``s``'s scale to fit ``size``; what it already holds goes out first."""
        need = _decimals(size)
        if need <= s.decimals:
            return
        if s.chunks:
            self._ready.append(self._group(s))
        s.decimals = need
        s.factor = 10**need

    def _queue(self, s: _Stream, record: bytes, ts_recv: int) -> None:
        if not s.chunks:
            s.first_ts = ts_recv
            if not s.queued:
                s.queued = True
                self._order.append(s)
        s.chunks.append(record)

    def _group(self, s: _Stream) -> RecordGroup:
        chunks = s.chunks
        s.chunks = []
        return RecordGroup(
            s.exchange,
            s.kind,
            s.symbol,
            s.instrument_id,
            s.decimals,
            b"".join(chunks),
            len(chunks),
            s.first_ts,
        )

    def add(self, tick: object) -> bool:
        """Batch one tick; False (nothing batched) if it is not market data."""
        if isinstance(tick, Trade):
            t: Trade = tick
            s = self._stream(self._trades, KIND_TRADE, t.exchange, t.symbol)
            if t.size % PRICE_SCALE != 0 or s.factor != 1:
                self._scale(s, t.size)
            rec = encode_trade_raw(
                s.instrument_id,
                t.price,
                t.size * s.factor,
                t.side,
                t.ts_event,
                t.ts_recv,
                t.sequence,
            )
            self._queue(s, rec, t.ts_recv)
            return True
        if isinstance(tick, Quote):
            q: Quote = tick
            s = self._stream(self._quotes, KIND_QUOTE, q.exchange, q.symbol)
            if q.bid_size % PRICE_SCALE != 0 or q.ask_size % PRICE_SCALE != 0 or s.factor != 1:
                self._scale(s, q.bid_size)
                self._scale(s, q.ask_size)
            f = s.factor
            rec = encode_mbp1_raw(
                s.instrument_id,
                q.bid_price,
                q.bid_size * f,
                q.ask_price,
                q.ask_size * f,
                q.ts_event,
                q.ts_recv,
                q.sequence,
            )
            self._queue(s, rec, q.ts_recv)
            return True
        if isinstance(tick, BookUpdate):
            b: BookUpdate = tick
            s = self._stream(self._updates, KIND_BOOK_UPDATE, b.exchange, b.symbol)
            if b.size % PRICE_SCALE != 0 or s.factor != 1:
                self._scale(s, b.size)
            rec = mbo_record_raw(
                s.instrument_id,
                b.price,
                b.size * s.factor,
                b.side,
                b.action,
                b.order_id,
                b.ts_event,
                b.ts_recv,
                b.sequence,
            )
            self._queue(s, rec, b.ts_recv)
            return True
        if isinstance(tick, BookSnapshot):
            snap: BookSnapshot = tick
            s = self._stream(self._snapshots, KIND_BOOK_SNAPSHOT, snap.exchange, snap.symbol)
            if len(snap.bids) > MBP10_DEPTH or len(snap.asks) > MBP10_DEPTH:
                self.cut_snapshots += 1
            bids = snap.bids[:MBP10_DEPTH]
            asks = snap.asks[:MBP10_DEPTH]
            for _, size in bids:
                self._scale(s, size)
            for _, size in asks:
                self._scale(s, size)
            f = s.factor
            if f != 1 or len(bids) != len(snap.bids) or len(asks) != len(snap.asks):
                snap = BookSnapshot(
                    snap.exchange,
                    snap.symbol,
                    tuple([(px, sz * f) for px, sz in bids]),
                    tuple([(px, sz * f) for px, sz in asks]),
                    snap.ts_event,
                    snap.ts_recv,
                    snap.sequence,
                )
            self._queue(s, encode_snapshot(snap, s.instrument_id), snap.ts_recv)
            return True
        if isinstance(tick, BookClear):
            c: BookClear = tick
            s = self._stream(self._updates, KIND_BOOK_UPDATE, c.exchange, c.symbol)
            self._queue(s, encode_book_clear(c, s.instrument_id), c.ts_recv)
            return True
        return False

    def add_all(self, ticks: list[object]) -> list[object]:
        """``add`` each of ``ticks``; returns those that are not market data, in order."""
        other: list[object] = []
        for tick in ticks:
            if not self.add(tick):
                other.append(tick)
        return other

    def take(self) -> list[RecordGroup]:
        """The groups filled since the last take (first record first), emptied."""
        out = self._ready
        self._ready = []
        for s in self._order:
            s.queued = False
            if s.chunks:
                out.append(self._group(s))
        self._order = []
        return out

    def instrument_of(self, exchange: str, kind: str, symbol: str) -> int:
        """The instrument id of a stream (0: not seen yet)."""
        by_symbol = self._tables[kind].get(exchange)
        if by_symbol is None:
            return 0
        s = by_symbol.get(symbol)
        return 0 if s is None else s.instrument_id
