"""35=W / 35=X entries -> sink calls, with a local book per symbol (compiled with mypyc).

``MarketDataDecoder.apply(frame, ts_recv)`` walks the body of one checked
message once. The repeating group is delimited by its NoMDEntries (268) count:
the first tag after 268 opens each entry (279 in 35=X, 269 in 35=W). Entries
are read completely and the count checked before anything is published, so a
malformed message publishes nothing. Prices and sizes go from their decimal
bytes to fixed point in the core's compiled ``parse_fixed_bytes``: never a
float.

What is published (``sink`` is the connection's ``hub_core.plugin.Sink``):

* trade entries (269=2) of 35=X: ``Trade``, aggressor side from AggressorSide
  (2446, or CME's 5797): 1 -> ``B``, 2 -> ``A``, else ``N``;
* bid/offer entries (269=0/1) of 35=X: the symbol's ``OrderBook`` (the core's) is updated and a
  ``BookUpdate`` published (action ``A``/``M``/``C`` for MDUpdateAction
  0/1/2, size 0 when the level goes); then one ``Quote`` per symbol whose top
  of book the message touched;
* 35=W: the symbol's book is replaced, then a ``BookSnapshot`` (best first,
  at most ``depth`` levels a side when ``depth`` > 0) and a ``Quote``. Trade
  entries of a snapshot describe the past and are not published as trades.

``ts_event`` is MDEntryDate (272) + MDEntryTime (273) when the entry has a
time, else the message's SendingTime (52), else ``ts_recv``; ``sequence`` is
the message's MsgSeqNum (34).
"""

from typing import Any, Final, final

from mypy_extensions import i64

from hub_core.plugin import MalformedNumber, OrderBook, parse_fixed_bytes
from hub_plugin_fix.errors import MalformedMessage
from hub_plugin_fix.scanner import (
    Frame,
    _digits,
    data_end,
    find_soh,
    is_raw_length_tag,
    match_at,
    parse_date,
    parse_time,
    read_tag,
)

UNDEF_PRICE: Final = 9_223_372_036_854_775_807
"""A missing side of a ``Quote`` (DBN's undefined price), with size 0."""
MAX_ENTRIES: Final = 100_000
"""NoMDEntries above this is refused (a garbled count must not allocate much)."""

ENTRY_BID: Final = 48  # '0'
ENTRY_OFFER: Final = 49  # '1'
ENTRY_TRADE: Final = 50  # '2'

TAG_NO_MD_ENTRIES: Final = 268
TAG_MD_REQ_ID: Final = 262
TAG_SYMBOL: Final = 55
TAG_ENTRY_TYPE: Final = 269
TAG_ENTRY_PX: Final = 270
TAG_ENTRY_SIZE: Final = 271
TAG_ENTRY_DATE: Final = 272
TAG_ENTRY_TIME: Final = 273
TAG_ENTRY_ID: Final = 278
TAG_UPDATE_ACTION: Final = 279
TAG_AGGRESSOR_SIDE: Final = 2446
TAG_AGGRESSOR_SIDE_CME: Final = 5797

_ACTION_NEW: Final = 48
_ACTION_CHANGE: Final = 49
_ACTION_DELETE: Final = 50
_BID: Final = "B"  # Side.BID
_ASK: Final = "A"  # Side.ASK


def _core_fixed(text: bytes) -> int:
    value: int = parse_fixed_bytes(text)
    return value


def fixed_at(buf: bytes, s: int, e: int) -> int:
    """Decimal ``buf[s:e]`` -> fixed point (1e-9), exactly as ``parse_fixed_bytes``.

    The plain shapes FIX prices and sizes take (``-``, up to 9 integer and 9
    fractional digits) are done in place, without a slice or a call into the core;
    anything else (exponent, ``+``, long digit strings, junk) goes to the core's
    parser, which decides or raises ``MalformedNumber``.
    """
    i = s
    neg = False
    if i < e and buf[i] == 45:  # '-'
        neg = True
        i += 1
    # i64: at most 18 digits fit, and mypyc's tagged ints take a slow path past 2**31
    mant: i64 = 0
    int_digits = 0
    frac_digits = 0
    dot = False
    while i < e:
        c = buf[i]
        if 48 <= c <= 57:
            mant = mant * 10 + (c - 48)
            if dot:
                frac_digits += 1
            else:
                int_digits += 1
        elif c == 46 and not dot:  # '.'
            dot = True
        else:
            return _core_fixed(buf[s:e])
        i += 1
    if int_digits + frac_digits == 0 or int_digits > 9 or frac_digits > 9:
        return _core_fixed(buf[s:e])
    # scale by 10**(9 - frac_digits); a loop, because indexing a constant tuple with a
    # variable makes mypyc box the whole tuple on every call
    while frac_digits < 9:
        mant *= 10
        frac_digits += 1
    return -mant if neg else mant


