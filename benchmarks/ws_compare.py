"""WebSocket dialects on real-shaped frames: our dialect -> sink -> bus against the way
Python peers parse (``json.loads`` + ``Decimal`` for every price and size + a plain object
per message), same frames, same run, ratio per case.

    python benchmarks/ws_compare.py                # or compare.py --only websocket
    python benchmarks/ws_compare.py --against main # also the Binance dialect of a git
                                                   # revision, measured in the same run

The frames come from ``ws_frames.py``: Binance USD-M futures ``bookTicker`` / ``aggTrade``
/ ``depthUpdate`` (``pu``, 5-20 levels a side) raw and wrapped in the combined-stream
envelope, a futures mix in which ``bookTicker`` dominates, Binance spot ``bookTicker``,
Coinbase ``ticker`` / ``match`` / ``l2update`` and Kraken v2 ``ticker`` / ``trade`` /
``book``. Books are seeded through the session's snapshot path first, so that every
depth update is applied (none dropped as out of sync).

Each side delivers to one no-op callable: our bus has a no-op subscriber per tick type,
the baseline calls a no-op with each object. Before the timing, both run once with
recording callables and must agree exactly: same ticks in the same order, the same
fixed-point values as ``Decimal(text) * 1e9`` (a depth level is one ``BookUpdate``).
Every timed run of ours must then deliver that many ticks with no gap and nothing
malformed. The benchmark asserts counts and values, never speed.

Times are the thread's CPU time (``time.thread_time``), best of 7 interleaved rounds
per side: on the shared 2-core VM, wall-clock medians moved by +-30 % between runs.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ws_frames import (
    Tape,
    coinbase_tape,
    futures_tape,
    kraken_tape,
    spot_book_ticker_tape,
)

from hub_core import PRICE_SCALE, BookSnapshot, BookUpdate, Quote, Trade, TypedEventBus
from hub_core.hub import tune_gc
from hub_core.processor import ConnectionSink, EventProcessor
from hub_plugin_websocket import BinanceDialect, SessionConfig
from hub_plugin_websocket.dialects import binance as binance_module
from hub_plugin_websocket.dialects.coinbase import CoinbaseDialect
from hub_plugin_websocket.dialects.kraken import KrakenDialect

N_FRAMES = 100_000
N_REAL = 50_000
N_DEPTH = 8_000
REPEATS = 7
TS = 1_718_000_000_000_000_000
_SCALE = Decimal(PRICE_SCALE)
_ROOT = Path(__file__).resolve().parent.parent
_BINANCE_SRC = "plugins/websocket/src/hub_plugin_websocket/dialects/binance"
"""The Binance dialect: ``binance.py`` before it became a package, ``binance/`` since."""
_BINANCE_PACKAGE = "hub_plugin_websocket.dialects.binance."


# -- the short synthetic spot frames of the first version (pytest-benchmark uses them) -----
def trade_frames(n: int = N_FRAMES) -> list[bytes]:
    """Spot ``trade`` payloads as Binance sends them on a raw stream."""
    out = []
    for i in range(n):
        sym = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")[i % 4]
        out.append(
            (
                f'{{"e":"trade","E":{1_700_000_000_000 + i},"s":"{sym}","t":{3_000_000_000 + i},'
                f'"p":"{60000 + (i % 997) / 100:.8f}","q":"{(1 + i % 250) / 1000:.8f}",'
                f'"T":{1_700_000_000_000 + i},"m":{"true" if i % 3 else "false"},"M":true}}'
            ).encode()
        )
    return out


def book_ticker_frames(n: int = N_FRAMES) -> list[bytes]:
    """Spot ``bookTicker`` payloads (no event type, no time)."""
    out = []
    for i in range(n):
        bid = 60000 + (i % 997) / 100
        out.append(
            (
                f'{{"u":{400_900_217 + i},"s":"BTCUSDT","b":"{bid:.8f}",'
                f'"B":"{(1 + i % 90) / 10:.8f}","a":"{bid + 0.01:.8f}",'
                f'"A":"{(1 + i % 70) / 10:.8f}"}}'
            ).encode()
        )
    return out


def noop(tick: object) -> None:
    pass


def dialect_feeder(bus: TypedEventBus) -> Callable[[list[bytes]], None]:
    """Our path: the Binance spot dialect session feeding the hub's sink."""
    sink = EventProcessor(bus).sink_for("binance")
    session = BinanceDialect().new_session(
        sink,
        SessionConfig("wss://stream.binance.com:9443/ws", ("trade", "bookTicker"), "https://x"),
    )
    feed = session.frame_handler()

    def run(frames: list[bytes]) -> None:
        for f in frames:
            feed(f, TS)

    return run


