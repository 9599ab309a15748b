"""Correct uses of the typed application API: mypy --strict must accept every line."""

from typing import assert_type

from hub_core import (
    BookUpdate,
    ConnectionStateChanged,
    Credentials,
    EventStream,
    ExchangeConfig,
    Gap,
    Quote,
    Subscription,
    Trade,
    TypedEventBus,
)

bus = TypedEventBus()


def on_trade(t: Trade) -> None:
    print(t.price, t.size, t.side)


def on_anything(event: object) -> None:
    print(event)


assert_type(bus.subscribe(Trade, on_trade), Subscription)
bus.subscribe(Quote, lambda q: print(q.bid_price, q.ask_price))
bus.subscribe(Gap, on_anything, exchange="binance", symbol="BTCUSDT")
assert_type(bus.stream(Trade), EventStream[Trade])
assert_type(bus.stream(BookUpdate, maxsize=100, overflow="conflate"), EventStream[BookUpdate])


async def consume() -> None:
    async with bus.stream(Quote, overflow="block") as quotes:
        async for q in quotes:
            assert_type(q, Quote)
            print(q.bid_price - q.ask_price)
    states = bus.stream(ConnectionStateChanged)
    assert_type(states.get_nowait(), ConnectionStateChanged | None)


cfg = ExchangeConfig.ninjatrader("127.0.0.1:7496", symbols=["ES 03-26"], stale_after_ms=5_000)
ws = ExchangeConfig.websocket(
    "binance", "wss://127.0.0.1:9443/ws", options={"market": "futures"}, reconnect_attempts=3
)
fix = ExchangeConfig.fix(
    "venue", "fix://127.0.0.1:9878", credentials=Credentials(username="u", password="p")
)
ib = ExchangeConfig.interactive_brokers("127.0.0.1:7497", client_id=7, backup_endpoints=[])
db = ExchangeConfig.databento("GLBX.MDP3", endpoint="127.0.0.1:13000", symbols=["ESZ6"])
assert_type(cfg, ExchangeConfig)
