"""The Binance dialect without sockets: recorded real traffic, the book sync procedure,
subscribe messages and replies, every payload shape.

Oracles are independent of the code under test: ``json.loads`` + ``Decimal`` for values,
and the recording's own ``U``/``u`` ids for the chain.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from hub_core import BookSnapshot, BookUpdate, Gap, Quote, Side, Trade
from hub_core.processor import ConnectionSink
from hub_core.testing import EventRecorder
from hub_plugin_websocket import (
    Ack,
    BinanceDialect,
    BinanceFuturesDialect,
    NeedSnapshot,
    Notice,
    Refused,
    ServerShutdown,
    SessionConfig,
)
from hub_plugin_websocket.dialects.binance import BinanceSession
from hub_plugin_websocket.recorded import Recording

SCALE = Decimal(1_000_000_000)
RAW = "wss://stream.binance.com:9443/ws"
COMBINED = "wss://stream.binance.com:9443/stream"


def fx(text: str) -> int:
    """The oracle: exact decimal text -> fixed point."""
    value = Decimal(text) * SCALE
    assert value == value.to_integral_value()
    return int(value)


def session(
    sink: ConnectionSink,
    channels: tuple[str, ...] = ("trade", "aggTrade", "bookTicker", "depth@100ms"),
    endpoint: str = RAW,
    *,
    futures: bool = False,
    max_buffered: int = 10_000,
) -> BinanceSession:
    dialect = BinanceFuturesDialect() if futures else BinanceDialect()
    s = dialect.new_session(
        sink,
        SessionConfig(endpoint, channels, "https://api.example", 100, max_buffered),
    )
    assert isinstance(s, BinanceSession)
    return s


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def depth(sym: str, first: int, last: int, bids: Any = (), asks: Any = (), **extra: Any) -> bytes:
    body = {"e": "depthUpdate", "E": 1_700_000_000_000 + last, "s": sym, "U": first, "u": last}
    body.update(extra)
    body["b"] = [list(x) for x in bids]
    body["a"] = [list(x) for x in asks]
    return frame(body)


def snapshot(last_id: int, bids: Any = (), asks: Any = ()) -> bytes:
    return frame(
        {
            "lastUpdateId": last_id,
            "bids": [list(x) for x in bids],
            "asks": [list(x) for x in asks],
        }
    )


# -- recorded real traffic ---------------------------------------------------------------------
def test_recording_is_what_the_readme_says(recording: Recording) -> None:
    assert recording.url.startswith("wss://stream.binance.com:9443/stream?streams=")
    assert len(recording.received) == 265  # plus the URL line
    kinds = [json.loads(m.text)["stream"].partition("@")[2] for m in recording.received]
    assert kinds.count("depth@100ms") == 177
    assert kinds.count("bookTicker") == 84
    assert kinds.count("aggTrade") == 2
    assert kinds.count("kline_1m") == 2


def test_depth_chain_of_the_recording_is_unbroken(recording: Recording) -> None:
    """Binance's rule on the raw data itself: each event's U is the previous u + 1."""
    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    for msg in recording.received:
        data = json.loads(msg.text)["data"]
        if data.get("e") != "depthUpdate":
            continue
        sym = data["s"]
        assert data["U"] <= data["u"]
        if sym in last:
            assert data["U"] == last[sym] + 1, f"{sym}: {data['U']} after {last[sym]}"
        last[sym] = data["u"]
        counts[sym] = counts.get(sym, 0) + 1
    assert set(counts) == {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}


def _replay(
    sink: ConnectionSink,
    recording: Recording,
    drop_line: int | None = None,
    *,
    batch: bool = True,
) -> BinanceSession:
    """Feed the recording. The recording has no REST snapshots, so each one asked for is
    an empty book just before the update that asked (its ``U`` - 1): the book is then
    exactly what the updates from there on build. ``batch=False``: as on a sink without
    ``book_levels_json`` (an older hub-core), one call per level."""
    s = session(sink, ("depth@100ms", "bookTicker", "aggTrade"), recording.url)
    if not batch:
        s._book_levels = None
    for i, msg in enumerate(recording.received):
        if i == drop_line:
            continue
        event = s.feed(msg.text, 1_700_000_000_000_000_000 + i)
        if isinstance(event, NeedSnapshot):
            first_u = json.loads(msg.text)["data"]["U"]
            assert s.snapshot_received(event.symbol, snapshot(first_u - 1), 1) is None
        else:
            assert event is None
    return s


def test_every_recorded_message_parses(
    sink: ConnectionSink, recorder: EventRecorder, recording: Recording
) -> None:
    s = _replay(sink, recording)
    assert sink.malformed_count == 0
    assert s.counters.by_kind == {"kline": 2}  # candles: well-formed, no tick type
    assert not recorder.of(Gap)
    assert len(recorder.of(Trade)) == 2
    assert len(recorder.of(Quote)) == 84
    # one BookSnapshot per symbol when its (empty) snapshot synced the book
    assert sorted(b.symbol for b in recorder.of(BookSnapshot)) == [
        "BLZETH",
        "LRCBTC",
        "NKNUSDT",
        "RUNEEUR",
    ]


def test_recorded_values_are_exact(
    sink: ConnectionSink, recorder: EventRecorder, recording: Recording
) -> None:
    """Every tick against json.loads + Decimal of the same line, field by field."""
    _replay(sink, recording)
    quotes, trades = iter(recorder.of(Quote)), iter(recorder.of(Trade))
    books: dict[str, dict[tuple[str, int], int]] = {}
    for msg in recording.received:
        outer = json.loads(msg.text)
        data, channel = outer["data"], outer["stream"].partition("@")[2]
        if channel == "bookTicker":
            q = next(quotes)
            assert (q.symbol, q.sequence) == (data["s"], data["u"])
            assert (q.bid_price, q.bid_size) == (fx(data["b"]), fx(data["B"]))
            assert (q.ask_price, q.ask_size) == (fx(data["a"]), fx(data["A"]))
        elif channel == "aggTrade":
            t = next(trades)
            assert (t.symbol, t.price, t.size) == (data["s"], fx(data["p"]), fx(data["q"]))
            assert t.side == (Side.SELL if data["m"] else Side.BUY)
            assert t.ts_event == data["T"] * 1_000_000
            assert t.sequence == data["a"] and t.trade_id == str(data["a"])
        elif channel.startswith("depth"):
            book = books.setdefault(data["s"], {})
            for side, levels in (("B", data["b"]), ("A", data["a"])):
                for p, q in levels:
                    if fx(q):
                        book[(side, fx(p))] = fx(q)
                    else:
                        book.pop((side, fx(p)), None)
    # each BookSnapshot plus the updates after it rebuild exactly the oracle's books
    rebuilt: dict[str, dict[tuple[str, int], int]] = {}
    for e in recorder.events:
        if isinstance(e, BookSnapshot):
            rebuilt[e.symbol] = {("B", p): q for p, q in e.bids} | {("A", p): q for p, q in e.asks}
        elif isinstance(e, BookUpdate):
            levels = rebuilt[e.symbol]
            if e.size:
                levels[(e.side, e.price)] = e.size
            else:
                assert (e.side, e.price) in levels, "removal of a level nobody was told about"
                del levels[(e.side, e.price)]
    assert rebuilt == books


def test_a_lost_recorded_update_is_a_gap_then_a_fresh_book(
    sink: ConnectionSink, recorder: EventRecorder, recording: Recording
) -> None:
    lines = [json.loads(m.text) for m in recording.received]
    nkn = [i for i, o in enumerate(lines) if o["stream"] == "nknusdt@depth@100ms"]
    lost = nkn[5]
    s = _replay(sink, recording, drop_line=lost)
    gaps = recorder.of(Gap)
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.symbol == "NKNUSDT" and "sequence" in gap.reason
    assert (gap.start_seq, gap.end_seq) == (lines[lost]["data"]["U"], lines[lost]["data"]["u"])
    # resynced from the (empty) fresh snapshot: only levels sent after the loss survive,
    # never one remembered from before it (no patching of the old book)
    after: dict[tuple[str, int], int] = {}
    for i in nkn:
        if i <= lost:
            continue
        data = lines[i]["data"]
        for side, levels in (("B", data["b"]), ("A", data["a"])):
            for p, q in levels:
                if fx(q):
                    after[(side, fx(p))] = fx(q)
                else:
                    after.pop((side, fx(p)), None)
    book = s.book("NKNUSDT")
    assert book is not None
    got = {("B", p): q for p, q in book.bids.items()} | {("A", p): q for p, q in book.asks.items()}
    assert got == after
    before_only = {
        (side, fx(p))
        for i in nkn[:5]
        for side, key in (("B", "b"), ("A", "a"))
        for p, _ in lines[i]["data"][key]
    } - set(after)
    assert before_only and not before_only & set(got)
    assert len(recorder.of(BookSnapshot)) == 5  # four initial syncs and the resync


# -- the book sync procedure (Binance: "How to manage a local order book correctly") --------
def _subscribed(sink: ConnectionSink, **kw: Any) -> BinanceSession:
    s = session(sink, ("depth",), **kw)
    assert len(s.subscribe(["BTCUSDT"])) == 1
    return s


def test_sync_drops_old_events_and_joins_the_snapshot(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    need = s.feed(depth("BTCUSDT", 95, 99, bids=[("10.0", "1")]), 1)
    assert need == NeedSnapshot(
        "BTCUSDT", "https://api.example/api/v3/depth?symbol=BTCUSDT&limit=100"
    )
    assert s.feed(depth("BTCUSDT", 100, 103, bids=[("10.5", "2")]), 2) is None
    assert s.feed(depth("BTCUSDT", 104, 104, asks=[("11.0", "0")]), 3) is None
    assert not recorder.of(BookSnapshot)  # buffered until the snapshot
    body = snapshot(101, bids=[("10.0", "5"), ("9.0", "1")], asks=[("11.0", "4"), ("12", "3")])
    assert s.snapshot_received("BTCUSDT", body, 4) is None
    (snap,) = recorder.of(BookSnapshot)
    # 95..99 dropped (u <= 101); 100..103 spans 102 and applies; 104 removes 11.0
    assert snap.bids == ((fx("10.5"), fx("2")), (fx("10"), fx("5")), (fx("9"), fx("1")))
    assert snap.asks == ((fx("12"), fx("3")),)
    assert snap.sequence == 104
    assert not recorder.of(BookUpdate) and not recorder.of(Gap)
    # live: the next event continues the chain and is published level by level
    assert s.feed(depth("BTCUSDT", 105, 106, bids=[("10.5", "0")], asks=[("11.5", "7")]), 5) is None
    ups = [(u.side, u.price, u.size, u.action, u.sequence) for u in recorder.of(BookUpdate)]
    assert ups == [("B", fx("10.5"), 0, "C", 106), ("A", fx("11.5"), fx("7"), "A", 106)]
    book = s.book("BTCUSDT")
    assert book is not None and book.best_bid() == (fx("10"), fx("5"))


def test_snapshot_older_than_the_buffer_is_fetched_again(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    assert isinstance(s.feed(depth("BTCUSDT", 200, 205), 1), NeedSnapshot)
    again = s.snapshot_received("BTCUSDT", snapshot(150), 2)
    assert isinstance(again, NeedSnapshot)
    assert not recorder.of(Gap) and not recorder.of(BookSnapshot)
    # an exact join (lastUpdateId = U - 1) is fine
    assert s.snapshot_received("BTCUSDT", snapshot(199, bids=[("1", "1")]), 3) is None
    assert recorder.of(BookSnapshot)[0].sequence == 205


def test_hole_between_snapshot_and_buffer_is_a_gap(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    s.feed(depth("BTCUSDT", 100, 101), 1)
    s.feed(depth("BTCUSDT", 105, 106), 2)  # 102..104 lost before the snapshot arrives
    need = s.snapshot_received("BTCUSDT", snapshot(101), 3)
    assert isinstance(need, NeedSnapshot)
    (gap,) = recorder.of(Gap)
    assert gap.symbol == "BTCUSDT" and "sequence" in gap.reason
    assert not recorder.of(BookSnapshot)
    assert s.book("BTCUSDT") is None


def test_live_break_publishes_gap_discards_the_book_and_resyncs(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    s.feed(depth("BTCUSDT", 10, 10), 1)
    s.snapshot_received("BTCUSDT", snapshot(9, bids=[("5", "1"), ("4", "1")]), 2)
    s.feed(depth("BTCUSDT", 11, 12, bids=[("4", "0")]), 3)
    need = s.feed(depth("BTCUSDT", 20, 21, bids=[("6", "1")]), 4)  # 13..19 lost
    assert isinstance(need, NeedSnapshot)
    (gap,) = recorder.of(Gap)
    assert "sequence gap" in gap.reason and (gap.start_seq, gap.end_seq) == (13, 19)
    assert s.book("BTCUSDT") is None  # not patched: rebuilt from the next snapshot
    n_updates = len(recorder.of(BookUpdate))
    s.feed(depth("BTCUSDT", 22, 22), 5)  # buffered, not applied to anything
    assert len(recorder.of(BookUpdate)) == n_updates
    s.snapshot_received("BTCUSDT", snapshot(21, bids=[("7", "2")]), 6)
    last = recorder.of(BookSnapshot)[-1]
    assert last.bids == ((fx("7"), fx("2")),) and last.sequence == 22


def test_overlapping_event_after_sync_is_accepted(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    s.feed(depth("BTCUSDT", 10, 10), 1)
    s.snapshot_received("BTCUSDT", snapshot(12), 2)  # u=10 <= 12: dropped
    assert s.feed(depth("BTCUSDT", 11, 15, asks=[("3", "1")]), 3) is None  # 11 <= 13 <= 15
    assert s.feed(depth("BTCUSDT", 12, 14), 4) is None  # entirely old: ignored
    assert not recorder.of(Gap)
    assert [u.sequence for u in recorder.of(BookUpdate)] == [15]


def test_futures_chain_uses_pu(sink: ConnectionSink, recorder: EventRecorder) -> None:
    s = _subscribed(sink, futures=True)
    s.feed(depth("BTCUSDT", 90, 100, pu=89), 1)
    s.feed(depth("BTCUSDT", 101, 110, pu=100, bids=[("2", "1")]), 2)
    assert s.snapshot_received("BTCUSDT", snapshot(105), 3) is None  # U<=105<=u
    assert recorder.of(BookSnapshot)[-1].sequence == 110
    assert s.feed(depth("BTCUSDT", 111, 120, pu=110, bids=[("3", "1")]), 4) is None
    # futures ids are not contiguous: only pu decides
    assert s.feed(depth("BTCUSDT", 130, 140, pu=120), 5) is None
    assert not recorder.of(Gap)
    assert isinstance(s.feed(depth("BTCUSDT", 150, 160, pu=145), 6), NeedSnapshot)
    assert "sequence gap" in recorder.of(Gap)[0].reason


def test_depth_of_an_unsubscribed_symbol_builds_nothing(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    s.feed(depth("BTCUSDT", 1, 1), 1)
    s.unsubscribe(["BTCUSDT"])
    assert s.feed(depth("BTCUSDT", 2, 2), 2) is None
    assert s.feed(depth("ETHUSDT", 1, 1), 3) is None
    assert s.snapshot_received("BTCUSDT", snapshot(1), 4) is None
    assert not recorder.of(BookSnapshot) and sink.malformed_count == 0


def test_buffer_overflow_while_waiting_is_a_gap(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink, max_buffered=10)
    events = [s.feed(depth("BTCUSDT", i, i), i) for i in range(1, 12)]
    assert isinstance(events[0], NeedSnapshot) and isinstance(events[10], NeedSnapshot)
    (gap,) = recorder.of(Gap)
    assert "sequence sync" in gap.reason and (gap.start_seq, gap.end_seq) == (1, 11)


def test_unreadable_level_in_a_synced_book_is_malformed_and_a_gap(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = _subscribed(sink)
    s.feed(depth("BTCUSDT", 1, 1), 1)
    s.snapshot_received("BTCUSDT", snapshot(1, bids=[("1", "1")]), 2)
    bad = depth("BTCUSDT", 2, 2, bids=[("1.0000000001", "1")])  # finer than 1e-9
    assert isinstance(s.feed(bad, 3), NeedSnapshot)
    assert sink.malformed_count == 1
    assert "sequence" in recorder.of(Gap)[0].reason
    assert not recorder.of(BookUpdate)  # nothing half-applied


def test_bad_snapshot_body_asks_again_on_the_next_event(sink: ConnectionSink) -> None:
    s = _subscribed(sink)
    assert isinstance(s.feed(depth("BTCUSDT", 1, 1), 1), NeedSnapshot)
    assert s.snapshot_received("BTCUSDT", b'{"lastUpdateId":"x"}', 2) is None
    assert sink.malformed_count == 1
    assert isinstance(s.feed(depth("BTCUSDT", 2, 2), 3), NeedSnapshot)
    s.snapshot_failed("BTCUSDT", "HTTP 500")
    assert isinstance(s.feed(depth("BTCUSDT", 3, 3), 4), NeedSnapshot)


# -- payload shapes -------------------------------------------------------------------------------
TRADE = {"e": "trade", "E": 2, "s": "BTCUSDT", "t": 12, "p": "60000.10", "q": "0.00100000",
         "T": 1_700_000_000_123, "m": True, "M": True}  # fmt: skip
BOOK_TICKER = {"u": 400, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
               "a": "25.36520000", "A": "40.66000000"}  # fmt: skip


@pytest.mark.parametrize("shape", ["raw", "combined", "reordered"])
def test_trade_and_book_ticker_in_every_shape(
    sink: ConnectionSink, recorder: EventRecorder, shape: str
) -> None:
    s = session(sink)

    def wrap(stream: str, data: dict[str, Any]) -> bytes:
        if shape == "raw":
            return frame(data)
        if shape == "combined":
            return frame({"stream": stream, "data": data})
        return frame({"data": dict(reversed(list(data.items()))), "stream": stream})

    assert s.feed(wrap("btcusdt@trade", TRADE), 42) is None
    assert s.feed(wrap("bnbusdt@bookTicker", BOOK_TICKER), 43) is None
    (t,) = recorder.of(Trade)
    assert (t.exchange, t.symbol, t.price, t.size) == (
        "binance",
        "BTCUSDT",
        fx("60000.1"),
        fx("0.001"),
    )
    assert (t.side, t.ts_event, t.ts_recv, t.sequence) == (
        Side.SELL,
        1_700_000_000_123_000_000,
        42,
        12,
    )
    assert t.trade_id == "12"  # the trade id fills trade_id, as on every venue
    (q,) = recorder.of(Quote)
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        fx("25.3519"), fx("31.21"), fx("25.3652"), fx("40.66"))  # fmt: skip
    assert (q.sequence, q.ts_event, q.ts_recv) == (400, 43, 43)
    assert sink.malformed_count == 0


def test_futures_book_ticker_carries_its_time(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    s = session(sink, ("bookTicker",), futures=True)
    body = {"e": "bookTicker", "u": 9, "E": 5, "T": 1_700_000_000_001, "s": "BTCUSDT",
            "b": "1", "B": "2", "a": "3", "A": "4"}  # fmt: skip
    assert s.feed(frame(body), 7) is None
    assert recorder.of(Quote)[0].ts_event == 1_700_000_000_001_000_000


# USD-M futures payloads byte for byte as fstream writes them (its key order, no "M")
FUT_BOOK_TICKER = (
    b'{"e":"bookTicker","u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
    b'"a":"25.36520000","A":"40.66000000","T":1568014460891,"E":1568014460893}'
)
FUT_AGG_TRADE = (
    b'{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100",'
    b'"f":100,"l":105,"T":123456785,"m":true}'
)


def fut_depth(first: int, last: int, pu: int, bids: str, asks: str) -> bytes:
    return (
        f'{{"e":"depthUpdate","E":1591270260907,"T":1591270260891,"s":"BTCUSDT","U":{first},'
        f'"u":{last},"pu":{pu},"b":[{bids}],"a":[{asks}]}}'
    ).encode()


@pytest.mark.parametrize("combined", [False, True])
def test_futures_payloads_in_fstream_order_raw_and_combined(
    sink: ConnectionSink, recorder: EventRecorder, combined: bool
) -> None:
    url = "wss://fstream.binance.com/stream" if combined else "wss://fstream.binance.com/ws"
    s = session(sink, ("aggTrade", "bookTicker", "depth@100ms"), url, futures=True)
    s.subscribe(["BTCUSDT"])

    def wrap(stream: str, payload: bytes) -> bytes:
        return (
            b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
            if combined
            else payload
        )

    assert s.feed(wrap("bnbusdt@bookTicker", FUT_BOOK_TICKER), 7) is None
    (q,) = recorder.of(Quote)
    assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        "BNBUSDT", fx("25.3519"), fx("31.21"), fx("25.3652"), fx("40.66"))  # fmt: skip
    assert (q.ts_event, q.ts_recv, q.sequence) == (1_568_014_460_891_000_000, 7, 400900217)
    assert s.feed(wrap("btcusdt@aggTrade", FUT_AGG_TRADE), 8) is None
    (t,) = recorder.of(Trade)
    assert (t.symbol, t.price, t.size, t.side) == ("BTCUSDT", fx("0.001"), fx("100"), Side.SELL)
    assert (t.ts_event, t.sequence, t.trade_id) == (123_456_785_000_000, 5933014, "5933014")
    # the depth stream: buffered, joined to the snapshot, then applied level by level
    first = fut_depth(150, 160, 149, '["7000.1","2"]', "")
    assert isinstance(s.feed(wrap("btcusdt@depth@100ms", first), 9), NeedSnapshot)
    body = snapshot(155, bids=[("7000.0", "1")], asks=[("7001.0", "3")])
    assert s.snapshot_received("BTCUSDT", body, 10) is None
    assert recorder.of(BookSnapshot)[-1].sequence == 160
    live = fut_depth(161, 170, 160, '["7000.1","0"],["6999.5","4"]', '["7001.0","3.5"]')
    assert s.feed(wrap("btcusdt@depth@100ms", live), 11) is None
    ups = [(u.side, u.price, u.size, u.action, u.sequence) for u in recorder.of(BookUpdate)]
    assert ups == [
        ("B", fx("7000.1"), 0, "C", 170),
        ("B", fx("6999.5"), fx("4"), "A", 170),
        ("A", fx("7001.0"), fx("3.5"), "M", 170),
    ]
    assert recorder.of(BookUpdate)[0].ts_event == 1_591_270_260_907_000_000
    # the chain is pu: a break is a Gap and a new snapshot
    assert isinstance(
        s.feed(wrap("btcusdt@depth@100ms", fut_depth(175, 180, 172, "", "")), 12), NeedSnapshot
    )
    assert "sequence gap" in recorder.of(Gap)[0].reason
    assert sink.malformed_count == 0


def test_depth_without_the_sinks_batch_call_gives_the_same_ticks(recording: Recording) -> None:
    """A sink of an older hub-core has no ``book_levels_json``: the levels then go one call
    at a time, with the same ticks, books and malformed counting."""
    from hub_core import TypedEventBus
    from hub_core.processor import EventProcessor

    outcomes = []
    for batch in (True, False):
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        sink = EventProcessor(bus).sink_for("binance")
        s = _replay(sink, recording, batch=batch)
        book = s.book("NKNUSDT")
        assert book is not None
        nxt = book.last_sequence + 1
        # in sequence, one good bid, one unreadable ask: malformed, a Gap, nothing applied
        bad = depth("NKNUSDT", nxt, nxt, bids=[("0.3", "1")], asks=[("0.1e", "1")])
        assert isinstance(s.feed(bad, 2), NeedSnapshot)
        assert not [u for u in rec.of(BookUpdate) if u.sequence == nxt]  # not half-applied
        ups = [
            (u.symbol, u.side, u.price, u.size, u.action, u.sequence) for u in rec.of(BookUpdate)
        ]
        books = {sym: s.book(sym) for sym in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")}
        outcomes.append(
            (
                ups,
                {k: b.snapshot() if b else None for k, b in books.items()},
                sink.gaps,
                sink.malformed_count,
            )
        )
    assert outcomes[0] == outcomes[1]
    ups, books, gaps, malformed = outcomes[0]
    assert len(ups) > 100 and books["NKNUSDT"] is None and (gaps, malformed) == (1, 1)


def test_spot_combined_frames_that_look_like_a_book_ticker_and_are_not(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    """A combined spot frame ending in '"}}' is first tried as a bookTicker; whatever it
    really is, the outcome is the general path's."""
    s = session(sink, ("trade", "bookTicker"), COMBINED)
    ticker = b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1,"s":"BTCUSDT","c":"1"}}'
    assert s.feed(ticker, 1) is None
    assert s.counters.by_kind == {"24hrTicker": 1} and sink.malformed_count == 0
    reordered = frame({"stream": "bnbusdt@bookTicker",
                       "data": dict(reversed(list(BOOK_TICKER.items())))})  # fmt: skip
    assert reordered.endswith(b"400}}")  # not '"}}': the event-union path, then the general one
    assert s.feed(reordered, 2) is None
    (q,) = recorder.of(Quote)
    assert (q.symbol, q.bid_price, q.ask_size, q.sequence) == (
        "BNBUSDT", fx("25.3519"), fx("40.66"), 400)  # fmt: skip
    no_ask = b'{"stream":"x@bookTicker","data":{"u":1,"s":"X","b":"1","B":"1","a":"1","x":"y"}}'
    assert s.feed(no_ask, 3) is None
    assert sink.malformed_count == 1 and len(recorder.of(Quote)) == 1


