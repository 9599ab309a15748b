"""The Kraken v2 dialect without sockets: subscribe bytes, acks, every message kind to
exact tick values, the book with its CRC32 checksum, resync on a mismatch, hypothesis.

Oracles are independent of the code under test: ``Decimal`` for values, and for the
checksum Kraken's documented example (974947235) and strings built by hand here.
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from hub_core import BookSnapshot, BookUpdate, Gap, Quote, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket import Ack, Notice, Refused, SessionConfig
from hub_plugin_websocket.dialects.coinbase import Resubscribe
from hub_plugin_websocket.dialects.kraken import KrakenDialect, KrakenSession

SCALE = Decimal(1_000_000_000)
URL = "wss://ws.kraken.com/v2"
TS = 1_700_000_000_000_000_000


def fx(text: str) -> int:
    value = Decimal(text) * SCALE
    assert value == value.to_integral_value()
    return int(value)


@pytest.fixture
def exchange() -> str:
    return "kraken"  # the bus, recorder and sink fixtures are conftest's


def session(
    sink: ConnectionSink, channels: tuple[str, ...] = ("ticker", "trade", "book")
) -> KrakenSession:
    s = KrakenDialect().new_session(sink, SessionConfig(URL, channels, ""))
    assert isinstance(s, KrakenSession)
    return s


def book_msg(kind: str, sym: str, bids: Any, asks: Any, checksum: int) -> bytes:
    """A book message with numbers written as JSON numbers, text kept verbatim."""
    lv = ",".join
    b = lv(f'{{"price":{p},"qty":{q}}}' for p, q in bids)
    a = lv(f'{{"price":{p},"qty":{q}}}' for p, q in asks)
    ts = ',"timestamp":"2023-10-06T17:35:55.440295Z"' if kind == "update" else ""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{sym}",'
        f'"bids":[{b}],"asks":[{a}],"checksum":{checksum}{ts}}}]}}'
    ).encode()


def hand_checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's algorithm written out independently: asks low->high, bids high->low,
    top 10 each, '.' removed and leading zeros stripped, CRC32 unsigned."""
    asks = sorted(asks, key=lambda x: Decimal(x[0]))[:10]
    bids = sorted(bids, key=lambda x: -Decimal(x[0]))[:10]
    text = "".join(
        p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks + bids
    )
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


# -- the documented example -----------------------------------------------------------------
DOC_ASKS = [(f"0.050{n:02d}", "0.00000500") for n in (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)]
DOC_BIDS = [
    (f"0.0{n}", "0.00000500") for n in (5000, 4995, 4990, 4980, 4975, 4970, 4965, 4960, 4955, 4950)
]


def test_checksum_matches_krakens_documented_example(sink: ConnectionSink) -> None:
    assert hand_checksum(DOC_ASKS, DOC_BIDS) == 974947235
    s = session(sink, ("book",))
    s.subscribe(["BTC/USD"])
    assert s.feed(book_msg("snapshot", "BTC/USD", DOC_BIDS, DOC_ASKS, 974947235), TS) is None
    assert sink.gaps == 0 and sink.snapshots == 1
    bad = s.feed(book_msg("snapshot", "BTC/USD", DOC_BIDS, DOC_ASKS, 974947236), TS)
    assert isinstance(bad, Resubscribe) and sink.gaps == 1


# -- subscribe / unsubscribe / acks ------------------------------------------------------------
def test_subscribe_messages_exact_bytes(sink: ConnectionSink) -> None:
    s = session(sink, ("ticker", "trade", "book@25"))
    reqs = s.subscribe(["BTC/USD", "ETH/USD"])
    assert [r.payload for r in reqs] == [
        b'{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD"]},"req_id":1}',
        b'{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],"snapshot":false},"req_id":2}',
        b'{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],"depth":25},"req_id":3}',
    ]
    assert s.subscribe(["BTC/USD"]) == []  # already subscribed
    assert "book:ETH/USD" in s.streams
    un = s.unsubscribe(["ETH/USD"])
    assert un[2].payload == (
        b'{"method":"unsubscribe","params":{"channel":"book","symbol":["ETH/USD"],"depth":25},"req_id":6}'
    )
    assert un[0].payload == (
        b'{"method":"unsubscribe","params":{"channel":"ticker","symbol":["ETH/USD"]},"req_id":4}'
    )
    assert "book:ETH/USD" not in s.streams and s.book("ETH/USD") is None


