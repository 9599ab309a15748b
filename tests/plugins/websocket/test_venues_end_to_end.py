"""Coinbase and Kraken through a real ``ExchangeHub`` against their loopback venues,
once per transport (``websockets``, ``picows``).

The core's conformance suite runs on each (its sequence fault is a ``trade_id`` hole
for Coinbase and a wrong book checksum for Kraken), then: exact ticks, the book equal
to the venue's, a checksum mismatch -> ``Gap`` -> the book rebuilt over the same
connection with no ghost level, and every book rebuilt after a drop. TLS and replay
are in ``test_venues_tls.py`` and ``test_venues_replay.py``.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub_core import (
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    ExchangeHub,
    Gap,
    Quote,
    Trade,
)
from hub_core.testing import EventRecorder
from hub_plugin_websocket.simulator import DEFAULT_SYMBOLS, main, serve_simulator
from hub_plugin_websocket.simulators import (
    E8,
    CoinbaseSimulator,
    KrakenSimulator,
    WebSocketVenue,
    kraken_checksum,
)
from tests.plugins.websocket.conftest import WebSocketConformance, rebuilt_book, running_venue

pytestmark = pytest.mark.anyio


# -- the core's conformance suite, once per transport ------------------------------------------
class _CoinbaseConformance(WebSocketConformance):
    name = "coinbase"
    symbols: ClassVar[list[str]] = ["BTC-USD", "ETH-USD"]
    has_sequence = True
    venue = CoinbaseSimulator
    channels: ClassVar[list[str]] = ["matches", "ticker", "level2"]
    seed = 21


class TestCoinbaseConformanceWebsockets(_CoinbaseConformance):
    transport = "websockets"


class TestCoinbaseConformancePicows(_CoinbaseConformance):
    transport = "picows"


class _KrakenConformance(WebSocketConformance):
    name = "kraken"
    symbols: ClassVar[list[str]] = ["BTC/USD", "ETH/USD"]
    has_sequence = True  # the book checksum: a wrong one is a Gap saying "sequence"
    gaps_have_sequence = False  # ... and a checksum has no numbers to name
    venue = KrakenSimulator
    channels: ClassVar[list[str]] = ["trade", "ticker", "book"]
    seed = 22


class TestKrakenConformanceWebsockets(_KrakenConformance):
    transport = "websockets"


class TestKrakenConformancePicows(_KrakenConformance):
    transport = "picows"


# -- helpers -----------------------------------------------------------------------------------
def running(
    name: str,
    sim: WebSocketVenue,
    transport: str,
    symbols: list[str],
    channels: list[str],
    **kw: Any,
) -> AbstractAsyncContextManager[tuple[ExchangeHub, EventRecorder]]:
    """The hub connected to ``sim`` over ``transport`` (``conftest.running_venue``)."""
    return running_venue(name, sim.endpoint, transport, symbols, channels, **kw)


def venue_book(sim: WebSocketVenue, symbol: str, depth: int | None = None) -> dict[Any, int]:
    bids, asks = sim.book(symbol, depth)
    return {("B", p): q for p, q in bids.items()} | {("A", p): q for p, q in asks.items()}


async def quiet(sim: WebSocketVenue) -> None:
    """Stop the market and let the last messages reach the client."""
    sim.rate = 0
    await anyio.sleep(0.3)


def since(rec: EventRecorder, mark: int, kind: type) -> list[Any]:
    return [e for e in rec.events[mark:] if isinstance(e, kind)]


def unsubscribes(sim: WebSocketVenue) -> list[dict[str, Any]]:
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
async def test_coinbase_ticks_and_book_match_the_venue(transport: str) -> None:
    async with (
        CoinbaseSimulator(["BTC-USD", "ETH-USD"], rate=250, seed=31) as sim,
        running(
            "coinbase",
            sim,
            transport,
            ["BTC-USD", "ETH-USD"],
            ["matches", "ticker", "level2", "heartbeat"],
        ) as (hub, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 200, 10, "200 book updates")
        await quiet(sim)
        for sym in ("BTC-USD", "ETH-USD"):
            assert rebuilt_book(rec, sym) == venue_book(sim, sym)
            q = [x for x in rec.of(Quote) if x.symbol == sym][-1]
            bids, asks = sim.book(sym)
            assert (q.bid_price, q.bid_size) == (max(bids), bids[max(bids)])
            assert (q.ask_price, q.ask_size) == (min(asks), asks[min(asks)])
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            sent = sim.sent_trades(sym)
            assert got and got == sent[len(sent) - len(got) :], "every trade, in order"
        assert not rec.of(Gap)
        assert hub.event_processor().get_stats().malformed_frames == 0


async def test_coinbase_trade_id_hole_rebuilds_the_book_on_the_same_connection(
    transport: str,
) -> None:
    async with (
        CoinbaseSimulator(["BTC-USD"], rate=200, seed=32) as sim,
        running("coinbase", sim, transport, ["BTC-USD"], ["matches", "level2"]) as (_, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(Trade)) > 10, 10, "trades")
        mark = len(rec.events)
        await sim.skip_sequence()
        await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 10, "a Gap")
        gap = since(rec, mark, Gap)[0]
        assert "sequence" in gap.reason and gap.end_seq == gap.start_seq
        await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a new book")
        await quiet(sim)
        assert rebuilt_book(rec, "BTC-USD", mark) == venue_book(sim, "BTC-USD")
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


async def test_the_hub_subscribes_inside_the_coinbase_deadline(transport: str) -> None:
    """Coinbase drops a session that has not subscribed within 5 s: the connection
    subscribes right after the handshake, on its first session, after a reconnect, and
    on a rotation's replacement (the deadline shortened to 0.4 s here)."""
    async with (
        CoinbaseSimulator(["BTC-USD"], rate=50, seed=5, subscribe_deadline_s=0.4) as sim,
        running(
            "coinbase",
            sim,
            transport,
            ["BTC-USD"],
            ["matches"],
            options={"max_connection_age_s": 0.6},
        ) as (_, rec),
    ):
        await rec.wait_for(lambda: sim.connections_accepted >= 3, 10, "two rotations")
        mark = len(rec.events)
        await sim.drop_connections()
        await rec.wait_for(lambda: bool(since(rec, mark, Trade)), 10, "trades after the drop")
        await anyio.sleep(1.0)  # longer than the deadline: nobody is cut for silence
        states = [e.state for e in since(rec, mark, ConnectionStateChanged)]
        assert states.count("reconnecting") == 1, states
        assert not [e for e in rec.events[:mark] if isinstance(e, Gap)]