@pytest.mark.parametrize(
    "text",
    [
        '{"e":"serverShutdown","E":1700000000000}',
        '{"stream":"x@y","data":{"e":"serverShutdown","E":1}}',
        '{"event":{"e":"serverShutdown","E":1770123456789}}',
    ],
)
def test_server_shutdown_in_every_shape(sink: ConnectionSink, text: str) -> None:
    assert isinstance(session(sink).feed(text.encode(), 1), ServerShutdown)


def test_partial_depth_needs_combined_streams(
    sink: ConnectionSink, recorder: EventRecorder
) -> None:
    with pytest.raises(ValueError, match="combined"):
        session(sink, ("depth5",), RAW)
    s = session(sink, ("depth5",), COMBINED)
    s.subscribe(["ETHUSDT"])
    body = {"stream": "ethusdt@depth5", "data": {"lastUpdateId": 7, "bids": [["3000.1", "2"]],
            "asks": [["3000.2", "1"], ["3000.3", "4"]]}}  # fmt: skip
    assert s.feed(frame(body), 9) is None
    (snap,) = recorder.of(BookSnapshot)
    assert snap.symbol == "ETHUSDT" and snap.sequence == 7
    assert snap.asks == ((fx("3000.2"), fx("1")), (fx("3000.3"), fx("4")))


