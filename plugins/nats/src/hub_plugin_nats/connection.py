"""The NATS source: a connection (``protocol = "nats"``) that subscribes to another hub's
tick subjects and publishes what it decodes into this hub, under the ticks' original
exchange names (``Sink.relay``).

The transport is nats-py; everything about the format (subjects, headers, sequences,
heartbeats) is the sans-I/O codec. A missed sequence on a subject is a ``Gap`` with
the missing range; a publisher whose heartbeats stop is reported stale on its
exchanges; a slow consumer's drops (nats-py's ``SlowConsumerError``) are counted and
show up as the sequence ranges they left out. nats-py's own reconnect is off: the
hub's supervisor reconnects (and its Gap covers the blind window), while the
per-subject sequence state lives on in the factory, so the first message after a
reconnect tells exactly what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from hub_core.plugin import (
    ConfigError,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    Sink,
    checked_symbols,
    redact_endpoint,
    redact_text,
)
from hub_plugin_nats import codec as c
from hub_plugin_nats.client import open_client
from hub_plugin_nats.options import NatsSourceOptions

log = logging.getLogger("hub_plugin_nats")


class SourceState:
    """What outlives one session of a source: the per-subject sequence check, the
    publishers' heartbeats, and where a JetStream consumer got to."""

    def __init__(self, stale_factor: float = 3.0) -> None:
        self.tracker = c.SequenceTracker()
        self.watch = c.HeartbeatWatch(stale_factor)
        self.stream_seq: dict[str, int] = {}
        """The last JetStream stream sequence delivered, per subscribed subject."""
        self.slow_consumer_drops = 0
        self.missing_records = 0


