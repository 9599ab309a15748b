"""The kit's compiled helpers for checksummed depth feeds and RFC 3339 stamps:
``rfc3339_ns`` against ``datetime``, ``parse_level_objects`` against ``json.loads``,
``LevelTokens.crc32`` against Kraken's algorithm written out by hand, and
``sink.book_levels_checked`` publishing a message only when its checksum holds."""

from __future__ import annotations

import calendar
import json
import zlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from hub_core import BookUpdate, OrderBook, TypedEventBus
from hub_core.errors import MalformedNumber
from hub_core.plugin import LevelTokens, Side, parse_fixed, parse_level_objects, rfc3339_ns
from hub_core.processor import ConnectionSink, EventProcessor

P = 1_000_000_000


# -- rfc3339_ns -----------------------------------------------------------------------------
@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.integers(0, 9),
    st.integers(0, 999_999_999),
    st.sampled_from(["Z", "+00:00"]),
)
def test_rfc3339_ns_is_datetimes_epoch_with_every_digit(
    when: datetime, digits: int, nanos: int, zone: str
) -> None:
    frac = f"{nanos:09d}"[:digits]
    text = when.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + (f".{frac}" if digits else "")
    want_s = calendar.timegm(when.replace(tzinfo=UTC).timetuple())
    want = want_s * P + (int(frac.ljust(9, "0")) if digits else 0)
    assert rfc3339_ns(text + zone) == want


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * 25,
        "2019-08-14 20:42:27Z",
        "2019-08-14T20:42:27.1234567890Z",
        "2019-08-14T20:42:27.Z",
        "2019-08-14T20:42:27+01:00",
        "2019-08-14T20:42:27",
        "2019-08-14T20:42:27Zx",
        "2019-13-14T20:42:27Z",
        "0000-01-01T00:00:00Z",
        "2019-08-1xT20:42:27Z",
        "2019/08/14T20:42:27Z",
    ],
)
def test_rfc3339_ns_refuses_other_shapes(bad: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339_ns(bad)


# -- parse_level_objects --------------------------------------------------------------------
decimal_text = st.one_of(
    st.integers(0, 10**9).map(str),
    st.tuples(st.integers(0, 10**9), st.integers(0, 10**8 - 1)).map(lambda t: f"{t[0]}.{t[1]:08d}"),
    st.sampled_from(["0.00000000", "6195.5", "-1.25", "1e-3", "0.000000001"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(decimal_text, decimal_text, st.booleans(), st.booleans()), max_size=15),
    st.sampled_from(["", " ", "\n  "]),
)
def test_parse_level_objects_reads_what_json_loads_reads(
    levels: list[tuple[str, str, bool, bool]], ws: str
) -> None:
    items = []
    for p, q, quoted, reverse in levels:
        fields = [f'"price"{ws}:{ws}{json.dumps(p) if quoted else p}', f'"qty":{q}']
        if reverse:
            fields = [fields[1], '"extra":null', fields[0]]
        items.append("{" + f",{ws}".join(fields) + "}")
    data = f"{ws}[{ws}{f',{ws}'.join(items)}{ws}]{ws}".encode()
    assert json.loads(data, parse_float=Decimal) is not None  # the test writes real JSON
    out: list[int] = []
    texts: list[bytes] = []
    parse_level_objects(data, b"price", b"qty", out, texts)
    assert out == [parse_fixed(t) for p, q, _, _ in levels for t in (p, q)]
    assert texts == [t.encode() for p, q, _, _ in levels for t in (p, q)]


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"[",
        b"{}",
        b"[{}]",
        b'[{"price":1}]',
        b'[{"qty":1}]',
        b'[{"price":1,"qty":2,"price":3}]',
        b'[{"price":1,"qty":{"a":1}}]',
        b'[{"price":"1\\u0030","qty":1}]',
        b'[{"price":true,"qty":1}]',
        b'[{"price":"abc","qty":1}]',
        b'[{"price":1,"qty":2}] x',
        b'[["1","2"]]',
    ],
)
def test_parse_level_objects_refuses_other_shapes(bad: bytes) -> None:
    with pytest.raises(MalformedNumber):
        parse_level_objects(bad, b"price", b"qty", [], [])


