"""Replacing sessions without a gap, and streams spread over several sessions.

Rotation (make before break): with ``max_connection_age_s`` shortened, or on
a ``serverShutdown`` notice, the connection opens a new session, subscribes
it, switches every stream over and only then closes the old one. The
subscriber must see every trade id exactly once, in order, no ``Gap``, no
reconnect, and a book equal to the venue's.

Past ``streams_per_connection`` the symbols go to more sessions, each within
the limit.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

import hub_plugin_websocket
from hub_core import (
    BookSnapshot,
    ConnectionStateChanged,
    ExchangeConfig,
    Gap,
    Quote,
    Trade,
    TypedEventBus,
    hookimpl,
)
from hub_core.processor import EventProcessor
from hub_core.supervisor import ConnectionSupervisor
from hub_core.testing import EventRecorder
from hub_plugin_websocket import WebSocketFactory
from hub_plugin_websocket.codec import RateLimits
from hub_plugin_websocket.dialects.binance import BinanceDialect
from hub_plugin_websocket.registry import DialectRegistry
from hub_plugin_websocket.simulator import BinanceSimulator
from hub_plugin_websocket.simulators import CoinbaseSimulator, KrakenSimulator

from .conftest import rebuilt_book, running_venue
from .test_end_to_end import FAST, book_of, quiet, running, sim_book

pytestmark = pytest.mark.anyio

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def cfg(
    endpoint: str, transport: str, symbols: list[str], channels: list[str], **opts: Any
) -> ExchangeConfig:
    options = {"dialect": "binance", "channels": channels, "transport": transport} | opts
    return ExchangeConfig.websocket("binance", endpoint, symbols=symbols, options=options, **FAST)


def registry_with(dialect: BinanceDialect) -> DialectRegistry:
    """The built-in dialects plus ``dialect``, registered as a vendor would."""

    class Vendor:
        @hookimpl
        def hub_websocket_dialects(self) -> list[BinanceDialect]:
            return [dialect]

    registry = DialectRegistry(discover=False)
    assert registry.register(Vendor(), name=f"vendor-{dialect.name}") == [dialect.name]
    return registry


def assert_exactly_once(rec: EventRecorder, symbol: str) -> list[int]:
    ids = [t.sequence for t in rec.of(Trade) if t.symbol == symbol]
    assert ids, f"no trades of {symbol}"
    missing = sorted(set(range(ids[0], ids[-1] + 1)) - set(ids))
    assert not missing, f"{symbol}: trade ids missing: {missing[:10]}"
    assert len(ids) == len(set(ids)), f"{symbol}: a trade was delivered twice"
    assert ids == sorted(ids), f"{symbol}: trades out of order"
    return ids


def assert_quotes_in_order(rec: EventRecorder, symbol: str) -> None:
    seqs = [q.sequence for q in rec.of(Quote) if q.symbol == symbol]
    assert seqs, f"no quotes of {symbol}"
    assert all(a < b for a, b in itertools.pairwise(seqs)), (
        f"{symbol}: a quote repeated or went back in the switch"
    )


def assert_no_outage(rec: EventRecorder) -> None:
    assert not rec.of(Gap), [g.reason for g in rec.of(Gap)]
    states = [s.state for s in rec.of(ConnectionStateChanged)]
    assert "reconnecting" not in states, states


async def test_age_limit_rotation_loses_and_repeats_nothing(transport: str) -> None:
    channels = ["trade", "bookTicker", "depth@100ms"]
    async with BinanceSimulator(SYMBOLS, rate=300, seed=41) as sim:
        config = cfg(sim.endpoint, transport, SYMBOLS, channels, max_connection_age_s=0.7)
        async with running(config) as (_, rec):
            await rec.wait_for(lambda: sim.connections_accepted >= 4, 15, "three rotations")
            # each rotation rebuilds the books from the new session's snapshot, which a
            # Binance book publishes on its first depth event: wait for them while the
            # market still moves (on a loaded machine the last one can lag the session)
            await rec.wait_for(
                lambda: len(rec.of(BookSnapshot)) >= 2 * 4, 15, "the books of three rotations"
            )
            await quiet(sim)
            await anyio.sleep(0.3)
            for symbol in SYMBOLS:
                ids = assert_exactly_once(rec, symbol)
                # every trade the venue made after the first one we saw, none left out
                sent = sim.sent_trades(symbol)
                got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == symbol]
                start = len(sent) - len(got)
                assert got == sent[start:], f"{symbol}: the trades differ from the venue's"
                assert len(ids) == len(got)
                assert_quotes_in_order(rec, symbol)
                assert book_of(rec, symbol) == sim_book(sim, symbol)
            assert_no_outage(rec)
            # each rotation rebuilt the books from the new session's snapshot
            assert len(rec.of(BookSnapshot)) >= 2 * 4


async def test_server_shutdown_switches_to_a_new_session_without_a_gap(transport: str) -> None:
    async with BinanceSimulator(SYMBOLS, rate=200, seed=8, shutdown_grace_s=5) as sim:
        config = cfg(sim.endpoint, transport, SYMBOLS, ["trade", "bookTicker"])
        async with running(config) as (_, rec):
            await rec.wait_for(lambda: len(rec.of(Trade)) > 20, 10, "trades")
            sim.server_shutdown()
            # the old session is gone well before the venue's own close
            await rec.wait_for(
                lambda: sim.connections_accepted == 2 and sim.clients == 1,
                4,
                "the replacement to take over and the old session to close",
            )
            n = len(rec.of(Trade))
            await rec.wait_for(lambda: len(rec.of(Trade)) > n + 20, 10, "trades after the switch")
            await quiet(sim)
            for symbol in SYMBOLS:
                assert_exactly_once(rec, symbol)
                assert_quotes_in_order(rec, symbol)
            assert_no_outage(rec)


async def test_rotation_with_a_dialect_that_cannot_switch_is_a_reconnect(transport: str) -> None:
    """A vendor dialect without ``rebind``: the age limit still recycles the session, as
    an ordinary reconnect that says so with a Gap."""

    class Plain(BinanceDialect):
        name = "plain-binance"

        def new_session(self, sink: Any, config: Any) -> Any:
            session = super().new_session(sink, config)

            class NoRebind(type(session)):  # type: ignore[misc]
                rebind = hub_plugin_websocket.codec.DialectSession.rebind

            session.__class__ = NoRebind
            return session

    factory = WebSocketFactory(registry_with(Plain()))
    async with BinanceSimulator(["BTCUSDT"], rate=100, seed=13) as sim:
        config = ExchangeConfig.websocket(
            "plain",
            sim.endpoint,
            symbols=["BTCUSDT"],
            options={
                "dialect": "plain-binance",
                "channels": ["trade"],
                "transport": transport,
                "max_connection_age_s": 0.6,
            },
            **FAST,
        )
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        processor = EventProcessor(bus)
        sup = ConnectionSupervisor("plain", config, factory, processor.sink_for("plain"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await rec.wait_for(lambda: bool(rec.of(Gap)), 10, "the recycle's Gap")
            (gap,) = rec.of(Gap)[:1]
            assert "max_connection_age_s" in gap.reason
            n = len(rec.of(Trade))
            await rec.wait_for(lambda: len(rec.of(Trade)) > n, 10, "trades again")
            await sup.stop()
            tg.cancel_scope.cancel()
        rec.close()


async def test_streams_past_the_limit_are_spread_over_sessions(transport: str) -> None:
    """``streams_per_connection`` = 4 and 10 symbols x 1 channel: three sessions, none
    over 4 streams, every symbol's trades delivered; unsubscribing empties and closes
    a session."""

    class Small(BinanceDialect):
        name = "small-binance"
        limits = RateLimits(streams_per_connection=4, messages_per_second=50)

    dialects = registry_with(Small())
    symbols = [f"S{i}USDT" for i in range(10)]
    async with BinanceSimulator(symbols, rate=40, seed=3) as sim:
        config = ExchangeConfig.websocket(
            "small",
            sim.endpoint,
            options={"dialect": "small-binance", "channels": ["trade"], "transport": transport},
            **FAST,
        )
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        sink = EventProcessor(bus).sink_for("small")
        conn = WebSocketFactory(dialects).create(config, sink)
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(symbols)
            assert conn.links == 3
            subs = sim.subscriptions()
            assert sorted(len(s) for s in subs) == [2, 4, 4]
            assert set().union(*subs) == {f"{s.lower()}@trade" for s in symbols}
            await rec.wait_for(
                lambda: {t.symbol for t in rec.of(Trade)} == set(symbols), 10, "every symbol"
            )
            assert len(await conn.list_subscriptions()) == 10
            assert "3 sessions" in conn.health().detail
            # the last session's two symbols go: that session closes
            last_two = [s for s in symbols if f"{s.lower()}@trade" in min(subs, key=len)]
            await conn.unsubscribe(last_two)
            await rec.wait_for(lambda: sim.clients == 2, 5, "the emptied session to close")
            assert conn.links == 2
            # and new symbols fill the free room before a session is opened
            await conn.subscribe(last_two)
            assert conn.links == 3
            await conn.close()
            tg.cancel_scope.cancel()
        rec.close()


@pytest.mark.parametrize(
    ("venue", "symbols", "channels", "depth"),
    [
        ("coinbase", ["BTC-USD", "ETH-USD"], ["matches", "ticker", "level2"], None),
        ("kraken", ["BTC/USD", "ETH/USD"], ["trade", "ticker", "book@10"], 10),
    ],
)
async def test_coinbase_and_kraken_sessions_rotate_without_a_gap(
    transport: str, venue: str, symbols: list[str], channels: list[str], depth: int | None
) -> None:
    """The age limit on the other dialects: trades exactly as the venue made them, the
    books equal to the venue's (Kraken's checksums held across the switch), no Gap."""
    sim_class = CoinbaseSimulator if venue == "coinbase" else KrakenSimulator
    async with (
        sim_class(symbols, rate=250, seed=17) as sim,
        running_venue(
            venue,
            sim.endpoint,
            transport,
            symbols,
            channels,
            options={"max_connection_age_s": 0.8},
        ) as (hub, rec),
    ):
        await rec.wait_for(lambda: sim.connections_accepted >= 3, 15, "two rotations")
        await rec.wait_for(lambda: sim.clients == 1, 5, "the last old session to close")
        sim.rate = 0  # the market stops; the last messages reach the client
        await anyio.sleep(0.5)
        for symbol in symbols:
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == symbol]
            sent = sim.sent_trades(symbol)
            assert got and got == sent[len(sent) - len(got) :], f"{symbol}: every trade once"
            bids, asks = sim.book(symbol, depth)
            venue_levels = {("B", p): q for p, q in bids.items()} | {
                ("A", p): q for p, q in asks.items()
            }
            assert rebuilt_book(rec, symbol) == venue_levels
            if venue == "coinbase":
                assert_quotes_in_order(rec, symbol)  # the ticker's sequence numbers
            else:
                assert_id_less_quotes_follow_the_top(rec, symbol, sim)
        assert_no_outage(rec)
        assert hub.event_processor().get_stats().malformed_frames == 0


def assert_id_less_quotes_follow_the_top(
    rec: EventRecorder, symbol: str, sim: KrakenSimulator
) -> None:
    """Kraken's ticker has no id: the simulator sends one whenever the top of the book
    changes, so two equal quotes in a row are a duplicate, and the last is the venue's
    top now."""
    quotes = [
        (q.bid_price, q.bid_size, q.ask_price, q.ask_size)
        for q in rec.of(Quote)
        if q.symbol == symbol
    ]
    assert len(quotes) > 10, f"{symbol}: too few quotes"
    repeats = [i for i, (a, b) in enumerate(itertools.pairwise(quotes)) if a == b]
    assert not repeats, f"{symbol}: a quote was repeated across the switch"
    bids, asks = sim.book(symbol, 1)
    (bid, bid_size), (ask, ask_size) = next(iter(bids.items())), next(iter(asks.items()))
    assert quotes[-1] == (bid, bid_size, ask, ask_size)


async def test_a_new_session_silent_on_a_stream_is_a_gap_never_a_silent_switch(
    transport: str,
) -> None:
    """The replacement acknowledges the trade streams but never delivers on them: at
    ``rotation_overlap_s`` each gets a Gap naming the rotation; quotes switch cleanly, and
    nothing is published twice or out of order."""
    async with BinanceSimulator(SYMBOLS, rate=200, seed=9, shutdown_grace_s=30) as sim:
        config = cfg(
            sim.endpoint, transport, SYMBOLS, ["trade", "bookTicker"], rotation_overlap_s=1.0
        )
        async with running(config) as (_, rec):
            await rec.wait_for(lambda: len(rec.of(Trade)) > 20, 10, "trades")
            sim.mute_new_sessions(["trade"])
            sim.server_shutdown()
            await rec.wait_for(
                lambda: {g.symbol for g in rec.of(Gap)} >= set(SYMBOLS), 15, "a Gap per symbol"
            )
            await rec.wait_for(lambda: sim.clients == 1, 15, "the old session to close")
            await quiet(sim)
            for symbol in SYMBOLS:
                (gap,) = [g for g in rec.of(Gap) if g.symbol == symbol]
                assert "rotation" in gap.reason and "trades" in gap.reason
                assert_exactly_once(rec, symbol)  # up to the switch, with no repeat
                assert_quotes_in_order(rec, symbol)
                # nothing of the old session's trades after the Gap was published
                after = rec.events[rec.events.index(gap) :]
                assert not [t for t in after if isinstance(t, Trade) and t.symbol == symbol]
            states = [s.state for s in rec.of(ConnectionStateChanged)]
            assert "reconnecting" not in states


async def test_a_dialect_heartbeat_replaces_websocket_pings(transport: str) -> None:
    """``DialectSession.ping_payload``: keepalive and probes send the venue's own
    heartbeat message instead of a WebSocket ping."""
    heartbeat = b'{"method":"LIST_SUBSCRIPTIONS","id":0}'

    class Heartbeat(BinanceDialect):
        name = "heartbeat-binance"

        def new_session(self, sink: Any, config: Any) -> Any:
            session = super().new_session(sink, config)
            session.ping_payload = lambda: heartbeat
            return session

    async with BinanceSimulator(["BTCUSDT"], rate=0, seed=1) as sim:
        config = ExchangeConfig.websocket(
            "hb",
            sim.endpoint,
            options={
                "dialect": "heartbeat-binance",
                "transport": transport,
                "ping_interval_s": 0.2,
                "pong_timeout_s": 1.0,
            },
            **FAST,
        )
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        sink = EventProcessor(bus).sink_for("hb")
        conn = WebSocketFactory(registry_with(Heartbeat())).create(config, sink)
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.probe()
            await rec.wait_for(
                lambda: sum(r.get("id") == 0 for r in sim.requests_received) >= 3,
                5,
                "three heartbeats",
            )
            assert all(r["method"] == "LIST_SUBSCRIPTIONS" for r in sim.requests_received)
            assert conn.health().connected  # the replies kept the session alive
            await conn.close()
            tg.cancel_scope.cancel()
        rec.close()


async def test_subscription_changes_during_a_rotation_reach_the_replacement(
    transport: str,
) -> None:
    """An unsubscribe while both sessions run reaches both; a subscribe goes to a session
    that is not being switched; afterwards only the wanted streams flow, without a Gap."""
    async with BinanceSimulator(["BTCUSDT", "ETHUSDT", "SOLUSDT"], rate=100, seed=9) as sim:
        # a long overlap limit: an unsubscribed stream must not hold the switch until it
        config = cfg(
            sim.endpoint,
            transport,
            [],
            ["trade"],
            max_connection_age_s=0.6,
            rotation_overlap_s=30,
        )
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        conn = WebSocketFactory().create(config, EventProcessor(bus).sink_for("binance"))
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(["BTCUSDT", "ETHUSDT"])
            await rec.wait_for(lambda: sim.clients == 2, 5, "a rotation under way")
            await conn.unsubscribe(["ETHUSDT"])
            await conn.subscribe(["SOLUSDT"])
            await rec.wait_for(
                lambda: conn.rotations >= 1 and sim.clients == conn.links, 5, "the switch"
            )
            await rec.wait_for(lambda: conn.rotations >= 2, 5, "one more rotation")
            await rec.wait_for(lambda: sim.clients == conn.links, 5, "the old session closed")
            streams = set().union(*sim.subscriptions())
            assert streams == {"btcusdt@trade", "solusdt@trade"}
            mark = len(rec.events)
            await rec.wait_for(
                lambda: (
                    {e.symbol for e in rec.events[mark:] if isinstance(e, Trade)}
                    >= {"BTCUSDT", "SOLUSDT"}
                ),
                5,
                "trades of both",
            )
            assert "ETHUSDT" not in {t.symbol for t in rec.events[mark:] if isinstance(t, Trade)}
            assert not rec.of(Gap)
            await conn.close()
            tg.cancel_scope.cancel()
        rec.close()


@pytest.mark.parametrize(
    ("venue", "channels", "muted"),
    [
        ("coinbase", ["matches", "ticker"], "matches"),
        ("kraken", ["trade", "ticker"], "trade"),
    ],
)
async def test_coinbase_and_kraken_replacements_silent_on_trades_are_gaps(
    transport: str, venue: str, channels: list[str], muted: str
) -> None:
    """The same on the other dialects, at the age limit: the replacement acknowledges the
    trade channel but sends no trade; each symbol's trades get a Gap naming the
    rotation, the trades
    published are a run of the venue's own, once each and in order, and the quotes
    switch cleanly."""
    symbols = ["BTC-USD", "ETH-USD"] if venue == "coinbase" else ["BTC/USD", "ETH/USD"]
    sim_class = CoinbaseSimulator if venue == "coinbase" else KrakenSimulator
    async with (
        sim_class(symbols, rate=200, seed=23) as sim,
        running_venue(
            venue,
            sim.endpoint,
            transport,
            symbols,
            channels,
            options={"max_connection_age_s": 1.5, "rotation_overlap_s": 1.0},
        ) as (_, rec),
    ):
        await rec.wait_for(lambda: len(rec.of(Trade)) > 20, 10, "trades")
        sim.mute_new_sessions([muted])
        await rec.wait_for(
            lambda: {g.symbol for g in rec.of(Gap)} >= set(symbols), 20, "a Gap per symbol"
        )
        sim.rate = 0
        await anyio.sleep(0.5)
        for symbol in symbols:
            gaps = [g for g in rec.of(Gap) if g.symbol == symbol]
            assert gaps and all("rotation" in g.reason for g in gaps)
            assert any("trades" in g.reason for g in gaps)
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == symbol]
            sent = sim.sent_trades(symbol)
            runs = [i for i in range(len(sent)) if sent[i : i + len(got)] == got]
            assert runs, f"{symbol}: the trades are not a run of the venue's"
            seqs = [t.sequence for t in rec.of(Trade) if t.symbol == symbol]
            assert all(a < b for a, b in itertools.pairwise(seqs)), "once each, in order"
            if venue == "coinbase":
                assert_quotes_in_order(rec, symbol)
        states = [s.state for s in rec.of(ConnectionStateChanged)]
        assert "reconnecting" not in states
