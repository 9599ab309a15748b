"""NinjaTrader integration: credentials, failover, state changes, gaps, unsubscribe.

The NinjaScript add-on (plugins/ninjatrader/addon/) serves the HubFeed
protocol from inside NinjaTrader 8; here the plugin's simulator stands in for
it. The primary endpoint is down, so the hub fails over to the backup; then
the simulator drops the connection and the hub reconnects, resubscribes and
publishes a Gap for the blind window.

    NT_USER=trader NT_PASSWORD=secret python examples/ninjatrader_integration.py
"""

from __future__ import annotations

import argparse
import os
import socket

import anyio

from hub_core import (
    ConnectionStateChanged,
    Credentials,
    ExchangeConfig,
    ExchangeHub,
    Gap,
    Trade,
    TypedEventBus,
)
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator


def unused_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(duration: float) -> None:
    user = os.environ.get("NT_USER", "trader")
    password = os.environ.get("NT_PASSWORD", "secret")
    bus = TypedEventBus()
    bus.subscribe(ConnectionStateChanged, lambda e: print(f"state  {e.state:<12} {e.reason}"))
    bus.subscribe(
        Gap, lambda g: print(f"gap    {(g.end_ts - g.start_ts) / 1e6:.1f} ms: {g.reason}")
    )
    es_trades: list[Trade] = []
    bus.subscribe(Trade, es_trades.append, symbol="ES")

    async with NinjaTraderSimulator(["ES", "NQ"], rate=100, users={user: password}) as sim:
        config = ExchangeConfig.ninjatrader(
            f"127.0.0.1:{unused_loopback_port()}",  # primary: nothing listens there
            backup_endpoints=[sim.endpoint],
            credentials=Credentials(username=user, password=password),
            symbols=["ES", "NQ"],
            reconnect_delay_ms=100,
            reconnect_max_delay_ms=1_000,
            stale_after_ms=5_000,
        )
        async with ExchangeHub(bus) as hub:
            await hub.connect_exchange("es_feed", config)
            await anyio.sleep(duration / 3)
            print(f"ES trades so far: {len(es_trades)}; dropping the connection")
            await sim.drop_connections()
            await anyio.sleep(duration / 3)
            await hub.unsubscribe_market_data("es_feed", ["NQ"])
            await anyio.sleep(duration / 3)
            s = hub.event_processor().get_stats().per_exchange["es_feed"]
            print(f"es_feed: trades={s.trades} gaps={s.gaps} reconnects={s.reconnects}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=3.0)
    anyio.run(main, ap.parse_args().duration)
