"""``IbkrFactory``: what the hub asks for ``protocol = "ibkr"``."""

from __future__ import annotations

from ib_async import Contract

from hub_core.plugin import ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink, split_host_port
from hub_plugin_ibkr.connection import IbkrConnection
from hub_plugin_ibkr.options import IbkrOptions


class IbkrFactory(ConnectionFactory):
    """Connections to TWS or IB Gateway (``ExchangeConfig.interactive_brokers(addr, id)``)."""

    protocol = "ibkr"
    options_model = IbkrOptions
    description = "Interactive Brokers TWS / IB Gateway (TWS API on ib_async; read-only)"

    def check_endpoint(self, endpoint: str) -> None:
        """``host:port`` or ``[v6]:port`` of TWS / IB Gateway's API socket."""
        split_host_port(endpoint)

    def __init__(self) -> None:
        self._contracts: dict[str, dict[str, Contract]] = {}

    def create(self, config: ExchangeConfig, sink: Sink) -> IbkrConnection:
        """A new, unconnected connection; raises pydantic ``ValidationError`` for bad options.

        Each exchange's sessions share one contract cache: a contract is qualified once
        (its conId kept), not again on every reconnect."""
        options = IbkrOptions.model_validate(config.options)
        cache = self._contracts.setdefault(sink.exchange, {})
        return IbkrConnection(config, options, sink, cache)

    def simulator(self) -> SimulatorSpec:
        """The loopback TWS (``hub sim ibkr``, ``hub demo``)."""
        from hub_plugin_ibkr.simulator import DEFAULT_SYMBOLS, demo_config, serve_simulator

        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
        )
