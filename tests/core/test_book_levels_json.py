"""``sink.book_levels_json``: a depth message's levels as JSON bytes (``[["p","q"],...]``)
give exactly what ``book_levels_text`` gives for the same levels as ``str`` pairs, and
any other shape is malformed before anything is applied."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from hub_core import BookUpdate, OrderBook, TypedEventBus
from hub_core.errors import MalformedNumber
from hub_core.fixed import parse_fixed, parse_pairs_json
from hub_core.processor import ConnectionSink, EventProcessor

P = 1_000_000_000

decimal_text = st.one_of(
    st.integers(0, 10**9).map(str),
    st.tuples(st.integers(0, 10**9), st.integers(0, 10**8 - 1)).map(lambda t: f"{t[0]}.{t[1]:08d}"),
    st.sampled_from(["0.00000000", "6195.5", "-1.25", "+3", "1e-3", "0.000000001"]),
)
pairs = st.lists(st.tuples(decimal_text, decimal_text), max_size=20)


def _sink() -> tuple[ConnectionSink, list[BookUpdate]]:
    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    return EventProcessor(bus).sink_for("ex"), seen


@settings(max_examples=300, deadline=None)
@given(pairs, st.sampled_from(["", " ", "\n  "]))
def test_parse_pairs_json_reads_what_json_loads_reads(
    levels: list[tuple[str, str]], ws: str
) -> None:
    data = json.dumps([list(p) for p in levels], separators=("," + ws, ":")).encode()
    out: list[int] = []
    parse_pairs_json(ws.encode() + data + ws.encode(), out)
    assert out == [parse_fixed(t) for pair in levels for t in pair]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(pairs, pairs), min_size=1, max_size=5))
def test_book_levels_json_publishes_what_book_levels_text_publishes(
    messages: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]],
) -> None:
    by_json, seen_json = _sink()
    by_text, seen_text = _sink()
    book_json, book_text = OrderBook(), OrderBook()
    for n, (bids, asks) in enumerate(messages, 1):
        raw_bids = json.dumps([list(p) for p in bids]).encode()
        raw_asks = json.dumps([list(p) for p in asks]).encode()
        a = by_json.book_levels_json("SYM", book_json, raw_bids, raw_asks, n, n + 1, n + 2)
        b = by_text.book_levels_text("SYM", book_text, bids, asks, n, n + 1, n + 2)
        assert a == b
    assert seen_json == seen_text
    assert book_json.snapshot() == book_text.snapshot()
    assert (book_json.last_update_ns, book_json.last_sequence) == (len(messages), len(messages) + 2)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"[",
        b'[["1","2"]',
        b'[["1","2"],]',
        b'[["1"]]',
        b'[["1","2","3"]]',
        b'[[1,"2"]]',
        b'[["1",2]]',
        b'[["1\\u0030","2"]]',
        b'{"1":"2"}',
        b'[["1","2"]] x',
        b'[["1","x"]]',
        b'[["1","1e"]]',
    ],
)
def test_book_levels_json_changes_nothing_for_another_shape(bad: bytes) -> None:
    sink, seen = _sink()
    book = OrderBook()
    book.replace(((99 * P, P),), ((101 * P, P),), 5, 7)
    with pytest.raises(MalformedNumber):
        # the bad side is the asks: the good bids before it must not have been applied
        sink.book_levels_json("SYM", book, b'[["98","1"],["99","0"]]', bad, 9, 9, 8)
    assert not seen and sink.book_updates == 0
    assert book.snapshot() == (((99 * P, P),), ((101 * P, P),))
    assert (book.last_update_ns, book.last_sequence) == (5, 7)


def test_book_levels_json_empty_sides() -> None:
    sink, seen = _sink()
    book = OrderBook()
    assert sink.book_levels_json("SYM", book, b"[]", b"[ ]", 3, 4, 5) == 0
    assert not seen and (book.last_update_ns, book.last_sequence) == (3, 5)


def test_parse_pairs_json_names_the_number_it_refuses() -> None:
    with pytest.raises(MalformedNumber, match=r"more precision than 1e-9 in b'1.0000000001'"):
        parse_pairs_json(b'[["5","1"],["1.0000000001","2"]]', [])
    with pytest.raises(MalformedNumber, match=r"number out of range: b'9223372037'"):
        parse_pairs_json(b'[["9223372037","2"]]', [])
