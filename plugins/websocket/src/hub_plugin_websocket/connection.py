"""``WebSocketConnection``: the generic connector, one WebSocket session with a venue.

The connection owns the I/O: its WebSocket sessions (``Link``: transport,
TLS, keepalive, paced control messages, REST snapshots), request and
acknowledgement bookkeeping, spreading streams over several sessions past the
venue's ``streams_per_connection``, and replacing a session before the venue
cuts it (``rotation``). The venue's protocol is in the ``DialectSession``:
each received frame goes to it synchronously on the reader, ticks go from
there to the sink, and what comes back (acks, refusals, snapshot needs, a
``serverShutdown``) is handled here. See sdk-docs/protocols/websocket.md.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio
import anyio.abc

from hub_core.plugin import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    HubError,
    Pending,
    RateLimited,
    Sink,
    SubscriptionError,
    checked_symbols,
    connect_failure,
)
from hub_plugin_websocket.codec import (
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
from hub_plugin_websocket.http import SnapshotClient
from hub_plugin_websocket.link import Link
from hub_plugin_websocket.options import WebSocketOptions
from hub_plugin_websocket.ratelimit import RateWindow
from hub_plugin_websocket.rotation import RotationGate, supports_rotation
from hub_plugin_websocket.transports import (
    ConnectFailed,
    TransportSettings,
    new_transport,
)
from hub_plugin_websocket.urls import check_rest_url, check_stream_url, is_loopback_host

log = logging.getLogger("hub_plugin_websocket")

__all__ = [
    "ConnectPacer",
    "WebSocketConnection",
    "classify_connect_failure",
    "ssl_context_for",
]

USER_AGENT = "hub-plugin-websocket/0.1.0"
_MIN_OVERLAP_S = 0.25
"""Both sessions run at least this long in a rotation: what the old one had in flight
from before the new one subscribed arrives meanwhile."""
_SETTLE_POLL_S = 0.01
_KEEPALIVE_TICK_S = 0.25
_SNAPSHOT_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_GRANTED_KEPT = 1000


class ConnectPacer:
    """New connections under a venue's connections-per-interval limit.

    Shared by every connection a factory creates, with one sliding window per
    (venue, host) key, so a reconnect storm of many connections still respects
    each venue's limit while a venue at its limit delays no other. A caller
    reserves its slot (no lock is held across an await: the event loop runs one
    reservation at a time) and then sleeps until it.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], RateWindow] = {}
        self.granted: list[tuple[str, str, float]] = []
        """(venue, host, slot) of the last connections let through, in the order they
        went, ``slot`` the monotonic time reserved for it (never left before it; bounded,
        for diagnostics and tests)."""

    async def wait(self, dialect: Dialect, host: str) -> None:
        """Return when one more connection to ``host`` is allowed (counted already)."""
        key = (dialect.name, host)
        window = self._windows.get(key)
        if window is None:
            limits = dialect.limits
            window = RateWindow(limits.connections, limits.connections_interval_s)
            self._windows[key] = window
        now = time.monotonic()
        at = window.reserve(now)  # synchronous: two callers cannot take the same slot
        delay = at - now
        if delay > 0:
            log.warning(
                "%s: connection limit of %d per %gs reached; waiting %.1fs",
                dialect.name,
                window.limit,
                window.window_s,
                delay,
            )
            # the event loop's clock can wake a hair early: never before the slot
            while (delay := at - time.monotonic()) > 0:  # noqa: ASYNC110
                await anyio.sleep(delay)
        granted = self.granted
        granted.append((dialect.name, host, at))
        if len(granted) > _GRANTED_KEPT:
            del granted[: len(granted) - _GRANTED_KEPT]


