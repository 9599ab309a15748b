"""``OrderBook`` and ``MboBook`` against plain dict models, and the hub's read-only books
(``ExchangeHub.book``) fed through a real bus."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    HubError,
    MboBook,
    OrderBook,
    TypedEventBus,
)
from hub_core.book import BookKeeper

P = 1_000_000_000


# -- the price-level model --------------------------------------------------------------------
class LevelModel:
    """What a book is: a dict of levels per side."""

    def __init__(self) -> None:
        self.side: dict[str, dict[int, int]] = {"B": {}, "A": {}}

    def apply(self, side: str, price: int, size: int) -> str:
        levels = self.side[side]
        old = levels.get(price)
        if size == 0:
            if old is None:
                return ""
            del levels[price]
            return "C"
        levels[price] = size
        if old is None:
            return "A"
        return "" if old == size else "M"

    def best(self, side: str) -> tuple[int, int] | None:
        levels = self.side[side]
        if not levels:
            return None
        p = max(levels) if side == "B" else min(levels)
        return (p, levels[p])

    def top(self, side: str, n: int) -> tuple[tuple[int, int], ...]:
        levels = self.side[side]
        return tuple(sorted(levels.items(), key=lambda kv: -kv[0] if side == "B" else kv[0])[:n])

    def consistent(self) -> bool:
        if any(s < 0 for lv in self.side.values() for s in lv.values()):
            return False
        bid, ask = self.best("B"), self.best("A")
        return bid is None or ask is None or bid[0] < ask[0]


prices = st.integers(-20, 20).map(lambda t: t * P // 4)
sizes = st.integers(0, 6).map(lambda n: n * P)
sides = st.sampled_from(["B", "A"])
level_ops = st.one_of(
    st.tuples(st.just("apply"), sides, prices, sizes),
    st.tuples(st.just("apply"), sides, prices, sizes),
    st.tuples(st.just("apply"), sides, prices, sizes),
    st.tuples(st.just("clear")),
    st.tuples(st.just("trim"), sides, st.integers(0, 5)),
    st.tuples(
        st.just("replace"),
        st.lists(st.tuples(prices, sizes), max_size=8),
        st.lists(st.tuples(prices, sizes), max_size=8),
    ),
)


def same(book: OrderBook, model: LevelModel, probe: int) -> None:
    assert book.best_bid() == model.best("B")
    assert book.best_ask() == model.best("A")
    for n in (0, 1, 3, 50):
        assert book.top(n) == (model.top("B", n), model.top("A", n))
    assert book.snapshot() == (model.top("B", 10**6), model.top("A", 10**6))
    assert book.levels() == book.snapshot() and book.levels(2) == book.top(2)
    for side in ("B", "A"):
        assert book.size_at(side, probe) == model.side[side].get(probe, 0)
        assert book.count(side) == len(model.side[side])
    assert book.bids == model.side["B"] and book.asks == model.side["A"]
    assert len(book) == len(model.side["B"]) + len(model.side["A"])


@settings(max_examples=300)
@given(st.lists(level_ops, max_size=60), prices)
def test_random_sequences_match_a_dict_of_levels(ops: list[tuple[object, ...]], probe: int) -> None:
    book = OrderBook("x", "SYM")
    model = LevelModel()
    for op in ops:
        if op[0] == "apply":
            _, side, price, size = op
            assert isinstance(side, str) and isinstance(price, int) and isinstance(size, int)
            assert book.apply(side, price, size) == model.apply(side, price, size)
        elif op[0] == "clear":
            book.clear()
            model = LevelModel()
        elif op[0] == "trim":
            _, side, depth = op
            assert isinstance(side, str) and isinstance(depth, int)
            keep = dict(model.top(side, depth))
            gone = sorted(set(model.side[side]) - set(keep), reverse=side == "A")
            assert book.trim(side, depth) == gone  # worst first
            model.side[side] = keep
        else:
            _, bids, asks = op
            assert isinstance(bids, list) and isinstance(asks, list)
            book.replace(tuple(bids), tuple(asks))
            model = LevelModel()
            for side, levels in (("B", bids), ("A", asks)):
                for price, size in levels:
                    model.apply(side, price, size)
        same(book, model, probe)
        assert (book.check() is None) == model.consistent()


@given(st.lists(st.tuples(sides, prices, st.integers(-3, 6).map(lambda n: n * P)), max_size=40))
def test_check_finds_crossed_locked_and_negative_books(
    ops: list[tuple[str, int, int]],
) -> None:
    book = OrderBook()
    model = LevelModel()
    for side, price, size in ops:
        book.apply(side, price, size)
        model.apply(side, price, size)
        assert (book.check() is None) == model.consistent()


def test_check_names_what_is_wrong() -> None:
    book = OrderBook()
    book.apply("B", 100 * P, 1 * P)
    book.apply("A", 101 * P, 1 * P)
    assert book.check() is None
    book.apply("A", 100 * P, 2 * P)
    assert book.check() == "locked book: best bid = best ask = 100"
    book.apply("B", 102 * P, 1 * P)
    assert book.check() == "crossed book: best bid 102 above best ask 100"
    book.clear()
    book.apply("A", 5 * P, -P // 2)
    assert book.check() == "negative size -0.5 at ask 5"
    book.apply("A", 5 * P, P)
    assert book.check() is None


def test_apply_keeps_the_time_and_sequence_given() -> None:
    book = OrderBook()
    assert book.apply("B", P, P, 1_000, 7) == "A"
    assert (book.last_update_ns, book.last_sequence) == (1_000, 7)
    book.apply("B", P, 2 * P)  # no time, no sequence: unchanged
    assert (book.last_update_ns, book.last_sequence) == (1_000, 7)
    book.stamp(2_000, 8)
    assert (book.last_update_ns, book.last_sequence) == (2_000, 8)
    with pytest.raises(ValueError, match="side"):
        book.apply("N", P, P)


def test_a_thousand_level_book_keeps_its_order() -> None:
    book = OrderBook()
    bids = tuple((50_000 * P - i * P // 100, (i % 7 + 1) * P) for i in range(1, 1001))
    asks = tuple((50_000 * P + i * P // 100, (i % 5 + 1) * P) for i in range(1, 1001))
    book.replace(bids[::-1], asks[::-1])  # any order in, best first out
    assert book.snapshot() == (bids, asks)
    assert book.best_bid() == bids[0] and book.best_ask() == asks[0]
    book.apply("B", bids[500][0], 0)
    assert len(book) == 1999 and book.top(600)[0] == bids[:500] + bids[501:601]


# -- the order-by-order model -----------------------------------------------------------------
class OrderModel:
    """What an MBO book is: orders by id; levels are their sums."""

    def __init__(self) -> None:
        self.orders: dict[int, tuple[str, int, int]] = {}
        self.errors = 0

    def add(self, oid: int, side: str, price: int, size: int) -> bool:
        ok = oid not in self.orders
        self.errors += not ok
        self.orders[oid] = (side, price, size)
        return ok

    def modify(self, oid: int, side: str, price: int, size: int) -> bool:
        if size <= 0:
            return self.reduce(oid, 0)
        if oid not in self.orders:
            return self.add(oid, side, price, size)
        if self.orders[oid][0] != side:
            self.errors += 1
            return False
        self.orders[oid] = (side, price, size)
        return True

    def reduce(self, oid: int, size: int) -> bool:
        if oid not in self.orders:
            self.errors += 1
            return False
        side, price, left = self.orders[oid]
        if size <= 0 or size >= left:
            del self.orders[oid]
            if size > left:
                self.errors += 1
                return False
            return True
        self.orders[oid] = (side, price, left - size)
        return True

    def levels(self, side: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for s, p, z in self.orders.values():
            if s == side:
                out[p] = out.get(p, 0) + z
        return out

    def count(self, side: str, price: int) -> int:
        return sum(1 for s, p, _ in self.orders.values() if s == side and p == price)


ids = st.integers(1, 12)
positive = st.integers(1, 5).map(lambda n: n * P)
mbo_ops = st.one_of(
    st.tuples(st.just("add"), ids, sides, prices, positive),
    st.tuples(st.just("add"), ids, sides, prices, positive),
    st.tuples(st.just("modify"), ids, sides, prices, st.integers(0, 5).map(lambda n: n * P)),
    st.tuples(st.just("cancel"), ids, st.integers(0, 6).map(lambda n: n * P)),
    st.tuples(st.just("fill"), ids, positive),
    st.tuples(st.just("clear")),
    st.tuples(st.just("apply"), st.sampled_from("AMCFTRN"), ids, sides, prices, positive),
)


@settings(max_examples=300)
@given(st.lists(mbo_ops, max_size=60), prices)
def test_mbo_events_match_a_dict_of_orders(ops: list[tuple[Any, ...]], probe: int) -> None:
    book = MboBook("x", "SYM")
    model = OrderModel()
    for op in ops:
        kind = op[0]
        if kind == "add":
            _, oid, side, price, size = op
            assert book.add(oid, side, price, size) == model.add(oid, side, price, size)
        elif kind == "modify":
            _, oid, side, price, size = op
            assert book.modify(oid, side, price, size) == model.modify(oid, side, price, size)
        elif kind == "cancel":
            _, oid, size = op
            assert book.cancel(oid, size) == model.reduce(oid, size)
        elif kind == "fill":
            _, oid, size = op
            assert book.fill(oid, size) == model.reduce(oid, size)
        elif kind == "clear":
            book.clear()
            model = OrderModel()
        else:  # Databento's letters: T, F and N leave the book alone; C takes `size` off
            _, action, oid, side, price, size = op
            got = book.apply(action, side, price, size, oid)
            if action == "A":
                assert got == model.add(oid, side, price, size)
            elif action == "M":
                assert got == model.modify(oid, side, price, size)
            elif action == "C":
                assert got == model.reduce(oid, size)
            elif action == "R":
                model = OrderModel()
            else:
                assert got
        assert len(book) == len(model.orders)
        assert book.errors == model.errors
        for side in ("B", "A"):
            levels = model.levels(side)
            best = (max if side == "B" else min)(levels, default=None)
            want = None if best is None else (best, levels[best])
            assert (book.best_bid() if side == "B" else book.best_ask()) == want
            ordered = tuple(sorted(levels.items(), key=lambda kv: -kv[0] if side == "B" else kv[0]))
            assert book.top(3)[0 if side == "B" else 1] == ordered[:3]
            assert book.snapshot()[0 if side == "B" else 1] == ordered
            assert book.size_at(side, probe) == levels.get(probe, 0)
            assert book.order_count(side, probe) == model.count(side, probe)
        for oid, order in model.orders.items():
            assert book.order(oid) == order
        consistent = model.errors == 0 and LevelModelOf(model).consistent()
        assert (book.check() is None) == consistent


def LevelModelOf(model: OrderModel) -> LevelModel:
    out = LevelModel()
    out.side = {"B": model.levels("B"), "A": model.levels("A")}
    return out


def test_mbo_errors_are_named_and_a_clear_forgets_them() -> None:
    book = MboBook()
    assert book.add(1, "B", 100 * P, 5 * P)
    assert not book.cancel(2, P)
    assert book.check() == ("1 MBO event(s) did not fit the book (last: cancel of unknown order 2)")
    assert not book.add(3, "N", 100 * P, P)
    assert book.errors == 2
    book.clear()
    assert book.errors == 0 and book.check() is None and len(book) == 0
    assert book.levels.read_only  # the orders decide the levels
    with pytest.raises(HubError, match="read-only"):
        book.levels.apply("B", P, P)


def test_an_mbo_update_tick_applies_by_its_fields() -> None:
    book = MboBook("x", "ES")
    add = BookUpdate("x", "ES", "A", 10 * P, 3 * P, 1, 2, "A", order_id=77, sequence=4)
    assert book.apply_update(add)
    assert book.best_ask() == (10 * P, 3 * P) and book.order_count("A", 10 * P) == 1
    assert book.levels.last_sequence == 4


# -- the hub's books --------------------------------------------------------------------------
def hub_and_bus() -> tuple[ExchangeHub, TypedEventBus]:
    bus = TypedEventBus()
    return ExchangeHub(bus, registry=ExchangeRegistry()), bus


def update(side: str, price: int, size: int, ts: int, seq: int = 0, **kw: Any) -> BookUpdate:
    return BookUpdate("ex", "SYM", side, price, size, ts, ts, sequence=seq, **kw)


def test_the_hubs_book_follows_snapshots_updates_and_clears() -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    assert hub.book("ex", "SYM") is book
    assert book.read_only and book.stale and book.reason == "no snapshot seen yet"
    bus.publish(BookSnapshot("ex", "SYM", ((99 * P, P), (98 * P, P)), ((101 * P, 2 * P),), 5, 5, 9))
    assert not book.stale and book.valid and book.reason == ""
    assert book.best_bid() == (99 * P, P) and (book.last_update_ns, book.last_sequence) == (5, 9)
    bus.publish(update("B", 100 * P, 3 * P, 6, 10))
    bus.publish(update("B", 98 * P, 0, 6, 10, action="C"))
    bus.publish(update("A", 101 * P, 7 * P, 6, 10, action="T"))  # a trade: no level
    # other symbols and exchanges are not this book's
    bus.publish(BookUpdate("ex", "OTHER", "B", 500 * P, P, 6, 6))
    bus.publish(BookUpdate("other", "SYM", "B", 500 * P, P, 6, 6))
    assert book.snapshot() == (((100 * P, 3 * P), (99 * P, P)), ((101 * P, 2 * P),))
    # a clear empties it and starts it anew
    bus.publish(BookClear("ex", "SYM", 7, 7))
    assert len(book) == 0 and book.valid and not book.stale
    with pytest.raises(HubError, match="read-only"):
        book.apply("B", P, P)
    with pytest.raises(HubError, match="read-only"):
        book.clear()


def test_a_crossed_message_marks_the_book_invalid_until_the_next_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    bus.publish(BookSnapshot("ex", "SYM", ((99 * P, P),), ((101 * P, P),), 1, 1, 1))
    # one message (same time and sequence) crosses on its way and is whole again at its end
    bus.publish(update("B", 102 * P, P, 2, 2))
    assert not book.valid and book.reason.startswith("crossed book")  # seen mid-message
    bus.publish(update("A", 101 * P, 0, 2, 2))
    bus.publish(update("A", 103 * P, P, 2, 2))
    bus.publish(update("B", 99 * P, 2 * P, 3, 3))  # the next message: the last one is checked
    assert book.valid and book.invalidations == 0
    # a message that ends crossed is caught when the next one begins
    bus.publish(update("A", 100 * P, P, 4, 4))
    with caplog.at_level(logging.WARNING, logger="hub_core.book"):
        bus.publish(update("B", 98 * P, P, 5, 5))
    assert not book.valid and book.invalidations == 1
    assert book.reason == "crossed book: best bid 102 above best ask 100"
    assert "invalid" in caplog.text and "crossed book" in caplog.text
    bus.publish(update("A", 100 * P, 0, 6, 6))  # fixing it by hand does not make it trusted
    bus.publish(update("B", 1 * P, P, 7, 7))
    assert not book.valid
    bus.publish(BookSnapshot("ex", "SYM", ((99 * P, P),), ((101 * P, P),), 8, 8, 8))
    assert book.valid and book.reason == "" and book.invalidations == 1


def test_a_crossed_snapshot_is_invalid_at_once() -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    bus.publish(BookSnapshot("ex", "SYM", ((101 * P, P),), ((101 * P, P),), 1, 1))
    assert not book.valid and book.reason.startswith("locked book")
    bus.publish(BookSnapshot("ex", "SYM", ((99 * P, P),), ((101 * P, -P),), 1, 1))
    assert not book.valid and book.reason == "negative size -1 at ask 101"


def test_a_gap_makes_the_book_stale_until_the_next_snapshot_or_clear() -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    snap = BookSnapshot("ex", "SYM", ((99 * P, P),), ((101 * P, P),), 1, 1)
    bus.publish(snap)
    bus.publish(Gap("ex", "OTHER", 1, 2, "sequence gap"))  # another symbol's
    bus.publish(Gap("other", "", 1, 2, "reconnect"))  # another exchange's
    assert not book.stale
    bus.publish(Gap("ex", "SYM", 1, 2, "checksum mismatch"))
    assert book.stale and book.valid and book.reason == "gap: checksum mismatch"
    bus.publish(snap)
    assert not book.stale
    bus.publish(Gap("ex", "", 1, 2, "link dropped"))  # the whole connection
    assert book.stale and book.reason == "gap: link dropped"
    bus.publish(BookClear("ex", "SYM", 3, 3))
    assert not book.stale and len(book) == 0


def test_order_level_updates_are_aggregated_into_levels() -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    bus.publish(BookClear("ex", "SYM", 1, 1))
    bus.publish(update("B", 99 * P, 2 * P, 2, 1, action="A", order_id=1))
    bus.publish(update("B", 99 * P, 3 * P, 2, 2, action="A", order_id=2))
    bus.publish(update("A", 101 * P, 1 * P, 2, 3, action="A", order_id=3))
    bus.publish(update("B", 99 * P, 1 * P, 3, 4, action="C", order_id=1))  # partial cancel
    bus.publish(update("A", 101 * P, 1 * P, 3, 5, action="F", order_id=3))  # no change
    assert book.snapshot() == (((99 * P, 4 * P),), ((101 * P, P),))
    bus.publish(update("A", 101 * P, 1 * P, 4, 6, action="C", order_id=99))  # unknown order
    bus.publish(update("A", 101 * P, 1 * P, 5, 7, action="C", order_id=3))
    assert not book.valid and "unknown order 99" in book.reason
    bus.publish(BookClear("ex", "SYM", 6, 8))
    assert book.valid and len(book) == 0


def test_a_dropped_book_is_no_longer_kept() -> None:
    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    hub.drop_book("ex", "SYM")
    hub.drop_book("ex", "SYM")  # idempotent
    bus.publish(BookSnapshot("ex", "SYM", ((99 * P, P),), (), 1, 1))
    assert len(book) == 0 and bus.subscriber_count(BookSnapshot) == 0
    assert hub.book("ex", "SYM") is not book


def test_a_keeper_is_a_plain_subscriber() -> None:
    keeper = BookKeeper("ex", "SYM")
    keeper.on_snapshot(BookSnapshot("ex", "SYM", ((99 * P, P),), ((101 * P, P),), 1, 1))
    keeper.on_update(update("A", 98 * P, P, 2))
    keeper.verify()
    assert not keeper.book.valid and keeper.book.invalidations == 1


def test_a_plugins_book_clear_empties_the_hubs_book() -> None:
    from hub_core.processor import EventProcessor

    hub, bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    sink = EventProcessor(bus).sink_for("ex")
    seen: list[object] = []
    bus.subscribe(BookUpdate, seen.append)
    bus.subscribe(BookClear, seen.append)
    sink.book_snapshot("SYM", ((99 * P, P),), ((101 * P, P),), 1, 1)
    sink.book_clear("SYM", 2, 2, 5)
    assert len(book) == 0 and book.valid and not book.stale
    assert seen == [BookClear("ex", "SYM", 2, 2, 5)]  # a BookClear, never a BookUpdate
    assert book.last_sequence == 5


# -- sink.book_levels_text: a depth message's text levels into a plugin's book ----------------
def _text(units: int) -> str:
    """``units`` hundredths as decimal text (``12345`` -> ``"123.45"``)."""
    return f"{units // 100}.{units % 100:02d}"


levels_text = st.lists(
    st.tuples(st.integers(1, 40), st.integers(0, 3)), max_size=12
)  # (price in hundredths, size in units; 0 removes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(levels_text, levels_text), min_size=1, max_size=8))
def test_book_levels_text_applies_and_publishes_what_the_model_says(
    messages: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]],
) -> None:
    from hub_core.processor import EventProcessor

    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    sink = EventProcessor(bus).sink_for("ex")
    book = OrderBook()
    model = LevelModel()
    for n, (bids, asks) in enumerate(messages, 1):
        expected = []
        for side, levels in (("B", bids), ("A", asks)):
            for price, size in levels:
                action = model.apply(side, price * P // 100, size * P)
                if action:
                    expected.append((side, price * P // 100, size * P, action))
        before = len(seen)
        published = sink.book_levels_text(
            "SYM",
            book,
            [(_text(p), str(q)) for p, q in bids],
            [(_text(p), str(q)) for p, q in asks],
            1000 + n,
            2000 + n,
            n,
        )
        got = [(u.side, u.price, u.size, u.action) for u in seen[before:]]
        assert got == expected and published == len(expected)
        assert all((u.symbol, u.ts_event, u.ts_recv, u.sequence) == ("SYM", 1000 + n, 2000 + n, n)
                   for u in seen[before:])  # fmt: skip
        assert (book.last_update_ns, book.last_sequence) == (1000 + n, n)
        assert book.bids == model.side["B"] and book.asks == model.side["A"]
    assert sink.book_updates == len(seen)


def test_book_levels_text_changes_nothing_when_a_number_is_unreadable() -> None:
    from hub_core.errors import MalformedNumber
    from hub_core.processor import EventProcessor

    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    sink = EventProcessor(bus).sink_for("ex")
    book = OrderBook()
    book.replace(((99 * P, P),), ((101 * P, P),), 5, 7)
    with pytest.raises(MalformedNumber):
        # the bad number is the last one: the bids before it must not have been applied
        sink.book_levels_text("SYM", book, [("98", "1"), ("99", "0")], [("1e", "1")], 9, 9, 8)
    assert not seen and sink.book_updates == 0
    assert book.snapshot() == (((99 * P, P),), ((101 * P, P),))
    assert (book.last_update_ns, book.last_sequence) == (5, 7)


def test_book_levels_text_refuses_the_hubs_read_only_book() -> None:
    from hub_core.processor import EventProcessor

    hub, _bus = hub_and_bus()
    book = hub.book("ex", "SYM")
    sink = EventProcessor(TypedEventBus()).sink_for("ex")
    with pytest.raises(HubError, match="read-only"):
        sink.book_levels_text("SYM", book, [("99", "1")], [], 1, 1, 1)
    assert sink.book_updates == 0


def test_book_levels_text_accounts_like_one_tick_at_a_time() -> None:
    """One depth message is counted, sampled and remembered (``last_by_symbol``) as the
    same updates published one by one would be."""
    import time

    from hub_core.processor import EventProcessor

    bids = [(_text(1000 - k), str(k % 3 + 1)) for k in range(40)]
    asks = [(_text(1001 + k), str(k % 4 + 1)) for k in range(50)]
    by_message = EventProcessor(TypedEventBus()).sink_for("ex")
    one_by_one = EventProcessor(TypedEventBus()).sink_for("ex")
    ts_recv = time.time_ns()
    for n in range(1, 4):  # 90 levels a message: the count passes multiples of 64
        book = OrderBook()
        by_message.book_levels_text("SYM", book, bids, asks, n, ts_recv, n)
        for side, levels in (("B", bids), ("A", asks)):
            for p, q in levels:
                one_by_one.book_update_text("SYM", side, p, q, n, ts_recv, "A", n)
    for sink in (by_message, one_by_one):
        assert (sink.book_updates, sink.data_count, sink.last_recv_ns) == (270, 270, ts_recv)
        assert sink.latency.count == 270 // 64
    last = by_message.last_by_symbol["SYM"]
    assert isinstance(last, BookUpdate) and (last.side, last.price) == ("A", 1050 * P // 100)
    assert last == one_by_one.last_by_symbol["SYM"]


def test_book_levels_text_held_while_the_sink_holds() -> None:
    """While a session subscribes (``hold``), a depth message's updates wait, in order."""
    from hub_core.processor import EventProcessor

    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    sink = EventProcessor(bus).sink_for("ex")
    book = OrderBook()
    sink.hold()
    assert sink.book_levels_text("SYM", book, [("99", "1"), ("98", "2")], [("101", "3")], 5, 6, 7)
    assert not seen and len(book) == 3  # the plugin's book is current; the ticks wait
    sink.release()
    assert [(u.side, u.price, u.size, u.action) for u in seen] == [
        ("B", 99 * P, P, "A"),
        ("B", 98 * P, 2 * P, "A"),
        ("A", 101 * P, 3 * P, "A"),
    ]
    assert sink.book_updates == 3 and (book.last_update_ns, book.last_sequence) == (5, 7)


