"""Several exchanges from one TOML file, one bus, per-exchange filters and stats.

Two NinjaTrader simulators stand in for two venues. As more plugins are
installed (websocket, FIX, ...), add their `[exchanges.*]` entries the same way.

    python examples/multi_exchange.py --duration 3
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import anyio

from hub_core import ExchangeHub, Quote, Trade, TypedEventBus
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator

CONFIG = """
[hub]
plugins = ["ninjatrader"]

[exchanges.cme_futures]
protocol = "ninjatrader"
endpoint = "{cme}"
symbols = ["ES", "NQ"]

[exchanges.cbot_futures]
protocol = "ninjatrader"
endpoint = "{cbot}"
symbols = ["ZN", "ZB"]
"""


async def main(duration: float) -> None:
    bus = TypedEventBus()
    per_venue: Counter[str] = Counter()
    bus.subscribe(Trade, lambda t: per_venue.update([t.exchange]))
    zn_quotes: list[Quote] = []
    bus.subscribe(Quote, zn_quotes.append, exchange="cbot_futures", symbol="ZN")

    async with (
        NinjaTraderSimulator(["ES", "NQ"], rate=100) as cme,
        NinjaTraderSimulator(["ZN", "ZB"], rate=100) as cbot,
    ):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hub.toml"
            path.write_text(CONFIG.format(cme=cme.endpoint, cbot=cbot.endpoint))
            hub = ExchangeHub.from_toml(path, bus)
        async with hub:
            await anyio.sleep(duration)
            print("status:", {str(k): v for k, v in hub.connection_status().items()})
            stats = hub.event_processor().get_stats()
            for name, s in sorted(stats.per_exchange.items()):
                print(f"{name}: trades={s.trades} quotes={s.quotes} book_updates={s.book_updates}")
            print("trades seen by the subscriber per venue:", dict(per_venue))
            print(f"ZN quotes on cbot_futures: {len(zn_quotes)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=3.0)
    anyio.run(main, ap.parse_args().duration)
