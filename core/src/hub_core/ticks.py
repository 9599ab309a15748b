"""Tick and control-event types, compiled as mypyc native classes.

One object per tick, shared by reference with every subscriber. Prices and
sizes are ints scaled by ``PRICE_SCALE`` (1e9, as in DBN); the ``*_float``
properties are display conveniences. Attributes are ``Final``: the compiled
build refuses assignment at run time, so a subscriber cannot change what the
next subscriber sees.

Build ticks positionally on a hot path (or, better, with the factories in
``hub_core.factories``); keyword construction is for users and tests.
"""

from typing import Final, final

from hub_core.fixed import PRICE_SCALE


@final
class Side:
    """Aggressor side of a trade, or side of a book level. Values are DBN's."""

    BUY: Final = "B"
    """Buy aggressor; on a book level, the bid."""
    SELL: Final = "A"
    """Sell aggressor; on a book level, the ask."""
    NONE: Final = "N"
    BID: Final = "B"
    ASK: Final = "A"


@final
class ConnectionState:
    """Values of ``ConnectionStateChanged.state``."""

    CONNECTING: Final = "connecting"
    CONNECTED: Final = "connected"
    """Session up and every subscription sent."""
    STALE: Final = "stale"
    """Silent past ``stale_after_ms``; being probed."""
    RECONNECTING: Final = "reconnecting"
    AUTH_FAILED: Final = "auth_failed"
    DEAD: Final = "dead"
    """Gave up; ``reason`` says why. Nothing more will arrive."""
    CLOSED: Final = "closed"
    """Closed on request."""


@final
class Trade:
    """A trade print. ``side`` is the aggressor (``Side.BUY``/``SELL``/``NONE``)."""

    exchange: Final[str]
    symbol: Final[str]
    price: Final[int]
    size: Final[int]
    side: Final[str]
    ts_event: Final[int]
    ts_recv: Final[int]
    sequence: Final[int]
    trade_id: Final[str]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        price: int,
        size: int,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.price = price
        self.size = size
        self.side = side
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.sequence = sequence
        self.trade_id = trade_id

    @property
    def price_float(self) -> float:
        return self.price / PRICE_SCALE

    @property
    def size_float(self) -> float:
        return self.size / PRICE_SCALE

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name (raw fixed-point ints)."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "price": self.price,
            "size": self.size,
            "side": self.side,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "sequence": self.sequence,
            "trade_id": self.trade_id,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trade):
            return NotImplemented
        return (
            self.exchange == other.exchange
            and self.symbol == other.symbol
            and self.price == other.price
            and self.size == other.size
            and self.side == other.side
            and self.ts_event == other.ts_event
            and self.ts_recv == other.ts_recv
            and self.sequence == other.sequence
            and self.trade_id == other.trade_id
        )

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.price, self.size, self.ts_event))

    def __repr__(self) -> str:
        return (
            f"Trade(exchange={self.exchange!r}, symbol={self.symbol!r}, price={self.price}, "
            f"size={self.size}, side={self.side!r}, ts_event={self.ts_event}, "
            f"ts_recv={self.ts_recv}, sequence={self.sequence}, trade_id={self.trade_id!r})"
        )


@final
class Quote:
    """Top of book: best bid and ask with their sizes."""

    exchange: Final[str]
    symbol: Final[str]
    bid_price: Final[int]
    bid_size: Final[int]
    ask_price: Final[int]
    ask_size: Final[int]
    ts_event: Final[int]
    ts_recv: Final[int]
    sequence: Final[int]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        bid_price: int,
        bid_size: int,
        ask_price: int,
        ask_size: int,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.bid_price = bid_price
        self.bid_size = bid_size
        self.ask_price = ask_price
        self.ask_size = ask_size
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.sequence = sequence

    @property
    def bid_price_float(self) -> float:
        return self.bid_price / PRICE_SCALE

    @property
    def ask_price_float(self) -> float:
        return self.ask_price / PRICE_SCALE

    @property
    def bid_size_float(self) -> float:
        return self.bid_size / PRICE_SCALE

    @property
    def ask_size_float(self) -> float:
        return self.ask_size / PRICE_SCALE

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name (raw fixed-point ints)."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "bid_price": self.bid_price,
            "bid_size": self.bid_size,
            "ask_price": self.ask_price,
            "ask_size": self.ask_size,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "sequence": self.sequence,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quote):
            return NotImplemented
        return (
            self.exchange == other.exchange
            and self.symbol == other.symbol
            and self.bid_price == other.bid_price
            and self.bid_size == other.bid_size
            and self.ask_price == other.ask_price
            and self.ask_size == other.ask_size
            and self.ts_event == other.ts_event
            and self.ts_recv == other.ts_recv
            and self.sequence == other.sequence
        )

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.bid_price, self.ask_price, self.ts_event))

    def __repr__(self) -> str:
        return (
            f"Quote(exchange={self.exchange!r}, symbol={self.symbol!r}, "
            f"bid_price={self.bid_price}, bid_size={self.bid_size}, "
            f"ask_price={self.ask_price}, ask_size={self.ask_size}, "
            f"ts_event={self.ts_event}, ts_recv={self.ts_recv}, sequence={self.sequence})"
        )


