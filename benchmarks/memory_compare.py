"""Memory per idle connection: many hub connections to one simulator, RSS and
tracemalloc before and after."""

from __future__ import annotations

import gc
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from hub_core import ExchangeConfig, ExchangeHub, TypedEventBus
from hub_core.registry import ExchangeRegistry

CONNECTIONS = 50


def rss_kib() -> int:
    text = Path("/proc/self/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+)", text)
    return int(m.group(1)) if m else 0


async def idle_connections(n: int) -> tuple[float, float]:
    from e2e_compare import Simulator

    import hub_plugin_ninjatrader

    reg = ExchangeRegistry()
    reg.register(hub_plugin_ninjatrader, name="ninjatrader")
    sim = Simulator(["ES"], 0.0, False, max_clients=n + 5)  # its own process
    try:
        return await _measure(reg, sim.endpoint, n)
    finally:
        sim.close()


async def _measure(reg: ExchangeRegistry, endpoint: str, n: int) -> tuple[float, float]:
    async with ExchangeHub(TypedEventBus(), registry=reg) as hub:
        # one warm-up connection so imports and first-use caches are not counted
        await hub.connect_exchange("warm", ExchangeConfig.ninjatrader(endpoint))
        gc.collect()
        tracemalloc.start()
        before_py = tracemalloc.get_traced_memory()[0]
        before_rss = rss_kib()
        for i in range(n):
            await hub.connect_exchange(f"idle{i}", ExchangeConfig.ninjatrader(endpoint))
        await anyio.sleep(0.5)
        gc.collect()
        after_py = tracemalloc.get_traced_memory()[0]
        after_rss = rss_kib()
        tracemalloc.stop()
        return (after_py - before_py) / n / 1024, (after_rss - before_rss) / n


def bench_memory_idle(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    py_kib, rss = anyio.run(idle_connections, CONNECTIONS)
    report(
        Result(
            "idle connection: Python heap allocated by the hub", py_kib, "KiB", target="<= 64 KiB"
        )
    )
    report(Result("idle connection: RSS growth of the hub process", rss, "KiB"))
