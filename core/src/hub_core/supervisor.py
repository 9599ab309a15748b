"""Connection supervision: connect, watch health, reconnect, fail over, resubscribe.

One ``ConnectionSupervisor`` per connection, run by the ``ConnectionManager``.
Every state change is published as ``ConnectionStateChanged`` and every
window in which the connection was blind as a ``Gap``, through the
connection's sink (so they reach the bus in order with the data).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hub_core.config import ExchangeConfig
from hub_core.contracts import ConnectionFactory, ExchangeConnection
from hub_core.errors import (
    AuthenticationError,
    ConnectionDead,
    ConnectionFailed,
    HubError,
    SubscriptionError,
)
from hub_core.processor import ConnectionSink
from hub_core.ticks import ConnectionState

log = logging.getLogger("hub_core.supervisor")

# What a dropped link may raise: retried with backoff. Anything else is a bug
# in the plugin; it is retried too (logged with its traceback), never fatal.
_TRANSIENT = (
    HubError,
    OSError,
    EOFError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    TimeoutError,
)


_JITTER = random.Random()


def backoff_delay_ms(attempt: int, base_ms: int, max_ms: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter, floored at ``base_ms``.

    Attempt 1 waits in [base, 2*base], attempt n in [base, min(max, base*2**n)].
    The floor keeps a reconnect storm under the venue's connection-rate limit.
    """
    cap = min(float(max_ms), float(base_ms) * (2.0 ** min(attempt, 30)))
    return rng.uniform(float(base_ms), max(float(base_ms), cap))


def endpoint_host(endpoint: str) -> str:
    """The host part of ``host:port`` or a URL: what a venue's connection-rate limit counts."""
    rest = endpoint.split("://", 1)[-1]
    hostport = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