def ack(req_id: int, sym: str, channel: str = "ticker") -> bytes:
    return json.dumps(
        {
            "method": "subscribe",
            "result": {"channel": channel, "snapshot": True, "symbol": sym},
            "success": True,
            "time_in": "2023-09-25T09:04:31.742599Z",
            "time_out": "2023-09-25T09:04:31.742648Z",
            "req_id": req_id,
        }
    ).encode()


def test_one_ack_per_symbol_completes_the_request(sink: ConnectionSink) -> None:
    s = session(sink, ("ticker",))
    (req,) = s.subscribe(["BTC/USD", "ETH/USD"])
    assert s.feed(ack(req.id, "BTC/USD"), TS) is None  # one of two
    done = s.feed(ack(req.id, "ETH/USD"), TS)
    assert done == Ack(req.id, ["ticker:BTC/USD", "ticker:ETH/USD"])
    assert s.feed(ack(req.id, "ETH/USD"), TS) is None  # a late duplicate: nothing
    assert sink.malformed_count == 0


def test_refused_subscription(sink: ConnectionSink) -> None:
    s = session(sink, ("ticker",))
    (req,) = s.subscribe(["XBT/ABC"])
    reply = json.dumps(
        {
            "error": "Currency pair not supported XBT/ABC",
            "method": "subscribe",
            "req_id": req.id,
            "success": False,
            "symbol": "XBT/ABC",
        }
    ).encode()
    out = s.feed(reply, TS)
    assert isinstance(out, Refused) and out.id == req.id
    assert "Currency pair not supported" in out.message and "XBT/ABC" in out.message
    assert s.streams == frozenset()
    # an unattributed error is a Refused without an id
    stray = b'{"method":"subscribe","success":false,"error":"boom","req_id":99}'
    out2 = s.feed(stray, TS)
    assert isinstance(out2, Refused) and out2.id is None


# -- data -----------------------------------------------------------------------------------
def test_ticker_exact_values(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = session(sink)
    s.subscribe(["BTC/USD"])
    frame = (
        b'{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":27910.5,'
        b'"bid_qty":0.00100000,"ask":27910.6,"ask_qty":13.91040134,"last":27910.6,'
        b'"volume":1046.84946548,"vwap":27720.3,"low":27460.0,"high":27980.1,'
        b'"change":301.4,"change_pct":1.09}]}'
    )
    assert s.feed(frame, TS) is None
    (q,) = recorder.of(Quote)
    assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        "BTC/USD",
        fx("27910.5"),
        fx("0.001"),
        fx("27910.6"),
        fx("13.91040134"),
    )
    assert q.ts_event == TS and q.ts_recv == TS


