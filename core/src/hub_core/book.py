"""Order books as objects, compiled with mypyc.

``OrderBook`` is a price-level book (L2): one size per price and side, in the
ticks' fixed-point ints (``PRICE_SCALE``). Each side keeps its prices in a
sorted list whose *last* element is the best (bids ascending; asks as negated
prices, ascending) and the sizes in a parallel list, so a change is one
bisection (the best slot tried first), a new or removed level near the top of
the book moves only the few slots above it, and ``top(n)`` walks the lists
from the end. There is no dict: see ``_Side``.

``MboBook`` is an order-by-order book (L3, Databento's ``mbo``): orders by id,
aggregated into an ``OrderBook`` of levels plus an order count per level.

``BookKeeper`` is the hub's own bus subscriber behind ``ExchangeHub.book()``:
it applies one exchange/symbol's ``BookSnapshot``/``BookUpdate``/``BookClear``/``Gap``
to a read-only ``OrderBook`` and checks its integrity at message boundaries.
"""

import logging
from typing import Final, final
from zlib import crc32 as _crc32

from mypy_extensions import i64

from hub_core.errors import HubError
from hub_core.fixed import format_fixed
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Gap

log = logging.getLogger("hub_core.book")

Levels = tuple[tuple[int, int], ...]
"""One side's levels, best first, as ``(price, size)`` pairs (``BookSnapshot.bids``)."""

_BID: Final = "B"
_ASK: Final = "A"
_LOG_FIRST: Final = 5
_LOG_EVERY: Final = 1000


def _find(keys: list[int], k: int) -> i64:
    """The index of ``k`` in ``keys`` (ascending), or ``-1 - i`` when it is not there and
    ``i`` is where it would go. The last slot (the best level, where most updates
    land) is tried first; each probe reads and unboxes one slot, so equality ends
    the search instead of costing another read."""
    n: i64 = len(keys)
    if n == 0:
        return -1
    last: int = keys[n - 1]
    if k >= last:
        return n - 1 if k == last else -1 - n
    lo: i64 = 0
    hi: i64 = n - 1  # keys[hi] > k throughout
    while lo < hi:
        mid = (lo + hi) >> 1
        v: int = keys[mid]
        if v < k:
            lo = mid + 1
        elif v > k:
            hi = mid
        else:
            return mid
    return -1 - lo


