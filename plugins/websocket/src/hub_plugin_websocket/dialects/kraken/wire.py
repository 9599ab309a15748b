"""Kraken v2's wire: the msgspec structs of its messages (prices and sizes as
``msgspec.Raw``, the numbers' own text), the shared decoders, and the pure helpers of
the book checksum.

No state and no I/O; the names are the package's own (underscored) but for
``book_checksum``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = ["book_checksum"]

_BOOK_RE: Final = re.compile(r"book(?:@(10|25|100|500|1000))?")
"""The book channel, as configured: ``book`` or ``book@N`` (depth N)."""
_CHECKSUM_LEVELS: Final = 10


class _TickerData(msgspec.Struct, gc=False):
    symbol: str
    bid: msgspec.Raw
    bid_qty: msgspec.Raw
    ask: msgspec.Raw
    ask_qty: msgspec.Raw
    timestamp: str = ""


class _TickerMsg(msgspec.Struct, tag_field="channel", tag="ticker", gc=False):
    type: str
    data: list[_TickerData]


class _TradeData(msgspec.Struct, gc=False):
    symbol: str
    side: str
    price: msgspec.Raw
    qty: msgspec.Raw
    ord_type: str = ""
    trade_id: int = 0
    timestamp: str = ""


class _TradeMsg(msgspec.Struct, tag_field="channel", tag="trade", gc=False):
    type: str
    data: list[_TradeData]


class _Level(msgspec.Struct, gc=False):
    price: msgspec.Raw
    qty: msgspec.Raw


class _BookData(msgspec.Struct, gc=False):
    symbol: str
    bids: msgspec.Raw
    """A JSON array of ``_Level`` objects, parsed by the kit's compiled
    ``parse_level_objects`` (no struct or ``Raw`` per level); ``_LEVELS`` checks the
    shape of one it cannot read."""
    asks: msgspec.Raw
    checksum: int
    timestamp: str = ""


class _BookMsg(msgspec.Struct, tag_field="channel", tag="book", gc=False):
    type: str
    data: list[_BookData]


class _HeartbeatMsg(msgspec.Struct, tag_field="channel", tag="heartbeat", gc=False):
    pass


class _StatusData(msgspec.Struct, gc=False):
    system: str = ""
    api_version: str = ""
    connection_id: int = 0
    version: str = ""


class _StatusMsg(msgspec.Struct, tag_field="channel", tag="status", gc=False):
    type: str = ""
    data: list[_StatusData] = []


_Data = _TickerMsg | _TradeMsg | _BookMsg | _HeartbeatMsg | _StatusMsg

_NO_RAW: Final = msgspec.Raw(b"")


class _Reply(msgspec.Struct, gc=False):
    """A method reply (``subscribe``, ``unsubscribe``, ``pong``) or a channel we do not map."""

    method: str = ""
    success: bool | None = None
    error: str = ""
    req_id: int | None = None
    symbol: str = ""
    result: msgspec.Raw = _NO_RAW
    channel: str = ""


def _number(raw: msgspec.Raw) -> bytes:
    """A JSON number's own text (a quoted decimal is accepted too)."""
    text = bytes(raw)
    if text[:1] == b'"' and text[-1:] == b'"':
        return text[1:-1]
    return text


def book_checksum(asks: Sequence[bytes], bids: Sequence[bytes]) -> int:
    """Kraken's CRC32 over ready tokens (``price digits + qty digits`` per level):
    the top 10 asks best first, then the top 10 bids best first; unsigned."""
    return zlib.crc32(b"".join(asks[:_CHECKSUM_LEVELS]) + b"".join(bids[:_CHECKSUM_LEVELS]))


# shared by every session: msgspec decoders hold no per-call state, and an idle
# connection should not carry its own copies
_DEC: Final = msgspec.json.Decoder(_Data)
_DEC_REPLY: Final = msgspec.json.Decoder(_Reply)
_LEVELS: Final = msgspec.json.Decoder(list[_Level])
