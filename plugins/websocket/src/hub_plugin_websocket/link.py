"""``Link``: one WebSocket session of a connection (transport + dialect session).

A ``WebSocketConnection`` owns one link, more when its streams exceed the
venue's ``streams_per_connection``, and briefly two per link while a link is
being replaced (rotation). A link holds no standing task while idle: its
keepalive is an event-loop timer, and the control-message sender and the
snapshot fetcher run only while they have work. Idle memory is what the
issue measures per connection, so nothing here is allocated before it is
needed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from hub_core.plugin import Pending, PendingRequests
from hub_plugin_websocket.codec import (
    DialectEvent,
    DialectSession,
    NeedSnapshot,
    Request,
)
from hub_plugin_websocket.http import SnapshotClient, SnapshotError
from hub_plugin_websocket.ratelimit import RateWindow
from hub_plugin_websocket.transports import Transport, TransportClosed

if TYPE_CHECKING:
    from hub_plugin_websocket.connection import WebSocketConnection

__all__ = ["Link", "wait_for"]

log = logging.getLogger("hub_plugin_websocket")

_SNAPSHOT_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_MIN_TIMER_S = 0.01


async def wait_for(window: RateWindow) -> None:
    """Sleep until ``window`` admits one more event, then count it."""
    # a timed wait, not an event: nothing else can make the window admit sooner
    while (delay := window.delay(time.monotonic())) > 0:  # noqa: ASYNC110
        await anyio.sleep(delay)
    window.record(time.monotonic())


class Link:
    """One WebSocket session: the transport, its dialect session, its queues and timer."""

    # slots: an idle connection should not pay for a per-instance dict
    __slots__ = (
        "_fetching",
        "_handler",
        "_http",
        "_messages",
        "_new_http",
        "_outbox",
        "_ping_queued",
        "_ping_sent_ns",
        "_sending",
        "_snapshot_limit",
        "_snapshot_rate",
        "_snapshots",
        "_tg",
        "_timer",
        "closing",
        "failure",
        "joining",
        "opened_ns",
        "owner",
        "requests",
        "retire_ns",
        "retired",
        "retiring",
        "running",
        "session",
        "symbols",
        "transport",
    )

    def __init__(
        self,
        owner: WebSocketConnection,
        transport: Transport,
        session: DialectSession,
        http: Callable[[], SnapshotClient],
        message_interval_s: float,
        snapshots_per_second: float,
    ) -> None:
        self.owner = owner
        self.transport = transport
        self.session = session
        self.symbols: list[str] = []
        """Symbols this link carries (subscribed or being subscribed)."""
        self.requests = PendingRequests(
            owner.exchange,
            timeout_s=owner.options.subscribe_timeout_s,
            timeout_hint="the venue did not answer: check the endpoint, or raise "
            "options.subscribe_timeout_s",
            unanswered="refuse",
        )
        """Requests on this link awaiting the venue's answer (pings are queued, not kept)."""
        self._outbox: list[tuple[Request | None, Pending | None]] = []
        self._sending = False
        self._snapshots: list[NeedSnapshot] = []
        self._fetching = False
        self._new_http = http
        self._http: SnapshotClient | None = None
        # evenly spaced control messages (see WebSocketConnection); one deque-free window
        self._messages = RateWindow(1, message_interval_s)
        self._snapshot_limit = max(1, math.floor(snapshots_per_second))
        self._snapshot_rate: RateWindow | None = None
        self.opened_ns = time.monotonic_ns()
        self.retire_ns = 0
        """Monotonic ns at which the link is replaced (0: never)."""
        self.retiring = False
        self.joining = False
        """A rotation's replacement, not switched in yet."""
        self.retired = False
        """Replaced by a rotation: its end is not a failure of the connection."""
        self.failure = ""
        self.closing = False
        self.running = False
        self._ping_queued = False
        self._ping_sent_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._handler = session.frame_handler()

    # -- frames (synchronous, on the reader) --------------------------------------------------
    def rebind(self) -> None:
        """Refetch the session's frame handler (after ``session.rebind``)."""
        self._handler = self.session.frame_handler()

    def on_frame(self, data: bytes, ts_recv: int) -> None:
        event = self._handler(data, ts_recv)
        if event is not None:
            self.owner.on_event(self, event)

    # -- life -------------------------------------------------------------------------------
    async def run(self, tg: anyio.abc.TaskGroup) -> None:
        """Read until the session ends; returns normally after ``close()``.

        Raises ``TransportClosed`` when the venue or the network ended it; a reason
        set by ``end()`` (a missing pong, a shutdown notice) takes precedence.
        """
        self._tg = tg
        self.running = True
        self._arm(0.0)
        self._kick_sender()
        self._kick_snapshots()
        try:
            await self.transport.run(self.on_frame, self.owner.sink)
        except TransportClosed as exc:
            if not self.failure:
                self.failure = f"{exc.reason} (close code {exc.code})"
        finally:
            self.running = False
            self._tg = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.fail_pending(self.failure or "the connection closed")

    def end(self, reason: str) -> None:
        """End the session from the reader's side: close the transport, ``run`` returns."""
        if self.failure or self.closing:
            return
        self.failure = reason
        tg = self._tg
        if tg is not None:
            tg.start_soon(self._close_transport)

    async def _close_transport(self) -> None:
        with anyio.move_on_after(3):
            await self.transport.close()

    async def close(self) -> None:
        """Close the WebSocket and the REST client (bounded). Idempotent."""
        if self.closing:
            return
        self.closing = True
        self.fail_pending("the connection was closed")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        http, self._http = self._http, None
        with anyio.CancelScope(shield=True), anyio.move_on_after(3):
            try:
                await self.transport.close()
            except Exception as exc:  # closing a broken link must not raise
                log.debug("[%s] transport close: %r", self.owner.exchange, exc)
            if http is not None:
                await http.aclose()

    def retire_at(self, monotonic_ns: int) -> None:
        """Replace this link at ``monotonic_ns`` (rearms the timer)."""
        self.retire_ns = monotonic_ns
        if self.running and not self.closing:
            if self._timer is not None:
                self._timer.cancel()
            self._arm(0.0)  # the timer works out what is due next

    def stopped(self) -> bool:
        """``close()`` has been called."""
        return self.closing

    def fail_pending(self, why: str) -> None:
        self.requests.lose_all(why)
        for _, queued in self._outbox:
            if queued is not None and not queued.done.is_set():
                queued.lose(why)
        self._outbox.clear()

    # -- keepalive: one timer, rescheduled for the next thing due ---------------------------
    def _arm(self, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(delay_s, _MIN_TIMER_S), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing or not self.running or self.failure:
            return
        options = self.owner.options
        now = time.monotonic_ns()
        interval_ns = int(options.ping_interval_s * 1e9)
        timeout_ns = int(options.pong_timeout_s * 1e9)
        retire = self.retire_ns
        if retire and not self.retiring and now >= retire:
            self.owner.on_age_limit(self)
        last = self.transport.last_activity_ns
        sent = self._ping_sent_ns
        due: list[int] = []
        if sent and last < sent:
            if now - sent > timeout_ns:
                self.end(f"no pong within {options.pong_timeout_s:g}s of a ping")
                return
            due.append(sent + timeout_ns)
        else:
            self._ping_sent_ns = 0
            if interval_ns:
                if now - last >= interval_ns and not self._ping_queued:
                    self.queue(None, None)
                    self._ping_queued = True
                due.append(max(last + interval_ns, now + timeout_ns // 4))
        if retire and not self.retiring:
            due.append(retire)
        if due:
            self._arm((min(due) - now) / 1e9)

    # -- control messages: one paced sender, run only while there is something to send ------
    def queue(self, request: Request | None, pending: Pending | None) -> None:
        """Queue a message (``None``: a ping) in creation order."""
        self._outbox.append((request, pending))
        self._kick_sender()

    def queue_many(self, items: list[tuple[Request, Pending | None]]) -> None:
        self._outbox.extend(items)
        self._kick_sender()

    def queue_later(self, delay_s: float, requests: list[Request]) -> None:
        """Queue ``requests`` after ``delay_s`` (a backed-off retry); dropped if the link
        ends first (the hub's reconnect resubscribes everything anyway)."""
        tg = self._tg
        if tg is None or self.closing:
            return

        async def later() -> None:
            await anyio.sleep(delay_s)
            if not self.closing and self.running:
                self.queue_many([(req, None) for req in requests])

        tg.start_soon(later)

    def _kick_sender(self) -> None:
        tg = self._tg
        if self._sending or not self._outbox or tg is None:
            return  # run() kicks it when it starts
        self._sending = True
        tg.start_soon(self._send_all)

    async def _send_all(self) -> None:
        outbox = self._outbox
        transport = self.transport
        try:
            while outbox and not self.closing:
                await wait_for(self._messages)
                if not outbox:
                    break
                request, pending = outbox.pop(0)
                try:
                    if request is None:
                        self._ping_queued = False
                        self._ping_sent_ns = time.monotonic_ns()
                        # a venue that wants an application heartbeat gets it instead
                        # (its reply, like a pong, is a frame: it refreshes the activity)
                        heartbeat = self.session.ping_payload()
                        if heartbeat is None:
                            await transport.ping()
                        else:
                            await transport.send(heartbeat)
                        if self._timer is None and self.running:
                            self._arm(self.owner.options.pong_timeout_s)
                    else:
                        await transport.send(request.payload)
                except TransportClosed as exc:
                    if pending is not None:
                        pending.lose(f"send failed: {exc.reason}")
                    return  # the reader reports how the session ended
                if pending is not None:
                    pending.sent.set()
                    if request is None:
                        pending.done.set()
        finally:
            self._sending = False

    # -- REST snapshots: fetched one at a time, paced, only while some are wanted -----------
    def need_snapshot(self, need: NeedSnapshot) -> None:
        self._snapshots.append(need)
        self._kick_snapshots()

    def _kick_snapshots(self) -> None:
        tg = self._tg
        if self._fetching or not self._snapshots or tg is None:
            return
        self._fetching = True
        tg.start_soon(self._fetch_all)

    async def _fetch_all(self) -> None:
        failures = 0
        queue = self._snapshots
        try:
            while queue and not self.closing:
                need = queue.pop(0)
                if any(n.symbol == need.symbol for n in queue):
                    continue  # a newer request for the same book is queued
                window = self._snapshot_rate
                if window is None:
                    window = self._snapshot_rate = RateWindow(self._snapshot_limit, 1.0)
                await wait_for(window)
                if self.stopped():  # closed while waiting
                    return
                http = self._http
                if http is None:
                    http = self._http = self._new_http()
                try:
                    body = await http.get(need.url)
                except SnapshotError as exc:
                    failures += 1
                    wait = max(exc.retry_after_s, _SNAPSHOT_RETRY_S[min(failures, 6) - 1])
                    log.warning(
                        "[%s] %s book snapshot failed (%s); retrying in %gs",
                        self.owner.exchange,
                        need.symbol,
                        exc,
                        wait,
                    )
                    self.session.snapshot_failed(need.symbol, str(exc))
                    await anyio.sleep(wait)
                    continue
                failures = 0
                event: DialectEvent | None = self.session.snapshot_received(
                    need.symbol, body, time.time_ns()
                )
                if event is not None:
                    self.owner.on_event(self, event)
        finally:
            self._fetching = False
