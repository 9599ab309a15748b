"""``BookClear``: the typed "every level of this symbol is gone" event, end to end in the
core: the tick, its bus route, the sink that publishes it and counts it, the DBN decoder
and encoder, the JSON lines, the hub's book, the coverage rule and the diverted sink."""

from __future__ import annotations

import io
import json
import re

import anyio
import pytest

import hub_core
from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    TypedEventBus,
    plugin as kit,
)
from hub_core.bus import TICK_TYPES
from hub_core.cli.jsonl import JsonlWriter, event_to_json
from hub_core.dbn import UNDEF_PRICE, encode_book_clear, encode_book_update, encode_symbol_mapping
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import DATA_TYPES, blind_windows

P = 1_000_000_000


class Seen:
    """A real bus and sink; every book event published on the bus, in order."""

    def __init__(self, exchange: str = "ex") -> None:
        self.bus = TypedEventBus()
        self.processor = EventProcessor(self.bus)
        self.sink: ConnectionSink = self.processor.sink_for(exchange)
        self.events: list[object] = []
        for kind in (BookUpdate, BookSnapshot, BookClear, Gap):
            self.bus.subscribe(kind, self.events.append)

    @property
    def clears(self) -> list[BookClear]:
        return [e for e in self.events if isinstance(e, BookClear)]

    @property
    def updates(self) -> list[BookUpdate]:
        return [e for e in self.events if isinstance(e, BookUpdate)]


# -- the tick ---------------------------------------------------------------------------------
def test_a_clear_has_its_fields_compares_by_value_and_prints_them() -> None:
    c = BookClear(exchange="nt", symbol="ES", ts_event=1, ts_recv=2, sequence=3, reason="reset")
    assert (c.exchange, c.symbol, c.ts_event, c.ts_recv, c.sequence, c.reason) == (
        "nt",
        "ES",
        1,
        2,
        3,
        "reset",
    )
    assert BookClear("nt", "ES", 1, 2) == BookClear("nt", "ES", 1, 2, 0, "")
    assert c != BookClear("nt", "ES", 1, 2, 3) and c != BookClear("nt", "NQ", 1, 2, 3, "reset")
    assert c != object() and hash(c) == hash(BookClear("nt", "ES", 1, 2, 3, "reset"))
    assert c.as_dict() == {
        "exchange": "nt",
        "symbol": "ES",
        "ts_event": 1,
        "ts_recv": 2,
        "sequence": 3,
        "reason": "reset",
    }
    assert repr(c) == (
        "BookClear(exchange='nt', symbol='ES', ts_event=1, ts_recv=2, sequence=3, reason='reset')"
    )
    # a clear carries no price, so no sentinel can leak; a BookUpdate has no clear flag
    assert not hasattr(c, "price") and not hasattr(BookUpdate, "is_clear")


@pytest.mark.skipif(not hub_core.COMPILED, reason="immutability is enforced by the compiled build")
def test_a_clear_is_immutable_once_built() -> None:
    c = BookClear("x", "S", 1, 1)
    with pytest.raises(AttributeError):
        c.symbol = "T"  # type: ignore[misc]


def test_every_facade_names_the_same_class() -> None:
    from hub_core import simulation, ticks

    assert "BookClear" in hub_core.__all__ and "BookClear" in kit.__all__
    assert hub_core.BookClear is kit.BookClear is simulation.BookClear is ticks.BookClear
    assert BookClear in TICK_TYPES and "BookClear" in DATA_TYPES


# -- the bus ----------------------------------------------------------------------------------
def test_the_bus_routes_clears_by_type_exchange_and_symbol() -> None:
    bus = TypedEventBus()
    every: list[object] = []
    updates: list[object] = []
    by_ex: list[BookClear] = []
    by_sym: list[BookClear] = []
    both: list[BookClear] = []
    bus.subscribe(BookClear, every.append)
    bus.subscribe(BookUpdate, updates.append)
    bus.subscribe(BookClear, by_ex.append, exchange="a")
    bus.subscribe(BookClear, by_sym.append, symbol="S")
    bus.subscribe(BookClear, both.append, exchange="b", symbol="T")
    assert bus.subscriber_count(BookClear) == 4 and bus.subscriber_count(BookUpdate) == 1
    for ex in ("a", "b"):
        for sym in ("S", "T"):
            bus.publish(BookClear(ex, sym, 1, 1))
    assert updates == [] and len(every) == 4
    assert [(c.exchange, c.symbol) for c in by_ex] == [("a", "S"), ("a", "T")]
    assert [(c.exchange, c.symbol) for c in by_sym] == [("a", "S"), ("b", "S")]
    assert [(c.exchange, c.symbol) for c in both] == [("b", "T")]


