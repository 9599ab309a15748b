"""The websocket plugin's loopback venues, one package on one base (``WebSocketVenue``,
on ``hub_core.simulation.LoopbackVenue``): Binance (spot and futures), Coinbase and
Kraken, each with the kit's market model and async faults. ``hub sim websocket
--dialect NAME`` runs one (``serve_simulator``)."""

from hub_plugin_websocket.simulators.base import (
    E8,
    MALFORMED_TEXT,
    ReplayFrame,
    Stream,
    UpgradeFault,
    WebSocketClient,
    WebSocketLink,
    WebSocketVenue,
    fmt,
    iso_time,
)
from hub_plugin_websocket.simulators.binance import (
    DEFAULT_SYMBOLS,
    MALFORMED,
    BinanceSimulator,
    fmt8,
)
from hub_plugin_websocket.simulators.coinbase import COINBASE_SYMBOLS, CoinbaseSimulator
from hub_plugin_websocket.simulators.kraken import (
    KRAKEN_SYMBOLS,
    KrakenSimulator,
    kraken_checksum,
)
from hub_plugin_websocket.simulators.spec import DIALECTS, serve_simulator, simulator_options

__all__ = [
    "COINBASE_SYMBOLS",
    "DEFAULT_SYMBOLS",
    "DIALECTS",
    "E8",
    "KRAKEN_SYMBOLS",
    "MALFORMED",
    "MALFORMED_TEXT",
    "BinanceSimulator",
    "CoinbaseSimulator",
    "KrakenSimulator",
    "ReplayFrame",
    "Stream",
    "UpgradeFault",
    "WebSocketClient",
    "WebSocketLink",
    "WebSocketVenue",
    "fmt",
    "fmt8",
    "iso_time",
    "kraken_checksum",
    "serve_simulator",
    "simulator_options",
]
