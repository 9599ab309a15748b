"""Sinks: where ticks go after the bus, to another process or machine (NATS, say).

A sink plugin implements ``hub_sink_factories() -> list[SinkFactory]``; each
``[sinks.NAME]`` table of hub.toml names a factory's ``kind``. The hub runs one
``SinkRunner`` per sink: it subscribes to the bus, keeps what the sink has not
taken yet in a bounded buffer (the socket readers never wait for a sink),
hands the sink batches of ticks in bus order, and supervises it: a sink whose
link breaks is reopened with backoff and handed the same batch again, and
ticks that did not fit in the buffer are counted and replaced, in the stream
the sink sees, by a ``Gap`` per exchange, so the far side never has a silent
hole. Interpreted (anyio, pydantic); the per-tick path is one bound
``deque.append`` behind a set lookup.
"""

from __future__ import annotations

import abc
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel

from hub_core.bus import Subscription, TypedEventBus
from hub_core.config import SinkConfig
from hub_core.contracts import PLUGIN_API_VERSION, PluginOptions
from hub_core.errors import AuthenticationError, ConfigError, ConnectionFailed
from hub_core.recording import DropWindow
from hub_core.redact import redact_endpoint, redact_text
from hub_core.supervisor import backoff_delay_ms
from hub_core.ticks import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    Gap,
    Quote,
    Trade,
)

log = logging.getLogger("hub_core.sinks")

SHIPPED_TYPES: tuple[type, ...] = (
    Trade,
    Quote,
    BookUpdate,
    BookSnapshot,
    BookClear,
    Gap,
    ConnectionStateChanged,
)
"""What a sink is handed: every market-data tick and every control event."""

SINK_EVENT_PREFIX = "sinks."
"""A sink's own state changes are ``ConnectionStateChanged`` events on the bus whose
``exchange`` is ``sinks.NAME`` (so ``hub run --jsonl`` shows them); sinks never ship them."""

CLOSE_FLUSH_S = 5.0
"""On a clean stop, how long the runner goes on handing what is buffered to the sink."""


@runtime_checkable
class TickSink(Protocol):
    """What a sink plugin's factory creates: one link to where ticks go.

    The runner calls ``open()``, then ``write(batch)`` for each batch, and
    ``close()`` at the end. ``open`` raises ``ConnectionFailed`` (or
    ``OSError``) to be retried with backoff, ``AuthenticationError`` or
    ``ConfigError`` to stop the sink for good. ``write`` raises
    ``ConnectionFailed`` when the link broke: the runner reopens and calls
    ``write`` again with the same batch, so a retried batch must mean the same
    to a receiver (same sequence numbers, same message ids).
    """

    async def open(self) -> None:
        """Connect (and set up what the sink needs on the far side)."""

    async def write(self, ticks: Sequence[object]) -> None:
        """Deliver one batch: ``Trade``, ``Quote``, ``BookUpdate``, ``BookSnapshot``,
        ``BookClear``, ``Gap`` and ``ConnectionStateChanged`` objects in bus order."""

    async def close(self) -> None:
        """Flush what the sink itself buffers and disconnect."""

    def stats(self) -> dict[str, int]:
        """The sink's own counters (messages, bytes, ...), shown beside the runner's."""
        ...


class SinkFactory(abc.ABC):
    """Creates sinks of one ``kind``. Returned by the ``hub_sink_factories`` hook."""

    kind: str = ""
    """The ``kind`` value of ``[sinks.NAME]`` this factory serves."""
    options_model: type[BaseModel] = PluginOptions
    """Validates ``SinkConfig.options``."""
    api_version: tuple[int, int] = PLUGIN_API_VERSION
    """The plugin API version this plugin was built for."""
    description: str = ""
    """One line for ``hub plugins``."""

    @abc.abstractmethod
    def create(self, config: SinkConfig) -> TickSink:
        """A new, unopened sink for ``config`` (options already validated)."""

    def check(self, config: SinkConfig) -> None:
        """Raise ``ConfigError`` for a config that cannot work (a malformed ``url``):
        ``hub check`` calls it, so the mistake is found before ``hub run``."""
        return None

    def validate_options(self, config: SinkConfig) -> BaseModel:
        """``config.options`` through ``options_model`` (pydantic's ``ValidationError``)."""
        return self.options_model.model_validate(config.options)


