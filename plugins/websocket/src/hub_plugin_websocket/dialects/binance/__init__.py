"""Binance market-data streams: spot (``binance``) and USD-M futures (``binance-futures``).

One room per venue: ``wire`` holds the msgspec structs of Binance's frames,
``session`` the ``BinanceSession`` (subscriptions, frames to ticks, the
diff-depth book procedure), and this module the dialects (channels, limits,
endpoints) that create sessions.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from hub_core.plugin import Sink
from hub_plugin_websocket.codec import Dialect, RateLimits, SessionConfig
from hub_plugin_websocket.dialects.binance.session import BinanceSession
from hub_plugin_websocket.dialects.binance.wire import _PARTIAL_RE, stream_name

__all__ = [
    "BINANCE_FUTURES_LIMITS",
    "BINANCE_SPOT_LIMITS",
    "BinanceDialect",
    "BinanceFuturesDialect",
    "BinanceSession",
    "stream_name",
]

_SYMBOL_RE: Final = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,19}")

BINANCE_SPOT_LIMITS: Final = RateLimits(
    connections=300,
    connections_interval_s=300.0,
    messages_per_second=5.0,
    streams_per_connection=1024,
    streams_per_message=200,
    snapshots_per_second=5.0,
)
"""Spot: 300 connections per 5 minutes per IP, 5 incoming messages per second per
connection (pings and pongs included), 1024 streams per connection."""

BINANCE_FUTURES_LIMITS: Final = RateLimits(
    connections=300,
    connections_interval_s=300.0,
    messages_per_second=10.0,
    streams_per_connection=1024,
    streams_per_message=200,
    snapshots_per_second=5.0,
)
"""USD-M futures: 10 incoming messages per second per connection, 1024 streams."""

# Where the REST API of a known stream host lives (a snapshot must come from the same venue).
_REST_HOSTS: Final = {
    "stream.binance.com": "https://api.binance.com",
    "data-stream.binance.vision": "https://data-api.binance.vision",
    "stream.testnet.binance.vision": "https://testnet.binance.vision",
    "fstream.binance.com": "https://fapi.binance.com",
    "stream.binancefuture.com": "https://testnet.binancefuture.com",
    "fstream.binancefuture.com": "https://testnet.binancefuture.com",
}


class BinanceDialect(Dialect):
    """Binance spot market streams (``wss://stream.binance.com:9443/ws``)."""

    name = "binance"
    description = "Binance spot: trade, aggTrade, bookTicker, diff depth with a local book"
    limits = BINANCE_SPOT_LIMITS
    channels: tuple[str, ...] = (
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "depth@100ms",
        "depth@1000ms",
        "depth5",
        "depth10",
        "depth20",
        "depth5@100ms",
        "depth10@100ms",
        "depth20@100ms",
    )
    default_channels: tuple[str, ...] = ("trade", "bookTicker")
    depth_path = "/api/v3/depth"
    futures = False

    def validate_symbol(self, symbol: str) -> str:
        if not _SYMBOL_RE.fullmatch(symbol):
            hint = " (write it in upper case)" if _SYMBOL_RE.fullmatch(symbol.upper()) else ""
            raise ValueError(f"{symbol!r} is not a {self.name} symbol{hint}")
        return symbol

    def validate_endpoint(self, endpoint: str) -> None:
        path = urlsplit(endpoint).path
        if not (path == "/ws" or path.startswith("/ws/") or path.rstrip("/") == "/stream"):
            raise ValueError(
                f"{endpoint!r}: a {self.name} stream URL ends in /ws (raw streams) or "
                "/stream (combined streams), e.g. wss://stream.binance.com:9443/ws"
            )

    def default_rest_url(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        known = _REST_HOSTS.get(host)
        if known is not None:
            return known
        # an unknown host (the simulator, a proxy): REST on the same host and port
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}"

    def new_session(self, sink: Sink, config: SessionConfig) -> BinanceSession:
        partial = [ch for ch in config.channels if _PARTIAL_RE.fullmatch(ch)]
        if partial and urlsplit(config.endpoint).path.rstrip("/") != "/stream":
            # a raw stream's partial-depth payload does not say which symbol it is
            raise ValueError(
                f"channels {partial} need the combined endpoint (.../stream), "
                "whose frames name their stream"
            )
        return BinanceSession(
            sink, config, futures=self.futures, depth_path=self.depth_path, limits=self.limits
        )


class BinanceFuturesDialect(BinanceDialect):
    """Binance USD-M futures market streams (``wss://fstream.binance.com/ws``)."""

    name = "binance-futures"
    description = "Binance USD-M futures: aggTrade, bookTicker, diff depth (pu chain)"
    limits = BINANCE_FUTURES_LIMITS
    channels = (
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "depth@100ms",
        "depth@250ms",
        "depth@500ms",
        "depth@0ms",
    )
    default_channels = ("aggTrade", "bookTicker")
    depth_path = "/fapi/v1/depth"
    futures = True
