"""pytest-benchmark: the websocket plugin's Binance dialect, a batch of frames per round.

``ws_compare.py`` gives frames/s with the ``json.loads`` + ``Decimal`` baseline side by side;
these track regressions with pytest-benchmark's statistics.
"""

from __future__ import annotations

from typing import Any

from ws_compare import (
    _FUT,
    binance_session,
    book_ticker_frames,
    dialect_feeder,
    json_decimal_trades,
    trade_frames,
)
from ws_frames import futures_tape

from hub_core import BookUpdate, Quote, Trade, TypedEventBus
from hub_core.processor import EventProcessor
from hub_plugin_websocket import BinanceDialect, SessionConfig
from hub_plugin_websocket.dialects import binance

N = 10_000
TRADES = trade_frames(N)
TICKERS = book_ticker_frames(N)


def _counting(kind: type) -> tuple[TypedEventBus, list[int]]:
    bus = TypedEventBus()
    seen = [0]

    def count(tick: object) -> None:
        seen[0] += 1

    bus.subscribe(kind, count)
    return bus, seen


def test_dialect_trade_frames(benchmark: Any) -> None:
    bus, seen = _counting(Trade)
    benchmark(dialect_feeder(bus), TRADES)
    assert seen[0] % N == 0 and seen[0] > 0


def test_dialect_book_ticker_frames(benchmark: Any) -> None:
    bus, seen = _counting(Quote)
    benchmark(dialect_feeder(bus), TICKERS)
    assert seen[0] % N == 0 and seen[0] > 0


def test_baseline_json_decimal_trade_frames(benchmark: Any) -> None:
    bus, seen = _counting(Trade)
    benchmark(json_decimal_trades(bus), TRADES)
    assert seen[0] % N == 0 and seen[0] > 0


def test_dialect_depth_updates_on_a_synced_book(benchmark: Any) -> None:
    """Diff-depth events of 10 levels each applied to a synced book, one BookUpdate a level."""
    bus, seen = _counting(BookUpdate)
    sink = EventProcessor(bus).sink_for("binance")
    session = BinanceDialect().new_session(
        sink, SessionConfig("wss://stream.binance.com:9443/ws", ("depth@100ms",), "https://x")
    )
    session.subscribe(["BTCUSDT"])
    session.feed(b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":1,"b":[],"a":[]}', 1)
    session.snapshot_received("BTCUSDT", b'{"lastUpdateId":1,"bids":[],"asks":[]}', 1)
    state = {"u": 1}

    def frames(n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            u = state["u"] + 1
            state["u"] = u
            levels = ",".join(f'["{60000 - (u * 7 + k) % 50}.00","{1 + k}.5"]' for k in range(5))
            asks = ",".join(f'["{60001 + (u * 3 + k) % 50}.00","{2 + k}.25"]' for k in range(5))
            out.append(
                f'{{"e":"depthUpdate","E":{u},"s":"BTCUSDT","U":{u},"u":{u},'
                f'"b":[{levels}],"a":[{asks}]}}'.encode()
            )
        return out

    batch: list[bytes] = []

    def setup() -> tuple[tuple[list[bytes]], dict[str, Any]]:
        batch[:] = frames(1000)
        return (batch,), {}

    feed = session.frame_handler()

    def run(fs: list[bytes]) -> None:
        for f in fs:
            feed(f, 5)

    benchmark.pedantic(run, setup=setup, rounds=20)
    assert sink.gaps == 0 and seen[0] > 0


MIX = futures_tape("mix", N, wrapped=True)


def test_dialect_futures_mix_combined_streams(benchmark: Any) -> None:
    """Real-shaped USD-M futures traffic through /stream (bookTicker, aggTrade, depth diffs
    on books seeded from their snapshots), a fresh session per round."""
    make = binance_session(futures=True, wrapped=True, channels=_FUT)
    sinks: list[Any] = []

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        sink = EventProcessor(TypedEventBus()).sink_for("binance-futures")
        sinks.append(sink)
        return (make(sink, MIX, binance),), {}

    def run(feed: Any) -> None:
        for f in MIX.frames:
            feed(f, 5)

    benchmark.pedantic(run, setup=setup, rounds=10)
    # every frame is a tick or more: 1 per bookTicker/aggTrade, 5-40 per depth update
    for sink in sinks:
        assert sink.gaps == 0 and sink.malformed_count == 0
        assert N <= sink.quotes + sink.trades + sink.book_updates <= 40 * N
        assert sink.quotes > sink.trades > 0 and sink.book_updates > 0
