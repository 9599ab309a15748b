"""The plugin through a real ``ExchangeHub`` against the simulated TWS: exact values in
each data mode, refusals, IB's connectivity and farm codes, limits, faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import hub_plugin_ibkr
from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
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
from hub_core.errors import ConfigError
from hub_core.plugin import ConnectionFactory, Sink, hookimpl
from hub_core.testing import EventRecorder
from hub_plugin_ibkr.connection import IbkrConnection
from hub_plugin_ibkr.factory import IbkrFactory
from hub_plugin_ibkr.simulator import TwsSimulator

from .conftest import SYMBOLS

pytestmark = pytest.mark.anyio

AAPL, MSFT = SYMBOLS
NAME = "ib"


class RecordingFactory(IbkrFactory):
    """The plugin's factory, keeping every connection it made (tests read their state)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[IbkrConnection] = []

    def create(self, config: ExchangeConfig, sink: Sink) -> IbkrConnection:
        conn = super().create(config, sink)
        self.made.append(conn)
        return conn


class TestPlugin:
    """The plugin's hook, serving one ``RecordingFactory``."""

    __test__ = False  # not a pytest class

    def __init__(self, factory: RecordingFactory) -> None:
        self.factory = factory

    @hookimpl
    def hub_connection_factories(self) -> list[ConnectionFactory]:
        return [self.factory]


def config(sim: TwsSimulator, client_id: int = 7, **options: Any) -> ExchangeConfig:
    return ExchangeConfig.interactive_brokers(
        sim.endpoint,
        client_id,
        symbols=SYMBOLS,
        options={"subscribe_settle_s": 0.3, **options},
        reconnect_delay_ms=50,
        reconnect_max_delay_ms=200,
    )


@asynccontextmanager
async def hub_on(
    cfg: ExchangeConfig,
) -> AsyncIterator[tuple[ExchangeHub, EventRecorder, RecordingFactory]]:
    factory = RecordingFactory()
    registry = ExchangeRegistry()
    info = registry.register(TestPlugin(factory), name="ibkr-test")
    assert info.enabled, info.error
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    hub = ExchangeHub(bus, registry=registry)
    try:
        async with hub:
            with anyio.fail_after(10):
                await hub.connect_exchange(NAME, cfg)
            yield hub, rec, factory
    finally:
        rec.close()


def trades(rec: EventRecorder, symbol: str, after: int = 0) -> list[tuple[int, int, str]]:
    return [(t.price, t.size, t.side) for t in rec.events[after:]
            if isinstance(t, Trade) and t.symbol == symbol]  # fmt: skip


def is_run(got: list[Any], sent: list[Any]) -> bool:
    n = len(got)
    return n > 0 and any(sent[i : i + n] == got for i in range(len(sent) - n + 1))


async def n_trades(rec: EventRecorder, symbol: str, n: int, after: int = 0) -> None:
    await rec.wait_for(lambda: len(trades(rec, symbol, after)) >= n, 10, f"{n} {symbol} trades")


def symbol_states(hub: ExchangeHub) -> dict[str, str]:
    [details] = hub.connection_details().values()
    return dict(details.symbols)


def errors_of(hub: ExchangeHub) -> int:
    [details] = hub.connection_details().values()
    return details.venue_errors


async def freeze(sim: TwsSimulator) -> None:
    """Stop the market and let what is in flight arrive."""
    sim.rate = 0
    await anyio.sleep(0.3)


# -- data modes, exact values ------------------------------------------------------------------
async def test_top_of_book_quotes_and_trades_exactly(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, _):
        assert hub.connection_status() == {NAME: True}
        await n_trades(rec, AAPL, 10)
        await n_trades(rec, MSFT, 10)
        await freeze(sim)
        for sym in SYMBOLS:
            assert is_run(trades(rec, sym), sim.sent_trades(sym)), sym
            last = [q for q in rec.of(Quote) if q.symbol == sym][-1]
            book_top = sim.market.book(sym).top()
            assert (last.bid_price, last.bid_size, last.ask_price, last.ask_size) == book_top
            assert all(q.exchange == NAME for q in rec.of(Quote))
        assert symbol_states(hub) == {AAPL: "subscribed", MSFT: "subscribed"}