@final
class BookUpdate:
    """One price level changed: ``size`` is the level's new total; 0 removes it.

    ``action`` is DBN's (``A`` add, ``M`` modify, ``C`` cancel, ``T``/``F``
    trade/fill, ``N`` none); ``order_id`` is non-zero only for order-level
    (MBO) feeds. A book clear is not a ``BookUpdate``: it is a ``BookClear``.
    """

    exchange: Final[str]
    symbol: Final[str]
    side: Final[str]
    price: Final[int]
    size: Final[int]
    ts_event: Final[int]
    ts_recv: Final[int]
    action: Final[str]
    order_id: Final[int]
    sequence: Final[int]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        side: str,
        price: int,
        size: int,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        order_id: int = 0,
        sequence: int = 0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.side = side
        self.price = price
        self.size = size
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.action = action
        self.order_id = order_id
        self.sequence = sequence

    @property
    def price_float(self) -> float:
        return self.price / PRICE_SCALE

    @property
    def size_float(self) -> float:
        return self.size / PRICE_SCALE

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name (raw fixed-point ints)."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "side": self.side,
            "price": self.price,
            "size": self.size,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "action": self.action,
            "order_id": self.order_id,
            "sequence": self.sequence,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BookUpdate):
            return NotImplemented
        return (
            self.exchange == other.exchange
            and self.symbol == other.symbol
            and self.side == other.side
            and self.price == other.price
            and self.size == other.size
            and self.ts_event == other.ts_event
            and self.ts_recv == other.ts_recv
            and self.action == other.action
            and self.order_id == other.order_id
            and self.sequence == other.sequence
        )

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.side, self.price, self.ts_event))

    def __repr__(self) -> str:
        return (
            f"BookUpdate(exchange={self.exchange!r}, symbol={self.symbol!r}, "
            f"side={self.side!r}, price={self.price}, size={self.size}, "
            f"ts_event={self.ts_event}, ts_recv={self.ts_recv}, action={self.action!r}, "
            f"order_id={self.order_id}, sequence={self.sequence})"
        )


@final
class BookSnapshot:
    """Book levels, best first, as ``(price, size)`` pairs on each side."""

    exchange: Final[str]
    symbol: Final[str]
    bids: Final[tuple[tuple[int, int], ...]]
    asks: Final[tuple[tuple[int, int], ...]]
    ts_event: Final[int]
    ts_recv: Final[int]
    sequence: Final[int]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        bids: tuple[tuple[int, int], ...],
        asks: tuple[tuple[int, int], ...],
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.bids = bids
        self.asks = asks
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.sequence = sequence

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name; levels as lists of ``[price, size]``."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "bids": [[p, s] for p, s in self.bids],
            "asks": [[p, s] for p, s in self.asks],
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "sequence": self.sequence,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BookSnapshot):
            return NotImplemented
        return (
            self.exchange == other.exchange
            and self.symbol == other.symbol
            and self.bids == other.bids
            and self.asks == other.asks
            and self.ts_event == other.ts_event
            and self.ts_recv == other.ts_recv
            and self.sequence == other.sequence
        )

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.bids, self.asks, self.ts_event))

    def __repr__(self) -> str:
        return (
            f"BookSnapshot(exchange={self.exchange!r}, symbol={self.symbol!r}, "
            f"bids={self.bids!r}, asks={self.asks!r}, ts_event={self.ts_event}, "
            f"ts_recv={self.ts_recv}, sequence={self.sequence})"
        )