@final
class _BookState:
    """One symbol's book (the core's ``OrderBook``) and what the decoder tracks beside it.

    The best levels are kept here, not asked of the book: the book lives in the
    core's compilation unit, so every call into it is a Python-level call. That is
    one per entry (``apply``), and one more only when the best level goes."""

    book: OrderBook
    best_bid: int
    best_bid_size: int
    best_ask: int
    best_ask_size: int
    has_bid: bool
    has_ask: bool
    touched: bool
    """The top of book may have changed since the last quote."""
    entry_ids: dict[bytes, tuple[bool, int]]
    """MDEntryID (278) -> (is_bid, price), for venues that delete by id."""

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.best_bid = 0
        self.best_bid_size = 0
        self.best_ask = 0
        self.best_ask_size = 0
        self.has_bid = False
        self.has_ask = False
        self.touched = False
        self.entry_ids = {}

    def clear(self) -> None:
        self.book.clear()
        self.entry_ids.clear()
        self.has_bid = False
        self.has_ask = False
        self.touched = True

    def set_level(self, is_bid: bool, price: int, size: int) -> None:
        """Set the size at ``price`` (0 removes the level); track the best level."""
        self.track(is_bid, price, size, self.book.apply(_BID if is_bid else _ASK, price, size))

    def track(self, is_bid: bool, price: int, size: int, action: str) -> None:
        """Follow the best level after the book took ``price``/``size`` (``action``:
        what ``OrderBook.apply`` said)."""
        has = self.has_bid if is_bid else self.has_ask
        best = self.best_bid if is_bid else self.best_ask
        if size > 0:
            if not has or (price >= best if is_bid else price <= best):
                self._set_best(is_bid, price, size, True)
                self.touched = True
        elif action != "" and has and price == best:
            self.touched = True  # the best level went: the next one is the book's
            top = self.book.best_bid() if is_bid else self.book.best_ask()
            if top is None:
                self._set_best(is_bid, 0, 0, False)
            else:
                self._set_best(is_bid, top[0], top[1], True)

    def _set_best(self, is_bid: bool, price: int, size: int, has: bool) -> None:
        if is_bid:
            self.best_bid = price
            self.best_bid_size = size
            self.has_bid = has
        else:
            self.best_ask = price
            self.best_ask_size = size
            self.has_ask = has

    def top(self) -> tuple[int, int, int, int]:
        """(bid price, bid size, ask price, ask size); an empty side is
        ``(UNDEF_PRICE, 0)``."""
        bp, bs = (self.best_bid, self.best_bid_size) if self.has_bid else (UNDEF_PRICE, 0)
        ap, az = (self.best_ask, self.best_ask_size) if self.has_ask else (UNDEF_PRICE, 0)
        return bp, bs, ap, az


_NO_BOOK: Final = _BookState(OrderBook())
"""Placeholder before the first book of a message is looked up (never written)."""


@final
class _Entry:
    """One group entry while its message is being checked."""

    action: int
    entry_type: int
    symbol: str
    price: int
    has_price: bool
    size: int
    side: str
    ts: int
    date: int
    entry_id: bytes

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.action = _ACTION_NEW
        self.entry_type = -1
        self.symbol = ""
        self.price = 0
        self.has_price = False
        self.size = 0
        self.side = "N"
        self.ts = -1
        self.date = -1
        self.entry_id = b""


