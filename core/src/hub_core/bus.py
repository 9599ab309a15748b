"""The in-process event bus, compiled with mypyc.

``publish`` is synchronous and runs on the reader's task: it calls every
matching handler in subscription order. Handlers are kept per tick type in a
tuple that is rebuilt on (rare) subscribe/unsubscribe, so a publish does no
allocation, and the common case of one unfiltered subscriber is one call.

A handler that raises is isolated: the error is counted and logged, and the
other handlers still get the tick. Consumers on other tasks use ``stream()``:
a bounded buffer with an overflow policy, so a slow consumer never blocks the
reader or other subscribers (unless it opts into ``"block"``, which pauses
the readers instead of dropping).
"""

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, final

from hub_core.ticks import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    Gap,
    Quote,
    Trade,
)

if TYPE_CHECKING:
    from hub_core.streams import EventStream

log = logging.getLogger("hub_core.bus")

Handler = Callable[[Any], object]

Event = Trade | Quote | BookUpdate | BookSnapshot | BookClear | Gap | ConnectionStateChanged
"""Everything the bus carries: the five market-data types and the two control events."""

E = TypeVar("E", bound=Event)
"""One of the bus's event types: ``subscribe``/``stream`` are typed by the type passed."""

Overflow = Literal["drop_oldest", "conflate", "block"]
"""What a full ``stream()`` does: see ``TypedEventBus.stream``."""

OVERFLOW_DROP_OLDEST: Final = 0
OVERFLOW_CONFLATE: Final = 1
OVERFLOW_BLOCK: Final = 2
_POLICIES: Final = {"drop_oldest": 0, "conflate": 1, "block": 2}

TICK_TYPES: Final = (Trade, Quote, BookUpdate, BookSnapshot, BookClear, Gap, ConnectionStateChanged)

_EMPTY: Final[tuple[Handler, ...]] = ()
_LOG_FIRST: Final = 5
_LOG_EVERY: Final = 1000


@final
class Subscription:
    """A live subscription; ``unsubscribe()`` (or leaving ``with``) ends it."""

    tick_type: Final[type]
    handler: Final[Handler]
    exchange: Final[str | None]
    symbol: Final[str | None]
    active: bool
    errors: int

    def __init__(
        self,
        bus: "TypedEventBus",
        tick_type: type,
        handler: Handler,
        exchange: str | None,
        symbol: str | None,
    ) -> None:
        self._bus = bus
        self.tick_type = tick_type
        self.handler = handler
        self.exchange = exchange
        self.symbol = symbol
        self.active = True
        self.errors = 0

    def unsubscribe(self) -> None:
        """Stop delivery. Idempotent."""
        if self.active:
            self.active = False
            self._bus._remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        name = getattr(self.tick_type, "__name__", str(self.tick_type))
        return (
            f"Subscription({name}, handler={self.handler!r}, exchange={self.exchange!r}, "
            f"symbol={self.symbol!r}, active={self.active})"
        )


@final
class _Route:
    """Handlers for one tick type, precomputed for dispatch."""

    def __init__(self) -> None:
        self.subs: list[Subscription] = []
        self.plain: tuple[Handler, ...] = _EMPTY
        self.plain_subs: tuple[Subscription, ...] = ()
        self.single: Handler | None = None
        self.filtered: bool = False
        # exchange -> symbol ("" = any symbol) -> handlers; "" exchange = any exchange
        self.by_key: dict[str, dict[str, tuple[Subscription, ...]]] = {}

    def rebuild(self) -> None:
        plain: list[Subscription] = []
        by_key: dict[str, dict[str, list[Subscription]]] = {}
        for s in self.subs:
            if s.exchange is None and s.symbol is None:
                plain.append(s)
            else:
                ex = s.exchange if s.exchange is not None else ""
                sym = s.symbol if s.symbol is not None else ""
                by_key.setdefault(ex, {}).setdefault(sym, []).append(s)
        self.plain_subs = tuple(plain)
        self.plain = tuple(s.handler for s in plain)
        self.single = self.plain[0] if len(self.plain) == 1 else None
        self.by_key = {ex: {sym: tuple(v) for sym, v in d.items()} for ex, d in by_key.items()}
        self.filtered = len(self.by_key) > 0


