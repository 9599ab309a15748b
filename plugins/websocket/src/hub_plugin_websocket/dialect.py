"""Deprecated alias of ``hub_plugin_websocket.codec``, the dialect contract's module
since the plugin took the common layout (codec.py is every plugin's sans-I/O protocol).

Dialects written against ``hub_plugin_websocket.dialect`` keep working: every name is
the very object of ``codec``. Import from ``hub_plugin_websocket`` (the documented
path) or ``hub_plugin_websocket.codec`` instead.
"""

from __future__ import annotations

import warnings

from hub_plugin_websocket.codec import (
    Ack,
    Dialect,
    DialectEvent,
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

__all__ = [
    "Ack",
    "Dialect",
    "DialectEvent",
    "DialectSession",
    "NeedSnapshot",
    "Notice",
    "RateLimits",
    "Refused",
    "Request",
    "Resubscribe",
    "ServerShutdown",
    "SessionConfig",
    "SessionCounters",
]

warnings.warn(
    "hub_plugin_websocket.dialect is deprecated: import from hub_plugin_websocket "
    "(or hub_plugin_websocket.codec)",
    DeprecationWarning,
    stacklevel=2,
)
