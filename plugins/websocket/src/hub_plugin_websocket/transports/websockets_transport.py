"""The ``websockets`` transport (the default).

``websockets`` does the handshake, TLS, framing, deflate and the close
handshake. Messages do not go through its ``recv()`` queue: a
``ClientConnection`` subclass (the library's documented customisation point,
``connect(create_connection=...)``) hands every data frame to the connection
from ``data_received``, as picows does, so there is no queue, no task switch
and no clock read per message (``ts_recv`` is read once per socket read).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
)
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.version import version as _ws_version

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
_CLOSE_TIMEOUT_S: Final = 2.0
_EARLY_LIMIT: Final = 10_000
"""Messages kept while nobody runs ``run()`` yet (frames can arrive right after the
handshake, e.g. streams named in the URL); past it the connection is failed."""
_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT


def _deflate() -> ClientPerMessageDeflateFactory:
    """permessage-deflate as a market-data client wants it: the venue keeps its context
    (small messages compress well only with it), ours is reset after each of our rare
    control messages, so an idle connection holds no compressor (zlib's is ~40 KiB)."""
    return ClientPerMessageDeflateFactory(
        client_no_context_takeover=True,
        compress_settings={"memLevel": 5},
    )


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


class _DeliveringConnection(ClientConnection):
    """A ``ClientConnection`` that delivers messages synchronously to ``on_frame``."""

    # slots: an idle connection should not pay for a per-instance dict
    __slots__ = (
        "_parts",
        "_ts",
        "capacity",
        "early",
        "on_frame",
        "owner",
        "paused",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_frame: FrameHandler | None = None
        self.capacity: Capacity | None = None
        self.early: list[tuple[bytes, int]] | None = []
        self.owner: WebsocketsTransport | None = None
        self.paused = False
        self._parts: list[bytes] = []
        self._ts = 0

    def data_received(self, data: bytes) -> None:
        # one clock reading per socket read: every message in it was received then
        self._ts = time.time_ns()
        owner = self.owner
        if owner is not None:
            owner.last_activity_ns = time.monotonic_ns()
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if self.response is None or type(event) is not Frame:
            super().process_event(event)  # the handshake response
            return
        opcode = event.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if event.fin:
                self._deliver(bytes(event.data))
            else:
                self._parts = [bytes(event.data)]
        elif opcode is _CONT:
            # websockets enforces max_size over the fragments of one message
            if self._parts:
                self._parts.append(bytes(event.data))
                if event.fin:
                    data = b"".join(self._parts)
                    self._parts = []
                    self._deliver(data)
        else:
            super().process_event(event)  # pongs complete ping waiters

    def _deliver(self, data: bytes) -> None:
        handler = self.on_frame
        if handler is None:
            early = self.early
            if early is not None:
                if len(early) >= _EARLY_LIMIT:
                    self.early = None
                    self.transport.abort()
                    return
                early.append((data, self._ts))
            return
        handler(data, self._ts)
        capacity = self.capacity
        if capacity is not None and not self.paused and capacity.backpressured:
            # a consumer chose overflow="block": stop reading the socket until it catches up
            self.paused = True
            self.transport.pause_reading()
            capacity.add_capacity_waiter(self._resume)

    def _resume(self) -> None:
        self.paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()


class WebsocketsTransport(Transport):
    """``websockets.asyncio.client`` behind the ``Transport`` interface."""

    name = "websockets"

    def __init__(self) -> None:
        self._ws: _DeliveringConnection | None = None
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
            "compression": None,
            "extensions": [_deflate()] if settings.compression else None,
            "user_agent_header": settings.user_agent,
            "create_connection": _DeliveringConnection,
        }
        if settings.ssl is not None:
            kwargs["ssl"] = settings.ssl
        if _HAS_PROXY_ARG and not settings.use_proxy:
            kwargs["proxy"] = None
        self._max_size = settings.max_size
        try:
            ws = await connect(settings.url, **kwargs)
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
        assert isinstance(ws, _DeliveringConnection)
        # the handshake's headers are checked by now; kept, they are 3.5 KiB of every idle
        # connection (the response object itself must stay: it marks the handshake done)
        ws.request = None
        if ws.response is not None:
            ws.response = dataclasses.replace(ws.response, headers=Headers(), body=b"")
        ws.owner = self
        self._ws = ws
        self.last_activity_ns = time.monotonic_ns()

    async def run(self, on_frame: FrameHandler, capacity: Capacity) -> None:
        ws = self._ws
        if ws is None:
            raise TransportClosed("run() before connect()")
        early, ws.early = ws.early, None
        if early is None:
            raise TransportClosed(f"more than {_EARLY_LIMIT} messages arrived before run()")
        ws.capacity = capacity
        for data, ts in early:
            on_frame(data, ts)
        ws.on_frame = on_frame
        await ws.wait_closed()
        if self._closing:
            return
        exc = ws.protocol.close_exc
        if isinstance(exc, ConnectionClosed):
            raise describe_close(exc, self._max_size)
        raise TransportClosed("the connection was lost without a close frame", 1006)

    async def send(self, data: bytes) -> None:
        ws = self._ws
        if ws is None:
            raise TransportClosed("send() before connect()")
        try:
            # text frame: websockets sends bytes as binary, so say it is text
            await ws.send(data, text=True)
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
