"""The plugin through a real ``ExchangeHub`` against the loopback simulator, once per
transport: books equal to the venue's, a ``Gap`` on every injected fault, a book rebuilt
from a fresh snapshot after a reconnect (no ghost level), TLS with a CA made here, the
venue's refusals and limits, raw, combined and replayed traffic."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import hub_plugin_websocket
from hub_core import (
    BookSnapshot,
    BookUpdate,
    ConfigError,
    ConnectionState,
    ConnectionStateChanged,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Quote,
    SubscriptionError,
    Trade,
    TypedEventBus,
)
from hub_core.testing import EventRecorder
from hub_plugin_websocket.simulator import BinanceSimulator
from tests.plugins.websocket.conftest import RECORDED, rebuilt_book

pytestmark = pytest.mark.anyio

NAME = "binance"
FAST = {
    "reconnect_delay_ms": 50,
    "reconnect_max_delay_ms": 200,
    "connect_timeout_ms": 3000,
    "stale_after_ms": 0,
}


def config(
    endpoint: str,
    transport: str,
    symbols: list[str],
    channels: list[str],
    *,
    options: dict[str, Any] | None = None,
    **overrides: Any,
) -> ExchangeConfig:
    opts: dict[str, Any] = {"channels": channels, "transport": transport}
    opts.update(options or {})
    return ExchangeConfig.websocket(
        NAME, endpoint, symbols=symbols, options=opts, **(FAST | overrides)
    )


@asynccontextmanager
async def running(
    cfg: ExchangeConfig, wait: bool = True
) -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
    registry = ExchangeRegistry()
    info = registry.register(hub_plugin_websocket, name="websocket")
    assert info.enabled, info.error
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=registry) as hub:
        await hub.connect_exchange(NAME, cfg, wait=wait, timeout=10)
        yield hub, rec
    rec.close()


def book_of(rec: EventRecorder, symbol: str, after: int = 0) -> dict[tuple[str, int], int]:
    """The book a subscriber rebuilds (``rebuilt_book``), distrusting it past any Gap."""
    return rebuilt_book(rec, symbol, after)


def sim_book(sim: BinanceSimulator, symbol: str) -> dict[tuple[str, int], int]:
    bids, asks = sim.book(symbol)
    return {("B", p): q for p, q in bids.items()} | {("A", p): q for p, q in asks.items()}


def since(
    rec: EventRecorder, mark: int, kind: type, pred: Callable[[Any], bool] = bool
) -> list[Any]:
    return [e for e in rec.events[mark:] if isinstance(e, kind) and pred(e)]


async def quiet(sim: BinanceSimulator) -> None:
    """Stop the market and let the last depth update reach the client."""
    sim.rate = 0
    await anyio.sleep(sim.depth_interval_s * 4)


# -- data ------------------------------------------------------------------------------------------
async def test_book_and_quotes_match_the_venue(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT", "ETHUSDT"], rate=300, seed=3) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT", "ETHUSDT"], ["bookTicker", "depth@100ms"])
        async with running(cfg) as (hub, rec):
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 200, 10, "200 book updates")
            await quiet(sim)
            for sym in ("BTCUSDT", "ETHUSDT"):
                assert book_of(rec, sym) == sim_book(sim, sym)
                q = [x for x in rec.of(Quote) if x.symbol == sym][-1]
                bids, asks = sim.book(sym)
                best_bid, best_ask = max(bids), min(asks)
                assert (q.bid_price, q.bid_size) == (best_bid, bids[best_bid])
                assert (q.ask_price, q.ask_size) == (best_ask, asks[best_ask])
            assert not rec.of(Gap)
            assert hub.event_processor().get_stats().malformed_frames == 0


async def test_permessage_deflate_delivers_the_same_book() -> None:
    """compression = true (websockets only): negotiated with the venue, and the data
    decompresses to the same book and trades."""
    async with BinanceSimulator(["BTCUSDT"], rate=300, seed=5) as sim:
        cfg = config(
            sim.endpoint,
            "websockets",
            ["BTCUSDT"],
            ["trade", "depth@100ms"],
            options={"compression": True},
        )
        async with running(cfg) as (hub, rec):
            assert sim.extensions() == [["permessage-deflate"]]
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 100, 10, "100 book updates")
            await quiet(sim)
            assert book_of(rec, "BTCUSDT") == sim_book(sim, "BTCUSDT")
            got = [(t.price, t.size, t.side) for t in rec.of(Trade)]
            sent = sim.sent_trades("BTCUSDT")
            assert got and got == sent[len(sent) - len(got) :]
            assert hub.event_processor().get_stats().malformed_frames == 0


async def test_combined_endpoint_delivers_the_same_trades(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=200, seed=4) as sim:
        cfg = config(sim.combined_endpoint, transport, ["BTCUSDT"], ["trade", "aggTrade"])
        async with running(cfg) as (_, rec):
            await rec.wait_for(lambda: len(rec.of(Trade)) >= 40, 10, "40 trades")
            got = [(t.price, t.size, t.side) for t in rec.of(Trade)]
            sent = sim.sent_trades("BTCUSDT")
            # trade then aggTrade for every trade (the simulator fills no aggregates), in order
            n = len(got) // 2 * 2
            run = got[0:n:2]
            assert run == got[1:n:2]
            # a contiguous run of what was sent (the same trade may recur: match the run)
            starts = [i for i, t in enumerate(sent) if t == run[0]]
            assert any(sent[i : i + len(run)] == run for i in starts), (run[:4], sent[:8])


async def test_replayed_recording_end_to_end(transport: str) -> None:
    """Real Binance traffic, replayed by the simulator over a real socket."""
    async with BinanceSimulator([], replay=RECORDED, replay_speed=0) as sim:
        symbols = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
        cfg = config(
            sim.combined_endpoint, transport, symbols, ["depth@100ms", "bookTicker", "aggTrade"]
        )
        async with running(cfg) as (hub, rec):
            await rec.wait_for(
                lambda: len(rec.of(Quote)) == 84 and len(rec.of(Trade)) == 2, 10, "the recording"
            )
            await rec.wait_for(lambda: len(rec.of(BookSnapshot)) == 4, 10, "4 synced books")
            stats = hub.event_processor().get_stats()
            assert stats.malformed_frames == 0
            assert not rec.of(Gap)


# -- faults: every one is a Gap (or a counted frame), never silence --------------------------------
async def test_corrupted_depth_update_is_malformed_then_a_gap_then_a_fresh_book(
    transport: str,
) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=200, seed=5) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["depth@100ms"])
        async with running(cfg) as (hub, rec):
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 20, 10, "a synced book")
            mark = len(rec.events)
            sim.corrupt_next_depth()
            await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 10, "a Gap")
            assert "sequence" in since(rec, mark, Gap)[0].reason
            assert hub.event_processor().get_stats().malformed_frames >= 1
            await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a resync")
            await quiet(sim)
            assert book_of(rec, "BTCUSDT", mark) == sim_book(sim, "BTCUSDT")


async def test_unanswered_server_ping_disconnects_and_is_a_gap(transport: str) -> None:
    async with BinanceSimulator(
        ["BTCUSDT"], rate=100, seed=6, ping_interval_s=0.2, ping_timeout_s=0.4
    ) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["trade"])
        async with running(cfg) as (_, rec):
            # the server pings every 0.2 s: the transport answers, so nothing happens
            await anyio.sleep(1.2)
            assert sim.connections_accepted == 1
            assert rec.states().count(ConnectionState.RECONNECTING) == 0
            mark = len(rec.events)
            sim.ignore_pongs()
            await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 10, "the reconnect's Gap")
            sim.ignore_pongs(False)
            assert since(rec, mark, ConnectionStateChanged, lambda e: e.state == "reconnecting")
            await rec.wait_for(lambda: bool(since(rec, mark, Trade)), 10, "trades again")


async def test_book_is_rebuilt_after_a_reconnect_without_ghost_levels(transport: str) -> None:
    """A level that existed only before the drop must not survive it: the reconnected
    session rebuilds from a fresh snapshot instead of patching the old book."""
    async with BinanceSimulator(["BTCUSDT"], rate=150, seed=9) as sim:
        cfg = config(
            sim.endpoint,
            transport,
            ["BTCUSDT"],
            ["depth@100ms"],
            reconnect_delay_ms=600,
            reconnect_max_delay_ms=700,
        )
        async with running(cfg) as (_, rec):
            await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a synced book")
            ghost = sim.set_level("BTCUSDT", "B", "1.00000000", "7.00000000")
            await rec.wait_for(
                lambda: any(u.price == ghost and u.size for u in rec.of(BookUpdate)),
                10,
                "the ghost level to reach the client",
            )
            assert ("B", ghost) in book_of(rec, "BTCUSDT")
            mark = len(rec.events)
            await sim.drop_connections()
            sim.set_level("BTCUSDT", "B", "1.00000000", "0")  # removed while nobody listens
            await anyio.sleep(sim.depth_interval_s * 3)
            assert sim.clients == 0, "the removal must happen while disconnected"
            await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a new book")
            assert since(rec, mark, Gap), "the blind window is a Gap"
            fresh = since(rec, mark, BookSnapshot)[0]
            assert all(p != ghost for p, _ in fresh.bids)
            await quiet(sim)
            after = book_of(rec, "BTCUSDT", mark)
            assert ("B", ghost) not in after
            assert after == sim_book(sim, "BTCUSDT")


# -- TLS -------------------------------------------------------------------------------------------
async def test_tls_with_a_custom_ca(transport: str, tls: tuple[ssl.SSLContext, Path]) -> None:
    server_ctx, ca_file = tls
    async with BinanceSimulator(["BTCUSDT"], rate=150, seed=10, ssl_context=server_ctx) as sim:
        assert sim.endpoint.startswith("wss://") and sim.rest_url.startswith("https://")
        cfg = config(
            sim.endpoint,
            transport,
            ["BTCUSDT"],
            ["trade", "depth@100ms"],
            options={"ca_file": str(ca_file)},
        )
        async with running(cfg) as (_, rec):
            await rec.wait_for(lambda: bool(rec.of(Trade)), 10, "trades over TLS")
            # the REST snapshot came over https, verified against the same CA
            await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a book over https")


async def test_tls_refuses_an_unknown_ca(transport: str, tls: tuple[ssl.SSLContext, Path]) -> None:
    server_ctx, _ = tls
    async with BinanceSimulator(["BTCUSDT"], rate=10, ssl_context=server_ctx) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["trade"])  # system CAs only
        async with running(cfg, wait=False) as (hub, rec):
            await rec.wait_for(
                lambda: ConnectionState.RECONNECTING in rec.states(), 10, "a failed attempt"
            )
            reason = hub.connections()[NAME].reason
            assert "certificate" in reason.lower()
            assert not rec.of(Trade)


async def test_plain_ws_to_a_remote_host_is_refused(transport: str) -> None:
    registry = ExchangeRegistry()
    registry.register(hub_plugin_websocket, name="websocket")
    async with ExchangeHub(TypedEventBus(), registry=registry) as hub:
        cfg = config("ws://stream.binance.com:9443/ws", transport, ["BTCUSDT"], ["trade"])
        with pytest.raises(ConfigError, match=r"endpoint: .*only allowed to a loopback host"):
            await hub.connect_exchange(NAME, cfg)


# -- the venue's refusals and limits ---------------------------------------------------------------
async def test_refused_symbol_is_a_subscription_error(transport: str) -> None:
    async with BinanceSimulator(
        ["BTCUSDT", "BADUSDT"], rate=100, refuse_symbols=["BADUSDT"]
    ) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["trade"])
        async with running(cfg) as (hub, rec):
            with pytest.raises(SubscriptionError, match=r"badusdt@trade.*unknown symbol"):
                await hub.subscribe_market_data(NAME, ["BADUSDT"])
            mark = len(rec.events)
            await rec.wait_for(lambda: len(since(rec, mark, Trade)) >= 5, 10, "BTCUSDT goes on")
            assert {t.symbol for t in since(rec, mark, Trade)} == {"BTCUSDT"}


async def test_lower_case_symbol_is_refused_before_sending(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=10) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["trade"])
        async with running(cfg) as (hub, _):
            sent = len(sim.requests_received)
            with pytest.raises(SubscriptionError, match="upper case"):
                await hub.subscribe_market_data(NAME, ["ethusdt"])
            assert len(sim.requests_received) == sent


async def test_subscribe_is_paced_under_the_message_limit(transport: str) -> None:
    """Ten subscribe calls at once: Binance closes a connection sending more than 5
    messages a second, so the connector spaces them out. The simulator enforces the limit
    itself (``rate_limit_violations``): asserted as counts and order, not as spacing."""
    symbols = [f"S{i}USDT" for i in range(10)]
    async with BinanceSimulator(["BTCUSDT", *symbols], rate=5) as sim:
        cfg = config(sim.endpoint, transport, ["BTCUSDT"], ["trade"])
        async with running(cfg) as (hub, rec):
            async with anyio.create_task_group() as tg:
                for s in symbols:
                    tg.start_soon(hub.subscribe_market_data, NAME, [s])
            assert sim.rate_limit_violations == 0
            ids = [r["id"] for r in sim.requests_received]
            assert len(ids) == 11 and ids == sorted(ids), "every request, in creation order"
            (subs,) = sim.subscriptions()
            assert subs == {f"{s.lower()}@trade" for s in ["BTCUSDT", *symbols]}
            assert ConnectionState.RECONNECTING not in rec.states()


async def test_unacknowledged_subscribe_times_out(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT", "ETHUSDT"], rate=10) as sim:
        cfg = config(
            sim.endpoint,
            transport,
            ["BTCUSDT"],
            ["trade"],
            options={"subscribe_timeout_s": 0.5},
        )
        async with running(cfg) as (hub, _):
            await sim.stall()
            try:
                with pytest.raises(SubscriptionError, match="no subscribe acknowledgement"):
                    await hub.subscribe_market_data(NAME, ["ETHUSDT"])
            finally:
                await sim.resume()


async def test_oversized_frame_closes_the_connection(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=50) as sim:
        cfg = config(
            sim.endpoint, transport, ["BTCUSDT"], ["trade"], options={"max_frame_bytes": 2048}
        )
        async with running(cfg) as (_, rec):
            await rec.wait_for(lambda: bool(rec.of(Trade)), 10, "trades")
            mark = len(rec.events)
            sim.send_raw('{"e":"trade","pad":"' + "x" * 4096 + '"}')
            await rec.wait_for(
                lambda: bool(
                    since(rec, mark, ConnectionStateChanged, lambda e: e.state == "reconnecting")
                ),
                10,
                "the connection to be dropped",
            )
            reason = since(rec, mark, ConnectionStateChanged, lambda e: e.state == "reconnecting")[
                0
            ].reason
            assert "max_frame_bytes" in reason
            await rec.wait_for(lambda: bool(since(rec, mark, Trade)), 10, "trades again")


async def test_futures_variant_books_and_gaps(transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=200, seed=12, futures=True) as sim:
        cfg = config(
            sim.endpoint, transport, ["BTCUSDT"], ["aggTrade", "bookTicker", "depth@100ms"]
        )
        cfg.options["dialect"] = "binance-futures"
        async with running(cfg) as (_, rec):
            await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 50, 10, "a synced book")
            assert rec.of(Trade) and rec.of(Quote)
            mark = len(rec.events)
            await sim.skip_sequence()
            await rec.wait_for(lambda: bool(since(rec, mark, Gap)), 10, "a Gap")
            await rec.wait_for(lambda: bool(since(rec, mark, BookSnapshot)), 10, "a resync")
            await quiet(sim)
            assert book_of(rec, "BTCUSDT", mark) == sim_book(sim, "BTCUSDT")


# -- the connection object itself ------------------------------------------------------------------
async def test_connection_lists_its_subscriptions_and_counts_venue_errors(transport: str) -> None:
    from hub_plugin_websocket import WebSocketConnection, WebSocketFactory

    async with BinanceSimulator(["BTCUSDT", "ETHUSDT"], rate=50) as sim:
        cfg = config(sim.endpoint, transport, [], ["trade", "bookTicker"])
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        from hub_core.processor import EventProcessor

        sink = EventProcessor(bus).sink_for(NAME)
        conn = WebSocketFactory().create(cfg, sink)
        assert isinstance(conn, WebSocketConnection)
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(["BTCUSDT", "ETHUSDT"])
            assert await conn.list_subscriptions() == [
                "btcusdt@bookTicker",
                "btcusdt@trade",
                "ethusdt@bookTicker",
                "ethusdt@trade",
            ]
            await conn.unsubscribe(["ETHUSDT"])
            assert await conn.list_subscriptions() == ["btcusdt@bookTicker", "btcusdt@trade"]
            sim.send_raw('{"error":{"code":3,"msg":"Invalid JSON: nope"},"id":null}')
            await rec.wait_for(lambda: sink.venue_errors == 1, 5, "the venue error")
            assert sink.last_error == "Invalid JSON: nope"
            assert conn.health().connected and conn.health().last_activity_ns > 0
            await conn.close()
        assert not conn.health().connected
