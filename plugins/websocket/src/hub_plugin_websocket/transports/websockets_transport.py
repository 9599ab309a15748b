"""The ``websockets`` transport (the default).

``websockets`` does the WebSocket protocol: the handshake, framing, masking,
pings and pongs, permessage-deflate, size limits and the close handshake.
For a direct connection we drive its sans-I/O ``ClientProtocol`` from a small
``asyncio.Protocol`` (``_Wire``): every data frame goes to the connection from
``data_received``, with one clock read per socket read, no message queue and
no task switch, and an idle connection holds only the protocol, the socket
and two futures. Through a proxy from the environment (``HTTPS_PROXY`` and
the like), the library's own asyncio client connects instead (it knows HTTP
and SOCKS proxies); a ``ClientConnection`` subclass then delivers frames the
same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import time
from typing import Any, Final

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
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
from websockets.http11 import Response
from websockets.protocol import State
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from hub_plugin_websocket.transports import (
    Capacity,
    ConnectFailed,
    FrameHandler,
    Transport,
    TransportClosed,
    TransportSettings,
    tls_failed,
    upgrade_refused,
)

__all__ = ["WebsocketsTransport"]

_CLOSE_TIMEOUT_S: Final = 2.0
_EARLY_LIMIT: Final = 10_000
"""Messages kept while nobody runs ``run()`` yet (frames can arrive right after the
handshake, e.g. streams named in the URL); past it the connection is failed."""
_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_OPEN: Final = State.OPEN
_CLOSED: Final = State.CLOSED


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


def _handshake_failed(exc: BaseException) -> ConnectFailed:
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return upgrade_refused(response.status_code, response.headers.get("Retry-After"))
    if isinstance(exc, InvalidURI):
        return ConnectFailed(f"invalid URL: {exc}")
    if isinstance(exc, ssl.SSLError):
        return tls_failed(exc)
    return ConnectFailed(f"WebSocket handshake failed: {exc}")


class _Receiver:
    """Message assembly and delivery, shared by both ways of connecting.

    Subclasses provide ``_pause_reading``/``_resume_reading``/``abort`` and set
    ``_ts`` (wall-clock ns of the current socket read) before handing frames in.
    """

    __slots__ = ("_parts", "_ts", "capacity", "early", "on_frame", "paused")

    on_frame: FrameHandler | None
    capacity: Capacity | None
    early: list[tuple[bytes, int]] | None
    paused: bool
    _parts: list[bytes]
    _ts: int

    def _init_receiver(self) -> None:
        self.on_frame = None
        self.capacity = None
        self.early = []
        self.paused = False
        self._parts = []
        self._ts = 0

    def _data_frame(self, event: Frame) -> bool:
        """Handle a data frame; False for a control frame (the protocol answers pings)."""
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
            return False
        return True

    def _deliver(self, data: bytes) -> None:
        handler = self.on_frame
        if handler is None:
            early = self.early
            if early is not None:
                if len(early) >= _EARLY_LIMIT:
                    self.early = None
                    self.abort()
                    return
                early.append((data, self._ts))
            return
        handler(data, self._ts)
        capacity = self.capacity
        if capacity is not None and not self.paused and capacity.backpressured:
            # a consumer chose overflow="block": stop reading the socket until it catches up
            self.paused = True
            self._pause_reading()
            capacity.add_capacity_waiter(self._resume)

    def _resume(self) -> None:
        self.paused = False
        self._resume_reading()

    def _pause_reading(self) -> None:
        raise NotImplementedError

    def _resume_reading(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _Wire(_Receiver, asyncio.Protocol):
    """asyncio's side of a direct connection: bytes in and out of ``ClientProtocol``."""

    # slots: an idle connection should carry as little as possible
    __slots__ = ("_close_timer", "closed", "opened", "owner", "transport", "ws")

    def __init__(self, ws: ClientProtocol, owner: WebsocketsTransport) -> None:
        self._init_receiver()
        self.ws = ws
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.flush()  # the handshake request

    def data_received(self, data: bytes) -> None:
        # one clock reading per socket read: every message in it was received then
        self._ts = time.time_ns()
        owner = self.owner
        owner.last_activity_ns = time.monotonic_ns()
        owner.bytes_received += len(data)
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self.flush()  # pongs, the close handshake
        for event in events:
            if type(event) is Frame:
                self._data_frame(event)
            elif isinstance(event, Response) and not self.opened.done():
                exc = ws.handshake_exc
                if exc is None:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(exc)
        if ws.close_expected() and self._close_timer is None and self.transport is not None:
            # the close handshake is done on our side: the venue should now close TCP
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(_CLOSE_TIMEOUT_S, self.transport.abort)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()  # idempotent; the protocol is CLOSED from here
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- _Receiver ------------------------------------------------------------------------
    def _pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- output ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the protocol has to send (an empty chunk: it is done sending)."""
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()


class _ProxiedConnection(_Receiver, ClientConnection):
    """``websockets``' asyncio client (used through a proxy), delivering like ``_Wire``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_receiver()
        self.owner: WebsocketsTransport | None = None

    def data_received(self, data: bytes) -> None:
        self._ts = time.time_ns()
        if self.owner is not None:
            self.owner.last_activity_ns = time.monotonic_ns()
            self.owner.bytes_received += len(data)
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if self.response is None or type(event) is not Frame or not self._data_frame(event):
            super().process_event(event)  # the handshake response, pongs

    def _pause_reading(self) -> None:
        self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        self.transport.abort()


