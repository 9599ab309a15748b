"""Databento plugin of the Exchange Connection Hub.

Live market data from Databento's gateway through the official ``databento``
client: the client authenticates and subscribes, and the record stream goes, as
raw DBN, into the hub's compiled data plane. A loopback gateway simulator
(``hub sim databento``) serves the same protocol offline
(sdk-docs/protocols/databento-gateway.md).
"""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, hookimpl
from hub_plugin_databento.connection import DatabentoConnection
from hub_plugin_databento.factory import DatabentoFactory
from hub_plugin_databento.options import DatabentoOptions
from hub_plugin_databento.simulator import GatewaySimulator

__version__ = "0.1.0"

__all__ = [
    "DatabentoConnection",
    "DatabentoFactory",
    "DatabentoOptions",
    "GatewaySimulator",
    "hub_connection_factories",
]


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    """The ``databento`` protocol."""
    return [DatabentoFactory()]
