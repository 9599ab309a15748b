import pytest

import hub_core
from hub_core import (
    PRICE_SCALE,
    BookSnapshot,
    BookUpdate,
    ConnectionState,
    ConnectionStateChanged,
    Gap,
    Quote,
    Side,
    Trade,
    factories as f,
)


def test_keyword_construction_and_fields() -> None:
    t = Trade(
        exchange="nt",
        symbol="ES",
        price=5_000_250_000_000,
        size=2 * PRICE_SCALE,
        side=Side.BUY,
        ts_event=1,
        ts_recv=2,
    )
    assert (t.exchange, t.symbol, t.price, t.size, t.side, t.ts_event, t.ts_recv) == (
        "nt",
        "ES",
        5_000_250_000_000,
        2 * PRICE_SCALE,
        "B",
        1,
        2,
    )
    assert t.price_float == 5000.25
    q = Quote(
        exchange="nt",
        symbol="ES",
        bid_price=1,
        bid_size=2,
        ask_price=3,
        ask_size=4,
        ts_event=5,
        ts_recv=6,
    )
    assert q.as_dict()["ask_size"] == 4
    b = BookUpdate(
        exchange="nt", symbol="ES", side=Side.ASK, price=10, size=0, ts_event=1, ts_recv=2
    )
    assert b.size == 0 and b.action == "M"
    s = BookSnapshot(
        exchange="nt", symbol="ES", bids=((2, 1),), asks=((3, 1),), ts_event=1, ts_recv=2
    )
    assert s.as_dict()["bids"] == [[2, 1]]
    g = Gap(exchange="nt", symbol="", start_ts=10, end_ts=20, reason="drop")
    assert g.ts_event == 20
    c = ConnectionStateChanged(
        exchange="nt", state=ConnectionState.CONNECTED, reason="", ts_event=1, ts_recv=1
    )
    assert c.healthy and c.symbol == ""


def test_factories_build_the_same_ticks_as_constructors() -> None:
    a = f.trade_from_text("x", "BTCUSDT", "0.35130000", "6195.0", Side.SELL, 1, 2, 7)
    b = Trade("x", "BTCUSDT", 351_300_000, 6195 * PRICE_SCALE, Side.SELL, 1, 2, 7)
    assert a == b
    assert f.trade_from_bytes("x", "BTCUSDT", b"0.3513", b"6195", "A", 1, 2, 7) == b
    assert f.new_trade("x", "BTCUSDT", 351_300_000, 6195 * PRICE_SCALE, "A", 1, 2, 7) == b
    q = f.quote_from_text("x", "S", "1.5", "2", "1.75", "3", 1, 2)
    assert (q.bid_price, q.ask_price, q.ask_size) == (1_500_000_000, 1_750_000_000, 3 * PRICE_SCALE)
    assert f.quote_from_bytes("x", "S", b"1.5", b"2", b"1.75", b"3", 1, 2) == q
    u = f.book_update_from_text("x", "S", "B", "10.5", "0", 1, 2, "C")
    assert (u.price, u.size, u.action) == (10_500_000_000, 0, "C")


def test_factories_reject_malformed_numbers() -> None:
    with pytest.raises(hub_core.MalformedNumber):
        f.trade_from_text("x", "S", "1.2.3", "1", "B", 0, 0)


@pytest.mark.skipif(not hub_core.COMPILED, reason="immutability is enforced by the compiled build")
def test_ticks_are_immutable_once_built() -> None:
    t = Trade("x", "S", 1, 1, "B", 0, 0)
    with pytest.raises(AttributeError):
        t.price = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        t.extra = 1  # type: ignore[attr-defined]