class WebsocketsTransport(Transport):
    """``websockets`` behind the ``Transport`` interface."""

    name = "websockets"

    def __init__(self) -> None:
        self._wire: _Wire | None = None
        self._proxied: _ProxiedConnection | None = None
        self._closing = False
        self._max_size = 0

    async def connect(self, settings: TransportSettings) -> None:
        self._max_size = settings.max_size
        try:
            uri = parse_uri(settings.url)
        except InvalidURI as exc:
            raise ConnectFailed(f"invalid URL: {exc}") from None
        proxy = get_proxy(uri) if settings.use_proxy else None
        try:
            if proxy is None:
                await self._connect_direct(settings, uri.host, uri.port)
            else:
                await self._connect_proxied(settings, proxy)
        except (InvalidHandshake, ssl.SSLError) as exc:
            raise _handshake_failed(exc) from None
        self.last_activity_ns = time.monotonic_ns()

    async def _connect_direct(self, settings: TransportSettings, host: str, port: int) -> None:
        ws = ClientProtocol(
            parse_uri(settings.url),
            extensions=[_deflate()] if settings.compression else None,
            max_size=settings.max_size,
        )
        request = ws.connect()
        request.headers["User-Agent"] = settings.user_agent
        ws.send_request(request)
        wire = _Wire(ws, self)
        loop = asyncio.get_running_loop()
        try:
            # anyio's timeout, not asyncio's: the hub cancels through anyio scopes, and
            # asyncio.timeout inside a shielded anyio scope can leak a cancellation
            with anyio.fail_after(settings.open_timeout):
                await loop.create_connection(
                    lambda: wire,
                    host,
                    port,
                    ssl=settings.ssl,
                    server_hostname=host if settings.ssl is not None else None,
                )
                await wire.opened
        except BaseException:
            wire.abort()
            raise
        self._wire = wire

    async def _connect_proxied(self, settings: TransportSettings, proxy: str) -> None:
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
            "create_connection": _ProxiedConnection,
            "proxy": proxy,
        }
        if settings.ssl is not None:
            kwargs["ssl"] = settings.ssl
        ws = await connect(settings.url, **kwargs)
        assert isinstance(ws, _ProxiedConnection)
        # the handshake's headers are checked by now; kept, they are 3.5 KiB of every idle
        # connection (the response object itself must stay: it marks the handshake done)
        ws.request = None
        if ws.response is not None:
            ws.response = dataclasses.replace(ws.response, headers=Headers(), body=b"")
        ws.owner = self
        self._proxied = ws

    async def run(self, on_frame: FrameHandler, capacity: Capacity) -> None:
        receiver: _Receiver | None = self._wire or self._proxied
        if receiver is None:
            raise TransportClosed("run() before connect()")
        early, receiver.early = receiver.early, None
        if early is None:
            raise TransportClosed(f"more than {_EARLY_LIMIT} messages arrived before run()")
        receiver.capacity = capacity
        for data, ts in early:
            on_frame(data, ts)
        receiver.on_frame = on_frame
        if self._wire is not None:
            # shielded: a cancelled run() must not cancel the future close() waits on
            await asyncio.shield(self._wire.closed)
            protocol = self._wire.ws
        else:
            assert self._proxied is not None
            await self._proxied.wait_closed()
            protocol = self._proxied.protocol
        if self._closing:
            return
        if protocol.state is _CLOSED:
            raise describe_close(protocol.close_exc, self._max_size)
        raise TransportClosed("the connection was lost without a close frame", 1006)

    def _open_wire(self) -> _Wire:
        wire = self._wire
        if wire is None or wire.ws.state is not _OPEN or wire.transport is None:
            raise TransportClosed("the connection is not open")
        return wire

    async def send(self, data: bytes) -> None:
        if self._proxied is not None:
            try:
                await self._proxied.send(data, text=True)
            except ConnectionClosed as exc:
                raise describe_close(exc, self._max_size) from None
            return
        wire = self._open_wire()
        wire.ws.send_text(data)
        wire.flush()

    async def ping(self) -> None:
        if self._proxied is not None:
            try:
                await self._proxied.ping()
            except ConnectionClosed as exc:
                raise describe_close(exc, self._max_size) from None
            return
        # any frame (the pong too) refreshes last_activity_ns in data_received
        wire = self._open_wire()
        wire.ws.send_ping(os.urandom(4))
        wire.flush()

    async def close(self) -> None:
        self._closing = True
        if self._proxied is not None:
            await self._proxied.close()
            return
        wire = self._wire
        if wire is None:
            return
        if wire.ws.state is _OPEN and wire.transport is not None:
            wire.ws.send_close(1000)
            wire.flush()
        with anyio.move_on_after(_CLOSE_TIMEOUT_S) as scope:
            await asyncio.shield(wire.closed)  # run() awaits it too
        if scope.cancelled_caught:
            wire.abort()
