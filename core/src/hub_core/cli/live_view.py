"""What ``hub run`` / ``hub demo`` show while they run.

``LiveView`` is a rich ``Live`` display (on a terminal): one row per
connection with its rate, counters, latency and the age of its last message,
the last trade and quote per symbol, refused and quiet symbols, the hub's
latency percentiles, stream drop counts and uptime. How a frame is fitted to
the terminal (never cutting a number) is ``hub_core.cli.frame``.
``PlainStatus`` is the fallback when stdout is not a terminal: one plain
status line on stderr every few seconds.

Both read the hub's counters a few times per second, off the hot path. The
only per-tick work is ``LastTicks``'s handler storing a reference to the
newest trade and quote per (exchange, symbol).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

import anyio

from hub_core.bus import Subscription, TypedEventBus
from hub_core.cli.frame import FrameData, FrameLayout, format_duration
from hub_core.processor import ProcessorStats
from hub_core.status import details_of
from hub_core.ticks import Quote, Trade

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from hub_core.hub import ExchangeHub
    from hub_core.supervisor import ConnectionSupervisor

REFRESH_PER_SECOND = 4
"""Live view redraws per second."""
RATE_WINDOW_S = 1.0
"""msgs/s is measured over windows of at least this long (less jumpy than per redraw)."""
STATUS_INTERVAL_S = 2.0
"""Seconds between plain status lines."""


class LastTicks:
    """The newest trade and quote per (exchange, symbol), kept by reference."""

    def __init__(self) -> None:
        self.trades: dict[tuple[str, str], Trade] = {}
        self.quotes: dict[tuple[str, str], Quote] = {}
        self._subs: list[Subscription] = []

    def on_trade(self, tick: Trade) -> None:
        # the whole per-tick cost of the live view: one dict store
        self.trades[(tick.exchange, tick.symbol)] = tick

    def on_quote(self, tick: Quote) -> None:
        self.quotes[(tick.exchange, tick.symbol)] = tick

    def attach(self, bus: TypedEventBus) -> None:
        self._subs.append(bus.subscribe(Trade, self.on_trade))
        self._subs.append(bus.subscribe(Quote, self.on_quote))

    def detach(self) -> None:
        for sub in self._subs:
            sub.unsubscribe()
        self._subs.clear()


class RateTracker:
    """Messages per second per connection, from deltas of the hub's counters."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.rates: dict[str, float] = {}
        self._last: dict[str, int] = {}
        self._last_at = 0.0

    def update(self, stats: ProcessorStats, now: float | None = None) -> dict[str, float]:
        """Fold in a stats snapshot; rates change once per window."""
        now = time.monotonic() if now is None else now
        totals = {
            name: ex.trades + ex.quotes + ex.book_updates + ex.snapshots
            for name, ex in stats.per_exchange.items()
        }
        if not self._last_at:
            self._last, self._last_at = totals, now
            return self.rates
        elapsed = now - self._last_at
        if elapsed >= self.window_s:
            self.rates = {
                name: max(0, total - self._last.get(name, 0)) / elapsed
                for name, total in totals.items()
            }
            self._last, self._last_at = totals, now
        return self.rates


def format_latency(latency_ns: dict[str, int]) -> str:
    """``p50 12.3µs  p99 80.1µs ...`` or ``-`` before any sample."""
    if not latency_ns:
        return "-"
    return "  ".join(f"{k.replace('_', '.')} {v / 1000:.1f}µs" for k, v in latency_ns.items())


def format_number(value: float) -> str:
    """A float view of a fixed-point price or size, without float noise."""
    return f"{value:.10g}"


def status_line(
    connections: Mapping[str, ConnectionSupervisor], stats: ProcessorStats, rates: dict[str, float]
) -> str:
    """One plain line: uptime, each connection's state and rate, totals, latency."""
    parts = [f"hub {format_duration(stats.uptime())}"]
    for name, sup in sorted(connections.items()):
        parts.append(f"{name} {sup.state} {rates.get(name, 0.0):.0f} msg/s")
    parts.append(
        f"trades={stats.trades_processed} quotes={stats.quotes_processed} "
        f"book={stats.book_updates_processed + stats.snapshots_processed} "
        f"gaps={stats.gaps} malformed={stats.malformed_frames} "
        f"dropped={stats.dropped} conflated={stats.conflated}"
    )
    parts.append(f"latency {format_latency(stats.latency_ns)}")
    return " | ".join(parts)


