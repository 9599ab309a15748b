"""35=W / 35=X -> ticks through a real sink: exact fixed-point values, the local book,
quotes on top-of-book changes, snapshots, group counts, and the in-place number parser
against the core's."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given, settings, strategies as st

from hub_core import PRICE_SCALE, BookSnapshot, BookUpdate, Quote, Trade
from hub_core.errors import MalformedNumber
from hub_core.fixed import parse_fixed_bytes
from hub_plugin_fix.errors import MalformedMessage
from hub_plugin_fix.marketdata import UNDEF_PRICE, MarketDataDecoder, fixed_at
from hub_plugin_fix.scanner import FixReader, Frame
from tests.plugins.fix.conftest import Collected, fix_message, incremental

P = PRICE_SCALE
SENDING_NS = int(dt.datetime(2024, 1, 2, 12, 0, 0, tzinfo=dt.UTC).timestamp()) * P + 123_000_000


def frame_of(data: bytes) -> Frame:
    reader = FixReader()
    reader.feed(data, 0)
    frame = reader.next_frame()
    assert frame is not None
    return frame


def trade(
    px: str, size: object, side: str | None = None, sym: str = "ES"
) -> list[tuple[int, object]]:
    e: list[tuple[int, object]] = [(279, 0), (269, 2), (55, sym), (270, px), (271, size)]
    if side is not None:
        e.append((2446, side))
    return e


def level(
    action: int, kind: int, px: str, size: object = None, sym: str = "ES"
) -> list[tuple[int, object]]:
    e: list[tuple[int, object]] = [(279, action), (269, kind), (55, sym), (270, px)]
    if size is not None:
        e.append((271, size))
    return e


def test_trades_exact_values_and_sides(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    md.apply(
        frame_of(
            incremental(5, [trade("5000.25", 3, "1"), trade("4999.75", "0.5", "2"), trade("1", 1)])
        ),
        777,
    )
    got = collected.of(Trade)
    assert [(t.price, t.size, t.side) for t in got] == [
        (5000_250_000_000, 3 * P, "B"),
        (4999_750_000_000, P // 2, "A"),
        (P, P, "N"),
    ]
    assert all(t.symbol == "ES" and t.sequence == 5 and t.ts_recv == 777 for t in got)
    assert got[0].ts_event == SENDING_NS


def test_cme_aggressor_tag_is_understood(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    e = [(279, 0), (269, 2), (55, "ES"), (270, "10"), (271, 1), (5797, 2)]
    md.apply(frame_of(incremental(1, [e])), 1)
    assert collected.of(Trade)[0].side == "A"


def test_book_updates_and_one_quote_per_message(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    md.apply(
        frame_of(
            incremental(
                1,
                [
                    level(0, 0, "99.5", 10),
                    level(0, 0, "99", 20),
                    level(0, 1, "100", 5),
                    level(0, 1, "100.5", 7),
                ],
            )
        ),
        1,
    )
    ups = collected.of(BookUpdate)
    assert [(u.side, u.price, u.size, u.action) for u in ups] == [
        ("B", 99_500_000_000, 10 * P, "A"),
        ("B", 99 * P, 20 * P, "A"),
        ("A", 100 * P, 5 * P, "A"),
        ("A", 100_500_000_000, 7 * P, "A"),
    ]
    (q,) = collected.of(Quote)
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        99_500_000_000,
        10 * P,
        100 * P,
        5 * P,
    )
    # a change below the top moves no quote; deleting the best bid does
    md.apply(frame_of(incremental(2, [level(1, 0, "99", 25)])), 2)
    assert len(collected.of(Quote)) == 1
    md.apply(frame_of(incremental(3, [level(2, 0, "99.5")])), 3)
    last = collected.of(BookUpdate)[-1]
    assert (last.price, last.size, last.action) == (99_500_000_000, 0, "C")
    q = collected.of(Quote)[-1]
    assert (q.bid_price, q.bid_size, q.ask_price) == (99 * P, 25 * P, 100 * P)
    book = md.books["ES"]
    assert book.bids == {99 * P: 25 * P}
    assert book.asks == {100 * P: 5 * P, 100_500_000_000: 7 * P}


def test_an_emptied_side_is_undef_in_the_quote(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    md.apply(frame_of(incremental(1, [level(0, 1, "100", 5)])), 1)
    q = collected.of(Quote)[-1]
    assert (q.bid_price, q.bid_size, q.ask_price) == (UNDEF_PRICE, 0, 100 * P)
    md.apply(frame_of(incremental(2, [level(2, 1, "100")])), 2)
    q = collected.of(Quote)[-1]
    assert (q.ask_price, q.ask_size) == (UNDEF_PRICE, 0)


def test_snapshot_replaces_the_book_and_respects_depth(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink, depth=2)
    md.apply(frame_of(incremental(1, [level(0, 0, "1", 1)])), 1)
    body: list[tuple[int, object]] = [(262, "r1"), (55, "ES"), (268, 6)]
    for kind, px, size in [("0", "99", 1), ("0", "98", 2), ("0", "97", 3), ("1", "100", 4),
                           ("1", "101", 5), ("2", "99.5", 9)]:  # fmt: skip
        body += [(269, kind), (270, px), (271, size)]
    md.apply(frame_of(fix_message("W", 2, body)), 5)
    (snap,) = collected.of(BookSnapshot)
    assert snap.bids == ((99 * P, P), (98 * P, 2 * P))
    assert snap.asks == ((100 * P, 4 * P), (101 * P, 5 * P))
    assert snap.sequence == 2
    q = collected.of(Quote)[-1]
    assert (q.bid_price, q.ask_price) == (99 * P, 100 * P)
    assert P not in md.books["ES"].bids  # the old level is gone
    assert not collected.of(Trade)  # a snapshot's last trade is state, not an event


def test_symbol_from_the_request_id(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    md.req_symbols[b"r1"] = "NQ"
    e = [(279, 0), (269, 2), (270, "5"), (271, 1)]
    md.apply(frame_of(incremental(1, [e])), 1)
    assert collected.of(Trade)[0].symbol == "NQ"


def test_entry_time_sets_ts_event(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    e = [*trade("5", 1), (273, "13:14:15.5")]
    md.apply(frame_of(incremental(1, [e])), 1)
    day = int(dt.datetime(2024, 1, 2, tzinfo=dt.UTC).timestamp()) * P
    assert collected.of(Trade)[0].ts_event == day + (13 * 3600 + 14 * 60 + 15) * P + P // 2
    e = [*trade("5", 1), (272, "20240305"), (273, "00:00:01")]
    md.apply(frame_of(incremental(2, [e])), 1)
    day = int(dt.datetime(2024, 3, 5, tzinfo=dt.UTC).timestamp()) * P
    assert collected.of(Trade)[1].ts_event == day + P


def test_delete_by_entry_id(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    md.apply(frame_of(incremental(1, [[*level(0, 0, "10", 3), (278, "id7")]])), 1)
    md.apply(frame_of(incremental(2, [[(279, 2), (269, 0), (278, "id7"), (55, "ES")]])), 1)
    last = collected.of(BookUpdate)[-1]
    assert (last.price, last.size, last.action) == (10 * P, 0, "C")
    assert md.books["ES"].bids == {}


@pytest.mark.parametrize(
    "entries, why",
    [
        ([trade("1", 1)], "says 2"),  # count 2 below, one entry
        ([trade("1", 1), trade("x1", 1)], "not a decimal"),
        ([trade("1", 1), [(279, 0), (269, 2), (55, "ES"), (271, 1)]], "no MDEntryPx"),
        ([trade("1", 1), trade("2", 1), trade("3", 1)], "more entries"),
    ],
)
def test_bad_messages_publish_nothing(
    collected: Collected, entries: list[list[tuple[int, object]]], why: str
) -> None:
    body: list[tuple[int, object]] = [(262, "r1"), (268, 2)]
    for e in entries:
        body += e
    md = MarketDataDecoder(collected.sink)
    with pytest.raises(MalformedMessage, match=why):
        md.apply(frame_of(fix_message("X", 1, body)), 1)
    assert collected.events == []


def test_no_entry_count_is_malformed(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    with pytest.raises(MalformedMessage, match="NoMDEntries"):
        md.apply(frame_of(fix_message("X", 1, [(262, "r1")])), 1)


def test_unwanted_entry_types_and_ignored_symbols(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink, want_trades=False)
    md.ignored.add("NQ")
    md.apply(
        frame_of(
            incremental(1, [trade("1", 1), level(0, 0, "1", 1, sym="NQ"), level(0, 1, "2", 1)])
        ),
        1,
    )
    assert not collected.of(Trade)
    assert [u.symbol for u in collected.of(BookUpdate)] == ["ES"]


def test_fast_path_publishes_in_sequence_market_data_only(collected: Collected) -> None:
    md = MarketDataDecoder(collected.sink)
    reader = FixReader(md)
    reader.fast = True
    reader.expected_seq = 3
    stream = incremental(3, [trade("1", 1)]) + incremental(5, [trade("2", 1)])
    reader.feed(stream, 9)
    frame = reader.next_frame()
    assert frame is not None and frame.seq == 5  # the gap is for the session to judge
    assert [t.price for t in collected.of(Trade)] == [P]
    assert reader.expected_seq == 4


def test_five_megabytes_in_one_read_decode_completely(collected: Collected) -> None:
    # one read far larger than any socket read: every message comes out, in order (how
    # fast, and that the cost stays linear, is benchmarks/fix_compare.py's business)
    one = incremental(
        1, [trade("5000.25", 3, "1"), level(1, 0, "5000", 7), level(1, 1, "5000.25", 9)]
    )
    n_big = 5_000_000 // len(one) + 1
    # the same bytes repeated: sequence numbers are the session's business, not this
    # path's, so every frame comes back and is decoded as the session would
    big = one * n_big
    assert len(big) >= 5_000_000
    md = MarketDataDecoder(collected.sink)
    reader = FixReader(md)
    reader.feed(big, 1)
    frames = 0
    while (frame := reader.next_frame()) is not None:
        frames += 1
        md.apply(frame, 1)
    assert frames == n_big
    assert len(collected.of(Trade)) == n_big
    assert len(collected.of(BookUpdate)) == 2 * n_big
    assert reader.bytes_skipped == 0


# -- the in-place number parser is the core's parser ------------------------------------
_decimal = st.from_regex(r"\A-?[0-9]{0,12}(\.[0-9]{0,12})?\Z", fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_decimal, st.text(alphabet="0123456789.-+eE x", max_size=25)))
@example("")
@example("-")
@example(".")
@example("1e3")
@example("+5")
@example("123456789.123456789")
@example("1234567890.5")
@example("0.0000000001")
@example("-0")
def test_fixed_at_agrees_with_the_core(text: str) -> None:
    raw = text.encode()
    padded = b"xx" + raw + b"\x01yy"
    try:
        expected: int | None = parse_fixed_bytes(raw)
    except MalformedNumber:
        expected = None
    if expected is None:
        with pytest.raises(MalformedNumber):
            fixed_at(padded, 2, 2 + len(raw))
    else:
        assert fixed_at(padded, 2, 2 + len(raw)) == expected


def test_the_books_are_the_cores_order_books_kept_in_one_call_a_level() -> None:
    """Each symbol's book is a ``hub_core.OrderBook`` (valid, stamped with the message);
    the ticks and books are the same through ``sink.book_level`` (one call into the core
    a level) as through a sink without it (``apply`` then ``book_update``)."""
    from hub_core import OrderBook

    messages = [
        incremental(1, [level(0, 0, "99", 10), level(0, 1, "100", 5), level(0, 0, "98", 3)]),
        incremental(2, [level(1, 0, "99", 25), level(0, 1, "100.5", 7), trade("99.5", 2)]),
        incremental(3, [level(2, 0, "99"), level(2, 1, "100"), level(2, 0, "97")]),
        incremental(4, [level(0, 0, "98.5", 1), level(2, 1, "100.5"), level(0, 1, "101", 4)]),
    ]
    outcomes = []
    for batch in (True, False):
        collected = Collected()
        md = MarketDataDecoder(collected.sink)
        if not batch:
            md._book_level = None  # as on a sink of an older hub-core
        for i, m in enumerate(messages, 1):
            md.apply(frame_of(m), i)
        book = md.book("ES")
        assert isinstance(book, OrderBook) and md.books["ES"] is book
        assert book.check() is None and book.snapshot() == (
            ((98_500_000_000, P), (98 * P, 3 * P)),
            ((101 * P, 4 * P),),
        )
        outcomes.append([(type(t).__name__, t.as_dict()) for t in collected.events])
        q = collected.of(Quote)[-1]
        assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
            98_500_000_000,
            P,
            101 * P,
            4 * P,
        )
    assert outcomes[0] == outcomes[1]