def classify_connect_failure(exc: ConnectFailed, *, exchange: str, endpoint: str) -> HubError:
    """What a failed opening means to the supervisor, in one place for both transports
    (direct or through a proxy): HTTP 401/403 on the upgrade is a refusal
    (``AuthenticationError``: one attempt, then ``auth_failed``; venues ban IPs that
    hammer them), 429/418 is ``RateLimited`` (``Retry-After`` waited out), any other
    status, a TLS failure or a broken handshake is a transient ``ConnectionFailed``."""
    status = exc.status
    if exc.tls:
        return ConnectionFailed(
            exc.reason,
            exchange=exchange,
            endpoint=endpoint,
            hint="the venue's certificate is not trusted: set options.ca_file to the CA "
            "that signed it, or fix the host name in the endpoint",
        )
    if status in (401, 403):
        return AuthenticationError(
            f"the venue refused the WebSocket upgrade with HTTP {status}",
            exchange=exchange,
            endpoint=endpoint,
            hint="the venue refused this client (credentials, an API key, a region or IP "
            "block, or a wrong URL); the hub does not retry a refusal",
        )
    if status in (429, 418):
        wait = f"; Retry-After {exc.retry_after_s:g}s" if exc.retry_after_s else ""
        return RateLimited(
            f"the venue rate-limited the WebSocket upgrade with HTTP {status}{wait}",
            retry_after_s=exc.retry_after_s,
            exchange=exchange,
            endpoint=endpoint,
            hint="the venue's connection rate limit was hit (418: the IP is banned for a "
            "while); the hub waits before trying again",
        )
    if status is not None:
        return ConnectionFailed(
            f"the venue answered the WebSocket upgrade with HTTP {status}",
            exchange=exchange,
            endpoint=endpoint,
            hint="the hub retries with backoff; check the endpoint's path if it persists",
        )
    return ConnectionFailed(
        exc.reason, exchange=exchange, endpoint=endpoint, hint="the hub reconnects"
    )


