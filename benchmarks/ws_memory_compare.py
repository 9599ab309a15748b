"""Memory per idle websocket connection.

Many hub connections to one Binance simulator (in its own process, so its
memory is not counted), measured with tracemalloc (Python heap) and RSS
before and after, per connection:

- ``hub, null connection``: what the hub itself keeps per connection
  (supervisor, its tasks, sink, config) around a connection that holds nothing;
- ``websocket ...``: a websocket connection with no subscription, through the
  hub, and its *plugin share* (the total minus the hub's own): what the issue's
  target is about, since the hub's part is the same for every protocol.

    python benchmarks/ws_memory_compare.py        # or compare.py --only ws-memory
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from memory_compare import rss_kib

from hub_core import (
    ConnectionFactory,
    ConnectionHealth,
    ExchangeConfig,
    ExchangeHub,
    TypedEventBus,
    hookimpl,
)
from hub_core.processor import ConnectionSink
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


class NullConnection:
    """A connection that holds nothing: it connects at once and waits to be cancelled."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint

    async def connect(self, endpoint: str) -> None:
        pass

    async def subscribe(self, symbols: Sequence[str]) -> None:
        pass

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        pass

    async def run(self) -> None:
        await anyio.sleep_forever()

    async def probe(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(True, self._endpoint, 0, "null")


class NullFactory(ConnectionFactory):
    protocol = "null"

    def create(self, config: ExchangeConfig, sink: ConnectionSink) -> NullConnection:
        return NullConnection(config.endpoint)


class NullPlugin:
    @hookimpl
    def hub_connection_factories(self) -> list[ConnectionFactory]:
        return [NullFactory()]


async def _measure(make: Callable[[], ExchangeConfig], n: int) -> tuple[float, float]:
    import hub_plugin_websocket

    reg = ExchangeRegistry()
    reg.register(hub_plugin_websocket, name="websocket")
    reg.register(NullPlugin(), name="null")
    async with ExchangeHub(TypedEventBus(), registry=reg) as hub:
        await hub.connect_exchange("warm", make())  # imports and first-use caches
        await anyio.sleep(0.2)
        gc.collect()
        tracemalloc.start()
        before_py, before_rss = tracemalloc.get_traced_memory()[0], rss_kib()
        for i in range(n):
            await hub.connect_exchange(f"idle{i}", make())
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

        def null() -> ExchangeConfig:
            return ExchangeConfig(name="null", protocol="null", endpoint=endpoint)

        hub_py, hub_rss = anyio.run(_measure, null, CONNECTIONS)
        report(Result("idle connection: the hub's own part (null connection)", hub_py, "KiB"))
        report(Result("idle connection: the hub's own part, RSS growth", hub_rss, "KiB"))
        cases = (
            ("websockets", {}, "<= 16 KiB"),
            ("websockets + permessage-deflate", {"compression": True}, "<= 50 KiB"),
            ("picows", {"transport": "picows"}, "<= 16 KiB"),
        )
        for label, extra, target in cases:
            options = {"dialect": "binance", "channels": ["trade"], **extra}

            def config(options: dict[str, Any] = options) -> ExchangeConfig:
                return ExchangeConfig.websocket("binance", endpoint, options=dict(options))

            py, rss = anyio.run(_measure, config, CONNECTIONS)
            report(
                Result(
                    f"idle websocket connection, {label}: plugin share (heap)",
                    py - hub_py,
                    "KiB",
                    target=target,
                )
            )
            report(Result(f"idle websocket connection, {label}: total with the hub", py, "KiB"))
            report(Result(f"idle websocket connection, {label}: RSS growth", rss, "KiB"))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    from compare import Result, median_time, report

    bench_ws_memory(report, Result, median_time)
