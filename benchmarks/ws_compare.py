"""WebSocket dialect parsing: Binance frames -> published ticks, our dialect vs the way the
best-known Python peer parses (``json.loads`` + ``Decimal``), same frames, same run.

    from ws_compare import bench_websocket
    bench_websocket(report, Result, median_time)      # from compare.py

Both sides publish every tick to the same kind of bus with one no-op subscriber, so the
figure is frame bytes in -> tick delivered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hub_core import PRICE_SCALE, Quote, Trade, TypedEventBus
from hub_core.hub import tune_gc
from hub_core.processor import EventProcessor
from hub_plugin_websocket import BinanceDialect, SessionConfig

N_FRAMES = 100_000
_SCALE = Decimal(PRICE_SCALE)


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
    """Our path: the Binance dialect session feeding the hub's sink."""
    sink = EventProcessor(bus).sink_for("binance")
    session = BinanceDialect().new_session(
        sink,
        SessionConfig("wss://stream.binance.com:9443/ws", ("trade", "bookTicker"), "https://x"),
    )
    feed = session.frame_handler()

    def run(frames: list[bytes]) -> None:
        ts = 1_700_000_000_000_000_000
        for f in frames:
            feed(f, ts)

    return run


def json_decimal_trades(bus: TypedEventBus) -> Callable[[list[bytes]], None]:
    """The peer's way: json.loads, Decimal for every number, positional tick."""
    publish = bus.publish_trade

    def run(frames: list[bytes]) -> None:
        ts = 1_700_000_000_000_000_000
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
                    ts,
                    d["t"],
                )
            )

    return run


def json_decimal_quotes(bus: TypedEventBus) -> Callable[[list[bytes]], None]:
    publish = bus.publish_quote

    def run(frames: list[bytes]) -> None:
        ts = 1_700_000_000_000_000_000
        for f in frames:
            d = json.loads(f)
            publish(
                Quote(
                    "binance",
                    d["s"],
                    int(Decimal(d["b"]) * _SCALE),
                    int(Decimal(d["B"]) * _SCALE),
                    int(Decimal(d["a"]) * _SCALE),
                    int(Decimal(d["A"]) * _SCALE),
                    ts,
                    ts,
                    d["u"],
                )
            )

    return run


def _bus(kind: type, subscribers: int) -> TypedEventBus:
    bus = TypedEventBus()
    for _ in range(subscribers):
        bus.subscribe(kind, noop)
    return bus


def bench_websocket(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    """Frames/s of our dialect and of json.loads + Decimal on the same frames."""
    tune_gc()
    trades, tickers = trade_frames(), book_ticker_frames()
    cases = (
        ("Binance trade frames -> Trade (dialect alone)", trades, Trade, json_decimal_trades, 0,
         ">= 1 M/s, ratio >= 5"),
        ("Binance trade frames -> Trade, 1 no-op subscriber", trades, Trade,
         json_decimal_trades, 1, ""),
        ("Binance bookTicker frames -> Quote (dialect alone)", tickers, Quote,
         json_decimal_quotes, 0, ""),
    )  # fmt: skip
    for label, frames, kind, baseline, subs, target in cases:
        n = len(frames)
        ours = dialect_feeder(_bus(kind, subs))
        theirs = baseline(_bus(kind, subs))
        t_ours = median_time(lambda f=ours, fr=frames: f(fr), 7)  # type: ignore[misc]
        t_theirs = median_time(lambda f=theirs, fr=frames: f(fr), 3)  # type: ignore[misc]
        rate, base_rate = n / t_ours, n / t_theirs
        report(
            Result(
                label,
                rate / 1e6,
                "M frames/s",
                "json.loads + Decimal",
                base_rate / 1e6,
                rate / base_rate,
                target,
            )
        )


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from compare import Result, median_time, report

    bench_websocket(report, Result, median_time)