def ssl_context_for(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only those in ``ca_file``."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class WebSocketConnection:
    """One connection to a JSON-over-WebSocket venue (``ExchangeConnection``).

    It holds one WebSocket session (a ``Link``) and opens more when the
    subscribed streams exceed the venue's ``streams_per_connection``; at
    ``max_connection_age_s`` or on a ``serverShutdown`` notice a link is
    replaced by a new one before it is closed (``rotation``), so the
    subscribers see neither a gap nor a duplicate.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        sink: Sink,
        options: WebSocketOptions,
        dialect: Dialect,
        pacer: ConnectPacer | None = None,
    ) -> None:
        self._config = config
        self.sink = sink
        self.options = options
        self._dialect = dialect
        self._pacer = pacer or ConnectPacer()
        self.exchange = sink.exchange
        self._endpoint = ""
        self._links: list[Link] = []
        self._bytes_gone = 0  # bytes of links that ended (rotation), for health()
        self._where: dict[str, Link] = {}
        """symbol -> the link that carries it"""
        self._session_config: SessionConfig | None = None
        self._settings: TransportSettings | None = None
        self._ctx: ssl.SSLContext | None = None
        self._host = ""
        self._loopback = False
        limits = dialect.limits
        # Evenly spaced, one a second short of the limit: the pongs the transport sends on
        # its own count too, and the network can bunch messages up on the venue's side,
        # which a burst-then-wait window would turn into a violation.
        per_second = max(1, math.floor(limits.messages_per_second) - 1)
        self._message_interval_s = 1.0 / per_second
        self._tg: anyio.abc.TaskGroup | None = None
        self._connected = False
        self._closing = False
        self._failure = ""
        self._detail = "not connected"
        self._resubscribes = 0
        self._rotations = 0
        self._gates: list[RotationGate] = []
        """The rotations under way."""

    # -- errors ---------------------------------------------------------------------------
    def _failed(self, message: str, hint: str = "the hub reconnects") -> ConnectionFailed:
        return ConnectionFailed(message, exchange=self.exchange, endpoint=self._endpoint, hint=hint)

    def _config_error(self, message: str, hint: str) -> ConfigError:
        return ConfigError(message, exchange=self.exchange, endpoint=self._endpoint, hint=hint)

    # -- diagnostics ----------------------------------------------------------------------
    @property
    def session(self) -> DialectSession | None:
        """The dialect session of the first link, once connected (tests, diagnostics)."""
        return self._links[0].session if self._links else None

    @property
    def links(self) -> int:
        """WebSocket sessions open now (more than one past ``streams_per_connection``)."""
        return len(self._links)

    @property
    def resubscribes(self) -> int:
        """Book resyncs done by resubscribing in a session (``Resubscribe``)."""
        return self._resubscribes

    @property
    def rotations(self) -> int:
        """Sessions replaced without a gap (age limit or ``serverShutdown``)."""
        return self._rotations

    @property
    def transport_name(self) -> str:
        """``websockets`` or ``picows``."""
        return self.options.transport

    # -- ExchangeConnection -------------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Open the WebSocket to ``endpoint`` (the stream URL as configured)."""
        self._endpoint = endpoint
        if self._links or self._closing:
            raise self._failed(
                "connect() after close()" if self._closing else "connect() called twice",
                hint="create a new connection from the factory for each session",
            )
        options = self.options
        try:
            self._host = check_stream_url(endpoint)
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
            self._ctx = ssl_context_for(ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise self._config_error(
                f"options.ca_file: cannot load {ca_file}: {exc}",
                hint="point ca_file at a readable PEM file of CA certificates",
            ) from None
        self._session_config = SessionConfig(
            endpoint=endpoint,
            channels=tuple(options.channels or self._dialect.default_channels),
            rest_url=rest_url,
            snapshot_limit=options.snapshot_limit,
            max_buffered_events=options.max_buffered_events,
        )
        self._loopback = is_loopback_host(self._host)
        self._settings = TransportSettings(
            url=endpoint,
            ssl=self._ctx if urlsplit(endpoint).scheme == "wss" else None,
            max_size=options.max_frame_bytes,
            open_timeout=self._config.connect_timeout_ms / 1000,
            compression=options.compression,
            use_proxy=not self._loopback,
            user_agent=USER_AGENT,
        )
        link = await self._open_link(self.sink)
        self._links.append(link)
        self.sink.reset_session()
        self._connected = True
        self._detail = f"{self._dialect.name} over {link.transport.name}"
        log.info(
            "[%s] connected to %s (%s, %s)",
            self.exchange,
            endpoint,
            self._dialect.name,
            link.transport.name,
        )

    async def _open_link(self, sink: Sink) -> Link:
        """A new WebSocket session delivering to ``sink`` (paced under the venue's limit)."""
        settings, config = self._settings, self._session_config
        assert settings is not None and config is not None
        try:
            transport = new_transport(self.options.transport)
        except ImportError:
            raise self._config_error(
                "options.transport: picows is not installed",
                hint="pip install 'hub-plugin-websocket[fast]' or use transport = 'websockets'",
            ) from None
        try:
            session = self._dialect.new_session(sink, config)
        except ValueError as exc:
            raise self._config_error(f"options: {exc}", hint="fix the options") from None
        await self._pacer.wait(self._dialect, self._host)
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
            raise self._failed(f"cannot connect: {connect_failure(exc)}") from None
        link = Link(
            self,
            transport,
            session,
            self._new_http,
            self._message_interval_s,
            self._dialect.limits.snapshots_per_second,
        )
        link.retire_ns = link.opened_ns + int(self.options.max_connection_age_s * 1e9)
        return link

    def _new_http(self) -> SnapshotClient:
        config = self._session_config
        rest_url = config.rest_url if config is not None else ""
        return SnapshotClient(
            self._ctx if rest_url.startswith("https") else None,
            self.options.snapshot_timeout_s,
            trust_env=not self._loopback,
            user_agent=USER_AGENT,
        )

    def _connect_failed(self, exc: ConnectFailed) -> HubError:
        return classify_connect_failure(exc, exchange=self.exchange, endpoint=self._endpoint)

    async def run(self) -> None:
        """Deliver frames to the dialect until the session ends (``ConnectionFailed``)."""
        if not self._links or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        first = self._links[0]
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for link in self._links[1:]:
                    tg.start_soon(self._run_link, link)
                await self._run_link(first)
                if not (self._failure or self._closing):
                    await anyio.sleep_forever()  # first was replaced: the others carry on
        finally:
            self._tg = None
            self._connected = False
            self._detail = "closed" if self._closing else "disconnected"
            for link in self._links:
                link.fail_pending(self._failure or "the connection closed")
        if self._failure and not self._closing:
            raise self._failed(self._failure)

    async def _run_link(self, link: Link) -> None:
        tg = self._tg
        assert tg is not None
        await link.run(tg)
        if link.retired or self._closing:
            return
        # any link that ends takes the connection with it: the hub reconnects, and
        # resubscribes every symbol, on fresh sessions
        if not self._failure:
            self._failure = link.failure or "the connection closed"
        for other in self._links:
            if other is not link and not other.closing:
                tg.start_soon(other.close)
        tg.cancel_scope.cancel()

    def _start_link(self, link: Link) -> None:
        self._links.append(link)
        tg = self._tg
        if tg is not None:
            tg.start_soon(self._run_link, link)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe every configured channel of ``symbols``, over as many WebSocket
        sessions as the venue's ``streams_per_connection`` needs; ``SubscriptionError``
        names what the venue refused or did not acknowledge."""
        self._require_up()
        wanted = [s for s in self._validated(symbols) if s not in self._where]
        if not wanted:
            return
        limit = self._dialect.limits.streams_per_connection
        per_symbol = len(self.options.channels or self._dialect.default_channels)
        if per_symbol > limit:
            raise SubscriptionError(
                f"{per_symbol} channels per symbol exceed the venue's {limit} streams per "
                "connection",
                exchange=self.exchange,
                endpoint=self._endpoint,
                hint="subscribe fewer channels",
            )
        plan: list[tuple[Link, list[str]]] = []
        todo = list(wanted)
        for link in self._links:
            # not a session being replaced, nor its replacement (its streams are being
            # switched; a new one would wait for an alignment that cannot come)
            if link.retiring or link.joining or link.closing or not todo:
                continue
            room = (limit - len(link.session.streams)) // per_symbol
            if room > 0:
                plan.append((link, todo[:room]))
                del todo[:room]
        while todo:
            link = await self._open_link(self.sink)
            self._start_link(link)
            log.info(
                "[%s] opened WebSocket session %d: %d streams per session at most",
                self.exchange,
                len(self._links),
                limit,
            )
            take = limit // per_symbol
            plan.append((link, todo[:take]))
            del todo[:take]
        for link, syms in plan:
            link.symbols.extend(syms)
            for s in syms:
                self._where[s] = link
        errors: list[SubscriptionError | ConnectionFailed] = []

        async def one(link: Link, syms: list[str]) -> None:
            try:
                await self._run_requests(link, link.session.subscribe(syms), "subscribe")
            except (SubscriptionError, ConnectionFailed) as exc:
                # the symbols stay assigned: the venue may have taken some of them
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for link, syms in plan:
                tg.start_soon(one, link, syms)
        if errors:
            raise errors[0]

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Unsubscribe ``symbols`` (not subscribed: no error). Their books are dropped;
        a session left without symbols (other than the first) is closed."""
        wanted = set(self._validated(symbols))
        for s in wanted:
            self._where.pop(s, None)
        for gate in self._gates:
            gate.forget(wanted)
        # every session that carries a symbol: during a rotation, the old one and its
        # replacement both do
        by_link: dict[Link, list[str]] = {}
        for link in self._links:
            syms = [s for s in link.symbols if s in wanted]
            if syms:
                by_link[link] = syms
                link.symbols = [s for s in link.symbols if s not in wanted]
        for link, syms in by_link.items():
            requests = link.session.unsubscribe(syms)
            if self._connected and link.running:
                await self._run_requests(link, requests, "unsubscribe")
            if (
                not link.symbols
                and link is not self._links[0]
                and not (link.retiring or link.joining)
            ):
                link.retired = True
                self._drop_link(link)
                await link.close()

    async def list_subscriptions(self) -> list[str]:
        """The streams the venue says this connection has (``LIST_SUBSCRIPTIONS`` on every
        session)."""
        self._require_up()
        out: list[str] = []
        for link in list(self._links):
            req = link.session.list_subscriptions()
            if req is None:
                out.extend(link.session.streams)
                continue
            results = await self._run_requests(link, [req], "list")
            result = results[0] if results else None
            if isinstance(result, list):
                out.extend(str(s) for s in result)
        return sorted(out)

    async def probe(self) -> None:
        """Ping every session (paced); no pong within ``pong_timeout_s`` ends the connection."""
        if not self._connected or not self._links:
            raise self._failed("probe() on a connection that is not up")
        for link in list(self._links):
            pending = Pending(None)  # a ping: queued behind requests, never answered
            link.queue(None, pending)
            await pending.sent.wait()
            if pending.lost:
                raise self._failed(f"ping failed: {pending.failure}")

    async def close(self) -> None:
        """Close every WebSocket session and REST client. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._connected = False
        self._detail = "closed"
        for link in list(self._links):
            await link.close()
        tg = self._tg
        if tg is not None:
            tg.cancel_scope.cancel()

    def _drop_link(self, link: Link) -> None:
        """Forget a link that ended (rotation, failed handshake), keeping its byte count."""
        self._links.remove(link)
        self._bytes_gone += link.transport.bytes_received

    def health(self) -> ConnectionHealth:
        """Connected or not, the endpoint, and the monotonic ns of the last frame (the
        oldest across sessions, so that one silent session is noticed)."""
        links = self._links
        last = min((link.transport.last_activity_ns for link in links), default=0)
        detail = self._detail
        if len(links) > 1:
            detail = f"{detail}, {len(links)} sessions"
        return ConnectionHealth(
            connected=self._connected,
            endpoint=self._endpoint,
            last_activity_ns=last,
            detail=detail,
            bytes_received=self._bytes_gone + sum(k.transport.bytes_received for k in links),
        )

    # -- what a link's dialect session returns (synchronous, on the reader) -----------------
    def on_event(self, link: Link, event: DialectEvent) -> None:
        if isinstance(event, NeedSnapshot):
            link.need_snapshot(event)
        elif isinstance(event, Ack):
            link.requests.acknowledge(event.id, result=event.result)
        elif isinstance(event, Refused):
            why = f"{event.message} (code {event.code})"
            if event.id is None or not link.requests.refuse(event.id, why):
                self.sink.venue_error(event.code, event.message)  # counted and logged
        elif isinstance(event, Resubscribe):
            # before ServerShutdown, its base class: a book resync keeps the session
            log.info("[%s] %s", self.exchange, event.reason)
            self._resubscribes += 1
            if event.delay_s > 0:
                link.queue_later(event.delay_s, list(event.requests))
            else:
                link.queue_many([(req, None) for req in event.requests])
        elif isinstance(event, ServerShutdown):
            self._replace(link, event.reason)
        elif isinstance(event, Notice):
            log.info("[%s] %s", self.exchange, event.text)

    def on_age_limit(self, link: Link) -> None:
        """A link reached ``max_connection_age_s`` (from its timer)."""
        age = self.options.max_connection_age_s
        self._replace(link, f"connection age limit of {age:g}s (max_connection_age_s) reached")

    def _replace(self, link: Link, reason: str) -> None:
        """Replace ``link`` by a new session without a gap, or (if the dialect cannot
        switch sessions) end the connection so that the hub reconnects."""
        if link.retiring or link.closing:
            return
        tg = self._tg
        if tg is None or not supports_rotation(link.session) or self._closing:
            link.end(reason)
            return
        link.retiring = True
        tg.start_soon(self._rotate, link, reason)

    async def _rotate(self, old: Link, reason: str) -> None:
        log.info("[%s] replacing a WebSocket session: %s", self.exchange, reason)
        gate = RotationGate(self.sink)
        new: Link | None = None
        self._gates.append(gate)
        try:
            new = await self._open_link(gate.new_sink)
            new.retire_ns = 0  # its age counts from the switch
            new.joining = True
            old.session.rebind(gate.old_sink)
            old.rebind()
            self._start_link(new)
            symbols = list(old.symbols)
            new.symbols.extend(symbols)
            if symbols:
                await self._run_requests(new, new.session.subscribe(symbols), "subscribe")
            gate.start_overlap()
            deadline = time.monotonic() + self.options.rotation_overlap_s
            min_overlap = min(_MIN_OVERLAP_S, self.options.rotation_overlap_s)
            # polled: this runs for a fraction of a second once a day per session
            while not gate.settled(min_overlap) and time.monotonic() < deadline:  # noqa: ASYNC110
                await anyio.sleep(_SETTLE_POLL_S)
            if old.stopped() or old.failure:
                raise self._failed(f"the old session ended during the switch: {old.failure}")
            gate.finish()  # the old session's ticks are dropped from here on
            if not gate.caught_up():
                # the new session is behind on some stream: the gate goes on dropping
                # its repeats of what the old one published, for a bounded time
                deadline = time.monotonic() + self.options.rotation_overlap_s
                while not gate.caught_up() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await anyio.sleep(_SETTLE_POLL_S)
                gate.stop_filtering()
            gate.merge_counts()
            new.session.rebind(self.sink)
            new.rebind()
            new.joining = False
        except (ConnectionFailed, SubscriptionError, ConfigError, AuthenticationError) as exc:
            log.warning("[%s] could not replace the session (%s): reconnecting", self.exchange, exc)
            gate.abandon()
            if new is not None:
                new.retired = True
                if new in self._links:
                    self._drop_link(new)
                await new.close()
            old.end(reason)
            return
        finally:
            self._gates.remove(gate)
        for s in new.symbols:
            self._where[s] = new
        new.retire_at(time.monotonic_ns() + int(self.options.max_connection_age_s * 1e9))
        old.retired = True
        index = self._links.index(old)
        self._drop_link(new)
        self._links[index] = new  # the replacement takes the old one's place
        self._rotations += 1
        log.info(
            "[%s] WebSocket session replaced (%s): %s",
            self.exchange,
            reason,
            gate.describe(),
        )
        await old.close()

    # -- requests -------------------------------------------------------------------------
    async def _run_requests(self, link: Link, requests: list[Request], op: str) -> list[object]:
        if not requests:
            return []
        if link.closing or not self._connected:
            raise self._failed(f"{op}: the connection is not up")
        pendings = [link.requests.open(req.id, req.symbols, paced=True) for req in requests]
        link.queue_many([(req, p) for req, p in zip(requests, pendings, strict=True)])
        try:
            await link.requests.wait(pendings, op)
        except ConnectionFailed as exc:
            raise self._failed(exc.message) from None
        refused = [(r, p) for r, p in zip(requests, pendings, strict=True) if p.failure]
        if refused:
            details = "; ".join(
                f"{', '.join(r.symbols)} ({_describe_streams([r])}): {p.failure}"
                if r.symbols
                else f"{_describe_streams([r])}: {p.failure}"
                for r, p in refused
            )
            raise SubscriptionError(
                f"the venue refused to {op} {details}",
                refused={s: p.failure for r, p in refused for s in r.symbols},
                exchange=self.exchange,
                endpoint=self._endpoint,
                hint="check the symbols (the venue's own, upper case) and the channels",
            )
        return [p.result for p in pendings]

    # -- helpers --------------------------------------------------------------------------
    def _require_up(self) -> None:
        if not self._links or not self._connected:
            raise self._failed("the connection is not up")

    def _validated(self, symbols: Sequence[str]) -> list[str]:
        return checked_symbols(
            symbols,
            self._dialect.validate_symbol,
            exchange=self.exchange,
            endpoint=self._endpoint,
            hint="use the venue's own symbols, upper case (e.g. BTCUSDT)",
        )


def _describe_streams(requests: Sequence[Request]) -> str:
    streams = [s for r in requests for s in (r.streams or r.symbols or (r.op,))]
    shown = ", ".join(streams[:8])
    more = f" and {len(streams) - 8} more" if len(streams) > 8 else ""
    return f"{shown}{more}"
