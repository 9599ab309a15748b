"""``WebSocketConnection``: the generic connector, one WebSocket session with a venue.

The connection owns the I/O: the transport (``websockets`` or ``picows``),
TLS, pacing under the dialect's rate limits, request/acknowledgement
bookkeeping, keepalive pings and the REST snapshot requests its dialect
asks for. The venue's protocol is in the ``DialectSession``: each received
frame goes to ``session.feed`` synchronously on the reader, ticks go from
there to the sink, and what comes back (acks, refusals, snapshot needs, a
``serverShutdown``) is handled here. See sdk-docs/protocols/websocket.md.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import anyio.abc

from hub_core.config import ExchangeConfig
from hub_core.contracts import ConnectionHealth
from hub_core.errors import ConfigError, ConnectionFailed, SubscriptionError
from hub_core.processor import ConnectionSink
from hub_plugin_websocket.codec import (
    RateWindow,
    check_rest_url,
    check_stream_url,
    is_loopback_host,
)
from hub_plugin_websocket.dialect import (
    Ack,
    Dialect,
    DialectEvent,
    DialectSession,
    NeedSnapshot,
    Notice,
    Refused,
    Request,
    Resubscribe,
    ServerShutdown,
    SessionConfig,
)
from hub_plugin_websocket.http import SnapshotClient, SnapshotError
from hub_plugin_websocket.options import WebSocketOptions
from hub_plugin_websocket.transports import (
    ConnectFailed,
    Transport,
    TransportClosed,
    TransportSettings,
    new_transport,
)

log = logging.getLogger("hub_plugin_websocket")

__all__ = ["ConnectPacer", "WebSocketConnection", "ssl_context_for"]

USER_AGENT = "hub-plugin-websocket/0.1.0"
_KEEPALIVE_TICK_S = 0.25
_SNAPSHOT_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class ConnectPacer:
    """New connections under a venue's connections-per-interval limit.

    Shared by every connection a factory creates (one per dialect and host), so a
    reconnect storm of many connections still respects the venue's limit.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], RateWindow] = {}
        self._lock = anyio.Lock()

    async def wait(self, dialect: Dialect, host: str) -> None:
        """Return when one more connection to ``host`` is allowed, and count it."""
        key = (dialect.name, host)
        window = self._windows.get(key)
        if window is None:
            limits = dialect.limits
            window = RateWindow(limits.connections, limits.connections_interval_s)
            self._windows[key] = window
        async with self._lock:
            delay = window.delay(time.monotonic())
            if delay > 0:
                log.warning(
                    "%s: connection limit of %d per %gs reached; waiting %.1fs",
                    dialect.name,
                    window.limit,
                    window.window_s,
                    delay,
                )
            await _wait_for(window)


async def _wait_for(window: RateWindow) -> None:
    """Sleep until ``window`` admits one more event, then count it."""
    # a timed wait, not an event: nothing else can make the window admit sooner
    while (delay := window.delay(time.monotonic())) > 0:  # noqa: ASYNC110
        await anyio.sleep(delay)
    window.record(time.monotonic())


