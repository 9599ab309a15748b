"""``FixFactory``: what the hub asks for ``protocol = "fix"``."""

from __future__ import annotations

from hub_core.config import ExchangeConfig
from hub_core.contracts import ConnectionFactory, SimulatorSpec
from hub_core.processor import ConnectionSink
from hub_plugin_fix.connection import FixConnection, SessionMemory
from hub_plugin_fix.options import FixOptions
from hub_plugin_fix.simulator import DEFAULT_SYMBOLS, demo_config, serve_simulator
from hub_plugin_fix.store import FileStore, MemoryStore, session_file_name


class FixFactory(ConnectionFactory):
    """FIX 4.2/4.4 (and FIXT.1.1) market-data sessions over TCP or TLS.

    The factory outlives each connection, so it keeps what a FIX session must
    carry across reconnects: the sequence-number store (in memory, or the file
    under ``options.store_path``) and the count of logons refused by silence.
    """

    protocol = "fix"
    options_model = FixOptions
    description = "FIX 4.2/4.4 market data (35=V/W/X) with a compiled receive path"

    def __init__(self) -> None:
        self._memory: dict[tuple[str, str], SessionMemory] = {}

    def create(self, config: ExchangeConfig, sink: ConnectionSink) -> FixConnection:
        """A new, unconnected connection; raises pydantic ``ValidationError`` for bad
        options and ``ConfigError`` for an unusable ``store_path``."""
        options = FixOptions.model_validate(config.options)
        name = session_file_name(
            options.begin_string, options.sender_comp_id, options.target_comp_id
        )
        key = (options.store_path or "", name)
        memory = self._memory.get(key)
        if memory is None:
            store = FileStore(options.store_path, name) if options.store_path else MemoryStore()
            memory = SessionMemory(store)
            self._memory[key] = memory
        return FixConnection(config, sink, options, memory)

    def simulator(self) -> SimulatorSpec:
        """The loopback FIX acceptor (``hub sim fix``, ``hub demo``)."""
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
        )


__all__ = ["FixFactory"]
