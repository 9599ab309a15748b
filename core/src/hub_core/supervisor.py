"""Connection supervision: connect, watch health, reconnect, fail over, resubscribe.

One ``ConnectionSupervisor`` per connection, run by the ``ConnectionManager``.
Every state change is published as ``ConnectionStateChanged`` and every
window in which the connection was blind as a ``Gap``, through the
connection's sink (so they reach the bus in order with the data).
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from hub_core.config import ExchangeConfig
from hub_core.contracts import ConnectionFactory, ExchangeConnection
from hub_core.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionDead,
    ConnectionFailed,
    HubError,
    RateLimited,
    SequenceMismatch,
    SubscriptionError,
)
from hub_core.processor import ConnectionSink
from hub_core.redact import redact_endpoint, redact_text
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


class Outcome(enum.Enum):
    """How a session ended: what the supervisor does next depends on this alone."""

    REFUSED = "refused"
    """``AuthenticationError``: one attempt, then ``auth_failed``; never retried."""
    SEQUENCE = "sequence"
    """``SequenceMismatch``: retrying cannot help; ``dead`` with the plugin's message."""
    CONFIG = "config"
    """``ConfigError`` from the plugin (an endpoint or option it cannot use): ``dead``."""
    RATE_LIMITED = "rate_limited"
    """``RateLimited``: wait ``Retry-After`` (at least the backoff), same endpoint."""
    CONNECT_FAILED = "connect_failed"
    """A transient failure before the session was up: backoff, then the next endpoint."""
    DROPPED = "dropped"
    """The link dropped (or subscribing failed) after the session was up: reconnect."""
    STALE = "stale"
    """The link sent nothing and left a probe unanswered: recycled."""
    CLOSED = "closed"
    """The venue ended the session (``run()`` returned): reconnect."""


@dataclass
class SessionEnd:
    """One session's end, as ``ConnectionSupervisor._session`` reports it."""

    outcome: Outcome
    reason: str
    retry_after_s: float = 0.0
    was_up: bool = False
    """The session got as far as ``connected``."""
    had_data: bool = False
    """Market data arrived in this session."""
    had_bytes: bool = False
    """The venue sent anything at all after connecting (heartbeats count)."""
    hint: str = ""
    """What to do, when the error that ended it said (kept apart from ``reason`` so a
    message that quotes the reason carries one hint, not two)."""

    @property
    def told(self) -> str:
        """The reason with its hint, for a state that shows this one end."""
        return f"{self.reason}: {self.hint}" if self.hint else self.reason


