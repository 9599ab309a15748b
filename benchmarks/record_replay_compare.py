"""Record and replay: what ``hub replay`` sustains and what ``--record`` costs live.

Replay: a file of ``REPLAY_RECORDS`` DBN trades (zstd, as ``hub run --record``
writes) through ``ExchangeHub.replay`` to one interpreted subscriber, as fast
as possible; the baseline is the same records fed from memory straight into a
sink (the decoder and bus alone: no file, no zstd). Record: the e2e loopback
path (NinjaTrader simulator process -> hub -> subscriber) with and without
``hub.record(DIR)``; the ratio is how much of the live rate recording keeps.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import zstandard

from hub_core import PRICE_SCALE, Trade, TypedEventBus
from hub_core.dbn import encode_metadata, encode_symbol_mapping, encode_trade_raw
from hub_core.hub import ExchangeHub
from hub_core.processor import EventProcessor
from hub_core.registry import ExchangeRegistry

REPLAY_RECORDS = int(os.environ.get("HUB_BENCH_REPLAY_RECORDS", "10000000"))
BLOCK = 100_000
"""Records encoded once and repeated (encoding 10 M one by one is not what is measured)."""
SYMBOLS = {1: "ES", 2: "NQ", 3: "ZN", 4: "CL"}
T0 = 1_764_770_400_000_000_000


def _block() -> bytes:
    out = bytearray()
    for i in range(BLOCK):
        ts = T0 + i
        out += encode_trade_raw(
            1 + i % 4, (5000 + i % 97) * PRICE_SCALE, (1 + i % 5) * PRICE_SCALE, "B", ts, ts, i + 1
        )
    return bytes(out)


def write_file(path: Path, n: int) -> bytes:
    """A recorded-style file of ``n`` trades; returns the records (uncompressed)."""
    head = encode_metadata("bench", None, T0, None, 1, 0, []) + b"".join(
        encode_symbol_mapping(iid, sym, T0) for iid, sym in SYMBOLS.items()
    )
    block = _block()
    repeats = max(1, n // BLOCK)
    with path.open("wb") as fh, zstandard.ZstdCompressor(level=3).stream_writer(fh) as out:
        out.write(head)
        for _ in range(repeats):
            out.write(block)
    return block * repeats


def noop(tick: object) -> None:
    """The one interpreted subscriber both measurements use (as in dbn_compare)."""


def replay_rate(path: Path) -> tuple[float, int]:
    bus = TypedEventBus()
    bus.subscribe(Trade, noop)
    # as `hub replay` runs it: the hub's GC tuning (the memory baseline runs after it too)
    hub = ExchangeHub(bus, registry=ExchangeRegistry(), tune_gc=True)
    t0 = time.perf_counter()
    anyio.run(hub.replay, path)
    dt = time.perf_counter() - t0
    n = hub.event_processor().get_stats().trades_processed  # what reached the bus
    return n / dt, n


def memory_rate(records: bytes) -> float:
    bus = TypedEventBus()
    bus.subscribe(Trade, noop)
    sink = EventProcessor(bus).sink_for("bench")
    for iid, sym in SYMBOLS.items():
        sink.map_symbol(iid, sym)
    chunk = 1 << 20
    t0 = time.perf_counter()
    for i in range(0, len(records), chunk):
        sink.feed_dbn(records[i : i + chunk], 1)
    return len(records) // 48 / (time.perf_counter() - t0)


def bench_record_replay(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.dbn.zst"
        records = write_file(path, REPLAY_RECORDS)
        n = len(records) // 48
        rates = [replay_rate(path) for _ in range(3)]
        mem = memory_rate(records)
        del records
        rate = statistics.median(r for r, _ in rates)
        assert all(got == n for _, got in rates), "replay lost ticks"
        report(
            Result(
                f"hub replay: {n / 1e6:.0f} M trades (zstd file) -> 1 subscriber",
                rate / 1e6,
                "M ticks/s",
                "same records fed from memory (no file, no zstd)",
                mem / 1e6,
                rate / mem,
                ">= 3 M/s",
            )
        )

    from e2e_compare import Simulator, hub_rate

    symbols = ["ES", "NQ", "ZN", "CL"]
    sim = Simulator(symbols, 0.0, True)
    try:
        plain: list[float] = []
        recording: list[float] = []
        for _ in range(3):
            plain.append(anyio.run(hub_rate, sim.endpoint, symbols, 2.0))
            with tempfile.TemporaryDirectory() as tmp:
                recording.append(anyio.run(hub_rate, sim.endpoint, symbols, 2.0, Path(tmp)))
    finally:
        sim.close()
    p, r = statistics.median(plain), statistics.median(recording)
    report(
        Result(
            "e2e loopback with --record (simulator -> hub -> sub)",
            r / 1e6,
            "M ticks/s",
            "the same without recording",
            p / 1e6,
            r / p,
            "ratio >= 0.85 (<= 15 % cost)",
        )
    )
