"""The Coinbase Exchange dialect without sockets: subscribe bytes, FIFO replies, every
message kind to exact tick values, the maker/aggressor side, trade-id gaps, the level2
book and its resync, hypothesis. Values are checked against ``Decimal``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from hub_core import BookSnapshot, BookUpdate, Gap, Quote, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket import Ack, Notice, Refused, SessionConfig
from hub_plugin_websocket.dialects.coinbase import (
    CoinbaseDialect,
    CoinbaseSession,
    Resubscribe,
    rfc3339_ns,
)

SCALE = Decimal(1_000_000_000)
URL = "wss://ws-feed.exchange.coinbase.com"
TS = 1_700_000_000_000_000_000


def fx(text: str) -> int:
    value = Decimal(text) * SCALE
    assert value == value.to_integral_value()
    return int(value)


@pytest.fixture
def exchange() -> str:
    return "coinbase"  # the bus, recorder and sink fixtures are conftest's


def session(
    sink: ConnectionSink, channels: tuple[str, ...] = ("ticker", "matches", "level2", "heartbeat")
) -> CoinbaseSession:
    s = CoinbaseDialect().new_session(sink, SessionConfig(URL, channels, ""))
    assert isinstance(s, CoinbaseSession)
    return s


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def match(
    trade_id: int, seq: int, side: str, price: str = "400.23", size: str = "5.23512"
) -> bytes:
    return frame(
        {
            "type": "match",
            "trade_id": trade_id,
            "sequence": seq,
            "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
            "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
            "time": "2014-11-07T08:19:27.028459Z",
            "product_id": "BTC-USD",
            "size": size,
            "price": price,
            "side": side,
        }
    )


def subscriptions(*channels: tuple[str, list[str]]) -> bytes:
    return frame(
        {"type": "subscriptions", "channels": [{"name": n, "product_ids": p} for n, p in channels]}
    )


def test_rfc3339() -> None:
    assert rfc3339_ns("2014-11-07T08:19:27.028459Z") == 1415348367_028459000
    assert rfc3339_ns("2019-08-14T20:42:27.265Z") == 1565815347_265000000
    assert rfc3339_ns("2019-08-14T20:42:27Z") == 1565815347_000000000
    for bad in ("2019-08-14 20:42:27Z", "2019-08-14T20:42:27.1234567890Z", "x" * 25, ""):
        with pytest.raises(ValueError):
            rfc3339_ns(bad)


def test_subscribe_unsubscribe_exact_bytes_and_fifo_acks(sink: ConnectionSink) -> None:
    s = session(sink, ("matches", "level2"))
    (req,) = s.subscribe(["BTC-USD", "ETH-USD"])
    assert req.payload == (
        b'{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channels":["matches","level2"]}'
    )
    assert s.subscribe(["BTC-USD"]) == []
    (un,) = s.unsubscribe(["ETH-USD"])
    assert un.payload == (
        b'{"type":"unsubscribe","product_ids":["ETH-USD"],"channels":["matches","level2"]}'
    )
    # replies carry no id: they answer the oldest request first
    out1 = s.feed(subscriptions(("matches", ["BTC-USD", "ETH-USD"])), TS)
    assert out1 == Ack(req.id, ["matches:BTC-USD", "matches:ETH-USD"])
    out2 = s.feed(subscriptions(("matches", ["BTC-USD"])), TS)
    assert out2 == Ack(un.id, ["matches:BTC-USD"])
    assert isinstance(s.feed(subscriptions(), TS), Notice)  # nothing in flight
    assert s.streams == frozenset({"matches:BTC-USD", "level2:BTC-USD"})


def test_error_refuses_the_oldest_request(sink: ConnectionSink) -> None:
    s = session(sink, ("level2",))
    (req,) = s.subscribe(["BTC-USD"])
    err = frame(
        {"type": "error", "message": "Failed to subscribe", "reason": "level2 requires auth"}
    )
    out = s.feed(err, TS)
    assert out == Refused(req.id, 0, "Failed to subscribe: level2 requires auth")
    assert s.streams == frozenset()
    out2 = s.feed(err, TS)  # nothing in flight: unattributed
    assert isinstance(out2, Refused) and out2.id is None


def test_ticker_exact_values(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = session(sink)
    s.subscribe(["ETH-USD"])
    t = {
        "type": "ticker",
        "sequence": 37475248783,
        "product_id": "ETH-USD",
        "price": "1285.22",
        "open_24h": "1310.79",
        "volume_24h": "245532.79269678",
        "low_24h": "1280.52",
        "high_24h": "1313.8",
        "volume_30d": "9788783.60117027",
        "best_bid": "1285.04",
        "best_bid_size": "0.46688654",
        "best_ask": "1285.27",
        "best_ask_size": "1.56637040",
        "side": "buy",
        "time": "2022-10-19T23:28:22.061769Z",
        "trade_id": 370843401,
        "last_size": "11.4396987",
    }
    assert s.feed(frame(t), TS) is None
    (q,) = recorder.of(Quote)
    assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size, q.sequence) == (
        "ETH-USD",
        fx("1285.04"),
        fx("0.46688654"),
        fx("1285.27"),
        fx("1.5663704"),
        37475248783,
    )
    assert q.ts_event == rfc3339_ns("2022-10-19T23:28:22.061769Z")
    # an older or repeated sequence is stale: dropped, not a gap
    assert s.feed(frame(t), TS) is None
    assert len(recorder.of(Quote)) == 1 and sink.gaps == 0


def test_match_side_is_the_makers(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = session(sink)
    s.subscribe(["BTC-USD"])
    assert s.feed(match(10, 50, "sell"), TS) is None  # a resting sell was hit: buyer aggressed
    assert s.feed(match(11, 53, "buy", "400.22", "0.1"), TS) is None  # seller aggressed
    t1, t2 = recorder.of(Trade)
    assert (t1.price, t1.size, t1.side, t1.sequence) == (fx("400.23"), fx("5.23512"), "B", 50)
    assert (t2.price, t2.size, t2.side, t2.sequence) == (fx("400.22"), fx("0.1"), "A", 53)
    assert t1.ts_event == 1415348367_028459000
    assert (t1.trade_id, t2.trade_id) == ("10", "11")  # the match's own id
    # holes in `sequence` are normal on matches (it counts the whole feed): no gap
    assert sink.gaps == 0


def test_trade_id_hole_is_a_sequence_gap_and_resyncs_the_book(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("matches", "level2"))
    s.subscribe(["BTC-USD"])
    s.feed(
        frame({"type": "snapshot", "product_id": "BTC-USD", "bids": [["1.0", "1"]], "asks": []}), TS
    )
    assert s.book("BTC-USD") is not None
    assert s.feed(match(10, 50, "sell"), TS) is None
    out = s.feed(match(13, 60, "sell"), TS)
    (gap,) = recorder.of(Gap)
    assert "sequence" in gap.reason and (gap.start_seq, gap.end_seq) == (11, 12)
    assert len(recorder.of(Trade)) == 2  # the trade after the hole is still real
    assert isinstance(out, Resubscribe)
    assert [r.payload for r in out.requests] == [
        b'{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2"]}',
        b'{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}',
    ]
    assert s.book("BTC-USD") is None


def test_stale_match_dropped_and_last_match_sets_the_baseline(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("matches",))
    s.subscribe(["BTC-USD"])
    last = json.loads(match(9, 40, "buy"))
    last["type"] = "last_match"
    assert s.feed(frame(last), TS) is None
    assert recorder.of(Trade) == []  # from before we joined
    assert s.feed(match(10, 50, "sell"), TS) is None
    assert s.feed(match(10, 50, "sell"), TS) is None  # duplicate
    assert len(recorder.of(Trade)) == 1 and sink.gaps == 0


def test_heartbeat_last_trade_id_reveals_lost_matches(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("matches", "heartbeat"))
    s.subscribe(["BTC-USD"])
    hb = {
        "type": "heartbeat",
        "sequence": 90,
        "last_trade_id": 10,
        "product_id": "BTC-USD",
        "time": "2014-11-07T08:19:28.464459Z",
    }
    assert s.feed(frame(hb), TS) is None  # no baseline yet: nothing to compare
    s.feed(match(10, 50, "sell"), TS)
    assert s.feed(frame(hb), TS) is None and sink.gaps == 0
    assert s.feed(frame({**hb, "last_trade_id": 0}), TS) is None and sink.gaps == 0
    assert s.feed(frame({**hb, "sequence": 95, "last_trade_id": 12}), TS) is None
    (gap,) = recorder.of(Gap)
    assert "sequence" in gap.reason and (gap.start_seq, gap.end_seq) == (11, 12)
    s.feed(match(13, 99, "sell"), TS)  # continues from the heartbeat's id: no second gap
    assert sink.gaps == 1 and sink.malformed_count == 0


def l2(changes: list[list[str]]) -> bytes:
    return frame(
        {
            "type": "l2update",
            "product_id": "BTC-USD",
            "time": "2019-08-14T20:42:27.265Z",
            "changes": changes,
        }
    )


def test_level2_snapshot_and_updates(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = session(sink, ("level2",))
    s.subscribe(["BTC-USD"])
    snap = frame(
        {
            "type": "snapshot",
            "product_id": "BTC-USD",
            "bids": [["10101.10", "0.45054140"], ["10100.00", "1.0"]],
            "asks": [["10102.55", "0.57753524"]],
        }
    )
    assert s.feed(snap, TS) is None
    (bs,) = recorder.of(BookSnapshot)
    assert bs.bids == ((fx("10101.10"), fx("0.4505414")), (fx("10100"), fx("1")))
    assert bs.asks == ((fx("10102.55"), fx("0.57753524")),)
    upd = l2(
        [
            ["buy", "10101.80000000", "0.162567"],
            ["buy", "10100.00", "0"],
            ["sell", "10102.55", "0.5"],
        ]
    )
    assert s.feed(upd, TS) is None
    ups = recorder.of(BookUpdate)
    assert [(u.side, u.price, u.size, u.action) for u in ups] == [
        ("B", fx("10101.8"), fx("0.162567"), "A"),
        ("B", fx("10100"), 0, "C"),
        ("A", fx("10102.55"), fx("0.5"), "M"),
    ]
    assert ups[0].ts_event == rfc3339_ns("2019-08-14T20:42:27.265Z")
    book = s.book("BTC-USD")
    assert book is not None
    assert book.bids == {fx("10101.10"): fx("0.4505414"), fx("10101.8"): fx("0.162567")}


def test_level2_break_resyncs_without_ghost_levels(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("level2",))
    s.subscribe(["BTC-USD"])
    out0 = s.feed(l2([["buy", "1.0", "1"]]), TS)  # before any snapshot
    assert isinstance(out0, Resubscribe) and sink.gaps == 1
    s.feed(subscriptions(("level2", ["BTC-USD"])), TS)  # the user's subscribe
    s.feed(
        frame(
            {
                "type": "snapshot",
                "product_id": "BTC-USD",
                "bids": [["100", "1"], ["99", "2"]],
                "asks": [["101", "1"]],
            }
        ),
        TS,
    )
    assert s.book("BTC-USD") is not None
    out = s.feed(l2([["buy", "98", "not-a-number"]]), TS)
    assert isinstance(out, Resubscribe)
    assert sink.gaps == 2 and sink.malformed_count == 1
    assert "sequence" in recorder.of(Gap)[-1].reason
    assert s.book("BTC-USD") is None
    n_updates = len(recorder.of(BookUpdate))
    assert s.feed(l2([["buy", "97", "1"]]), TS) is None  # old subscription's tail
    assert len(recorder.of(BookUpdate)) == n_updates
    # replies to the resync requests are internal
    assert s.feed(subscriptions(), TS) is None
    assert s.feed(subscriptions(("level2", ["BTC-USD"])), TS) is None
    s.feed(
        frame(
            {
                "type": "snapshot",
                "product_id": "BTC-USD",
                "bids": [["100", "3"]],
                "asks": [["102", "1"]],
            }
        ),
        TS,
    )
    book = s.book("BTC-USD")
    assert book is not None
    assert book.bids == {fx("100"): fx("3")} and book.asks == {fx("102"): fx("1")}
    assert recorder.of(BookSnapshot)[-1].bids == ((fx("100"), fx("3")),)


def test_unknown_types_are_ignored_not_malformed(sink: ConnectionSink) -> None:
    s = session(sink)
    assert s.feed(b'{"type":"status","products":[],"currencies":[]}', TS) is None
    assert s.feed(match(1, 1, "buy"), TS) is None  # not subscribed: builds nothing
    assert sink.malformed_count == 0 and sink.trades == 0
    assert s.counters.by_kind["status"] == 1
    assert s.feed(b'{"type":"match","trade_id":"x"}', TS) is None
    assert sink.malformed_count == 1


def test_dialect_validation() -> None:
    d = CoinbaseDialect()
    assert d.validate_symbol("BTC-USD") == "BTC-USD"
    with pytest.raises(ValueError, match="upper case"):
        d.validate_symbol("btc-usd")
    with pytest.raises(ValueError):
        d.validate_channels(["full"])
    assert d.subscribe_deadline_s == 5.0


GOOD = [
    match(10, 50, "sell"),
    frame(
        {
            "type": "ticker",
            "sequence": 5,
            "product_id": "BTC-USD",
            "price": "1",
            "best_bid": "1",
            "best_bid_size": "2",
            "best_ask": "3",
            "best_ask_size": "4",
        }
    ),
    frame(
        {"type": "snapshot", "product_id": "BTC-USD", "bids": [["1", "2"]], "asks": [["3", "4"]]}
    ),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    sink = EventProcessor(TypedEventBus()).sink_for("coinbase")
    s = session(sink)
    s.subscribe(["BTC-USD"])
    s.feed(data, TS)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(GOOD), st.data())
def test_truncated_frames_are_malformed(fr: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(fr) - 1))
    sink = EventProcessor(TypedEventBus()).sink_for("coinbase")
    s = session(sink)
    s.subscribe(["BTC-USD"])
    assert s.feed(fr[:cut], TS) is None
    assert sink.malformed_count == 1
    assert sink.trades == sink.quotes == sink.snapshots == 0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(GOOD), st.data())
def test_mutated_frames_never_raise(fr: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(fr) - 1))
    b = data.draw(st.integers(0, 255))
    sink = EventProcessor(TypedEventBus()).sink_for("coinbase")
    s = session(sink)
    s.subscribe(["BTC-USD"])
    s.feed(fr[:i] + bytes([b]) + fr[i + 1 :], TS)
