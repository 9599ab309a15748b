"""Memory per idle websocket connection: many hub connections to one Binance
simulator (in its own process), Python heap and RSS before and after, without
and with permessage-deflate."""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
from memory_compare import rss_kib

from hub_core import ExchangeConfig, ExchangeHub, TypedEventBus
from hub_core.registry import ExchangeRegistry

CONNECTIONS = 40
SIM = """
import anyio
from hub_plugin_websocket.simulator import BinanceSimulator
async def main():
    async with BinanceSimulator(["BTCUSDT"], 0.0) as sim:
        print(sim.endpoint, flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


async def _measure(endpoint: str, n: int, compression: bool) -> tuple[float, float]:
    import hub_plugin_websocket

    reg = ExchangeRegistry()
    reg.register(hub_plugin_websocket, name="websocket")
    options = {"dialect": "binance", "channels": ["trade"], "compression": compression}

    def config() -> ExchangeConfig:
        return ExchangeConfig.websocket("binance", endpoint, options=dict(options))

    async with ExchangeHub(TypedEventBus(), registry=reg) as hub:
        await hub.connect_exchange("warm", config())  # imports and first-use caches
        gc.collect()
        tracemalloc.start()
        before_py, before_rss = tracemalloc.get_traced_memory()[0], rss_kib()
        for i in range(n):
            await hub.connect_exchange(f"idle{i}", config())
        await anyio.sleep(0.5)
        gc.collect()
        after_py, after_rss = tracemalloc.get_traced_memory()[0], rss_kib()
        tracemalloc.stop()
    return (after_py - before_py) / n / 1024, (after_rss - before_rss) / n


def bench_ws_memory(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SIM], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        for compression, target in ((False, "<= 16 KiB"), (True, "<= 50 KiB")):
            py, rss = anyio.run(_measure, endpoint, CONNECTIONS, compression)
            label = "with" if compression else "without"
            report(
                Result(
                    f"idle websocket connection {label} deflate: Python heap",
                    py,
                    "KiB",
                    target=target,
                )
            )
            report(Result(f"idle websocket connection {label} deflate: RSS growth", rss, "KiB"))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    from compare import Result, median_time, report

    bench_ws_memory(report, Result, median_time)
