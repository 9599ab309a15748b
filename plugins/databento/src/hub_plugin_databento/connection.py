"""One live session with a Databento gateway, on the official ``databento`` client.

The client's ``DatabentoLiveProtocol`` speaks the control half (greeting, CRAM,
subscriptions, ``start_session``); once authenticated, this connection takes the
socket's bytes before the client decodes them and hands each read, as one buffer,
to the core's compiled DBN decoder (``Sink.feed_dbn``). Reading five attributes of
every decoded Python record would cap the feed far below what the data plane
decodes, so records are never materialised as client objects.

Control records (symbol mappings, errors, system messages) come back from the
decoder through ``Sink.control``; ``_on_control`` turns them into acknowledgements,
refusals and reports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Sequence

import anyio
from databento.common.error import BentoError
from databento.live.protocol import DatabentoLiveProtocol

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
    connect_failure,
    redact_endpoint,
    split_host_port,
)
from hub_plugin_databento import codec as c
from hub_plugin_databento.options import DatabentoOptions

log = logging.getLogger("hub_plugin_databento")

API_KEY_ENV = "DATABENTO_API_KEY"
"""Where the key comes from when the config names none (as for the official client)."""
_HINT_REACH = (
    "check the endpoint: leave it empty for Databento's live gateway of the dataset, "
    "or write the host:port of a gateway you run (hub sim databento prints one)"
)
_HINT_KEY = (
    "check the API key in the environment variable named by credentials.api_key_env "
    "(default DATABENTO_API_KEY) on the Databento portal: it must be active and "
    "licensed for this dataset"
)
_HINT_NOT_GATEWAY = "the peer does not speak Databento's live gateway protocol"
_REPLAY_MARGIN_NS = 60 * 1_000_000_000
"""A replay start this close to the 24-hour edge is not asked for (it may age out)."""
_ACK_ID = re.compile(r"request (\d+)")
_RESOLVE = re.compile(r"resolve symbol:?\s*(\S+)", re.IGNORECASE)


def gateway_of(dataset: str) -> str:
    """Databento's live gateway of ``dataset``: ``glbx-mdp3.lsg.databento.com:13000``."""
    return f"{dataset.lower().replace('.', '-')}.lsg.databento.com:13000"


split_endpoint = split_host_port
"""``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)`` (the kit's ``split_host_port``)."""


class ResumeStore:
    """Where one connection's stream stopped, carried from a session to the next (the
    factory keeps one per exchange)."""

    def __init__(self) -> None:
        self.resume: c.Resume | None = None


