"""Coinbase Exchange's wire: the msgspec structs of its messages (a tagged union on
``type``, fields in Coinbase's key order), the shared decoders and level parsing.

No state and no I/O; the names are the package's own (underscored).
"""

from __future__ import annotations

from typing import Final

import msgspec

from hub_core.plugin import parse_fixed

__all__: list[str] = []


class _Ticker(msgspec.Struct, tag_field="type", tag="ticker", gc=False):
    sequence: int
    product_id: str
    price: str
    best_bid: str
    best_bid_size: str
    best_ask: str
    best_ask_size: str
    side: str = ""
    time: str = ""
    trade_id: int = 0
    last_size: str = ""


class _Match(msgspec.Struct, tag_field="type", tag="match", gc=False):
    trade_id: int
    sequence: int
    time: str
    product_id: str
    size: str
    price: str
    side: str
    maker_order_id: str = ""
    taker_order_id: str = ""


class _LastMatch(msgspec.Struct, tag_field="type", tag="last_match", gc=False):
    """Sent once on subscribing ``matches``: the latest trade, from before we joined."""

    trade_id: int
    sequence: int
    time: str
    product_id: str
    size: str
    price: str
    side: str


class _Snapshot(msgspec.Struct, tag_field="type", tag="snapshot", gc=False):
    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: str = ""


class _L2Update(msgspec.Struct, tag_field="type", tag="l2update", gc=False):
    product_id: str
    changes: msgspec.Raw
    """``[["buy"|"sell", "price", "size"], ...]``: read by the sink's compiled
    ``book_changes_json``, or by ``_CHANGES`` when that cannot read it."""
    time: str = ""


class _L2UpdateStrict(msgspec.Struct, tag_field="type", tag="l2update", gc=False):
    """``_L2Update`` with its changes decoded: what a frame that fails is checked
    against, so that the error names the field as it always did."""

    product_id: str
    changes: list[tuple[str, str, str]]
    time: str = ""


class _Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat", gc=False):
    sequence: int
    last_trade_id: int
    product_id: str
    time: str = ""


class _Channel(msgspec.Struct, gc=False):
    name: str
    product_ids: list[str] = []


class _Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions", gc=False):
    channels: list[_Channel | str] = []


class _Error(msgspec.Struct, tag_field="type", tag="error", gc=False):
    message: str = ""
    reason: str = ""


_Message = (
    _Ticker | _Match | _L2Update | _Snapshot | _Heartbeat | _LastMatch | _Subscriptions | _Error
)


class _Type(msgspec.Struct, gc=False):
    type: str


_KNOWN: Final = frozenset(
    {"ticker", "match", "last_match", "snapshot", "l2update", "heartbeat", "subscriptions", "error"}
)


def _levels(pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    return [(parse_fixed(p), parse_fixed(q)) for p, q in pairs]


# shared by every session: msgspec decoders hold no per-call state, and an idle
# connection should not carry its own copies
_DEC: Final = msgspec.json.Decoder(_Message)
_DEC_TYPE: Final = msgspec.json.Decoder(_Type)
_DEC_L2_STRICT: Final = msgspec.json.Decoder(_L2UpdateStrict)
_CHANGES: Final = msgspec.json.Decoder(list[tuple[str, str, str]])