@final
class MarketDataDecoder:
    """Decodes 35=W/X into calls on ``sink`` and keeps the local books."""

    sink: Any
    """The connection's sink (``hub_core.plugin.Sink``; any object with its
    ``trade``/``quote``/``book_update``/``book_snapshot`` methods)."""
    depth: int
    want_bids: bool
    want_offers: bool
    want_trades: bool
    books: dict[str, OrderBook]
    """Each symbol's book, the core's ``OrderBook`` (read it, never change it)."""
    req_symbols: dict[bytes, str]
    """MDReqID (262) -> symbol, for entries that carry no Symbol (55)."""
    ignored: set[str]
    """Unsubscribed symbols: entries still in flight for them are dropped."""
    pending: set[str]
    """Subscribed symbols not heard of yet; each leaves the set with its first entry
    (FIX has no positive acknowledgement of a MarketDataRequest: data is the answer)."""
    messages: int

    def __init__(
        self,
        sink: Any,
        depth: int = 0,
        want_bids: bool = True,
        want_offers: bool = True,
        want_trades: bool = True,
    ) -> None:
        self.sink = sink
        self.depth = depth
        self.want_bids = want_bids
        self.want_offers = want_offers
        self.want_trades = want_trades
        self.books = {}
        self._states: dict[str, _BookState] = {}
        self.req_symbols = {}
        self.ignored = set()
        self.pending = set()
        self.messages = 0
        self._symbols: dict[bytes, str] = {}
        self._last_key = b""
        self._last_symbol = ""
        self._book_level: Any = getattr(sink, "book_level", None)
        """``sink.book_level`` (apply and publish in one call); None on an older hub-core."""
        self._pool: list[_Entry] = []
        """Entry objects reused message after message (no allocation per entry)."""

    def book(self, symbol: str) -> OrderBook:
        """The local book of ``symbol`` (created empty on first use)."""
        return self._state(symbol).book

    def _state(self, symbol: str) -> _BookState:
        st = self._states.get(symbol)
        if st is None:
            book = OrderBook(str(getattr(self.sink, "exchange", "")), symbol)
            st = _BookState(book)
            self._states[symbol] = st
            self.books[symbol] = book
        return st

    def reset(self) -> None:
        """Forget every book (a new session: the venue sends fresh snapshots)."""
        self.books.clear()
        self._states.clear()

    def _symbol(self, buf: bytes, s: int, e: int) -> str:
        last = self._last_key
        if e - s == len(last) and match_at(buf, s, last):
            return self._last_symbol  # entries of one message mostly share a symbol
        key = buf[s:e]
        sym = self._symbols.get(key)
        if sym is None:
            sym = key.decode("latin-1")
            if len(self._symbols) < 10_000:  # bounded: a hostile feed cannot grow it
                self._symbols[key] = sym
        self._last_key = key
        self._last_symbol = sym
        return sym

    def apply(self, f: Frame, ts_recv: int) -> None:
        """Publish what one 35=W or 35=X message says. Raises ``MalformedMessage``
        (having published nothing) when the message cannot be used."""
        buf = f.buf
        end = f.end
        p = f.body
        snapshot = f.msg_type == "W"
        msg_symbol = ""
        req_id = b""
        count = -1
        delim = -1
        msg_date = -1
        pool = self._pool
        n = 0
        cur = _Entry()
        raw_len = -1
        try:
            while p < end:
                tag, vs = read_tag(buf, p, end)
                if raw_len < 0:
                    ve = find_soh(buf, vs, end)
                else:  # the data field after a length field may hold SOH
                    ve = data_end(buf, vs, end, raw_len)
                    raw_len = -1
                if count < 0:
                    if tag == TAG_NO_MD_ENTRIES:
                        count = _digits(buf, vs, ve)
                        if count < 0 or count > MAX_ENTRIES:
                            raise MalformedMessage(
                                f"NoMDEntries (268) {buf[vs:ve]!r} is not a count "
                                f"of at most {MAX_ENTRIES}"
                            )
                    elif tag == TAG_SYMBOL:
                        msg_symbol = self._symbol(buf, vs, ve)
                    elif tag == TAG_MD_REQ_ID:
                        req_id = buf[vs:ve]
                    elif tag == TAG_ENTRY_DATE:
                        msg_date = parse_date(buf, vs) if ve - vs == 8 else -1
                    elif is_raw_length_tag(tag):
                        raw_len = _digits(buf, vs, ve)
                else:
                    if delim < 0:
                        delim = tag
                    if tag == delim:
                        if n >= count:
                            raise MalformedMessage(
                                f"35={f.msg_type} seq {f.seq}: more entries than "
                                f"NoMDEntries (268) = {count}"
                            )
                        if n < len(pool):
                            cur = pool[n]
                            cur.reset()
                        else:
                            cur = _Entry()
                            pool.append(cur)
                        n += 1
                    if tag == TAG_ENTRY_TYPE:
                        cur.entry_type = buf[vs] if ve - vs == 1 else -1
                    elif tag == TAG_ENTRY_PX:
                        cur.price = fixed_at(buf, vs, ve)
                        cur.has_price = True
                    elif tag == TAG_ENTRY_SIZE:
                        cur.size = fixed_at(buf, vs, ve)
                    elif tag == TAG_UPDATE_ACTION:
                        cur.action = buf[vs] if ve - vs == 1 else -1
                    elif tag == TAG_SYMBOL:
                        cur.symbol = self._symbol(buf, vs, ve)
                    elif tag == TAG_ENTRY_TIME:
                        cur.ts = parse_time(buf, vs, ve)
                    elif tag == TAG_ENTRY_DATE:
                        cur.date = parse_date(buf, vs) if ve - vs == 8 else -1
                    elif tag == TAG_ENTRY_ID:
                        cur.entry_id = buf[vs:ve]
                    elif tag in (TAG_AGGRESSOR_SIDE, TAG_AGGRESSOR_SIDE_CME):
                        c = buf[vs] if ve - vs == 1 else 0
                        cur.side = "B" if c == 49 else ("A" if c == 50 else "N")
                    elif is_raw_length_tag(tag):
                        raw_len = _digits(buf, vs, ve)
                p = ve + 1
        except MalformedNumber as exc:
            raise MalformedMessage(f"35={f.msg_type} seq {f.seq}: {exc}") from None
        if count < 0:
            raise MalformedMessage(f"35={f.msg_type} seq {f.seq} has no NoMDEntries (268)")
        if n != count:
            raise MalformedMessage(
                f"35={f.msg_type} seq {f.seq}: NoMDEntries (268) says {count} "
                f"but {n} entries follow"
            )
        default_symbol = msg_symbol
        if not default_symbol and req_id:
            default_symbol = self.req_symbols.get(req_id, "")
        pending = self.pending
        if pending and default_symbol in pending:
            pending.discard(default_symbol)  # a snapshot may have no entries at all
        for k in range(n):
            e = pool[k]
            if not e.symbol:
                e.symbol = default_symbol
            if pending and e.symbol in pending:
                pending.discard(e.symbol)
            t = e.entry_type
            if t < 0:
                raise MalformedMessage(f"35={f.msg_type} seq {f.seq}: an entry has no MDEntryType")
            if not snapshot and e.action < 0:
                raise MalformedMessage(f"35=X seq {f.seq}: bad MDUpdateAction (279)")
            if not e.has_price and (
                t == ENTRY_TRADE or (snapshot and t in (ENTRY_BID, ENTRY_OFFER))
            ):
                raise MalformedMessage(
                    f"35={f.msg_type} seq {f.seq}: a {chr(t)} entry has no MDEntryPx (270)"
                )
        self.messages += 1
        ts_msg = f.sending_time if f.sending_time > 0 else ts_recv
        if snapshot:
            self._snapshot(n, ts_msg, msg_date, ts_recv, f.seq)
        else:
            self._incremental(n, ts_msg, msg_date, ts_recv, f.seq)

    def _entry_ts(self, e: _Entry, ts_msg: int, msg_date: int) -> int:
        if e.ts < 0:
            return ts_msg
        date = e.date if e.date >= 0 else msg_date
        if date < 0:
            # the date of SendingTime (or of ts_recv): entries carry time of day only
            date = ts_msg - ts_msg % 86_400_000_000_000
        return date + e.ts

    def _incremental(self, n: int, ts_msg: int, msg_date: int, ts_recv: int, seq: int) -> None:
        sink = self.sink
        ignored = self.ignored
        pool = self._pool
        touched: list[tuple[str, _BookState]] = []
        book_level = self._book_level
        book_sym = ""
        book = _NO_BOOK
        for k in range(n):
            e = pool[k]
            sym = e.symbol
            if not sym or sym in ignored:
                continue
            t = e.entry_type
            if t == ENTRY_TRADE:
                if self.want_trades:
                    sink.trade(
                        sym,
                        e.price,
                        e.size,
                        e.side,
                        self._entry_ts(e, ts_msg, msg_date),
                        ts_recv,
                        seq,
                    )
                continue
            if t == ENTRY_BID:
                if not self.want_bids:
                    continue
                is_bid = True
            elif t == ENTRY_OFFER:
                if not self.want_offers:
                    continue
                is_bid = False
            else:
                continue  # other entry types (opening, settlement, volume...) are not ticks
            if sym is not book_sym:  # entries of one message mostly share a symbol
                book = self._state(sym)
                book_sym = sym
            price = e.price
            action = e.action
            if e.entry_id:
                if action == _ACTION_NEW:
                    if len(book.entry_ids) < MAX_ENTRIES:
                        book.entry_ids[e.entry_id] = (is_bid, price)
                else:
                    known = book.entry_ids.get(e.entry_id)
                    if known is not None and not e.has_price:
                        price = known[1]
                        e.has_price = True
                    if action == _ACTION_DELETE:
                        book.entry_ids.pop(e.entry_id, None)
            if not e.has_price:
                continue  # a delete by an id we never saw: nothing to remove
            if action == _ACTION_DELETE:
                size = 0
                letter = "C"
            else:
                size = e.size
                letter = "A" if action == _ACTION_NEW else "M"
                if size <= 0:
                    size = 0
                    letter = "C"
            was = book.touched
            side = _BID if is_bid else _ASK
            ts = self._entry_ts(e, ts_msg, msg_date)
            got: str
            if book_level is not None:
                # the book and the tick in one call into the core (each is Python-level)
                got = book_level(sym, book.book, side, price, size, ts, ts_recv, letter, seq)
            else:  # a sink of an older hub-core
                got = book.book.apply(side, price, size)
                sink.book_update(sym, side, price, size, ts, ts_recv, letter, seq)
            book.track(is_bid, price, size, got)
            if book.touched and not was:
                touched.append((sym, book))
        for sym, book in touched:
            book.touched = False
            bp, bs, ap, az = book.top()
            sink.quote(sym, bp, bs, ap, az, ts_msg, ts_recv, seq)

    def _snapshot(self, n: int, ts_msg: int, msg_date: int, ts_recv: int, seq: int) -> None:
        sink = self.sink
        ignored = self.ignored
        pool = self._pool
        books: list[tuple[str, _BookState]] = []
        ts = ts_msg
        for k in range(n):
            e = pool[k]
            sym = e.symbol
            if not sym or sym in ignored:
                continue
            book = self._states.get(sym)
            if book is None or not any(s == sym for s, _ in books):
                # a snapshot is the whole state: whatever the book held is gone
                book = self._state(sym)
                book.clear()
                books.append((sym, book))
            t = e.entry_type
            if t == ENTRY_BID:
                if not self.want_bids:
                    continue
            elif t == ENTRY_OFFER:
                if not self.want_offers:
                    continue
            else:
                continue  # trades and statistics of a snapshot are not events
            book.set_level(t == ENTRY_BID, e.price, e.size)
            if e.entry_id and len(book.entry_ids) < MAX_ENTRIES:
                book.entry_ids[e.entry_id] = (t == ENTRY_BID, e.price)
            if e.ts >= 0:
                ts = self._entry_ts(e, ts_msg, msg_date)
        depth = self.depth
        for sym, book in books:
            book.touched = False
            bids, asks = book.book.levels(depth)
            sink.book_snapshot(sym, bids, asks, ts, ts_recv, seq)
            bp, bs, ap, az = book.top()
            sink.quote(sym, bp, bs, ap, az, ts, ts_recv, seq)
