import logging

import pytest

from hub_core import Gap, Quote, Trade, TypedEventBus


def trade(ex: str = "a", sym: str = "S", price: int = 1) -> Trade:
    return Trade(ex, sym, price, 1, "B", 0, 0)


def test_subscribers_get_the_same_object_in_order() -> None:
    bus = TypedEventBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(Trade, lambda t: seen.append(("first", t)))
    bus.subscribe(Trade, lambda t: seen.append(("second", t)))
    t = trade()
    bus.publish(t)
    assert [name for name, _ in seen] == ["first", "second"]
    assert all(obj is t for _, obj in seen)


def test_types_are_routed_separately() -> None:
    bus = TypedEventBus()
    trades: list[object] = []
    quotes: list[object] = []
    bus.subscribe(Trade, trades.append)
    bus.subscribe(Quote, quotes.append)
    bus.publish(trade())
    bus.publish(Quote("a", "S", 1, 1, 2, 1, 0, 0))
    assert len(trades) == 1 and len(quotes) == 1


def test_filters_by_exchange_and_symbol() -> None:
    bus = TypedEventBus()
    by_ex: list[Trade] = []
    by_sym: list[Trade] = []
    both: list[Trade] = []
    bus.subscribe(Trade, by_ex.append, exchange="a")
    bus.subscribe(Trade, by_sym.append, symbol="S")
    bus.subscribe(Trade, both.append, exchange="b", symbol="T")
    for ex in ("a", "b"):
        for sym in ("S", "T"):
            bus.publish(trade(ex, sym))
    assert [(t.exchange, t.symbol) for t in by_ex] == [("a", "S"), ("a", "T")]
    assert [(t.exchange, t.symbol) for t in by_sym] == [("a", "S"), ("b", "S")]
    assert [(t.exchange, t.symbol) for t in both] == [("b", "T")]


def test_connection_wide_gap_reaches_exchange_filter_once() -> None:
    bus = TypedEventBus()
    got: list[Gap] = []
    bus.subscribe(Gap, got.append, exchange="a")
    bus.publish(Gap("a", "", 1, 2, "drop"))
    assert len(got) == 1


def test_unsubscribe_stops_delivery() -> None:
    bus = TypedEventBus()
    got: list[Trade] = []
    sub = bus.subscribe(Trade, got.append)
    bus.publish(trade())
    sub.unsubscribe()
    sub.unsubscribe()  # idempotent
    bus.publish(trade())
    assert len(got) == 1
    with bus.subscribe(Trade, got.append):
        bus.publish(trade())
    bus.publish(trade())
    assert len(got) == 2


def test_a_raising_handler_is_isolated_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    bus = TypedEventBus()
    got: list[Trade] = []

    def bad(t: Trade) -> None:
        raise RuntimeError("boom")

    bad_sub = bus.subscribe(Trade, bad)
    bus.subscribe(Trade, got.append)
    bus.subscribe(Trade, bad, symbol="S")
    with caplog.at_level(logging.ERROR, logger="hub_core.bus"):
        for _ in range(3):
            bus.publish(trade())
    assert len(got) == 3
    assert bus.handler_errors == 6
    assert bad_sub.errors == 3
    assert "boom" in caplog.text


def test_single_subscriber_fast_path_isolated_too() -> None:
    bus = TypedEventBus()
    bus.subscribe(Trade, lambda t: 1 / 0)
    bus.publish(trade())
    assert bus.handler_errors == 1


def test_rejects_unknown_types_and_non_callables() -> None:
    bus = TypedEventBus()
    with pytest.raises(TypeError):
        bus.subscribe(int, print)
    with pytest.raises(TypeError):
        bus.subscribe(Trade, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bus.publish("not a tick")