def test_unknown_event_is_ignored_not_malformed(sink: ConnectionSink) -> None:
    s = session(sink)
    assert s.feed(b'{"e":"24hrTicker","E":1,"s":"BTCUSDT","c":"1"}', 1) is None
    assert s.feed(b'{"stream":"btcusdt@ticker","data":{"e":"24hrMiniTicker"}}', 1) is None
    assert sink.malformed_count == 0 and s.counters.ignored == 2


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b'{"e":"trade","E":1,"s":"BTC',  # truncated
        b'{"e":"trade","s":"BTCUSDT","t":1,"p":60000,"q":"1","T":1,"m":true}',  # p a number
        b'{"e":"trade","s":"BTCUSDT","t":1,"p":"6e","q":"1","T":1,"m":true}',  # bad decimal
        b'{"u":1,"s":"X","b":"1","B":"1","a":"1"}',  # bookTicker without A
        b"[1,2,3]",
        b'{"foo":1}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_are_counted(sink: ConnectionSink, text: bytes) -> None:
    assert session(sink).feed(text, 1) is None
    assert sink.malformed_count == 1 and sink.trades == 0 and sink.quotes == 0


# -- requests and replies --------------------------------------------------------------------------
def test_subscribe_unsubscribe_list_messages(sink: ConnectionSink) -> None:
    s = session(sink, ("trade", "depth@100ms"))
    (sub,) = s.subscribe(["BTCUSDT", "ETHUSDT"])
    assert json.loads(sub.payload) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade", "ethusdt@depth@100ms"],
        "id": 1,
    }
    assert sub.op == "subscribe" and sub.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.subscribe(["BTCUSDT"]) == []  # already subscribed: nothing to send
    (unsub,) = s.unsubscribe(["ETHUSDT"])
    assert json.loads(unsub.payload) == {
        "method": "UNSUBSCRIBE",
        "params": ["ethusdt@depth@100ms", "ethusdt@trade"],
        "id": 2,
    }
    assert s.streams == {"btcusdt@trade", "btcusdt@depth@100ms"}
    listing = s.list_subscriptions()
    assert json.loads(listing.payload) == {"method": "LIST_SUBSCRIPTIONS", "id": 3}
    assert s.feed(b'{"result":["btcusdt@trade"],"id":3}', 1) == Ack(3, ["btcusdt@trade"])
    assert s.feed(b'{"result":null,"id":1}', 1) == Ack(1, None)


