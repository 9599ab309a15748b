"""Uses mypy --strict must reject: each line marked ``# rejected`` must get an error, and
no other line may."""

from hub_core import ExchangeConfig, Quote, Trade, TypedEventBus

bus = TypedEventBus()


def on_trade(t: Trade) -> None:
    print(t.price)


bus.subscribe(Quote, on_trade)  # rejected: a Trade handler on Quote
bus.subscribe(int, print)  # rejected: the bus does not carry int
bus.stream(Trade, overflow="drop_newest")  # rejected: not an overflow policy


async def consume() -> None:
    async for t in bus.stream(Trade):
        print(t.bid_price)  # rejected: a Trade has no bid_price


ExchangeConfig.ninjatrader("127.0.0.1:7496", stale_after=5)  # rejected: misspelled key
ExchangeConfig.fix("venue", "fix://127.0.0.1:9878", symbols="ES")  # rejected: str, not list
ExchangeConfig.websocket("binance")  # rejected: the URL is missing
