"""The thin anyio TCP transport around ``ClientCodec``: one HubFeed session.

After the text handshake the socket carries DBN records only; ``run()`` hands
each read to the sink as one buffer (``Sink.feed_dbn``), and the
sink's compiled decoder publishes ticks and calls back ``_on_control`` for
symbol-mapping, error and system records, which is how subscribe
acknowledgements, per-symbol refusals and pongs come back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import anyio
import anyio.abc

from hub_core.plugin import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    Pending,
    PendingRequests,
    ProtocolError,
    Sink,
    SubscriptionError,
    checked_symbols,
    connect_failure,
    redact_endpoint,
    split_host_port,
    wait_for_capacity,
)
from hub_plugin_ninjatrader import codec as c
from hub_plugin_ninjatrader.options import NinjaTraderOptions

log = logging.getLogger("hub_plugin_ninjatrader")

CLIENT_NAME = "hub-plugin-ninjatrader/0.1.0"

_HINT_REACH = (
    "check that NinjaTrader 8 is running with the HubFeed add-on enabled and listening "
    "on this host:port (Control Center > Log shows the add-on's listen address)"
)
_HINT_NOT_HUBFEED = (
    "the peer does not speak the HubFeed protocol; point the endpoint at the HubFeed "
    "add-on's port, not at another service"
)


split_endpoint = split_host_port
"""``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)`` (the kit's ``split_host_port``)."""


class NinjaTraderConnection:
    """One session with the HubFeed add-on inside NinjaTrader 8 (``ExchangeConnection``)."""

    def __init__(self, config: ExchangeConfig, sink: Sink, options: NinjaTraderOptions) -> None:
        self._config = config
        self._sink = sink
        self._options = options
        self._exchange = sink.exchange
        self._endpoint = ""
        self._stream: anyio.abc.SocketStream | None = None
        self._codec = c.ClientCodec()
        self._requests = PendingRequests(
            self._exchange,
            timeout_s=options.subscribe_timeout_s,
            timeout_hint="check that the add-on is running and its data connection is up, or "
            "raise options.subscribe_timeout_s",
            venue="the add-on",
            unanswered="refuse",
        )
        self._send_lock = self._requests.send_lock
        self._next_id = 1
        self._subscribed: set[str] = set()
        self._mapped: dict[str, int] = {}
        self._connected = False
        self._closing = False
        self._last_activity_ns = 0
        self._bytes_received = 0
        self._detail = "not connected"
        self.session_id = ""
        """The add-on's id for this session (for its log), once connected."""
        self.heartbeat_s = 0
        """The heartbeat interval the add-on agreed to, once connected."""

    # -- errors -------------------------------------------------------------
    def _failed(self, message: str, hint: str = _HINT_REACH) -> ConnectionFailed:
        return ConnectionFailed(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=hint
        )

    def _protocol_error(self, message: str, hint: str = _HINT_NOT_HUBFEED) -> ProtocolError:
        return ProtocolError(message, exchange=self._exchange, endpoint=self._endpoint, hint=hint)

    # -- ExchangeConnection ---------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Open TCP to ``endpoint`` (``host:port``) and log on to the add-on."""
        self._endpoint = endpoint
        self._requests.endpoint = redact_endpoint(endpoint)
        if self._stream is not None or self._closing:
            raise self._failed(
                "connect() after close()" if self._closing else "connect() called twice",
                hint="create a new connection from the factory for each session",
            )
        try:
            host, port = split_endpoint(endpoint)
        except ValueError as exc:
            raise ConfigError(
                f"endpoint: {exc}",
                exchange=self._exchange,
                hint='write the add-on address as "127.0.0.1:7496"',
            ) from None
        timeout = self._config.connect_timeout_ms / 1000
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise self._failed(f"TCP connect timed out after {timeout:g}s") from None
        except OSError as exc:
            raise self._failed(f"cannot connect: {connect_failure(exc)}") from None
        self._stream = stream
        try:
            with anyio.fail_after(self._options.handshake_timeout_s):
                await self._handshake(stream)
        except TimeoutError:
            await self._abort()
            raise self._failed(
                f"no HubFeed handshake within {self._options.handshake_timeout_s:g}s",
                hint=_HINT_NOT_HUBFEED,
            ) from None
        except BaseException:
            await self._abort()
            raise
        sink = self._sink
        sink.reset_session()
        sink.configure_dbn(self._options.check_sequence, self._options.max_record_len)
        sink.control = self._on_control
        self._connected = True
        self._last_activity_ns = time.monotonic_ns()
        self._detail = f"session {self.session_id}" if self.session_id else "connected"
        log.info("[%s] connected to HubFeed add-on at %s", self._exchange, endpoint)

    async def _handshake(self, stream: anyio.abc.SocketStream) -> None:
        codec = self._codec
        creds = self._config.credentials
        user = creds.username.get_secret_value() if creds.username is not None else None
        password = creds.password.get_secret_value() if creds.password is not None else None
        if (user is None) != (password is None):
            raise AuthenticationError(
                "credentials need both username and password",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="set both username_env and password_env, or neither",
            )
        while True:
            try:
                event = codec.next_event()
            except c.CodecError as exc:
                raise self._protocol_error(f"bad handshake: {exc}") from None
            if isinstance(event, c.NeedData):
                try:
                    data = await stream.receive(self._options.read_size)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    data = b""
                self._bytes_received += len(data)
                try:
                    codec.receive_data(data)
                except c.CodecError as exc:
                    raise self._protocol_error(f"bad handshake: {exc}") from None
            elif isinstance(event, c.Greeting):
                if event.version < c.PROTOCOL_VERSION:
                    raise self._protocol_error(
                        f"the add-on speaks HubFeed version {event.version}; "
                        f"this plugin needs {c.PROTOCOL_VERSION}",
                        hint="update HubFeedAddOn.cs in NinjaTrader to this plugin's version",
                    )
                hello = c.Hello(
                    c.PROTOCOL_VERSION,
                    user,
                    password,
                    None,
                    self._options.heartbeat_interval_s,
                    CLIENT_NAME,
                )
                try:
                    line = codec.send(hello)
                except c.CodecError:
                    # never echo the values: they are secrets
                    raise AuthenticationError(
                        "the username cannot be sent (it holds '|' or a control character)",
                        exchange=self._exchange,
                        endpoint=self._endpoint,
                        hint="use a username of printable characters without '|'",
                    ) from None
                await stream.send(line)
            elif isinstance(event, c.HandshakeAccepted):
                self.session_id = event.session_id
                self.heartbeat_s = event.heartbeat_s
                return
            elif isinstance(event, c.HandshakeRejected):
                raise self._rejected(event)
            else:  # ConnectionClosed
                raise self._failed("the add-on closed the connection during the handshake")

    def _rejected(self, event: c.HandshakeRejected) -> Exception:
        reason = event.error or "no reason given"
        if event.code == c.REJECT_AUTH:
            return AuthenticationError(
                f"the add-on refused the credentials: {reason}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="check the username/password environment variables against the "
                "users in the add-on's HubFeed.config",
            )
        if event.code == c.REJECT_VERSION:
            return self._protocol_error(
                f"the add-on refused protocol version {c.PROTOCOL_VERSION}: {reason}",
                hint="install matching versions of HubFeedAddOn.cs and hub-plugin-ninjatrader",
            )
        if event.code == c.REJECT_LIMIT:
            return self._failed(
                f"the add-on refused the session: {reason}",
                hint="close other hub sessions or raise max_clients in HubFeed.config",
            )
        return self._protocol_error(f"the add-on refused the logon ({event.code}): {reason}")

    async def run(self) -> None:
        """Read DBN records into the sink until the session ends.

        Returns after ``close()``; raises ``ConnectionFailed`` when the add-on
        or the network drops the connection.
        """
        stream = self._stream
        if stream is None or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        sink = self._sink
        read_size = self._options.read_size
        try:
            # bytes that came in the same read as the logon reply
            while True:
                event = self._codec.next_event()
                if not isinstance(event, c.DbnData):
                    break
                sink.feed_dbn(event.data, time.time_ns())
            while True:
                try:
                    data = await stream.receive(read_size)
                except anyio.EndOfStream:
                    if self._closing:
                        return
                    raise self._failed(
                        "the add-on closed the connection",
                        hint="NinjaTrader or the add-on stopped, or dropped this client; "
                        "the hub reconnects",
                    ) from None
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                    if self._closing:
                        return
                    raise self._failed(
                        f"connection lost: {str(exc) or type(exc).__name__}"
                    ) from None
                self._last_activity_ns = time.monotonic_ns()
                self._bytes_received += len(data)
                sink.feed_dbn(data, time.time_ns())
                if sink.backpressured:
                    # a consumer chose overflow="block": pause reading (TCP flow
                    # control then holds the add-on back) until it catches up
                    await wait_for_capacity(sink)
        finally:
            self._connected = False
            self._detail = "closed" if self._closing else "disconnected"
            self._requests.lose_all("the connection closed")

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe ``symbols``; raises ``SubscriptionError`` naming any the add-on refused."""
        wanted = self._validated(symbols)
        if not wanted:
            return
        requests = [
            await self._request(c.Subscribe(0, group, tuple(self._options.schemas)), group)
            for group in c.chunk_symbols(wanted)
        ]
        try:
            await self._requests.subscribe(
                requests,
                hint="use NinjaTrader instrument names (e.g. 'ES 03-26') that exist in "
                "NinjaTrader's Instruments window, and check the data connection there",
            )
        except SubscriptionError as exc:
            self._subscribed.update(s for s in wanted if s not in exc.refused)
            raise
        self._subscribed.update(wanted)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Unsubscribe ``symbols`` (symbols not subscribed are not an error)."""
        wanted = self._validated(symbols)
        self._subscribed.difference_update(wanted)
        if not wanted or not self._connected:
            return  # nothing streams on a dead session
        requests = [
            await self._request(c.Unsubscribe(0, group), group) for group in c.chunk_symbols(wanted)
        ]
        refused = await self._requests.wait(requests, "unsubscribe")
        if refused:
            raise SubscriptionError(
                f"the add-on refused to unsubscribe: {next(iter(refused.values()))}",
                refused=refused,
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="see the add-on's log in NinjaTrader (Control Center > Log)",
            )

    async def probe(self) -> None:
        """Send a ping; the add-on's pong (or any data) refreshes ``last_activity_ns``."""
        if not self._connected:
            raise self._failed("probe() on a connection that is not up")
        req_id = self._take_id()
        await self._send(c.encode_request(c.Ping(req_id)))

    async def close(self) -> None:
        """Close the session. Idempotent; a running ``run()`` returns."""
        if self._closing:
            return
        self._closing = True
        self._connected = False
        self._detail = "closed"
        await self._abort()
        self._requests.lose_all("the connection was closed")

    def health(self) -> ConnectionHealth:
        """Connected or not, the endpoint, and the monotonic ns of the last read."""
        return ConnectionHealth(
            connected=self._connected,
            endpoint=self._endpoint,
            last_activity_ns=self._last_activity_ns,
            bytes_received=self._bytes_received,
            detail=self._detail,
        )

    @property
    def subscribed(self) -> frozenset[str]:
        """Symbols the add-on accepted and that were not unsubscribed since."""
        return frozenset(self._subscribed)

    @property
    def instrument_ids(self) -> dict[str, int]:
        """The instrument id the add-on assigned to each symbol in this session."""
        return dict(self._mapped)

    # -- internals --------------------------------------------------------------
    async def _abort(self) -> None:
        stream = self._stream
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        sink = self._sink
        if sink.control == self._on_control:
            sink.control = None

    def _validated(self, symbols: Sequence[str]) -> list[str]:
        return checked_symbols(
            symbols,
            c.validate_symbol,
            exchange=self._exchange,
            endpoint=self._endpoint,
            hint="symbols are NinjaTrader instrument names of at most 70 bytes without ',' or '|'",
        )

    def _take_id(self) -> int:
        req_id = self._next_id
        self._next_id = 1 if req_id >= c.MAX_REQUEST_ID else req_id + 1
        return req_id

    async def _send(self, data: bytes) -> None:
        stream = self._stream
        if stream is None or not self._connected:
            raise self._failed("the connection is not up")
        # bounded: an add-on that stopped reading must not hang subscribe() or probe()
        timeout = self._options.subscribe_timeout_s
        try:
            with anyio.fail_after(timeout):
                async with self._send_lock:
                    await stream.send(data)
        except TimeoutError:
            raise self._failed(
                f"the add-on took no data for {timeout:g}s", hint="the hub reconnects"
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise self._failed(f"send failed: {str(exc) or type(exc).__name__}") from None

    async def _request(
        self, template: c.Subscribe | c.Unsubscribe, symbols: tuple[str, ...]
    ) -> Pending:
        req_id = self._take_id()
        if isinstance(template, c.Subscribe):
            event: c.Subscribe | c.Unsubscribe = c.Subscribe(req_id, symbols, template.schemas)
        else:
            event = c.Unsubscribe(req_id, symbols)
        pending = self._requests.open(req_id, symbols)  # before the send: the ack may win
        try:
            await self._send(c.encode_request(event))
        except BaseException:
            self._requests.discard(req_id)
            raise
        return pending

    def _on_control(self, kind: str, number: int, text: str) -> None:
        """``Sink.control``: called by the decoder, inside ``feed_dbn``.

        Must not raise: an exception here would escape the compiled decoder.
        """
        try:
            self._dispatch(c.parse_control(kind, number, text))
        except Exception:  # defensive: log and go on, the stream must keep flowing
            log.exception("[%s] control record handling failed", self._exchange)

    def _dispatch(self, event: c.ControlEvent) -> None:
        if isinstance(event, c.SymbolMapped):
            self._mapped[event.symbol] = event.instrument_id
        elif isinstance(event, c.SymbolRejected):
            reason = event.reason or f"error code {event.code}"
            if not self._requests.refuse_symbol(event.req_id, event.symbol, reason):
                log.warning(
                    "[%s] add-on refused %r (request %d): %s",
                    self._exchange,
                    event.symbol,
                    event.req_id,
                    event.reason,
                )
        elif isinstance(event, c.RequestFailed):
            if not self._requests.refuse(event.req_id, event.reason or f"error code {event.code}"):
                log.warning(
                    "[%s] add-on error for %s request %d: %s",
                    self._exchange,
                    event.op,
                    event.req_id,
                    event.reason,
                )
        elif isinstance(event, c.SubscribeAck | c.UnsubscribeAck):
            self._requests.acknowledge(event.req_id)
        elif isinstance(event, c.VenueError):
            log.warning("[%s] add-on error (code %d): %s", self._exchange, event.code, event.text)
        elif isinstance(event, c.Notice):
            log.info("[%s] add-on notice (code %d): %s", self._exchange, event.code, event.text)
        # Pong and Heartbeat: the read itself refreshed last_activity_ns
