import anyio
import pytest

from hub_core import Quote, Trade, TypedEventBus
from hub_core.streams import wait_for_capacity

pytestmark = pytest.mark.anyio


def q(sym: str, bid: int) -> Quote:
    return Quote("a", sym, bid, 1, bid + 1, 1, 0, 0)


async def test_stream_delivers_in_order() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Trade, maxsize=10)
    ticks = [Trade("a", "S", i, 1, "B", 0, 0) for i in range(5)]
    for t in ticks:
        bus.publish(t)
    got = [await stream.__anext__() for _ in range(5)]
    assert got == ticks and got[0] is ticks[0]


async def test_consumer_waiting_is_woken() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Trade)
    got: list[Trade] = []

    async def consume() -> None:
        async for t in stream:
            got.append(t)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.01)
        bus.publish(Trade("a", "S", 1, 1, "B", 0, 0))
        await anyio.sleep(0.01)
        stream.close()
    assert len(got) == 1


async def test_drop_oldest_is_bounded_and_counted() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Quote, maxsize=3, overflow="drop_oldest")
    for i in range(10):
        bus.publish(q("S", i))
    assert len(stream) == 3 and stream.dropped == 7
    assert [(await stream.__anext__()).bid_price for _ in range(3)] == [7, 8, 9]


async def test_conflate_keeps_newest_per_symbol() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Quote, maxsize=10, overflow="conflate")
    for i in range(5):
        bus.publish(q("A", i))
        bus.publish(q("B", 100 + i))
    assert stream.conflated == 8 and stream.dropped == 0
    first = await stream.__anext__()
    second = await stream.__anext__()
    assert (first.symbol, first.bid_price) == ("A", 4)
    assert (second.symbol, second.bid_price) == ("B", 104)
    assert stream.get_nowait() is None


async def test_block_never_drops_and_signals_backpressure() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Trade, maxsize=2, overflow="block")
    for i in range(5):
        bus.publish(Trade("a", "S", i, 1, "B", 0, 0))
    assert stream.dropped == 0 and len(stream) == 5 and bus.backpressured
    released = anyio.Event()

    async def reader_waits() -> None:
        await wait_for_capacity(bus)
        released.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader_waits)
        await anyio.sleep(0.01)
        assert not released.is_set()
        prices = [(await stream.__anext__()).price for _ in range(3)]
        await anyio.sleep(0.01)
        assert released.is_set()
    assert prices == [0, 1, 2] and not bus.backpressured


async def test_slow_stream_does_not_slow_sync_subscribers() -> None:
    bus = TypedEventBus()
    sync_seen: list[Trade] = []
    bus.subscribe(Trade, sync_seen.append)
    stream = bus.stream(Trade, maxsize=100, overflow="drop_oldest")
    for i in range(10_000):
        bus.publish(Trade("a", "S", i, 1, "B", 0, 0))
    assert len(sync_seen) == 10_000
    assert len(stream) == 100 and stream.dropped == 9_900


async def test_close_ends_iteration_and_unsubscribes() -> None:
    bus = TypedEventBus()
    stream = bus.stream(Trade)
    stream.close()
    assert bus.subscriber_count(Trade) == 0
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


def test_bad_stream_arguments() -> None:
    bus = TypedEventBus()
    with pytest.raises(ValueError, match="overflow"):
        bus.stream(Trade, overflow="lossy")
    with pytest.raises(ValueError, match="maxsize"):
        bus.stream(Trade, maxsize=0)
