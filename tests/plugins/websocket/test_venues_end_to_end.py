"""Coinbase and Kraken through a real ``ExchangeHub`` against their loopback venues.

The core's conformance suite runs on each (its sequence fault is a ``trade_id`` hole
for Coinbase and a wrong book checksum for Kraken), then: exact ticks, the book equal
to the venue's, a checksum mismatch -> ``Gap`` -> the book rebuilt over the same
connection with no ghost level, and every book rebuilt after a drop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import hub_plugin_websocket
from hub_core import (
    BookSnapshot,
    BookUpdate,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Quote,
    Trade,
    TypedEventBus,
)
from hub_core.testing import ConformanceSuite, EventRecorder, SimulatorHandle
from hub_plugin_websocket.sim_base import E8, LoopbackVenue
from hub_plugin_websocket.sim_coinbase import CoinbaseSimulator
from hub_plugin_websocket.sim_kraken import KrakenSimulator, kraken_checksum
from hub_plugin_websocket.simulator import DEFAULT_SYMBOLS, main, serve_simulator

pytestmark = pytest.mark.anyio

FAST = {
    "reconnect_delay_ms": 50,
    "reconnect_max_delay_ms": 200,
    "connect_timeout_ms": 3000,
    "stale_after_ms": 0,
}


# -- the core's conformance suite --------------------------------------------------------------
class TestCoinbaseConformance(ConformanceSuite):
    name = "coinbase"
    symbols: ClassVar[list[str]] = ["BTC-USD", "ETH-USD"]
    has_sequence = True

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[CoinbaseSimulator]:
        async with CoinbaseSimulator(self.symbols, rate=150, seed=21) as sim:
            assert isinstance(sim, SimulatorHandle)
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_websocket

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.websocket(
            "coinbase",
            endpoint,
            symbols=symbols,
            options={"channels": ["matches", "ticker", "level2"], "subscribe_timeout_s": 2.0},
            **overrides,
        )


class TestKrakenConformance(ConformanceSuite):
    name = "kraken"
    symbols: ClassVar[list[str]] = ["BTC/USD", "ETH/USD"]
    has_sequence = True  # the book checksum: a wrong one is a Gap saying "sequence"

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[KrakenSimulator]:
        async with KrakenSimulator(self.symbols, rate=150, seed=22) as sim:
            assert isinstance(sim, SimulatorHandle)
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_websocket

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.websocket(
            "kraken",
            endpoint,
            symbols=symbols,
            options={"channels": ["trade", "ticker", "book"], "subscribe_timeout_s": 2.0},
            **overrides,
        )


# -- helpers -----------------------------------------------------------------------------------
@asynccontextmanager
async def running(
    name: str, sim: LoopbackVenue, symbols: list[str], channels: list[str], **overrides: Any
) -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
    registry = ExchangeRegistry()
    info = registry.register(hub_plugin_websocket, name="websocket")
    assert info.enabled, info.error
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    cfg = ExchangeConfig.websocket(
        name,
        sim.endpoint,
        symbols=symbols,
        options={"channels": channels, "subscribe_timeout_s": 3.0},
        **(FAST | overrides),
    )
    async with ExchangeHub(bus, registry=registry) as hub:
        await hub.connect_exchange(name, cfg, timeout=10)
        yield hub, rec
    rec.close()


def book_of(
    rec: EventRecorder, symbol: str, after: int = 0, *, reconnect_gaps: bool = True
) -> dict[tuple[str, int], int]:
    """The book a subscriber rebuilds: the last BookSnapshot, then the updates after it.

    ``reconnect_gaps=False`` ignores the hub's reconnect ``Gap`` (symbol ``""``): the
    supervisor publishes it once the resubscribe is acknowledged, and these venues send
    the new snapshot with the acknowledgement, so it lands just after the fresh book it
    does not concern (a core ordering issue, reported to the core's owner)."""
    levels: dict[tuple[str, int], int] | None = None
    for e in rec.events[after:]:
        if isinstance(e, BookSnapshot) and e.symbol == symbol:
            levels = {("B", p): q for p, q in e.bids} | {("A", p): q for p, q in e.asks}
        elif isinstance(e, BookUpdate) and e.symbol == symbol and levels is not None:
            if e.size:
                levels[(e.side, e.price)] = e.size
            else:
                levels.pop((e.side, e.price), None)
        elif isinstance(e, Gap) and (e.symbol == symbol or (reconnect_gaps and not e.symbol)):
            levels = None
    assert levels is not None, f"no usable book of {symbol}"
    return levels


def venue_book(sim: LoopbackVenue, symbol: str, depth: int | None = None) -> dict[Any, int]:
    bids, asks = sim.book(symbol, depth)
    return {("B", p): q for p, q in bids.items()} | {("A", p): q for p, q in asks.items()}


async def quiet(sim: LoopbackVenue) -> None:
    """Stop the market and let the last messages reach the client."""
    sim.rate = 0
    await anyio.sleep(0.3)


def since(rec: EventRecorder, mark: int, kind: type) -> list[Any]:
    return [e for e in rec.events[mark:] if isinstance(e, kind)]


def unsubscribes(sim: LoopbackVenue) -> list[dict[str, Any]]:
    """The resync's unsubscribe requests (the hub itself unsubscribes nothing here)."""
    return [
        r
        for r in sim.requests_received
        if r.get("type") == "unsubscribe" or r.get("method") == "unsubscribe"
    ]


# -- the checksum itself -----------------------------------------------------------------------
def test_simulator_checksum_matches_krakens_documented_example() -> None:
    """Kraken's guide: this book's checksum is 974947235 (the dialect checks the same)."""
    asks = [
        ("0.05005", "0.00000500"),
        ("0.05010", "0.00000500"),
        ("0.05015", "0.00000500"),
        ("0.05020", "0.00000500"),
        ("0.05025", "0.00000500"),
        ("0.05030", "0.00000500"),
        ("0.05035", "0.00000500"),
        ("0.05040", "0.00000500"),
        ("0.05045", "0.00000500"),
        ("0.05050", "0.00000500"),
    ]
    bids = [
        ("0.05000", "0.00000500"),
        ("0.04995", "0.00000500"),
        ("0.04990", "0.00000500"),
        ("0.04980", "0.00000500"),
        ("0.04975", "0.00000500"),
        ("0.04970", "0.00000500"),
        ("0.04965", "0.00000500"),
        ("0.04960", "0.00000500"),
        ("0.04955", "0.00000500"),
        ("0.04950", "0.00000500"),
    ]
    assert kraken_checksum(asks, bids) == 974947235


# -- Coinbase ----------------------------------------------------------------------------------
async def test_coinbase_ticks_and_book_match_the_venue() -> None:
    async with (
        CoinbaseSimulator(["BTC-USD", "ETH-USD"], rate=250, seed=31) as sim,
        running(
            "coinbase", sim, ["BTC-USD", "ETH-USD"], ["matches", "ticker", "level2", "heartbeat"]
        ) as (hub, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 200, 10, "200 book updates")
        await quiet(sim)
        for sym in ("BTC-USD", "ETH-USD"):
            assert book_of(rec, sym) == venue_book(sim, sym)
            q = [x for x in rec.of(Quote) if x.symbol == sym][-1]
            bids, asks = sim.book(sym)
            assert (q.bid_price, q.bid_size) == (max(bids), bids[max(bids)])
            assert (q.ask_price, q.ask_size) == (min(asks), asks[min(asks)])
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            sent = sim.sent_trades(sym)
            assert got and got == sent[len(sent) - len(got) :], "every trade, in order"
        assert not rec.of(Gap)
        assert hub.event_processor().get_stats().malformed_frames == 0


async def test_coinbase_trade_id_hole_rebuilds_the_book_on_the_same_connection() -> None:
    async with (
        CoinbaseSimulator(["BTC-USD"], rate=200, seed=32) as sim,
        running("coinbase", sim, ["BTC-USD"], ["matches", "level2"]) as (_, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(Trade)) > 10, 10, "trades")
        mark = len(rec.events)
        await sim.skip_sequence()
        await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 10, "a Gap")
        gap = since(rec, mark, Gap)[0]
        assert "sequence" in gap.reason and gap.end_seq == gap.start_seq
        await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a new book")
        await quiet(sim)
        assert book_of(rec, "BTC-USD", mark) == venue_book(sim, "BTC-USD")
        # resynced over the same connection: one unsubscribe + subscribe of level2
        assert sim.connections_accepted == 1
        assert [r["channels"] for r in unsubscribes(sim)] == [["level2"]]


async def test_coinbase_client_that_never_subscribes_is_disconnected() -> None:
    async with (
        CoinbaseSimulator(["BTC-USD"], rate=10, subscribe_deadline_s=0.3) as sim,
        connect(sim.endpoint) as ws,
    ):
        texts: list[str] = []
        with pytest.raises(ConnectionClosed), anyio.fail_after(3):
            while True:
                texts.append(str(await ws.recv()))
        assert len(texts) == 1 and "Failed to subscribe" in texts[0]


# -- Kraken ------------------------------------------------------------------------------------
async def test_kraken_ticks_and_book_match_the_venue() -> None:
    async with (
        KrakenSimulator(["BTC/USD", "ETH/USD"], rate=250, seed=41) as sim,
        running("kraken", sim, ["BTC/USD", "ETH/USD"], ["trade", "ticker", "book@10"]) as (
            hub,
            rec,
        ),
    ):
        await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 200, 10, "200 book updates")
        await quiet(sim)
        for sym in ("BTC/USD", "ETH/USD"):
            assert book_of(rec, sym) == venue_book(sim, sym, 10)
            q = [x for x in rec.of(Quote) if x.symbol == sym][-1]
            bids, _ = sim.book(sym)
            assert (q.bid_price, q.bid_size) == (max(bids), bids[max(bids)])
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            sent = sim.sent_trades(sym)
            assert got and got == sent[len(sent) - len(got) :], "every trade, in order"
        assert not rec.of(Gap), "every checksum held"
        assert hub.event_processor().get_stats().malformed_frames == 0