def test_trade_side_is_the_takers(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = session(sink)
    s.subscribe(["MATIC/USD"])
    frame = (
        b'{"channel":"trade","type":"update","data":['
        b'{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,'
        b'"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},'
        b'{"symbol":"MATIC/USD","side":"sell","price":0.5146,"qty":1e-8,'
        b'"ord_type":"market","trade_id":4665847,"timestamp":"2023-09-25T07:48:36.925533Z"}]}'
    )
    assert s.feed(frame, TS) is None
    t1, t2 = recorder.of(Trade)
    assert (t1.price, t1.size, t1.side, t1.sequence) == (
        fx("0.5147"),
        fx("6423.46326"),
        "B",
        4665846,
    )
    assert (t2.price, t2.size, t2.side, t2.sequence) == (fx("0.5146"), 10, "A", 4665847)
    assert t1.ts_event == 1695628116_925533000
    assert (t1.trade_id, t2.trade_id) == ("4665846", "4665847")
    # the snapshot of past trades is not republished
    assert s.feed(frame.replace(b'"update"', b'"snapshot"'), TS) is None
    assert len(recorder.of(Trade)) == 2


def test_heartbeat_status_pong_are_not_malformed(sink: ConnectionSink) -> None:
    s = session(sink)
    assert s.feed(b'{"channel":"heartbeat"}', TS) is None
    status = (
        b'{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online",'
        b'"api_version":"v2","connection_id":12393906104898154338}]}'
    )
    assert s.feed(status, TS) is None
    maint = status.replace(b'"online"', b'"maintenance"')
    assert isinstance(s.feed(maint, TS), Notice)
    pong = b'{"method":"pong","req_id":3,"time_in":"x","time_out":"y"}'
    assert s.feed(pong, TS) is None
    assert s.feed(b'{"channel":"instrument","type":"snapshot","data":{}}', TS) is None
    assert sink.malformed_count == 0
    assert s.counters.by_kind["heartbeat"] == 1 and s.counters.by_kind["status"] == 2


# -- the book ---------------------------------------------------------------------------------
BIDS0 = [("100.5", "1.00000000"), ("100.4", "2.50000000"), ("100.3", "0.00100000")]
ASKS0 = [("100.6", "0.75000000"), ("100.7", "3.00000000")]


def synced(sink: ConnectionSink, channels: tuple[str, ...] = ("book",)) -> KrakenSession:
    s = session(sink, channels)
    s.subscribe(["BTC/USD"])
    cs = hand_checksum(ASKS0, BIDS0)
    assert s.feed(book_msg("snapshot", "BTC/USD", BIDS0, ASKS0, cs), TS) is None
    return s


def test_snapshot_and_updates_give_the_right_levels(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = synced(sink)
    (snap,) = recorder.of(BookSnapshot)
    assert snap.bids == tuple((fx(p), fx(q)) for p, q in BIDS0)
    assert snap.asks == tuple((fx(p), fx(q)) for p, q in ASKS0)
    # change one bid, remove one, add an ask
    bids = [("100.5", "1.00000000"), ("100.4", "0.50000000"), ("100.3", "0.00100000")]
    bids_after = [("100.5", "1.00000000"), ("100.4", "0.50000000")]
    asks_after = [*ASKS0, ("100.8", "2.00000000")]
    cs = hand_checksum(asks_after, bids_after)
    upd = book_msg("update", "BTC/USD", [bids[1], ("100.3", "0")], [("100.8", "2.00000000")], cs)
    assert s.feed(upd, TS + 1) is None
    assert sink.gaps == 0
    ups = recorder.of(BookUpdate)
    assert [(u.side, u.price, u.size, u.action) for u in ups] == [
        ("B", fx("100.4"), fx("0.5"), "M"),
        ("B", fx("100.3"), 0, "C"),
        ("A", fx("100.8"), fx("2"), "A"),
    ]
    assert ups[0].ts_event == 1696613755_440295000
    book = s.book("BTC/USD")
    assert book is not None
    assert book.levels() == (
        tuple((fx(p), fx(q)) for p, q in bids_after),
        tuple((fx(p), fx(q)) for p, q in asks_after),
    )


def test_checksum_covers_only_the_top_ten_and_depth_truncates(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("book",))  # depth 10
    s.subscribe(["BTC/USD"])
    bids = [(f"{100 - i}.0", f"0.{i + 1:02d}000000") for i in range(10)]
    asks = [(f"{101 + i}.0", "1.00000000") for i in range(10)]
    assert (
        s.feed(book_msg("snapshot", "BTC/USD", bids, asks, hand_checksum(asks, bids)), TS) is None
    )
    # a better bid pushes the worst (91.0) out of the subscribed depth
    new = ("100.5", "4.00000000")
    bids_after = [new, *bids[:9]]
    upd = book_msg("update", "BTC/USD", [new], [], hand_checksum(asks, bids_after))
    assert s.feed(upd, TS) is None
    assert sink.gaps == 0
    ups = recorder.of(BookUpdate)
    assert [(u.side, u.price, u.size, u.action) for u in ups] == [
        ("B", fx("100.5"), fx("4"), "A"),
        ("B", fx("91.0"), 0, "C"),
    ]


def test_mismatch_gap_resync_and_no_ghost_levels(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = synced(sink, ("trade", "book"))
    before = len(recorder.of(BookUpdate))
    upd = book_msg("update", "BTC/USD", [("100.2", "9.00000000")], [], 12345)
    out = s.feed(upd, TS + 5)
    # a Gap, the corrupt update not published, the book gone, a resubscribe asked for
    (gap,) = recorder.of(Gap)
    assert gap.symbol == "BTC/USD" and "checksum" in gap.reason
    assert len(recorder.of(BookUpdate)) == before
    assert s.book("BTC/USD") is None
    assert isinstance(out, Resubscribe)
    un, sub = out.requests
    assert un.payload == (
        b'{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        b'"req_id":3}'
    )
    assert sub.payload == (
        b'{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},'
        b'"req_id":4}'
    )
    # the old subscription's tail is dropped, not applied
    late = book_msg("update", "BTC/USD", [("100.1", "1.00000000")], [], 0)
    assert s.feed(late, TS + 6) is None
    assert len(recorder.of(BookUpdate)) == before and sink.gaps == 1
    # the acks of our own resync requests are the session's, not the connector's
    unack = ack(un.id, "BTC/USD", "book").replace(b'"subscribe"', b'"unsubscribe"')
    assert s.feed(unack, TS) is None
    assert s.feed(ack(sub.id, "BTC/USD", "book"), TS) is None
    # the fresh snapshot: only its levels exist (100.4 and 100.7 are gone)
    bids2 = [("100.5", "1.00000000"), ("100.3", "0.20000000")]
    asks2 = [("100.6", "0.75000000")]
    assert (
        s.feed(book_msg("snapshot", "BTC/USD", bids2, asks2, hand_checksum(asks2, bids2)), TS)
        is None
    )
    book = s.book("BTC/USD")
    assert book is not None
    assert set(book.bids) == {fx("100.5"), fx("100.3")}
    assert set(book.asks) == {fx("100.6")}
    assert book.bids[fx("100.3")] == fx("0.2")
    last = recorder.of(BookSnapshot)[-1]
    assert last.bids == ((fx("100.5"), fx("1")), (fx("100.3"), fx("0.2")))
    assert last.asks == ((fx("100.6"), fx("0.75")),)


def test_update_before_snapshot_resyncs(sink: ConnectionSink) -> None:
    s = session(sink, ("book",))
    s.subscribe(["BTC/USD"])
    out = s.feed(book_msg("update", "BTC/USD", [("1.0", "1.0")], [], 0), TS)
    assert isinstance(out, Resubscribe) and sink.gaps == 1


def test_unreadable_level_resyncs(sink: ConnectionSink) -> None:
    s = synced(sink)
    frame = book_msg("update", "BTC/USD", [("1.0000000001", "1.0")], [], 0)
    assert isinstance(s.feed(frame, TS), Resubscribe)
    assert sink.malformed_count == 1 and sink.gaps == 1 and s.book("BTC/USD") is None


def test_book_for_an_unsubscribed_symbol_builds_nothing(sink: ConnectionSink) -> None:
    s = session(sink, ("book",))
    assert s.feed(book_msg("snapshot", "ETH/USD", BIDS0, ASKS0, 0), TS) is None
    assert sink.snapshots == 0 and sink.gaps == 0 and sink.malformed_count == 0


# -- hostile input --------------------------------------------------------------------------
GOOD = [
    b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.5,'
    b'"qty":2,"ord_type":"limit","trade_id":1,"timestamp":"2023-09-25T07:48:36.925533Z"}]}',
    b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5,"bid_qty":2,'
    b'"ask":1.6,"ask_qty":3}]}',
    book_msg("snapshot", "BTC/USD", BIDS0, ASKS0, hand_checksum(ASKS0, BIDS0)),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    sink = EventProcessor(TypedEventBus()).sink_for("kraken")
    s = session(sink)
    s.subscribe(["BTC/USD"])
    s.feed(data, TS)
    assert sink.trades == 0 or data.startswith(b"{")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(GOOD), st.data())
def test_truncated_frames_are_malformed(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))
    sink = EventProcessor(TypedEventBus()).sink_for("kraken")
    s = session(sink)
    s.subscribe(["BTC/USD"])
    assert s.feed(frame[:cut], TS) is None
    assert sink.malformed_count == 1
    assert sink.trades == sink.quotes == sink.snapshots == 0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(GOOD), st.data())
def test_mutated_frames_never_raise(frame: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(frame) - 1))
    b = data.draw(st.integers(0, 255))
    sink = EventProcessor(TypedEventBus()).sink_for("kraken")
    s = session(sink)
    s.subscribe(["BTC/USD"])
    s.feed(frame[:i] + bytes([b]) + frame[i + 1 :], TS)