@final
class _Side:
    """One side of a book: the levels as two parallel lists sorted best-last.

    No dict: fixed-point prices are multiples of the tick (10**7 for a 0.01 tick),
    so their low hash bits are all zero and a dict keyed by them probes long chains
    (measured: a lookup cost more than the bisection that replaces it)."""

    keys: list[int]
    """The prices ascending, negated on the ask side: the best is the last slot.

    Negated, never multiplied by a sign: mypyc multiplies ints of 2**31 and more
    (every fixed-point price) through Python's long arithmetic, negation stays native."""
    sizes: list[int]
    """The size of the level at the same index of ``keys``."""
    bid: Final[bool]
    negative: int
    """How many levels hold a negative size (an integrity failure ``check`` reports)."""

    def __init__(self, bid: bool) -> None:
        self.keys = []
        self.sizes = []
        self.bid = bid
        self.negative = 0

    def set(self, price: int, size: int) -> str:
        """Set one level (0 removes it); the DBN action, or "" when nothing changed."""
        k = price if self.bid else -price
        keys = self.keys
        i = _find(keys, k)
        if i >= 0:
            sizes = self.sizes
            old: int = sizes[i]
            if old == size:
                return ""
            if self.negative and old < 0:
                self.negative -= 1
            if size == 0:
                keys.pop(i)
                sizes.pop(i)
                return "C"
            sizes[i] = size
            if size < 0:
                self.negative += 1
            return "M"
        if size == 0:
            return ""
        i = -1 - i
        if i == len(keys):
            keys.append(k)  # a new best level: the commonest insertion
            self.sizes.append(size)
        else:
            keys.insert(i, k)
            self.sizes.insert(i, size)
        if size < 0:
            self.negative += 1
        return "A"

    def get(self, price: int) -> int:
        """The size at ``price``; 0 when there is no such level."""
        k = price if self.bid else -price
        i = _find(self.keys, k)
        return self.sizes[i] if i >= 0 else 0

    def clear(self) -> None:
        self.keys.clear()
        self.sizes.clear()
        self.negative = 0

    def load(self, levels: Levels) -> None:
        """Replace the side with ``levels`` (any order; size 0 left out; last one wins)."""
        last: dict[int, int] = {}
        for price, size in levels:
            last[price] = size
        bid = self.bid
        pairs = [(p if bid else -p, s) for p, s in last.items() if s != 0]
        pairs.sort()
        self.keys = [k for k, _ in pairs]
        self.sizes = [s for _, s in pairs]
        neg = 0
        for _, s in pairs:
            if s < 0:
                neg += 1
        self.negative = neg

    def as_dict(self) -> dict[int, int]:
        """``{price: size}`` of every level (for inspection, not a hot path)."""
        bid = self.bid
        return {k if bid else -k: s for k, s in zip(self.keys, self.sizes, strict=True)}

    def best_price(self) -> int:
        """The best price; the side must not be empty."""
        k = self.keys[len(self.keys) - 1]
        return k if self.bid else -k

    def best(self) -> tuple[int, int] | None:
        keys = self.keys
        n = len(keys)
        if n == 0:
            return None
        k = keys[n - 1]
        return (k if self.bid else -k, self.sizes[n - 1])

    def top(self, n: int) -> Levels:
        keys = self.keys
        sizes = self.sizes
        bid = self.bid
        m: i64 = len(keys)
        want: i64 = n if n < m else m  # one i64 branch: a conditional on mixed types boxes
        stop: i64 = m - want if want > 0 else m
        out: list[tuple[int, int]] = []
        i: i64 = m - 1
        while i >= stop:
            k = keys[i]
            out.append((k if bid else -k, sizes[i]))
            i -= 1
        return tuple(out)

    def trim(self, depth: int) -> list[int]:
        """Drop the worst levels beyond ``depth``; their prices, worst first."""
        keys = self.keys
        extra = len(keys) - depth
        if extra <= 0:
            return []
        bid = self.bid
        sizes = self.sizes
        gone: list[int] = []
        for j in range(extra):
            if sizes[j] < 0:
                self.negative -= 1
            k = keys[j]
            gone.append(k if bid else -k)
        del keys[:extra]
        del sizes[:extra]
        return gone

    def first_negative(self) -> tuple[int, int]:
        """(price, size) of a level with a negative size, best first; (0, 0) when none."""
        keys = self.keys
        sizes = self.sizes
        i = len(keys) - 1
        while i >= 0:
            s = sizes[i]
            if s < 0:
                k = keys[i]
                return (k if self.bid else -k, s)
            i -= 1
        return (0, 0)


