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

import io
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

import anyio

from hub_core.bus import Subscription, TypedEventBus
from hub_core.cli.frame import FrameData, FrameLayout, format_duration
from hub_core.processor import ProcessorStats
from hub_core.redact import SECRETS, one_line
from hub_core.status import details_of
from hub_core.ticks import Quote, Trade

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.text import Text

    from hub_core.hub import ExchangeHub
    from hub_core.supervisor import ConnectionSupervisor

REFRESH_PER_SECOND = 4
"""Live view redraws per second."""
RATE_WINDOW_S = 1.0
"""msgs/s is measured over windows of at least this long (less jumpy than per redraw)."""
STATUS_INTERVAL_S = 2.0
"""Seconds between plain status lines."""
KEPT_LOG_RECORDS = 10
"""Warnings and errors kept during the live view, printed on stderr after it ends."""
SVG_SIZE = (120, 40)
"""Columns and rows of ``--svg``'s frame when stdout is not a terminal (``COLUMNS`` and
``LINES`` override them)."""


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
            name: ex.trades + ex.quotes + ex.book_updates + ex.snapshots + ex.book_clears
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
    book_events = (
        stats.book_updates_processed + stats.snapshots_processed + stats.book_clears_processed
    )
    parts.append(
        f"trades={stats.trades_processed} quotes={stats.quotes_processed} "
        f"book={book_events} "
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


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class LogFeed(logging.Handler):
    """Log records during the live view, shown in its status line instead of printed
    over it (a printed line scrolls the display and leaves pieces of it behind).

    While installed it is the root logger's only handler; the status line shows the
    last warning or error (the last record when there is none) and how many there
    were. Warnings and errors (the last ``KEPT_LOG_RECORDS``) are handed to the
    handlers it replaced when it is removed, so they end up on stderr after the last
    frame.
    """

    def __init__(self, keep: int = KEPT_LOG_RECORDS) -> None:
        super().__init__()
        self.warnings = 0
        self.errors = 0
        self.last_warning = ""
        self.last_record = ""
        self.kept: deque[logging.LogRecord] = deque(maxlen=keep)
        self.not_kept = 0
        """Warnings and errors that fell out of ``kept``."""
        self._saved: list[logging.Handler] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = SECRETS.mask(one_line(record.getMessage()))
        except Exception:  # a bad format string must not break the display
            self.handleError(record)
            return
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{when} {record.levelname.lower()} {record.name}: {text}"
        self.last_record = line
        if record.levelno < logging.WARNING:
            return
        if record.levelno >= logging.ERROR:
            self.errors += 1
        else:
            self.warnings += 1
        self.last_warning = line
        if len(self.kept) == self.kept.maxlen:
            self.not_kept += 1
        self.kept.append(record)

    def status(self) -> str:
        """``2 warnings: last 12:00:01 warning hub_core.supervisor: ...``; empty before any."""
        counts = []
        if self.errors:
            counts.append(_plural(self.errors, "error"))
        if self.warnings:
            counts.append(_plural(self.warnings, "warning"))
        if counts:
            return f"{', '.join(counts)}: last {self.last_warning}"
        return f"log: {self.last_record}" if self.last_record else ""

    def install(self) -> None:
        """Take the root logger's place of its handlers."""
        root = logging.getLogger()
        if self._saved is None:
            self._saved = root.handlers[:]
            root.handlers[:] = [self]

    def remove(self) -> None:
        """Give the root logger its handlers back and hand them the kept records."""
        if self._saved is None:
            return
        root = logging.getLogger()
        root.handlers[:] = self._saved
        self._saved = None
        if self.not_kept:
            logging.getLogger("hub_core.cli").warning(
                "%s during the live view are not repeated here (the last %d follow)",
                _plural(self.not_kept + len(self.kept), "warning or error"),
                len(self.kept),
            )
        for record in self.kept:
            for handler in root.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self.kept.clear()


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
            sinks=[
                (name, st.state, st.sent, st.dropped)
                for name, st in sorted(self.hub.sink_status().items())
            ],
        )