async def test_kraken_checksum_mismatch_is_a_gap_and_a_rebuilt_book_without_ghosts() -> None:
    async with (
        KrakenSimulator(["BTC/USD"], rate=150, seed=42) as sim,
        running("kraken", sim, ["BTC/USD"], ["trade", "book@100"]) as (_, rec),
    ):
        await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a synced book")
        await quiet(sim)
        bids, _ = sim.book("BTC/USD")
        ghost = sim.set_level("BTC/USD", "B", min(bids) // 10 - 50 * (E8 // 10), 7 * E8)
        await rec.wait_for(
            lambda: any(u.price == ghost and u.size for u in rec.of(BookUpdate)),
            5,
            "the ghost level to reach the client",
        )
        mark = len(rec.events)
        await sim.skip_sequence()  # the next update carries a wrong checksum...
        # ...and in the same update the ghost goes: the client must not keep it
        sim.set_level("BTC/USD", "B", ghost // 10, 0)
        await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 5, "the checksum Gap")
        gap = since(rec, mark, Gap)[0]
        assert "checksum" in gap.reason and gap.symbol == "BTC/USD"
        await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 5, "a new book")
        assert sim.checksums_corrupted == 1
        fresh = since(rec, mark, BookSnapshot)[0]
        assert all(p != ghost for p, _ in fresh.bids)
        sim.rate = 100
        await anyio.sleep(0.3)
        await quiet(sim)
        after = book_of(rec, "BTC/USD", mark)
        assert ("B", ghost) not in after
        assert after == venue_book(sim, "BTC/USD", 100)
        assert sim.connections_accepted == 1
        assert [r["params"]["channel"] for r in unsubscribes(sim)] == ["book"]


