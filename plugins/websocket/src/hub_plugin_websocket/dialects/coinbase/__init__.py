"""Coinbase Exchange market-data feed (``coinbase``): ``wss://ws-feed.exchange.coinbase.com``.

One room per venue: ``wire`` holds the message structs, ``session`` the
``CoinbaseSession`` (on the shared ``ChannelSession``), this module the dialect.

Sans-I/O. Frames go from bytes straight to msgspec ``Struct``s (a tagged union
on Coinbase's ``type`` field) and from there to the sink's compiled ``*_text``
methods, which parse the decimal strings to fixed point exactly.

Channels: ``ticker`` (best bid/ask -> ``Quote``), ``matches`` (-> ``Trade``),
``level2`` (``snapshot`` + ``l2update`` -> a local book, ``BookSnapshot`` +
``BookUpdate``) and ``heartbeat``.

Protocol facts this module relies on (Coinbase Exchange WebSocket docs):

- A ``subscribe`` must arrive within 5 seconds of the connection opening or the
  venue disconnects. ``CoinbaseDialect.subscribe_deadline_s`` states it; the
  generic connector has no field for it yet (it subscribes as soon as the hub
  asks, which the hub does right after connecting).
- Replies carry no request id: every ``subscribe``/``unsubscribe`` is answered
  by one ``subscriptions`` message (the full current list), and a refusal is an
  ``error`` message. The venue answers in order on one connection, so replies
  complete the oldest request in flight (FIFO).
- In ``match`` messages ``side`` is the **maker's** side: ``"sell"`` means a
  resting sell order was lifted, so the aggressor bought (and vice versa).
- ``sequence`` is per product but counts every message of the product's full
  feed, so on ``ticker`` and ``matches`` alone it increases with holes that are
  normal. What is contiguous on ``matches`` is ``trade_id`` (one per match per
  product), and ``heartbeat`` carries ``last_trade_id`` to check it against. So:
  a ``sequence`` that does not increase is a stale/duplicate message (dropped);
  a hole in ``trade_id`` is a lost trade (``Gap``); a ticker is a state, so a
  missed ticker is superseded by the next one and cannot be detected.
- ``level2`` carries no sequence numbers: the book is only as good as the
  connection. A lost trade on the product, an update before the snapshot, or an
  unreadable level publishes a ``Gap`` (reason says "sequence"), drops the book
  and resubscribes ``level2`` for that product to get a fresh snapshot (see
  ``Resubscribe``). Coinbase now requires authentication for ``level2`` on the
  production feed; this dialect sends no credentials (the simulator accepts the
  channel unauthenticated, a real venue refuses it with an ``error``).
"""

from __future__ import annotations

import re
from typing import Final

from hub_core.plugin import Sink
from hub_plugin_websocket.codec import Dialect, RateLimits, Resubscribe, SessionConfig
from hub_plugin_websocket.dialects.coinbase.session import CoinbaseSession
from hub_plugin_websocket.dialects.timestamps import rfc3339_ns

__all__ = [
    "COINBASE_LIMITS",
    "CoinbaseDialect",
    "CoinbaseSession",
    "Resubscribe",
    "rfc3339_ns",
]

_PRODUCT_RE: Final = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}")

COINBASE_LIMITS: Final = RateLimits(
    connections=8,
    connections_interval_s=1.0,
    messages_per_second=8.0,
    streams_per_connection=1000,
    streams_per_message=100,
    snapshots_per_second=1.0,
)
"""Coinbase Exchange WebSocket limits: 8 requests per second per IP (bursts up to 20;
we never burst), at most 100 client messages per second per IP. There is no
documented cap on subscriptions per connection (the documented cap is 10 duplicate
subscriptions per product and channel per account), so 1000 streams per
connection is our own bound; 100 products per subscribe message keeps a message
small. Books come over the WebSocket, so ``snapshots_per_second`` is unused."""


class CoinbaseDialect(Dialect):
    """Coinbase Exchange market data (``wss://ws-feed.exchange.coinbase.com``)."""

    name = "coinbase"
    description = "Coinbase Exchange: ticker, matches, level2 book, heartbeat"
    limits = COINBASE_LIMITS
    channels: tuple[str, ...] = ("ticker", "matches", "level2", "heartbeat")
    default_channels: tuple[str, ...] = ("matches", "ticker", "heartbeat")
    subscribe_deadline_s: float = 5.0
    """The venue closes a connection that has not subscribed within this many seconds.
    Not read by the generic connector (its interface has no such field): the hub
    subscribes right after connecting, well inside it."""

    def validate_symbol(self, symbol: str) -> str:
        if not _PRODUCT_RE.fullmatch(symbol):
            hint = " (write it in upper case)" if _PRODUCT_RE.fullmatch(symbol.upper()) else ""
            raise ValueError(f"{symbol!r} is not a {self.name} product id like BTC-USD{hint}")
        return symbol

    def new_session(self, sink: Sink, config: SessionConfig) -> CoinbaseSession:
        return CoinbaseSession(sink, config, self.limits)
