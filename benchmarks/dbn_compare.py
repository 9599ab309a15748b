"""DBN decode: our compiled decoder vs a struct.unpack_from decoder and the
official databento-dbn decoder, on the same bytes, in the same run."""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable
from typing import Any

from hub_core import PRICE_SCALE, Trade, TypedEventBus
from hub_core.dbn import encode_trade_raw
from hub_core.hub import tune_gc
from hub_core.processor import EventProcessor

N_RECORDS = 200_000
CHUNK = 64 * 1024
SYMBOLS = {1: "ES", 2: "NQ", 3: "ZN", 4: "CL"}
_TRADE = struct.Struct("<BBHIQqIccBBQiI")  # DBN v3 trade (mbp-0), 48 bytes


def trade_stream(n: int = N_RECORDS) -> bytes:
    out = bytearray()
    for i in range(n):
        iid = 1 + i % 4
        out += encode_trade_raw(
            iid,
            (5000 + i % 97) * PRICE_SCALE,
            (1 + i % 5) * PRICE_SCALE,
            "B" if i % 2 else "A",
            1_700_000_000_000_000_000 + i,
            1_700_000_000_000_000_000 + i,
            i + 1,
        )
    return bytes(out)


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def noop(tick: object) -> None:
    pass


def struct_decoder(bus: TypedEventBus) -> Callable[[bytes], None]:
    """What a careful pure-Python decoder does: unpack_from per record, positional ticks."""
    tail = b""
    unpack = _TRADE.unpack_from
    publish = bus.publish_trade

    def feed(data: bytes) -> None:
        nonlocal tail
        buf = tail + data if tail else data
        pos = 0
        end = len(buf)
        while pos + 48 <= end:
            (_, _, _, iid, ts_event, price, size, _, side, _, _, _, _, seq) = unpack(buf, pos)
            publish(
                Trade(
                    "bench",
                    SYMBOLS[iid],
                    price,
                    size * PRICE_SCALE,
                    side.decode(),
                    ts_event,
                    0,
                    seq,
                )
            )
            pos += 48
        tail = buf[pos:]

    return feed


def bench_dbn(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    data = trade_stream()
    parts = chunks(data)
    n = N_RECORDS

    def ours(subscriber: bool) -> Callable[[], None]:
        bus = TypedEventBus()
        if subscriber:
            bus.subscribe(Trade, noop)
        sink = EventProcessor(bus).sink_for("bench")
        for iid, sym in SYMBOLS.items():
            sink.map_symbol(iid, sym)

        def run() -> None:
            for p in parts:
                sink.feed_dbn(p, 1)

        return run

    bus = TypedEventBus()
    bus.subscribe(Trade, noop)
    feed = struct_decoder(bus)

    def baseline() -> None:
        for p in parts:
            feed(p)

    try:
        import databento_dbn

        def official() -> None:
            dec = databento_dbn.DBNDecoder(has_metadata=False)
            for p in parts:
                dec.write(p)
                for rec in dec.decode():
                    noop(rec)

    except ImportError:  # pragma: no cover - it is in requirements-dev.txt
        official = None  # type: ignore[assignment]

    base = n / median_time(baseline, 5) / 1e6
    with_sub = n / median_time(ours(True), 5) / 1e6
    report(
        Result(
            "DBN trades -> bus, 1 interpreted subscriber (GC default)",
            with_sub,
            "M ticks/s",
            "struct.unpack_from decoder",
            base,
            with_sub / base,
            ">= 3 M/s, ratio >= 2.5",
        )
    )
    if official is not None:
        off = n / median_time(official, 5) / 1e6
        report(
            Result(
                "DBN trades -> bus, 1 interpreted subscriber (GC default)",
                with_sub,
                "M ticks/s",
                "databento-dbn DBNDecoder -> record objects",
                off,
                with_sub / off,
            )
        )
    no_sub = n / median_time(ours(False), 5) / 1e6
    report(Result("DBN trades -> bus, no subscriber", no_sub, "M ticks/s"))

    # the GC as the hub runs it: freeze start-up objects, gen-0 threshold 50k
    thresholds = gc.get_threshold()
    tune_gc()
    tuned = n / median_time(ours(True), 5) / 1e6
    report(
        Result(
            "DBN trades -> bus, 1 subscriber (hub GC tuning)",
            tuned,
            "M ticks/s",
            "GC default",
            with_sub,
            tuned / with_sub,
        )
    )
    gc.disable()
    off_rate = n / median_time(ours(True), 5) / 1e6
    gc.enable()
    report(
        Result("DBN trades -> bus, 1 subscriber (GC disabled, reference)", off_rate, "M ticks/s")
    )
    gc.unfreeze()
    gc.set_threshold(*thresholds)