async def test_tick_by_tick_every_trade_and_quote(sim: TwsSimulator) -> None:
    async with hub_on(config(sim, market_data="tick_by_tick")) as (_hub, rec, _):
        await n_trades(rec, AAPL, 20)
        await freeze(sim)
        got = trades(rec, AAPL)
        sent = sim.sent_trades(AAPL)
        assert is_run(got, sent) and sent[-1] == got[-1]  # every trade, to the last
        assert all(t.ts_event % 1_000_000_000 == 0 for t in rec.of(Trade))  # IB: seconds
        last = [q for q in rec.of(Quote) if q.symbol == MSFT][-1]
        assert (last.bid_price, last.bid_size, last.ask_price, last.ask_size) == sim.market.book(
            MSFT
        ).top()
        assert {s.kind for s in sim.streams()} == {"AllLast", "BidAsk"}


def book_from(rec: EventRecorder, symbol: str) -> tuple[list[Any], list[Any]]:
    """The book a consumer builds: the last snapshot, then the updates after it."""
    events = [e for e in rec.events if getattr(e, "symbol", None) == symbol]
    start = max(i for i, e in enumerate(events) if isinstance(e, BookSnapshot))
    snap = events[start]
    bids, asks = dict(snap.bids), dict(snap.asks)
    for e in events[start + 1 :]:
        if isinstance(e, BookUpdate):
            side = bids if e.side == "B" else asks
            if e.size:
                side[e.price] = e.size
            else:
                side.pop(e.price, None)
    return sorted(bids.items(), reverse=True), sorted(asks.items())


async def test_depth_by_row_is_the_venue_s_book(sim: TwsSimulator) -> None:
    async with hub_on(config(sim, market_data="depth", depth_rows=5)) as (_hub, rec, _):
        await rec.wait_for(
            lambda: len([e for e in rec.of(BookUpdate) if e.symbol == AAPL]) >= 30, 10, "updates"
        )
        await freeze(sim)
        assert book_from(rec, AAPL) == sim.market.book(AAPL).levels(5)
        assert book_from(rec, MSFT) == sim.market.book(MSFT).levels(5)


async def test_depth_reset_317_clears_and_publishes_a_snapshot(sim: TwsSimulator) -> None:
    async with hub_on(config(sim, market_data="depth")) as (_hub, rec, _):
        await rec.wait_for(lambda: len(rec.of(BookSnapshot)) >= 2, 10, "the first snapshots")
        await freeze(sim)
        mark = len(rec.events)
        await sim.depth_reset()
        await rec.wait_for(lambda: len(rec.of(BookSnapshot)) >= 4, 10, "snapshots after 317")
        after = rec.events[mark:]
        clears = [e for e in after if isinstance(e, BookClear)]
        assert {c.symbol for c in clears} == {AAPL, MSFT} and "317" in clears[0].reason
        snap = next(e for e in after if isinstance(e, BookSnapshot) and e.symbol == AAPL)
        assert (list(snap.bids), list(snap.asks)) == sim.market.book(AAPL).levels(5)
        # nothing but the clear and the snapshot: the rebuild publishes no row by row updates
        assert not [e for e in after if isinstance(e, BookUpdate)]


# -- refusals and limits ------------------------------------------------------------------------
async def test_an_unknown_contract_is_a_per_symbol_error(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, _):
        with pytest.raises(SubscriptionError) as err:
            await hub.subscribe_market_data(NAME, ["NOPE"])
        assert set(err.value.refused) == {"NOPE"} and "200" in err.value.refused["NOPE"]
        await n_trades(rec, AAPL, 5, after=len(rec.events))  # the others go on
        assert hub.connection_status() == {NAME: True}


