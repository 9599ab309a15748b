"""The market every simulator streams: a seeded random walk per symbol, on its tick grid.

Each symbol has a *fair price* that random-walks (in ticks) with a volatility that
switches between regimes (calm, volatile: a Markov chain), and a book of ``depth``
resting levels a side that follows it. One ``step`` is one market event:

- a trade (more likely in a volatile regime): the aggressor buys at the best ask or
  sells at the best bid, never more than rests there; a level taken out is replaced
  at the far end of its side, so the quote moves;
- or, when the book lags the fair price by half a tick or more, a reprice toward it:
  a new best level inside the spread (spread > 1 tick), or the best level of the far
  side pulled (spread = 1 tick);
- or a resting size changes (mostly near the top).

So the quote always has ``bid < ask`` with a spread of at least one tick, every price
is on the tick grid and every size a whole number of lots. The same seed gives the
same events, symbol by symbol, whatever order (and whichever subset) of symbols a
venue steps. Prices and sizes are the hub's fixed point (``PRICE_SCALE`` = 1e9).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from hub_core.fixed import PRICE_SCALE

BID: Final = "B"
"""Book side of a bid level (also a trade whose aggressor bought: DBN's letters)."""
ASK: Final = "A"
"""Book side of an ask level (also a trade whose aggressor sold)."""
ADD: Final = "A"
"""``LevelChange.action``: a new price level (DBN's add)."""
MODIFY: Final = "M"
"""``LevelChange.action``: a level's size changed."""
CANCEL: Final = "C"
"""``LevelChange.action``: the level is gone (its ``size`` is 0)."""
TRADE_LOG: Final = 100_000
"""Trades remembered per symbol (``MarketModel.trades``)."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """One symbol of a simulated market. Prices and sizes in fixed point (1e-9).

    ``price`` is where the first best bid stands; ``tick`` the price grid; ``lot`` the
    size grid; ``depth`` the resting levels kept a side; ``level_lots`` and
    ``trade_lots`` the (low, high) number of lots a resting level holds and a trade
    takes; ``volatility`` the fair price's step, in ticks, in a regime of volatility 1.
    """

    symbol: str
    price: int
    tick: int
    lot: int = PRICE_SCALE
    depth: int = 5
    level_lots: tuple[int, int] = (5, 60)
    trade_lots: tuple[int, int] = (1, 5)
    volatility: float = 0.3

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("an instrument needs a symbol")
        if self.tick <= 0 or self.lot <= 0:
            raise ValueError(f"{self.symbol}: tick and lot must be positive")
        if self.depth < 1:
            raise ValueError(f"{self.symbol}: depth must be at least 1, got {self.depth}")
        if self.price <= (self.depth + 2) * self.tick:
            raise ValueError(f"{self.symbol}: price must be above its book ({self.depth} ticks)")
        for name, (low, high) in (("level_lots", self.level_lots), ("trade_lots", self.trade_lots)):
            if not 1 <= low <= high:
                raise ValueError(f"{self.symbol}: {name} must be 1 <= low <= high")
        if not self.volatility >= 0:
            raise ValueError(f"{self.symbol}: volatility must be >= 0")


@dataclass(frozen=True, slots=True)
class Regime:
    """A volatility regime: the fair price's step is the instrument's ``volatility``
    times ``volatility``; ``trade_share`` of the steps are trades; it lasts
    ``mean_steps`` steps on average (left with probability ``1/mean_steps`` a step,
    for the next regime of the model's list)."""

    name: str
    volatility: float
    trade_share: float
    mean_steps: float

    def __post_init__(self) -> None:
        if not (self.volatility >= 0 and 0 <= self.trade_share <= 1 and self.mean_steps >= 1):
            raise ValueError(
                f"regime {self.name!r}: needs volatility >= 0, 0 <= trade_share <= 1 "
                "and mean_steps >= 1"
            )


CALM: Final = Regime("calm", 1.0, 0.3, 400.0)
VOLATILE: Final = Regime("volatile", 4.0, 0.45, 100.0)
DEFAULT_REGIMES: Final = (CALM, VOLATILE)
"""Calm most of the time (400 steps on average), volatile bursts of about 100 steps."""


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One book level changed: ``side`` (``BID``/``ASK``), ``price``, the new ``size``
    (0 when the level is gone) and the ``action`` (``ADD``, ``MODIFY``, ``CANCEL``)."""

    side: str
    price: int
    size: int
    action: str


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """A trade: ``side`` is the aggressor's (``BID`` bought at the ask, ``ASK`` sold at
    the bid); ``trade_id`` counts the symbol's trades from 1."""

    price: int
    size: int
    side: str
    trade_id: int


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """What one step did to one symbol: at most one trade, then the level changes it
    caused (in order), whether the top of book (prices or sizes) changed, and the top."""

    symbol: str
    trade: MarketTrade | None
    changes: tuple[LevelChange, ...]
    top_changed: bool
    top: tuple[int, int, int, int]
    """``(bid, bid size, ask, ask size)`` right after the step."""


class Book:
    """One symbol's market in a ``MarketModel``: read it, change it through the model.

    ``bids``/``asks`` map price to size; ``trades`` holds the latest ``TRADE_LOG``
    trades as ``(price, size, aggressor side)``; ``sequence`` counts every event
    (level change or trade) so far, ``trade_count`` the trades.
    """

    def __init__(self, instrument: Instrument, rng: random.Random, regimes: Sequence[Regime]):
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.trades: deque[tuple[int, int, str]] = deque(maxlen=TRADE_LOG)
        self.trade_count = 0
        self.sequence = 0
        self._rng = rng
        self._regimes = regimes
        self._regime = 0
        self._pinned: set[tuple[str, int]] = set()
        """Levels put by hand (``MarketModel.set_level``): the walk leaves them alone."""
        self._budget = 0.0
        tick = instrument.tick
        low, high = instrument.level_lots
        for i in range(instrument.depth):
            self.bids[instrument.price - i * tick] = rng.randint(low, high) * instrument.lot
            self.asks[instrument.price + (i + 1) * tick] = rng.randint(low, high) * instrument.lot
        self.fair = self._mid_ticks()
        """The price the book follows, in ticks (a float: it moves by fractions)."""

    @property
    def regime(self) -> Regime:
        """The volatility regime now."""
        return self._regimes[self._regime]

    @property
    def best_bid(self) -> int:
        """The highest bid price."""
        return max(self.bids)

    @property
    def best_ask(self) -> int:
        """The lowest ask price."""
        return min(self.asks)

    def top(self) -> tuple[int, int, int, int]:
        """``(bid, bid size, ask, ask size)``."""
        bid, ask = self.best_bid, self.best_ask
        return (bid, self.bids[bid], ask, self.asks[ask])

    def levels(
        self, depth: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(bids, asks)`` as ``(price, size)`` best first, at most ``depth`` each."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if depth is not None:
            return bids[:depth], asks[:depth]
        return bids, asks

    @property
    def last_trade(self) -> tuple[int, int, str] | None:
        """The latest trade as ``(price, size, aggressor side)``, or None before any."""
        return self.trades[-1] if self.trades else None

    @property
    def fair_price(self) -> int:
        """The fair price rounded to the tick grid, fixed point."""
        return round(self.fair) * self.instrument.tick

    def _mid_ticks(self) -> float:
        return (self.best_bid + self.best_ask) / (2 * self.instrument.tick)

    def _side(self, side: str) -> dict[int, int]:
        return self.bids if side == BID else self.asks

    def _free(self, side: str) -> list[int]:
        """Prices of the levels of ``side`` the walk manages, best first."""
        prices = [p for p in self._side(side) if (side, p) not in self._pinned]
        prices.sort(reverse=side == BID)
        return prices


class MarketModel:
    """Seeded random-walk markets, one ``Book`` per instrument (see the module docs).

    ``step(symbol)`` makes one market event; ``steps_due(symbol, dt, rate)`` says how
    many are due after ``dt`` seconds at ``rate`` events a second (what a venue's
    market clock asks). ``seed=None`` draws a fresh seed.
    """

    def __init__(
        self,
        instruments: Iterable[Instrument],
        *,
        seed: int | None = None,
        regimes: Sequence[Regime] = DEFAULT_REGIMES,
    ) -> None:
        if not regimes:
            raise ValueError("a market model needs at least one regime")
        self.regimes = tuple(regimes)
        self._books: dict[str, Book] = {}
        for inst in instruments:
            if inst.symbol in self._books:
                raise ValueError(f"instrument {inst.symbol!r} given twice")
            # one generator per symbol, seeded by (seed, symbol): stepping one symbol
            # never changes what another one does
            rng = random.Random(f"{seed}:{inst.symbol}") if seed is not None else random.Random()
            self._books[inst.symbol] = Book(inst, rng, self.regimes)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol, in the order the instruments were given."""
        return tuple(self._books)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._books

    def book(self, symbol: str) -> Book:
        """The ``Book`` of ``symbol`` (``KeyError`` for an unknown one)."""
        return self._books[symbol]

    def trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """The latest trades of ``symbol`` in order, ``(price, size, aggressor side)``;
        empty for an unknown symbol."""
        book = self._books.get(symbol)
        return list(book.trades) if book is not None else []

    def steps_due(self, symbol: str, dt: float, rate: float) -> int:
        """How many steps of ``symbol`` are due ``dt`` seconds later at ``rate`` a second
        (then call ``step`` that many times, handling each update before the next).

        A fraction of a step is carried to the next call; at most ``rate + 1`` steps
        come at once, so a venue whose clock stalled does not burst afterwards.
        """
        if rate <= 0 or dt <= 0:
            return 0
        book = self._books[symbol]
        book._budget += rate * dt
        n = int(book._budget)
        book._budget -= n
        return min(n, int(rate) + 1)

    def step(self, symbol: str) -> MarketUpdate:
        """One market event of ``symbol``."""
        b = self._books[symbol]
        rng = b._rng
        self._walk(b)
        top = b.top()
        changes: list[LevelChange] = []
        trade: MarketTrade | None = None
        drift = b.fair - b._mid_ticks()
        if rng.random() < b.regime.trade_share:
            # the side the fair price pulls toward is the more aggressive one
            buy = rng.random() < min(0.8, max(0.2, 0.5 + 0.15 * drift))
            trade = self._trade(b, buy, changes)
        elif abs(drift) >= 0.5 and rng.random() < 0.7:
            self._reprice(b, drift > 0, changes)
        else:
            self._resize(b, changes)
        b.sequence += len(changes) + (trade is not None)
        now = b.top()
        return MarketUpdate(symbol, trade, tuple(changes), now != top, now)

    def set_level(self, symbol: str, side: str, price: int, size: int) -> MarketUpdate:
        """Put a level by hand (``size`` 0 removes it): tests use it for a level only
        they know of. The walk never touches a level put by hand (it does not count
        toward ``depth``) until it is put again; a trade takes it if it becomes best."""
        b = self._books[symbol]
        if side not in (BID, ASK):
            raise ValueError(f"side must be {BID!r} or {ASK!r}, got {side!r}")
        if price <= 0 or size < 0:
            raise ValueError("a level needs a positive price and a size >= 0")
        if size and (price >= b.best_ask if side == BID else price <= b.best_bid):
            raise ValueError(f"{symbol}: a level at {price} would cross the book")
        top = b.top()
        changes: list[LevelChange] = []
        if size:
            b._pinned.add((side, price))
            self._set(b, side, price, size, changes)
        elif price in b._side(side):
            b._pinned.discard((side, price))
            self._set(b, side, price, 0, changes)
            self._fill(b, side, price, changes)
        b.sequence += len(changes)
        now = b.top()
        return MarketUpdate(symbol, None, tuple(changes), now != top, now)

    # -- the walk ---------------------------------------------------------------------------
    def _walk(self, b: Book) -> None:
        rng = b._rng
        if len(self.regimes) > 1 and rng.random() < 1.0 / b.regime.mean_steps:
            b._regime = (b._regime + 1) % len(self.regimes)
        b.fair += rng.gauss(0.0, b.instrument.volatility * b.regime.volatility)
        floor = float(2 * b.instrument.depth + 2)
        if b.fair < floor:
            b.fair = 2 * floor - b.fair  # reflected: prices stay well above zero

    def _set(self, b: Book, side: str, price: int, size: int, out: list[LevelChange]) -> None:
        levels = b._side(side)
        if size:
            action = MODIFY if price in levels else ADD
            levels[price] = size
        elif levels.pop(price, None) is not None:
            action = CANCEL
        else:
            return
        out.append(LevelChange(side, price, size, action))

    def _size(self, b: Book) -> int:
        low, high = b.instrument.level_lots
        return b._rng.randint(low, high) * b.instrument.lot

    def _fill(self, b: Book, side: str, gone: int, out: list[LevelChange]) -> None:
        """Refill ``side`` to ``depth`` levels at its far end (beyond ``gone`` if it is
        empty), skipping prices taken by levels put by hand."""
        tick = b.instrument.tick
        step = -tick if side == BID else tick
        levels = b._side(side)
        while len(free := b._free(side)) < b.instrument.depth:
            price = (free[-1] if free else gone) + step
            while price in levels:
                price += step
            if price <= 0:
                return
            self._set(b, side, price, self._size(b), out)

    def _trim(self, b: Book, side: str, out: list[LevelChange]) -> None:
        """Drop the far levels of ``side`` past ``depth``."""
        free = b._free(side)
        for price in free[b.instrument.depth :]:
            self._set(b, side, price, 0, out)

    def _trade(self, b: Book, buy: bool, out: list[LevelChange]) -> MarketTrade:
        inst = b.instrument
        side = ASK if buy else BID  # the resting side the aggressor takes from
        price = b.best_ask if buy else b.best_bid
        available = b._side(side)[price]
        low, high = inst.trade_lots
        size = min(available, b._rng.randint(low, high) * inst.lot)
        b.trade_count += 1
        trade = MarketTrade(price, size, BID if buy else ASK, b.trade_count)
        b.trades.append((price, size, trade.side))
        if available > size:
            self._set(b, side, price, available - size, out)
        else:
            b._pinned.discard((side, price))
            self._set(b, side, price, 0, out)
            self._fill(b, side, price, out)
        return trade

    def _reprice(self, b: Book, up: bool, out: list[LevelChange]) -> None:
        tick = b.instrument.tick
        bid, ask = b.best_bid, b.best_ask
        if ask - bid > tick:
            # a new best level inside the spread, on the side the price moves toward
            if up:
                self._set(b, BID, bid + tick, self._size(b), out)
                self._trim(b, BID, out)
            else:
                self._set(b, ASK, ask - tick, self._size(b), out)
                self._trim(b, ASK, out)
            return
        # one tick wide: the side the price moves toward is pulled
        side, price = (ASK, ask) if up else (BID, bid)
        if len(b._side(side)) < 2 or (side == BID and bid <= (b.instrument.depth + 2) * tick):
            self._resize(b, out)  # keep a side and positive prices
            return
        b._pinned.discard((side, price))
        self._set(b, side, price, 0, out)
        self._fill(b, side, price, out)

    def _resize(self, b: Book, out: list[LevelChange]) -> None:
        rng = b._rng
        side = BID if rng.random() < 0.5 else ASK
        free = b._free(side)
        if free:
            i = min(len(free) - 1, int(rng.expovariate(0.5)))  # mostly near the top
            self._set(b, side, free[i], self._size(b), out)


__all__ = [
    "ADD",
    "ASK",
    "BID",
    "CALM",
    "CANCEL",
    "DEFAULT_REGIMES",
    "MODIFY",
    "TRADE_LOG",
    "VOLATILE",
    "Book",
    "Instrument",
    "LevelChange",
    "MarketModel",
    "MarketTrade",
    "MarketUpdate",
    "Regime",
]
