"""Kraken spot WebSocket v2 (``kraken``): ``wss://ws.kraken.com/v2``.

One room per venue: ``wire`` holds the message structs and the checksum helpers,
``session`` the ``KrakenSession`` (on the shared ``ChannelSession``), this module the
dialect.

Sans-I/O. Kraken v2 writes prices and quantities as JSON *numbers* carrying the
pair's full precision (``0.00100000``). They are decoded as ``msgspec.Raw`` —
the number's own text, never a float — and handed as decimal bytes to the
sink's compiled ``*_bytes`` methods (or ``parse_fixed_bytes`` for the book).
The same text is what the book checksum needs, so the book keeps it per level.

Channels: ``ticker`` (-> ``Quote``), ``trade`` (-> ``Trade``; ``side`` is the
taker's), ``book`` (snapshot + updates -> a local book, ``BookSnapshot`` +
``BookUpdate``; ``book@N`` subscribes depth N, default 10). ``heartbeat`` and
``status`` messages are handled, not mapped.

Book integrity (Kraken's "Book checksum (WebSocket v2)" guide): after each
message's levels are applied and the book truncated to the subscribed depth,
the CRC32 of the top 10 asks (low to high) then the top 10 bids (high to low),
each level's price then qty with the ``.`` removed and leading zeros stripped,
all concatenated, must equal the message's ``checksum`` (unsigned). A mismatch
publishes a ``Gap`` (reason says "checksum"), drops the book and resubscribes
the book channel of that symbol for a fresh snapshot (``Resubscribe``).

Replies: a subscribe naming several symbols is answered by one ack per symbol,
each with the request's ``req_id``; the request completes when every symbol is
acknowledged, and fails at the first ``success: false``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from hub_core.plugin import Sink
from hub_plugin_websocket.codec import Dialect, RateLimits, Resubscribe, SessionConfig
from hub_plugin_websocket.dialects.kraken.session import RESYNC_REFUSALS_TO_ERROR, KrakenSession
from hub_plugin_websocket.dialects.kraken.wire import _BOOK_RE, book_checksum

__all__ = [
    "RESYNC_REFUSALS_TO_ERROR",
    "KRAKEN_LIMITS",
    "KrakenDialect",
    "KrakenSession",
    "Resubscribe",
    "book_checksum",
]

_SYMBOL_RE: Final = re.compile(r"[A-Z0-9.]{1,16}/[A-Z0-9.]{1,16}")

KRAKEN_LIMITS: Final = RateLimits(
    connections=150,
    connections_interval_s=600.0,
    messages_per_second=5.0,
    streams_per_connection=1000,
    streams_per_message=100,
    snapshots_per_second=1.0,
)
"""Kraken: about 150 connection attempts per rolling 10 minutes per IP before the
edge (Cloudflare) blocks the address. Kraken publishes no per-connection message
or subscription cap for public channels; 5 control messages per second (paced at
4) and 1000 streams per connection are our own conservative bounds. Books come
over the WebSocket, so ``snapshots_per_second`` is unused."""


class KrakenDialect(Dialect):
    """Kraken spot WebSocket API v2 (``wss://ws.kraken.com/v2``)."""

    name = "kraken"
    description = "Kraken v2: ticker, trade, book with CRC32 checksum"
    limits = KRAKEN_LIMITS
    channels: tuple[str, ...] = (
        "ticker",
        "trade",
        "book",
        "book@10",
        "book@25",
        "book@100",
        "book@500",
        "book@1000",
    )
    default_channels: tuple[str, ...] = ("trade", "ticker")

    def validate_channels(self, channels: Sequence[str]) -> tuple[str, ...]:
        out = super().validate_channels(channels)
        if sum(1 for ch in out if _BOOK_RE.fullmatch(ch)) > 1:
            raise ValueError("at most one book channel (book or book@N) per connection")
        return out

    def validate_symbol(self, symbol: str) -> str:
        if not _SYMBOL_RE.fullmatch(symbol):
            hint = " (write it in upper case)" if _SYMBOL_RE.fullmatch(symbol.upper()) else ""
            raise ValueError(f"{symbol!r} is not a {self.name} pair like BTC/USD{hint}")
        return symbol

    def new_session(self, sink: Sink, config: SessionConfig) -> KrakenSession:
        return KrakenSession(sink, config, self.limits)
