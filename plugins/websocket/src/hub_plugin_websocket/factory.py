"""``WebSocketFactory``: what the hub asks for ``protocol = "websocket"``."""

from __future__ import annotations

from hub_core.plugin import ConfigError, ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink
from hub_plugin_websocket.connection import ConnectPacer, WebSocketConnection
from hub_plugin_websocket.options import WebSocketOptions
from hub_plugin_websocket.registry import DialectRegistry
from hub_plugin_websocket.simulators import DEFAULT_SYMBOLS, serve_simulator
from hub_plugin_websocket.simulators.coinbase import COINBASE_SYMBOLS
from hub_plugin_websocket.simulators.kraken import KRAKEN_SYMBOLS
from hub_plugin_websocket.urls import check_stream_url

__all__ = ["DEMO_CHANNELS", "WebSocketFactory"]

DEMO_CHANNELS = ("trade", "bookTicker", "depth@100ms")
"""What ``hub demo`` subscribes on the simulator."""


def _demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    return ExchangeConfig.websocket(
        "binance",
        f"ws://{endpoint}/ws",
        symbols=list(symbols),
        options={"dialect": "binance", "channels": list(DEMO_CHANNELS)},
    )


def _sim_config(endpoint: str, symbols: list[str], options: dict[str, str]) -> ExchangeConfig:
    """What connects to ``hub sim websocket --dialect D`` (the venue's own symbols and
    stream path; channels: the dialect's defaults, except Binance's demo set)."""
    dialect = options.get("dialect", "binance")
    if dialect in ("binance", "binance-futures"):
        cfg = _demo_config(endpoint, symbols)
        return cfg.model_copy(update={"options": {**cfg.options, "dialect": dialect}})
    venue = {"coinbase": (COINBASE_SYMBOLS, "/"), "kraken": (KRAKEN_SYMBOLS, "/v2")}
    own, path = venue.get(dialect, ((), "/"))
    if list(symbols) == list(DEFAULT_SYMBOLS) and own:
        symbols = list(own)  # hub sim's stand-in for "no --symbols": the venue's own
    return ExchangeConfig.websocket(
        dialect, f"ws://{endpoint}{path}", symbols=list(symbols), options={"dialect": dialect}
    )


class WebSocketFactory(ConnectionFactory):
    """Connections to JSON-over-WebSocket venues; the venue is ``options.dialect``.

    ``dialects`` is the registry of installed dialects (built-ins and the
    ``hub.websocket_dialects`` entry points); register more in-process with
    ``factory.dialects.register(module)``.
    """

    protocol = "websocket"
    options_model = WebSocketOptions
    description = "JSON-over-WebSocket venues (Binance, Coinbase, Kraken) via dialects"

    def __init__(self, dialects: DialectRegistry | None = None) -> None:
        self.dialects = dialects if dialects is not None else DialectRegistry()
        # one per factory: every connection it makes counts against the venue's limit
        self._pacer = ConnectPacer()

    def validate_options(self, config: ExchangeConfig) -> WebSocketOptions:
        """The options, with ``dialect``/``channels`` checked against the installed dialects;
        the endpoints and symbols are checked too (``ConfigError`` naming the key)."""
        options = WebSocketOptions.model_validate(
            config.options, context={"dialects": self.dialects}
        )
        dialect = self.dialects.get(options.dialect)
        where = f"exchanges.{config.name}" if config.name else "exchange"
        for i, url in enumerate(config.endpoints):
            key = "endpoint" if i == 0 else f"backup_endpoints[{i - 1}]"
            try:
                check_stream_url(url)
                dialect.validate_endpoint(url)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}.{key}: {exc}",
                    exchange=config.name,
                    hint="write the venue's stream URL, e.g. wss://stream.binance.com:9443/ws",
                ) from None
        for symbol in config.symbols:
            try:
                dialect.validate_symbol(symbol)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}.symbols: {exc}",
                    exchange=config.name,
                    hint="use the venue's own symbols, upper case (e.g. BTCUSDT)",
                ) from None
        return options

    def venues(self) -> dict[str, dict[str, str]]:
        """Every installed dialect is a venue: ``protocol = "binance"`` means this plugin."""
        return {name: {"dialect": name} for name in self.dialects.names()}

    def create(self, config: ExchangeConfig, sink: Sink) -> WebSocketConnection:
        """A new, unconnected connection delivering to ``sink``."""
        options = self.validate_options(config)
        return WebSocketConnection(
            config, sink, options, self.dialects.get(options.dialect), self._pacer
        )

    def simulator(self) -> SimulatorSpec:
        """The loopback Binance simulator (``hub sim websocket``, ``hub demo``)."""
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=_demo_config,
            sim_config=_sim_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=50.0,
        )
