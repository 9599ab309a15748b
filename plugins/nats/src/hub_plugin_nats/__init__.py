"""NATS plugin of the Exchange Connection Hub: ticks beyond one machine.

A sink (``[sinks.NAME] kind = "nats"``) publishes every tick of this hub to
``<prefix>.<exchange>.<type>.<symbol>`` as DBN records, several per message, with
per-subject sequence numbers and heartbeats (optionally into a JetStream stream);
a source connection (``protocol = "nats"``) subscribes in another process and
publishes the ticks into that hub's bus under their original exchange names.
The format is sdk-docs/protocols/nats-ticks.md.
"""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, SinkFactory, hookimpl
from hub_plugin_nats.connection import NatsSourceConnection
from hub_plugin_nats.factory import NatsSourceFactory
from hub_plugin_nats.options import NatsSinkOptions, NatsSourceOptions
from hub_plugin_nats.simulator import RemoteHubSimulator
from hub_plugin_nats.sink import NatsSink, NatsSinkFactory

__version__ = "0.1.0"

__all__ = [
    "NatsSink",
    "NatsSinkFactory",
    "NatsSinkOptions",
    "NatsSourceConnection",
    "NatsSourceFactory",
    "NatsSourceOptions",
    "RemoteHubSimulator",
    "hub_connection_factories",
    "hub_sink_factories",
]


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    """The ``nats`` protocol (the source)."""
    return [NatsSourceFactory()]


@hookimpl
def hub_sink_factories() -> list[SinkFactory]:
    """The ``nats`` sink kind."""
    return [NatsSinkFactory()]
