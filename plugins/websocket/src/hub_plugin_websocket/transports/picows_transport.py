"""The ``picows`` transport (``pip install hub-plugin-websocket[fast]``).

picows parses frames in Cython and calls ``on_ws_frame`` from its protocol
callback, so a frame reaches the dialect without a task switch or a queue.
The wall-clock ``ts_recv`` and ``last_activity_ns`` are read once per socket
read (``frame.last_in_buffer``), not once per frame.
"""

from __future__ import annotations

import ssl
import time
from typing import Final

import anyio
from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSProtocolError,
    WSTransport,
    ws_connect,
)

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

__all__ = ["PicowsTransport"]

_EARLY_LIMIT: Final = 10_000
"""Messages kept while nobody runs ``run()`` yet (frames can arrive right after the
handshake, e.g. streams named in the URL); past it the connection is failed."""
_CLOSE_WAIT_S: Final = 2.0
_READ_BUFFER_INIT: Final = 1024


class _Listener(WSListener):
    """Assembles messages from frames and hands them to the connection."""

    def __init__(self, owner: PicowsTransport, max_size: int) -> None:
        self._owner = owner
        self.max_size = max_size
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._ts = 0
        self.on_frame: FrameHandler | None = None
        self.early: list[tuple[bytes, int]] = []
        self.capacity: Capacity | None = None
        self.paused = False
        self.transport: WSTransport | None = None
        self.close_code = 0
        self.close_reason = ""
        self.failure = ""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self._owner.bytes_received += frame.payload_size
        ts = self._ts
        if ts == 0:
            ts = time.time_ns()
            self._ts = ts
            self._owner.last_activity_ns = time.monotonic_ns()
        if frame.last_in_buffer:
            self._ts = 0
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.fin and not self._parts:
                self._deliver(frame.get_payload_as_bytes(), ts)
            else:
                self._parts = []
                self._parts_size = 0
                self._add_part(transport, frame, ts)
        elif kind is WSMsgType.CONTINUATION:
            if self._parts:
                self._add_part(transport, frame, ts)
        elif kind is WSMsgType.PING:
            # answered here rather than by picows's auto-pong, which would swallow the
            # frame: a ping that ends a read must still end the read's clock reading
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            self.close_reason = frame.get_close_reason()
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        # a PONG only refreshed the activity

    def _add_part(self, transport: WSTransport, frame: WSFrame, ts: int) -> None:
        self._parts_size += frame.payload_size
        if self._parts_size > self.max_size:
            self.failure = f"a message was larger than max_frame_bytes ({self.max_size} bytes)"
            self.close_code = 1009
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
            transport.disconnect()
            return
        self._parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            data = b"".join(self._parts)
            self._parts = []
            self._parts_size = 0
            self._deliver(data, ts)

    def _deliver(self, data: bytes, ts: int) -> None:
        handler = self.on_frame
        if handler is None:
            if len(self.early) >= _EARLY_LIMIT:
                self.failure = "nobody read the connection"
                if self.transport is not None:
                    self.transport.disconnect()
                return
            self.early.append((data, ts))
            return
        handler(data, ts)
        capacity = self.capacity
        if capacity is not None and not self.paused and capacity.backpressured:
            # a consumer chose overflow="block": stop reading the socket until it catches up
            transport = self.transport
            if transport is not None:
                self.paused = True
                transport.underlying_transport.pause_reading()
                capacity.add_capacity_waiter(self._resume)

    def _resume(self) -> None:
        self.paused = False
        transport = self.transport
        if transport is not None and not transport.is_disconnected:
            transport.underlying_transport.resume_reading()


class PicowsTransport(Transport):
    """``picows.ws_connect`` behind the ``Transport`` interface."""

    name = "picows"

    def __init__(self) -> None:
        self._transport: WSTransport | None = None
        self._listener: _Listener | None = None
        self._closing = False

    async def connect(self, settings: TransportSettings) -> None:
        listener = _Listener(self, settings.max_size)
        self._listener = listener
        try:
            # anyio's timeout, as everywhere in the plugin: asyncio.timeout inside the
            # hub's anyio cancel scopes can leak a cancellation
            with anyio.fail_after(settings.open_timeout):
                transport, _ = await ws_connect(
                    lambda: listener,
                    settings.url,
                    ssl_context=settings.ssl,
                    websocket_handshake_timeout=settings.open_timeout,
                    enable_auto_pong=False,
                    max_frame_size=settings.max_size,
                    max_redirects=0,
                    extra_headers={"User-Agent": settings.user_agent},
                    # picows grows the buffer as frames need it; its 16 KiB default is
                    # most of an idle connection's memory
                    read_buffer_init_size=_READ_BUFFER_INIT,
                    # asyncio's own transports: aiofastnet's cost ~5 KiB per idle
                    # connection and gained 2 % here (TLS, 620 k msgs/s either way)
                    use_aiofastnet=False,
                )
        except WSInvalidStatusError as exc:
            response = exc.response
            if response is None:
                raise ConnectFailed(f"WebSocket handshake failed: {exc}") from None
            retry_after = response.headers.get("Retry-After")
            raise upgrade_refused(
                int(response.status), str(retry_after) if retry_after is not None else None
            ) from None
        except ssl.SSLError as exc:
            raise tls_failed(exc) from None
        except WSError as exc:
            raise ConnectFailed(f"WebSocket handshake failed: {exc}") from None
        # the handshake is checked: its headers would stay with every idle connection
        for message in (transport.request, transport.response):
            if message is not None:
                message.headers.clear()
        self._transport = transport
        listener.transport = transport
        self.last_activity_ns = time.monotonic_ns()

    async def run(self, on_frame: FrameHandler, capacity: Capacity) -> None:
        transport, listener = self._transport, self._listener
        if transport is None or listener is None:
            raise TransportClosed("run() before connect()")
        listener.capacity = capacity
        early, listener.early = listener.early, []
        for data, ts in early:
            on_frame(data, ts)
        listener.on_frame = on_frame
        try:
            await transport.wait_disconnected()
        except WSProtocolError as exc:
            if self._closing:
                return
            code = int(getattr(exc.code, "value", exc.code) or 1002)
            if code == 1009:
                raise TransportClosed(
                    f"a message was larger than max_frame_bytes ({listener.max_size} bytes)",
                    1009,
                ) from None
            raise TransportClosed(f"protocol error: {exc}", code) from None
        except Exception as exc:
            if self._closing:
                return
            raise TransportClosed(f"the connection failed: {exc!r}", 1011) from None
        if self._closing:
            return
        if listener.failure:
            raise TransportClosed(listener.failure, listener.close_code or 1006)
        if listener.close_code:
            reason = f": {listener.close_reason}" if listener.close_reason else ""
            raise TransportClosed(f"the venue closed the connection{reason}", listener.close_code)
        raise TransportClosed("the connection was lost without a close frame", 1006)

    def _require(self) -> WSTransport:
        transport = self._transport
        if transport is None:
            raise TransportClosed("not connected")
        if transport.is_disconnected:
            raise TransportClosed("the connection is closed")
        return transport

    async def send(self, data: bytes) -> None:
        self._require().send(WSMsgType.TEXT, data)

    async def ping(self) -> None:
        self._require().send_ping()

    async def close(self) -> None:
        self._closing = True
        transport = self._transport
        if transport is None or transport.is_disconnected:
            return
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()
        with anyio.move_on_after(_CLOSE_WAIT_S) as scope:
            await transport.wait_disconnected()
        if scope.cancelled_caught:
            transport.disconnect(graceful=False)
