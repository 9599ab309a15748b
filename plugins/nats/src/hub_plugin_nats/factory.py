"""``NatsSourceFactory``: what the hub asks for ``protocol = "nats"``."""

from __future__ import annotations

import logging

from hub_core.plugin import ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink
from hub_plugin_nats.client import check_url
from hub_plugin_nats.connection import NatsSourceConnection, SourceState
from hub_plugin_nats.options import NatsSourceOptions
from hub_plugin_nats.simulator import (
    DEFAULT_PORT,
    DEFAULT_SYMBOLS,
    demo_config,
    serve_simulator,
    server_reachable,
    sim_config,
)

log = logging.getLogger("hub_plugin_nats")


class NatsSourceFactory(ConnectionFactory):
    """Connections that bring another hub's ticks in from NATS subjects."""

    protocol = "nats"
    options_model = NatsSourceOptions
    description = "ticks of other hubs from NATS subjects (wildcards; JetStream replay)"

    def __init__(self) -> None:
        self._states: dict[str, SourceState] = {}

    def check_endpoint(self, endpoint: str) -> None:
        """``nats://host:port`` or ``tls://host:port``, one server (more in
        ``backup_endpoints``)."""
        check_url(endpoint)

    def create(self, config: ExchangeConfig, sink: Sink) -> NatsSourceConnection:
        """A new, unconnected source; its sequence state outlives the session."""
        options = NatsSourceOptions.model_validate(config.options)
        state = self._states.setdefault(sink.exchange, SourceState(options.stale_factor))
        return NatsSourceConnection(config, sink, options, state)

    def source_state(self, exchange: str) -> SourceState | None:
        """The sequence and heartbeat state of source ``exchange`` (None: never created)."""
        return self._states.get(exchange)

    def simulator(self) -> SimulatorSpec | None:
        """A simulated remote hub publishing to the local nats-server; None (with one
        log line) when none listens on 127.0.0.1:4222, so ``hub demo`` runs without."""
        if not server_reachable("127.0.0.1", DEFAULT_PORT):
            log.warning(
                "nats: no nats-server on 127.0.0.1:%d, so the NATS simulator is skipped "
                "(start one: nats-server -js)",
                DEFAULT_PORT,
            )
            return None
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
            sim_config=sim_config,
        )