# -- Kraken ------------------------------------------------------------------------------------
async def test_kraken_ticks_and_book_match_the_venue(transport: str) -> None:
    async with (
        KrakenSimulator(["BTC/USD", "ETH/USD"], rate=250, seed=41) as sim,
        running(
            "kraken", sim, transport, ["BTC/USD", "ETH/USD"], ["trade", "ticker", "book@10"]
        ) as (hub, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 200, 10, "200 book updates")
        await quiet(sim)
        for sym in ("BTC/USD", "ETH/USD"):
            assert rebuilt_book(rec, sym) == venue_book(sim, sym, 10)
            q = [x for x in rec.of(Quote) if x.symbol == sym][-1]
            bids, _ = sim.book(sym)
            assert (q.bid_price, q.bid_size) == (max(bids), bids[max(bids)])
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            sent = sim.sent_trades(sym)
            assert got and got == sent[len(sent) - len(got) :], "every trade, in order"
        assert not rec.of(Gap), "every checksum held"
        assert hub.event_processor().get_stats().malformed_frames == 0


async def test_kraken_checksum_mismatch_is_a_gap_and_a_rebuilt_book_without_ghosts(
    transport: str,
) -> None:
    async with (
        KrakenSimulator(["BTC/USD"], rate=150, seed=42) as sim,
        running("kraken", sim, transport, ["BTC/USD"], ["trade", "book@100"]) as (_, rec),
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
        after = rebuilt_book(rec, "BTC/USD", mark)
        assert ("B", ghost) not in after
        assert after == venue_book(sim, "BTC/USD", 100)
        assert sim.connections_accepted == 1
        assert [r["params"]["channel"] for r in unsubscribes(sim)] == ["book"]


@pytest.mark.parametrize("venue", ["coinbase", "kraken"])
async def test_every_book_is_rebuilt_after_a_drop(venue: str, transport: str) -> None:
    """Resubscribe after a drop: a level removed while disconnected must not survive."""
    sim: WebSocketVenue
    if venue == "coinbase":
        sim = CoinbaseSimulator(["BTC-USD"], rate=100, seed=51)
        symbol, channels = "BTC-USD", ["matches", "level2"]
    else:
        sim = KrakenSimulator(["BTC/USD"], rate=100, seed=52)
        symbol, channels = "BTC/USD", ["trade", "book@100"]
    slow_reconnect = {"reconnect_delay_ms": 500, "reconnect_max_delay_ms": 600}
    async with (
        sim,
        running(venue, sim, transport, [symbol], channels, **slow_reconnect) as (_, rec),
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
        after = rebuilt_book(rec, symbol, mark)
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
    """An unknown venue is a usage error (replay for every venue: test_venues_replay.py)."""
    with pytest.raises(SystemExit):
        main(["--dialect", "bitstamp"])