class ConnectPacer:
    """Spaces connection attempts to one host, across every connection of the hub.

    Venues limit new connections per IP and interval; ten connections to one
    venue reconnecting after a network blip must not arrive as one burst.
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._next_ns: dict[str, int] = {}

    async def wait(self, host: str, interval_ms: int) -> None:
        """Return when an attempt to ``host`` may start (reserves the slot)."""
        gap_ns = interval_ms * 1_000_000
        now = self._clock()
        slot = max(now, self._next_ns.get(host, 0))
        self._next_ns[host] = slot + gap_ns
        if slot > now:
            await anyio.sleep((slot - now) / 1e9)


class ConnectionSupervisor:
    """Keeps one connection alive according to its ``ExchangeConfig``."""

    def __init__(
        self,
        name: str,
        config: ExchangeConfig,
        factory: ConnectionFactory,
        sink: ConnectionSink,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        pacer: ConnectPacer | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.factory = factory
        self.sink = sink
        self.symbols: list[str] = list(dict.fromkeys(config.symbols))
        self.state = ConnectionState.CONNECTING
        self.reason = ""
        self.endpoint = config.endpoint
        self.attempt = 0
        self.connects = 0
        self.error: HubError | None = None
        # one generator for every supervisor: a Random holds 2.5 KiB of state, and jitter
        # needs no per-connection stream
        self._rng = rng or _JITTER
        self._clock = clock
        self._pacer = pacer or ConnectPacer(clock)
        self._conn: ExchangeConnection | None = None
        self._stopping = False
        self._cancel: anyio.CancelScope | None = None
        self._recycle: anyio.Event | None = None
        self._recycle_reason = ""
        self._changed: anyio.Event | None = None  # made when someone waits
        self.finished = anyio.Event()

    # -- public view --------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return self.state == ConnectionState.CONNECTED

    @property
    def dead(self) -> bool:
        return self.state in (ConnectionState.DEAD, ConnectionState.AUTH_FAILED)

    async def wait_settled(self) -> None:
        """Wait until connected, dead, or closed."""
        while self.state not in (
            ConnectionState.CONNECTED,
            ConnectionState.DEAD,
            ConnectionState.AUTH_FAILED,
            ConnectionState.CLOSED,
        ):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def _set_state(self, state: str, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self.sink.state(state, reason, self.endpoint, self.attempt)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        level = (
            logging.WARNING
            if state in (ConnectionState.RECONNECTING, ConnectionState.STALE)
            else logging.INFO
        )
        if state in (ConnectionState.DEAD, ConnectionState.AUTH_FAILED):
            level = logging.ERROR
        log.log(
            level, "[%s] %s %s%s", self.name, state, self.endpoint, f": {reason}" if reason else ""
        )

    # -- subscriptions ------------------------------------------------------------
    async def subscribe(self, symbols: list[str]) -> None:
        new = [s for s in dict.fromkeys(symbols) if s not in self.symbols]
        if not new:
            return
        self.symbols.extend(new)
        conn = self._conn
        if conn is not None and self.healthy:
            try:
                await conn.subscribe(new)
            except SubscriptionError:
                self.symbols = [s for s in self.symbols if s not in new]
                raise

    async def unsubscribe(self, symbols: list[str]) -> None:
        gone = [s for s in symbols if s in self.symbols]
        self.symbols = [s for s in self.symbols if s not in gone]
        conn = self._conn
        if gone and conn is not None and self.healthy:
            await conn.unsubscribe(gone)

    # -- lifecycle ------------------------------------------------------------------
    def stopping(self) -> bool:
        return self._stopping

    async def stop(self) -> None:
        """Close the connection and stop supervising (publishes ``closed``)."""
        self._stopping = True
        if self._cancel is not None:
            self._cancel.cancel()
        await self.finished.wait()

    async def run(self) -> None:
        """Supervise until stopped or dead. Never raises for a connection failure."""
        try:
            with anyio.CancelScope() as scope:
                self._cancel = scope
                await self._loop()
        finally:
            # whatever a plugin's close() raises (even a CancelledError of its own), the
            # state is published and stop() does not wait forever
            try:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await self._close(conn)
            finally:
                try:
                    if not self.dead:
                        self._set_state(ConnectionState.CLOSED, "closed on request")
                finally:
                    self.finished.set()

    async def _loop(self) -> None:
        cfg = self.config
        endpoints = cfg.endpoints
        index = 0
        failures = 0  # consecutive attempts that gave no data
        silent_recycles = 0
        blind_since_ns = 0  # wall-clock ns when data stopped; 0 = not blind
        blind_reason = ""
        while not self._stopping:
            self.endpoint = endpoints[index % len(endpoints)]
            await self._pace()
            self._set_state(ConnectionState.CONNECTING, f"attempt {failures + 1}")
            kind, reason, had_data = await self._session(blind_since_ns, blind_reason)
            if self.stopping():  # stop() may have run while we awaited
                return
            if kind == "auth":
                self._set_state(ConnectionState.AUTH_FAILED, reason)
                return
            if blind_since_ns == 0 and self.connects > 0:
                blind_since_ns = time.time_ns()
            blind_reason = reason
            if kind == "session_ended":
                self.sink.reconnects += 1
                if had_data:
                    failures = 0  # this endpoint worked: retry it first
                    blind_since_ns = time.time_ns()
                if reason.startswith("stale"):
                    silent_recycles = 0 if had_data else silent_recycles + 1
                    if silent_recycles >= cfg.max_silent_recycles:
                        self.error = ConnectionDead(
                            f"connected {silent_recycles} times in a row but no market data "
                            "arrived",
                            exchange=self.name,
                            endpoint=self.endpoint,
                            hint="the venue is probably ignoring the subscription (unknown "
                            "symbol, missing market-data entitlement, or a closed market); "
                            "check the symbols and permissions",
                        )
                        self._set_state(ConnectionState.DEAD, str(self.error))
                        return
                elif had_data:
                    silent_recycles = 0
            failures += 1
            if cfg.reconnect_attempts and failures > cfg.reconnect_attempts:
                self.error = ConnectionDead(
                    f"gave up after {failures - 1} reconnect attempts (last: {reason})",
                    exchange=self.name,
                    endpoint=", ".join(endpoints),
                    hint="check that the venue is reachable, or raise reconnect_attempts "
                    "(0 = retry forever)",
                )
                self._set_state(ConnectionState.DEAD, str(self.error))
                return
            if not had_data:
                index += 1  # fail over to the next endpoint
            self.attempt = failures
            delay = backoff_delay_ms(
                failures, cfg.reconnect_delay_ms, cfg.reconnect_max_delay_ms, self._rng
            )
            self._set_state(ConnectionState.RECONNECTING, f"{reason}; retrying in {delay:.0f} ms")
            await anyio.sleep(delay / 1000.0)

    async def _pace(self) -> None:
        """Never open connections to one host faster than ``min_connect_interval_ms``."""
        interval = self.config.min_connect_interval_ms
        if interval:
            await self._pacer.wait(endpoint_host(self.endpoint), interval)

    async def _session(self, blind_since_ns: int, blind_reason: str) -> tuple[str, str, bool]:
        """One connection's life. Returns (outcome, reason, data_seen)."""
        cfg = self.config
        conn = self.factory.create(cfg, self.sink)
        self._conn = conn
        self.sink.reset_session()
        try:
            with anyio.fail_after(cfg.connect_timeout_ms / 1000.0):
                await conn.connect(self.endpoint)
        except AuthenticationError as exc:
            self.error = exc
            await self._close(conn)
            return ("auth", str(exc), False)
        except _TRANSIENT as exc:
            await self._close(conn)
            return ("connect_failed", _describe(exc), False)
        except Exception as exc:
            log.exception("[%s] plugin raised unexpectedly in connect()", self.name)
            await self._close(conn)
            return ("connect_failed", _describe(exc), False)

        if blind_since_ns:
            # Published before resubscribing: venues send fresh book snapshots with
            # their acks, and a subscriber that distrusts its book after a Gap must
            # see the Gap first, not after the new snapshot.
            self.sink.gap(
                "", blind_since_ns, time.time_ns(), f"blind while reconnecting ({blind_reason})"
            )
        ended = anyio.Event()
        end_reason: list[str] = []
        data_at_start = self.sink.data_count

        async def reader() -> None:
            try:
                await conn.run()
                end_reason.append("connection closed by the venue")
            except AuthenticationError as exc:
                self.error = exc
                end_reason.append("auth:" + str(exc))
            except Exception as exc:
                if not isinstance(exc, _TRANSIENT):
                    log.exception("[%s] plugin raised unexpectedly in run()", self.name)
                end_reason.append(_describe(exc))
            finally:
                ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            try:
                with anyio.fail_after(cfg.connect_timeout_ms / 1000.0):
                    await self._resubscribe(conn)
            except TimeoutError:
                end_reason.append("subscribing timed out")
                ended.set()
            except _TRANSIENT as exc:
                end_reason.append(_describe(exc))
                ended.set()
            if not ended.is_set():
                self.connects += 1
                self.attempt = 0
                self._set_state(
                    ConnectionState.CONNECTED, f"subscribed {len(self.symbols)} symbols"
                )
                await self._watch(conn, tg, ended, end_reason)
            tg.cancel_scope.cancel()
        await self._close(conn)
        self._conn = None
        reason = end_reason[0] if end_reason else "closed"
        if reason.startswith("auth:"):
            return ("auth", reason[5:], False)
        return ("session_ended", reason, self.sink.data_count > data_at_start)

    async def _resubscribe(self, conn: ExchangeConnection) -> None:
        if not self.symbols:
            return
        try:
            await conn.subscribe(list(self.symbols))
        except SubscriptionError as exc:
            # keep the others; the refused ones stay in the list and are retried on reconnect
            log.error("[%s] %s", self.name, exc)

    async def _watch(
        self,
        conn: ExchangeConnection,
        tg: TaskGroup,
        ended: anyio.Event,
        end_reason: list[str],
    ) -> None:
        """Health watch: stale detection (probe, then recycle) until the session ends."""
        cfg = self.config
        stale_ns = cfg.stale_after_ms * 1_000_000
        tick_s = min(max(cfg.stale_after_ms / 4000.0, 0.01), 1.0) if stale_ns else 1.0
        last_data = self.sink.data_count
        last_data_ns = self._clock()
        probing_since = 0
        while not ended.is_set() and not self._stopping:
            with anyio.move_on_after(tick_s):
                await ended.wait()
            if ended.is_set() or not stale_ns:
                continue
            now = self._clock()
            if self.sink.data_count != last_data:
                last_data = self.sink.data_count
                last_data_ns = now
            activity_ns = conn.health().last_activity_ns or last_data_ns
            silent_link = now - max(activity_ns, last_data_ns) > stale_ns
            silent_data = bool(self.symbols) and now - last_data_ns > stale_ns
            if not (silent_link or silent_data):
                if probing_since:
                    probing_since = 0
                    self._set_state(ConnectionState.CONNECTED, "data resumed")
                continue
            if not probing_since:
                probing_since = now
                what = "no bytes" if silent_link else "no market data"
                self._set_state(
                    ConnectionState.STALE, f"{what} for {cfg.stale_after_ms} ms; probing"
                )
                try:
                    await conn.probe()
                except Exception as exc:
                    end_reason.append(_describe(exc))
                    ended.set()
            elif now - probing_since > stale_ns // 2:
                end_reason.append(
                    f"stale: silent for {(now - last_data_ns) // 1_000_000} ms after a probe"
                )
                ended.set()

    async def _close(self, conn: ExchangeConnection) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                await conn.close()
            except Exception as exc:
                log.debug("[%s] close() raised %r", self.name, exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ConnectionManager:
    """Runs one ``ConnectionSupervisor`` per connection in a task group."""

    def __init__(self, tg: TaskGroup) -> None:
        self._tg = tg
        self.supervisors: dict[str, ConnectionSupervisor] = {}
        self.pacer = ConnectPacer()
        """Shared by every supervisor, so pacing holds across connections to one host."""

    def start(self, supervisor: ConnectionSupervisor) -> None:
        if (
            supervisor.name in self.supervisors
            and not self.supervisors[supervisor.name].finished.is_set()
        ):
            raise HubError(
                "already connected",
                exchange=supervisor.name,
                hint="disconnect_exchange() it first or use another name",
            )
        self.supervisors[supervisor.name] = supervisor
        self._tg.start_soon(supervisor.run, name=f"hub-supervisor-{supervisor.name}")

    async def stop(self, name: str) -> None:
        sup = self.supervisors.pop(name, None)
        if sup is not None:
            await sup.stop()

    async def stop_all(self) -> None:
        for name in list(self.supervisors):
            await self.stop(name)

    def get(self, name: str) -> ConnectionSupervisor | None:
        return self.supervisors.get(name)

    def status(self) -> dict[str, bool]:
        return {name: sup.healthy for name, sup in self.supervisors.items()}

    def all_dead(self) -> bool:
        sups: list[Any] = list(self.supervisors.values())
        return bool(sups) and all(s.dead for s in sups)


__all__ = [
    "ConnectPacer",
    "ConnectionFailed",
    "ConnectionManager",
    "ConnectionSupervisor",
    "backoff_delay_ms",
    "endpoint_host",
]
