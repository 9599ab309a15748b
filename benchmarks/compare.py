"""Side-by-side benchmarks: every figure next to a baseline measured in the same run.

    python benchmarks/compare.py                 # table on stdout
    python benchmarks/compare.py --json out.json # also write name/value/unit/baseline/ratio
    python benchmarks/compare.py --only bus      # one section

This machine is shared and noisy, so each measurement is the median of
several repeats, and targets are judged on ratios measured in one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hub_core
from hub_core import Trade, TypedEventBus
from hub_core.benchloop import CountingHandler, call_loop, publish_generic_loop, publish_loop


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float = 0.0
    ratio: float = 0.0
    target: str = ""


RESULTS: list[Result] = []


def median_time(fn: Callable[[], object], repeats: int = 7) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(r: Result) -> None:
    RESULTS.append(r)
    base = (
        f"  vs {r.baseline}: {r.baseline_value:,.1f} -> ratio {r.ratio:.2f}" if r.baseline else ""
    )
    tgt = f"  [target {r.target}]" if r.target else ""
    print(f"{r.name:<52} {r.value:>14,.1f} {r.unit:<10}{base}{tgt}", flush=True)


def noop(tick: object) -> None:
    pass


def bench_bus() -> None:
    n = 1_000_000
    tick = Trade("bench", "ES", 5_000_000_000_000, 1_000_000_000, "B", 1, 2)

    bare = median_time(lambda: call_loop(noop, tick, n)) / n * 1e9
    report(Result("compiled call of an interpreted no-op handler", bare, "ns/call"))

    counts: dict[int, float] = {}
    for subs in (1, 2, 4):
        bus = TypedEventBus()
        for _ in range(subs):
            bus.subscribe(Trade, noop)
        counts[subs] = median_time(lambda b=bus: publish_loop(b, tick, n)) / n * 1e9
    one = counts[1]
    report(
        Result(
            "bus.publish_trade, 1 interpreted subscriber",
            1e9 / one / 1e6,
            "M pub/s",
            "bare compiled call",
            bare,
            one / bare,
            ">= 9 M/s, ratio <= 1.15",
        )
    )
    per_extra = (counts[4] - counts[1]) / 3
    report(Result("each extra interpreted subscriber", per_extra, "ns", target="<= 75 ns"))

    bus = TypedEventBus()
    bus.subscribe(Trade, noop)
    generic = median_time(lambda: publish_generic_loop(bus, tick, n)) / n * 1e9
    report(Result("bus.publish (type dispatch), 1 subscriber", 1e9 / generic / 1e6, "M pub/s"))

    bus = TypedEventBus()
    h = CountingHandler()
    bus.subscribe(Trade, h)
    compiled = median_time(lambda: publish_loop(bus, tick, n)) / n * 1e9
    report(
        Result(
            "bus.publish_trade, 1 compiled subscriber",
            1e9 / compiled / 1e6,
            "M pub/s",
            target=">= 15 M/s",
        )
    )

    bus = TypedEventBus()
    bus.subscribe(Trade, noop, exchange="bench", symbol="ES")
    filtered = median_time(lambda: publish_loop(bus, tick, n)) / n * 1e9
    report(
        Result(
            "bus.publish_trade, 1 filtered (exchange+symbol) sub", 1e9 / filtered / 1e6, "M pub/s"
        )
    )


def bench_fixed() -> None:
    from decimal import Decimal

    from hub_core import PRICE_SCALE, parse_fixed
    from hub_core.factories import trade_from_text

    texts = [f"{40000 + i * 0.01:.8f}" for i in range(1000)]
    reps = 200

    def ours() -> None:
        for _ in range(reps):
            for s in texts:
                parse_fixed(s)

    def via_decimal() -> None:
        for _ in range(reps):
            for s in texts:
                int(Decimal(s) * PRICE_SCALE)

    n = reps * len(texts)
    a = median_time(ours, 5) / n * 1e9
    b = median_time(via_decimal, 5) / n * 1e9
    report(
        Result("parse_fixed(str) from interpreted code", a, "ns", "int(Decimal(s)*1e9)", b, b / a)
    )

    def factory() -> None:
        for _ in range(reps):
            for s in texts:
                trade_from_text("x", "BTCUSDT", s, "0.5", "B", 1, 2)

    c = median_time(factory, 5) / n * 1e9
    report(Result("trade_from_text (2 numbers parsed + tick built)", c, "ns"))


def _rss_after(code: str) -> float:
    import subprocess

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport re\n"
            "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    return int(out) / 1024


def bench_memory() -> None:
    base = _rss_after("pass")
    core = _rss_after("import hub_core")
    report(
        Result(
            "RSS: python + hub_core imported", core, "MiB", "bare interpreter", base, core / base
        )
    )
    try:
        both = _rss_after("import hub_core, hub_plugin_ninjatrader")
    except Exception:
        return
    report(
        Result(
            "RSS: python + hub_core + ninjatrader plugin",
            both,
            "MiB",
            "bare interpreter",
            base,
            both / base,
            "<= 40 MiB",
        )
    )


def bench_dbn_section() -> None:
    from dbn_compare import bench_dbn

    bench_dbn(report, Result, median_time)


def bench_e2e_section() -> None:
    from e2e_compare import bench_e2e

    bench_e2e(report, Result, median_time)


def bench_idle_section() -> None:
    from memory_compare import bench_memory_idle

    bench_memory_idle(report, Result, median_time)


def bench_websocket_section() -> None:
    from ws_compare import bench_websocket

    bench_websocket(report, Result, median_time)


def bench_ws_e2e_section() -> None:
    from ws_e2e_compare import bench_ws_e2e

    bench_ws_e2e(report, Result, median_time)


def bench_ws_memory_section() -> None:
    from ws_memory_compare import bench_ws_memory

    bench_ws_memory(report, Result, median_time)


def bench_book_section() -> None:
    from book_compare import bench_book

    bench_book(report, Result, median_time)


def bench_databento_section() -> None:
    from databento_compare import bench_databento

    bench_databento(report, Result, median_time)


def bench_fix_section() -> None:
    from fix_compare import bench_fix

    bench_fix(report, Result, median_time)


def bench_ibkr_section() -> None:
    from ibkr_compare import bench_ibkr

    bench_ibkr(report, Result, median_time)


def bench_nats_section() -> None:
    from nats_compare import bench_nats

    bench_nats(report, Result, median_time)


def bench_record_replay_section() -> None:
    from record_replay_compare import bench_record_replay

    bench_record_replay(report, Result, median_time)


SECTIONS: dict[str, Callable[[], None]] = {
    "bus": bench_bus,
    "book": bench_book_section,
    "dbn": bench_dbn_section,
    "fixed": bench_fixed,
    "memory": bench_memory,
    "e2e": bench_e2e_section,
    "idle": bench_idle_section,
    "websocket": bench_websocket_section,
    "ws-e2e": bench_ws_e2e_section,
    "ws-memory": bench_ws_memory_section,
    "fix": bench_fix_section,
    "databento": bench_databento_section,
    "ibkr": bench_ibkr_section,
    "record-replay": bench_record_replay_section,
    "nats": bench_nats_section,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--only", choices=sorted(SECTIONS), action="append")
    args = ap.parse_args()
    gc.collect()
    print(
        f"hub-core {hub_core.__version__} compiled={hub_core.COMPILED} "
        f"python {sys.version.split()[0]}",
        flush=True,
    )
    for name in args.only or list(SECTIONS):
        print(f"\n== {name}", flush=True)
        SECTIONS[name]()
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"compiled": hub_core.COMPILED, "results": [asdict(r) for r in RESULTS]}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
