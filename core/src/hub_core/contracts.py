"""What a plugin implements: ``ConnectionFactory`` and ``ExchangeConnection``.

See sdk-docs/writing-a-plugin.md. Everything here stays interpreted (pluggy
and user subclasses need it).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from hub_core.config import ExchangeConfig
    from hub_core.processor import ConnectionSink

PLUGIN_API_VERSION = (1, 0)
"""The plugin API this core offers: (major, minor). A plugin built for the same
major and a minor no greater than this one is compatible."""


@dataclass
class ConnectionHealth:
    """A connection's own view of its health, read by the supervisor."""

    connected: bool = False
    """True while the session is usable. A connection whose socket is up but whose venue
    reports it impaired (IB's 1100: TWS lost its own link) sets it False: the hub then
    shows it unhealthy (``connection_status()``, the live view, metrics) with ``detail``."""
    endpoint: str = ""
    last_activity_ns: int = 0
    """Monotonic ns (``time.monotonic_ns()``) of the last bytes received, any kind."""
    detail: str = ""
    """Why, in a few words, when ``connected`` is False on a live session (shown as
    ``ConnectionDetails.detail``); "" otherwise."""
    bytes_received: int = 0
    """Bytes read from the venue by this connection object (every kind; the hub adds
    up the sessions for ``hub_bytes_received_total``)."""


@runtime_checkable
class ExchangeConnection(Protocol):
    """One live session with one venue, driven by the hub's supervisor.

    The supervisor calls ``connect(endpoint)``, starts ``run()`` in a task, then
    ``subscribe(all symbols)``. ``run()`` reads until the session ends: it
    returns after ``close()`` and raises (``ConnectionFailed``, ``OSError``,
    ``ProtocolError``) when the link drops; ``AuthenticationError`` is never
    retried. Market data goes to the ``ConnectionSink`` the connection was
    created with, synchronously, never to the bus.
    """

    async def connect(self, endpoint: str) -> None:
        """Open the transport and the session (handshake, logon)."""

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe; raise ``SubscriptionError`` naming symbols the venue refused."""

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Unsubscribe (no error for symbols not subscribed)."""

    async def run(self) -> None:
        """Read and dispatch until the session ends."""

    async def probe(self) -> None:
        """Send the protocol's heartbeat or test request (the link looks stale)."""

    async def close(self) -> None:
        """Close the session and the transport. Idempotent."""

    def health(self) -> ConnectionHealth:
        """The connection's health view."""


class PluginOptions(BaseModel):
    """Base for a plugin's ``options`` model: unknown keys are errors.

    A field's docstring (a string literal right after it) becomes its pydantic
    ``description``, which the generated configuration reference shows.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass
class SimulatorSpec:
    """How ``hub sim`` and ``hub demo`` run a plugin's loopback simulator.

    ``serve(host, port, symbols, rate, ready, **options)`` runs the server
    until cancelled and calls ``ready(host, port)`` once it listens (port 0
    picks a free one); ``options`` come from ``hub sim --dialect`` /
    ``--option KEY=VALUE`` (strings; a simulator rejects keys it does not
    know). ``demo_config(endpoint, symbols)`` returns the ``ExchangeConfig``
    that connects to it.
    """

    serve: Callable[..., Awaitable[None]]
    demo_config: Callable[[str, list[str]], ExchangeConfig]
    default_symbols: list[str] = field(default_factory=list)
    default_rate: float = 100.0
    sim_config: Callable[[str, list[str], dict[str, str]], ExchangeConfig] | None = None
    """The config that connects to the simulator as ``hub sim`` ran it with these
    options (``--dialect``, ``-o``): what ``hub sim`` prints to paste into hub.toml.
    Default: ``demo_config``, for a simulator whose options do not change it."""


class ConnectionFactory(abc.ABC):
    """Creates connections for one ``protocol``. Returned by ``hub_connection_factories``."""

    protocol: str = ""
    """The ``protocol`` value in TOML that this factory serves."""
    options_model: type[BaseModel] = PluginOptions
    """Validates ``ExchangeConfig.options``."""
    api_version: tuple[int, int] = PLUGIN_API_VERSION
    """The plugin API version this plugin was built for."""
    description: str = ""

    def validate_options(self, config: ExchangeConfig) -> BaseModel:
        """The plugin's options model for ``config`` (raises pydantic ``ValidationError``)."""
        return self.options_model.model_validate(config.options)

    def stale_after_ms(self, config: ExchangeConfig) -> int:
        """How long a live link of ``config`` may be silent before the hub probes it and
        then recycles it: by default ``config.stale_after_ms``. A protocol whose venue
        has no ping and only sends heartbeats at an interval of its own (Databento)
        returns at least that interval plus a margin when the user did not set it."""
        return config.stale_after_ms

    def check_endpoint(self, endpoint: str) -> None:
        """Raise ``ValueError`` (its message says what is wrong) for an endpoint this
        plugin cannot dial. Called by ``hub check`` and before connecting, for the
        endpoint and every backup, so a typo fails at once instead of retrying."""
        if not endpoint:
            raise ValueError("endpoint must not be empty")

    @abc.abstractmethod
    def create(self, config: ExchangeConfig, sink: ConnectionSink) -> ExchangeConnection:
        """A new, unconnected connection delivering to ``sink``."""

    def simulator(self) -> SimulatorSpec | None:
        """The plugin's loopback simulator, if it ships one."""
        return None

    def venues(self) -> Mapping[str, Mapping[str, str]]:
        """Venue names this factory serves through its options, mapped to those options.

        A plugin that serves several venues (the websocket plugin's dialects) returns
        e.g. ``{"binance": {"dialect": "binance"}}``: then ``protocol = "binance"``
        gets the hint to write ``protocol = "websocket"`` with that option, and
        ``hub sim binance`` runs this plugin's simulator with it.
        """
        return {}
