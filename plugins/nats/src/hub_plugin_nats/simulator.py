"""A simulated remote hub for ``hub sim nats`` and ``hub demo``: a ``MarketModel``'s
trades and quotes published in the hub's NATS tick format, through the plugin's own
sink, to a nats-server on loopback (it needs one: ``nats-server -js``)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio

from hub_core.plugin import PRICE_SCALE, ConfigError, ExchangeConfig, Quote, SinkConfig, Trade
from hub_core.simulation import (
    Instrument,
    MarketModel,
    OptionParser,
    parse_bool,
    require_loopback,
    simulator_options,
)
from hub_plugin_nats.options import NatsSinkOptions
from hub_plugin_nats.sink import NatsSink

log = logging.getLogger("hub_plugin_nats")

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEFAULT_PORT = 4222
SIM_EXCHANGE = "sim_remote"
"""The exchange name the simulated hub publishes under (``md.sim_remote.>``)."""
TICK = PRICE_SCALE // 100


def server_reachable(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> bool:
    """True when something accepts TCP at ``host:port`` (a quick loopback check)."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class RemoteHubSimulator:
    """Publishes ``symbols``' market (``rate`` events a second each) as exchange
    ``exchange`` to the nats-server at ``host:port``, via a real ``NatsSink``."""

    def __init__(
        self,
        symbols: list[str] | tuple[str, ...] = DEFAULT_SYMBOLS,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        exchange: str = SIM_EXCHANGE,
        prefix: str = "md",
        seed: int = 7,
        jetstream: bool = False,
    ) -> None:
        self.host = require_loopback(host)
        self.port = port or DEFAULT_PORT
        self.exchange = exchange
        self.rate = rate
        self.market = MarketModel(
            [Instrument(s, 100 * PRICE_SCALE, TICK) for s in symbols], seed=seed
        )
        options = NatsSinkOptions(prefix=prefix, publisher=f"sim-{exchange}", jetstream=jetstream)
        self.sink = NatsSink(
            SinkConfig(kind="nats", name="sim", url=f"nats://{self.host}:{self.port}"), options
        )
        self.sent = 0

    async def serve(self, ready: Callable[[str, int], None] | None = None) -> None:
        """Publish until cancelled (a broken link is reopened every second)."""
        await self.sink.open()
        if ready is not None:
            ready(self.host, self.port)
        last = time.monotonic()
        try:
            while True:
                await anyio.sleep(0.01)
                now = time.monotonic()
                ticks = self.ticks(now - last)
                last = now
                if ticks:
                    await self._write(ticks)
        finally:
            with anyio.CancelScope(shield=True):
                await self.sink.close()

    async def _write(self, ticks: list[object]) -> None:
        while True:
            try:
                await self.sink.write(ticks)
                self.sent += len(ticks)
                return
            except ConfigError:
                raise
            except Exception as exc:  # the link broke: reopen, the same batch again
                log.warning("nats simulator: %s", exc)
                await anyio.sleep(1.0)
                try:
                    await self.sink.open()
                except Exception as again:
                    log.warning("nats simulator: %s", again)

    def ticks(self, dt: float) -> list[object]:
        """The market events due after ``dt`` seconds, as ticks."""
        out: list[object] = []
        now = time.time_ns()
        for symbol in self.market.symbols:
            for _ in range(self.market.steps_due(symbol, dt, self.rate)):
                update = self.market.step(symbol)
                if update.trade is not None:
                    t = update.trade
                    out.append(
                        Trade(self.exchange, symbol, t.price, t.size, t.side, now, now, t.trade_id)
                    )
                if update.top_changed:
                    bp, bs, ap, asz = update.top
                    out.append(Quote(self.exchange, symbol, bp, bs, ap, asz, now, now))
        return out


_OPTIONS: dict[str, tuple[OptionParser, str] | None] = {
    "exchange": (str, "an exchange name"),
    "prefix": (str, "a subject prefix"),
    "seed": (int, "a whole number"),
    "jetstream": (parse_bool, "true or false"),
}


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    **options: object,
) -> None:
    """``SimulatorSpec.serve``: host and port are the nats-server's (port 0: 4222)."""
    kwargs: dict[str, Any] = simulator_options("nats", options, _OPTIONS)
    sim = RemoteHubSimulator(symbols or DEFAULT_SYMBOLS, rate, host=host, port=port, **kwargs)
    await sim.serve(ready)


def demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    """The source connection ``hub demo`` makes: every subject of the simulated hub."""
    return ExchangeConfig(
        protocol="nats", endpoint=f"nats://{endpoint}", symbols=[f"md.{SIM_EXCHANGE}.>"]
    )


def sim_config(endpoint: str, symbols: list[str], options: dict[str, str]) -> ExchangeConfig:
    """What ``hub sim nats`` prints to paste."""
    prefix = options.get("prefix", "md")
    exchange = options.get("exchange", SIM_EXCHANGE)
    return ExchangeConfig(
        protocol="nats",
        endpoint=f"nats://{endpoint}",
        symbols=[f"{prefix}.{exchange}.>"],
        options={"prefix": prefix},
    )