def test_book_level_sets_the_plugins_book_and_publishes_one_update() -> None:
    """``sink.book_level``: the book's action is published (nothing when it is ""), unless
    the venue states its own action, which is published whatever the book says."""
    from hub_core.processor import EventProcessor

    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    sink = EventProcessor(bus).sink_for("ex")
    book = OrderBook()
    assert sink.book_level("SYM", book, "B", 99 * P, P, 10, 11) == "A"
    assert sink.book_level("SYM", book, "B", 99 * P, P, 12, 13) == ""  # as it was
    assert sink.book_level("SYM", book, "A", 101 * P, 2 * P, 14, 15, "M", 9) == "A"
    assert sink.book_level("SYM", book, "A", 101 * P, 2 * P, 16, 17, "M", 10) == ""
    assert sink.book_level("SYM", book, "B", 99 * P, 0, 18, 19, "", 11) == "C"
    assert [(u.side, u.price, u.size, u.action, u.ts_event, u.sequence) for u in seen] == [
        ("B", 99 * P, P, "A", 10, 0),
        ("A", 101 * P, 2 * P, "M", 14, 9),
        ("A", 101 * P, 2 * P, "M", 16, 10),
        ("B", 99 * P, 0, "C", 18, 11),
    ]
    assert book.snapshot() == ((), ((101 * P, 2 * P),))
    assert (book.last_update_ns, book.last_sequence) == (18, 11)
    assert sink.book_updates == 4
    hub, _bus = hub_and_bus()
    with pytest.raises(HubError, match="read-only"):
        sink.book_level("SYM", hub.book("ex", "SYM"), "B", 99 * P, P, 1, 1)
    assert sink.book_updates == 4