def backoff_delay_ms(attempt: int, base_ms: int, max_ms: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter, floored at ``base_ms``.

    Attempt 1 waits in [base, 2*base], attempt n in [base, min(max, base*2**n)].
    The floor keeps a reconnect storm under the venue's connection-rate limit.
    """
    cap = min(float(max_ms), float(base_ms) * (2.0 ** min(attempt, 30)))
    return rng.uniform(float(base_ms), max(float(base_ms), cap))


def endpoint_address(endpoint: str) -> str:
    """``host:port`` of an endpoint (the scheme's default port when it has none): the key
    connection pacing counts under. Credentials and paths are never part of it."""
    scheme, _, rest = endpoint.rpartition("://")
    hostport = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host = endpoint_host(endpoint)
    port = ""
    if hostport.startswith("["):
        tail = hostport[hostport.find("]") + 1 :]
        port = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        port = hostport.rsplit(":", 1)[1]
    if not port:
        port = _DEFAULT_PORTS.get(scheme.lower(), "")
    return f"{host}:{port}" if port else host


_DEFAULT_PORTS = {"ws": "80", "http": "80", "wss": "443", "https": "443"}


def endpoint_host(endpoint: str) -> str:
    """The host part of ``host:port`` or a URL: what a venue's connection-rate limit counts."""
    rest = endpoint.split("://", 1)[-1]
    hostport = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


class ConnectPacer:
    """Spaces connection attempts to one venue address, across every connection of the hub.

    Venues limit new connections per IP and interval; ten connections to one
    venue reconnecting after a network blip must not arrive as one burst.
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._next_ns: dict[str, int] = {}

    async def wait(self, host: str, interval_ms: int) -> None:
        """Return when an attempt to ``host`` (a pacing key) may start; reserves the slot
        first and sleeps holding no lock, so one busy key never delays another."""
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
        """The endpoint being dialled, raw: it stays inside the supervisor and the plugin."""
        self._shown_endpoint = redact_endpoint(config.endpoint)
        self._bytes_done = 0
        self.attempt = 0
        self.connects = 0
        self.error: HubError | None = None
        self.refused: dict[str, str] = {}
        """Symbols the venue refused at the last (re)subscription, with its reason."""
        self.quiet = False
        """True while the link is alive but no market data at all arrives (a quiet market)."""
        self.quiet_symbols: set[str] = set()
        """Accepted symbols without market data for ``stale_after_ms`` on a live link."""
        self._subscribed_wall_ns = 0
        self._bytes_at_start_ns = 0
        self._shown_errors: dict[str, str] = {}
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
    def symbol_states(self) -> dict[str, str]:
        """Each wanted symbol's state: ``subscribed``, ``quiet``, ``refused: <reason>`` (at
        subscription) or ``error: <reason>`` (the plugin's ``sink.symbol_error``);
        ``pending`` while the connection is not up."""
        up = self.healthy
        errors = self.sink.symbol_errors
        out: dict[str, str] = {}
        for s in self.symbols:
            if s in self.refused:
                out[s] = f"refused: {self.refused[s]}"
            elif s in errors:
                out[s] = f"error: {errors[s]}"
            elif not up:
                out[s] = "pending"
            else:
                out[s] = "quiet" if s in self.quiet_symbols else "subscribed"
        return out

    @property
    def bytes_received(self) -> int:
        """Bytes the venue sent over every session so far (as the plugin counts them)."""
        conn = self._conn
        try:
            live = int(conn.health().bytes_received) if conn is not None else 0
        except Exception:  # a plugin's health() never breaks a metrics scrape
            live = 0
        return self._bytes_done + live

    @property
    def shown_endpoint(self) -> str:
        """The endpoint as every event, log line and view shows it (secrets masked)."""
        return self._shown_endpoint

    @property
    def healthy(self) -> bool:
        """Connected, and the connection itself says so: a session that is up but that
        the venue reports impaired (IB's 1100: TWS lost its link to IB) sets
        ``health().connected = False`` and says why in ``health().detail``."""
        if self.state != ConnectionState.CONNECTED:
            return False
        conn = self._conn
        if conn is None:
            return True
        try:
            return bool(conn.health().connected)
        except Exception:  # a plugin's health() never breaks a status read
            return True

    @property
    def detail(self) -> str:
        """The connection's own word on its health (``health().detail``; "" when none)."""
        conn = self._conn
        if conn is None:
            return ""
        try:
            return str(conn.health().detail)
        except Exception:
            return ""

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
        reason = redact_text(reason)
        self.reason = reason
        self.sink.state(state, reason, self._shown_endpoint, self.attempt)
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
            level,
            "[%s] %s %s%s",
            self.name,
            state,
            self._shown_endpoint,
            f": {reason}" if reason else "",
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
                    self._count_bytes(conn)
            finally:
                try:
                    # a window still open when the connection stops for good ends now,
                    # so "no Gap" always means "nothing was missed"
                    self.sink.end_blind(time.time_ns())
                    if not self.dead:
                        self._set_state(ConnectionState.CLOSED, "closed on request")
                finally:
                    self.finished.set()

    async def _loop(self) -> None:
        cfg = self.config
        endpoints = cfg.endpoints
        index = 0
        failures = 0  # consecutive attempts that gave no data
        silent_recycles = 0  # consecutive sessions whose link delivered nothing at all
        while not self._stopping:
            self.endpoint = endpoints[index % len(endpoints)]
            self._shown_endpoint = redact_endpoint(self.endpoint)
            await self._pace()
            self._set_state(ConnectionState.CONNECTING, f"attempt {failures + 1}")
            end = await self._session()
            if self.stopping():  # stop() may have run while we awaited
                return
            if self.connects > 0:
                # Data may be missing from the last data received (or, for a session
                # that delivered none, from when it was subscribed), not from now.
                self.sink.begin_blind(
                    self._blind_start(end), f"blind while reconnecting ({end.reason})"
                )
            if end.outcome is Outcome.REFUSED:
                self._stop_for_good(ConnectionState.AUTH_FAILED, end.reason)
                return
            if end.outcome in (Outcome.SEQUENCE, Outcome.CONFIG):
                self._stop_for_good(ConnectionState.DEAD, end.reason)
                return
            if end.was_up:
                self.sink.reconnects += 1
                if end.had_data:
                    failures = 0  # this endpoint worked: retry it first
            if end.outcome is Outcome.STALE:
                silent_recycles = 0 if end.had_bytes else silent_recycles + 1
                limit = cfg.max_silent_recycles
                if limit and silent_recycles >= limit:
                    self.error = ConnectionDead(
                        f"connected {silent_recycles} times in a row but the venue sent "
                        "nothing at all, not even a heartbeat",
                        exchange=self.name,
                        endpoint=self.endpoint,
                        hint="check that the endpoint is the venue's market-data port and "
                        "that the venue answers heartbeats (max_silent_recycles = 0 retries "
                        "forever)",
                    )
                    self._stop_for_good(ConnectionState.DEAD, self.error.reason)
                    return
            elif end.had_bytes:
                silent_recycles = 0
            failures += 1
            if cfg.reconnect_attempts and failures > cfg.reconnect_attempts:
                first = end.hint or "check that the venue is reachable"
                self.error = ConnectionDead(
                    f"gave up after {failures - 1} reconnect attempts (last: {end.reason})",
                    exchange=self.name,
                    endpoint=", ".join(redact_endpoint(e) for e in endpoints),
                    hint=f"{first}; or raise reconnect_attempts (0 = retry forever)",
                )
                self._stop_for_good(ConnectionState.DEAD, self.error.reason)
                return
            if not end.had_data and end.outcome is not Outcome.RATE_LIMITED:
                index += 1  # fail over to the next endpoint (a rate limit is the venue's word)
            self.attempt = failures
            delay = backoff_delay_ms(
                failures, cfg.reconnect_delay_ms, cfg.reconnect_max_delay_ms, self._rng
            )
            if end.outcome is Outcome.RATE_LIMITED:
                # the venue's Retry-After, and never less than our own backoff
                delay = max(delay, end.retry_after_s * 1000.0)
            self._set_state(ConnectionState.RECONNECTING, f"{end.told}; retrying in {delay:.0f} ms")
            await anyio.sleep(delay / 1000.0)

    def _blind_start(self, end: SessionEnd) -> int:
        """Where the blind window of a session that just ended starts (wall-clock ns)."""
        if end.had_data:
            return self.sink.last_recv_ns
        return max(self.sink.last_recv_ns, self._subscribed_wall_ns)

    def _stop_for_good(self, state: str, reason: str) -> None:
        """``dead`` or ``auth_failed``: an open blind window ends now, then the state."""
        self.sink.end_blind(time.time_ns())
        self._set_state(state, reason)

    async def _pace(self) -> None:
        """Never open connections to one host faster than ``min_connect_interval_ms``."""
        interval = self.config.min_connect_interval_ms
        if interval:
            await self._pacer.wait(endpoint_address(self.endpoint), interval)

    def _refusal(self, exc: BaseException, phase: str) -> SessionEnd | None:
        """The typed outcome of an exception that ends a session, in one place."""
        if isinstance(exc, AuthenticationError):
            self.error = exc
            return SessionEnd(Outcome.REFUSED, _describe_hub(exc))
        if isinstance(exc, SequenceMismatch):
            self.error = exc
            return SessionEnd(Outcome.SEQUENCE, _describe_hub(exc))
        if isinstance(exc, ConfigError):
            self.error = exc
            return SessionEnd(Outcome.CONFIG, _describe_hub(exc))
        if isinstance(exc, RateLimited):
            return SessionEnd(
                Outcome.RATE_LIMITED,
                f"rate limited by the venue ({_describe_hub(exc)})",
                retry_after_s=exc.retry_after_s,
            )
        if not isinstance(exc, _TRANSIENT):
            log.error(
                "[%s] plugin raised unexpectedly in %s(): %s",
                self.name,
                phase,
                redact_text(_describe(exc)),
            )
        return None

    async def _session(self) -> SessionEnd:
        """One connection's life, from connect to its end, as a typed outcome."""
        cfg = self.config
        conn = self.factory.create(cfg, self.sink)
        self._conn = conn
        self.sink.reset_session()
        try:
            with anyio.fail_after(cfg.connect_timeout_ms / 1000.0):
                await conn.connect(self.endpoint)
        except Exception as exc:
            await self._close(conn)
            self._count_bytes(conn)
            self._conn = None
            typed = self._refusal(exc, "connect")
            if typed is not None:
                return typed
            if isinstance(exc, TimeoutError) and not str(exc):
                reason = f"no answer within connect_timeout_ms = {cfg.connect_timeout_ms}"
                return SessionEnd(Outcome.CONNECT_FAILED, reason)
            return _ended(Outcome.CONNECT_FAILED, exc)

        ended = anyio.Event()
        ends: list[SessionEnd] = []
        data_at_start = self.sink.data_count

        async def reader() -> None:
            try:
                await conn.run()
                ends.append(SessionEnd(Outcome.CLOSED, "connection closed by the venue"))
            except Exception as exc:
                typed = self._refusal(exc, "run")
                ends.append(typed or _ended(Outcome.DROPPED, exc))
            finally:
                ended.set()

        was_up = False
        # what arrives while subscribing waits for the `connected` state: a strategy that
        # starts its book on `connected` must not miss the first snapshot
        self.sink.hold()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                try:
                    with anyio.fail_after(cfg.connect_timeout_ms / 1000.0):
                        await self._resubscribe(conn)
                except TimeoutError:
                    ends.append(SessionEnd(Outcome.DROPPED, "subscribing timed out"))
                    ended.set()
                except Exception as exc:
                    typed = self._refusal(exc, "subscribe")
                    ends.append(typed or _ended(Outcome.DROPPED, exc))
                    ended.set()
                if not ended.is_set():
                    was_up = True
                    self.connects += 1
                    self.attempt = 0
                    self._subscribed_wall_ns = time.time_ns()
                    # what the venue sends from here on (not the logon or the acks) tells a
                    # live link from one that never delivers anything
                    self._bytes_at_start_ns = conn.health().last_activity_ns
                    self._set_state(ConnectionState.CONNECTED, self._subscribed_text())
                    self.sink.release()
                    await self._watch(conn, ended, ends)
                tg.cancel_scope.cancel()
        finally:
            # a session that failed while subscribing: its data is real, so it is
            # delivered, never dropped silently
            self.sink.release()
        end = ends[0] if ends else SessionEnd(Outcome.CLOSED, "closed")
        end.was_up = was_up
        end.had_data = self.sink.data_count > data_at_start
        end.had_bytes = end.had_data or (
            was_up and conn.health().last_activity_ns != self._bytes_at_start_ns
        )
        if self.connects > 0:
            # The window opens now, before close(): a transport still closing (a thawed
            # venue flushing what it had buffered) may deliver late data, which must
            # close this window, not silently move its start past the blindness.
            self.sink.begin_blind(
                self._blind_start(end), f"blind while reconnecting ({end.reason})"
            )
        await self._close(conn)
        self._count_bytes(conn)
        self._conn = None
        return end

    def _count_bytes(self, conn: ExchangeConnection) -> None:
        """Add a finished session's bytes to the connection's total."""
        try:
            self._bytes_done += int(conn.health().bytes_received)
        except Exception as exc:  # a plugin's health() never stops the supervisor
            log.debug("[%s] health() raised %r", self.name, exc)

    def _subscribed_text(self) -> str:
        n = len(self.symbols)
        if not self.refused:
            return f"subscribed {n} symbols"
        accepted = n - len(self.refused)
        refused = ", ".join(f"{s} ({why})" for s, why in sorted(self.refused.items()))
        return f"subscribed {accepted} of {n} symbols; refused: {refused}"

    async def _resubscribe(self, conn: ExchangeConnection) -> None:
        self.refused = {}
        if not self.symbols:
            return
        try:
            await conn.subscribe(list(self.symbols))
        except SubscriptionError as exc:
            # keep the others; the refused ones stay in the list and are retried on reconnect
            text = one_line_text(exc.reason)
            self.refused = dict(exc.refused) or dict.fromkeys(self.symbols, text)
            log.error("[%s] %s", self.name, redact_text(text))

    def _stale_after_ms(self) -> int:
        """The connection's staleness limit: the config's, or more where the protocol
        says its venue may be silent longer (``ConnectionFactory.stale_after_ms``)."""
        try:
            return int(self.factory.stale_after_ms(self.config))
        except Exception as exc:  # a plugin's answer never stops the supervisor
            log.debug("[%s] stale_after_ms() raised %r", self.name, exc)
            return self.config.stale_after_ms

    async def _watch(
        self,
        conn: ExchangeConnection,
        ended: anyio.Event,
        ends: list[SessionEnd],
    ) -> None:
        """Health watch until the session ends.

        Liveness is the link's: every byte the venue sends (heartbeats, pongs,
        acks) counts, so a quiet market on a live link is never recycled. A
        link silent past ``stale_after_ms`` is probed; a probe left unanswered
        for half that again makes the connection ``stale``: the blind window
        opens at the last data received and the session is recycled.
        """
        stale_ms = self._stale_after_ms()
        stale_ns = stale_ms * 1_000_000
        tick_s = min(max(stale_ms / 4000.0, 0.01), 1.0) if stale_ns else 1.0
        last_data = self.sink.data_count
        last_data_ns = self._clock()
        up_since_ns = last_data_ns
        probing_since = 0
        self.quiet = False
        self.quiet_symbols = set()
        self._shown_errors = {}
        while not ended.is_set() and not self._stopping:
            with anyio.move_on_after(tick_s):
                await ended.wait()
            if not ended.is_set():
                self._update_symbol_errors()
            if ended.is_set() or not stale_ns:
                continue
            now = self._clock()
            if self.sink.data_count != last_data:
                last_data = self.sink.data_count
                last_data_ns = now
            link_ns = max(conn.health().last_activity_ns, last_data_ns)
            if probing_since:
                if link_ns >= probing_since:
                    probing_since = 0  # the probe (or anything) was answered: the link lives
                elif now - probing_since > max(stale_ns // 2, 100_000_000):
                    self._set_state(
                        ConnectionState.STALE,
                        f"no bytes for {(now - link_ns) // 1_000_000} ms, probe unanswered",
                    )
                    ends.append(
                        SessionEnd(
                            Outcome.STALE,
                            f"stale: the venue sent nothing for {(now - link_ns) // 1_000_000} "
                            "ms and did not answer a probe",
                        )
                    )
                    ended.set()
                    continue
            elif now - link_ns > stale_ns:
                probing_since = now
                try:
                    await conn.probe()
                except Exception as exc:
                    ends.append(_ended(Outcome.DROPPED, exc))
                    ended.set()
                    continue
            if self.sink.blind_since_ns and now - up_since_ns > stale_ns and link_ns > up_since_ns:
                # resubscribed, the link answers, but the market is quiet: nothing was
                # missed after the resubscription, so the window ends there
                self.sink.end_blind(self._subscribed_wall_ns)
            self._update_quiet(now - last_data_ns > stale_ns, stale_ns)

    def _update_symbol_errors(self) -> None:
        """A state event whenever the plugin's per-symbol errors change."""
        errors = self.sink.symbol_errors
        if errors == self._shown_errors:
            return
        self._shown_errors = dict(errors)
        if errors:
            listed = "; ".join(f"{s}: {why}" for s, why in sorted(errors.items()))
            self._set_state(ConnectionState.CONNECTED, f"symbol errors: {listed}")
        else:
            self._set_state(ConnectionState.CONNECTED, "every symbol recovered")

    def _update_quiet(self, all_quiet: bool, stale_ns: int) -> None:
        """Report symbols whose market is quiet on a live link (never a recycle)."""
        now_wall = time.time_ns()
        since = self._subscribed_wall_ns
        quiet = {
            s
            for s in self.symbols
            if s not in self.refused and now_wall - max(self.sink.last_seen_ns(s), since) > stale_ns
        }
        all_quiet = all_quiet and bool(self.symbols)
        if quiet == self.quiet_symbols and all_quiet == self.quiet:
            return
        self.quiet_symbols = quiet
        self.quiet = all_quiet
        ms = stale_ns // 1_000_000
        if all_quiet:
            reason = f"quiet: no market data for {ms} ms on a live link"
        elif quiet:
            listed = ", ".join(sorted(quiet)[:20]) + (" ..." if len(quiet) > 20 else "")
            reason = f"quiet: {listed}: no market data for {ms} ms on a live link"
        else:
            reason = "market data resumed"
        self._set_state(ConnectionState.CONNECTED, reason)

    async def _close(self, conn: ExchangeConnection) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                await conn.close()
            except Exception as exc:
                log.debug("[%s] close() raised %r", self.name, exc)


def _describe(exc: BaseException) -> str:
    text = one_line_text(str(exc))
    if isinstance(exc, OSError) and exc.errno is not None and not text:
        text = f"errno {exc.errno}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ended(outcome: Outcome, exc: BaseException) -> SessionEnd:
    """A session that an exception ended, its hint kept apart from its reason."""
    if isinstance(exc, HubError):
        return SessionEnd(outcome, redact_text(one_line_text(exc.message)), hint=exc.hint)
    return SessionEnd(outcome, _describe_hub(exc))


def _describe_hub(exc: BaseException) -> str:
    """A HubError's own reason (exchange and endpoint are shown beside it); others with
    their type. Redacted: a library's message may quote a URL."""
    return redact_text(one_line_text(exc.reason) if isinstance(exc, HubError) else _describe(exc))


def one_line_text(text: str) -> str:
    """Collapse white space so a reason is exactly one line."""
    return " ".join(text.split())


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
    "Outcome",
    "SessionEnd",
    "ConnectionFailed",
    "ConnectionManager",
    "ConnectionSupervisor",
    "backoff_delay_ms",
    "endpoint_address",
    "endpoint_host",
]
