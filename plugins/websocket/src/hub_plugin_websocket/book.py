"""``OrderBook``: a price-level book kept on the reader side, fixed-point ints only.

Levels live in two dicts (price -> size); sorting happens only when a
``BookSnapshot`` is published (on a (re)sync), so an update costs one dict
operation. A size of 0 removes the level.
"""

from __future__ import annotations

from typing import Final

from hub_core.plugin import Side

__all__ = ["OrderBook"]

_BID: Final[str] = str(Side.BID)  # a module constant: cheaper than the compiled class's attribute


class OrderBook:
    """Bids and asks of one symbol, with the venue's update id of its last change."""

    __slots__ = ("asks", "bids", "last_update_id", "ts_event")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.last_update_id = 0
        self.ts_event = 0

    def clear(self) -> None:
        """Forget every level (a resync starts from an empty book)."""
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = 0
        self.ts_event = 0

    def apply(self, side: str, price: int, size: int) -> str:
        """Set one level; returns the DBN action: ``A`` new, ``M`` changed, ``C`` removed,
        ``""`` when nothing changed (removal of a level the book does not hold)."""
        levels = self.bids if side == _BID else self.asks
        if size == 0:
            if levels.pop(price, None) is None:
                return ""
            return "C"
        old = levels.get(price)
        levels[price] = size
        if old is None:
            return "A"
        return "M" if old != size else ""

    def best_bid(self) -> tuple[int, int] | None:
        """(price, size) of the highest bid, or ``None``."""
        if not self.bids:
            return None
        p = max(self.bids)
        return (p, self.bids[p])

    def best_ask(self) -> tuple[int, int] | None:
        """(price, size) of the lowest ask, or ``None``."""
        if not self.asks:
            return None
        p = min(self.asks)
        return (p, self.asks[p])

    def levels(
        self, depth: int = 0
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """(bids, asks) best first, at most ``depth`` a side (0 = all)."""
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])
        asks = sorted(self.asks.items())
        if depth > 0:
            bids = bids[:depth]
            asks = asks[:depth]
        return tuple(bids), tuple(asks)

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
