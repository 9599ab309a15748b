"""``NinjaTraderFactory``: what the hub asks for ``protocol = "ninjatrader"``."""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink
from hub_plugin_ninjatrader.connection import NinjaTraderConnection, split_endpoint
from hub_plugin_ninjatrader.options import NinjaTraderOptions
from hub_plugin_ninjatrader.simulator import DEFAULT_SYMBOLS, serve_simulator


def _demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    return ExchangeConfig.ninjatrader(endpoint, symbols=list(symbols))


class NinjaTraderFactory(ConnectionFactory):
    """Connections to the HubFeed add-on inside NinjaTrader 8 (DBN records over TCP)."""

    protocol = "ninjatrader"
    options_model = NinjaTraderOptions
    description = "NinjaTrader 8 market data via the HubFeed NinjaScript add-on (DBN over TCP)"

    def check_endpoint(self, endpoint: str) -> None:
        """The add-on's address: ``host:port`` or ``[v6]:port``."""
        split_endpoint(endpoint)

    def create(self, config: ExchangeConfig, sink: Sink) -> NinjaTraderConnection:
        """A new, unconnected connection; raises pydantic ``ValidationError`` for bad options."""
        options = NinjaTraderOptions.model_validate(config.options)
        return NinjaTraderConnection(config, sink, options)

    def simulator(self) -> SimulatorSpec:
        """The loopback HubFeed simulator (``hub sim ninjatrader``, ``hub demo``)."""
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=_demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
        )