@pytest.mark.anyio
async def test_a_stream_of_clears_gets_only_clears() -> None:
    bus = TypedEventBus()
    stream = bus.stream(BookClear, maxsize=4, exchange="a")
    bus.publish(BookUpdate("a", "S", "B", P, P, 1, 1))
    bus.publish(BookClear("b", "S", 2, 2))  # another exchange
    bus.publish(BookClear("a", "S", 3, 3, 9))
    with anyio.fail_after(5):
        async for got in stream:
            assert got == BookClear("a", "S", 3, 3, 9)
            break
    stream.close()


# -- the sink ---------------------------------------------------------------------------------
def test_book_clear_publishes_a_clear_and_counts_it_apart_from_updates() -> None:
    seen = Seen()
    seen.sink.book_update("SYM", "B", 99 * P, P, 1, 1, "A", 1)
    seen.sink.book_clear("SYM", 2, 3, 4)
    seen.sink.book_clear("SYM", 5, 6, 7, "venue reset")
    assert seen.events[1:] == [
        BookClear("ex", "SYM", 2, 3, 4),
        BookClear("ex", "SYM", 5, 6, 7, "venue reset"),
    ]
    assert (seen.sink.book_updates, seen.sink.book_clears) == (1, 2)
    stats = seen.processor.get_stats()
    assert (stats.book_updates_processed, stats.book_clears_processed) == (1, 2)
    assert stats.per_exchange["ex"].book_clears == 2
    assert "book_clears_processed=2" in repr(stats)
    assert "book_clears=2" in repr(stats.per_exchange["ex"])
    assert seen.sink.last_seen_ns("SYM") == 6  # a clear is market data: the symbol is live


R_LEVEL: dict[str, object] = {
    "book_update": UNDEF_PRICE,
    "book_update_text": "1",
    "book_update_bytes": b"1",
}


@pytest.mark.parametrize("method", sorted(R_LEVEL))
def test_an_update_with_action_r_is_published_as_a_clear(method: str) -> None:
    seen = Seen()
    number = R_LEVEL[method]
    getattr(seen.sink, method)("SYM", "N", number, number, 1, 2, "R", 3)
    assert seen.events == [BookClear("ex", "SYM", 1, 2, 3)]
    assert (seen.sink.book_updates, seen.sink.book_clears) == (0, 1)


def test_publish_takes_clears_and_turns_an_r_update_into_one() -> None:
    seen = Seen()
    seen.sink.publish(BookClear("ex", "SYM", 1, 1, 1, "why"))
    seen.sink.publish(BookUpdate("ex", "SYM", "N", UNDEF_PRICE, 0, 2, 2, "R", 0, 2))
    assert seen.events == [BookClear("ex", "SYM", 1, 1, 1, "why"), BookClear("ex", "SYM", 2, 2, 2)]
    assert seen.updates == [] and seen.sink.book_clears == 2
    with pytest.raises(ValueError, match="exchange 'other'"):
        seen.sink.publish(BookClear("other", "SYM", 1, 1))


def test_a_held_clear_is_delivered_in_order_on_release() -> None:
    seen = Seen()
    seen.sink.hold()
    seen.sink.book_clear("SYM", 1, 1, 1)
    seen.sink.book_update("SYM", "B", 99 * P, P, 1, 1, "A", 2)
    assert seen.events == []
    seen.sink.release()
    assert [type(e).__name__ for e in seen.events] == ["BookClear", "BookUpdate"]
    assert seen.sink.book_clears == 1


def test_a_clear_after_blindness_comes_after_its_gap() -> None:
    seen = Seen()
    seen.sink.begin_blind(100, "link dropped")
    seen.sink.book_clear("SYM", 200, 300, 1)
    gap, clear = seen.events
    assert isinstance(gap, Gap) and (gap.start_ts, gap.end_ts) == (100, 300)
    assert clear == BookClear("ex", "SYM", 200, 300, 1)


def test_a_dbn_clear_record_reaches_the_bus_as_a_clear() -> None:
    seen = Seen()
    update = BookUpdate("", "ES", "N", UNDEF_PRICE, 0, 10, 10, "R", 0, 2)  # as a simulator writes
    data = (
        encode_symbol_mapping(7, "ES", 1)
        + encode_book_clear(BookClear("", "ES", 5, 5, 1), 7)
        + encode_book_update(update, 7)
        + encode_book_update(BookUpdate("", "ES", "B", 99 * P, P, 11, 11, "A", 1, 3), 7)
    )
    assert seen.sink.feed_dbn(data, 42) == 4
    assert seen.events == [
        BookClear("ex", "ES", 5, 42, 1),
        BookClear("ex", "ES", 10, 42, 2),
        BookUpdate("ex", "ES", "B", 99 * P, P, 11, 42, "A", 1, 3),
    ]
    assert (seen.sink.book_clears, seen.sink.book_updates) == (2, 1)
    assert all(u.price != UNDEF_PRICE and u.action != "R" for u in seen.updates)