class LiveView:
    """The rich live display of ``hub run`` / ``hub demo`` on a terminal."""

    def __init__(
        self,
        hub: ExchangeHub,
        title: str,
        console: Console | None = None,
        svg: str | None = None,
    ) -> None:
        from rich.console import Console

        self.hub = hub
        self.console = console if console is not None else Console()
        self.svg = svg
        """Where ``close()`` saves the last frame as SVG (``hub run --svg FILE``)."""
        self.source = FrameSource(hub, title)
        self.layout = FrameLayout()
        self.logs = LogFeed()
        self._live: Live | None = None
        self._size: tuple[int, int] | None = None
        self._last_frame: tuple[Text, int, int] | None = None

    @property
    def title(self) -> str:
        """The frame's first line (``hub run FILE``, the demo's simulators)."""
        return self.source.title

    @property
    def last(self) -> LastTicks:
        """The last trade and quote per (connection, symbol)."""
        return self.source.last

    def attach(self) -> None:
        """Start keeping the last trade and quote per symbol (call before connecting)."""
        self.last.attach(self.hub.bus)

    def start(self) -> None:
        """Show the display (``run()`` calls it) and route log records to its status line."""
        from rich.live import Live

        # No auto-refresh thread: rendering reads dicts the event loop writes,
        # so it happens on the loop (run()), never concurrently with a publish.
        # Log records go to the status line (LogFeed); other writes to a terminal
        # stderr are printed above the display instead of tearing it; a
        # redirected stderr is left alone.
        self.logs.install()
        self._live = Live(
            self.render(),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=sys.stderr.isatty(),
        )
        self._live.start()
        size = self.console.size
        self._size = (size.width, size.height)

    async def run(self) -> None:
        """Redraw ``REFRESH_PER_SECOND`` times a second until cancelled."""
        if self._live is None:
            self.start()
        while True:
            await anyio.sleep(1.0 / REFRESH_PER_SECOND)
            self.refresh()

    def refresh(self) -> None:
        """Draw the current frame (a no-op before ``start()``)."""
        if self._live is None:
            return
        size = self.console.size
        shrunk = self._size is not None and (
            size.width < self._size[0] or size.height < self._size[1]
        )
        if shrunk and self.console.is_terminal:
            from rich.control import Control

            # rich redraws by moving the cursor up over the lines it drew; a terminal
            # that got narrower may have re-wrapped them into more lines, and one that
            # got shorter has scrolled some away, so part of the old frame would stay.
            # Start from a clear screen instead.
            self.console.control(Control.clear(), Control.home())
        self._size = (size.width, size.height)
        self._live.update(self.render(), refresh=True)

    def close(self) -> None:
        """Draw a last frame and leave it on the terminal (and in the ``svg`` file)."""
        self.last.detach()
        if self._live is not None:
            self.refresh()
            self._live.stop()
            self._live = None
        self.logs.remove()
        if self.svg is not None:
            frame = self._last_frame
            if frame is None:  # never drawn (not started): lay one out now
                self.render()
                frame = self._last_frame
            assert frame is not None
            save_svg(self.svg, *frame, title=self.title)

    # -- rendering -----------------------------------------------------------
    def render(self) -> RenderableType:
        """The frame for the console's current size: never wider, and a line shorter
        (rich ends the display with a newline, which would scroll a full-height
        frame's first line away)."""
        size = self.console.size
        data = self.source.collect(status=self.logs.status())
        height = max(1, size.height - 1)
        frame = self.layout.render(data, size.width, height)
        self._last_frame = (frame, size.width, height)
        return frame


def save_svg(path: str, frame: Text, width: int, height: int, title: str) -> None:
    """Save ``frame`` as an SVG image of a ``width``-column terminal."""
    from rich.console import Console

    from hub_core.errors import HubError

    rec = Console(
        file=io.StringIO(),
        width=width,
        height=height,
        record=True,
        force_terminal=True,
        color_system="truecolor",
    )
    rec.print(frame)
    try:
        rec.save_svg(path, title=title)
    except OSError as exc:
        raise HubError(
            f"could not write the --svg file {path}: {exc.strerror or exc}",
            hint="pick a writable path",
        ) from exc


class SvgSnapshot:
    """``--svg FILE`` when stdout is not a terminal: keeps what the live view would show
    and saves its last frame at exit (``SVG_SIZE``, or ``COLUMNS`` x ``LINES``)."""

    def __init__(self, hub: ExchangeHub, title: str, path: str) -> None:
        self.hub = hub
        self.path = path
        self.source = FrameSource(hub, title)
        self.layout = FrameLayout()

    def attach(self) -> None:
        """Start keeping the last trade and quote per symbol (call before connecting)."""
        self.source.last.attach(self.hub.bus)

    async def run(self) -> None:
        """Sample the counters (for msgs/s) until cancelled."""
        while True:
            await anyio.sleep(RATE_WINDOW_S)
            self.source.collect()

    def close(self) -> None:
        """Save the last frame."""
        self.source.last.detach()
        width = _env_int("COLUMNS", SVG_SIZE[0])
        height = _env_int("LINES", SVG_SIZE[1])
        frame = self.layout.render(self.source.collect(), width, height)
        save_svg(self.path, frame, width, height, title=self.source.title)


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default