@final
class BookClear:
    """Every level of ``symbol`` is gone: a book keeper empties its book and starts anew.

    Published where a venue resets a book (a session start, a book that the
    venue rebuilds from scratch); the levels that follow are the new book.
    ``reason`` is the venue's own word for why, when it gives one ("" when it
    does not; DBN records carry none). In DBN it is an mbo record with action
    ``R``.
    """

    exchange: Final[str]
    symbol: Final[str]
    ts_event: Final[int]
    ts_recv: Final[int]
    sequence: Final[int]
    reason: Final[str]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        reason: str = "",
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.sequence = sequence
        self.reason = reason

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "sequence": self.sequence,
            "reason": self.reason,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BookClear):
            return NotImplemented
        return (
            self.exchange == other.exchange
            and self.symbol == other.symbol
            and self.ts_event == other.ts_event
            and self.ts_recv == other.ts_recv
            and self.sequence == other.sequence
            and self.reason == other.reason
        )

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.ts_event, self.sequence))

    def __repr__(self) -> str:
        return (
            f"BookClear(exchange={self.exchange!r}, symbol={self.symbol!r}, "
            f"ts_event={self.ts_event}, ts_recv={self.ts_recv}, sequence={self.sequence}, "
            f"reason={self.reason!r})"
        )


@final
class Gap:
    """Data may be missing for ``symbol`` (empty: the whole connection) between
    ``start_ts`` and ``end_ts`` (ns), and between sequence numbers
    ``start_seq``..``end_seq`` when the feed has them (0 when not known).
    """

    exchange: Final[str]
    symbol: Final[str]
    start_ts: Final[int]
    end_ts: Final[int]
    reason: Final[str]
    start_seq: Final[int]
    end_seq: Final[int]
    ts_event: Final[int]
    ts_recv: Final[int]

    def __init__(
        self,
        exchange: str,
        symbol: str,
        start_ts: int,
        end_ts: int,
        reason: str,
        start_seq: int = 0,
        end_seq: int = 0,
        ts_event: int = 0,
        ts_recv: int = 0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.reason = reason
        self.start_seq = start_seq
        self.end_seq = end_seq
        self.ts_event = ts_event if ts_event else end_ts
        self.ts_recv = ts_recv if ts_recv else end_ts

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "reason": self.reason,
            "start_seq": self.start_seq,
            "end_seq": self.end_seq,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gap):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.exchange, self.symbol, self.start_ts, self.end_ts))

    def __repr__(self) -> str:
        return (
            f"Gap(exchange={self.exchange!r}, symbol={self.symbol!r}, "
            f"start_ts={self.start_ts}, end_ts={self.end_ts}, reason={self.reason!r}, "
            f"start_seq={self.start_seq}, end_seq={self.end_seq})"
        )


@final
class ConnectionStateChanged:
    """A connection changed state (``ConnectionState``); ``reason`` says why."""

    exchange: Final[str]
    state: Final[str]
    reason: Final[str]
    ts_event: Final[int]
    ts_recv: Final[int]
    endpoint: Final[str]
    attempt: Final[int]
    symbol: Final[str]

    def __init__(
        self,
        exchange: str,
        state: str,
        reason: str,
        ts_event: int,
        ts_recv: int,
        endpoint: str = "",
        attempt: int = 0,
    ) -> None:
        self.exchange = exchange
        self.state = state
        self.reason = reason
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.endpoint = endpoint
        self.attempt = attempt
        self.symbol = ""

    @property
    def healthy(self) -> bool:
        return self.state == ConnectionState.CONNECTED

    def as_dict(self) -> dict[str, object]:
        """Every field under its attribute name."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "state": self.state,
            "reason": self.reason,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "endpoint": self.endpoint,
            "attempt": self.attempt,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnectionStateChanged):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.exchange, self.state, self.ts_event))

    def __repr__(self) -> str:
        return (
            f"ConnectionStateChanged(exchange={self.exchange!r}, state={self.state!r}, "
            f"reason={self.reason!r}, endpoint={self.endpoint!r}, attempt={self.attempt})"
        )