class NatsSourceConnection:
    """One session of a NATS source (``ExchangeConnection``)."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: Sink,
        options: NatsSourceOptions,
        state: SourceState | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._options = options
        self._state = state or SourceState(options.stale_factor)
        self._exchange = sink.exchange
        self._endpoint = ""
        self._nc: Client | None = None
        self._subs: dict[str, Subscription] = {}
        self._relays: dict[str, Sink] = {}
        self._refused: set[str] = set()
        self._lost: anyio.Event | None = None
        self._lost_reason = ""
        self._closing = False
        self._connected = False
        self._last_activity_ns = 0
        self._bytes = 0
        self._probe: asyncio.Task[None] | None = None
        self._recovering = False
        self.messages = 0
        self.malformed = 0
        self.gaps_published = 0

    # -- errors ---------------------------------------------------------------------------
    def _failed(self, message: str, hint: str = "the hub reconnects") -> ConnectionFailed:
        return ConnectionFailed(
            message, exchange=self._exchange, endpoint=self._endpoint, hint=hint
        )

    # -- ExchangeConnection ------------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Connect to nats-server at ``endpoint`` (``nats://`` or ``tls://``)."""
        self._endpoint = redact_endpoint(endpoint)
        if self._nc is not None or self._closing:
            raise self._failed("connect() twice or after close()", hint="create a new connection")
        self._lost = anyio.Event()
        self._nc = await open_client(
            endpoint,
            self._config.credentials,
            self._options,
            name=f"hub source {self._exchange}",
            where=f"[{self._exchange}]",
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
        )
        self._sink.reset_session()
        self._connected = True
        self._last_activity_ns = time.monotonic_ns()
        if self._options.heartbeats:
            await self._subscribe_one(f"{self._options.prefix}.{c.HEARTBEAT_TOKEN}.*", live=True)
        log.info("[%s] connected to NATS at %s", self._exchange, self._endpoint)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Subscribe to subjects (wildcards allowed); ``SubscriptionError`` names the
        first that is not a subject, before anything is sent."""
        subjects = checked_symbols(
            symbols,
            c.check_subject_filter,
            exchange=self._exchange,
            endpoint=self._endpoint,
            hint="symbols are subjects like md.binance.> or md.*.trade.*",
        )
        for subject in subjects:
            if subject not in self._subs:
                await self._subscribe_one(subject, live=not self._options.jetstream)

    async def _subscribe_one(self, subject: str, *, live: bool) -> None:
        nc = self._need()
        o = self._options
        try:
            if live:
                sub = await nc.subscribe(
                    subject,
                    cb=self._on_msg,
                    pending_msgs_limit=o.pending_msgs_limit,
                    pending_bytes_limit=o.pending_bytes_limit,
                )
            else:
                sub = await self._subscribe_jetstream(nc, subject)
        except nats.errors.Error as exc:
            raise self._failed(f"cannot subscribe {subject}: {redact_text(str(exc))}") from None
        self._subs[subject] = sub

    async def _subscribe_jetstream(self, nc: Client, subject: str) -> Subscription:
        o = self._options
        js = nc.jetstream()
        known = self._state.stream_seq
        # a subject that delivered nothing yet resumes where the earliest other one is
        # (what it then gets twice, the sequence check drops)
        resume = known.get(subject) or (min(known.values()) if known else 0)
        if resume:
            # a reconnect: JetStream still has what this source missed, from the next
            # stream sequence on, so the blind window is not a loss
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=resume + 1
            )
            if not self._recovering:
                self._recovering = True
                self._sink.recover_blind()
        elif o.start_time is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=o.start_time,
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        try:
            return await js.subscribe(
                c.data_filter(subject, o.prefix),
                stream=o.stream,
                cb=self._js_callback(subject),
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=o.pending_msgs_limit,
                pending_bytes_limit=o.pending_bytes_limit,
            )
        except nats.js.errors.NotFoundError:
            raise ConfigError(
                f"JetStream has no stream {o.stream}",
                exchange=self._exchange,
                endpoint=self._endpoint,
                hint="run the publishing hub's sink with jetstream = true (it creates the "
                "stream), or name its stream in options.stream",
            ) from None

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Drop the subscriptions of these subjects."""
        for subject in checked_symbols(symbols, lambda s: None, exchange=self._exchange):
            sub = self._subs.pop(subject, None)
            if sub is not None:
                # the link is gone: so is the subscription
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()

    async def run(self) -> None:
        """Watch the publishers' heartbeats until the session ends; returns after
        ``close()``, raises ``ConnectionFailed`` when the link drops."""
        lost = self._lost
        if lost is None or not self._connected:
            raise self._failed("run() before connect()", hint="await connect() first")
        watch = self._state.watch
        try:
            while not lost.is_set():
                deadline = watch.next_deadline()
                wait = 0.5 if deadline is None else (deadline - time.monotonic_ns()) / 1e9
                with anyio.move_on_after(min(max(wait, 0.01), 0.5)):
                    await lost.wait()
                for event in watch.tick(time.monotonic_ns()):
                    self._peer_event(event)
            if self._closing:
                return
            raise self._failed(f"the NATS link was lost{self._suffix()}")
        finally:
            self._connected = False

    def _suffix(self) -> str:
        return f": {self._lost_reason}" if self._lost_reason else ""

    async def probe(self) -> None:
        """A PING to the server (nats-py's flush); its PONG counts as activity."""
        nc = self._need()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._ping(nc))

    async def _ping(self, nc: Client) -> None:
        try:
            await nc.flush(timeout=max(self._config.stale_after_ms / 2000, 0.5))  # type: ignore[arg-type]
        except (nats.errors.Error, TimeoutError, OSError):
            return  # unanswered: the supervisor recycles the session
        self._last_activity_ns = time.monotonic_ns()

    async def close(self) -> None:
        """Close the session. Idempotent; a running ``run()`` returns."""
        if self._closing:
            return
        self._closing = True
        self._connected = False
        if self._probe is not None:
            self._probe.cancel()
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await nc.close()
        if self._lost is not None:
            self._lost.set()

    def health(self) -> ConnectionHealth:
        """Connected or not, the endpoint, the monotonic ns of the last message."""
        return ConnectionHealth(
            connected=self._connected,
            endpoint=self._endpoint,
            last_activity_ns=self._last_activity_ns,
            bytes_received=self._bytes,
            detail=self._detail(),
        )

    def _detail(self) -> str:
        stale = self._state.watch.stale()
        drops = self._state.slow_consumer_drops
        parts = [f"{len(self._subs)} subscriptions"]
        if stale:
            parts.append("stale publishers: " + ", ".join(sorted(stale)[:5]))
        if drops:
            parts.append(f"{drops} messages dropped as a slow consumer")
        return "; ".join(parts)

    def stats(self) -> dict[str, int]:
        """Messages, malformed, gaps published, slow-consumer drops, duplicates dropped."""
        return {
            "messages": self.messages,
            "malformed": self.malformed,
            "gaps": self.gaps_published,
            "slow_consumer_drops": self._state.slow_consumer_drops,
            "duplicates": self._state.tracker.duplicates,
            "missing_records": self._state.missing_records,
        }

    # -- nats-py callbacks (in the event loop; they never raise) ----------------------
    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            # the message is gone: the subject's next sequence (or the publisher's next
            # heartbeat) shows exactly which, and that becomes a Gap
            self._state.slow_consumer_drops += 1
            n = self._state.slow_consumer_drops
            if n == 1 or n % 10_000 == 0:
                log.warning(
                    "[%s] slow consumer: %d NATS messages dropped so far (on %s)",
                    self._exchange,
                    n,
                    exc.subject,
                )
            return
        if not self._lost_reason:
            self._lost_reason = redact_text(str(exc) or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._lost is not None:
            self._lost.set()

    def _js_callback(self, subject: str) -> Callable[[Msg], Awaitable[None]]:
        positions = self._state.stream_seq

        async def on_js_msg(msg: Msg) -> None:
            await self._on_msg(msg)
            # (not a JetStream message after all: no stream sequence to keep)
            with contextlib.suppress(nats.errors.Error, ValueError, IndexError):
                positions[subject] = msg.metadata.sequence.stream

        return on_js_msg

    async def _on_msg(self, msg: Msg) -> None:
        now = time.time_ns()
        self._last_activity_ns = time.monotonic_ns()
        data = msg.data
        self._bytes += len(data)
        self.messages += 1
        try:
            m = c.decode_message(msg.subject, msg.headers, data)
        except c.CodecError as exc:
            self.malformed += 1
            self._sink.malformed(f"NATS message: {exc}")
            return
        try:
            self._deliver(m, now)
        except Exception as exc:  # defensive: one bad message never stops the feed
            self.malformed += 1
            self._sink.malformed(f"NATS message on {msg.subject[:120]}: {exc}")

    def _deliver(self, m: c.Message, now: int) -> None:
        if isinstance(m, c.HeartbeatBody):
            event = self._state.watch.seen(m, time.monotonic_ns())
            if event is not None:
                self._peer_event(event)
            for missing in self._state.tracker.announced(m, now):
                self._missing(missing, now, "its last messages before a heartbeat never came")
            return
        deliver, jump = self._state.tracker.check(m.subject, m.epoch, m.seq, _count(m), now)
        if jump is not None:
            self._missing(jump, now, "")
        if not deliver:
            return
        relay = self._relay(m.exchange)
        if relay is None:
            return
        if isinstance(m, c.Records):
            relay.feed_dbn(m.records, now)
        elif isinstance(m, c.GapMessage):
            b = m.body
            relay.gap(m.symbol, b.start_ts, b.end_ts, b.reason, b.start_seq, b.end_seq)
        else:
            s = m.body
            relay.state(s.state, s.reason, s.endpoint, s.attempt)

    def _missing(self, missing: c.Missing, now: int, why: str) -> None:
        try:
            parts = c.parse_subject(missing.subject)
        except c.CodecError:
            return
        if isinstance(parts, str):
            return
        relay = self._relay(parts.exchange)
        if relay is None:
            return
        symbol = parts.symbol if parts.kind in c.RECORD_TYPES else ""
        if missing.restarted:
            reason = f"nats: the publisher of {missing.subject} restarted (a new epoch)"
        else:
            n = missing.end_seq - missing.start_seq + 1
            self._state.missing_records += n
            reason = (
                f"nats: {missing.subject} sequence {missing.start_seq}..{missing.end_seq} "
                f"missing ({n} records{'; ' + why if why else ''})"
            )
        self.gaps_published += 1
        start = missing.since_ns or now
        relay.gap(symbol, start, now, reason, missing.start_seq, missing.end_seq)

    def _peer_event(self, event: c.PeerEvent) -> None:
        if event.kind == "stale":
            log.warning(
                "[%s] publisher %s: no heartbeat for %.1f s (stale)",
                self._exchange,
                event.publisher,
                (time.monotonic_ns() - event.since_ns) / 1e9,
            )
            state, reason = "stale", f"publisher {event.publisher} sent no heartbeat (nats)"
        elif event.kind == "back":
            state, reason = "connected", f"publisher {event.publisher} is back (nats)"
        else:
            state, reason = "connected", f"publisher {event.publisher} restarted (nats)"
        for exchange in event.exchanges:
            # only exchanges this source brings in (a publisher may send others that
            # these subscriptions do not take)
            relay = self._relays.get(exchange)
            if relay is not None:
                relay.state(state, reason)

    def _relay(self, exchange: str) -> Sink | None:
        relay = self._relays.get(exchange)
        if relay is not None:
            return relay
        if exchange in self._refused:
            return None
        try:
            relay = self._sink.relay(exchange)
        except ValueError as exc:
            self._refused.add(exchange)
            log.error("[%s] %s", self._exchange, exc)
            return None
        self._relays[exchange] = relay
        return relay

    def _need(self) -> Client:
        nc = self._nc
        if nc is None or nc.is_closed:
            raise self._failed("the NATS link is not up")
        return nc


def _count(m: c.Records | c.GapMessage | c.StateMessage) -> int:
    return m.count if isinstance(m, c.Records) else 1