def json_decimal_trades(bus: TypedEventBus) -> Callable[[list[bytes]], None]:
    """The first version's baseline: json.loads, Decimal for every number, a hub Trade."""
    publish = bus.publish_trade

    def run(frames: list[bytes]) -> None:
        for f in frames:
            d = json.loads(f)
            publish(
                Trade(
                    "binance",
                    d["s"],
                    int(Decimal(d["p"]) * _SCALE),
                    int(Decimal(d["q"]) * _SCALE),
                    "A" if d["m"] else "B",
                    d["T"] * 1_000_000,
                    TS,
                    d["t"],
                )
            )

    return run


# -- the baseline: json.loads + Decimal + a plain object per message -----------------------
@dataclass(slots=True)
class TickerMsg:
    """Best bid/ask, the shape cryptofeed's ``Ticker`` has (plus sizes)."""

    exchange: str
    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    timestamp: object
    sequence: int


@dataclass(slots=True)
class TradeMsg:
    exchange: str
    symbol: str
    side: str
    """The aggressor's: ``buy`` or ``sell``."""
    amount: Decimal
    price: Decimal
    timestamp: object
    id: int


@dataclass(slots=True)
class BookDeltaMsg:
    exchange: str
    symbol: str
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    timestamp: object
    sequence: int
    prev_sequence: int


Deliver = Callable[[object], None]
Runner = Callable[[list[bytes]], None]


def baseline_binance(exchange: str, deliver: Deliver) -> Runner:
    """Binance, spot or futures, raw or combined (``{"stream":..,"data":..}``)."""
    loads = json.loads
    D = Decimal

    def run(frames: list[bytes]) -> None:
        for f in frames:
            d = loads(f)
            if "stream" in d:
                d = d["data"]
            e = d.get("e")
            if e == "bookTicker" or e is None:  # spot bookTicker has no "e"
                deliver(
                    TickerMsg(
                        exchange,
                        d["s"],
                        D(d["b"]),
                        D(d["B"]),
                        D(d["a"]),
                        D(d["A"]),
                        d.get("T", 0),
                        d["u"],
                    )
                )
            elif e == "aggTrade" or e == "trade":
                deliver(
                    TradeMsg(
                        exchange,
                        d["s"],
                        "sell" if d["m"] else "buy",
                        D(d["q"]),
                        D(d["p"]),
                        d["T"],
                        d["a"] if e == "aggTrade" else d["t"],
                    )
                )
            elif e == "depthUpdate":
                deliver(
                    BookDeltaMsg(
                        exchange,
                        d["s"],
                        [(D(p), D(q)) for p, q in d["b"]],
                        [(D(p), D(q)) for p, q in d["a"]],
                        d["E"],
                        d["u"],
                        d.get("pu", -1),
                    )
                )

    return run


def baseline_coinbase(exchange: str, deliver: Deliver) -> Runner:
    loads = json.loads
    D = Decimal

    def run(frames: list[bytes]) -> None:
        for f in frames:
            d = loads(f)
            kind = d["type"]
            if kind == "ticker":
                deliver(
                    TickerMsg(
                        exchange,
                        d["product_id"],
                        D(d["best_bid"]),
                        D(d["best_bid_size"]),
                        D(d["best_ask"]),
                        D(d["best_ask_size"]),
                        d["time"],
                        d["sequence"],
                    )
                )
            elif kind == "match":
                deliver(
                    TradeMsg(
                        exchange,
                        d["product_id"],
                        "buy" if d["side"] == "sell" else "sell",  # side is the maker's
                        D(d["size"]),
                        D(d["price"]),
                        d["time"],
                        d["trade_id"],
                    )
                )
            elif kind == "l2update":
                bids, asks = [], []
                for side, p, q in d["changes"]:
                    (bids if side == "buy" else asks).append((D(p), D(q)))
                deliver(BookDeltaMsg(exchange, d["product_id"], bids, asks, d["time"], 0, 0))

    return run