@final
class OrderBook:
    """A price-level book of one symbol: bids and asks, fixed-point ints.

    ``apply(side, price, size)`` sets a level (``size`` 0 removes it), with
    ``side`` ``Side.BID`` (``"B"``) or ``Side.ASK`` (``"A"``). Reads:
    ``best_bid()``/``best_ask()`` (``(price, size)`` or ``None``), ``top(n)``,
    ``snapshot()`` (``(bids, asks)``, best first, as ``BookSnapshot`` holds
    them), ``size_at(side, price)``, ``len(book)`` (levels on both sides).
    ``check()`` says whether the book is consistent (not crossed, not locked,
    no negative size).

    A book handed out by ``ExchangeHub.book()`` is read-only (``read_only``):
    the hub's own subscriber applies the feed to it, and its ``valid``,
    ``stale`` and ``reason`` say whether to trust it. Its mutators raise
    ``HubError``.
    """

    exchange: Final[str]
    symbol: Final[str]

    def __init__(self, exchange: str = "", symbol: str = "") -> None:
        self.exchange = exchange
        self.symbol = symbol
        self._bids = _Side(True)
        self._asks = _Side(False)
        self._last_update_ns = 0
        self._last_sequence = 0
        self._read_only = False
        self._valid = True
        self._stale = False
        self._reason = ""
        self._invalidations = 0
        self._unverified = False
        """Changed since the owner last checked it (a message may be half applied)."""

    # -- status -------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        """True for the hub's books (``ExchangeHub.book()``): only the hub changes them."""
        return self._read_only

    @property
    def last_update_ns(self) -> int:
        """``ts_event`` (ns) of the last change applied with a time; 0 = none yet."""
        return self._last_update_ns

    @property
    def last_sequence(self) -> int:
        """The venue sequence number of the last change applied with one; 0 = none."""
        return self._last_sequence

    @property
    def valid(self) -> bool:
        """False once an integrity check failed (see ``reason``), until the next
        snapshot or clear. ``True`` only when the book is consistent now."""
        if not self._valid:
            return False
        if self._unverified:
            return self.check() is None
        return True

    @property
    def stale(self) -> bool:
        """True when updates may be missing (a ``Gap``, or no snapshot seen yet):
        the book is not to be trusted until the next snapshot or clear."""
        return self._stale

    @property
    def reason(self) -> str:
        """Why the book is not valid or is stale; "" when it is fine."""
        if self._valid and self._unverified:
            found = self.check()
            if found is not None:
                return found
        return self._reason

    @property
    def invalidations(self) -> int:
        """How many times the book was marked invalid (counted, and logged)."""
        return self._invalidations

    def _writable(self) -> None:
        if self._read_only:
            raise HubError(
                f"the book of {self.exchange}/{self.symbol} belongs to the hub",
                exchange=self.exchange,
                hint="it is read-only: keep an OrderBook() of your own to apply updates to",
            )

    # -- changes ------------------------------------------------------------------
    def apply(self, side: str, price: int, size: int, ts_event: int = 0, sequence: int = 0) -> str:
        """Set the size at ``price`` on ``side`` (0 removes the level).

        Returns the DBN action: ``"A"`` a new level, ``"M"`` a changed one,
        ``"C"`` a removed one, ``""`` when nothing changed. ``ts_event`` and
        ``sequence``, when non-zero, become ``last_update_ns``/``last_sequence``.
        A negative size is stored as sent (``check()`` reports it).
        """
        if self._read_only:
            self._writable()
        return self._set(side, price, size, ts_event, sequence)

    def _set(self, side: str, price: int, size: int, ts_event: int, sequence: int) -> str:
        if side == _BID:
            action = self._bids.set(price, size)
        elif side == _ASK:
            action = self._asks.set(price, size)
        else:
            raise ValueError(f"book side must be 'B' (bid) or 'A' (ask), got {side!r}")
        if ts_event:
            self._last_update_ns = ts_event
        if sequence:
            self._last_sequence = sequence
        return action

    def replace(self, bids: Levels, asks: Levels, ts_event: int = 0, sequence: int = 0) -> None:
        """Replace the whole book (a snapshot): ``bids``/``asks`` as ``(price, size)``
        pairs in any order; size 0 is left out. Marks the book valid and fresh."""
        self._writable()
        self._replace(bids, asks, ts_event, sequence)

    def _replace(self, bids: Levels, asks: Levels, ts_event: int, sequence: int) -> None:
        self._bids.load(bids)
        self._asks.load(asks)
        self._fresh(ts_event, sequence)

    def clear(self, ts_event: int = 0, sequence: int = 0) -> None:
        """Forget every level: the book starts anew (valid, not stale)."""
        self._writable()
        self._clear(ts_event, sequence)

    def _clear(self, ts_event: int, sequence: int) -> None:
        self._bids.clear()
        self._asks.clear()
        self._fresh(ts_event, sequence)

    def _fresh(self, ts_event: int, sequence: int) -> None:
        self._last_update_ns = ts_event
        self._last_sequence = sequence
        self._valid = True
        self._stale = False
        self._reason = ""
        self._unverified = False

    def trim(self, side: str, depth: int) -> list[int]:
        """Drop the levels of ``side`` beyond the best ``depth``; returns their prices,
        worst first (a venue that keeps a fixed depth sends no removal for them)."""
        self._writable()
        if side == _BID:
            return self._bids.trim(depth)
        if side == _ASK:
            return self._asks.trim(depth)
        raise ValueError(f"book side must be 'B' (bid) or 'A' (ask), got {side!r}")

    def stamp(self, ts_event: int, sequence: int) -> None:
        """Set ``last_update_ns`` and ``last_sequence`` without changing a level."""
        self._writable()
        self._last_update_ns = ts_event
        self._last_sequence = sequence

    def mark_invalid(self, reason: str) -> None:
        """Distrust the book until the next snapshot or clear (e.g. a failed checksum)."""
        self._writable()
        self._invalidate(reason)

    def _invalidate(self, reason: str) -> None:
        self._unverified = False
        if not self._valid:
            return
        self._valid = False
        self._reason = reason
        self._invalidations += 1
        n = self._invalidations
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning(
                "[%s] book of %s is invalid (%d so far): %s; waiting for a snapshot",
                self.exchange,
                self.symbol,
                n,
                reason,
            )

    def mark_stale(self, reason: str) -> None:
        """Updates may be missing: stale until the next snapshot or clear."""
        self._writable()
        self._mark_stale(reason)

    def _mark_stale(self, reason: str) -> None:
        self._stale = True
        if self._valid:
            self._reason = reason

    # -- reads --------------------------------------------------------------------
    def best_bid(self) -> tuple[int, int] | None:
        """``(price, size)`` of the highest bid, or ``None`` when there is none."""
        return self._bids.best()

    def best_ask(self) -> tuple[int, int] | None:
        """``(price, size)`` of the lowest ask, or ``None`` when there is none."""
        return self._asks.best()

    def top(self, n: int) -> tuple[Levels, Levels]:
        """``(bids, asks)``: at most ``n`` levels a side, best first."""
        return self._bids.top(n), self._asks.top(n)

    def snapshot(self) -> tuple[Levels, Levels]:
        """``(bids, asks)``: every level, best first (``BookSnapshot``'s layout)."""
        return self._bids.top(len(self._bids.keys)), self._asks.top(len(self._asks.keys))

    def levels(self, depth: int = 0) -> tuple[Levels, Levels]:
        """``top(depth)``, or ``snapshot()`` when ``depth`` is 0."""
        return self.top(depth) if depth > 0 else self.snapshot()

    def size_at(self, side: str, price: int) -> int:
        """The size at ``price`` on ``side``; 0 when there is no such level."""
        if side == _BID:
            return self._bids.get(price)
        if side == _ASK:
            return self._asks.get(price)
        raise ValueError(f"book side must be 'B' (bid) or 'A' (ask), got {side!r}")

    def count(self, side: str) -> int:
        """How many levels ``side`` has."""
        if side == _BID:
            return len(self._bids.keys)
        if side == _ASK:
            return len(self._asks.keys)
        raise ValueError(f"book side must be 'B' (bid) or 'A' (ask), got {side!r}")

    @property
    def bids(self) -> dict[int, int]:
        """A copy of the bids as ``{price: size}`` (for inspection, not a hot path)."""
        return self._bids.as_dict()

    @property
    def asks(self) -> dict[int, int]:
        """A copy of the asks as ``{price: size}`` (for inspection, not a hot path)."""
        return self._asks.as_dict()

    def check(self) -> str | None:
        """``None`` when the book is consistent, else why not: a crossed book (best
        bid above best ask), a locked one (equal), or a negative size."""
        for side, name in ((self._bids, "bid"), (self._asks, "ask")):
            if side.negative:
                p, s = side.first_negative()
                return f"negative size {format_fixed(s)} at {name} {format_fixed(p)}"
        if self._bids.keys and self._asks.keys:
            bid = self._bids.best_price()
            ask = self._asks.best_price()
            if bid > ask:
                return (
                    f"crossed book: best bid {format_fixed(bid)} above best ask {format_fixed(ask)}"
                )
            if bid == ask:
                return f"locked book: best bid = best ask = {format_fixed(bid)}"
        return None

    def __len__(self) -> int:
        return len(self._bids.keys) + len(self._asks.keys)

    def __repr__(self) -> str:
        bid = self._bids.best()
        ask = self._asks.best()
        return (
            f"OrderBook({self.exchange!r}, {self.symbol!r}, bids={len(self._bids.keys)}, "
            f"asks={len(self._asks.keys)}, best_bid={bid!r}, best_ask={ask!r}, "
            f"valid={self.valid}, stale={self._stale})"
        )


