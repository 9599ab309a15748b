"""pytest-benchmark: the FIX receive path, one batch of 35=X messages per round.

`fix_compare.py` gives msgs/s next to simplefix's parser; these track regressions with
pytest-benchmark's statistics.
"""

from typing import Any

import simplefix  # type: ignore[import-untyped]
from fix_compare import Receiver, chunks, x_stream

from hub_plugin_fix.marketdata import MarketDataDecoder
from hub_plugin_fix.scanner import FixReader

N = 2_000
STREAM = x_stream(N)
PARTS = chunks(STREAM)


def test_session_receive_path(benchmark: Any) -> None:
    """Session + scanner + books + ticks published, as a connection runs them."""

    def run() -> Receiver:
        r = Receiver()
        r.feed(PARTS)
        return r

    r = benchmark(run)
    assert r.session.expected_seq == N + 2
    assert r.ticks >= 3 * N  # a trade and two book updates each, plus quotes


def test_scanner_framing_only(benchmark: Any) -> None:
    """Framing, BodyLength/CheckSum and header fields: no market-data decode."""

    def run() -> int:
        reader = FixReader()
        n = 0
        for part in PARTS:
            reader.feed(part, 0)
            while reader.next_frame() is not None:
                n += 1
        return n

    assert benchmark(run) == N


def test_market_data_decode_without_subscribers(benchmark: Any) -> None:
    """Scanner fast path into a sink whose bus has no subscribers."""
    from hub_core import TypedEventBus
    from hub_core.processor import EventProcessor

    sink = EventProcessor(TypedEventBus()).sink_for("bench")

    def run() -> int:
        md = MarketDataDecoder(sink)
        reader = FixReader(md)
        reader.fast = True
        reader.expected_seq = 2
        for part in PARTS:
            reader.feed(part, 0)
            while reader.next_frame() is not None:
                pass
        return md.messages

    assert benchmark(run) == N


def test_simplefix_parser_baseline(benchmark: Any) -> None:
    """simplefix's parser on the same bytes (split into pairs only, no ticks)."""
    parts = chunks(x_stream(300))

    def run() -> int:
        parser = simplefix.FixParser()
        n = 0
        for part in parts:
            parser.append_buffer(part)
            while parser.get_message() is not None:
                n += 1
        return n

    assert benchmark.pedantic(run, rounds=3, iterations=1) == 300