# -- LevelTokens ----------------------------------------------------------------------------
def hand_crc(levels: dict[str, dict[Decimal, tuple[str, str]]], n: int = 10) -> int:
    """Kraken's checksum written out: asks low to high, then bids high to low, top n each,
    every text with '.' removed and leading zeros stripped."""
    asks = sorted(levels["A"])[:n]
    bids = sorted(levels["B"], reverse=True)[:n]
    text = "".join(
        "".join(t.replace(".", "").lstrip("0") for t in levels[side][p])
        for side, ps in (("A", asks), ("B", bids))
        for p in ps
    )
    return zlib.crc32(text.encode())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BID, Side.ASK]),
            st.integers(1, 40),
            st.integers(0, 3),
            st.booleans(),
        ),
        max_size=80,
    )
)
def test_crc32_is_krakens_over_the_book_as_it_changes(
    steps: list[tuple[str, int, int, bool]],
) -> None:
    tokens = LevelTokens()
    book = OrderBook()
    shown: dict[str, dict[Decimal, tuple[str, str]]] = {"A": {}, "B": {}}
    for side, tick, lots, trim in steps:
        price = f"{tick / 100:.2f}"
        size = f"{lots}.{tick:04d}" if lots else "0"
        p, q = parse_fixed(price), parse_fixed(size)
        book.apply(side, p, q)
        tokens.set(side, p, q, price.encode(), size.encode())
        if q:
            shown[side][Decimal(price)] = (price, size)
        else:
            shown[side].pop(Decimal(price), None)
        if trim:
            for worst in book.trim(side, 5):
                tokens.drop(side, worst)
                shown[side].pop(Decimal(worst) / P)
        assert len(tokens) == len(book)
        assert tokens.crc32(10) == hand_crc(shown)
        assert tokens.crc32(3) == hand_crc(shown, 3)
    tokens.clear()
    assert len(tokens) == 0 and tokens.crc32(10) == zlib.crc32(b"")


def test_exponent_text_is_written_at_the_decimals_plain_text_showed() -> None:
    tokens = LevelTokens()
    tokens.set(Side.BID, parse_fixed("0.5"), parse_fixed("1"), b"0.50000000", b"1.00000000")
    tokens.set(Side.ASK, parse_fixed("0.6"), parse_fixed("0.00001"), b"0.60000000", b"1e-5")
    assert tokens.price_dec == 8 and tokens.size_dec == 8
    assert tokens.token(Side.ASK, parse_fixed("0.6")) == b"60000000" + b"1000"
    assert tokens.token(Side.BID, parse_fixed("0.7")) == b""


# -- sink.book_levels_checked -----------------------------------------------------------------
def _sink() -> tuple[ConnectionSink, list[BookUpdate]]:
    bus = TypedEventBus()
    seen: list[BookUpdate] = []
    bus.subscribe(BookUpdate, seen.append)
    return EventProcessor(bus).sink_for("ex"), seen


def _levels(pairs: list[tuple[str, str]]) -> bytes:
    return ("[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in pairs) + "]").encode()


def _seeded(depth: int) -> tuple[OrderBook, LevelTokens, dict[str, dict[Decimal, tuple[str, str]]]]:
    book = OrderBook()
    tokens = LevelTokens()
    shown: dict[str, dict[Decimal, tuple[str, str]]] = {"A": {}, "B": {}}
    for i in range(depth):
        for side, price in ((Side.BID, f"{100 - i}.5"), (Side.ASK, f"{101 + i}.5")):
            size = f"{i + 1}.00000000"
            p, q = parse_fixed(price), parse_fixed(size)
            book.apply(side, p, q)
            tokens.set(side, p, q, price.encode(), size.encode())
            shown[side][Decimal(price)] = (price, size)
    return book, tokens, shown