@final
class StreamBuffer:
    """The bounded buffer behind ``TypedEventBus.stream()``.

    ``push`` is the bus handler (runs on the publisher's task); ``pop`` runs on
    the consumer's task. ``EventStream`` (interpreted, async) wraps it.
    """

    maxsize: Final[int]
    policy: Final[int]
    policy_name: Final[str]
    tick_type: Final[type]
    dropped: int
    conflated: int
    delivered: int
    closed: bool
    wake: Callable[[], object] | None
    over: bool

    def __init__(self, bus: "TypedEventBus", tick_type: type, maxsize: int, policy: str) -> None:
        if maxsize < 1:
            raise ValueError(f"stream maxsize must be >= 1, got {maxsize}")
        if policy not in _POLICIES:
            raise ValueError(
                f"unknown overflow policy {policy!r}: use 'drop_oldest', 'conflate' or 'block'"
            )
        self._bus = bus
        self.tick_type = tick_type
        self.maxsize = maxsize
        self.policy = _POLICIES[policy]
        self.policy_name = policy
        self._items: deque[object] = deque()
        self._latest: dict[tuple[str, str], object] = {}
        self.dropped = 0
        self.conflated = 0
        self.delivered = 0
        self.closed = False
        self.wake = None
        self.over = False

    def push(self, tick: object) -> None:
        if self.closed:
            return
        policy = self.policy
        if policy == OVERFLOW_DROP_OLDEST:
            items = self._items
            if len(items) >= self.maxsize:
                items.popleft()
                self.dropped += 1
            items.append(tick)
        elif policy == OVERFLOW_CONFLATE:
            key = (str(getattr(tick, "exchange", "")), str(getattr(tick, "symbol", "")))
            latest = self._latest
            if key in latest:
                latest[key] = tick  # keeps its place in the queue, newest value
                self.conflated += 1
            else:
                if len(latest) >= self.maxsize:
                    oldest = next(iter(latest))
                    del latest[oldest]
                    self.dropped += 1
                latest[key] = tick
        else:
            self._items.append(tick)
            if not self.over and len(self._items) > self.maxsize:
                self.over = True
                self._bus._over_capacity += 1
        wake = self.wake
        if wake is not None:
            self.wake = None
            wake()

    def pop(self) -> object | None:
        """The next tick, or None when empty."""
        if self.policy == OVERFLOW_CONFLATE:
            latest = self._latest
            if not latest:
                return None
            key = next(iter(latest))
            tick = latest.pop(key)
        else:
            items = self._items
            if not items:
                return None
            tick = items.popleft()
            if self.over and len(items) <= self.maxsize:
                self.over = False
                self._bus._capacity_freed()
        self.delivered += 1
        return tick

    def __len__(self) -> int:
        if self.policy == OVERFLOW_CONFLATE:
            return len(self._latest)
        return len(self._items)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.over:
            self.over = False
            self._bus._capacity_freed()
        wake = self.wake
        if wake is not None:
            self.wake = None
            wake()


