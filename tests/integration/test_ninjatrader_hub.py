"""The hub against the NinjaTrader simulator: what the conformance suite does not cover."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import anyio
import pytest

import hub_plugin_ninjatrader
from hub_core import (
    AuthenticationError,
    BookUpdate,
    ConnectionState,
    ConnectionStateChanged,
    Credentials,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Quote,
    Trade,
    TypedEventBus,
)
from hub_core.testing import EventRecorder
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator

pytestmark = pytest.mark.anyio
SYMBOLS = ["ES 03-26", "NQ 03-26"]


@pytest.fixture
async def hub() -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
    reg = ExchangeRegistry()
    reg.register(hub_plugin_ninjatrader, name="ninjatrader")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=reg) as h:
        yield h, rec
    rec.close()


async def test_ticks_and_stats_match_what_subscribers_saw(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    async with NinjaTraderSimulator(SYMBOLS, rate=500, seed=3) as sim:
        await h.connect_exchange("nt", ExchangeConfig.ninjatrader(sim.endpoint, symbols=SYMBOLS))
        await rec.wait_for(lambda: len(rec.of(BookUpdate)) > 50, 10, "book updates")
        await h.disconnect_exchange("nt")
    stats = h.event_processor().get_stats()
    assert stats.trades_processed == len(rec.of(Trade)) > 0
    assert stats.quotes_processed == len(rec.of(Quote)) > 0
    assert stats.book_updates_processed == len(rec.of(BookUpdate))
    for q in rec.of(Quote):
        assert q.bid_price < q.ask_price and q.exchange == "nt" and q.symbol in SYMBOLS
    assert stats.uptime() > 0


async def test_simulator_killed_and_restarted_reconnects_inside_backoff_bounds(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    async with NinjaTraderSimulator(SYMBOLS, rate=200, seed=5) as sim:
        cfg = ExchangeConfig.ninjatrader(
            sim.endpoint, symbols=SYMBOLS, reconnect_delay_ms=100, reconnect_max_delay_ms=400
        )
        await h.connect_exchange("nt", cfg)
        await rec.wait_for(lambda: len(rec.of(Trade)) > 5, 10, "trades")
        mark = len(rec.events)
        sim.refuse_connections()  # killed: the port refuses connections...
        await sim.drop_connections()  # ...and every live session is gone
        await anyio.sleep(1.0)
        sim.accept_connections()  # back
        await rec.wait_for(
            lambda: any(isinstance(e, Trade) for e in rec.events[mark:]),
            10,
            "trades after the restart",
        )
    window = [e for e in rec.events[mark:] if isinstance(e, ConnectionStateChanged)]
    starts = [e.ts_event for e in window if e.state == ConnectionState.CONNECTING]
    assert len(starts) >= 3  # several refused attempts while it was down
    for a, b in itertools.pairwise(starts):
        gap_ms = (b - a) / 1e6
        assert 100 <= gap_ms <= 400 + 250  # [base, max] plus connect and scheduling time
    gaps = [e for e in rec.events[mark:] if isinstance(e, Gap)]
    assert len(gaps) == 1 and (gaps[0].end_ts - gaps[0].start_ts) / 1e9 >= 0.9
    assert window[-1].state == ConnectionState.CONNECTED


async def test_slow_stream_consumer_never_slows_the_reader_or_sync_subscribers(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    stuck = h.bus.stream(Trade, maxsize=10, overflow="drop_oldest")  # never read
    conflated = h.bus.stream(Quote, maxsize=10, overflow="conflate")
    async with NinjaTraderSimulator(SYMBOLS, rate=2000, seed=7) as sim:
        await h.connect_exchange("nt", ExchangeConfig.ninjatrader(sim.endpoint, symbols=SYMBOLS))
        await rec.wait_for(lambda: len(rec.of(Trade)) > 500, 15, "500 trades")
        await h.disconnect_exchange("nt")
    trades = len(rec.of(Trade))
    assert len(stuck) == 10 and stuck.dropped == trades - 10
    assert len(conflated) <= len(SYMBOLS) and conflated.conflated > 0
    stats = h.event_processor().get_stats()
    assert stats.trades_processed == trades  # the reader kept up: nothing lost upstream
    assert stats.dropped == stuck.dropped
    stuck.close()
    conflated.close()


async def test_block_stream_pauses_the_reader_and_loses_nothing(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    stream = h.bus.stream(Trade, maxsize=20, overflow="block")
    got: list[Trade] = []
    async with NinjaTraderSimulator(SYMBOLS, rate=1000, seed=9) as sim:
        await h.connect_exchange("nt", ExchangeConfig.ninjatrader(sim.endpoint, symbols=SYMBOLS))
        t0 = time.monotonic()
        async for t in stream:
            got.append(t)
            await anyio.sleep(0.002)  # slower than the feed
            if time.monotonic() - t0 > 1.5:
                break
        await h.disconnect_exchange("nt")
    assert stream.dropped == 0
    seqs = [t.sequence for t in got]
    assert seqs == sorted(seqs)
    # every trade the bus carried reached the stream, in order, none skipped
    assert [t.sequence for t in rec.of(Trade)][: len(got)] == seqs
    stream.close()


async def test_wrong_credentials_stop_without_retrying(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    async with NinjaTraderSimulator(SYMBOLS, rate=10, users={"trader": "right"}) as sim:
        cfg = ExchangeConfig.ninjatrader(
            sim.endpoint,
            symbols=SYMBOLS,
            credentials=Credentials(username="trader", password="wrong-secret"),
            reconnect_delay_ms=10,
        )
        with pytest.raises(AuthenticationError) as err:
            await h.connect_exchange("nt", cfg)
        await anyio.sleep(0.3)
        assert sim.connections_accepted == 1
    assert "wrong-secret" not in str(err.value)
    assert rec.states()[-1] == ConnectionState.AUTH_FAILED


async def test_no_data_precedes_the_connected_state_in_any_session(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    """The simulator sends each symbol's book the moment it is subscribed, before the
    hub has published `connected`: the hub holds it back until then, every session."""
    h, rec = hub
    async with NinjaTraderSimulator(SYMBOLS, rate=200, seed=5, depth_levels=5) as sim:
        cfg = ExchangeConfig.ninjatrader(sim.endpoint, symbols=SYMBOLS, reconnect_delay_ms=50)
        await h.connect_exchange("nt", cfg)
        await rec.wait_for(lambda: len(rec.of(Trade)) > 5, 10, "trades")
        await sim.drop_connections()
        await rec.wait_for(
            lambda: (
                sum(
                    1
                    for e in rec.of(ConnectionStateChanged)
                    if e.state == ConnectionState.CONNECTED and e.exchange == "nt"
                )
                >= 2
            ),
            15,
            "a second session",
        )
        await rec.wait_for(lambda: len(rec.of(Trade)) > 20, 10, "more trades")
    up = False
    sessions = 0
    for event in rec.events:
        if isinstance(event, ConnectionStateChanged):
            if event.state == ConnectionState.CONNECTED and not up:
                sessions += 1
            up = event.state == ConnectionState.CONNECTED
        elif not isinstance(event, Gap):
            assert up, f"{type(event).__name__} before the session's connected state"
    assert sessions >= 2


async def test_connection_details_show_state_symbols_and_counters(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    import json

    h, rec = hub
    async with NinjaTraderSimulator(SYMBOLS, rate=300, seed=7) as sim:
        await h.connect_exchange("nt", ExchangeConfig.ninjatrader(sim.endpoint, symbols=SYMBOLS))
        await rec.wait_for(lambda: len(rec.of(Trade)) > 10, 10, "trades")
        (details,) = h.connection_details().values()
        assert list(h.connection_status().values()) == [True]  # the seed's view stays
    assert (details.exchange, details.protocol, details.state) == ("nt", "ninjatrader", "connected")
    assert details.healthy and details.endpoint == sim.endpoint and details.attempt == 0
    assert details.symbols == dict.fromkeys(SYMBOLS, "subscribed")
    assert details.trades >= 10 and details.bytes_received > 0
    assert details.last_message_ns > 0
    plain = details.as_dict()
    assert json.loads(json.dumps(plain)) == plain