@final
class LevelTokens:
    """Each level's checksum token beside an ``OrderBook``, for a venue whose book
    checksum is the CRC32 of its own digits (Kraken v2's ``checksum``): per level the
    price's text then the size's, with the ``.`` removed and leading zeros stripped; the
    top ``n`` asks best first, then the top ``n`` bids best first.

    Keep it beside the book: ``set`` each level the book is given (``clear`` with it) and
    ``drop`` the levels trimmed from it. Text in exponent form (which a JSON encoder may
    write for tiny numbers) is rewritten at the most decimals the plain numbers showed
    so far. Sorted lists like the book's own sides, not dicts (see ``_Side``)."""

    _bid_keys: list[int]
    _bid_toks: list[bytes]
    _ask_keys: list[int]
    """Ask prices negated, ascending: the best is the last slot (as in ``_Side``)."""
    _ask_toks: list[bytes]
    price_dec: int
    """The most decimals a plain price showed (for text in exponent form)."""
    size_dec: int
    """The most decimals a plain size showed."""
    _top: int
    """The ``n`` of the last ``crc32``: what the cached parts below cover."""
    _ask_crc: int
    """CRC32 of the top ``_top`` ask tokens; -1 once an ask changed since."""
    _bid_blob: bytes | None
    """The top ``_top`` bid tokens joined; ``None`` once a bid changed since."""

    def __init__(self) -> None:
        self._bid_keys = []
        self._bid_toks = []
        self._ask_keys = []
        self._ask_toks = []
        self.price_dec = 0
        self.size_dec = 0
        self._top = 0
        self._ask_crc = -1
        self._bid_blob = None

    def _changed(self, bid: bool) -> None:
        if bid:
            self._bid_blob = None
        else:
            self._ask_crc = -1

    def clear(self) -> None:
        """No level (a snapshot replaces the book whole); the decimals seen are kept."""
        self._bid_keys.clear()
        self._bid_toks.clear()
        self._ask_keys.clear()
        self._ask_toks.clear()
        self._ask_crc = -1
        self._bid_blob = None

    def __len__(self) -> int:
        return len(self._bid_keys) + len(self._ask_keys)

    def token(self, side: str, price: int) -> bytes:
        """The token of the level ``price`` of ``side``; ``b""`` when there is none."""
        bid = side == _BID
        keys = self._bid_keys if bid else self._ask_keys
        i = _find(keys, price if bid else -price)
        if i < 0:
            return b""
        return self._bid_toks[i] if bid else self._ask_toks[i]

    def set(self, side: str, price: int, size: int, price_text: bytes, size_text: bytes) -> None:
        """The level ``price`` of ``side`` now holds ``size``, written ``price_text`` /
        ``size_text`` by the venue (size 0: the level is gone)."""
        bid = side == _BID
        keys = self._bid_keys if bid else self._ask_keys
        toks = self._bid_toks if bid else self._ask_toks
        k = price if bid else -price
        i = _find(keys, k)
        # any change may move a level into the checksummed top: the side's cache goes
        self._changed(bid)
        if not size:
            if i >= 0:
                keys.pop(i)
                toks.pop(i)
            return
        ptok, pd = _digits_token(price_text, price, self.price_dec)
        self.price_dec = max(self.price_dec, pd)  # exponent form shows 0
        stok, sd = _digits_token(size_text, size, self.size_dec)
        self.size_dec = max(self.size_dec, sd)
        tok = ptok + stok
        if i >= 0:
            toks[i] = tok
            return
        i = -1 - i
        if i == len(keys):
            keys.append(k)
            toks.append(tok)
        else:
            keys.insert(i, k)
            toks.insert(i, tok)

    def drop(self, side: str, price: int) -> None:
        """The level ``price`` of ``side`` left the book (trimmed to the depth)."""
        bid = side == _BID
        keys = self._bid_keys if bid else self._ask_keys
        i = _find(keys, price if bid else -price)
        if i >= 0:
            keys.pop(i)
            (self._bid_toks if bid else self._ask_toks).pop(i)
            self._changed(bid)

    def crc32(self, n: int) -> int:
        """The CRC32 (unsigned) of the tokens of the top ``n`` asks, best first, then of
        the top ``n`` bids, best first. A side that did not change since the last call
        is not joined again."""
        if n != self._top:
            self._top = n
            self._ask_crc = -1
            self._bid_blob = None
        ask_crc = self._ask_crc
        if ask_crc < 0:
            toks = self._ask_toks
            m = len(toks)
            asks = toks[m - n :] if m > n else toks[:]
            asks.reverse()  # best last in the list, first in the checksum
            ask_crc = _crc32(b"".join(asks))
            self._ask_crc = ask_crc
        blob = self._bid_blob
        if blob is None:
            toks = self._bid_toks
            m = len(toks)
            bids = toks[m - n :] if m > n else toks[:]
            bids.reverse()
            blob = b"".join(bids)
            self._bid_blob = blob
        return _crc32(blob, ask_crc)