@final
class TypedEventBus:
    """Routes each published tick to the handlers subscribed to its type.

    Filters: ``exchange`` and/or ``symbol`` restrict a subscription; ``None``
    matches everything. Synchronous and single-threaded: publish from the
    event loop's thread (every hub reader does).
    """

    handler_errors: int
    published: int

    def __init__(self) -> None:
        self._trade = _Route()
        self._quote = _Route()
        self._book = _Route()
        self._snapshot = _Route()
        self._clear = _Route()
        self._gap = _Route()
        self._state = _Route()
        self._routes: dict[type, _Route] = {
            Trade: self._trade,
            Quote: self._quote,
            BookUpdate: self._book,
            BookSnapshot: self._snapshot,
            BookClear: self._clear,
            Gap: self._gap,
            ConnectionStateChanged: self._state,
        }
        self.handler_errors = 0
        self.published = 0
        self._streams: list[StreamBuffer] = []
        self._over_capacity = 0
        self._capacity_waiters: list[Callable[[], object]] = []

    # -- subscribing -------------------------------------------------------
    def subscribe(
        self,
        tick_type: type[E],
        handler: Callable[[E], object],
        exchange: str | None = None,
        symbol: str | None = None,
    ) -> Subscription:
        """Call ``handler(tick)`` for every ``tick_type`` published (filtered).

        Typed: ``subscribe(Quote, on_trade)`` with ``on_trade(t: Trade)`` is a type error.
        """
        route = self._routes.get(tick_type)
        if route is None:
            names = ", ".join(t.__name__ for t in TICK_TYPES)
            raise TypeError(f"cannot subscribe to {tick_type!r}: the bus carries {names}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = Subscription(
            self,
            tick_type,
            handler,
            None if exchange is None else str(exchange),
            symbol,
        )
        route.subs.append(sub)
        route.rebuild()
        return sub

    def _remove(self, sub: Subscription) -> None:
        route = self._routes[sub.tick_type]
        if sub in route.subs:
            route.subs.remove(sub)
            route.rebuild()

    def subscriber_count(self, tick_type: type) -> int:
        route = self._routes.get(tick_type)
        return 0 if route is None else len(route.subs)

    def stream_buffer(
        self,
        tick_type: type[E],
        maxsize: int,
        overflow: Overflow,
        exchange: str | None = None,
        symbol: str | None = None,
    ) -> tuple[StreamBuffer, Subscription]:
        """The buffer and subscription behind ``stream()`` (see ``hub_core.streams``)."""
        buf = StreamBuffer(self, tick_type, maxsize, overflow)
        sub = self.subscribe(tick_type, buf.push, exchange, symbol)
        self._streams.append(buf)
        return buf, sub

    def stream(
        self,
        tick_type: type[E],
        maxsize: int = 10_000,
        overflow: Overflow = "drop_oldest",
        exchange: str | None = None,
        symbol: str | None = None,
    ) -> "EventStream[E]":
        """An async iterator of ``tick_type`` for a consumer on another task.

        Bounded to ``maxsize``; when full, ``overflow`` decides: ``"drop_oldest"``
        (count and drop the oldest), ``"conflate"`` (keep only the newest tick
        per exchange and symbol) or ``"block"`` (drop nothing; the hub's
        readers pause until the consumer catches up). Returns an
        ``EventStream[tick_type]``: ``async for t in bus.stream(Trade)`` types ``t`` as
        ``Trade``.
        """
        from hub_core.streams import EventStream  # interpreted: it awaits

        buf, sub = self.stream_buffer(tick_type, maxsize, overflow, exchange, symbol)
        return EventStream(self, buf, sub)

    def _forget_stream(self, buf: StreamBuffer) -> None:
        if buf in self._streams:
            self._streams.remove(buf)

    def streams(self) -> list[StreamBuffer]:
        """Open stream buffers (for stats: depth, dropped, conflated)."""
        return list(self._streams)

    # -- back-pressure for "block" streams -----------------------------------
    @property
    def backpressured(self) -> bool:
        """True while a ``"block"`` stream holds more than its ``maxsize``."""
        return self._over_capacity > 0

    def add_capacity_waiter(self, wake: Callable[[], object]) -> None:
        self._capacity_waiters.append(wake)

    def _capacity_freed(self) -> None:
        self._over_capacity -= 1
        if self._over_capacity <= 0:
            self._over_capacity = 0
            waiters = self._capacity_waiters
            self._capacity_waiters = []
            for w in waiters:
                w()

    # -- publishing ----------------------------------------------------------
    def publish(self, tick: object) -> None:
        """Deliver ``tick`` to every matching subscriber, synchronously."""
        if isinstance(tick, Trade):
            self._dispatch(self._trade, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, Quote):
            self._dispatch(self._quote, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, BookUpdate):
            self._dispatch(self._book, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, BookSnapshot):
            self._dispatch(self._snapshot, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, BookClear):
            self._dispatch(self._clear, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, Gap):
            self._dispatch(self._gap, tick, tick.exchange, tick.symbol)
        elif isinstance(tick, ConnectionStateChanged):
            self._dispatch(self._state, tick, tick.exchange, "")
        else:
            raise TypeError(f"cannot publish {type(tick).__name__}: not a hub tick type")

    def publish_trade(self, tick: Trade) -> None:
        self._dispatch(self._trade, tick, tick.exchange, tick.symbol)

    def publish_quote(self, tick: Quote) -> None:
        self._dispatch(self._quote, tick, tick.exchange, tick.symbol)

    def publish_book_update(self, tick: BookUpdate) -> None:
        self._dispatch(self._book, tick, tick.exchange, tick.symbol)

    def publish_snapshot(self, tick: BookSnapshot) -> None:
        self._dispatch(self._snapshot, tick, tick.exchange, tick.symbol)

    def publish_book_clear(self, tick: BookClear) -> None:
        self._dispatch(self._clear, tick, tick.exchange, tick.symbol)

    def _dispatch(self, route: _Route, tick: object, exchange: str, symbol: str) -> None:
        self.published += 1
        single = route.single
        if single is not None:
            try:
                single(tick)
            except Exception as exc:  # isolate: one bad handler never starves others
                self._failed(route.plain_subs[0], tick, exc)
        else:
            plain = route.plain
            if plain:
                for i, h in enumerate(plain):
                    try:
                        h(tick)
                    except Exception as exc:
                        self._failed(route.plain_subs[i], tick, exc)
        if route.filtered:
            self._dispatch_filtered(route, tick, exchange, symbol)

    def _dispatch_filtered(self, route: _Route, tick: object, exchange: str, symbol: str) -> None:
        # keys: (exchange, symbol), (exchange, "") = any symbol, ("", symbol) = any exchange
        by_key = route.by_key
        d = by_key.get(exchange)
        if d is not None:
            self._deliver(d.get(symbol), tick)
            if symbol != "":
                self._deliver(d.get(""), tick)
        if exchange != "" and symbol != "":
            d = by_key.get("")
            if d is not None:
                self._deliver(d.get(symbol), tick)

    def _deliver(self, subs: tuple[Subscription, ...] | None, tick: object) -> None:
        if subs is None:
            return
        for s in subs:
            try:
                s.handler(tick)
            except Exception as exc:
                self._failed(s, tick, exc)

    def _failed(self, sub: Subscription, tick: object, exc: Exception) -> None:
        self.handler_errors += 1
        sub.errors += 1
        n = sub.errors
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.error(
                "subscriber %r raised on %s (error %d for this subscriber; "
                "the tick still reached every other subscriber)",
                sub.handler,
                type(tick).__name__,
                n,
                exc_info=exc,
            )