def test_subscribe_is_split_under_the_per_message_limit(sink: ConnectionSink) -> None:
    s = session(sink, ("trade", "bookTicker"))
    symbols = [f"SYM{i}USDT" for i in range(150)]
    reqs = s.subscribe(symbols)
    assert [len(r.streams) for r in reqs] == [200, 100]
    assert [r.id for r in reqs] == [1, 2]
    assert {st for r in reqs for st in r.streams} == s.streams


@pytest.mark.parametrize(
    ("reply", "code", "msg"),
    [
        (
            b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":1}',
            2,
            "Invalid request: invalid stream",
        ),
        (b'{"code":0,"msg":"Unknown property","id":1}', 0, "Unknown property"),
    ],
)  # fmt: skip
def test_refusal_in_both_shapes_rolls_back_the_streams(
    sink: ConnectionSink, reply: bytes, code: int, msg: str
) -> None:
    s = session(sink, ("depth",))
    s.subscribe(["BTCUSDT"])
    assert s.feed(reply, 1) == Refused(1, code, msg)
    assert s.streams == frozenset()
    assert s.feed(depth("BTCUSDT", 1, 1), 2) is None  # no book is kept for it any more


def test_reply_without_id_is_a_notice(sink: ConnectionSink) -> None:
    assert isinstance(session(sink).feed(b'{"result":null,"id":null}', 1), Notice)
    assert session(sink).feed(b'{"error":{"code":3,"msg":"Invalid JSON"},"id":null}', 1) == (
        Refused(None, 3, "Invalid JSON")
    )


