"""Soak: run the hub against the NinjaTrader simulator at ~100 k ticks/s and
watch RSS. Not part of `make test` (it runs for minutes).

    python benchmarks/soak.py --minutes 5 --rate 31000

Prints RSS every 10 s and, at the end, the growth between the first and the
second half of the run (a leak shows as steady growth; allocator warm-up does
not).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from e2e_compare import Simulator, _registry
from memory_compare import rss_kib

from hub_core import ExchangeConfig, ExchangeHub, Quote, Trade, TypedEventBus


async def soak(minutes: float, rate: float) -> int:
    symbols = ["ES", "NQ", "ZN", "CL"]
    sim = Simulator(symbols, rate, False)
    bus = TypedEventBus()
    count = [0]

    def on_tick(tick: object) -> None:
        count[0] += 1

    bus.subscribe(Trade, on_tick)
    bus.subscribe(Quote, on_tick)
    samples: list[tuple[float, int]] = []
    try:
        async with ExchangeHub(bus, registry=_registry()) as hub:
            cfg = ExchangeConfig.ninjatrader(sim.endpoint, symbols=symbols)
            await hub.connect_exchange("soak", cfg)
            t0 = time.monotonic()
            last = 0
            while time.monotonic() - t0 < minutes * 60:
                await anyio.sleep(10)
                elapsed = time.monotonic() - t0
                rss = rss_kib()
                samples.append((elapsed, rss))
                print(
                    f"{elapsed:6.0f} s  rss {rss / 1024:7.1f} MiB  "
                    f"{(count[0] - last) / 10 / 1e3:6.1f} k ticks/s",
                    flush=True,
                )
                last = count[0]
    finally:
        sim.close()
    half = len(samples) // 2
    if half:
        first = statistics.median(r for _, r in samples[:half])
        second = statistics.median(r for _, r in samples[half:])
        print(f"median RSS first half {first / 1024:.1f} MiB, second half {second / 1024:.1f} MiB")
        print(f"growth {((second - first) / 1024):+.2f} MiB over {minutes} min; ticks {count[0]:,}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=31_000.0, help="events per symbol per second")
    args = ap.parse_args()
    raise SystemExit(anyio.run(soak, args.minutes, args.rate))
