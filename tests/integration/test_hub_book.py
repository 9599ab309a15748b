"""``ExchangeHub.book()`` against real simulators: the Binance-style venue (snapshot, diff
depth, resync after a lost update) and NinjaTrader (a book clear, then level records),
with a stalled stream and a failing subscriber beside it."""

from __future__ import annotations

import anyio
import pytest

import hub_plugin_ninjatrader
import hub_plugin_websocket
from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Quote,
    TypedEventBus,
)
from hub_core.testing import EventRecorder
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator
from hub_plugin_websocket.simulator import BinanceSimulator

pytestmark = pytest.mark.anyio

FAST = {"reconnect_delay_ms": 50, "reconnect_max_delay_ms": 200, "stale_after_ms": 0}


def binance(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    return ExchangeConfig.websocket(
        "binance",
        endpoint,
        symbols=symbols,
        options={"channels": ["depth@100ms"], "transport": "websockets"},
        **FAST,
    )


def ws_registry() -> ExchangeRegistry:
    registry = ExchangeRegistry()
    assert registry.register(hub_plugin_websocket, name="websocket").enabled
    return registry


async def quiet(sim: BinanceSimulator) -> None:
    """Stop the market and let the last depth update reach the client."""
    sim.rate = 0
    await anyio.sleep(sim.depth_interval_s * 4)


async def test_the_book_is_the_venues_while_a_stream_stalls_and_a_subscriber_fails() -> None:
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    # a strategy that never reads its stream, and one that raises on every update
    stalled = bus.stream(BookUpdate, maxsize=4)
    failures: list[int] = []

    def broken(u: BookUpdate) -> None:
        failures.append(1)
        raise RuntimeError("strategy bug")

    bus.subscribe(BookUpdate, broken)
    async with BinanceSimulator(["BTCUSDT", "ETHUSDT"], rate=300, seed=11) as sim:
        hub = ExchangeHub(bus, registry=ws_registry())
        books = {s: hub.book("binance", s) for s in ("BTCUSDT", "ETHUSDT")}
        assert all(b.stale for b in books.values())  # nothing seen yet
        async with hub:
            await hub.connect_exchange("binance", binance(sim.endpoint, ["BTCUSDT", "ETHUSDT"]))
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 300, 15, "300 book updates")
            await quiet(sim)
            for sym, book in books.items():
                bids, asks = sim.book(sym)
                assert book.bids == bids and book.asks == asks
                assert book.best_bid() == (max(bids), bids[max(bids)])
                assert book.best_ask() == (min(asks), asks[min(asks)])
                assert book.valid and not book.stale and book.reason == ""
                assert book.invalidations == 0
                assert book.last_sequence == sim.last_update_id(sym)
            assert len(failures) == len(rec.of(BookUpdate))
            assert stalled.dropped > 0  # the stream really was left behind
    rec.close()


async def test_a_lost_update_makes_the_book_stale_until_the_resync() -> None:
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with BinanceSimulator(["BTCUSDT"], rate=300, seed=4) as sim:
        hub = ExchangeHub(bus, registry=ws_registry())
        book = hub.book("binance", "BTCUSDT")
        seen: list[tuple[bool, str]] = []
        # subscribed after the hub's own Gap handler: it sees the book as the Gap left it
        bus.subscribe(Gap, lambda g: seen.append((book.stale, book.reason)), exchange="binance")
        async with hub:
            await hub.connect_exchange("binance", binance(sim.endpoint, ["BTCUSDT"]))
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 50, 15, "a synced book")
            assert not book.stale
            mark = len(rec.events)
            await sim.skip_sequence()
            await rec.wait_for(lambda: bool(seen), 10, "a Gap")
            assert seen[0][0] and seen[0][1].startswith("gap: sequence gap")
            await rec.wait_for(
                lambda: any(isinstance(e, BookSnapshot) for e in rec.events[mark:]), 10, "a resync"
            )
            await quiet(sim)
            bids, asks = sim.book("BTCUSDT")
            assert not book.stale and book.valid
            assert book.bids == bids and book.asks == asks
    rec.close()


async def test_the_book_follows_the_ninjatrader_feed_from_its_clear() -> None:
    """NinjaTrader's book arrives as a ``BookClear`` (a DBN mbo record with action R) and
    one record a level, then level changes; each market event ends with a quote of the top
    of book."""
    registry = ExchangeRegistry()
    registry.register(hub_plugin_ninjatrader, name="ninjatrader")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    symbols = ["ES 03-26"]
    async with NinjaTraderSimulator(symbols, rate=400, seed=8) as sim:
        hub = ExchangeHub(bus, registry=registry)
        book = hub.book("nt", "ES 03-26")
        async with hub:
            cfg = ExchangeConfig.ninjatrader(sim.endpoint, symbols=symbols)
            await hub.connect_exchange("nt", cfg)
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 300, 15, "300 book updates")
            sim.rate = 0
            await anyio.sleep(0.3)
            updates = rec.of(BookUpdate)
            (clear,) = rec.of(BookClear)  # the book starts with one clear, before any level
            assert rec.events.index(clear) < rec.events.index(updates[0])
            assert all(u.action != "R" for u in updates)  # a clear is never a BookUpdate
            assert not book.stale and book.valid
            q = rec.of(Quote)[-1]
            assert book.best_bid() == (q.bid_price, q.bid_size)
            assert book.best_ask() == (q.ask_price, q.ask_size)
            # and the whole book is what the updates since the clear build
            model: dict[str, dict[int, int]] = {"B": {}, "A": {}}
            for u in updates:
                if u.size:
                    model[u.side][u.price] = u.size
                else:
                    model[u.side].pop(u.price, None)
            assert book.bids == model["B"] and book.asks == model["A"]
            assert len(book) == 10 and book.invalidations == 0  # 5 levels a side, never crossed
    rec.close()
