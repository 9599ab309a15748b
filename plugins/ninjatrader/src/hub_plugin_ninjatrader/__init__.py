"""NinjaTrader 8 plugin of the Exchange Connection Hub.

NinjaTrader has no streaming socket API, so a NinjaScript add-on
(``addon/HubFeedAddOn.cs``) runs inside NinjaTrader and serves its market
data over TCP as DBN records (protocol: sdk-docs/protocols/ninjatrader.md).
This package is the hub's side: the codec, the connection, a loopback
simulator of the add-on, and the hook that registers them.
"""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, hookimpl
from hub_plugin_ninjatrader.codec import PROTOCOL_NAME, PROTOCOL_VERSION
from hub_plugin_ninjatrader.connection import NinjaTraderConnection
from hub_plugin_ninjatrader.factory import NinjaTraderFactory
from hub_plugin_ninjatrader.options import NinjaTraderOptions
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "NinjaTraderConnection",
    "NinjaTraderFactory",
    "NinjaTraderOptions",
    "NinjaTraderSimulator",
    "hub_connection_factories",
]


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    """The ``ninjatrader`` protocol."""
    return [NinjaTraderFactory()]