class _Gateway(DatabentoLiveProtocol):
    """The official client's protocol; after authentication, its bytes go to us raw."""

    def __init__(self, owner: DatabentoConnection, api_key: str, options: DatabentoOptions) -> None:
        super().__init__(
            api_key=api_key,
            dataset=options.dataset,
            ts_out=False,
            heartbeat_interval_s=options.heartbeat_interval_s,
        )
        self._owner = owner
        self._buffer = bytearray(options.read_size)
        self._view = memoryview(self._buffer)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.authenticated.done() and not self.authenticated.exception():
            self._owner._on_stream(bytes(self._view[:nbytes]))
            return
        # the control half: the client's own decoder reads it from its own buffer
        target = super().get_buffer(nbytes)
        target[:nbytes] = self._view[:nbytes]
        self._owner._on_control_bytes(nbytes)
        super().buffer_updated(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # the client keeps why in futures nobody else awaits: read them, or asyncio
        # reports "exception was never retrieved" when they are collected
        for future in (self.disconnected, self.authenticated):
            if future.done() and not future.cancelled():
                future.exception()
        self._owner._on_lost(exc)


class DatabentoConnection:
    """One session with a Databento live gateway (``ExchangeConnection``)."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: Sink,
        options: DatabentoOptions,
        resume: ResumeStore | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._options = options
        self._exchange = sink.exchange
        self._endpoint = ""
        self._protocol: _Gateway | None = None
        self._transport: asyncio.Transport | None = None
        self._metadata = c.MetadataReader()
        self._requests = PendingRequests(
            self._exchange,
            timeout_s=options.handshake_timeout_s,
            timeout_hint="the gateway acknowledges each subscription once the session "
            "starts; check the dataset and schemas",
            venue="the gateway",
            unanswered="accept",
        )
        self._next_id = 1
        self._awaiting: dict[int, tuple[str, ...]] = {}
        """Subscription ids not acknowledged yet, in the order sent, with their symbols."""
        self._started = False
        self._last_feed_ns = 0
        self._prev_feed_ns = 0
        self._resume_store = ResumeStore() if resume is None else resume
        self._stream_tail = c.StreamTail()
        self._pending = 0
        self._pending_len = 0
        self._replay: c.ReplayFilter | None = None
        self._schema_of: dict[int, str] = {}
        self._recovered: tuple[int, str] = (0, "")
        """The blind window taken away for a replay: (start ns, reason)."""
        self.replay_failures = 0
        """Replays this session that could not fill the blind window (each a Gap)."""
        self._subscribed: set[str] = set()
        self._muted: set[str] = set()
        """Unsubscribed symbols whose records the gateway still sends (skipped)."""
        self._mapped: dict[str, int] = {}
        self._connected = False
        self._closing = False
        self._lost: anyio.Event | None = None
        self._lost_reason = ""
        self._last_activity_ns = 0
        self._bytes_received = 0
        self._detail = "not connected"
        self.session_id = ""
        """The gateway's id for this session (quote it to Databento support)."""
        self.slow_reader_warnings = 0
        """Slow-reader warnings (system code 2) the gateway sent this session."""
        self.replays_completed = 0
        """Replay-completed notices (system code 3) this session."""

    # -- errors -------------------------------------------------------------------
    def _failed(self, message: str, hint: str = _HINT_REACH) -> ConnectionFailed:
        return ConnectionFailed(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=hint
        )

    # -- ExchangeConnection -------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Open TCP to the gateway (``""``: the dataset's, as the official client picks
        it) and authenticate with the API key (CRAM)."""
        endpoint = endpoint or gateway_of(self._options.dataset)
        self._endpoint = endpoint
        self._requests.endpoint = redact_endpoint(endpoint)
        if self._protocol is not None or self._closing:
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
                hint='leave endpoint = "" for Databento\'s gateway, or write "127.0.0.1:13000"',
            ) from None
        api_key = self._api_key()
        loop = asyncio.get_running_loop()
        self._lost = anyio.Event()
        timeout = self._config.connect_timeout_ms / 1000
        try:
            with anyio.fail_after(timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _Gateway(self, api_key, self._options), host, port
                )
        except TimeoutError:
            raise self._failed(f"TCP connect timed out after {timeout:g}s") from None
        except OSError as exc:
            raise self._failed(f"cannot connect: {connect_failure(exc)}") from None
        self._transport = transport
        self._protocol = protocol
        try:
            with anyio.fail_after(self._options.handshake_timeout_s):
                session_id = await self._authenticated(protocol)
        except TimeoutError:
            self._abort()
            raise self._failed(
                f"no gateway greeting and authentication within "
                f"{self._options.handshake_timeout_s:g}s",
                hint=_HINT_NOT_GATEWAY,
            ) from None
        except BaseException:
            self._abort()
            raise
        self.session_id = session_id or ""
        sink = self._sink
        sink.reset_session()
        opts = self._options
        # mbp-1 and tbbo records of trades are Trades too, unless a trades schema has them
        mbp1_trades = "trades" not in opts.schemas
        sink.configure_dbn(opts.check_sequence, opts.max_record_len, mbp1_trades)
        sink.control = self._on_control
        self._connected = True
        self._last_activity_ns = time.monotonic_ns()
        self._detail = f"session {self.session_id}" if self.session_id else "authenticated"
        log.info("[%s] authenticated with the gateway at %s", self._exchange, endpoint)

    def _api_key(self) -> str:
        key = self._config.credentials.api_key
        # as the official client does: without credentials, DATABENTO_API_KEY
        text = key.get_secret_value() if key is not None else os.environ.get(API_KEY_ENV, "")
        if not text:
            raise AuthenticationError(
                f"no API key: {API_KEY_ENV} is not set",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint=f"export {API_KEY_ENV}=... (or name another variable in "
                "credentials.api_key_env)",
            )
        if len(text) < c.BUCKET_ID_LENGTH or any(ch in text for ch in "|\n\r"):
            raise AuthenticationError(
                "the API key is not a Databento key (too short, or it holds '|' or a line break)",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint=_HINT_KEY,
            )
        return text

    async def _authenticated(self, protocol: _Gateway) -> str | None:
        lost = self._lost
        assert lost is not None
        outcome: list[str | None] = []
        failure: list[BaseException] = []
        async with anyio.create_task_group() as tg:

            async def watch_lost() -> None:
                await lost.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch_lost)
            try:
                outcome.append(await protocol.authenticated)
            except (BentoError, ValueError) as exc:
                failure.append(exc)
            tg.cancel_scope.cancel()
        if failure:
            why = failure[0]
            if isinstance(why, BentoError):
                # the gateway's own words, e.g. "Authentication failed."
                raise AuthenticationError(
                    f"the gateway refused the API key: {why}",
                    exchange=self._exchange,
                    endpoint=self._endpoint,
                    hint=_HINT_KEY,
                ) from None
            raise ProtocolError(
                f"bad gateway handshake: {why}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint=_HINT_NOT_GATEWAY,
            ) from None
        if outcome:
            return outcome[0]
        raise self._failed(
            f"the gateway closed the connection during the handshake{self._lost_suffix()}",
            hint=_HINT_NOT_GATEWAY,
        )

    def _lost_suffix(self) -> str:
        return f": {self._lost_reason}" if self._lost_reason else ""

    async def run(self) -> None:
        """Wait while the protocol feeds the sink; returns after ``close()``, raises
        ``ConnectionFailed`` when the gateway or the network drops the session."""
        lost = self._lost
        if lost is None or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        try:
            await lost.wait()
            if self._closing:
                return
            raise self._failed(
                f"the gateway closed the connection{self._lost_suffix()}",
                hint="the hub reconnects",
            )
        finally:
            self._connected = False
            self._detail = "closed" if self._closing else "disconnected"
            self._requests.lose_all("the connection closed")

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Send a subscription per schema (chunked as the client does), start the
        session if it has not started, and wait for the gateway's answer; raises
        ``SubscriptionError`` naming the symbols it could not resolve."""
        protocol = self._protocol
        if protocol is None or not self._connected:
            raise self._failed("subscribe() on a connection that is not up")
        wanted = self._validated(symbols)
        if not wanted:
            return
        pending: list[Pending] = []
        ids: list[int] = []
        opts = self._options
        starts = self._replay_starts() if not self._started else {}
        for schema in opts.schemas:
            req_id = self._take_id()
            ids.append(req_id)
            pending.append(self._requests.open(req_id, tuple(wanted)))
            self._awaiting[req_id] = tuple(wanted)
            self._schema_of[req_id] = schema
            protocol.subscribe(
                schema=schema,
                symbols=wanted,
                stype_in=opts.stype_in,
                start=starts.get(schema),
                snapshot=opts.snapshot and schema == "mbo" and schema not in starts,
                subscription_id=req_id,
            )
        if not self._started:
            self._started = True
            protocol.start()
        try:
            await self._requests.subscribe(
                pending,
                hint="check the symbols against the dataset's symbology (stype_in) and "
                "that the API key is licensed for them",
            )
        except SubscriptionError as exc:
            self._accepted([s for s in wanted if s not in exc.refused])
            raise
        finally:
            for req_id in ids:
                self._awaiting.pop(req_id, None)
        self._accepted(wanted)

    def _replay_starts(self) -> dict[str, int]:
        """``start`` per schema to replay what the last session missed, and the blind
        window taken away when the replay can fill it all (it is a Gap otherwise)."""
        resume = self._resume_store.resume
        if resume is None:
            return {}
        opts = self._options
        now = time.time_ns()
        starts: dict[str, int] = {}
        whole = True
        for schema in opts.schemas:
            start = resume.start_for(schema)
            if schema == "mbo" and opts.snapshot:
                whole = False  # the book restarts from a snapshot: its events are missed
            elif now - start >= c.REPLAY_WINDOW_NS - _REPLAY_MARGIN_NS:
                whole = False  # older than the gateway's intraday window
            else:
                starts[schema] = start
        if not starts:
            return {}
        seams = {
            c.schema_rtype(s): resume.seams[c.schema_rtype(s)]
            for s in starts
            if c.schema_rtype(s) in resume.seams
        }
        self._replay = c.ReplayFilter(seams)
        if whole:
            self._recovered = self._sink.recover_blind()
        log.info("[%s] resubscribing with replay from %s", self._exchange, min(starts.values()))
        return starts

    def _accepted(self, symbols: list[str]) -> None:
        self._subscribed.update(symbols)
        for symbol in symbols:
            # unsubscribed earlier in this session: the gateway said yes again
            if symbol in self._muted:
                self._muted.discard(symbol)
                self._sink.ignore_instrument(self._mapped[symbol], False)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Stop publishing ``symbols``. Databento's gateway cannot unsubscribe within a
        session, so their records still arrive and the decoder skips them; the next
        session does not ask for them."""
        for symbol in self._validated(symbols):
            self._subscribed.discard(symbol)
            iid = self._mapped.get(symbol)
            if iid is not None:
                self._muted.add(symbol)
                self._sink.ignore_instrument(iid)

    async def probe(self) -> None:
        """Nothing to send: the gateway has no ping. Its heartbeat records (asked for every
        ``heartbeat_interval_s``) keep ``last_activity_ns`` moving on a live link."""
        if not self._connected:
            raise self._failed("probe() on a connection that is not up")

    async def close(self) -> None:
        """Close the session. Idempotent; a running ``run()`` returns."""
        if self._closing:
            return
        self._closing = True
        self._connected = False
        self._detail = "closed"
        self._keep_resume()
        self._abort()
        if self._lost is not None:
            self._lost.set()
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
        """Symbols the gateway accepted (and not unsubscribed since)."""
        return frozenset(self._subscribed)

    @property
    def instrument_ids(self) -> dict[str, int]:
        """The instrument id of each symbol, from the gateway's symbol mappings."""
        return dict(self._mapped)

    # -- the protocol's callbacks (inside the event loop, never raising) -------------
    def _on_control_bytes(self, nbytes: int) -> None:
        self._bytes_received += nbytes
        self._last_activity_ns = time.monotonic_ns()

    def _on_stream(self, data: bytes) -> None:
        self._bytes_received += len(data)
        self._last_activity_ns = time.monotonic_ns()
        if not self._metadata.done:
            try:
                rest = self._metadata.feed(data)
            except c.CodecError as exc:
                self._lost_reason = str(exc)
                self._sink.malformed(f"DBN metadata: {exc}")
                self._abort()
                return
            if rest is None:
                return
            data = rest
            if not data:
                return
        replay = self._replay
        if replay is not None:
            data = replay.feed(data)
            if replay.done:
                data += replay.take_tail()
                self._replay_over(replay)
        sink = self._sink
        now = time.time_ns()
        self._prev_feed_ns, self._last_feed_ns = self._last_feed_ns or now, now
        # where this buffer's first whole record starts: after the rest of the partial
        # record the decoder kept from the last one
        pending = self._pending
        first = self._pending_len - pending if pending else 0
        sink.feed_dbn(data, now)
        self._stream_tail.note(data, first)
        pending = sink.dbn_pending
        if pending and pending <= len(data):
            self._pending_len = data[len(data) - pending] * 4
        self._pending = pending
        if sink.backpressured and self._transport is not None:
            # a consumer chose overflow="block": stop reading (TCP then holds the gateway
            # back) until it catches up
            self._transport.pause_reading()
            sink.add_capacity_waiter(self._resume_reading)

    def _replay_over(self, replay: c.ReplayFilter) -> None:
        """Every replayed schema reached its seam, or ended without it: the latter is a
        ``Gap`` for the blind window the replay was to fill."""
        self._replay = None
        if replay.missed:
            rtypes = ", ".join(f"0x{r:02x}" for r in replay.missed)
            self._unrecovered(
                f"the gateway's replay did not reach back to the last record received "
                f"(rtype {rtypes})"
            )
        else:
            log.info(
                "[%s] replayed the blind window: %d duplicates dropped at the seam",
                self._exchange,
                replay.dropped,
            )

    def _replay_refused(self, text: str) -> None:
        """The gateway will not replay from that far back: what was missed is a Gap, and
        the schema is asked for again from now (the refused request counts as answered)."""
        log.warning("[%s] gateway: %s", self._exchange, text)
        m = _ACK_ID.search(text)
        req_id = int(m.group(1)) if m else -1
        schema = self._schema_of.get(req_id)
        replay = self._replay
        if replay is not None:
            replay.give_up(c.schema_rtype(schema) if schema else None)
            if replay.done:
                self._replay = None
        self._resume_store.resume = None  # never ask for that start again
        self._unrecovered(f"the gateway refused the replay: {text}")
        symbols = self._awaiting.pop(req_id, None)
        if schema is None or symbols is None or self._protocol is None:
            return
        self._requests.acknowledge(req_id)
        opts = self._options
        self._protocol.subscribe(
            schema=schema,
            symbols=list(symbols),
            stype_in=opts.stype_in,
            snapshot=opts.snapshot and schema == "mbo",
        )

    def _unrecovered(self, why: str) -> None:
        """Publish the Gap the replay was to make unnecessary (once per session)."""
        start, reason = self._recovered
        if not start:
            return
        self._recovered = (0, "")
        self.replay_failures += 1
        self._sink.gap("", start, time.time_ns(), f"{reason}; {why}")

    def _resume_reading(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _keep_resume(self) -> None:
        """Remember where this session's stream stopped, for the next one (a session
        that received nothing keeps the previous session's point)."""
        resume = self._stream_tail.resume()
        if resume is not None:
            self._resume_store.resume = resume

    def _on_lost(self, exc: Exception | None) -> None:
        self._keep_resume()
        if exc is not None and not self._lost_reason:
            self._lost_reason = str(exc) or type(exc).__name__
        if self._lost is not None:
            self._lost.set()

    def _on_control(self, kind: str, number: int, text: str) -> None:
        """``Sink.control``: called by the decoder inside ``feed_dbn``; never raises."""
        try:
            self._dispatch(kind, number, text)
        except Exception:  # defensive: the stream must keep flowing
            log.exception("[%s] control record handling failed", self._exchange)

    def _dispatch(self, kind: str, number: int, text: str) -> None:
        if kind == "symbol_mapping":
            self._mapped[text] = number
        elif kind == "error":
            self._on_error(number, text)
        elif kind == "system":
            self._on_system(number, text)

    def _on_error(self, code: int, text: str) -> None:
        if code == c.ERR_REPLAY_AGED_OUT:
            self._replay_refused(text)
            return
        if code == c.ERR_SYMBOL_RESOLUTION_FAILED:
            m = _RESOLVE.search(text)
            symbol = m.group(1).strip(".,'\"") if m else ""
            for req_id, wanted in self._awaiting.items():
                if symbol in wanted:
                    self._requests.refuse_symbol(req_id, symbol, text)
                    return
            log.warning("[%s] gateway: %s", self._exchange, text)
            return
        if code == c.ERR_INVALID_SUBSCRIPTION:
            m = _ACK_ID.search(text)
            if m and self._requests.refuse(int(m.group(1)), text):
                self._awaiting.pop(int(m.group(1)), None)
                return
        if code == c.ERR_SKIPPED_RECORDS:
            # the gateway dropped records for this slow reader: nothing tells what, so
            # the sink opens and closes a blind window around them
            # (the sink counted the error record itself)
            reason = f"the gateway skipped records after slow reading: {text}"
            for symbol in sorted(self._subscribed):
                self._sink.gap(symbol, self._prev_feed_ns, self._last_feed_ns, reason)
            return
        log.warning("[%s] gateway error (code %d): %s", self._exchange, code, text)

    def _on_system(self, code: int, text: str) -> None:
        if code == c.SYS_HEARTBEAT:
            return
        if code == c.SYS_SUBSCRIPTION_ACK:
            # the ack names the request id we sent; one that does not answers the oldest
            m = _ACK_ID.search(text)
            req_id = int(m.group(1)) if m is not None else -1
            if req_id not in self._awaiting:
                req_id = next(iter(self._awaiting), -1)
            if self._awaiting.pop(req_id, None) is not None:
                self._requests.acknowledge(req_id)
            return
        if code == c.SYS_SLOW_READER_WARNING:
            self.slow_reader_warnings += 1
            log.warning("[%s] gateway: %s", self._exchange, text)
        elif code == c.SYS_REPLAY_COMPLETED:
            self.replays_completed += 1
            log.info("[%s] gateway: %s", self._exchange, text)
        elif code != c.SYS_END_OF_INTERVAL:
            log.info("[%s] gateway notice (code %d): %s", self._exchange, code, text)

    # -- internals ---------------------------------------------------------------
    def _abort(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort()
        sink = self._sink
        if sink.control == self._on_control:
            sink.control = None

    def _take_id(self) -> int:
        req_id = self._next_id
        self._next_id += 1
        return req_id

    def _validated(self, symbols: Sequence[str]) -> list[str]:
        if isinstance(symbols, str):
            raise TypeError("symbols must be a sequence of str, not one str")
        out: list[str] = []
        for s in dict.fromkeys(symbols):
            if not s or any(ch in s for ch in ",|\n\r") or len(s.encode()) > 70:
                raise SubscriptionError(
                    f"symbol {s!r} cannot be subscribed",
                    exchange=self._exchange,
                    endpoint=self._endpoint,
                    hint="symbols are at most 70 bytes, without ',' or '|'",
                )
            out.append(s)
        return out