@pytest.mark.parametrize("venue", ["coinbase", "kraken"])
async def test_every_book_is_rebuilt_after_a_drop(venue: str) -> None:
    """Resubscribe after a drop: a level removed while disconnected must not survive."""
    sim: LoopbackVenue
    if venue == "coinbase":
        sim, symbol, channels = (
            CoinbaseSimulator(["BTC-USD"], rate=100, seed=51),
            "BTC-USD",
            [
                "matches",
                "level2",
            ],
        )
    else:
        sim, symbol, channels = (
            KrakenSimulator(["BTC/USD"], rate=100, seed=52),
            "BTC/USD",
            [
                "trade",
                "book@100",
            ],
        )
    async with (
        sim,
        running(
            venue, sim, [symbol], channels, reconnect_delay_ms=500, reconnect_max_delay_ms=600
        ) as (_, rec),
    ):
        await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a synced book")
        bids, _ = sim.book(symbol)
        tick = 10**6 if venue == "coinbase" else E8 // 10
        ghost = sim.set_level(symbol, "B", min(bids) // 10 - 50 * tick, 7 * E8)
        await rec.wait_for(
            lambda: any(u.price == ghost and u.size for u in rec.of(BookUpdate)),
            5,
            "the ghost level to reach the client",
        )
        mark = len(rec.events)
        await sim.drop_connections()
        sim.set_level(symbol, "B", ghost // 10, 0)  # removed while nobody listens
        await anyio.sleep(0.1)
        assert sim.clients == 0, "the removal must happen while disconnected"
        await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a new book")
        await rec.wait_for(lambda: bool(since(rec, mark, Trade)), 10, "trades again")
        await quiet(sim)
        assert any(not g.symbol for g in since(rec, mark, Gap))
        after = book_of(rec, symbol, mark, reconnect_gaps=False)
        assert ("B", ghost) not in after
        assert after == venue_book(sim, symbol, None if venue == "coinbase" else 100)
        assert sim.connections_accepted == 2


# -- the command line and SimulatorSpec.serve --------------------------------------------------
@pytest.mark.parametrize(("dialect", "symbol"), [("coinbase", "BTC-USD"), ("kraken", "BTC/USD")])
async def test_serve_simulator_routes_the_dialect(dialect: str, symbol: str) -> None:
    """``hub sim websocket --dialect X`` (Binance's default symbols mean the venue's own)."""
    where: list[int] = []
    listening = anyio.Event()

    def ready(host: str, port: int) -> None:
        where.append(port)
        listening.set()

    async def serve() -> None:
        await serve_simulator("127.0.0.1", 0, list(DEFAULT_SYMBOLS), 20, ready, dialect=dialect)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(5):
            await listening.wait()
        path = "/v2" if dialect == "kraken" else "/"
        req: dict[str, Any]
        async with connect(f"ws://127.0.0.1:{where[0]}{path}") as ws:
            if dialect == "kraken":
                assert '"status"' in str(await ws.recv())
                params = {"channel": "trade", "symbol": [symbol]}
                req = {"method": "subscribe", "params": params, "req_id": 1}
            else:
                req = {"type": "subscribe", "product_ids": [symbol], "channels": ["matches"]}
            await ws.send(json.dumps(req))
            with anyio.fail_after(5):
                reply = json.loads(await ws.recv())
            assert reply.get("success") is True or reply.get("type") == "subscriptions"
        tg.cancel_scope.cancel()


def test_simulator_command_line_knows_the_venues() -> None:
    with pytest.raises(SystemExit):
        main(["--dialect", "bitstamp"])
    with pytest.raises(SystemExit):
        main(["--dialect", "kraken", "--replay", "x.txt"])