def test_a_message_whose_checksum_holds_is_published_in_order_with_the_trimmed_last() -> None:
    sink, seen = _sink()
    book, tokens, shown = _seeded(3)
    # a better bid pushes the worst (98.5) out of depth 3; an ask changes size
    shown["B"][Decimal("100.7")] = ("100.7", "2.00000000")
    del shown["B"][Decimal("98.5")]
    shown["A"][Decimal("101.5")] = ("101.5", "9.00000000")
    n = sink.book_levels_checked(
        "SYM",
        book,
        tokens,
        _levels([("100.7", "2.00000000")]),
        _levels([("101.5", "9.00000000")]),
        3,
        hand_crc(shown),
        7,
        8,
        5,
    )
    assert n == 3
    assert [(u.side, u.price, u.size, u.action, u.ts_event, u.sequence) for u in seen] == [
        ("B", parse_fixed("100.7"), 2 * P, "A", 7, 5),
        ("A", parse_fixed("101.5"), 9 * P, "M", 7, 5),
        ("B", parse_fixed("98.5"), 0, "C", 7, 5),
    ]
    assert book.last_update_ns == 7 and book.last_sequence == 5
    assert sink.book_updates == 3


def test_a_message_whose_checksum_fails_publishes_nothing() -> None:
    sink, seen = _sink()
    book, tokens, shown = _seeded(3)
    before = book.last_update_ns
    n = sink.book_levels_checked(
        "SYM", book, tokens, _levels([("99.5", "0")]), b"[]", 3, hand_crc(shown), 7, 8
    )
    assert n == -1 and seen == [] and sink.book_updates == 0
    # the book holds the message (the caller resynchronises it), unstamped
    assert book.size_at(Side.BID, parse_fixed("99.5")) == 0 and book.last_update_ns == before
    assert len(tokens) == len(book)


def test_an_unreadable_level_changes_nothing() -> None:
    sink, seen = _sink()
    book, tokens, _ = _seeded(3)
    crc = tokens.crc32(10)
    levels = book.levels()
    for bad in (b'[{"price":1.0000000001,"qty":1}]', b'[{"price":1}]'):
        with pytest.raises(MalformedNumber):
            sink.book_levels_checked(
                "SYM", book, tokens, _levels([("100.7", "1")]), bad, 3, crc, 7, 8
            )
    assert seen == [] and book.levels() == levels and tokens.crc32(10) == crc


# -- sink.book_changes_json -------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 30), st.integers(0, 3)),
        max_size=12,
    ),
    st.sampled_from(["", " "]),
)
def test_book_changes_json_applies_in_wire_order_as_book_update_does(
    changes: list[tuple[str, int, int]], ws: str
) -> None:
    wire = [[side, f"{tick}.5", f"{lots}.25" if lots else "0"] for side, tick, lots in changes]
    data = json.dumps(wire, separators=("," + ws, ":")).encode()
    sink, seen = _sink()
    book = OrderBook()
    n = sink.book_changes_json("SYM", book, data, 7, 8, 3)
    ref = OrderBook()
    want = []
    for side, p, q in wire:
        letter = Side.BID if side == "buy" else Side.ASK
        action = ref.apply(letter, parse_fixed(p), parse_fixed(q))
        if action:
            want.append((letter, parse_fixed(p), parse_fixed(q), action, 7, 8, 3))
    got = [(u.side, u.price, u.size, u.action, u.ts_event, u.ts_recv, u.sequence) for u in seen]
    assert got == want and n == len(want) and book.levels() == ref.levels()
    assert book.last_update_ns == 7 and sink.book_updates == len(want)


@pytest.mark.parametrize(
    "bad",
    [
        b'[["buy","1","2"],["hold","1","2"]]',
        b'[["buy","1","2"],["sell","1.0000000001","2"]]',
        b'[["buy","1"]]',
        b'[["buy",1,"2"]]',
        b'{"buy":1}',
    ],
)
def test_book_changes_json_changes_nothing_for_another_shape(bad: bytes) -> None:
    sink, seen = _sink()
    book = OrderBook()
    book.apply(Side.BID, P, P)
    with pytest.raises(MalformedNumber):
        sink.book_changes_json("SYM", book, bad, 7, 8)
    assert seen == [] and book.levels() == (((P, P),), ()) and book.last_update_ns == 0
