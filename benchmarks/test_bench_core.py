"""pytest-benchmark: the core's hot operations, one call per round.

`compare.py` gives the per-operation figures with baselines; these track
regressions with pytest-benchmark's statistics.
"""

from decimal import Decimal
from typing import Any

from hub_core import PRICE_SCALE, Trade, TypedEventBus, parse_fixed, parse_fixed_bytes
from hub_core.benchloop import publish_loop
from hub_core.factories import trade_from_text

N = 10_000
TICK = Trade("bench", "ES", 5_000_000_000_000, 1_000_000_000, "B", 1, 2)


def noop(tick: object) -> None:
    pass


def test_publish_one_subscriber(benchmark: Any) -> None:
    bus = TypedEventBus()
    bus.subscribe(Trade, noop)
    benchmark(publish_loop, bus, TICK, N)


def test_publish_four_subscribers(benchmark: Any) -> None:
    bus = TypedEventBus()
    for _ in range(4):
        bus.subscribe(Trade, noop)
    benchmark(publish_loop, bus, TICK, N)


def test_parse_fixed_str(benchmark: Any) -> None:
    assert benchmark(parse_fixed, "43210.12345678") == 43_210_123_456_780


def test_parse_fixed_bytes(benchmark: Any) -> None:
    assert benchmark(parse_fixed_bytes, b"43210.12345678") == 43_210_123_456_780


def test_parse_decimal_baseline(benchmark: Any) -> None:
    def via_decimal(s: str) -> int:
        return int(Decimal(s) * PRICE_SCALE)

    assert benchmark(via_decimal, "43210.12345678") == 43_210_123_456_780


def test_trade_from_text(benchmark: Any) -> None:
    benchmark(trade_from_text, "x", "BTCUSDT", "43210.12", "0.5", "B", 1, 2)
