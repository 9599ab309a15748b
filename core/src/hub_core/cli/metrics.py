"""``--metrics-port``: the hub's counters as Prometheus metrics on 127.0.0.1.

The event loop takes a snapshot of ``hub.event_processor().get_stats()`` and
of every connection's state once a second (``refresh()``) and swaps it in as
a whole; the HTTP server thread only ever reads the latest snapshot. So a
scrape never iterates the hub's dicts while the loop changes them, and
never costs the hot path anything.

Metrics (label ``exchange`` is the connection's TOML name):

- counters ``hub_trades_total``, ``hub_quotes_total``, ``hub_book_updates_total``,
  ``hub_book_snapshots_total``, ``hub_book_clears_total``, ``hub_gaps_total``,
  ``hub_malformed_frames_total``, ``hub_reconnects_total``, ``hub_venue_errors_total``,
  ``hub_bytes_received_total`` (per exchange);
  ``hub_handler_errors_total``, ``hub_stream_dropped_total``,
  ``hub_stream_conflated_total``
- gauges ``hub_connection_up{exchange,protocol}`` (1 = connected),
  ``hub_connection_state{exchange,state}`` (1 for the current state),
  ``hub_symbol_refused{exchange,symbol}`` (1 per symbol the venue refused),
  ``hub_symbol_error{exchange,symbol}`` (1 per symbol the plugin reports in error),
  ``hub_symbol_quiet{exchange,symbol}`` (1 per symbol quiet on a live link),
  ``hub_connection_quiet{exchange}`` (1 while a live link carries no market data),
  ``hub_last_message_timestamp_seconds{exchange}`` (the last market data received),
  ``hub_uptime_seconds``, ``hub_info{version,compiled}``
- histogram ``hub_latency_seconds{exchange}`` (receive to subscriber callback,
  buckets from 1 µs to 1 s)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

import hub_core
from hub_core.errors import HubError
from hub_core.ticks import ConnectionState

if TYPE_CHECKING:
    from hub_core.hub import ExchangeHub

log = logging.getLogger("hub_core.cli.metrics")

REFRESH_INTERVAL_S = 1.0
BIND_ADDRESS = "127.0.0.1"
"""Metrics are served on loopback only; put a proxy in front to expose them."""

_STATES = (
    ConnectionState.CONNECTING,
    ConnectionState.CONNECTED,
    ConnectionState.STALE,
    ConnectionState.RECONNECTING,
    ConnectionState.AUTH_FAILED,
    ConnectionState.DEAD,
    ConnectionState.CLOSED,
)

# (metric name without _total, per-exchange stats attribute, help)
_PER_EXCHANGE_COUNTERS = (
    ("hub_trades", "trades", "Trades published"),
    ("hub_quotes", "quotes", "Quotes published"),
    ("hub_book_updates", "book_updates", "Book updates published"),
    ("hub_book_snapshots", "snapshots", "Book snapshots published"),
    ("hub_book_clears", "book_clears", "Book clears published"),
    ("hub_gaps", "gaps", "Gaps published (data may be missing)"),
    ("hub_malformed_frames", "malformed", "Frames the codec could not use"),
    ("hub_reconnects", "reconnects", "Sessions that ended and were reconnected"),
    ("hub_venue_errors", "venue_errors", "Error records sent by the venue"),
)


_SINK_STATES = ("connecting", "connected", "reconnecting", "auth_failed", "dead", "closed")


def _sink_families(hub: ExchangeHub) -> list[Metric]:
    """Per ``[sinks.NAME]``: ticks sent and dropped, what is buffered, reconnects, state."""
    statuses = sorted(hub.sink_status().items())
    if not statuses:
        return []
    sent = CounterMetricFamily("hub_sink_sent", "Ticks the sink took", labels=["sink"])
    dropped = CounterMetricFamily(
        "hub_sink_dropped", "Ticks past the sink's buffer (each covered by a Gap)", labels=["sink"]
    )
    reconnects = CounterMetricFamily(
        "hub_sink_reconnects", "Times the sink came back after a lost link", labels=["sink"]
    )
    buffered = GaugeMetricFamily("hub_sink_buffered", "Ticks waiting for the sink", labels=["sink"])
    state = GaugeMetricFamily(
        "hub_sink_state", "1 for the sink's current state", labels=["sink", "state"]
    )
    for name, st in statuses:
        sent.add_metric([name], float(st.sent))
        dropped.add_metric([name], float(st.dropped))
        reconnects.add_metric([name], float(st.reconnects))
        buffered.add_metric([name], float(st.buffered))
        for s in _SINK_STATES:
            state.add_metric([name, s], 1.0 if st.state == s else 0.0)
    return [sent, dropped, reconnects, buffered, state]


class HubMetrics:
    """A Prometheus collector over one hub, refreshed from the event loop."""

    def __init__(self, hub: ExchangeHub) -> None:
        self.hub = hub
        self.registry = CollectorRegistry()
        self._families: list[Metric] = []
        self.refresh()
        self.registry.register(self)
        self._server: Any = None

    def collect(self) -> Iterable[Metric]:
        """Called by the HTTP thread: the latest snapshot, never the live dicts."""
        return list(self._families)

    def refresh(self) -> None:
        """Take a snapshot of the hub's counters (call on the event loop)."""
        stats = self.hub.event_processor().get_stats()
        families: list[Metric] = []
        for name, attr, doc in _PER_EXCHANGE_COUNTERS:
            fam = CounterMetricFamily(name, doc, labels=["exchange"])
            for exchange, ex in sorted(stats.per_exchange.items()):
                fam.add_metric([exchange], float(getattr(ex, attr)))
            families.append(fam)
        for name, value, doc in (
            ("hub_handler_errors", stats.handler_errors, "Subscriber callbacks that raised"),
            ("hub_stream_dropped", stats.dropped, "Events dropped by bounded streams"),
            ("hub_stream_conflated", stats.conflated, "Events conflated by bounded streams"),
        ):
            families.append(CounterMetricFamily(name, doc, value=float(value)))
        recorder = self.hub.recorder
        if recorder is not None:  # hub run --record
            recorded = recorder.stats()
            for name, value, doc in (
                ("hub_record_written", recorded.written, "Ticks and Gaps written to DBN files"),
                ("hub_record_dropped", recorded.dropped, "Ticks the recorder could not write"),
            ):
                families.append(CounterMetricFamily(name, doc, value=float(value)))

        families += _sink_families(self.hub)

        up = GaugeMetricFamily(
            "hub_connection_up",
            "1 while the connection is connected",
            labels=["exchange", "protocol"],
        )
        state = GaugeMetricFamily(
            "hub_connection_state",
            "1 for the connection's current state",
            labels=["exchange", "state"],
        )
        refused = GaugeMetricFamily(
            "hub_symbol_refused",
            "1 for each symbol the venue refused at the last subscription",
            labels=["exchange", "symbol"],
        )
        symbol_error = GaugeMetricFamily(
            "hub_symbol_error",
            "1 for each symbol the plugin reports in error mid-session",
            labels=["exchange", "symbol"],
        )
        quiet_symbol = GaugeMetricFamily(
            "hub_symbol_quiet",
            "1 for each accepted symbol without market data for stale_after_ms on a live link",
            labels=["exchange", "symbol"],
        )
        quiet = GaugeMetricFamily(
            "hub_connection_quiet",
            "1 while the link is alive but no market data arrives (a quiet market)",
            labels=["exchange"],
        )
        last = GaugeMetricFamily(
            "hub_last_message_timestamp_seconds",
            "Wall-clock time of the last market data received (0 = none yet)",
            labels=["exchange"],
        )
        sinks = self.hub.event_processor().sinks
        for exchange, sup in sorted(self.hub.connections().items()):
            up.add_metric([exchange, sup.config.protocol], 1.0 if sup.healthy else 0.0)
            for s in _STATES:
                state.add_metric([exchange, s], 1.0 if sup.state == s else 0.0)
            for symbol in sorted(sup.refused):
                refused.add_metric([exchange, symbol], 1.0)
            for symbol in sorted(sup.quiet_symbols):
                quiet_symbol.add_metric([exchange, symbol], 1.0)
            for symbol in sorted(sup.sink.symbol_errors):
                symbol_error.add_metric([exchange, symbol], 1.0)
            quiet.add_metric([exchange], 1.0 if sup.quiet else 0.0)
            sink = sinks.get(exchange)
            last.add_metric([exchange], sink.last_recv_ns / 1e9 if sink is not None else 0.0)
        families += [up, state, refused, symbol_error, quiet_symbol, quiet, last]

        # a real histogram per connection (a gauge with a "quantile" label is what
        # Prometheus reserves for summaries); histogram_quantile() gives percentiles
        latency = HistogramMetricFamily(
            "hub_latency_seconds",
            "Receive-to-callback latency (sampled every 64th tick)",
            labels=["exchange"],
        )
        received = CounterMetricFamily(
            "hub_bytes_received", "Bytes read from the venue, every session", labels=["exchange"]
        )
        for exchange, sup in sorted(self.hub.connections().items()):
            received.add_metric([exchange], float(sup.bytes_received))
        for exchange, sink in sorted(sinks.items()):
            rec = sink.latency
            buckets = [
                ("+Inf" if bound < 0 else f"{bound / 1e9:g}", float(count))
                for bound, count in rec.histogram()
            ]
            latency.add_metric([exchange], buckets, sum_value=rec.sum_ns / 1e9)
        families += [latency, received]
        families.append(
            GaugeMetricFamily("hub_uptime_seconds", "Seconds since start", value=stats.uptime())
        )
        info = GaugeMetricFamily("hub_info", "hub-core build", labels=["version", "compiled"])
        info.add_metric([hub_core.__version__, str(hub_core.COMPILED).lower()], 1.0)
        families.append(info)
        self._families = families  # one reference swap: what the HTTP thread sees

    def serve(self, port: int, addr: str = BIND_ADDRESS) -> int:
        """Start the HTTP server thread; returns the port (useful with port 0)."""
        try:
            server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise HubError(
                f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
                hint="pick another --metrics-port, or 0 for any free port",
            ) from None
        self._server = server
        return int(server.server_port)

    async def run(self) -> None:
        """Refresh every ``REFRESH_INTERVAL_S`` seconds until cancelled."""
        while True:
            await anyio.sleep(REFRESH_INTERVAL_S)
            self.refresh()

    def close(self) -> None:
        """Stop the HTTP server."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