@pytest.mark.parametrize("code", [354, 10089, 10090, 10091, 10186])
async def test_not_entitled_is_refused_once_never_retried(sim: TwsSimulator, code: int) -> None:
    await sim.deny(MSFT, code)
    async with hub_on(config(sim)) as (hub, rec, _):
        await n_trades(rec, AAPL, 3)
        assert str(code) in symbol_states(hub)[MSFT] and "refused" in symbol_states(hub)[MSFT]
        await anyio.sleep(0.5)
        assert len([r for r in sim.requests_of(1) if r[4] == MSFT]) == 1  # no retry loop


async def test_tick_by_tick_over_the_limit_is_refused_before_ib(sim: TwsSimulator) -> None:
    cfg = config(sim, market_data="tick_by_tick", max_tick_by_tick=3)
    cfg = cfg.model_copy(update={"symbols": [AAPL]})
    async with hub_on(cfg) as (hub, _rec, _):
        with pytest.raises(SubscriptionError) as err:
            await hub.subscribe_market_data(NAME, [MSFT])  # 2 more streams: 4 > 3
        assert "options.max_tick_by_tick" in err.value.refused[MSFT]
        assert "3 tick-by-tick" in err.value.refused[MSFT]
        assert len(sim.requests_of(97)) == 2  # IB was never asked for MSFT


async def test_ib_s_own_10190_is_a_refusal(sim: TwsSimulator) -> None:
    sim.max_tick_by_tick = 1  # the account's real limit is lower than the option says
    cfg = config(sim, market_data="tick_by_tick", tick_by_tick_types=["AllLast"])
    async with hub_on(cfg) as (hub, rec, _):
        await n_trades(rec, AAPL, 3)
        states = symbol_states(hub)
        assert states[AAPL] == "subscribed" and "10190" in states[MSFT]


async def test_depth_and_lines_limits_name_their_option(sim: TwsSimulator) -> None:
    cfg = config(sim, market_data="depth", max_depth=1).model_copy(update={"symbols": [AAPL]})
    async with hub_on(cfg) as (hub, _rec, _):
        with pytest.raises(SubscriptionError, match=r"options\.max_depth"):
            await hub.subscribe_market_data(NAME, [MSFT])
    cfg = config(sim, max_market_data_lines=1).model_copy(update={"symbols": [AAPL]})
    async with hub_on(cfg) as (hub, _rec, _):
        with pytest.raises(SubscriptionError, match=r"options\.max_market_data_lines"):
            await hub.subscribe_market_data(NAME, [MSFT])


async def test_a_client_id_clash_is_a_config_error_naming_the_id(sim: TwsSimulator) -> None:
    async with hub_on(config(sim, client_id=9)):
        with pytest.raises(ConfigError) as err:
            async with hub_on(config(sim, client_id=9)):
                pass
    assert "client id 9" in str(err.value) and "326" in str(err.value)
    assert "options.client_id" in str(err.value)


async def test_delayed_data_is_reported_not_passed_off_as_live(sim: TwsSimulator) -> None:
    sim.live_entitled = False
    async with hub_on(config(sim)) as (hub, rec, factory):
        await n_trades(rec, AAPL, 3)
        states = symbol_states(hub)
        assert "delayed" in states[AAPL] and "delayed" in states[MSFT]
        assert factory.made[-1].granted() == {AAPL: "delayed", MSFT: "delayed"}
        assert "not live" in factory.made[-1].health().detail


async def test_competing_session_10197_marks_every_symbol(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, _):
        await n_trades(rec, AAPL, 2)
        await sim.competing_session()
        await rec.wait_for(
            lambda: all("10197" in s for s in symbol_states(hub).values()), 5, "10197 shown"
        )


# -- IB's connectivity codes ---------------------------------------------------------------------
def blind_gaps(rec: EventRecorder, after: int) -> list[Gap]:
    return [e for e in rec.events[after:] if isinstance(e, Gap) and not e.symbol]


