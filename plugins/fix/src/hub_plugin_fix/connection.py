"""The thin anyio transport around ``FixSession``: one FIX market-data session.

``connect()`` opens TCP (TLS for ``fixs://``) and logs on; ``run()`` reads,
lets the session decode (in-sequence market data goes straight to the sink
from the compiled scanner), writes the session's automatic answers and runs
its heartbeat timer; ``subscribe()`` sends one MarketDataRequest (35=V) per
symbol and waits for its first data or its refusal (35=Y, or a Reject naming the
request); ``probe()`` sends a TestRequest; ``close()`` logs out and waits briefly
for the answer.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from hub_core.plugin import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    Pending,
    PendingRequests,
    ProtocolError,
    SequenceMismatch,
    Sink,
    checked_symbols,
    connect_failure,
    redact_endpoint,
    split_host_port,
    wait_for_capacity,
)
from hub_plugin_fix import codec as c
from hub_plugin_fix.codec import Header, MarketDataDecoder
from hub_plugin_fix.options import FixOptions, tls_context
from hub_plugin_fix.store import FileStore, MemoryStore

log = logging.getLogger("hub_plugin_fix")

READ_SIZE = 65_536
"""Bytes per socket read; each read is scanned as one buffer."""
SUBSCRIBE_WAIT_S = 5.0
"""How long ``subscribe()`` waits for each symbol's first data or refusal. FIX has no
positive acknowledgement: a venue that stays quiet is taken as accepting."""
CLOSE_WAIT_S = 1.0
"""How long ``close()`` waits for the counterparty's Logout after ours."""
STORE_FLUSH_S = 0.5
"""How often the inbound sequence number is written to the store while data flows."""
SILENT_LOGON_LIMIT = 3
"""Logons in a row that the counterparty answers by closing the connection after which
the error's hint names session hours and CompIDs (it stays a transient
``ConnectionFailed``, retried with backoff: a venue outside its session hours hangs up
exactly like that)."""

_DEADLINE_MARGIN_S = 0.05
"""How much earlier than the caller's deadline ``connect()``'s own timeouts end."""

_HINT_REACH = "check the host and port, and that the venue accepts FIX connections from here"
_HINT_LOGON = (
    "check options.sender_comp_id / target_comp_id and the username/password environment "
    "variables against what the venue assigned"
)
_HINT_HANGUP = (
    "the venue hangs up on our Logon: it may be outside its session hours (the hub keeps "
    "retrying with backoff), or not know this session; "
    "check options.sender_comp_id / target_comp_id and the credentials"
)
_HINT_TLS = "check that the venue speaks TLS on this port (else use a fix:// endpoint)"
_HINT_PLAIN = "; if the venue expects FIX over TLS on this port, use a fixs:// endpoint"


def _within_caller_deadline(seconds: float) -> float:
    """``seconds``, cut to end a little before the deadline the caller runs under (the
    supervisor bounds all of ``connect()`` by ``connect_timeout_ms``), so that our own
    timeout fires first and says which stage was slow instead of a bare TimeoutError."""
    left = anyio.current_effective_deadline() - anyio.current_time() - _DEADLINE_MARGIN_S
    return max(min(seconds, left), 0.0)


@dataclass
class EndpointParts:
    host: str
    port: int
    tls: bool


def parse_endpoint(endpoint: str) -> EndpointParts:
    """``fix://host:port``, ``fixs://host:port`` (TLS) or ``host:port``; IPv6 as
    ``[addr]:port``. Raises ``ValueError``."""
    tls = False
    rest = endpoint
    if "://" in endpoint:
        scheme, _, rest = endpoint.partition("://")
        if scheme not in ("fix", "fixs"):
            raise ValueError(f"{endpoint!r}: the scheme must be fix:// or fixs:// (TLS)")
        tls = scheme == "fixs"
    host, port = split_host_port(rest.rstrip("/"), shown=endpoint, form="fix://host:port")
    return EndpointParts(host, port, tls)


@dataclass
class SessionMemory:
    """What outlives one connection of a session (kept by the factory)."""

    store: MemoryStore
    silent_logons: int = 0