@dataclass
class SinkStatus:
    """A sink's state and counters, as of the call (``ExchangeHub.sink_status``)."""

    name: str
    kind: str
    url: str
    """Redacted: no password or token."""
    state: str
    """As a connection's (``ConnectionState``): ``"connecting"``, ``"connected"``,
    ``"reconnecting"``, ``"auth_failed"``, ``"dead"`` or ``"closed"``."""
    reason: str
    sent: int
    """Ticks the sink took (``write`` returned)."""
    dropped: int
    """Ticks that did not fit in the buffer (each covered by a ``Gap`` sent after)."""
    buffered: int
    reconnects: int
    sink: dict[str, int]
    """The sink's own ``stats()``."""


class SinkRunner:
    """Feeds one sink from the bus and keeps it alive (see the module docstring)."""

    def __init__(
        self,
        config: SinkConfig,
        sink: TickSink,
        *,
        relayed: set[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.name = config.name
        self.state = "connecting"
        self.reason = ""
        self.sent = 0
        self.dropped = 0
        self.reconnects = 0
        self._queue: deque[Any] = deque()
        self._cap = config.buffer
        self._drops: dict[str, DropWindow] = {}
        self._pending: list[Any] | None = None
        self._subs: list[Subscription] = []
        self._bus: TypedEventBus | None = None
        self._attempt = 0
        self._relayed = relayed if relayed is not None else set()
        self._only = None if config.exchanges is None else frozenset(config.exchanges)
        self._wake: anyio.Event | None = None
        self._closing = False
        self._was_up = False
        self._rng = rng or random.Random()
        self._url = redact_endpoint(config.url)

    # -- the bus side (the readers' tasks: never waits) -----------------------------
    def attach(self, bus: TypedEventBus) -> None:
        """Subscribe to everything a sink is handed."""
        self._bus = bus
        for tick_type in SHIPPED_TYPES:
            handler = self._take_state if tick_type is ConnectionStateChanged else self._take
            self._subs.append(bus.subscribe(tick_type, handler))

    def detach(self) -> None:
        for sub in self._subs:
            sub.unsubscribe()
        self._subs = []

    def _take_state(self, event: ConnectionStateChanged) -> None:
        if not event.exchange.startswith(SINK_EVENT_PREFIX):
            self._take(event)

    def _take(self, tick: Any) -> None:
        exchange = tick.exchange
        if self._only is None:
            if exchange in self._relayed:
                return  # another hub's ticks: shipping them back would loop
        elif exchange not in self._only:
            return
        if len(self._queue) >= self._cap:
            window = self._drops.get(exchange)
            if window is None:
                window = self._drops[exchange] = DropWindow(tick.ts_recv)
            window.count += 1
            window.last_ts = tick.ts_recv
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100_000 == 0:
                log.warning(
                    "sink %s: %d ticks dropped so far (the buffer of %d is full: %s)",
                    self.name,
                    self.dropped,
                    self._cap,
                    self.state if self.state != "connected" else "the sink is slower than the feed",
                )
            return
        if self._drops:
            self._close_drops()
        self._queue.append(tick)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def _close_drops(self) -> None:
        drops, self._drops = self._drops, {}
        for exchange, w in drops.items():
            self._queue.append(
                Gap(
                    exchange,
                    "",
                    w.first_ts,
                    w.last_ts,
                    f"sink {self.name}: {w.count} ticks not sent (its buffer of {self._cap} "
                    "was full)",
                    0,
                    0,
                    w.last_ts,
                )
            )

    # -- the sink side (the runner's task) ---------------------------------------------
    def status(self) -> SinkStatus:
        try:
            own = dict(self.sink.stats())
        except Exception:  # a sink's counters never take the status down
            own = {}
        return SinkStatus(
            self.name,
            self.config.kind,
            self._url,
            self.state,
            self.reason,
            self.sent,
            self.dropped,
            len(self._queue) + len(self._pending or ()),
            self.reconnects,
            own,
        )

    def _set_state(self, state: str, reason: str = "") -> None:
        if state == self.state and reason == self.reason:
            return
        self.state = state
        self.reason = reason
        level = logging.INFO if state in ("connected", "closed") else logging.WARNING
        log.log(
            level,
            "sink %s (%s): %s%s",
            self.name,
            self._url,
            state,
            f": {redact_text(reason)}" if reason else "",
        )
        bus = self._bus
        if bus is not None:
            now = time.time_ns()
            bus.publish(
                ConnectionStateChanged(
                    SINK_EVENT_PREFIX + self.name,
                    state,
                    redact_text(reason),
                    now,
                    now,
                    self._url,
                    self._attempt,
                )
            )

    async def run(self) -> None:
        """Open, feed, reopen with backoff; returns when the sink is dead or closed. A
        sink that raises anything but the errors of its contract is a bug of the sink:
        it is stopped (``dead``, the error logged with its traceback), never the hub."""
        try:
            await self._run()
        except Exception as exc:
            log.error("sink %s stopped: it raised %r", self.name, exc, exc_info=exc)
            self._stop_for_good("dead", f"the sink raised {type(exc).__name__}: {exc}")

    def _stop_for_good(self, state: str, reason: str) -> None:
        self._set_state(state, reason)
        self.detach()
        self.dropped += len(self._queue) + len(self._pending or ())
        self._queue.clear()
        self._pending = None

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self.sink.open()
            except (AuthenticationError, ConfigError) as exc:
                final = "auth_failed" if isinstance(exc, AuthenticationError) else "dead"
                self._stop_for_good(final, str(exc))
                return
            except (ConnectionFailed, OSError) as exc:
                attempt += 1
                self._attempt = attempt
                self._set_state("reconnecting", f"cannot open: {exc}")
                await self._backoff(attempt)
                continue
            if self._was_up:
                self.reconnects += 1  # back after a lost link (not a slow first open)
            self._was_up = True
            attempt = self._attempt = 0
            self._set_state("connected")
            try:
                await self._pump()
                return
            except (ConnectionFailed, OSError) as exc:
                attempt += 1
                self._attempt = attempt
                self._set_state("reconnecting", f"link lost: {exc}")
                await self._backoff(attempt)

    async def _backoff(self, attempt: int) -> None:
        delay = backoff_delay_ms(
            attempt, self.config.reconnect_delay_ms, self.config.reconnect_max_delay_ms, self._rng
        )
        await anyio.sleep(delay / 1000.0)

    async def _pump(self) -> None:
        flush_s = self.config.flush_ms / 1000.0
        most = self.config.batch
        queue = self._queue
        while True:
            batch = self._pending
            if batch is None:
                if not queue:
                    if self._closing:
                        return
                    wake = self._wake = anyio.Event()
                    await wake.wait()
                    if len(queue) < most and not self._closing:
                        await anyio.sleep(flush_s)  # let a batch gather: bounded latency
                if self._drops:
                    self._close_drops()
                n = min(len(queue), most)
                if n == 0:
                    continue
                batch = [queue.popleft() for _ in range(n)]
                self._pending = batch
            await self.sink.write(batch)
            self._pending = None
            self.sent += len(batch)

    async def close(self) -> None:
        """Stop taking ticks, hand the sink what is buffered (``CLOSE_FLUSH_S`` at most),
        close it. The caller cancels ``run`` afterwards if it is still reconnecting."""
        self.detach()
        if self._drops:
            self._close_drops()
        self._closing = True
        wake = self._wake
        if wake is not None:
            wake.set()

    def finish(self) -> None:
        """After ``run`` ended: count what never reached the sink, and say so."""
        left = len(self._queue) + len(self._pending or ())
        if left:
            self.dropped += left
            log.warning("sink %s: %d ticks were not sent before the hub stopped", self.name, left)
        if self.state not in ("dead", "auth_failed"):
            self._set_state("closed")

    async def run_until_closed(self) -> None:
        """``run``, then ``close`` the sink itself (also on cancellation)."""
        try:
            await self.run()
        finally:
            self.finish()
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_FLUSH_S):
                try:
                    await self.sink.close()
                except Exception as exc:  # closing never raises into the hub's exit
                    log.warning("sink %s: close failed: %s", self.name, redact_text(str(exc)))