def _digits_token(text: bytes, value: int, decimals: int) -> tuple[bytes, int]:
    """The venue's digits without ``.`` or leading zeros, and how many decimals plain
    ``text`` shows (exponent form: 0, and the digits are rewritten at ``decimals``
    places, the most a plain text showed)."""
    n: i64 = len(text)
    i: i64 = 0
    dot: i64 = -1
    while i < n:
        c: i64 = text[i]
        if c == 101 or c == 69:  # e E
            whole, frac = divmod(abs(value), 1_000_000_000)
            digits = f"{frac:09d}"[:decimals] if decimals else ""
            return f"{whole}{digits}".encode().lstrip(b"0"), 0
        if c == 46:
            dot = i
        i += 1
    shown = 0 if dot < 0 else n - dot - 1
    if dot >= 0:
        text = text.replace(b".", b"")
    if text and text[0] == 48:  # '0'
        text = text.lstrip(b"0")
    return text, shown


@final
class _Order:
    """One resting order of an ``MboBook``."""

    side: str
    price: int
    size: int

    def __init__(self, side: str, price: int, size: int) -> None:
        self.side = side
        self.price = price
        self.size = size


@final
class MboBook:
    """An order-by-order (L3) book: resting orders by id, aggregated into levels.

    ``add``, ``modify``, ``cancel``, ``fill`` and ``clear`` change orders;
    ``apply(action, ...)`` takes Databento's MBO actions: ``A`` add, ``M``
    modify, ``C`` cancel (``size`` is the quantity cancelled), ``R`` clear;
    ``T`` trade, ``F`` fill and ``N`` none leave the book as it is, as in
    Databento's data, where the resting quantity a fill takes is sent as a
    ``C``. ``fill()`` is there for feeds whose executions do reduce the order.

    Every event is applied at once. Databento marks the last record of one
    venue event with ``F_LAST``: the book may be crossed between two records of
    one event, so a plugin checks or publishes it only at ``F_LAST``.

    An event that does not fit the book (an add of an id that rests, a cancel
    of an unknown id, more cancelled than rests) is counted in ``errors`` and
    reported by ``check()`` until the next ``clear()``; the methods return
    ``False`` for it.
    """

    exchange: Final[str]
    symbol: Final[str]

    def __init__(self, exchange: str = "", symbol: str = "") -> None:
        self.exchange = exchange
        self.symbol = symbol
        self._orders: dict[int, _Order] = {}
        self._levels = OrderBook(exchange, symbol)
        self._levels._read_only = True  # the orders decide the levels
        self._bid_counts: dict[int, int] = {}
        self._ask_counts: dict[int, int] = {}
        self._errors = 0
        self._last_error = ""

    # -- the level side ------------------------------------------------------------
    def _level_add(self, side: str, price: int, size: int, ts: int, seq: int) -> None:
        counts = self._bid_counts if side == _BID else self._ask_counts
        counts[price] = counts.get(price, 0) + 1
        levels = self._levels
        levels._set(side, price, levels.size_at(side, price) + size, ts, seq)

    def _level_sub(self, side: str, price: int, size: int, drop: bool, ts: int, seq: int) -> None:
        counts = self._bid_counts if side == _BID else self._ask_counts
        levels = self._levels
        left = levels.size_at(side, price) - size
        if drop:
            n = counts.get(price, 0) - 1
            if n <= 0:
                counts.pop(price, None)
                left = 0  # the level's last order is gone, whatever the sizes said
            else:
                counts[price] = n
        levels._set(side, price, left, ts, seq)

    def _error(self, what: str) -> bool:
        self._errors += 1
        self._last_error = what
        return False

    # -- events ---------------------------------------------------------------------
    def add(
        self, order_id: int, side: str, price: int, size: int, ts_event: int = 0, sequence: int = 0
    ) -> bool:
        """A new resting order. An id that already rests is an error; the new
        order replaces it."""
        if side != _BID and side != _ASK:
            return self._error(f"add of order {order_id} with side {side!r}")
        ok = True
        old = self._orders.get(order_id)
        if old is not None:
            ok = self._error(f"add of order {order_id}, which already rests")
            self._level_sub(old.side, old.price, old.size, True, ts_event, sequence)
        self._orders[order_id] = _Order(side, price, size)
        self._level_add(side, price, size, ts_event, sequence)
        return ok

    def modify(
        self, order_id: int, side: str, price: int, size: int, ts_event: int = 0, sequence: int = 0
    ) -> bool:
        """An order's new price and/or size. An unknown id is added (Databento's
        rule: it may predate what this book saw); size 0 removes the order; a
        change of side is an error."""
        if size <= 0:
            return self._reduce(order_id, 0, "modify to size 0", ts_event, sequence)
        o = self._orders.get(order_id)
        if o is None:
            return self.add(order_id, side, price, size, ts_event, sequence)
        if side != o.side:
            return self._error(f"modify of order {order_id} from side {o.side!r} to {side!r}")
        if price == o.price:
            self._level_sub(o.side, price, o.size - size, False, ts_event, sequence)
        else:
            self._level_sub(o.side, o.price, o.size, True, ts_event, sequence)
            self._level_add(o.side, price, size, ts_event, sequence)
            o.price = price
        o.size = size
        return True

    def cancel(self, order_id: int, size: int = 0, ts_event: int = 0, sequence: int = 0) -> bool:
        """Take ``size`` off an order (0: all of it); an order left with nothing goes."""
        return self._reduce(order_id, size, "cancel", ts_event, sequence)

    def fill(self, order_id: int, size: int, ts_event: int = 0, sequence: int = 0) -> bool:
        """An execution of ``size`` against a resting order (for feeds whose fills
        reduce the order; Databento's do not, see the class doc)."""
        return self._reduce(order_id, size, "fill", ts_event, sequence)

    def _reduce(self, order_id: int, size: int, what: str, ts: int, seq: int) -> bool:
        o = self._orders.get(order_id)
        if o is None:
            return self._error(f"{what} of unknown order {order_id}")
        ok = True
        if size <= 0 or size >= o.size:
            if size > o.size:
                ok = self._error(
                    f"{what} of {format_fixed(size)} from order {order_id}, "
                    f"which has {format_fixed(o.size)}"
                )
            del self._orders[order_id]
            self._level_sub(o.side, o.price, o.size, True, ts, seq)
        else:
            o.size -= size
            self._level_sub(o.side, o.price, size, False, ts, seq)
        return ok

    def clear(self, ts_event: int = 0, sequence: int = 0) -> None:
        """Forget every order (Databento's ``R``): the book starts anew, errors too."""
        self._orders.clear()
        self._bid_counts.clear()
        self._ask_counts.clear()
        self._levels._clear(ts_event, sequence)
        self._errors = 0
        self._last_error = ""

    def apply(
        self,
        action: str,
        side: str,
        price: int,
        size: int,
        order_id: int,
        ts_event: int = 0,
        sequence: int = 0,
    ) -> bool:
        """One MBO event by its DBN action letter (see the class doc)."""
        if action == "A":
            return self.add(order_id, side, price, size, ts_event, sequence)
        if action == "C":
            return self.cancel(order_id, size, ts_event, sequence)
        if action == "M":
            return self.modify(order_id, side, price, size, ts_event, sequence)
        if action == "R":
            self.clear(ts_event, sequence)
            return True
        if action == "T" or action == "F" or action == "N":
            return True
        return self._error(f"unknown MBO action {action!r}")

    def apply_update(self, u: BookUpdate) -> bool:
        """``apply`` with the fields of an order-level ``BookUpdate``."""
        return self.apply(u.action, u.side, u.price, u.size, u.order_id, u.ts_event, u.sequence)

    # -- reads ----------------------------------------------------------------------
    @property
    def levels(self) -> OrderBook:
        """The aggregated price levels (read-only: the orders decide them)."""
        return self._levels

    @property
    def errors(self) -> int:
        """Events that did not fit the book since the last clear."""
        return self._errors

    @property
    def last_error(self) -> str:
        """The last of those, in words; "" when none."""
        return self._last_error

    def order(self, order_id: int) -> tuple[str, int, int] | None:
        """``(side, price, size)`` of a resting order, or ``None``."""
        o = self._orders.get(order_id)
        return None if o is None else (o.side, o.price, o.size)

    def best_bid(self) -> tuple[int, int] | None:
        """``(price, total size)`` of the highest bid level, or ``None``."""
        return self._levels.best_bid()

    def best_ask(self) -> tuple[int, int] | None:
        """``(price, total size)`` of the lowest ask level, or ``None``."""
        return self._levels.best_ask()

    def top(self, n: int) -> tuple[Levels, Levels]:
        """``(bids, asks)`` aggregated, at most ``n`` levels a side, best first."""
        return self._levels.top(n)

    def snapshot(self) -> tuple[Levels, Levels]:
        """Every aggregated level, best first (``BookSnapshot``'s layout)."""
        return self._levels.snapshot()

    def size_at(self, side: str, price: int) -> int:
        """Total resting size at ``price`` on ``side``; 0 when none."""
        return self._levels.size_at(side, price)

    def order_count(self, side: str, price: int) -> int:
        """How many orders rest at ``price`` on ``side``."""
        if side == _BID:
            return self._bid_counts.get(price, 0)
        if side == _ASK:
            return self._ask_counts.get(price, 0)
        raise ValueError(f"book side must be 'B' (bid) or 'A' (ask), got {side!r}")

    def check(self) -> str | None:
        """``None`` when consistent; else events that did not fit, or the levels'
        own ``check()`` (crossed, locked, negative)."""
        if self._errors:
            return f"{self._errors} MBO event(s) did not fit the book (last: {self._last_error})"
        return self._levels.check()

    def __len__(self) -> int:
        return len(self._orders)

    def __repr__(self) -> str:
        return (
            f"MboBook({self.exchange!r}, {self.symbol!r}, orders={len(self._orders)}, "
            f"best_bid={self.best_bid()!r}, best_ask={self.best_ask()!r}, errors={self._errors})"
        )


