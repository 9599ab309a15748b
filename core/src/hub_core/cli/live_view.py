"""What ``hub run`` / ``hub demo`` show while they run.

``LiveView`` is a rich ``Live`` display (on a terminal): one row per
connection, the last trade and quote per symbol, latency percentiles,
stream drop counts and uptime. ``PlainStatus`` is the fallback when stdout is
not a terminal: one plain status line on stderr every few seconds.

Both read the hub's counters a few times per second, off the hot path. The
only per-tick work is ``LastTicks``'s handler storing a reference to the
newest trade and quote per (exchange, symbol).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

import anyio

from hub_core.bus import Subscription, TypedEventBus
from hub_core.processor import ProcessorStats
from hub_core.redact import redact_endpoint
from hub_core.ticks import ConnectionState, Quote, Trade

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
MAX_SYMBOL_ROWS = 40
WIDE_COLUMNS = 118
"""Terminal width from which protocol and endpoint get their own columns."""
NARROW_HEADERS = {"malformed": "malf.", "reconnects": "reconn."}

STATE_STYLE = {
    ConnectionState.CONNECTED: "bold green",
    ConnectionState.CONNECTING: "yellow",
    ConnectionState.RECONNECTING: "yellow",
    ConnectionState.STALE: "dark_orange",
    ConnectionState.DEAD: "bold red",
    ConnectionState.AUTH_FAILED: "bold red",
    ConnectionState.CLOSED: "dim",
}


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


def format_duration(seconds: float) -> str:
    """``1:02:03`` / ``02:03``."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


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


class LiveView:
    """The rich live display of ``hub run`` / ``hub demo`` on a terminal."""

    def __init__(self, hub: ExchangeHub, title: str, console: Console | None = None) -> None:
        from rich.console import Console

        self.hub = hub
        self.title = title
        self.console = console if console is not None else Console()
        self.last = LastTicks()
        self._rates = RateTracker()
        self._live: Live | None = None
        self._seen: dict[str, ConnectionSupervisor] = {}

    def attach(self) -> None:
        """Start keeping the last trade and quote per symbol (call before connecting)."""
        self.last.attach(self.hub.bus)

    def start(self) -> None:
        from rich.live import Live

        # No auto-refresh thread: rendering reads dicts the event loop writes,
        # so it happens on the loop (run()), never concurrently with a publish.
        # Log lines on a terminal stderr are printed above the display instead
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
        from rich.console import Group
        from rich.text import Text

        stats = self.hub.event_processor().get_stats()
        rates = self._rates.update(stats)
        footer = Text.assemble(
            ("latency ", "bold"),
            format_latency(stats.latency_ns),
            ("   dropped ", "bold"),
            str(stats.dropped),
            ("   conflated ", "bold"),
            str(stats.conflated),
            ("   handler errors ", "bold"),
            str(stats.handler_errors),
            ("   uptime ", "bold"),
            format_duration(stats.uptime()),
        )
        return Group(
            self._connections_table(stats, rates),
            self._symbols_table(),
            footer,
        )

    def _connections_table(self, stats: ProcessorStats, rates: dict[str, float]) -> RenderableType:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        # Supervisors leave hub.connections() when the hub closes; remembering
        # them keeps the last frame (drawn after the close) complete.
        self._seen.update(self.hub.connections())
        # On a narrow terminal protocol and endpoint move to a line under the
        # table, so the numbers keep their columns.
        wide = self.console.width >= WIDE_COLUMNS
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
        table.add_column("connection", no_wrap=True)
        if wide:
            table.add_column("protocol", no_wrap=True)
        table.add_column("state", no_wrap=True)
        if wide:
            table.add_column("endpoint", no_wrap=True)
        for col in ("msgs/s", "trades", "quotes", "book", "gaps", "malformed", "reconnects"):
            table.add_column(col if wide else NARROW_HEADERS.get(col, col), justify="right")
        notes: list[Text] = []
        for name, sup in sorted(self._seen.items()):
            ex = stats.per_exchange.get(name)
            counts: Sequence[int] = (0, 0, 0, 0, 0, 0)
            if ex is not None:
                book = ex.book_updates + ex.snapshots
                counts = (ex.trades, ex.quotes, book, ex.gaps, ex.malformed, ex.reconnects)
            style = STATE_STYLE.get(sup.state, "")
            cells: list[str | Text] = [name]
            if wide:
                cells.append(sup.config.protocol)
            shown_state = (
                "quiet" if sup.quiet and sup.state == ConnectionState.CONNECTED else sup.state
            )
            cells.append(Text(shown_state, style=style))
            if wide:
                cells.append(redact_endpoint(sup.endpoint))
            else:
                notes.append(
                    Text(f"{name}: {sup.config.protocol} {redact_endpoint(sup.endpoint)}", "dim")
                )
            cells.append(f"{rates.get(name, 0.0):,.0f}")
            cells.extend(f"{n:,}" for n in counts)
            table.add_row(*cells)
            if sup.reason and sup.state != ConnectionState.CONNECTED:
                notes.append(Text.assemble((f"{name} {sup.state}: ", style), sup.reason))
            refused = {**sup.refused, **sup.sink.symbol_errors}
            if refused:
                listed = ", ".join(f"{sym} ({why})" for sym, why in sorted(refused.items()))
                notes.append(Text.assemble((f"{name} refused: ", "yellow"), listed))
            if sup.quiet_symbols and not sup.quiet:
                listed = ", ".join(sorted(sup.quiet_symbols))
                notes.append(Text.assemble((f"{name} quiet: ", "dim"), listed))
        return Group(table, *notes) if notes else table

    def _symbols_table(self) -> RenderableType:
        from rich import box
        from rich.table import Table

        table = Table(
            title="last trade and quote", title_justify="left", box=box.SIMPLE_HEAD, expand=False
        )
        table.add_column("connection")
        table.add_column("symbol")
        for col in ("last", "size", "side", "bid", "bid size", "ask", "ask size", "age"):
            table.add_column(col, justify="right")
        trades, quotes = self.last.trades, self.last.quotes
        keys = sorted(set(trades) | set(quotes))
        now = time.time_ns()
        for key in keys[:MAX_SYMBOL_ROWS]:
            t = trades.get(key)
            q = quotes.get(key)
            newest = max(t.ts_recv if t is not None else 0, q.ts_recv if q is not None else 0)
            age = f"{max(0, now - newest) / 1e9:.1f}s" if newest else "-"
            table.add_row(
                key[0],
                key[1],
                format_number(t.price_float) if t is not None else "-",
                format_number(t.size_float) if t is not None else "-",
                t.side if t is not None else "-",
                format_number(q.bid_price_float) if q is not None else "-",
                format_number(q.bid_size_float) if q is not None else "-",
                format_number(q.ask_price_float) if q is not None else "-",
                format_number(q.ask_size_float) if q is not None else "-",
                age,
            )
        if len(keys) > MAX_SYMBOL_ROWS:
            table.caption = f"{len(keys) - MAX_SYMBOL_ROWS} more symbols not shown"
        return table