def baseline_kraken(exchange: str, deliver: Deliver) -> Runner:
    """Kraken v2 writes numbers as JSON numbers: ``parse_float=Decimal`` keeps them exact."""
    loads = json.loads
    D = Decimal

    def run(frames: list[bytes]) -> None:
        for f in frames:
            d = loads(f, parse_float=D)
            channel = d.get("channel")
            if channel == "ticker":
                for t in d["data"]:
                    deliver(
                        TickerMsg(
                            exchange,
                            t["symbol"],
                            t["bid"],
                            t["bid_qty"],
                            t["ask"],
                            t["ask_qty"],
                            t.get("timestamp"),
                            0,
                        )
                    )
            elif channel == "trade":
                for t in d["data"]:
                    deliver(
                        TradeMsg(
                            exchange,
                            t["symbol"],
                            t["side"],
                            t["qty"],
                            t["price"],
                            t["timestamp"],
                            t["trade_id"],
                        )
                    )
            elif channel == "book":
                for b in d["data"]:
                    deliver(
                        BookDeltaMsg(
                            exchange,
                            b["symbol"],
                            [(lv["price"], lv["qty"]) for lv in b["bids"]],
                            [(lv["price"], lv["qty"]) for lv in b["asks"]],
                            b["timestamp"],
                            b["checksum"],
                            0,
                        )
                    )

    return run


# -- both sides as comparable tuples ----------------------------------------------------------
def _fx(d: Decimal) -> int:
    v = d * _SCALE
    if v != v.to_integral_value():
        raise AssertionError(f"{d} is not exact at 1e-9")
    return int(v)


def expected_ticks(msg: object) -> Iterable[tuple[object, ...]]:
    """The ticks a baseline object stands for: one per quote/trade, one per depth level."""
    if isinstance(msg, TickerMsg):
        yield ("Q", msg.symbol, _fx(msg.bid), _fx(msg.bid_size), _fx(msg.ask), _fx(msg.ask_size))
    elif isinstance(msg, TradeMsg):
        side = "B" if msg.side == "buy" else "A"
        yield ("T", msg.symbol, side, _fx(msg.price), _fx(msg.amount))
    elif isinstance(msg, BookDeltaMsg):
        for p, q in msg.bids:
            yield ("L", msg.symbol, "B", _fx(p), _fx(q))
        for p, q in msg.asks:
            yield ("L", msg.symbol, "A", _fx(p), _fx(q))


def tick_tuple(tick: object) -> tuple[object, ...]:
    if isinstance(tick, Quote):
        return ("Q", tick.symbol, tick.bid_price, tick.bid_size, tick.ask_price, tick.ask_size)
    if isinstance(tick, Trade):
        return ("T", tick.symbol, tick.side, tick.price, tick.size)
    if isinstance(tick, BookUpdate):
        return ("L", tick.symbol, tick.side, tick.price, tick.size)
    raise AssertionError(f"unexpected tick {tick!r}")


# -- our side: a session seeded so that every frame is applied --------------------------------
Feed = Callable[[bytes, int], object]
SessionMaker = Callable[[ConnectionSink, Tape, types.ModuleType], Feed]


def binance_session(*, futures: bool, wrapped: bool, channels: Sequence[str]) -> SessionMaker:
    """A Binance session subscribed to ``channels`` of every symbol of the tape, each depth
    book seeded from the tape's REST snapshot (``snapshot_received``)."""

    def make(sink: ConnectionSink, tape: Tape, module: types.ModuleType) -> Feed:
        if futures:
            dialect = module.BinanceFuturesDialect()
            host = "wss://fstream.binance.com"
        else:
            dialect = module.BinanceDialect()
            host = "wss://stream.binance.com:9443"
        config = SessionConfig(
            host + ("/stream" if wrapped else "/ws"), tuple(channels), "https://x"
        )
        session = dialect.new_session(sink, config)
        session.subscribe(tape.symbols)
        for symbol, body in tape.snapshots.items():
            if session.snapshot_received(symbol, body, TS) is not None:
                raise AssertionError(f"{symbol}: the seeding snapshot was not taken")
        return session.frame_handler()  # type: ignore[no-any-return]

    return make


def ws_session(dialect_type: type, endpoint: str, channels: Sequence[str]) -> SessionMaker:
    """A Coinbase or Kraken session: subscribed, books seeded from the tape's snapshots."""

    def make(sink: ConnectionSink, tape: Tape, module: types.ModuleType) -> Feed:
        session = dialect_type().new_session(sink, SessionConfig(endpoint, tuple(channels), ""))
        session.subscribe(tape.symbols)
        for frame in tape.seed_frames:
            if session.feed(frame, TS) is not None or sink.gaps or sink.malformed_count:
                raise AssertionError("a seeding snapshot was not taken")
        return session.frame_handler()  # type: ignore[no-any-return]

    return make


@dataclass(frozen=True)
class Case:
    label: str
    exchange: str
    tape: Callable[[], Tape]
    session: SessionMaker
    baseline: Callable[[str, Deliver], Runner]
    target: str = ""
    binance: bool = True
    """Measured against ``--against REV`` too (the Binance dialect's before/after)."""


