"""Real-shaped venue frames for the WebSocket dialect benchmarks (``ws_compare.py``).

Each generator walks a small market model (a top of book, trades and a depth book per
instrument, seeded, so every run writes the same bytes) and writes the frames exactly as
the venue does: the venue's key order, every field it sends (used by the dialect or not),
prices and quantities at each instrument's own tick size and lot step.

- Binance USD-M futures: ``bookTicker`` (``e``/``u``/``s``/``b``/``B``/``a``/``A``/``T``/``E``),
  ``aggTrade``, ``depthUpdate`` with ``pu`` (the ``@depth@100ms`` diff, 5-20 levels a
  side), raw or wrapped as a combined stream (``{"stream":...,"data":{...}}``), and
  the REST snapshot (``/fapi/v1/depth``) each book starts from. 100 symbols, the
  busiest ones far busier than the tail.
- Binance spot ``bookTicker`` (no ``e``, no times; 8 decimals), raw and wrapped.
- Coinbase Exchange ``ticker``, ``match`` and ``level2`` (``snapshot`` + ``l2update``).
- Kraken v2 ``ticker``, ``trade`` and ``book`` (``snapshot`` + ``update`` with the CRC32
  checksum computed here from the model book), numbers written as JSON numbers.

Every depth level a generator writes changes its book (a new price, a new size of an
existing one, or a removal of an existing one), so a correct dialect publishes exactly
one ``BookUpdate`` per level written.
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SEED = 20240611
E0_MS = 1_718_000_000_000
"""Venue clock at the start of every tape (ms)."""

# Binance USD-M perpetuals by rough price; the list order is also the activity rank.
_FUTURES: tuple[tuple[str, float], ...] = (
    ("BTC", 67250.0), ("ETH", 3480.0), ("SOL", 152.3), ("BNB", 598.4), ("XRP", 0.4921),
    ("DOGE", 0.1432), ("1000PEPE", 0.01211), ("WIF", 2.431), ("ORDI", 41.27), ("AVAX", 31.44),
    ("LINK", 15.62), ("ADA", 0.4312), ("SUI", 0.9821), ("NEAR", 6.214), ("OP", 2.127),
    ("ARB", 0.9814), ("FIL", 5.432), ("LTC", 81.23), ("DOT", 6.512), ("MATIC", 0.6743),
    ("TIA", 8.213), ("INJ", 24.61), ("APT", 8.127), ("WLD", 3.412), ("1000BONK", 0.02741),
    ("FET", 1.612), ("RNDR", 8.621), ("SEI", 0.4123), ("BCH", 452.3), ("ETC", 27.41),
    ("ATOM", 7.821), ("TRX", 0.1182), ("UNI", 9.812), ("STX", 1.843), ("JUP", 1.012),
    ("PYTH", 0.4721), ("ENA", 0.7812), ("PEOPLE", 0.08123), ("GALA", 0.03214), ("AAVE", 92.41),
    ("MKR", 2541.0), ("LDO", 2.143), ("CRV", 0.3812), ("DYDX", 1.612), ("IMX", 1.721),
    ("GRT", 0.2413), ("SAND", 0.3912), ("MANA", 0.3821), ("AXS", 6.712), ("APE", 1.012),
    ("CHZ", 0.1021), ("FTM", 0.6821), ("EGLD", 34.12), ("ALGO", 0.1612), ("VET", 0.02812),
    ("THETA", 1.812), ("EOS", 0.7812), ("XTZ", 0.8412), ("KAVA", 0.6421), ("RUNE", 4.812),
    ("SNX", 2.012), ("COMP", 52.13), ("GMX", 28.41), ("1INCH", 0.3821), ("SUSHI", 0.9812),
    ("YFI", 6812.0), ("ZEC", 22.41), ("DASH", 27.81), ("XMR", 141.2), ("ENJ", 0.2612),
    ("BAT", 0.2312), ("ZIL", 0.01812), ("ICX", 0.1812), ("ONT", 0.2412), ("QTUM", 3.012),
    ("IOTA", 0.2012), ("NEO", 12.81), ("KSM", 28.12), ("CELO", 0.6812), ("FLOW", 0.8312),
    ("MINA", 0.6712), ("ROSE", 0.1012), ("ZRX", 0.4812), ("BAND", 1.412), ("RSR", 0.008123),
    ("STORJ", 0.4812), ("ANKR", 0.04012), ("CHR", 0.2812), ("SKL", 0.06812), ("HBAR", 0.08123),
    ("JASMY", 0.02812), ("WOO", 0.2312), ("BLUR", 0.2812), ("JTO", 2.812), ("XLM", 0.1012),
    ("ICP", 10.41), ("CFX", 0.1812), ("AGIX", 0.6812), ("LPT", 18.41), ("GAS", 4.512),
)  # fmt: skip

_COINBASE: tuple[tuple[str, float], ...] = (
    ("BTC-USD", 67250.0), ("ETH-USD", 3480.0), ("SOL-USD", 152.3), ("XRP-USD", 0.4921),
    ("DOGE-USD", 0.1432), ("ADA-USD", 0.4312), ("AVAX-USD", 31.44), ("LINK-USD", 15.62),
    ("LTC-USD", 81.23), ("DOT-USD", 6.512), ("MATIC-USD", 0.6743), ("UNI-USD", 9.812),
    ("ATOM-USD", 7.821), ("SHIB-USD", 0.00002412), ("BCH-USD", 452.3), ("NEAR-USD", 6.214),
    ("APT-USD", 8.127), ("ARB-USD", 0.9814), ("OP-USD", 2.127), ("FIL-USD", 5.432),
)  # fmt: skip

_KRAKEN: tuple[tuple[str, float], ...] = (
    ("BTC/USD", 67250.0), ("ETH/USD", 3480.0), ("SOL/USD", 152.3), ("XRP/USD", 0.4921),
    ("DOGE/USD", 0.1432), ("ADA/USD", 0.4312), ("USDT/USD", 1.0001), ("LINK/USD", 15.62),
    ("DOT/USD", 6.512), ("LTC/USD", 81.23), ("MATIC/USD", 0.6743), ("ATOM/USD", 7.821),
    ("BTC/EUR", 62410.0), ("ETH/EUR", 3221.0), ("AVAX/USD", 31.44), ("XMR/USD", 141.2),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Instrument:
    """One symbol's display rules: prices and quantities are ints in units of
    ``10**-price_dec`` / ``10**-qty_dec``, moving in steps of ``tick`` / ``lot``."""

    symbol: str
    price_dec: int
    tick: int
    qty_dec: int
    lot: int
    mid: int
    """A starting price, in price units (a multiple of ``tick``)."""

    def price(self, units: int) -> str:
        return fmt(units, self.price_dec)

    def qty(self, units: int) -> str:
        return fmt(units, self.qty_dec)


def fmt(units: int, dec: int) -> str:
    """``units * 10**-dec`` as plain decimal text with exactly ``dec`` decimals."""
    if dec == 0:
        return str(units)
    whole, frac = divmod(units, 10**dec)
    return f"{whole}.{frac:0{dec}d}"


def _instrument(
    symbol: str, approx: float, rng: random.Random, *, qty_dec: int | None = None
) -> Instrument:
    mag = math.floor(math.log10(approx))
    # about five significant digits of price, as the venues' tick sizes give, printed
    # with a fixed number of decimals (Binance futures: BTCUSDT 2, tick 0.10)
    price_dec = max(2, min(8, 5 - mag))
    tick = rng.choice((1, 1, 10))
    # a lot worth about 20 USD, so that the common sizes of a few lots are 50-200 USD
    lot_exp = round(math.log10(20 / approx))
    if qty_dec is None:
        qty_dec = max(0, min(3, -lot_exp))
    lot = 10 ** max(0, lot_exp + qty_dec)
    mid = round(approx * 10**price_dec) // tick * tick
    return Instrument(symbol, price_dec, tick, qty_dec, lot, max(mid, 100 * tick))


def futures_instruments(n: int = 100) -> list[Instrument]:
    """``n`` USD-M perpetuals (``BTCUSDT``, ...), most active first."""
    rng = random.Random(SEED)
    return [_instrument(f"{base}USDT", px, rng) for base, px in _FUTURES[:n]]


def spot_instruments(n: int = 50) -> list[Instrument]:
    """Spot pairs as Binance spot prints them: every number with 8 decimals."""
    rng = random.Random(SEED + 1)
    out = []
    for base, px in _FUTURES[:n]:
        inst = _instrument(f"{base}USDT", px, rng, qty_dec=8)
        # spot prints every price with 8 decimals too
        shift = 10 ** (8 - inst.price_dec)
        out.append(Instrument(inst.symbol, 8, inst.tick * shift, 8, inst.lot, inst.mid * shift))
    return out


def coinbase_instruments() -> list[Instrument]:
    rng = random.Random(SEED + 2)
    # sizes with 8 decimals, as the feed writes them
    return [_instrument(p, px, rng, qty_dec=8) for p, px in _COINBASE]


def kraken_instruments() -> list[Instrument]:
    rng = random.Random(SEED + 3)
    # quantities at the pair's lot precision: 8 decimals
    return [_instrument(p, px, rng, qty_dec=8) for p, px in _KRAKEN]


def _activity(n: int) -> list[float]:
    # a few symbols carry most of the traffic (roughly Zipf, as on every venue)
    return [1.0 / (rank + 1) ** 0.9 for rank in range(n)]


@dataclass
class _Book:
    """A depth book model: price units -> size units per side, around a fixed mid."""

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


class _Market:
    """Per instrument: the top of book, trade ids, a depth book and the venue clock."""

    def __init__(self, instruments: Sequence[Instrument], seed: int, depth: int = 20) -> None:
        self.rng = random.Random(seed)
        self.instruments = list(instruments)
        self.cum_weights = list(itertools.accumulate(_activity(len(self.instruments))))
        self.bid = {i.symbol: i.mid for i in self.instruments}
        self.update_id = {
            i.symbol: 4_000_000_000_000 + k * 7_919 for k, i in enumerate(instruments)
        }
        self.trade_id = {i.symbol: 3_000_000_000 + k * 104_729 for k, i in enumerate(instruments)}
        self.agg_id = {i.symbol: 1_800_000_000 + k * 15_485 for k, i in enumerate(instruments)}
        self.sequence = {i.symbol: 70_000_000_000 + k * 1_299 for k, i in enumerate(instruments)}
        self.books = {i.symbol: self._seed_book(i, depth) for i in self.instruments}
        self.clock_ms = E0_MS

    def pick(self) -> Instrument:
        return self.rng.choices(self.instruments, cum_weights=self.cum_weights)[0]

    def tick_clock(self) -> int:
        self.clock_ms += self.rng.choice((0, 0, 1, 1, 2, 5))
        return self.clock_ms

    def size(self, inst: Instrument) -> int:
        # sizes of 1..2000 lots, small ones far more common
        return inst.lot * max(1, int(self.rng.paretovariate(1.2) * 3) % 2000)

    def top(self, inst: Instrument) -> tuple[int, int]:
        """Move the top of book a tick or two at random; the spread is 1-3 ticks."""
        bid = self.bid[inst.symbol] + inst.tick * self.rng.choice((-2, -1, 0, 0, 0, 1, 2))
        bid = max(bid, 100 * inst.tick)
        self.bid[inst.symbol] = bid
        return bid, bid + inst.tick * self.rng.choice((1, 1, 1, 2, 3))

    def _seed_book(self, inst: Instrument, depth: int) -> _Book:
        book = _Book()
        for k in range(depth):
            book.bids[inst.mid - inst.tick * (1 + k)] = self.size(inst)
            book.asks[inst.mid + inst.tick * (1 + k)] = self.size(inst)
        return book

    def book_change(
        self, inst: Instrument, side: dict[int, int], bid_side: bool, n: int, keep: int
    ) -> list[tuple[int, int]]:
        """``n`` level changes to one side that each change the book, applied to the model.

        Modifies (a new size at an existing price), removes, and adds (a free price within
        60 ticks of the mid), balanced so the side stays near ``keep`` levels; no price
        twice in one call."""
        rng = self.rng
        out: list[tuple[int, int]] = []
        existing = list(side)
        touched: set[int] = set()
        sign = -1 if bid_side else 1
        while len(out) < n:
            roll = rng.random()
            price = rng.choice(existing) if existing else 0
            if price and price not in touched and (roll < 0.6 or len(side) > keep):
                size = side[price]
                while size == side[price] and roll < 0.6:
                    size = self.size(inst)
                if roll >= 0.6:
                    size = 0
            else:
                price = inst.mid + sign * inst.tick * rng.randint(1, 60)
                if price in side or price in touched:
                    continue
                size = self.size(inst)
            touched.add(price)
            if size:
                side[price] = size
            else:
                del side[price]
            out.append((price, size))
        return out

    def replace_or_modify(
        self, inst: Instrument, side: dict[int, int], bid_side: bool
    ) -> list[tuple[int, int]]:
        """One change that keeps the side's level count: a new size at an existing price,
        or a removal plus an addition elsewhere (two levels)."""
        rng = self.rng
        price = rng.choice(list(side))
        if rng.random() < 0.6:
            size = side[price]
            while size == side[price]:
                size = self.size(inst)
            side[price] = size
            return [(price, size)]
        del side[price]
        sign = -1 if bid_side else 1
        new = price
        while new in side or new == price:
            new = inst.mid + sign * inst.tick * rng.randint(1, 25)
        side[new] = self.size(inst)
        return [(price, 0), (new, side[new])]


def _wrap(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


@dataclass
class Tape:
    """Frames to feed in order, and the REST snapshot bodies (symbol -> bytes) a session
    must be given first so that the depth updates apply to a synced book."""

    frames: list[bytes]
    snapshots: dict[str, bytes] = field(default_factory=dict)
    seed_frames: list[bytes] = field(default_factory=list)
    """Frames to feed before the measured ones (books that come over the WebSocket)."""
    symbols: list[str] = field(default_factory=list)


# -- Binance --------------------------------------------------------------------------------
class BinanceFuturesTape:
    """USD-M futures frames as ``fstream.binance.com`` sends them."""

    def __init__(self, n_symbols: int = 100, seed: int = SEED) -> None:
        self.market = _Market(futures_instruments(n_symbols), seed)
        self.last_u = {i.symbol: self.market.update_id[i.symbol] for i in self.market.instruments}
        self.snapshots = {i.symbol: self._snapshot(i) for i in self.market.instruments}

    def _snapshot(self, inst: Instrument) -> bytes:
        m = self.market
        book = m.books[inst.symbol]
        bids = ",".join(
            f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in sorted(book.bids.items())[::-1]
        )
        asks = ",".join(
            f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in sorted(book.asks.items())
        )
        e = m.clock_ms
        return (
            f'{{"lastUpdateId":{self.last_u[inst.symbol]},"E":{e},"T":{e - 3},'
            f'"bids":[{bids}],"asks":[{asks}]}}'
        ).encode()

    def book_ticker(self, inst: Instrument) -> tuple[str, bytes]:
        m = self.market
        bid, ask = m.top(inst)
        m.update_id[inst.symbol] += m.rng.randint(1, 40)
        e = m.tick_clock()
        payload = (
            f'{{"e":"bookTicker","u":{m.update_id[inst.symbol]},"s":"{inst.symbol}",'
            f'"b":"{inst.price(bid)}","B":"{inst.qty(m.size(inst))}",'
            f'"a":"{inst.price(ask)}","A":"{inst.qty(m.size(inst))}",'
            f'"T":{e - m.rng.randint(1, 3)},"E":{e}}}'
        ).encode()
        return f"{inst.symbol.lower()}@bookTicker", payload

    def agg_trade(self, inst: Instrument) -> tuple[str, bytes]:
        m = self.market
        bid, ask = m.top(inst)
        buyer_maker = m.rng.random() < 0.5
        first = m.trade_id[inst.symbol] + 1
        last = first + m.rng.choice((0, 0, 0, 1, 2, 5))
        m.trade_id[inst.symbol] = last
        m.agg_id[inst.symbol] += 1
        e = m.tick_clock()
        payload = (
            f'{{"e":"aggTrade","E":{e},"s":"{inst.symbol}","a":{m.agg_id[inst.symbol]},'
            f'"p":"{inst.price(bid if buyer_maker else ask)}","q":"{inst.qty(m.size(inst))}",'
            f'"f":{first},"l":{last},"T":{e - m.rng.randint(0, 2)},'
            f'"m":{"true" if buyer_maker else "false"}}}'
        ).encode()
        return f"{inst.symbol.lower()}@aggTrade", payload

    def depth_update(self, inst: Instrument) -> tuple[str, bytes]:
        m = self.market
        book = m.books[inst.symbol]
        rng = m.rng
        bids = m.book_change(inst, book.bids, True, rng.randint(5, 20), 20)
        asks = m.book_change(inst, book.asks, False, rng.randint(5, 20), 20)
        pu = self.last_u[inst.symbol]
        first = pu + 1 + rng.randint(0, 3)
        last = first + rng.randint(len(bids) + len(asks), 200)
        self.last_u[inst.symbol] = last
        e = m.tick_clock()
        b = ",".join(f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in bids)
        a = ",".join(f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in asks)
        payload = (
            f'{{"e":"depthUpdate","E":{e},"T":{e - rng.randint(1, 3)},"s":"{inst.symbol}",'
            f'"U":{first},"u":{last},"pu":{pu},"b":[{b}],"a":[{a}]}}'
        ).encode()
        return f"{inst.symbol.lower()}@depth@100ms", payload

    def tape(self, n: int, mix: Sequence[tuple[str, float]], *, wrapped: bool) -> Tape:
        """``n`` frames, kinds drawn with the weights of ``mix`` (``bookTicker``,
        ``aggTrade``, ``depthUpdate``)."""
        makers: dict[str, Callable[[Instrument], tuple[str, bytes]]] = {
            "bookTicker": self.book_ticker,
            "aggTrade": self.agg_trade,
            "depthUpdate": self.depth_update,
        }
        kinds = [makers[k] for k, _ in mix]
        weights = [w for _, w in mix]
        rng = self.market.rng
        frames = []
        for _ in range(n):
            stream, payload = rng.choices(kinds, weights)[0](self.market.pick())
            frames.append(_wrap(stream, payload) if wrapped else payload)
        return Tape(
            frames, dict(self.snapshots), symbols=[i.symbol for i in self.market.instruments]
        )


FUTURES_MIX: tuple[tuple[str, float], ...] = (
    ("bookTicker", 0.86),
    ("aggTrade", 0.10),
    ("depthUpdate", 0.04),
)
"""What a USD-M futures connection subscribed to all three streams of 100 symbols sees:
``bookTicker`` fires on every top-of-book change and dominates; ``@depth@100ms`` sends at
most ten events a second per symbol."""


def futures_tape(kind: str, n: int, *, wrapped: bool) -> Tape:
    """One kind (``bookTicker``, ``aggTrade``, ``depthUpdate``) or ``"mix"`` (FUTURES_MIX)."""
    gen = BinanceFuturesTape()
    mix = FUTURES_MIX if kind == "mix" else ((kind, 1.0),)
    return gen.tape(n, mix, wrapped=wrapped)


def spot_book_ticker_tape(n: int, *, wrapped: bool) -> Tape:
    """Spot ``bookTicker``: ``{"u":..,"s":..,"b":..,"B":..,"a":..,"A":..}``, 8 decimals."""
    m = _Market(spot_instruments(), SEED + 10)
    frames = []
    for _ in range(n):
        inst = m.pick()
        bid, ask = m.top(inst)
        m.update_id[inst.symbol] += m.rng.randint(1, 40)
        payload = (
            f'{{"u":{m.update_id[inst.symbol]},"s":"{inst.symbol}","b":"{inst.price(bid)}",'
            f'"B":"{inst.qty(m.size(inst))}","a":"{inst.price(ask)}",'
            f'"A":"{inst.qty(m.size(inst))}"}}'
        ).encode()
        frames.append(_wrap(f"{inst.symbol.lower()}@bookTicker", payload) if wrapped else payload)
    return Tape(frames, symbols=[i.symbol for i in m.instruments])


# -- Coinbase -------------------------------------------------------------------------------
def _rfc3339(ms: int, micros: int) -> str:
    secs, milli = divmod(ms, 1000)
    d, s = divmod(secs, 86_400)
    # E0_MS is 2024-06-10; a tape spans minutes, so the day can be fixed arithmetic
    day = 10 + (d - 19_884)
    hh, rem = divmod(s, 3600)
    mm, ss = divmod(rem, 60)
    return f"2024-06-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}{micros:03d}Z"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def coinbase_tape(kind: str, n: int) -> Tape:
    """``ticker``, ``match`` or ``l2update`` frames of 20 products (``l2update`` with one
    ``snapshot`` per product to feed first, as the venue sends on subscribing)."""
    m = _Market(coinbase_instruments(), SEED + 20, depth=50)
    rng = m.rng
    frames: list[bytes] = []
    seed: list[bytes] = []
    if kind == "l2update":
        for inst in m.instruments:
            book = m.books[inst.symbol]
            bids = ",".join(
                f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in sorted(book.bids.items())[::-1]
            )
            asks = ",".join(
                f'["{inst.price(p)}","{inst.qty(q)}"]' for p, q in sorted(book.asks.items())
            )
            seed.append(
                f'{{"type":"snapshot","product_id":"{inst.symbol}","bids":[{bids}],'
                f'"asks":[{asks}],"time":"{_rfc3339(m.clock_ms, 0)}"}}'.encode()
            )
    for _ in range(n):
        inst = m.pick()
        sym = inst.symbol
        m.sequence[sym] += rng.randint(1, 30)
        t = _rfc3339(m.tick_clock(), rng.randint(0, 999))
        if kind == "ticker":
            bid, ask = m.top(inst)
            px = bid if rng.random() < 0.5 else ask
            m.trade_id[sym] += rng.randint(1, 5)
            frames.append(
                f'{{"type":"ticker","sequence":{m.sequence[sym]},"product_id":"{sym}",'
                f'"price":"{inst.price(px)}","open_24h":"{inst.price(inst.mid)}",'
                f'"volume_24h":"{inst.qty(m.size(inst) * 1000)}",'
                f'"low_24h":"{inst.price(inst.mid - 50 * inst.tick)}",'
                f'"high_24h":"{inst.price(inst.mid + 50 * inst.tick)}",'
                f'"volume_30d":"{inst.qty(m.size(inst) * 30000)}",'
                f'"best_bid":"{inst.price(bid)}","best_bid_size":"{inst.qty(m.size(inst))}",'
                f'"best_ask":"{inst.price(ask)}","best_ask_size":"{inst.qty(m.size(inst))}",'
                f'"side":"{"buy" if px == ask else "sell"}","time":"{t}",'
                f'"trade_id":{m.trade_id[sym]},"last_size":"{inst.qty(m.size(inst))}"}}'.encode()
            )
        elif kind == "match":
            bid, ask = m.top(inst)
            maker_sells = rng.random() < 0.5
            m.trade_id[sym] += 1  # contiguous per product: a hole is a lost trade
            frames.append(
                f'{{"type":"match","trade_id":{m.trade_id[sym]},'
                f'"maker_order_id":"{_uuid(rng)}","taker_order_id":"{_uuid(rng)}",'
                f'"side":"{"sell" if maker_sells else "buy"}","size":"{inst.qty(m.size(inst))}",'
                f'"price":"{inst.price(ask if maker_sells else bid)}","product_id":"{sym}",'
                f'"sequence":{m.sequence[sym]},"time":"{t}"}}'.encode()
            )
        else:
            book = m.books[sym]
            n_bids = rng.choice((0, 0, 1, 1, 2))
            n_asks = rng.choice((0, 1, 1, 2)) if n_bids else rng.choice((1, 1, 2))
            changes = [
                f'["buy","{inst.price(p)}","{inst.qty(q)}"]'
                for p, q in m.book_change(inst, book.bids, True, n_bids, 50)
            ] + [
                f'["sell","{inst.price(p)}","{inst.qty(q)}"]'
                for p, q in m.book_change(inst, book.asks, False, n_asks, 50)
            ]
            frames.append(
                f'{{"type":"l2update","product_id":"{sym}","changes":[{",".join(changes)}],'
                f'"time":"{t}"}}'.encode()
            )
    return Tape(frames, seed_frames=seed, symbols=[i.symbol for i in m.instruments])


# -- Kraken ---------------------------------------------------------------------------------
def _kraken_token(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def _kraken_checksum(inst: Instrument, book: _Book) -> int:
    asks = sorted(book.asks.items())[:10]
    bids = sorted(book.bids.items(), reverse=True)[:10]
    text = "".join(_kraken_token(inst.price(p)) + _kraken_token(inst.qty(q)) for p, q in asks)
    text += "".join(_kraken_token(inst.price(p)) + _kraken_token(inst.qty(q)) for p, q in bids)
    return zlib.crc32(text.encode())


def _kraken_levels(inst: Instrument, levels: Sequence[tuple[int, int]]) -> str:
    return ",".join(f'{{"price":{inst.price(p)},"qty":{inst.qty(q)}}}' for p, q in levels)


def kraken_tape(kind: str, n: int) -> Tape:
    """``ticker``, ``trade`` or ``book`` frames of 16 pairs (``book``: depth 10, one
    snapshot per pair to feed first; every update keeps 10 levels a side, so nothing is
    pushed out of the subscribed depth, and carries the checksum of the book after it)."""
    m = _Market(kraken_instruments(), SEED + 30, depth=10)
    rng = m.rng
    frames: list[bytes] = []
    seed: list[bytes] = []
    if kind == "book":
        for inst in m.instruments:
            book = m.books[inst.symbol]
            bids = _kraken_levels(inst, sorted(book.bids.items(), reverse=True))
            asks = _kraken_levels(inst, sorted(book.asks.items()))
            seed.append(
                f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{inst.symbol}",'
                f'"bids":[{bids}],"asks":[{asks}],'
                f'"checksum":{_kraken_checksum(inst, book)}}}]}}'.encode()
            )
    for _ in range(n):
        inst = m.pick()
        sym = inst.symbol
        t = _rfc3339(m.tick_clock(), rng.randint(0, 999))
        if kind == "ticker":
            bid, ask = m.top(inst)
            frames.append(
                f'{{"channel":"ticker","type":"update","data":[{{"symbol":"{sym}",'
                f'"bid":{inst.price(bid)},"bid_qty":{inst.qty(m.size(inst))},'
                f'"ask":{inst.price(ask)},"ask_qty":{inst.qty(m.size(inst))},'
                f'"last":{inst.price(bid)},"volume":{inst.qty(m.size(inst) * 1000)},'
                f'"vwap":{inst.price(inst.mid)},"low":{inst.price(inst.mid - 50 * inst.tick)},'
                f'"high":{inst.price(inst.mid + 50 * inst.tick)},'
                f'"change":{inst.price(3 * inst.tick)},"change_pct":0.42}}]}}'.encode()
            )
        elif kind == "trade":
            items = []
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                bid, ask = m.top(inst)
                buy = rng.random() < 0.5
                m.trade_id[sym] += 1
                items.append(
                    f'{{"symbol":"{sym}","side":"{"buy" if buy else "sell"}",'
                    f'"price":{inst.price(ask if buy else bid)},"qty":{inst.qty(m.size(inst))},'
                    f'"ord_type":"{rng.choice(("market", "limit"))}",'
                    f'"trade_id":{m.trade_id[sym]},"timestamp":"{t}"}}'
                )
            frames.append(
                f'{{"channel":"trade","type":"update","data":[{",".join(items)}]}}'.encode()
            )
        else:
            book = m.books[sym]
            # zero to two changes a side, each keeping 10 levels a side (the subscribed
            # depth): nothing is pushed out, so every level written is one BookUpdate
            parts: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
            while not parts[True] and not parts[False]:
                for bid_side in (True, False):
                    side = book.bids if bid_side else book.asks
                    for _ in range(rng.choice((0, 1, 1, 2))):
                        parts[bid_side] += m.replace_or_modify(inst, side, bid_side)
            frames.append(
                f'{{"channel":"book","type":"update","data":[{{"symbol":"{sym}",'
                f'"bids":[{_kraken_levels(inst, parts[True])}],'
                f'"asks":[{_kraken_levels(inst, parts[False])}],'
                f'"checksum":{_kraken_checksum(inst, book)},"timestamp":"{t}"}}]}}'.encode()
            )
    return Tape(frames, seed_frames=seed, symbols=[i.symbol for i in m.instruments])
