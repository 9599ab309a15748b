"""Exchange Connection Hub core.

``__all__`` is the application API: ticks, the bus and its streams, the hub,
config, stats, errors, fixed-point helpers and the hook markers. A plugin
imports from ``hub_core.plugin`` (the plugin kit), ``hub_core.simulation`` and
``hub_core.testing``; the kit's names that are also importable from here
(``ConnectionFactory`` and the rest) stay for compatibility, outside
``__all__``. ``COMPILED`` is True when the mypyc-built data plane is
running, False for the pure-Python fallback (``HUB_CORE_PURE=1`` builds).
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hub_core import ticks as _ticks
from hub_core.book import MboBook, OrderBook
from hub_core.bus import Subscription, TypedEventBus
from hub_core.config import Credentials, ExchangeConfig, HubConfig, SinkConfig, load_config
from hub_core.contracts import (
    PLUGIN_API_VERSION as PLUGIN_API_VERSION,
    ConnectionFactory as ConnectionFactory,
    ConnectionHealth as ConnectionHealth,
    ExchangeConnection as ExchangeConnection,
    PluginOptions as PluginOptions,
    SimulatorSpec as SimulatorSpec,
)
from hub_core.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionDead,
    ConnectionFailed,
    DecodeError,
    FrameTooLarge as FrameTooLarge,
    HubError,
    MalformedNumber,
    PluginError,
    ProtocolError,
    RateLimited,
    SequenceMismatch,
    SubscriptionError,
)
from hub_core.fixed import (
    PRICE_SCALE,
    format_fixed,
    parse_fixed,
    parse_fixed_bytes as parse_fixed_bytes,
)
from hub_core.hookspecs import hookimpl, hookspec
from hub_core.hub import ExchangeHub
from hub_core.ids import ExchangeId
from hub_core.processor import ConnectionSink as ConnectionSink, EventProcessor, ProcessorStats
from hub_core.registry import ExchangeRegistry
from hub_core.sinks import SinkStatus
from hub_core.status import ConnectionDetails
from hub_core.streams import EventStream
from hub_core.supervisor import ConnectionManager as ConnectionManager
from hub_core.ticks import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionState,
    ConnectionStateChanged,
    Gap,
    Quote,
    Side,
    Trade,
)

COMPILED: bool = Path(_ticks.__file__ or "").suffix in (".so", ".pyd")
"""True when the hot path runs as mypyc-compiled code."""

try:
    __version__ = version("hub-core")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"


__all__ = [
    "COMPILED",
    "PRICE_SCALE",
    "AuthenticationError",
    "BookClear",
    "BookSnapshot",
    "BookUpdate",
    "ConfigError",
    "ConnectionDead",
    "ConnectionDetails",
    "ConnectionFailed",
    "ConnectionState",
    "ConnectionStateChanged",
    "Credentials",
    "DecodeError",
    "EventProcessor",
    "EventStream",
    "ExchangeConfig",
    "ExchangeHub",
    "ExchangeId",
    "ExchangeRegistry",
    "Gap",
    "HubConfig",
    "SinkConfig",
    "SinkStatus",
    "HubError",
    "MalformedNumber",
    "MboBook",
    "OrderBook",
    "PluginError",
    "ProcessorStats",
    "ProtocolError",
    "Quote",
    "RateLimited",
    "SequenceMismatch",
    "Side",
    "Subscription",
    "SubscriptionError",
    "Trade",
    "TypedEventBus",
    "format_fixed",
    "hookimpl",
    "hookspec",
    "load_config",
    "parse_fixed",
]