def test_streams_in_the_url_are_known(sink: ConnectionSink, recording: Recording) -> None:
    s = session(sink, ("depth@100ms",), recording.url)
    assert "nknusdt@depth@100ms" in s.streams and len(s.streams) == 16
    raw = session(sink, ("trade",), "wss://stream.binance.com:9443/ws/btcusdt@trade")
    assert raw.streams == {"btcusdt@trade"}


# -- the dialect object --------------------------------------------------------------------------
def test_symbols_channels_and_endpoints_are_validated() -> None:
    d = BinanceDialect()
    assert d.validate_symbol("BTCUSDT") == "BTCUSDT"
    with pytest.raises(ValueError, match="upper case"):
        d.validate_symbol("btcusdt")
    with pytest.raises(ValueError, match="not a binance symbol"):
        d.validate_symbol("BTC USDT")
    assert d.validate_channels(["trade", "trade", "depth@100ms"]) == ("trade", "depth@100ms")
    with pytest.raises(ValueError, match="unknown binance channel 'kline_1m'"):
        d.validate_channels(["kline_1m"])
    d.validate_endpoint("wss://stream.binance.com:9443/ws")
    d.validate_endpoint("wss://stream.binance.com:9443/stream?streams=btcusdt@trade")
    with pytest.raises(ValueError, match="/ws"):
        d.validate_endpoint("wss://stream.binance.com:9443/")
    assert d.default_rest_url("wss://stream.binance.com:9443/ws") == "https://api.binance.com"
    assert d.default_rest_url("ws://127.0.0.1:9000/ws") == "http://127.0.0.1:9000"
    f = BinanceFuturesDialect()
    assert f.default_rest_url("wss://fstream.binance.com/ws") == "https://fapi.binance.com"
    assert f.limits.messages_per_second == 10 and d.limits.messages_per_second == 5