async def test_1100_then_1101_resubscribes_with_new_request_ids(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        before = {s.req_id for s in sim.streams()}
        mark = len(rec.events)
        await sim.lose_connectivity()
        await rec.wait_for(
            lambda: all("1100" in s for s in symbol_states(hub).values()), 5, "1100 shown"
        )
        assert not factory.made[-1].health().connected
        await anyio.sleep(0.3)  # blind: the venue's trades of this time are lost
        await sim.restore_connectivity(data_lost=True)
        await n_trades(rec, AAPL, 5, after=len(rec.events))
        after = {s.req_id for s in sim.streams()}
        assert len(after) == 2 and not after & before  # fresh request ids
        [gap] = blind_gaps(rec, mark)
        assert "1101" in gap.reason and gap.end_ts - gap.start_ts >= 300_000_000
        assert symbol_states(hub) == {AAPL: "subscribed", MSFT: "subscribed"}
        # the socket stayed: no reconnect
        assert not [e for e in rec.events[mark:] if isinstance(e, ConnectionStateChanged)]
        assert factory.made[-1].resubscriptions == 2


async def test_1102_closes_the_gap_without_resubscribing(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (_hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        before = {s.req_id for s in sim.streams()}
        mark = len(rec.events)
        await sim.lose_connectivity()
        await anyio.sleep(0.2)
        await sim.restore_connectivity(data_lost=False)
        await n_trades(rec, AAPL, 10, after=len(rec.events))
        await anyio.sleep(1.0)  # past the liveness check
        assert {s.req_id for s in sim.streams()} == before
        [gap] = blind_gaps(rec, mark)
        assert "1102" in gap.reason
        assert factory.made[-1].resubscriptions == 0


async def test_1102_resubscribes_only_a_stream_left_silent(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (_hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        await n_trades(rec, MSFT, 5)
        kept = {s.req_id for s in sim.streams() if s.symbol == AAPL}
        await sim.lose_connectivity()
        await sim.restore_connectivity(data_lost=False, lose=[MSFT])
        mark = len(rec.events)
        await n_trades(rec, MSFT, 3, after=mark)  # requested again, flowing
        assert {s.req_id for s in sim.streams() if s.symbol == AAPL} == kept
        assert factory.made[-1].resubscriptions == 1


async def test_farm_codes_are_tracked_and_2103_opens_a_blind_window(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        conn = factory.made[-1]
        assert conn.farms() == {"usfarm": "ok", "ushmds": "ok", "secdefil": "ok"}
        mark = len(rec.events)
        await sim.farm_down("usfarm")
        await sim.farm_down("ushmds")
        await rec.wait_for(
            lambda: all("2103" in s for s in symbol_states(hub).values()), 5, "2103 shown"
        )
        assert conn.farms()["usfarm"] == "broken" and conn.farms()["ushmds"] == "broken"
        assert "usfarm broken" in conn.health().detail
        await anyio.sleep(0.2)
        await sim.farm_up("usfarm")
        await n_trades(rec, AAPL, 5, after=len(rec.events))
        [gap] = blind_gaps(rec, mark)
        assert "usfarm" in gap.reason and "2104" in gap.reason
        assert symbol_states(hub) == {AAPL: "subscribed", MSFT: "subscribed"}
        assert conn.farms()["ushmds"] == "broken"  # HMDS is not market data: no Gap from it


async def test_backfill_after_1101_recovers_the_trades_missed(sim: TwsSimulator) -> None:
    """Trades alone: every trade of the blind window comes back from the history, none
    twice at the seam, and the Gap covers only the seam to the new stream."""
    cfg = config(sim, market_data="tick_by_tick", tick_by_tick_types=["AllLast"],
                 backfill=True, tick_by_tick_interval_s=0)  # fmt: skip
    async with hub_on(cfg) as (_hub, rec, _):
        await n_trades(rec, AAPL, 5)
        await sim.lose_connectivity()
        blind_from = time.time_ns()
        lost_from = len(sim.sent_trades(AAPL))
        await anyio.sleep(0.5)  # the market trades on, nobody sees it
        await freeze(sim)
        assert len(sim.sent_trades(AAPL)) > lost_from  # there is something to recover
        restored = time.time_ns()
        await sim.restore_connectivity(data_lost=True)
        await rec.wait_for(lambda: bool(blind_gaps(rec, 0)), 10, "the Gap after the backfill")
        assert trades(rec, AAPL) == sim.sent_trades(AAPL)  # every trade, none twice
        assert trades(rec, MSFT) == sim.sent_trades(MSFT)
        [gap] = blind_gaps(rec, 0)
        assert "recovered by backfill" in gap.reason
        assert gap.start_ts >= restored > blind_from  # not the blind window: only the seam
        assert len(sim.requests_of(96)) == 2  # one history page per symbol


async def test_backfill_with_quotes_still_gaps_the_whole_window(sim: TwsSimulator) -> None:
    cfg = config(sim, market_data="tick_by_tick", backfill=True, tick_by_tick_interval_s=0)
    async with hub_on(cfg) as (_hub, rec, _):
        await n_trades(rec, AAPL, 5)
        await sim.lose_connectivity()
        blind_from = time.time_ns()
        await anyio.sleep(0.3)
        await freeze(sim)
        await sim.restore_connectivity(data_lost=True)
        await rec.wait_for(lambda: bool(blind_gaps(rec, 0)), 10, "the Gap after the backfill")
        [gap] = blind_gaps(rec, 0)
        assert gap.start_ts <= blind_from and "quotes and book not" in gap.reason
        assert trades(rec, AAPL) == sim.sent_trades(AAPL)


# -- the socket ------------------------------------------------------------------------
async def test_socket_drop_reconnects_and_resubscribes(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        mark = len(rec.events)
        await sim.drop_connections()
        await rec.wait_for(
            lambda: any(isinstance(e, ConnectionStateChanged) and e.state == "connected"
                        for e in rec.events[mark:]), 10, "reconnected",
        )  # fmt: skip
        await n_trades(rec, AAPL, 5, after=len(rec.events))
        await n_trades(rec, MSFT, 5, after=len(rec.events))
        assert len(factory.made) == 2
        assert [g for g in blind_gaps(rec, mark) if "blind" in g.reason]
        # the contracts were qualified once, by the first session
        assert len(sim.requests_of(9)) == 0  # the second session's requests only
        assert hub.connection_status() == {NAME: True}


async def test_delayed_stays_reported_across_1100_1102(sim: TwsSimulator) -> None:
    sim.live_entitled = False
    async with hub_on(config(sim)) as (hub, rec, _):
        await n_trades(rec, AAPL, 2)
        await sim.lose_connectivity()
        await sim.restore_connectivity(data_lost=False)
        await rec.wait_for(lambda: bool(blind_gaps(rec, 0)), 5, "the Gap")
        assert all("delayed" in s for s in symbol_states(hub).values())


async def test_pacing_error_100_is_counted_not_a_disconnect(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (hub, rec, _):
        await n_trades(rec, AAPL, 2)
        before = errors_of(hub)
        mark = len(rec.events)
        await sim.pacing_violation()
        await rec.wait_for(lambda: errors_of(hub) > before, 5, "error 100")
        await n_trades(rec, AAPL, 3, after=mark)
        assert not [e for e in rec.events[mark:] if isinstance(e, ConnectionStateChanged)]


async def test_a_tick_by_tick_request_again_waits_out_ib_s_15_s_rule(sim: TwsSimulator) -> None:
    cfg = config(sim, market_data="tick_by_tick", tick_by_tick_types=["AllLast"],
                 tick_by_tick_interval_s=1.0)  # fmt: skip
    async with hub_on(cfg) as (_hub, rec, factory):
        await n_trades(rec, AAPL, 2)
        first = {r[1] for r in sim.requests_of(97)}
        t0 = time.monotonic()
        await sim.lose_connectivity()
        await sim.restore_connectivity(data_lost=True)
        await rec.wait_for(lambda: len(sim.requests_of(97)) == 4, 5, "the requests again")
        waited = time.monotonic() - t0
        assert not {r[1] for r in sim.requests_of(97)[2:]} & first
        assert waited >= 0.5  # not at once: the interval since the first request is kept
        assert factory.made[-1].resubscriptions == 2


async def test_2104_verifies_the_streams_and_requests_a_dead_one_again(sim: TwsSimulator) -> None:
    async with hub_on(config(sim)) as (_hub, rec, factory):
        await n_trades(rec, AAPL, 5)
        await n_trades(rec, MSFT, 5)
        kept = {s.req_id for s in sim.streams() if s.symbol == AAPL}
        await sim.farm_down()
        await sim.farm_up(lose=[MSFT])
        await n_trades(rec, MSFT, 3, after=len(rec.events))  # requested again
        assert {s.req_id for s in sim.streams() if s.symbol == AAPL} == kept
        assert factory.made[-1].resubscriptions == 1


async def test_a_future_named_in_contracts_toml(tmp_path: Path) -> None:
    """The TOML names of shared/DESIGN.md: a symbol in ``contracts`` is that contract, one
    not listed a US stock on SMART; both stream through ``ExchangeHub.from_toml``."""
    sim_contracts = {"ESZ6": {"ib_symbol": "ES", "sec_type": "FUT", "exchange": "CME",
                              "last_trade_date": "20261218", "primary_exchange": ""}}  # fmt: skip
    async with TwsSimulator(["AAPL", "ESZ6"], rate=200, contracts=sim_contracts) as sim:
        path = tmp_path / "hub.toml"
        path.write_text(
            "[exchanges.ib]\n"
            'protocol = "ibkr"\n'
            f'endpoint = "{sim.endpoint}"\n'
            'symbols = ["AAPL", "ESZ6"]\n'
            # (an inline options table cannot be extended by [exchanges.ib.options.contracts]
            # in TOML: the options go in a table of their own)
            "[exchanges.ib.options]\n"
            'client_id = 7\nmarket_data = "top"\n'
            "[exchanges.ib.options.contracts]\n"
            'ESZ6 = { sec_type = "FUT", exchange = "CME", currency = "USD", '
            'last_trade_date = "202612", symbol = "ES" }\n'
        )
        registry = ExchangeRegistry()
        registry.register(hub_plugin_ibkr, name="ibkr")
        hub = ExchangeHub.from_toml(path, registry=registry)
        rec = EventRecorder(hub.bus)
        async with hub:
            await rec.wait_for(
                lambda: {t.symbol for t in rec.of(Trade)} == {"AAPL", "ESZ6"}, 10, "both"
            )
            # the future was asked for as the TOML says (symbol, type, month, exchange)
            [es] = [r for r in sim.requests_of(9) if r[4] == "ES"]
            assert (es[5], es[6], es[10], es[12]) == ("FUT", "202612", "CME", "USD")
        rec.close()
        assert is_run(trades(rec, "ESZ6"), sim.sent_trades("ESZ6"))


async def test_delayed_asked_for_is_reported_as_granted(sim: TwsSimulator) -> None:
    async with hub_on(config(sim, market_data_type="delayed")) as (hub, rec, factory):
        await n_trades(rec, AAPL, 3)
        assert [int(r[2]) for r in sim.requests_of(59)] == [3]  # reqMarketDataType 3
        assert factory.made[-1].granted() == {AAPL: "delayed", MSFT: "delayed"}
        assert all("delayed" in s for s in symbol_states(hub).values())
        await freeze(sim)  # delayed tick types (66-71) carry the same exact values
        last = [q for q in rec.of(Quote) if q.symbol == AAPL][-1]
        assert (last.bid_price, last.bid_size, last.ask_price, last.ask_size) == sim.market.book(
            AAPL
        ).top()