def ssl_context_for(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only those in ``ca_file``."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass
class _Pending:
    """One request awaiting its acknowledgement."""

    request: Request
    sent: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    refused: Refused | None = None
    result: object = None
    lost: str = ""


class WebSocketConnection:
    """One session with a JSON-over-WebSocket venue (``ExchangeConnection``)."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: ConnectionSink,
        options: WebSocketOptions,
        dialect: Dialect,
        pacer: ConnectPacer | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._options = options
        self._dialect = dialect
        self._pacer = pacer or ConnectPacer()
        self._exchange = sink.exchange
        self._endpoint = ""
        self._transport: Transport | None = None
        self._session: DialectSession | None = None
        self._http: SnapshotClient | None = None
        self._pending: dict[int, _Pending] = {}
        self._snapshots: deque[NeedSnapshot] = deque()
        # Control messages go out in the order the session created them, through one
        # sender: Coinbase answers without ids, so its session matches replies to
        # requests first in, first out, and a resubscribe raised on the reader must not
        # overtake (or be overtaken by) a subscribe a caller is waiting on.
        self._outbox: deque[tuple[Request, _Pending | None]] = deque()
        self._outbox_wake = anyio.Event()
        self._snapshot_wake = anyio.Event()
        limits = dialect.limits
        # Evenly spaced, one a second short of the limit: the pongs the transport sends on
        # its own count too, and the network can bunch messages up on the venue's side,
        # which a burst-then-wait window would turn into a violation.
        per_second = max(1, math.floor(limits.messages_per_second) - 1)
        self._messages = RateWindow(1, 1.0 / per_second)
        self._snapshot_rate = RateWindow(max(1, math.floor(limits.snapshots_per_second)), 1.0)
        self._send_lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._connected = False
        self._closing = False
        self._failure = ""
        self._ping_sent_ns = 0
        self._detail = "not connected"
        self._resubscribes = 0

    # -- errors ---------------------------------------------------------------------------
    def _failed(self, message: str, hint: str = "the hub reconnects") -> ConnectionFailed:
        return ConnectionFailed(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=hint
        )

    def _config_error(self, message: str, hint: str) -> ConfigError:
        return ConfigError(message, exchange=self._exchange, endpoint=self._endpoint, hint=hint)

    @property
    def session(self) -> DialectSession | None:
        """The dialect session of this connection, once connected (tests, diagnostics)."""
        return self._session

    @property
    def resubscribes(self) -> int:
        """Book resyncs done by resubscribing on this connection (``Resubscribe``)."""
        return self._resubscribes

    @property
    def transport_name(self) -> str:
        """``websockets`` or ``picows``."""
        return self._options.transport

    # -- ExchangeConnection -------------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Open the WebSocket to ``endpoint`` (the stream URL as configured)."""
        self._endpoint = endpoint
        if self._transport is not None or self._closing:
            raise self._failed(
                "connect() after close()" if self._closing else "connect() called twice",
                hint="create a new connection from the factory for each session",
            )
        options = self._options
        try:
            host = check_stream_url(endpoint)
            self._dialect.validate_endpoint(endpoint)
        except ValueError as exc:
            raise self._config_error(
                f"endpoint: {exc}", hint="write the venue's stream URL, e.g. wss://host/ws"
            ) from None
        rest_url = (options.rest_url or self._dialect.default_rest_url(endpoint)).rstrip("/")
        if rest_url:
            try:
                check_rest_url(rest_url)
            except ValueError as exc:
                raise self._config_error(
                    f"options.rest_url: {exc}", hint="use the venue's https:// REST base URL"
                ) from None
        ca_file = str(options.ca_file) if options.ca_file is not None else None
        try:
            ctx = ssl_context_for(ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise self._config_error(
                f"options.ca_file: cannot load {ca_file}: {exc}",
                hint="point ca_file at a readable PEM file of CA certificates",
            ) from None
        secure = urlsplit(endpoint).scheme == "wss"
        try:
            transport = new_transport(options.transport)
        except ImportError:
            raise self._config_error(
                "options.transport: picows is not installed",
                hint="pip install 'hub-plugin-websocket[fast]' or use transport = 'websockets'",
            ) from None
        try:
            session = self._dialect.new_session(
                self._sink,
                SessionConfig(
                    endpoint=endpoint,
                    channels=tuple(options.channels or self._dialect.default_channels),
                    rest_url=rest_url,
                    snapshot_limit=options.snapshot_limit,
                    max_buffered_events=options.max_buffered_events,
                ),
            )
        except ValueError as exc:
            raise self._config_error(f"options: {exc}", hint="fix the options") from None
        loopback = is_loopback_host(host)
        await self._pacer.wait(self._dialect, host)
        settings = TransportSettings(
            url=endpoint,
            ssl=ctx if secure else None,
            max_size=options.max_frame_bytes,
            open_timeout=self._config.connect_timeout_ms / 1000,
            compression=options.compression,
            use_proxy=not loopback,
            user_agent=USER_AGENT,
        )
        try:
            await transport.connect(settings)
        except ConnectFailed as exc:
            raise self._connect_failed(exc) from None
        except TimeoutError:
            raise self._failed(
                f"no WebSocket handshake within {settings.open_timeout:g}s",
                hint="check that the venue is reachable; the hub retries",
            ) from None
        except OSError as exc:
            raise self._failed(f"cannot connect: {exc.strerror or exc}") from None
        self._transport = transport
        self._session = session
        self._http = SnapshotClient(
            ctx if rest_url.startswith("https") else None,
            options.snapshot_timeout_s,
            trust_env=not loopback,
            user_agent=USER_AGENT,
        )
        self._sink.reset_session()
        self._connected = True
        self._detail = f"{self._dialect.name} over {transport.name}"
        log.info(
            "[%s] connected to %s (%s, %s)",
            self._exchange,
            endpoint,
            self._dialect.name,
            transport.name,
        )

    def _connect_failed(self, exc: ConnectFailed) -> ConnectionFailed:
        if exc.tls:
            return self._failed(
                exc.reason,
                hint="the venue's certificate is not trusted: set options.ca_file to the CA "
                "that signed it, or fix the host name in the endpoint",
            )
        if exc.status in (401, 403, 451):
            return self._failed(
                exc.reason,
                hint="the venue refused this client (region or IP blocked, or a wrong URL)",
            )
        if exc.status == 429 or exc.status == 418:
            return self._failed(
                exc.reason, hint="the venue's connection rate limit was hit; the hub backs off"
            )
        return self._failed(exc.reason)

    async def run(self) -> None:
        """Deliver frames to the dialect until the session ends (``ConnectionFailed``)."""
        transport, session = self._transport, self._session
        if transport is None or session is None or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._keepalive, transport)
                tg.start_soon(self._snapshot_worker, session)
                tg.start_soon(self._sender, transport)
                try:
                    await transport.run(self._on_frame, self._sink)
                except TransportClosed as exc:
                    if not self._failure:
                        self._failure = f"{exc.reason} (close code {exc.code})"
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self._connected = False
            self._detail = "closed" if self._closing else "disconnected"
            self._fail_pending(self._failure or "the connection closed")
        if self._failure and not self._closing:
            raise self._failed(self._failure)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe every configured channel of ``symbols``; ``SubscriptionError`` names
        what the venue refused or did not acknowledge."""
        session = self._require_session()
        wanted = self._validated(symbols)
        limit = self._dialect.limits.streams_per_connection
        channels = len(self._options.channels or self._dialect.default_channels)
        # an upper bound: symbols already subscribed are counted again
        new_streams = len(session.streams) + channels * len(wanted)
        if new_streams > limit:
            raise SubscriptionError(
                f"{new_streams} streams would exceed the venue's {limit} streams per connection",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="split the symbols over several [exchanges.*] connections",
            )
        await self._run_requests(session.subscribe(wanted), "subscribe")

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Unsubscribe ``symbols`` (not subscribed: no error). Their books are dropped."""
        session = self._session
        if session is None:
            return
        wanted = self._validated(symbols)
        requests = session.unsubscribe(wanted)
        if self._connected:
            await self._run_requests(requests, "unsubscribe")

    async def list_subscriptions(self) -> list[str]:
        """The streams the venue says this connection has (``LIST_SUBSCRIPTIONS``)."""
        session = self._require_session()
        req = session.list_subscriptions()
        if req is None:
            return sorted(session.streams)
        results = await self._run_requests([req], "list")
        result = results[0] if results else None
        return [str(s) for s in result] if isinstance(result, list) else []

    async def probe(self) -> None:
        """Send a ping (paced); no pong within ``pong_timeout_s`` ends the connection."""
        transport = self._transport
        if transport is None or not self._connected:
            raise self._failed("probe() on a connection that is not up")
        await self._send_ping(transport)

    async def close(self) -> None:
        """Close the WebSocket and the REST client. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._connected = False
        self._detail = "closed"
        self._fail_pending("the connection was closed")
        transport, self._transport = self._transport, None
        http, self._http = self._http, None
        with anyio.CancelScope(shield=True), anyio.move_on_after(3):
            if transport is not None:
                try:
                    await transport.close()
                except Exception as exc:  # closing a broken link must not raise
                    log.debug("[%s] transport close: %r", self._exchange, exc)
            if http is not None:
                await http.aclose()

    def health(self) -> ConnectionHealth:
        """Connected or not, the endpoint, and the monotonic ns of the last frame."""
        transport = self._transport
        return ConnectionHealth(
            connected=self._connected,
            endpoint=self._endpoint,
            last_activity_ns=transport.last_activity_ns if transport is not None else 0,
            detail=self._detail,
        )

    # -- the reader's side (synchronous: called by the transport for every frame) ----------
    def _on_frame(self, data: bytes, ts_recv: int) -> None:
        session = self._session
        if session is None:
            return
        event = session.feed(data, ts_recv)
        if event is not None:
            self._on_event(event)

    def _on_event(self, event: DialectEvent) -> None:
        if isinstance(event, NeedSnapshot):
            self._snapshots.append(event)
            self._snapshot_wake.set()
        elif isinstance(event, Ack):
            pending = self._pending.get(event.id)
            if pending is not None:
                pending.result = event.result
                pending.done.set()
        elif isinstance(event, Refused):
            pending = self._pending.get(event.id) if event.id is not None else None
            if pending is not None:
                pending.refused = event
                pending.done.set()
            else:
                self._sink.venue_errors += 1
                self._sink.last_error = event.message
                log.warning(
                    "[%s] venue error (code %d): %s", self._exchange, event.code, event.message
                )
        elif isinstance(event, Resubscribe):
            # before ServerShutdown, its base class: a book resync keeps the session
            log.info("[%s] %s", self._exchange, event.reason)
            self._resubscribes += 1
            self._enqueue([(req, None) for req in event.requests])
        elif isinstance(event, ServerShutdown):
            self._end(event.reason)
        elif isinstance(event, Notice):
            log.info("[%s] %s", self._exchange, event.text)

    def _end(self, reason: str) -> None:
        """End the session from the reader: close the transport, then ``run`` raises."""
        if self._failure:
            return
        self._failure = reason
        tg, transport = self._tg, self._transport
        if tg is not None and transport is not None:
            tg.start_soon(self._close_transport, transport)

    async def _close_transport(self, transport: Transport) -> None:
        with anyio.move_on_after(3):
            await transport.close()

    # -- tasks of run() -------------------------------------------------------------------
    async def _keepalive(self, transport: Transport) -> None:
        """Ping after ``ping_interval_s`` of silence; no answer within ``pong_timeout_s``
        (to this ping or a probe's) ends the session."""
        interval_ns = int(self._options.ping_interval_s * 1e9)
        timeout_ns = int(self._options.pong_timeout_s * 1e9)
        max_age_s = self._options.max_connection_age_s
        retire_ns = time.monotonic_ns() + int(max_age_s * 1e9)
        while True:
            await anyio.sleep(_KEEPALIVE_TICK_S)
            now = time.monotonic_ns()
            if now >= retire_ns:
                # leave before the venue's own cut (Binance: 24 h), at a moment we choose
                self._end(f"connection age limit of {max_age_s:g}s (max_connection_age_s) reached")
                return
            sent = self._ping_sent_ns
            if sent and transport.last_activity_ns < sent:
                if now - sent > timeout_ns:
                    self._end(f"no pong within {self._options.pong_timeout_s:g}s of a ping")
                    return
                continue
            self._ping_sent_ns = 0
            if interval_ns and now - transport.last_activity_ns >= interval_ns:
                try:
                    await self._send_ping(transport)
                except (TransportClosed, ConnectionFailed):
                    return  # the reader reports how it ended

    async def _send_ping(self, transport: Transport) -> None:
        await self._pace_message()
        self._ping_sent_ns = time.monotonic_ns()
        try:
            await transport.ping()
        except TransportClosed as exc:
            raise self._failed(f"ping failed: {exc.reason}") from None

    async def _snapshot_worker(self, session: DialectSession) -> None:
        """Fetch the REST snapshots the dialect asks for, one at a time, paced."""
        failures = 0
        while True:
            if not self._snapshots:
                self._snapshot_wake = anyio.Event()
                await self._snapshot_wake.wait()
                continue
            need = self._snapshots.popleft()
            if any(n.symbol == need.symbol for n in self._snapshots):
                continue  # a newer request for the same book is queued
            await _wait_for(self._snapshot_rate)
            http = self._http
            if http is None:
                return
            try:
                body = await http.get(need.url)
            except SnapshotError as exc:
                failures += 1
                wait = max(exc.retry_after_s, _SNAPSHOT_RETRY_S[min(failures, 6) - 1])
                log.warning(
                    "[%s] %s book snapshot failed (%s); retrying in %gs",
                    self._exchange,
                    need.symbol,
                    exc,
                    wait,
                )
                session.snapshot_failed(need.symbol, str(exc))
                await anyio.sleep(wait)
                continue
            failures = 0
            event = session.snapshot_received(need.symbol, body, time.time_ns())
            if event is not None:
                self._on_event(event)

    # -- requests -------------------------------------------------------------------------
    async def _pace_message(self) -> None:
        """Stay under the venue's control-messages-per-second limit."""
        async with self._send_lock:
            await _wait_for(self._messages)

    def _enqueue(self, items: list[tuple[Request, _Pending | None]]) -> None:
        """Queue control messages for the sender (synchronously: the order they were
        created in is the order they are sent in)."""
        self._outbox.extend(items)
        self._outbox_wake.set()

    async def _sender(self, transport: Transport) -> None:
        """Send the queued control messages one by one, paced under the venue's limit."""
        outbox = self._outbox
        while True:
            if not outbox:
                self._outbox_wake = anyio.Event()
                await self._outbox_wake.wait()
                continue
            request, pending = outbox[0]
            await self._pace_message()
            outbox.popleft()
            try:
                await transport.send(request.payload)
            except TransportClosed as exc:
                if pending is not None:
                    pending.lost = f"send failed: {exc.reason}"
                    pending.done.set()
                    pending.sent.set()
                return  # the reader reports how the session ended
            if pending is not None:
                pending.sent.set()

    async def _run_requests(self, requests: list[Request], op: str) -> list[object]:
        if not requests:
            return []
        if self._transport is None or not self._connected:
            raise self._failed(f"{op}: the connection is not up")
        pendings = [_Pending(req) for req in requests]
        for p in pendings:
            self._pending[p.request.id] = p
        self._enqueue([(p.request, p) for p in pendings])
        timeout = self._options.subscribe_timeout_s
        try:
            # the wait for a turn to send (pacing) is not the venue's fault: the
            # acknowledgement timeout starts once a message is on the wire
            for p in pendings:
                await p.sent.wait()
            with anyio.fail_after(timeout):
                for p in pendings:
                    await p.done.wait()
        except TimeoutError:
            waiting = [p.request for p in pendings if not p.done.is_set()]
            raise SubscriptionError(
                f"no {op} acknowledgement within {timeout:g}s for {_describe_streams(waiting)}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="the venue did not answer: check the endpoint, or raise "
                "options.subscribe_timeout_s",
            ) from None
        finally:
            for p in pendings:
                self._pending.pop(p.request.id, None)
        lost = [p for p in pendings if p.lost]
        if lost:
            raise self._failed(f"{op}: {lost[0].lost}")
        refused = [p for p in pendings if p.refused is not None]
        if refused:
            details = "; ".join(
                f"{_describe_streams([p.request])}: {p.refused.message} (code {p.refused.code})"
                for p in refused
                if p.refused is not None
            )
            raise SubscriptionError(
                f"the venue refused to {op} {details}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="check the symbols (the venue's own, upper case) and the channels",
            )
        return [p.result for p in pendings]

    def _fail_pending(self, why: str) -> None:
        for p in self._pending.values():
            if not p.done.is_set():
                p.lost = why
                p.done.set()
            p.sent.set()
        self._outbox.clear()

    # -- helpers --------------------------------------------------------------------------
    def _require_session(self) -> DialectSession:
        session = self._session
        if session is None or not self._connected:
            raise self._failed("the connection is not up")
        return session

    def _validated(self, symbols: Sequence[str]) -> list[str]:
        if isinstance(symbols, str):
            raise TypeError("symbols must be a sequence of str, not one str")
        out: list[str] = []
        for s in symbols:
            try:
                sym = self._dialect.validate_symbol(s)
            except ValueError as exc:
                raise SubscriptionError(
                    str(exc),
                    exchange=self._exchange,
                    endpoint=self._endpoint,
                    hint="use the venue's own symbols, upper case (e.g. BTCUSDT)",
                ) from None
            if sym not in out:
                out.append(sym)
        return out


def _describe_streams(requests: Sequence[Request]) -> str:
    streams = [s for r in requests for s in (r.streams or r.symbols or (r.op,))]
    shown = ", ".join(streams[:8])
    more = f" and {len(streams) - 8} more" if len(streams) > 8 else ""
    return f"{shown}{more}"