def test_a_diverted_sink_hands_clears_to_its_callback() -> None:
    got: list[object] = []
    lost: list[object] = []
    a = got.append
    diverted = kit.divert_sink("x", a, a, a, a, a, on_clear=got.append)
    diverted.book_clear("S", 1, 2, 3)
    assert got == [BookClear("x", "S", 1, 2, 3)]
    real = EventProcessor(TypedEventBus()).sink_for("x")
    real.publish(got[0])
    assert real.book_clears == 1
    # without on_clear a plugin that never clears is unchanged; a clear goes nowhere
    b = lost.append
    kit.divert_sink("x", b, b, b, b, b).book_clear("S", 1, 2, 3)
    assert lost == []


# -- the hub's book ---------------------------------------------------------------------------
def _hub() -> tuple[ExchangeHub, TypedEventBus]:
    bus = TypedEventBus()
    return ExchangeHub(bus, registry=ExchangeRegistry()), bus


def test_a_clear_empties_only_its_own_book() -> None:
    hub, bus = _hub()
    book = hub.book("ex", "SYM")
    other = hub.book("ex", "OTHER")
    snap = ((99 * P, P),), ((101 * P, P),)
    bus.publish(BookSnapshot("ex", "SYM", *snap, 1, 1, 1))
    bus.publish(BookSnapshot("ex", "OTHER", *snap, 1, 1, 1))
    bus.publish(BookClear("ex", "OTHER", 2, 2, 2))
    bus.publish(BookClear("elsewhere", "SYM", 2, 2, 2))
    assert len(book) == 2 and len(other) == 0
    bus.publish(BookClear("ex", "SYM", 3, 3, 3))
    assert len(book) == 0 and book.valid and not book.stale
    assert (book.last_update_ns, book.last_sequence) == (3, 3)
    hub.drop_book("ex", "SYM")
    assert bus.subscriber_count(BookClear) == 1  # OTHER's keeper only


def test_a_clear_starts_a_stale_or_invalid_book_anew() -> None:
    hub, bus = _hub()
    book = hub.book("ex", "SYM")
    assert book.stale
    bus.publish(BookClear("ex", "SYM", 1, 1))
    assert not book.stale and book.valid and book.reason == ""
    bus.publish(BookUpdate("ex", "SYM", "B", 102 * P, P, 2, 2))
    bus.publish(BookUpdate("ex", "SYM", "A", 101 * P, P, 2, 2))
    bus.publish(BookUpdate("ex", "SYM", "A", 103 * P, P, 3, 3))  # the crossed message ends
    assert not book.valid and book.invalidations == 1
    bus.publish(BookClear("ex", "SYM", 4, 4))
    assert book.valid and len(book) == 0


# -- JSON lines and the Gap rule ---------------------------------------------------------------
def test_a_clear_is_one_json_line_of_type_book_clear() -> None:
    out = io.BytesIO()
    bus = TypedEventBus()
    writer = JsonlWriter(out)
    writer.attach(bus)
    clear = BookClear("es_feed", "ES", 1, 2, 3, "")
    bus.publish(clear)
    writer.close()
    (line,) = out.getvalue().splitlines()
    assert line == event_to_json(clear)
    assert json.loads(line) == {
        "type": "BookClear",
        "exchange": "es_feed",
        "symbol": "ES",
        "ts_event": 1,
        "ts_recv": 2,
        "sequence": 3,
        "reason": "",
    }
    assert list(json.loads(line))[:3] == ["type", "exchange", "symbol"]


def test_a_clear_is_market_data_for_the_gap_rule() -> None:
    lines = [
        {"type": "Trade", "exchange": "a", "ts_recv": 0},
        {"type": "BookClear", "exchange": "a", "ts_recv": 5 * P},
        {"type": "Trade", "exchange": "a", "ts_recv": 10 * P},
    ]
    # the clear breaks the silence in two: neither half is longer than 6 s
    assert blind_windows(lines, 6 * P) == []
    assert len(blind_windows([lines[0], lines[2]], 6 * P)) == 1


# -- the counters shown to people: live view, status line, metrics --------------------------
def test_the_counters_people_read_include_clears() -> None:
    from hub_core.cli.live_view import RateTracker, status_line
    from hub_core.cli.metrics import HubMetrics

    hub, _bus = _hub()
    proc = hub.event_processor()
    sink = proc.sink_for("ex")
    for i in range(3):
        sink.book_clear("SYM", i, i, i)
    stats = proc.get_stats()
    assert re.search(r"\bbook=3\b", status_line({}, stats, {}))
    rates = RateTracker(window_s=1.0)
    rates.update(stats, now=1.0)
    sink.book_clear("SYM", 9, 9, 9)
    assert rates.update(proc.get_stats(), now=2.0) == {"ex": 1.0}
    metrics = HubMetrics(hub)
    samples = {
        (s.name, s.labels.get("exchange")): s.value
        for family in metrics.collect()
        for s in family.samples
    }
    assert samples[("hub_book_clears_total", "ex")] == 4.0
