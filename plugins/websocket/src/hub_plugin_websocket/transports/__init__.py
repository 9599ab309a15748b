"""The WebSocket transports behind one small interface.

``websockets`` is the default; ``picows`` (the ``fast`` extra) delivers
frames from its protocol callback without a task switch per message. Both
are asyncio libraries, so the plugin runs on anyio's asyncio backend.

A transport only moves frames: it connects (TLS context given), delivers
every text or binary message to ``on_frame(data, ts_recv)`` synchronously,
answers the server's pings, sends text frames and pings, and reports how the
connection ended (``TransportClosed``). Everything venue-specific is in the
dialect; everything about subscriptions is in the connection.
"""

from __future__ import annotations

import abc
import email.utils
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hub_plugin_websocket.options import TransportName

__all__ = [
    "Capacity",
    "ConnectFailed",
    "FrameHandler",
    "Transport",
    "TransportClosed",
    "TransportSettings",
    "new_transport",
    "parse_retry_after",
    "tls_failed",
    "upgrade_refused",
]

MAX_RETRY_AFTER_S = 3600.0
"""A ``Retry-After`` past this is taken as this (a venue's typo must not park the hub
for days; the supervisor's own backoff still applies on top)."""

FrameHandler = Callable[[bytes, int], None]
"""``on_frame(data, ts_recv)``: one complete message; ``ts_recv`` is wall-clock ns."""


class Capacity(Protocol):
    """The sink's back-pressure view (``Sink`` satisfies it)."""

    @property
    def backpressured(self) -> bool: ...

    def add_capacity_waiter(self, wake: Callable[[], object]) -> None: ...


class ConnectFailed(Exception):
    """The connection could not be opened: ``status`` is the HTTP status when the server
    refused the upgrade (``retry_after_s`` its ``Retry-After``, 0 when absent), ``tls``
    is True when the TLS handshake (certificate) failed."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        tls: bool = False,
        retry_after_s: float = 0.0,
    ) -> None:
        self.reason = reason
        self.status = status
        self.tls = tls
        self.retry_after_s = retry_after_s
        super().__init__(reason)


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110 10.2.3); absent or unreadable: 0. Capped at ``MAX_RETRY_AFTER_S``."""
    if value is None:
        return 0.0
    text = value.strip()
    if not text:
        return 0.0
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when.tzinfo is None:  # an HTTP date is GMT even if it fails to say so
        return 0.0
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, wait), MAX_RETRY_AFTER_S)


def upgrade_refused(status: int, retry_after: str | None) -> ConnectFailed:
    """The ``ConnectFailed`` for a server that answered the upgrade with ``status``
    (both transports, direct or proxied, build it here; the connection classifies it)."""
    return ConnectFailed(
        f"HTTP {status} instead of a WebSocket upgrade",
        status=status,
        retry_after_s=parse_retry_after(retry_after),
    )


def tls_failed(exc: ssl.SSLError) -> ConnectFailed:
    """The ``ConnectFailed`` for a TLS handshake that failed (both transports word it so)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectFailed(f"TLS certificate rejected: {exc.verify_message}", tls=True)
    return ConnectFailed(f"TLS handshake failed: {exc}", tls=True)


class TransportClosed(Exception):
    """The connection ended other than by our own ``close()``: ``code`` is the WebSocket
    close code (1006 when the TCP connection just went away), ``reason`` says why."""

    def __init__(self, reason: str, code: int = 1006) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{reason} (close code {code})")


@dataclass(frozen=True)
class TransportSettings:
    """How to open the connection."""

    url: str
    ssl: ssl.SSLContext | None
    """The TLS context for ``wss://`` (always verifying); ``None`` for ``ws://``."""
    max_size: int
    open_timeout: float
    compression: bool = False
    use_proxy: bool = True
    """Honour the environment's proxy settings (never for loopback)."""
    user_agent: str = "hub-plugin-websocket/0.1.0"


class Transport(abc.ABC):
    """One WebSocket connection. Not reusable: one ``connect`` per instance."""

    name: str = ""
    last_activity_ns: int = 0
    """``time.monotonic_ns()`` of the last frame of any kind (data, pong, ping)."""
    bytes_received: int = 0
    """Bytes read from the socket (websockets) or frame payload bytes (picows)."""

    @abc.abstractmethod
    async def connect(self, settings: TransportSettings) -> None:
        """Open TCP (+TLS) and the WebSocket handshake."""

    @abc.abstractmethod
    async def run(self, on_frame: FrameHandler, capacity: Capacity) -> None:
        """Deliver frames until the connection ends. Returns after ``close()``; raises
        ``TransportClosed`` when the peer or the network ended it."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Send one text frame (``data`` is UTF-8 JSON)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Send a ping frame; its pong refreshes ``last_activity_ns``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close (handshake if possible, bounded). Idempotent."""


def new_transport(name: TransportName) -> Transport:
    """A transport by option name; ``picows`` needs the ``fast`` extra."""
    if name == "picows":
        from hub_plugin_websocket.transports.picows_transport import PicowsTransport

        return PicowsTransport()
    from hub_plugin_websocket.transports.websockets_transport import WebsocketsTransport

    return WebsocketsTransport()
