"""Interactive Brokers plugin of the Exchange Connection Hub: ``protocol = "ibkr"``.

Market data from TWS or IB Gateway through ``ib_async`` (read-only: it never places
orders), with IB's connectivity and farm codes driving health, Gaps and
resubscription. A loopback TWS (``hub sim ibkr``) speaks the same socket protocol
(sdk-docs/protocols/tws-simulator.md).
"""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, hookimpl
from hub_plugin_ibkr.connection import IbkrConnection
from hub_plugin_ibkr.factory import IbkrFactory
from hub_plugin_ibkr.options import ContractSpec, IbkrOptions
from hub_plugin_ibkr.simulator import TwsSimulator

__version__ = "0.1.0"

__all__ = [
    "ContractSpec",
    "IbkrConnection",
    "IbkrFactory",
    "IbkrOptions",
    "TwsSimulator",
    "hub_connection_factories",
]


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    """The ``ibkr`` protocol."""
    return [IbkrFactory()]
