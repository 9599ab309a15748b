"""FIX plugin of the Exchange Connection Hub: FIX 4.2/4.4 market-data sessions.

The receive path is a zero-copy tag scanner (``scanner``) and a market-data
decoder with local books (``marketdata``), compiled with mypyc; the session
layer (``session``) is sans-I/O; ``connection`` is the thin anyio transport
and ``simulator`` a loopback FIX acceptor. See sdk-docs/protocols/fix.md.
"""

from __future__ import annotations

from pathlib import Path

from hub_core.plugin import ConnectionFactory, hookimpl
from hub_plugin_fix import scanner as _scanner
from hub_plugin_fix.connection import FixConnection
from hub_plugin_fix.factory import FixFactory
from hub_plugin_fix.options import FixOptions
from hub_plugin_fix.session import FixSession
from hub_plugin_fix.simulator import FixSimulator

__version__ = "0.1.0"

COMPILED: bool = Path(_scanner.__file__ or "").suffix in (".so", ".pyd")
"""True when the scanner and market-data decoder run as mypyc-compiled code."""

__all__ = [
    "COMPILED",
    "FixConnection",
    "FixFactory",
    "FixOptions",
    "FixSession",
    "FixSimulator",
    "hub_connection_factories",
]


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    """The ``fix`` protocol."""
    return [FixFactory()]
