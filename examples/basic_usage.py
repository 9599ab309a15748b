"""Basic usage: a bus, a hub, one connection, a sync subscriber and an async stream.

Runs against the NinjaTrader simulator on loopback, so it works offline:

    python examples/basic_usage.py --duration 3
"""

from __future__ import annotations

import argparse

import anyio

from hub_core import (
    ExchangeConfig,
    ExchangeHub,
    ExchangeId,
    Quote,
    Trade,
    TypedEventBus,
    format_fixed,
)
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator


async def main(duration: float) -> None:
    bus = TypedEventBus()
    trades: list[Trade] = []

    # A synchronous subscriber runs on the reader's task: keep it short.
    bus.subscribe(Trade, trades.append)
    # An async stream for a consumer on its own task; bounded, keeps the newest per symbol.
    quotes = bus.stream(Quote, maxsize=100, overflow="conflate")

    async with NinjaTraderSimulator(["ES", "NQ"], rate=200) as sim, ExchangeHub(bus) as hub:
        await hub.connect_exchange(ExchangeId.NINJATRADER, ExchangeConfig.ninjatrader(sim.endpoint))
        await hub.subscribe_market_data(ExchangeId.NINJATRADER, ["ES", "NQ"])
        print("status:", {str(k): v for k, v in hub.connection_status().items()})

        with anyio.move_on_after(duration):
            async for q in quotes:
                # prices are ints at 1e-9; format_fixed renders them exactly
                print(f"quote {q.symbol} {format_fixed(q.bid_price)} / {format_fixed(q.ask_price)}")
                await anyio.sleep(0.25)  # a deliberately slow consumer: conflation absorbs it

        stats = hub.event_processor().get_stats()
        print(
            f"trades={stats.trades_processed} quotes={stats.quotes_processed} "
            f"book_updates={stats.book_updates_processed} uptime={stats.uptime():.1f}s"
        )
        print(f"conflated quotes: {quotes.conflated}; last trade: {trades[-1] if trades else None}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=3.0)
    anyio.run(main, ap.parse_args().duration)