@final
class BookKeeper:
    """The hub's subscriber behind ``ExchangeHub.book(exchange, symbol)``.

    Subscribed to the bus (filtered on its exchange, and symbol for book
    events), so the book changes on the publisher's task, before any stream
    consumer runs: a slow consumer cannot leave it behind or corrupt it.

    - ``BookSnapshot``: the book is replaced (valid, not stale), then checked.
    - ``BookClear``: empties it (valid, not stale), orders too.
    - ``BookUpdate``: an order-level one (``order_id`` != 0) goes through an
      ``MboBook`` whose levels are this book; otherwise it sets one level.
      ``T``/``F``/``N`` change no level.
    - ``Gap`` of the symbol or of the whole connection: stale until the next
      snapshot or clear. A new book is stale until its first one.

    The integrity check runs when a message is complete: at the first update
    of the next message (another ``ts_event`` and another ``sequence``), and
    after a snapshot. A failure marks the book invalid (logged, counted in
    ``invalidations``) until the next snapshot or clear; nothing is published.
    Reading ``valid``/``reason`` in between checks the book as it is then,
    without marking it (a handler on the same bus may see a message half
    applied; a reader on another task never does).
    """

    book: Final[OrderBook]

    def __init__(self, exchange: str, symbol: str) -> None:
        self.book = OrderBook(exchange, symbol)
        self.book._read_only = True
        self.book._stale = True
        self.book._reason = "no snapshot seen yet"
        self._mbo: MboBook | None = None
        self._batch_ts = 0
        self._batch_seq = 0

    def on_update(self, u: BookUpdate) -> None:
        """Apply one ``BookUpdate`` (the bus calls this)."""
        book = self.book
        # a new message (another time, and another sequence where the feed has them)
        # closes the last one: only a whole message is checked
        if (
            book._unverified
            and u.ts_event != self._batch_ts
            and (u.sequence == 0 or u.sequence != self._batch_seq)
        ):
            self.verify()
        self._batch_ts = u.ts_event
        self._batch_seq = u.sequence
        action = u.action
        if u.order_id != 0:
            mbo = self._mbo
            if mbo is None:
                mbo = MboBook(book.exchange, book.symbol)
                mbo._levels = book  # the hub's book is the MBO book's level view
                self._mbo = mbo
            mbo.apply(action, u.side, u.price, u.size, u.order_id, u.ts_event, u.sequence)
        elif action == "T" or action == "F" or action == "N":
            return  # trades and fills describe no level
        else:
            book._set(u.side, u.price, u.size, u.ts_event, u.sequence)
        book._unverified = True

    def on_clear(self, c: BookClear) -> None:
        """Empty the book for a ``BookClear``: it starts anew, valid and fresh (the bus
        calls this)."""
        if self._mbo is not None:
            self._mbo.clear(c.ts_event, c.sequence)
        else:
            self.book._clear(c.ts_event, c.sequence)

    def on_snapshot(self, s: BookSnapshot) -> None:
        """Replace the book with a ``BookSnapshot`` (the bus calls this)."""
        book = self.book
        book._replace(s.bids, s.asks, s.ts_event, s.sequence)
        if self._mbo is not None:
            self._mbo = None  # levels come from snapshots now, not from orders
        self._batch_ts = s.ts_event
        self._batch_seq = s.sequence
        self.verify()

    def on_gap(self, g: Gap) -> None:
        """A ``Gap`` of this symbol (or of the whole connection) makes the book stale."""
        if g.symbol == "" or g.symbol == self.book.symbol:
            self.book._mark_stale(f"gap: {g.reason}")

    def verify(self) -> None:
        """Run the integrity check now; a failure marks the book invalid."""
        book = self.book
        book._unverified = False
        mbo = self._mbo
        found = mbo.check() if mbo is not None else book.check()
        if found is not None:
            book._invalidate(found)
