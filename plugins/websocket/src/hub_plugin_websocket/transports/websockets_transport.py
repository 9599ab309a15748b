"""The ``websockets`` transport (the default): its asyncio client, one ``recv`` per message."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
)
from websockets.version import version as _ws_version

from hub_core.streams import wait_for_capacity
from hub_plugin_websocket.transports import (
    Capacity,
    ConnectFailed,
    FrameHandler,
    Transport,
    TransportClosed,
    TransportSettings,
)

__all__ = ["WebsocketsTransport"]

# websockets >= 15 reads proxy settings from the environment unless told not to
_HAS_PROXY_ARG: Final = int(_ws_version.split(".", 1)[0]) >= 15
_MAX_QUEUE: Final = 256
"""Messages websockets may buffer before it stops reading (TCP then slows the venue)."""
_CLOSE_TIMEOUT_S: Final = 2.0


def describe_close(exc: ConnectionClosed, max_size: int) -> TransportClosed:
    """A ``TransportClosed`` saying who closed and why."""
    if isinstance(exc.__cause__, PayloadTooBig) or (exc.sent is not None and exc.sent.code == 1009):
        return TransportClosed(
            f"a message was larger than max_frame_bytes ({max_size} bytes)", 1009
        )
    if exc.rcvd is not None:
        reason = f": {exc.rcvd.reason}" if exc.rcvd.reason else ""
        return TransportClosed(f"the venue closed the connection{reason}", exc.rcvd.code)
    return TransportClosed("the connection was lost without a close frame", 1006)


class WebsocketsTransport(Transport):
    """``websockets.asyncio.client`` behind the ``Transport`` interface."""

    name = "websockets"

    def __init__(self) -> None:
        self._ws: ClientConnection | None = None
        self._closing = False
        self._max_size = 0

    async def connect(self, settings: TransportSettings) -> None:
        kwargs: dict[str, Any] = {
            "max_size": settings.max_size,
            "open_timeout": settings.open_timeout,
            "close_timeout": _CLOSE_TIMEOUT_S,
            # the connection sends its own pings (keepalive and the hub's probes)
            "ping_interval": None,
            "ping_timeout": None,
            "max_queue": _MAX_QUEUE,
            "compression": "deflate" if settings.compression else None,
            "user_agent_header": settings.user_agent,
        }
        if settings.ssl is not None:
            kwargs["ssl"] = settings.ssl
        if _HAS_PROXY_ARG and not settings.use_proxy:
            kwargs["proxy"] = None
        self._max_size = settings.max_size
        try:
            self._ws = await connect(settings.url, **kwargs)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ConnectFailed(
                f"HTTP {status} instead of a WebSocket upgrade", status=status
            ) from None
        except InvalidURI as exc:
            raise ConnectFailed(f"invalid URL: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            reason = f"TLS certificate rejected: {exc.verify_message}"
            raise ConnectFailed(reason, tls=True) from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS handshake failed: {exc}", tls=True) from None
        except InvalidHandshake as exc:
            raise ConnectFailed(f"WebSocket handshake failed: {exc}") from None
        self.last_activity_ns = time.monotonic_ns()

    async def run(self, on_frame: FrameHandler, capacity: Capacity) -> None:
        ws = self._ws
        if ws is None:
            raise TransportClosed("run() before connect()")
        recv = ws.recv
        monotonic_ns = time.monotonic_ns
        time_ns = time.time_ns
        try:
            while True:
                data = await recv(decode=False)
                self.last_activity_ns = monotonic_ns()
                on_frame(data, time_ns())
                if capacity.backpressured:
                    # a consumer chose overflow="block": stop reading until it catches up
                    await wait_for_capacity(capacity)
        except ConnectionClosed as exc:
            if self._closing:
                return
            raise describe_close(exc, self._max_size) from None

    async def send(self, data: bytes) -> None:
        ws = self._ws
        if ws is None:
            raise TransportClosed("send() before connect()")
        try:
            # text frame: websockets sends bytes as binary, so hand it a str
            await ws.send(data.decode("utf-8"))
        except ConnectionClosed as exc:
            raise describe_close(exc, self._max_size) from None

    async def ping(self) -> None:
        ws = self._ws
        if ws is None:
            raise TransportClosed("ping() before connect()")
        try:
            waiter = asyncio.ensure_future(await ws.ping())
        except ConnectionClosed as exc:
            raise describe_close(exc, self._max_size) from None
        waiter.add_done_callback(self._on_pong)

    def _on_pong(self, fut: asyncio.Future[float]) -> None:
        # retrieve the outcome (a closed connection fails the waiter) so nothing is logged
        if not fut.cancelled() and fut.exception() is None:
            self.last_activity_ns = time.monotonic_ns()

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
