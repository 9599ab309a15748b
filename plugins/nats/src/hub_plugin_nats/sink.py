"""The NATS sink: every tick after the bus, published as the hub's tick format
(sdk-docs/protocols/nats-ticks.md) on nats-py.

Per batch the runner hands over, the core's ``DbnBatcher`` groups market data per
(exchange, type, symbol) and the codec's ``Publisher`` numbers each group: one NATS
message per group, so a flush of the runner (``flush_ms``) is a handful of messages,
not one per tick. Gaps and state events are messages of their own, in order with
the groups around them. A batch that failed is sent again as the same messages
(same sequences, same Nats-Msg-Id): the receiver drops what it already has, and
JetStream stores each id once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from hub_core.plugin import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    ConnectionStateChanged,
    DbnBatcher,
    Gap,
    SinkConfig,
    SinkFactory,
    TickSink,
    redact_endpoint,
    redact_text,
)
from hub_plugin_nats.client import check_url, open_client
from hub_plugin_nats.codec import GapBody, Outgoing, Publisher, StateBody
from hub_plugin_nats.options import NatsSinkOptions

log = logging.getLogger("hub_plugin_nats")


def default_publisher() -> str:
    """``<host>-<pid>``: unique per process on a machine, readable in heartbeats."""
    return f"{socket.gethostname()}-{os.getpid()}"


class NatsSink:
    """One NATS link of a ``[sinks.NAME] kind = "nats"`` table (``TickSink``)."""

    def __init__(self, config: SinkConfig, options: NatsSinkOptions) -> None:
        self._config = config
        self._options = options
        self._where = f"sink {config.name or 'nats'}"
        self._url = redact_endpoint(config.url)
        self._publisher = Publisher(
            options.prefix,
            options.publisher or default_publisher(),
            epoch=time.time_ns(),
            heartbeat_ms=options.heartbeat_ms,
        )
        self._batcher = DbnBatcher()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._retry: tuple[Sequence[object], list[Outgoing]] | None = None
        self.messages = 0
        self.records = 0
        self.bytes = 0
        self.gaps = 0
        self.states = 0
        self.retried_batches = 0
        self.heartbeats = 0
        self.quiet_reopens = 0
        """Links the heartbeat reopened while no batch came (a quiet market)."""
        self.unsendable = 0
        """Ticks DBN cannot carry (a non-ASCII symbol, a value out of range): sent as Gaps."""
        self.duplicates_acked = 0
        """JetStream acks saying a message was a duplicate (a retried batch's repeat)."""

    @property
    def publisher(self) -> Publisher:
        """The numbering of what this sink publishes (its epoch, its subjects)."""
        return self._publisher

    # -- TickSink --------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (and create or update the JetStream stream); ``ConnectionFailed`` is
        retried by the runner, ``AuthenticationError`` / ``ConfigError`` stop the sink."""
        await self._drop_client()
        await self._connect()
        self._heartbeats = asyncio.create_task(self._beat())
        log.info("%s: publishing to %s as %s", self._where, self._url, self._publisher.publisher)

    async def _connect(self) -> Client:
        nc = await open_client(
            self._config.url,
            self._config.credentials,
            self._options,
            name=f"hub {self._publisher.publisher} {self._where}",
            where=self._where,
        )
        js = None
        if self._options.jetstream:
            try:
                js = nc.jetstream(timeout=self._options.ack_timeout_s)
                await self._ensure_stream(js)
            except BaseException:
                with contextlib.suppress(Exception):
                    await nc.close()
                raise
        self._nc, self._js = nc, js
        return nc

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        o = self._options
        config = StreamConfig(
            name=o.stream,
            # data subjects only: heartbeats (<prefix>._hb.<publisher>) are not stored
            subjects=[f"{o.prefix}.*.*.*"],
            max_age=o.max_age_s,
            max_bytes=o.max_bytes,
            duplicate_window=o.duplicate_window_s,
            storage=StorageType.FILE if o.storage == "file" else StorageType.MEMORY,
        )
        try:
            try:
                await js.stream_info(o.stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            raise ConfigError(
                f"{self._where}: JetStream refused the stream {o.stream}: {exc.description}",
                endpoint=self._url,
                hint="another stream may already capture these subjects, or the server's "
                "JetStream limits are lower than max_bytes",
            ) from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise ConnectionFailed(
                f"{self._where}: JetStream did not answer: {redact_text(str(exc) or repr(exc))}",
                endpoint=self._url,
                hint="start nats-server with -js (JetStream), or set jetstream = false",
            ) from None

    async def write(self, ticks: Sequence[object]) -> None:
        """Publish one batch: a message per (exchange, type, symbol) group, gaps and
        states in order. The same batch again (after a failure) is the same messages."""
        retry = self._retry
        if retry is not None and retry[0] is ticks:
            messages = retry[1]
            self.retried_batches += 1
        else:
            messages = self._encode(ticks)
            self._retry = (ticks, messages)
        nc = self._nc
        if nc is None or nc.is_closed:
            raise self._lost("the link is closed")
        try:
            if self._js is not None:
                await self._publish_jetstream(self._js, messages)
            else:
                for m in messages:
                    await nc.publish(m.subject, m.payload, headers=m.headers)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise self._lost(redact_text(str(exc) or type(exc).__name__)) from None
        self._retry = None
        self._publisher.sent(messages)
        for m in messages:
            self.messages += 1
            self.bytes += len(m.payload)
            if m.kind == "gap":
                self.gaps += 1
            elif m.kind == "state":
                self.states += 1
            else:
                self.records += m.count

    async def _publish_jetstream(self, js: JetStreamContext, messages: list[Outgoing]) -> None:
        # pipelined: every message goes out, then the acks are awaited together (one
        # round trip per batch, not per message)
        futures = [
            await js.publish_async(m.subject, m.payload, headers=dict(m.headers), wait_stall=5.0)
            for m in messages
        ]
        try:
            async with asyncio.timeout(self._options.ack_timeout_s):
                acks = await asyncio.gather(*futures)
        except TimeoutError:
            for f in futures:
                f.cancel()
            raise ConnectionFailed(
                f"{self._where}: JetStream acknowledged nothing within "
                f"{self._options.ack_timeout_s:g}s",
                endpoint=self._url,
            ) from None
        self.duplicates_acked += sum(1 for a in acks if a.duplicate)

    def _encode(self, ticks: Sequence[object]) -> list[Outgoing]:
        batcher = self._batcher
        out: list[Outgoing] = []
        for tick in ticks:
            try:
                if batcher.add(tick):
                    continue
            except ValueError as exc:  # a value DBN cannot hold: a Gap, never a crash
                self._unsendable(out, tick, str(exc))
                continue
            # a control event: what was batched before it goes first, in bus order
            self._groups(out)
            pub = self._publisher
            if isinstance(tick, Gap):
                body = GapBody(
                    tick.start_ts,
                    tick.end_ts,
                    tick.reason,
                    tick.start_seq,
                    tick.end_seq,
                    tick.ts_event,
                )
                out.append(pub.gap(tick.exchange, tick.symbol, body))
            elif isinstance(tick, ConnectionStateChanged):
                state = StateBody(
                    tick.state,
                    tick.reason,
                    tick.ts_event,
                    redact_endpoint(tick.endpoint),
                    tick.attempt,
                )
                out.append(pub.state(tick.exchange, tick.symbol, state))
        self._groups(out)
        return out

    def _groups(self, out: list[Outgoing]) -> None:
        pub = self._publisher
        for g in self._batcher.take():
            try:
                records = g.records
            except ValueError as exc:  # e.g. a symbol DBN cannot name (non-ASCII)
                self.unsendable += g.count
                why = f"nats sink: {g.count} {g.kind} records not sendable as DBN: {exc}"
                out.append(pub.gap(g.exchange, g.symbol, GapBody(g.ts_recv, g.ts_recv, why)))
                continue
            out.append(pub.records(g.exchange, g.kind, g.symbol, records, g.count))

    def _unsendable(self, out: list[Outgoing], tick: object, why: str) -> None:
        self.unsendable += 1
        exchange = str(getattr(tick, "exchange", ""))
        symbol = str(getattr(tick, "symbol", ""))
        ts = int(getattr(tick, "ts_recv", 0))
        self._groups(out)
        body = GapBody(ts, ts, f"nats sink: a {type(tick).__name__} not sendable as DBN: {why}")
        out.append(self._publisher.gap(exchange, symbol, body))

    async def _beat(self) -> None:
        """Publish a heartbeat every ``heartbeat_ms``. A link lost while no batch comes
        (a quiet market: no write notices it) is reopened here, so receivers go on hearing
        from this publisher; a write on a broken link still raises for the runner."""
        interval = self._options.heartbeat_ms / 1000
        delay = interval
        while True:
            nc = self._nc
            if nc is None or nc.is_closed:
                try:
                    await self._connect()
                except (AuthenticationError, ConfigError):
                    return  # the runner's next open says so and stops the sink
                except (ConnectionFailed, OSError):
                    delay = min(delay * 2, 10.0)
                    await asyncio.sleep(delay)
                    continue
                self.quiet_reopens += 1
                delay = interval
                continue
            subject, payload = self._publisher.heartbeat(time.time_ns())
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.publish(subject, payload)
                self.heartbeats += 1
            await asyncio.sleep(interval)

    def _lost(self, why: str) -> ConnectionFailed:
        return ConnectionFailed(
            f"{self._where}: the NATS link broke: {why}",
            endpoint=self._url,
            hint="the hub reopens it and sends the batch again",
        )

    async def close(self) -> None:
        """Flush what nats-py holds and disconnect."""
        nc = self._nc
        if nc is not None and nc.is_connected:
            try:
                await nc.flush(timeout=2)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.info("%s: flush on close: %s", self._where, redact_text(str(exc)))
        await self._drop_client()

    async def _drop_client(self) -> None:
        task, self._heartbeats = self._heartbeats, None
        if task is not None:
            task.cancel()
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            # a broken link is as closed as it gets
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await nc.close()

    def stats(self) -> dict[str, int]:
        """Messages, records, bytes, gaps and states published, retried batches,
        heartbeats, JetStream duplicates."""
        return {
            "messages": self.messages,
            "records": self.records,
            "bytes": self.bytes,
            "gaps": self.gaps,
            "states": self.states,
            "retried_batches": self.retried_batches,
            "heartbeats": self.heartbeats,
            "jetstream_duplicates": self.duplicates_acked,
            "unsendable": self.unsendable,
            "quiet_reopens": self.quiet_reopens,
        }


class NatsSinkFactory(SinkFactory):
    """``[sinks.NAME] kind = "nats"``: ticks to NATS subjects (and JetStream)."""

    kind = "nats"
    options_model = NatsSinkOptions
    description = "ticks to NATS subjects <prefix>.<exchange>.<type>.<symbol> (DBN; JetStream)"

    def create(self, config: SinkConfig) -> TickSink:
        """A new, unopened sink."""
        return NatsSink(config, NatsSinkOptions.model_validate(config.options))

    def check(self, config: SinkConfig) -> None:
        """A malformed URL is a ``ConfigError`` at ``hub check`` time."""
        try:
            check_url(config.url)
        except ValueError as exc:
            # `hub check` names the key (sinks.NAME.url) in front of this
            raise ConfigError(str(exc), hint='url = "nats://127.0.0.1:4222"') from None
