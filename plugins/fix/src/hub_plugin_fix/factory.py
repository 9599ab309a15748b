"""``FixFactory``: what the hub asks for ``protocol = "fix"``."""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink
from hub_plugin_fix.connection import FixConnection, SessionMemory, parse_endpoint
from hub_plugin_fix.options import FixOptions
from hub_plugin_fix.simulator import DEFAULT_SYMBOLS, demo_config, serve_simulator
from hub_plugin_fix.store import (
    MEMORY,
    FileStore,
    MemoryStore,
    default_file_name,
    default_state_dir,
    session_file_name,
)


class FixFactory(ConnectionFactory):
    """FIX 4.2/4.4 (and FIXT.1.1) market-data sessions over TCP or TLS.

    The factory outlives each connection, so it keeps what a FIX session must
    carry across reconnects: the sequence-number store (by default a file in the
    per-user state directory; the file under ``options.store_path``; or memory) and
    the count of logons answered by a hang-up.
    """

    protocol = "fix"
    options_model = FixOptions
    description = "FIX 4.2/4.4 market data (35=V/W/X) with a compiled receive path"

    def __init__(self) -> None:
        self._memory: dict[tuple[str, str], SessionMemory] = {}

    def check_endpoint(self, endpoint: str) -> None:
        """``fix://host:port``, ``fixs://host:port`` or ``host:port`` (IPv6 as
        ``[addr]:port``); raises ``ValueError`` saying what is wrong."""
        parse_endpoint(endpoint)

    def create(self, config: ExchangeConfig, sink: Sink) -> FixConnection:
        """A new, unconnected connection; raises pydantic ``ValidationError`` for bad
        options. The store is opened at ``connect()`` (the default one is named after
        the endpoint connected to); an unusable one raises ``ConfigError`` there."""
        options = FixOptions.model_validate(config.options)
        return FixConnection(
            config, sink, options, lambda endpoint: self._memory_for(options, endpoint)
        )

    def _memory_for(self, options: FixOptions, endpoint: str) -> SessionMemory:
        """The session's store: ``store_path``'s file, memory (``":memory:"``), or by
        default a file per session and venue address in the per-user state directory."""
        names = (options.begin_string, options.sender_comp_id, options.target_comp_id)
        path = options.store_path
        if path == MEMORY:
            key = (MEMORY, session_file_name(*names))
        elif path:
            key = (path, session_file_name(*names))
        else:
            where = parse_endpoint(endpoint)
            key = (str(default_state_dir()), default_file_name(*names, where.host, where.port))
        memory = self._memory.get(key)
        if memory is None:
            store = MemoryStore() if key[0] == MEMORY else FileStore(key[0], key[1])
            memory = SessionMemory(store)
            self._memory[key] = memory
        return memory

    def simulator(self) -> SimulatorSpec:
        """The loopback FIX acceptor (``hub sim fix``, ``hub demo``)."""
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
        )


__all__ = ["FixFactory"]
