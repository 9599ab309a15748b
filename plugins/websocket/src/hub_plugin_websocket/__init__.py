"""WebSocket plugin of the Exchange Connection Hub: JSON venues over one generic connector.

``protocol = "websocket"``; ``options.dialect`` picks the venue. A dialect
(sans-I/O: subscribe messages, frame parsing, books and sequencing, rate
limits) is registered through this plugin's ``hub_websocket_dialects`` hook;
the built-in ones are ``binance``, ``binance-futures``, ``coinbase`` and ``kraken``
(``dialects/<venue>/``), and vendors add theirs from their own distributions
(sdk-docs/websocket-dialects.md). The dialect contract is in ``codec``.
"""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, HubPluginManager, OrderBook, hookimpl
from hub_plugin_websocket.codec import (
    Ack,
    Dialect,
    DialectSession,
    NeedSnapshot,
    Notice,
    RateLimits,
    Refused,
    Request,
    Resubscribe,
    ServerShutdown,
    SessionConfig,
    SessionCounters,
)
from hub_plugin_websocket.connection import WebSocketConnection
from hub_plugin_websocket.dialects.binance import BinanceDialect, BinanceFuturesDialect
from hub_plugin_websocket.factory import WebSocketFactory
from hub_plugin_websocket.hookspecs import DIALECT_ENTRY_POINT_GROUP
from hub_plugin_websocket.options import WebSocketOptions
from hub_plugin_websocket.registry import DialectRegistry
from hub_plugin_websocket.simulators import BinanceSimulator

__version__ = "0.1.0"

__all__ = [
    "DIALECT_ENTRY_POINT_GROUP",
    "Ack",
    "BinanceDialect",
    "BinanceFuturesDialect",
    "BinanceSimulator",
    "Dialect",
    "DialectRegistry",
    "DialectSession",
    "NeedSnapshot",
    "Notice",
    "OrderBook",
    "RateLimits",
    "Refused",
    "Request",
    "Resubscribe",
    "ServerShutdown",
    "SessionConfig",
    "SessionCounters",
    "WebSocketConnection",
    "WebSocketFactory",
    "WebSocketOptions",
    "hub_addhooks",
    "hub_connection_factories",
]


@hookimpl
def hub_addhooks(pluginmanager: HubPluginManager) -> None:
    """Our extension point, ``hub_websocket_dialects``, on the hub's plugin manager."""
    from hub_plugin_websocket import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def hub_connection_factories(pluginmanager: HubPluginManager) -> list[ConnectionFactory]:
    """The ``websocket`` protocol, with the dialects of every plugin on the hub's manager."""
    return [WebSocketFactory(DialectRegistry(pluginmanager=pluginmanager))]