@dataclass
class _Subscription:
    symbol: str
    req_id: str
    seq: int = 0
    """MsgSeqNum of its MarketDataRequest (a Reject names it in RefSeqNum)."""


class FixConnection:
    """One FIX market-data session (``hub_core.ExchangeConnection``)."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: Sink,
        options: FixOptions,
        memory: SessionMemory | Callable[[str], SessionMemory],
    ) -> None:
        self._config = config
        self._sink = sink
        self._options = options
        # the store can depend on the endpoint (one file per venue address): chosen
        # at connect()
        self._memory_for = memory if callable(memory) else lambda _endpoint: memory
        self._memory = SessionMemory(MemoryStore())
        self._exchange = sink.exchange
        self._endpoint = ""
        self._tls = False
        self._stream: anyio.abc.ByteStream | None = None
        self._session: c.FixSession | None = None
        self._md = MarketDataDecoder(
            sink,
            options.market_depth,
            "0" in options.entry_types,
            "1" in options.entry_types,
            "2" in options.entry_types,
        )
        self._send_lock = anyio.Lock()
        self._resync = False
        self.resyncs = 0
        """Times the snapshots were requested again after lost messages."""
        self._outbox = bytearray()
        """Bytes made (sequence numbers taken) and not yet written, in order."""
        self._subs: dict[str, _Subscription] = {}
        # FIX answers a MarketDataRequest only to refuse it (35=Y): data, or silence
        # past the wait, is acceptance
        self._requests = PendingRequests(
            self._exchange, timeout_s=SUBSCRIBE_WAIT_S, unanswered="accept"
        )
        self._by_req: dict[str, _Subscription] = {}
        self._req_prefix = secrets.token_hex(3)
        self._req_count = 0
        self._connected = False
        self._closing = False
        self._reading = False
        self._logged_out = anyio.Event()
        self._last_activity_ns = 0
        self._bytes_received = 0
        self._last_data_ns = 0
        self._prev_data_ns = 0
        """Wall-clock ns of the read before the latest one."""
        self._gap_from_ns = 0
        """Start of the blind window of the sequence gap being recovered (0: none)."""
        self._last_flush = 0.0
        self._detail = "not connected"

    # -- errors -------------------------------------------------------------------------
    def _failed(self, message: str, hint: str = _HINT_REACH) -> ConnectionFailed:
        return ConnectionFailed(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=hint
        )

    def _sequence_mismatch(self, what: str, numbers: tuple[int, int]) -> SequenceMismatch:
        """Sequence numbers disagree (one side reset, or a store was lost): retrying the
        same Logon gives the same answer, so the connection stops with both numbers,
        where ours are kept, and what to change."""
        expected, received = numbers
        store = self._memory.store
        where = store.describe()
        clear = (
            f"delete {where} (the hub then starts at 1) and reset the session with the venue"
            if isinstance(store, FileStore)
            else "restart the hub (sequence numbers kept in memory) and reset the session "
            "with the venue"
        )
        return SequenceMismatch(
            f"sequence numbers disagree: {what} (expected MsgSeqNum "
            f"{expected or 'not given'}, received {received or 'not given'}; sequence "
            f"store: {where})",
            exchange=self._exchange,
            endpoint=self._endpoint,
            hint="if the venue allows it, set options.reset_on_logon = true (both sides "
            f"start again at 1 on every Logon); otherwise {clear}",
        )

    def _auth(self, message: str) -> AuthenticationError:
        return AuthenticationError(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=_HINT_LOGON
        )

    def _tls_context(self, tls: bool) -> ssl.SSLContext | None:
        """The client TLS context for a ``fixs://`` endpoint, None for ``fix://``."""
        ca_file = self._options.ca_file
        if not tls:
            if ca_file is not None:
                raise ConfigError(
                    f"options.ca_file is set but {self._endpoint} is plain TCP",
                    exchange=self._exchange,
                    endpoint=self._endpoint,
                    hint="write the endpoint as fixs://host:port for FIX over TLS, or "
                    "remove ca_file",
                )
            return None
        try:
            return tls_context(ca_file)
        except ValueError as exc:
            raise ConfigError(
                f"options.ca_file: {exc}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="point ca_file at a PEM file holding the venue's CA certificate(s)",
            ) from None

    def _verify_hint(self) -> str:
        ca_file = self._options.ca_file
        if ca_file is None:
            return (
                "the venue's certificate is not signed by a CA this machine trusts, or is "
                "not issued for this host name; if the venue uses a private CA, set "
                "options.ca_file to a PEM file with its CA certificate (verification "
                "cannot be turned off)"
            )
        return (
            f"check that options.ca_file ({ca_file}) holds the CA that signed the venue's "
            "certificate and that the certificate names the endpoint's host"
        )

    # -- ExchangeConnection -------------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Open TCP (TLS for ``fixs://``, verified against ``options.ca_file`` or the
        system's CAs) to ``endpoint`` and log on."""
        self._endpoint = endpoint
        self._requests.endpoint = redact_endpoint(endpoint)
        if self._stream is not None or self._closing:
            raise self._failed(
                "connect() after close()" if self._closing else "connect() called twice",
                hint="create a new connection from the factory for each session",
            )
        try:
            where = parse_endpoint(endpoint)
        except ValueError as exc:
            raise ConfigError(
                f"endpoint: {exc}",
                exchange=self._exchange,
                hint='write the venue address as "fix://host:port" (fixs:// for TLS)',
            ) from None
        self._tls = where.tls
        ssl_context = self._tls_context(where.tls)
        timeout = _within_caller_deadline(self._config.connect_timeout_ms / 1000)
        stage = "TCP connect"
        try:
            with anyio.fail_after(timeout):
                tcp = await anyio.connect_tcp(where.host, where.port)
                if ssl_context is None:
                    self._stream = tcp
                else:
                    stage = "TLS handshake"
                    try:
                        self._stream = await TLSStream.wrap(
                            tcp,
                            hostname=where.host,
                            ssl_context=ssl_context,
                            standard_compatible=False,
                        )
                    except BaseException:
                        await anyio.aclose_forcefully(tcp)
                        raise
        except TimeoutError:
            raise self._failed(
                f"{stage} timed out after {timeout:.3g}s",
                hint=_HINT_REACH if stage == "TCP connect" else _HINT_TLS,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._failed(
                f"TLS certificate verification failed: {exc.verify_message or exc.reason}",
                hint=self._verify_hint(),
            ) from None
        except ssl.SSLError as exc:
            raise self._failed(
                f"TLS handshake failed: {exc.reason or exc}", hint=_HINT_TLS
            ) from None
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            raise self._failed(
                "the venue closed the connection during the TLS handshake", hint=_HINT_TLS
            ) from None
        except OSError as exc:
            raise self._failed(f"cannot connect: {connect_failure(exc)}") from None
        opts = self._options
        creds = self._config.credentials
        try:
            self._memory = self._memory_for(endpoint)
        except BaseException:
            await self._abort()
            raise
        self._session = c.FixSession(
            Header(opts.begin_string, opts.sender_comp_id, opts.target_comp_id),
            store=self._memory.store,
            heartbeat_s=opts.heartbeat_interval_s,
            reset_on_logon=opts.reset_on_logon,
            username=creds.username.get_secret_value() if creds.username else None,
            password=creds.password.get_secret_value() if creds.password else None,
            market_data=self._md,
            max_message=opts.max_message_bytes,
        )
        self._sink.reset_session()
        logon_timeout = _within_caller_deadline(opts.logon_timeout_s)
        try:
            with anyio.fail_after(logon_timeout):
                await self._logon()
        except TimeoutError:
            await self._abort()
            raise self._failed(
                f"no Logon reply within {logon_timeout:.3g}s",
                hint="the peer may not speak FIX on this port, or ignores our CompIDs; "
                + _HINT_LOGON,
            ) from None
        except BaseException:
            await self._abort()
            raise
        self._connected = True
        self._last_activity_ns = time.monotonic_ns()
        self._detail = f"session {opts.sender_comp_id}->{opts.target_comp_id}"
        log.info(
            "[%s] logged on to %s as %s (heartbeat %ds, next seq out %d / in %d)",
            self._exchange,
            endpoint,
            opts.sender_comp_id,
            self._session.heartbeat_s,
            self._session.next_sender_seq,
            self._session.expected_seq,
        )

    async def _logon(self) -> None:
        session = self._session
        stream = self._stream
        assert session is not None and stream is not None
        await self._send_raw(stream, session.logon())
        while True:
            event = session.next_event()
            if isinstance(event, c.NeedData):
                await self._flush(stream)
                try:
                    data = await stream.receive(READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    data = b""
                if data:
                    self._last_activity_ns = time.monotonic_ns()
                    self._bytes_received += len(data)
                session.receive_data(data, time.time_ns())
                continue
            if isinstance(event, c.LoggedOn):
                # events that came with the reply (a sequence gap) wait for run()
                self._memory.silent_logons = 0
                await self._flush(stream)
                return
            if isinstance(event, c.LogonRejected):
                await self._flush(stream)
                if event.sequence is not None:
                    raise self._sequence_mismatch(event.reason, event.sequence)
                raise self._auth(event.reason)
            if isinstance(event, c.ConnectionClosed):
                # a hang-up is not a refusal: a venue outside its session hours (or
                # restarting) does exactly this, so it stays transient and is retried
                # with backoff; after a few in a row the hint widens
                self._memory.silent_logons += 1
                n = self._memory.silent_logons
                hint = _HINT_HANGUP if n >= SILENT_LOGON_LIMIT else _HINT_REACH
                raise self._failed(
                    "the venue closed the connection without answering our Logon"
                    + (f" ({n} times in a row)" if n > 1 else ""),
                    hint=hint + ("" if self._tls else _HINT_PLAIN),
                )
            self._on_event(event)

    async def run(self) -> None:
        """Read and dispatch until the session ends.

        Returns after ``close()``; raises ``ConnectionFailed`` when the link drops,
        the counterparty logs out or goes silent, ``ProtocolError`` when it breaks
        the session rules.
        """
        session = self._session
        stream = self._stream
        if session is None or stream is None or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        sink = self._sink
        self._reading = True
        try:
            while True:
                await self._pump(session, stream)
                if self._closing and session.state in (c.State.CLOSED, c.State.FAILED):
                    return
                got_data = False
                with anyio.move_on_after(session.next_timeout()):
                    try:
                        data = await stream.receive(READ_SIZE)
                    except anyio.EndOfStream:
                        data = b""
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                        if self._closing:
                            return
                        raise self._failed(
                            f"connection lost: {str(exc) or type(exc).__name__}"
                        ) from None
                    got_data = True
                if got_data:
                    now_ns = time.time_ns()
                    self._last_activity_ns = time.monotonic_ns()
                    self._bytes_received += len(data)
                    self._prev_data_ns = self._last_data_ns
                    self._last_data_ns = now_ns
                    session.receive_data(data, now_ns)
                    if sink.backpressured:
                        # a consumer chose overflow="block": stop reading (TCP flow
                        # control then holds the venue back) until it catches up
                        await wait_for_capacity(sink)
                else:
                    session.tick()
        finally:
            self._reading = False
            self._connected = False
            self._detail = "closed" if self._closing else "disconnected"
            self._fail_subscriptions()
            self._save_store()

    async def _pump(self, session: c.FixSession, stream: anyio.abc.ByteStream) -> None:
        """Handle every event the buffered bytes give, then send the session's answers."""
        while True:
            event = session.next_event()
            if isinstance(event, c.NeedData):
                break
            if isinstance(event, c.ConnectionClosed):
                if self._closing:
                    return
                raise self._failed("the venue closed the connection", hint="the hub reconnects")
            self._on_event(event)
            if isinstance(event, c.LoggedOut):
                self._logged_out.set()
                await self._flush(stream)
                if self._closing or not event.by_peer:
                    return
                raise self._failed(
                    f"the venue logged out: {event.text or 'no reason given'}",
                    hint="the hub logs on again after a back-off",
                )
            if isinstance(event, c.SessionFailed):
                await self._flush(stream)
                if self._closing:
                    return
                if event.sequence is not None:
                    raise self._sequence_mismatch(
                        f"FIX session failed: {event.reason}", event.sequence
                    )
                raise ProtocolError(
                    f"FIX session failed: {event.reason}",
                    exchange=self._exchange,
                    endpoint=self._endpoint,
                    hint="the hub reconnects; if this repeats, check the venue's session "
                    "settings (sequence numbers: options.reset_on_logon / store_path)",
                )
        if self._gap_from_ns and not session.recovering:
            self._gap_from_ns = 0  # the resend filled the gap: nothing was lost
        if self._resync:
            self._resync = False
            self._request_snapshots(session)
        await self._flush(stream)
        self._check_subscriptions()
        now = time.monotonic()
        if now - self._last_flush >= STORE_FLUSH_S:
            self._last_flush = now
            self._save_store()

    def _on_event(self, event: c.Event) -> None:
        sink = self._sink
        if isinstance(event, c.SequenceGap):
            # not a Gap yet: the session holds what comes above it until the venue
            # resends the missing messages (GapUnrecovered if it does not). The lost
            # messages, if lost, came after the read before the one that showed the gap
            if not self._gap_from_ns:
                self._gap_from_ns = self._prev_data_ns or self._last_data_ns
            log.info(
                "[%s] sequence gap: expected MsgSeqNum %d, got %d; resend requested",
                self._exchange,
                event.expected,
                event.received,
            )
        elif isinstance(event, c.GapUnrecovered):
            now = time.time_ns()
            n = event.end - event.start + 1
            start_ns = self._gap_from_ns or self._prev_data_ns or now
            self._gap_from_ns = 0
            sink.gap(
                "",
                min(start_ns, now),
                now,
                f"sequence gap: MsgSeqNum {event.start}..{event.end} ({n} message(s)) "
                f"lost: {event.reason}; snapshots requested again",
                event.start,
                event.end,
            )
            self._resync = True
        elif isinstance(event, c.Malformed):
            sink.malformed(event.reason)
        elif isinstance(event, c.MarketDataRejected):
            sub = self._by_req.get(event.req_id)
            why = event.reason + (f": {event.text}" if event.text else "")
            if sub is not None:
                self._refuse(sub, why or "refused")
            log.warning(
                "[%s] MarketDataRequestReject for %s: %s",
                self._exchange,
                repr(sub.symbol) if sub else f"request {event.req_id}",
                why,
            )
        elif isinstance(event, c.SessionReject | c.BusinessReject):
            log.warning("[%s] %s", self._exchange, event.describe())
            if event.ref_msg_type in ("V", ""):
                # a refused MarketDataRequest: fail the subscribe() waiting for it
                for sub in list(self._subs.values()):
                    if sub.seq == event.ref_seq and sub.req_id in self._requests:
                        self._refuse(sub, event.describe())
        elif isinstance(event, c.AppMessage):
            log.debug("[%s] unhandled message 35=%s", self._exchange, event.frame.msg_type)
        elif isinstance(event, c.SessionFailed):
            log.warning("[%s] FIX session failed: %s", self._exchange, event.reason)
        elif isinstance(event, c.LoggedOut):
            log.info(
                "[%s] logged out%s%s",
                self._exchange,
                " by the venue" if event.by_peer else "",
                f": {event.text}" if event.text else "",
            )

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """One MarketDataRequest per symbol (snapshot + incremental updates); raises
        ``SubscriptionError`` naming the symbols the venue refused (35=Y)."""
        wanted = self._validated(symbols)
        session = self._require_session()
        pending: list[Pending] = []
        for symbol in wanted:
            if symbol in self._subs:
                continue
            self._req_count += 1
            sub = _Subscription(symbol, f"{self._req_prefix}-{self._req_count}")
            self._subs[symbol] = sub
            self._by_req[sub.req_id] = sub
            self._md.req_symbols[sub.req_id.encode("latin-1")] = symbol
            self._md.ignored.discard(symbol)
            self._md.pending.add(symbol)
            pending.append(self._requests.open(sub.req_id, (symbol,)))
            opts = self._options
            request = session.market_data_request(
                sub.req_id, symbol, depth=opts.market_depth, entry_types=opts.entry_types
            )
            sub.seq = session.next_sender_seq - 1
            await self._send(request)
        await self._requests.subscribe(
            pending,
            hint="check the symbols (sent as Symbol 55 exactly as given) and your "
            "market-data permissions with the venue",
        )

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Disable the requests of ``symbols`` (263=2); symbols not subscribed are ignored."""
        wanted = self._validated(symbols)
        for symbol in wanted:
            sub = self._subs.pop(symbol, None)
            if sub is None:
                continue
            # stop publishing at once: messages already in flight are dropped
            self._md.ignored.add(symbol)
            self._md.pending.discard(symbol)
            session = self._session
            if session is None or not self._connected or session.state != c.State.ACTIVE:
                continue
            opts = self._options
            await self._send(
                session.market_data_request(
                    sub.req_id,
                    symbol,
                    subscribe=False,
                    depth=opts.market_depth,
                    entry_types=opts.entry_types,
                )
            )

    async def probe(self) -> None:
        """Send a TestRequest (35=1); the answer (or any data) refreshes the health view."""
        session = self._require_session()
        await self._send(session.test_request())

    async def close(self) -> None:
        """Log out (35=5), wait up to a second for the answer, close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._detail = "closed"
        session = self._session
        stream = self._stream
        try:
            if session is not None and stream is not None and session.state == c.State.ACTIVE:
                with anyio.move_on_after(CLOSE_WAIT_S, shield=True):
                    await self._send_raw(stream, session.logout())
                    if self._reading:
                        await self._logged_out.wait()
                    else:
                        await self._read_until_logged_out(session, stream)
        except (ConnectionFailed, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the link is already gone: closing is all that is left
        finally:
            self._connected = False
            self._save_store()
            await self._abort()
            self._fail_subscriptions()

    async def _read_until_logged_out(
        self, session: c.FixSession, stream: anyio.abc.ByteStream
    ) -> None:
        while session.state == c.State.LOGOUT_SENT:
            event = session.next_event()
            if isinstance(event, c.NeedData):
                try:
                    data = await stream.receive(READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                self._last_activity_ns = time.monotonic_ns()
                self._bytes_received += len(data)
                session.receive_data(data, time.time_ns())
            elif isinstance(event, c.ConnectionClosed):
                return
            else:
                self._on_event(event)
        await self._flush(stream)

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
    def session(self) -> c.FixSession | None:
        """The sans-I/O session (sequence numbers, state), once connected."""
        return self._session

    @property
    def pending_output(self) -> int:
        """Bytes made and not yet handed to the socket (non-zero while a send blocks)."""
        return len(self._outbox) + (1 if self._send_lock.locked() else 0)

    @property
    def subscribed(self) -> frozenset[str]:
        """Symbols requested and not refused or unsubscribed since."""
        return frozenset(self._subs)

    # -- internals ---------------------------------------------------------------------
    def _require_session(self) -> c.FixSession:
        session = self._session
        if session is None or not self._connected or session.state != c.State.ACTIVE:
            raise self._failed("the FIX session is not logged on", hint="the hub reconnects")
        return session

    def _request_snapshots(self, session: c.FixSession) -> None:
        """Resynchronise after lost messages: each subscription's request is disabled
        (263=2) and made again under a new MDReqID, so the venue sends a fresh snapshot
        that replaces the books the lost updates left wrong. The bytes are queued in the
        session (sent by the caller's flush, in sequence order)."""
        if session.state != c.State.ACTIVE:
            return
        opts = self._options
        for sub in list(self._subs.values()):
            session.queue(
                session.market_data_request(
                    sub.req_id,
                    sub.symbol,
                    subscribe=False,
                    depth=opts.market_depth,
                    entry_types=opts.entry_types,
                )
            )
            self._req_count += 1
            old = sub.req_id
            sub.req_id = f"{self._req_prefix}-{self._req_count}"
            self._by_req[sub.req_id] = sub
            self._by_req.pop(old, None)
            self._md.req_symbols[sub.req_id.encode("latin-1")] = sub.symbol
            session.queue(
                session.market_data_request(
                    sub.req_id,
                    sub.symbol,
                    depth=opts.market_depth,
                    entry_types=opts.entry_types,
                )
            )
            sub.seq = session.next_sender_seq - 1
        self.resyncs += 1

    def _validated(self, symbols: Sequence[str]) -> list[str]:
        return checked_symbols(
            symbols,
            _check_symbol,
            exchange=self._exchange,
            endpoint=self._endpoint,
            hint="use 1 to 128 printable characters",
        )

    def _refuse(self, sub: _Subscription, why: str) -> None:
        """The venue refused ``sub``: forget it and wake its ``subscribe()``."""
        self._requests.refuse(sub.req_id, why)
        self._md.ignored.add(sub.symbol)
        self._md.pending.discard(sub.symbol)
        if self._subs.get(sub.symbol) is sub:
            del self._subs[sub.symbol]

    def _check_subscriptions(self) -> None:
        waiting = self._md.pending
        for sub in self._subs.values():
            if sub.symbol not in waiting:
                self._requests.acknowledge(sub.req_id)  # data arrived: the venue took it

    def _fail_subscriptions(self) -> None:
        """Fail every ``subscribe()`` still waiting (the connection is gone)."""
        self._requests.lose_all("the connection closed")

    def _save_store(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            session.flush_store()
        except OSError as exc:
            log.error(
                "[%s] cannot save FIX sequence numbers to %s: %s",
                self._exchange,
                session.store.describe(),
                exc,
            )

    async def _flush(self, stream: anyio.abc.ByteStream) -> None:
        session = self._session
        if session is None:
            return
        data = session.data_to_send()
        if data or self._outbox:
            await self._send_raw(stream, data)

    async def _send(self, data: bytes) -> None:
        stream = self._stream
        if stream is None or not self._connected:
            raise self._failed("the connection is not up")
        await self._send_raw(stream, data)

    async def _send_raw(self, stream: anyio.abc.ByteStream, data: bytes) -> None:
        """Every write to the stream goes through here. ``data`` joins the outbox at
        once (no await between taking a MsgSeqNum and queueing its bytes, so the bytes
        leave in sequence order whichever task made them); then whoever holds the lock
        sends the whole outbox. A probe, a heartbeat and a subscribe that coincide while
        the socket blocks therefore queue behind one writer instead of racing (anyio
        raises BusyResourceError on concurrent sends) or overtaking each other (the
        venue would see a gap, then "MsgSeqNum too low")."""
        session = self._session
        if session is not None:
            # automatic answers the session queued were numbered before ``data``
            self._outbox += session.data_to_send()
        self._outbox += data
        # bounded: a venue that stopped reading must not hang subscribe() or close();
        # a caller that gives up leaves its bytes in the outbox for the lock holder
        try:
            with anyio.fail_after(self._options.logon_timeout_s):
                async with self._send_lock:
                    while self._outbox:
                        chunk = bytes(self._outbox)
                        self._outbox.clear()
                        await stream.send(chunk)
        except TimeoutError:
            raise self._failed(
                f"the venue took no data for {self._options.logon_timeout_s:g}s",
                hint="the hub reconnects",
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise self._failed(f"send failed: {str(exc) or type(exc).__name__}") from None

    async def _abort(self) -> None:
        stream = self._stream
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()


__all__ = ["FixConnection", "SessionMemory", "parse_endpoint"]


def _check_symbol(symbol: str) -> None:
    if not symbol or "\x01" in symbol or not symbol.isprintable() or len(symbol) > 128:
        raise ValueError(f"symbol {symbol!r} cannot be sent as Symbol (55)")
