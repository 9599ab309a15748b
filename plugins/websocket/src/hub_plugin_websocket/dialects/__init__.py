"""The built-in dialects. They register through ``hub_websocket_dialects`` like a
third party's would (``DialectRegistry`` registers this module)."""

from __future__ import annotations

from hub_core.plugin import hookimpl
from hub_plugin_websocket.codec import Dialect
from hub_plugin_websocket.dialects.binance import BinanceDialect, BinanceFuturesDialect
from hub_plugin_websocket.dialects.coinbase import CoinbaseDialect
from hub_plugin_websocket.dialects.kraken import KrakenDialect

__all__ = [
    "BinanceDialect",
    "BinanceFuturesDialect",
    "CoinbaseDialect",
    "KrakenDialect",
    "hub_websocket_dialects",
]


@hookimpl
def hub_websocket_dialects() -> list[Dialect]:
    """``binance`` (spot), ``binance-futures`` (USD-M), ``coinbase`` and ``kraken`` (v2)."""
    return [BinanceDialect(), BinanceFuturesDialect(), CoinbaseDialect(), KrakenDialect()]