class PlainStatus:
    """Periodic one-line status on stderr, for when stdout is not a terminal."""

    def __init__(
        self, hub: ExchangeHub, out: TextIO | None = None, interval: float = STATUS_INTERVAL_S
    ) -> None:
        self.hub = hub
        self.interval = interval
        self._out = out
        self._rates = RateTracker()
        self._seen: dict[str, ConnectionSupervisor] = {}

    def _write(self) -> None:
        stats = self.hub.event_processor().get_stats()
        rates = self._rates.update(stats)
        self._seen.update(self.hub.connections())  # kept for the line after the close
        out = self._out if self._out is not None else sys.stderr
        print(status_line(self._seen, stats, rates), file=out, flush=True)

    async def run(self) -> None:
        """Print a status line every ``interval`` seconds until cancelled."""
        self._rates.update(self.hub.event_processor().get_stats())
        while True:
            await anyio.sleep(self.interval)
            self._write()

    def close(self) -> None:
        """Print a last status line."""
        self._write()


class FrameSource:
    """Collects what a frame shows from the hub: one ``FrameData`` per call."""

    def __init__(self, hub: ExchangeHub, title: str) -> None:
        self.hub = hub
        self.title = title
        self.last = LastTicks()
        self._rates = RateTracker()
        self._seen: dict[str, ConnectionSupervisor] = {}

    def collect(self, status: str = "") -> FrameData:
        """A snapshot of the hub's connections, counters and last ticks."""
        stats = self.hub.event_processor().get_stats()
        rates = self._rates.update(stats)
        # Supervisors leave hub.connections() when the hub closes; remembering
        # them keeps the last frame (drawn after the close) complete, with their
        # final "closed" state.
        self._seen.update(self.hub.connections())
        details = [
            details_of(sup, stats.per_exchange.get(name))
            for name, sup in sorted(self._seen.items())
        ]
        return FrameData(
            title=self.title,
            connections=details,
            rates=dict(rates),
            trades=dict(self.last.trades),
            quotes=dict(self.last.quotes),
            latency_ns=stats.latency_ns,
            dropped=stats.dropped,
            conflated=stats.conflated,
            handler_errors=stats.handler_errors,
            uptime_s=stats.uptime(),
            status=status,
        )


class LiveView:
    """The rich live display of ``hub run`` / ``hub demo`` on a terminal."""

    def __init__(self, hub: ExchangeHub, title: str, console: Console | None = None) -> None:
        from rich.console import Console

        self.hub = hub
        self.console = console if console is not None else Console()
        self.source = FrameSource(hub, title)
        self.layout = FrameLayout()
        self._live: Live | None = None

    @property
    def title(self) -> str:
        return self.source.title

    @property
    def last(self) -> LastTicks:
        """The last trade and quote per (connection, symbol)."""
        return self.source.last

    def attach(self) -> None:
        """Start keeping the last trade and quote per symbol (call before connecting)."""
        self.last.attach(self.hub.bus)

    def start(self) -> None:
        from rich.live import Live

        # No auto-refresh thread: rendering reads dicts the event loop writes,
        # so it happens on the loop (run()), never concurrently with a publish.
        # Other writes to a terminal stderr are printed above the display instead
        # of tearing it; a redirected stderr is left alone.
        self._live = Live(
            self.render(),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=sys.stderr.isatty(),
        )
        self._live.start()

    async def run(self) -> None:
        """Redraw ``REFRESH_PER_SECOND`` times a second until cancelled."""
        if self._live is None:
            self.start()
        while True:
            await anyio.sleep(1.0 / REFRESH_PER_SECOND)
            if self._live is not None:
                self._live.update(self.render(), refresh=True)

    def close(self) -> None:
        """Draw a last frame and leave it on the terminal."""
        self.last.detach()
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None

    # -- rendering -----------------------------------------------------------
    def render(self) -> RenderableType:
        """The frame for the console's current size (never taller or wider)."""
        size = self.console.size
        return self.layout.render(self.source.collect(), size.width, size.height)