_FUT = ("aggTrade", "bookTicker", "depth@100ms")
_FUT_TARGET = ">= 4"


def _futures(kind: str, label: str, *, wrapped: bool) -> Case:
    n = N_DEPTH if kind == "depthUpdate" else N_REAL
    return Case(
        f"binance-futures {label}{' (combined)' if wrapped else ' (raw)'}",
        "binance-futures",
        lambda: futures_tape(kind, n, wrapped=wrapped),
        binance_session(futures=True, wrapped=wrapped, channels=_FUT),
        baseline_binance,
        _FUT_TARGET,
    )


def cases() -> list[Case]:
    out = [
        _futures(kind, label, wrapped=w)
        for kind, label in (
            ("bookTicker", "bookTicker"),
            ("aggTrade", "aggTrade"),
            ("depthUpdate", "depthUpdate 5-20/side"),
            ("mix", "mix 86/10/4"),
        )
        for w in (False, True)
    ]
    spot = binance_session(futures=False, wrapped=False, channels=("trade", "bookTicker"))
    out += [
        Case(
            "binance spot bookTicker (raw)",
            "binance",
            lambda: spot_book_ticker_tape(N_REAL, wrapped=False),
            spot,
            baseline_binance,
        ),
        Case(
            "binance spot bookTicker (combined)",
            "binance",
            lambda: spot_book_ticker_tape(N_REAL, wrapped=True),
            binance_session(futures=False, wrapped=True, channels=("trade", "bookTicker")),
            baseline_binance,
        ),
        Case(
            "binance spot trade, short synthetic (raw)",
            "binance",
            lambda: Tape(trade_frames(N_REAL), symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"]),
            spot,
            baseline_binance,
        ),
    ]
    cb = "wss://ws-feed.exchange.coinbase.com"
    for kind, channel in (("ticker", "ticker"), ("match", "matches"), ("l2update", "level2")):
        out.append(
            Case(
                f"coinbase {kind}",
                "coinbase",
                lambda k=kind: coinbase_tape(k, N_REAL),  # type: ignore[misc]
                ws_session(CoinbaseDialect, cb, (channel,)),
                baseline_coinbase,
                binance=False,
            )
        )
    for kind in ("ticker", "trade", "book"):
        out.append(
            Case(
                f"kraken {kind}",
                "kraken",
                lambda k=kind: kraken_tape(k, N_REAL),  # type: ignore[misc]
                ws_session(KrakenDialect, "wss://ws.kraken.com/v2", (kind,)),
                baseline_kraken,
                binance=False,
            )
        )
    return out


# -- running one case -------------------------------------------------------------------------
_clock = time.thread_time
"""CPU time of this thread: on a shared machine, time spent descheduled is not ours."""


def _bus(handler: Callable[[object], None]) -> TypedEventBus:
    bus = TypedEventBus()
    for kind in (Trade, Quote, BookUpdate, BookSnapshot):
        bus.subscribe(kind, handler)
    return bus


def _delivered(sink: ConnectionSink) -> int:
    return sink.trades + sink.quotes + sink.book_updates


def _check_ours(case: Case, tape: Tape, module: types.ModuleType, expected: list[Any]) -> None:
    """Our ticks, in order, must be exactly the baseline's."""
    seen: list[int] = [0]
    bad: list[str] = []

    def compare(tick: object) -> None:
        if isinstance(tick, BookSnapshot):
            return
        i = seen[0]
        seen[0] = i + 1
        if not bad and (i >= len(expected) or tick_tuple(tick) != expected[i]):
            want = expected[i] if i < len(expected) else "nothing"
            bad.append(f"tick {i}: {tick_tuple(tick)} != {want}")

    sink = EventProcessor(_bus(compare)).sink_for(case.exchange)
    feed = case.session(sink, tape, module)
    seen[0] = 0  # the seeding snapshots are not part of the comparison
    for f in tape.frames:
        feed(f, TS)
    if bad or seen[0] != len(expected) or sink.gaps or sink.malformed_count:
        raise AssertionError(
            f"{case.label} ({module.__name__}): {seen[0]} ticks, {len(expected)} expected, "
            f"gaps {sink.gaps}, malformed {sink.malformed_count} {bad}"
        )


def _time_ours(case: Case, tape: Tape, module: types.ModuleType, expected: int) -> float:
    sink = EventProcessor(_bus(noop)).sink_for(case.exchange)
    feed = case.session(sink, tape, module)
    frames = tape.frames
    before = _delivered(sink)
    t0 = _clock()
    for f in frames:
        feed(f, TS)
    dt = _clock() - t0
    got = _delivered(sink) - before
    if got != expected or sink.gaps or sink.malformed_count:
        raise AssertionError(
            f"{case.label}: {got} ticks delivered, {expected} expected "
            f"(gaps {sink.gaps}, malformed {sink.malformed_count})"
        )
    return dt


def _time_baseline(case: Case, tape: Tape) -> float:
    run = case.baseline(case.exchange, noop)
    t0 = _clock()
    run(tape.frames)
    return _clock() - t0


def run_case(
    case: Case,
    report: Callable[[Any], None],
    Result: Any,
    before: types.ModuleType | None = None,
) -> None:
    tape = case.tape()
    n = len(tape.frames)
    objects: list[object] = []
    case.baseline(case.exchange, objects.append)(tape.frames)
    expected = [t for msg in objects for t in expected_ticks(msg)]
    del objects
    contenders: list[types.ModuleType] = [binance_module]
    if before is not None and case.binance:
        contenders.append(before)
    for module in contenders:
        _check_ours(case, tape, module, expected)
    gc.collect()
    ours: dict[str, list[float]] = {m.__name__: [] for m in contenders}
    base: list[float] = []
    # interleaved, so that a noisy neighbour slows every side alike; the first round
    # warms up, and each side's best round counts (noise only ever adds time)
    for rnd in range(REPEATS + 1):
        for module in contenders:
            dt = _time_ours(case, tape, module, len(expected))
            if rnd:
                ours[module.__name__].append(dt)
        dt = _time_baseline(case, tape)
        if rnd:
            base.append(dt)
    base_rate = n / min(base)
    per_frame = len(expected) / n
    for module in contenders:
        rate = n / min(ours[module.__name__])
        label = case.label if module is binance_module else f"  before ({module.__name__})"
        report(
            Result(
                label,
                rate / 1e3,
                "k msgs/s",
                "json+Decimal+object",
                base_rate / 1e3,
                rate / base_rate,
                case.target if module is binance_module else "",
            )
        )
    if per_frame != 1:
        print(f"{'':<4}({per_frame:.1f} ticks per message, {len(expected):,} in all)", flush=True)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(_ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def load_revision(rev: str) -> types.ModuleType:
    """The Binance dialect as it is at git revision ``rev``: the module ``binance.py`` of
    older revisions or the package ``binance/`` of newer ones, imported under its own name
    from a temporary copy. The package's imports of its own modules are pointed at that
    copy; every other import resolves to the installed core and plugin, so only the
    dialect's own code differs."""
    name = "binance_at_" + re.sub(r"\W", "_", rev)
    files = _git("ls-tree", "-r", "--name-only", rev, "--", _BINANCE_SRC + "/").split()
    if files:
        sources = {
            Path(name, path.removeprefix(_BINANCE_SRC + "/")): _git("show", f"{rev}:{path}")
            for path in files
            if path.endswith(".py")
        }
    else:  # before the package
        sources = {Path(f"{name}.py"): _git("show", f"{rev}:{_BINANCE_SRC}.py")}
    where = Path(tempfile.mkdtemp(prefix="ws_compare-"))
    atexit.register(shutil.rmtree, where, True)
    for path, src in sources.items():
        (where / path).parent.mkdir(parents=True, exist_ok=True)
        (where / path).write_text(src.replace(_BINANCE_PACKAGE, f"{name}."), encoding="utf-8")
    sys.path.insert(0, str(where))
    try:
        with warnings.catch_warnings():
            # older revisions import the contract as hub_plugin_websocket.dialect
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    finally:
        sys.path.remove(str(where))


def bench_websocket(
    report: Callable[[Any], None],
    Result: Any,
    median_time: Any,
    *,
    before: types.ModuleType | None = None,
    only: str = "",
) -> None:
    """Messages/s of each dialect and of json.loads + Decimal + object on the same frames."""
    tune_gc()
    for case in cases():
        if only and only not in case.label:
            continue
        run_case(case, report, Result, before)
        gc.collect()


if __name__ == "__main__":
    import argparse

    sys.path.insert(0, str(Path(__file__).parent))
    from compare import Result, median_time, report

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", metavar="REV", help="also the Binance dialect at git REV")
    ap.add_argument("--only", default="", help="cases whose label contains this text")
    args = ap.parse_args()
    before = load_revision(args.against) if args.against else None
    bench_websocket(report, Result, median_time, before=before, only=args.only)
