"""The connection against the loopback gateway: values, refusals, faults; and the official
client on the same gateway as the oracle for what the venue sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import databento as db
import databento_dbn as dbn
import pytest

from hub_core import (
    AuthenticationError,
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionFailed,
    ExchangeConfig,
    ExchangeConnection,
    Quote,
    SubscriptionError,
    Trade,
)
from hub_core.errors import ConfigError
from hub_plugin_databento import DatabentoFactory
from hub_plugin_databento.connection import DatabentoConnection
from hub_plugin_databento.simulator import GatewaySimulator

from .conftest import KEY, SYMBOLS, Collected

pytestmark = pytest.mark.anyio

ES, NQ = SYMBOLS
SCALE = 1_000_000_000


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``cond`` (the gateway and the reader run in this same loop)."""
    with anyio.fail_after(timeout):
        while not cond():  # noqa: ASYNC110 - plain state, no event to wait on
            await anyio.sleep(0.005)


def _config(endpoint: str, key: str | None = KEY, **options: Any) -> ExchangeConfig:
    return ExchangeConfig.databento(
        "GLBX.MDP3", api_key=key, endpoint=endpoint, symbols=SYMBOLS, options=options
    )


@asynccontextmanager
async def running(
    sim: GatewaySimulator, got: Collected, key: str | None = KEY, **options: Any
) -> AsyncIterator[tuple[DatabentoConnection, list[BaseException]]]:
    """A connected connection with ``run()`` in a task; yields it and run()'s errors."""
    conn = DatabentoFactory().create(_config(sim.endpoint, key, **options), got.sink)
    await conn.connect(sim.endpoint)
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await conn.run()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        try:
            yield conn, errors
        finally:
            await conn.close()


def _decoded(sim: GatewaySimulator, schema: str) -> list[Any]:
    """What the gateway made for ``schema``, decoded by databento-dbn (the oracle)."""
    decoder = dbn.DBNDecoder()
    raw, iid = dbn.SType.from_str("raw_symbol"), dbn.SType.from_str("instrument_id")
    decoder.write(dbn.Metadata("GLBX.MDP3", 0, raw, iid, None).encode())
    for r in sim.records:
        if r.schema == schema:
            decoder.write(r.data)
    return [r for r in decoder.decode() if not isinstance(r, dbn.Metadata)]


async def test_connection_satisfies_the_contract(sim: GatewaySimulator) -> None:
    conn = DatabentoFactory().create(_config(sim.endpoint), Collected().sink)
    assert isinstance(conn, ExchangeConnection)
    assert conn.health().connected is False


async def test_trades_and_quotes_carry_exactly_what_the_gateway_sent(
    sim: GatewaySimulator,
) -> None:
    got = Collected()
    async with running(sim, got) as (conn, errors):
        assert conn.health().connected and conn.session_id
        await conn.subscribe(SYMBOLS)
        assert conn.subscribed == set(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 20 and len(got.of(Quote)) >= 20)
        assert conn.instrument_ids == sim.instrument_ids
    assert errors == []
    by_seq = {r.sequence: r for r in _decoded(sim, "trades")}
    trades = got.of(Trade)
    for t in trades:
        r = by_seq[t.sequence]
        symbol = ES if r.instrument_id == sim.instrument_ids[ES] else NQ
        assert (t.exchange, t.symbol, t.price, t.size) == ("glbx", symbol, r.price, r.size * SCALE)
        assert t.side == r.side.value
        assert t.ts_event == r.ts_event
    # nothing lost between the first and the last trade received
    seqs = [t.sequence for t in trades]
    made = sorted(s for s in by_seq if seqs[0] <= s <= seqs[-1])
    assert seqs == made
    quotes = {q.sequence: q for q in got.of(Quote)}
    for r in _decoded(sim, "mbp-1"):
        q = quotes.get(r.sequence)
        if q is not None:
            level = r.levels[0]
            assert (q.bid_price, q.ask_price) == (level.bid_px, level.ask_px)
            assert (q.bid_size, q.ask_size) == (level.bid_sz * SCALE, level.ask_sz * SCALE)
    assert got.sink.malformed_count == 0


async def test_depth_schemas_become_snapshots_and_order_updates(sim: GatewaySimulator) -> None:
    got = Collected()
    async with running(sim, got, schemas=["mbp-10", "mbo"]) as (conn, _):
        await conn.subscribe([ES])
        await until(lambda: len(got.of(BookSnapshot)) >= 5 and len(got.of(BookUpdate)) >= 30)
    snaps = got.of(BookSnapshot)
    assert all(s.symbol == ES and 0 < len(s.bids) <= 10 for s in snaps)
    assert all(s.bids[0][0] < s.asks[0][0] for s in snaps)
    # every level exactly as databento-dbn reads the gateway's record (empty ones left out)
    made = {r.sequence: r for r in _decoded(sim, "mbp-10")}
    for snap in snaps:
        levels = made[snap.sequence].levels
        bids = tuple((lv.bid_px, lv.bid_sz * SCALE) for lv in levels if lv.bid_sz)
        asks = tuple((lv.ask_px, lv.ask_sz * SCALE) for lv in levels if lv.ask_sz)
        assert (snap.bids, snap.asks) == (bids, asks)
    # snapshot=True: the book starts with a clear, then one order per level
    first_clear = next(i for i, e in enumerate(got.events) if isinstance(e, BookClear))
    first_update = next(i for i, e in enumerate(got.events) if isinstance(e, BookUpdate))
    assert first_clear < first_update
    updates = got.of(BookUpdate)
    assert {u.action for u in updates[:10]} == {"A"}
    assert all(u.order_id > 0 for u in updates[:10])


async def test_the_official_client_sees_the_same_trades(sim: GatewaySimulator) -> None:
    got = Collected()
    theirs: list[Any] = []
    client = db.Live(key=KEY, gateway=sim.host, port=sim.port)
    client.add_callback(theirs.append)
    # the official client blocks while it talks to the gateway, which runs in this loop
    await asyncio.to_thread(client.subscribe, dataset="GLBX.MDP3", schema="trades", symbols=SYMBOLS)
    await asyncio.to_thread(client.start)
    try:
        async with running(sim, got, schemas=["trades"]) as (conn, _):
            await conn.subscribe(SYMBOLS)
            await until(lambda: len(got.of(Trade)) >= 30)
        await anyio.sleep(0.3)
    finally:
        await asyncio.to_thread(client.stop)
        await client.wait_for_close(timeout=5)
    their_trades = {r.sequence: r for r in theirs if isinstance(r, dbn.TradeMsg)}
    ours = got.of(Trade)
    assert ours
    for t in ours:
        r = their_trades[t.sequence]
        assert (t.price, t.size, t.ts_event) == (r.price, r.size * SCALE, r.ts_event)


async def test_unknown_symbol_is_refused_and_the_other_streams(sim: GatewaySimulator) -> None:
    got = Collected()
    await sim.refuse_symbol(NQ)
    async with running(sim, got, schemas=["trades"]) as (conn, _):
        with pytest.raises(SubscriptionError) as info:
            await conn.subscribe(SYMBOLS)
        assert set(info.value.refused) == {NQ}
        assert "resolve symbol" in info.value.refused[NQ]
        assert conn.subscribed == {ES}
        await until(lambda: len(got.of(Trade)) >= 3)
    assert {t.symbol for t in got.of(Trade)} == {ES}


async def test_a_wrong_key_is_refused_once_without_the_key_in_the_message() -> None:
    async with GatewaySimulator(SYMBOLS, rate=100, api_keys=[KEY]) as sim:
        wrong = "db-" + "W" * 29
        conn = DatabentoFactory().create(_config(sim.endpoint, wrong), Collected().sink)
        with pytest.raises(AuthenticationError) as info:
            await conn.connect(sim.endpoint)
        assert "Authentication failed" in str(info.value)
        assert wrong not in str(info.value) and wrong[-5:] not in str(info.value)
        assert sim.sessions_started == 0
        await conn.close()


async def test_no_key_is_a_clear_authentication_error(
    sim: GatewaySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    conn = DatabentoFactory().create(_config(sim.endpoint, None), Collected().sink)
    with pytest.raises(AuthenticationError, match="DATABENTO_API_KEY is not set"):
        await conn.connect(sim.endpoint)
    assert sim.connections_accepted == 0  # refused before dialling
    monkeypatch.setenv("DATABENTO_API_KEY", KEY)
    got = Collected()
    async with running(sim, got, None) as (conn, _):
        assert conn.health().connected


async def test_bad_endpoint_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="host:port"):
        DatabentoFactory().check_endpoint("nonsense")
    conn = DatabentoFactory().create(_config("nonsense"), Collected().sink)
    with pytest.raises(ConfigError):
        await conn.connect("nonsense")


async def test_a_drop_ends_run_with_connection_failed(sim: GatewaySimulator) -> None:
    got = Collected()
    async with running(sim, got, schemas=["trades"]) as (conn, errors):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 3)
        assert await sim.drop_connections() == 1
        await until(lambda: bool(errors))
        assert not conn.health().connected
    assert isinstance(errors[0], ConnectionFailed)
    assert "closed the connection" in str(errors[0])


async def test_malformed_record_is_counted_and_the_stream_goes_on(sim: GatewaySimulator) -> None:
    got = Collected()
    async with running(sim, got, schemas=["trades"]) as (conn, _):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 3)
        await sim.send_malformed()
        await until(lambda: got.sink.malformed_count == 1)
        n = len(got.of(Trade))
        await until(lambda: len(got.of(Trade)) > n + 3)


async def test_heartbeats_keep_a_quiet_link_moving() -> None:
    async with GatewaySimulator(SYMBOLS, rate=0) as sim:
        got = Collected()
        async with running(sim, got, schemas=["trades"], heartbeat_interval_s=5) as (conn, _):
            await conn.subscribe(SYMBOLS)
            before = conn.health().last_activity_ns
            await until(lambda: conn.health().last_activity_ns > before, timeout=8.0)
        assert got.of(Trade) == []


async def test_skipped_records_after_slow_reading_are_a_gap(sim: GatewaySimulator) -> None:
    got = Collected()
    async with running(sim, got, schemas=["trades"]) as (conn, _):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 3)
        await sim.skip_records(5)
        await until(lambda: len([g for g in got.events if type(g).__name__ == "Gap"]) == 2)
    gaps = [g for g in got.events if type(g).__name__ == "Gap"]
    assert {g.symbol for g in gaps} == set(SYMBOLS)
    assert all("skipped records after slow reading" in g.reason for g in gaps)
    assert all(g.start_ts <= g.end_ts for g in gaps)


def test_a_link_is_stale_after_the_heartbeat_interval_plus_10_s() -> None:
    factory = DatabentoFactory()
    assert factory.stale_after_ms(_config("127.0.0.1:1")) == 40_000
    assert factory.stale_after_ms(_config("127.0.0.1:1", heartbeat_interval_s=5)) == 30_000
    explicit = ExchangeConfig.databento(
        "GLBX.MDP3", endpoint="127.0.0.1:1", stale_after_ms=700, options={}
    )
    assert factory.stale_after_ms(explicit) == 700  # the user's choice wins


def test_an_empty_endpoint_is_the_datasets_gateway() -> None:
    from hub_plugin_databento.connection import gateway_of

    DatabentoFactory().check_endpoint("")
    assert gateway_of("GLBX.MDP3") == "glbx-mdp3.lsg.databento.com:13000"
    with pytest.raises(ValueError, match="'' is not host:port"):
        from hub_plugin_ninjatrader import NinjaTraderFactory

        NinjaTraderFactory().check_endpoint("")  # "" means something only to Databento


async def _hub_on(sim: GatewaySimulator) -> tuple[Any, Any]:
    import hub_plugin_databento
    from hub_core import ExchangeHub, ExchangeRegistry, TypedEventBus
    from hub_core.testing import EventRecorder

    reg = ExchangeRegistry()
    reg.register(hub_plugin_databento, name="databento")
    bus = TypedEventBus()
    return ExchangeHub(bus, registry=reg), EventRecorder(bus)


async def test_a_replay_older_than_the_gateways_window_is_a_gap_with_the_reason() -> None:
    from hub_core import Gap

    async with GatewaySimulator(SYMBOLS, rate=200, seed=3, replay_window_s=0.2) as sim:
        hub, rec = await _hub_on(sim)
        config = ExchangeConfig.databento(
            "GLBX.MDP3", api_key=KEY, endpoint=sim.endpoint, symbols=SYMBOLS,
            reconnect_delay_ms=50, reconnect_max_delay_ms=100, options={"schemas": ["trades"]},
        )  # fmt: skip
        async with hub:
            await hub.connect_exchange("glbx", config)
            await rec.wait_for(lambda: len(rec.of(Trade)) >= 5, 10, "trades")
            sim.refuse_connections()
            await sim.drop_connections()
            await anyio.sleep(0.6)  # the seam ages out of the gateway's 0.2 s window
            sim.accept_connections()
            mark = len(rec.events)
            await rec.wait_for(
                lambda: any(isinstance(e, Trade) for e in rec.events[mark:]), 10, "trades again"
            )
            gaps = rec.of(Gap)
            assert len(gaps) == 1, gaps
            assert "refused the replay" in gaps[0].reason
            assert "older than the intraday replay window" in gaps[0].reason
            assert gaps[0].start_ts < gaps[0].end_ts
            assert sim.replays == 0  # refused: no replay was served


async def test_a_replay_after_a_drop_delivers_every_trade_once() -> None:
    """Through the hub: a drop mid-stream, a reconnect with replay; the trades received
    are exactly the gateway's trade records from the first received to the last, by
    sequence, none twice, and no Gap."""
    from hub_core import Gap

    async with GatewaySimulator(SYMBOLS, rate=400, seed=9) as sim:
        hub, rec = await _hub_on(sim)
        config = ExchangeConfig.databento(
            "GLBX.MDP3", api_key=KEY, endpoint=sim.endpoint, symbols=SYMBOLS,
            reconnect_delay_ms=50, reconnect_max_delay_ms=100,
        )  # fmt: skip
        async with hub:
            await hub.connect_exchange("glbx", config)
            for _ in range(3):
                n = len(rec.of(Trade))
                await rec.wait_for(lambda n=n: len(rec.of(Trade)) >= n + 10, 10, "trades")
                await sim.drop_connections()
            n = len(rec.of(Trade))
            await rec.wait_for(lambda: len(rec.of(Trade)) >= n + 10, 10, "trades after")
        assert rec.of(Gap) == []
        assert sim.replays == 3 * 2  # trades and mbp-1, three times
        seqs = [t.sequence for t in rec.of(Trade)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        quotes = [q.sequence for q in rec.of(Quote)]
        assert len(set(quotes)) == len(quotes)


async def test_bench_mode_streams_real_shaped_batches() -> None:
    """``bench=True`` (what benchmarks/databento_compare.py drives): batches of trades,
    mbp-1 and mbp-10 records as fast as the socket takes them, decoded cleanly."""
    async with GatewaySimulator(SYMBOLS, rate=0, bench=True, bench_batch=400) as sim:
        got = Collected()
        schemas = ["trades", "mbp-1", "mbp-10"]
        async with running(sim, got, schemas=schemas) as (conn, errors):
            await conn.subscribe(SYMBOLS)
            await until(lambda: len(got.events) >= 2_000)
        assert errors == []
        kinds = {type(e).__name__ for e in got.events}
        assert {"Trade", "Quote", "BookSnapshot"} <= kinds
        assert {e.symbol for e in got.events} == set(SYMBOLS)
        assert got.sink.malformed_count == 0


async def test_the_mbo_book_equals_the_gateways_book_also_after_a_drop() -> None:
    """``hub.book()`` on an mbo feed (orders aggregated into levels by the core's
    ``MboBook``), started from the gateway's snapshot: once the market stops it is the
    simulator's book, level for level; after a drop the new session's snapshot makes it
    so again."""
    async with GatewaySimulator([ES], rate=300, seed=4) as sim:
        hub, rec = await _hub_on(sim)
        config = ExchangeConfig.databento(
            "GLBX.MDP3", api_key=KEY, endpoint=sim.endpoint, symbols=[ES],
            reconnect_delay_ms=50, reconnect_max_delay_ms=100, options={"schemas": ["mbo"]},
        )  # fmt: skip
        async with hub:
            book = hub.book("glbx", ES)
            await hub.connect_exchange("glbx", config)
            for _ in range(2):
                await rec.wait_for(lambda: len(rec.of(BookUpdate)) >= 200, 10, "mbo updates")
                sim.rate = 0
                await anyio.sleep(0.3)  # what is in flight lands
                bids, asks = sim.market.book(ES).levels()
                assert book.valid and not book.stale, book.reason
                assert book.levels() == (tuple(bids), tuple(asks))
                sim.rate = 300
                rec.events.clear()
                await sim.drop_connections()


async def test_tbbo_is_a_trade_and_its_quote_as_the_gateway_sent_them(
    sim: GatewaySimulator,
) -> None:
    """tbbo (each trade with the top of book, in the mbp-1 layout): a Trade, then a
    Quote, both exactly as databento-dbn reads the gateway's record."""
    got = Collected()
    async with running(sim, got, schemas=["tbbo"]) as (conn, _):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 5, timeout=5)
    tbbo = {r.sequence: r for r in _decoded(sim, "tbbo")}
    trades, quotes = got.of(Trade), got.of(Quote)
    assert [t.sequence for t in trades] == [q.sequence for q in quotes][: len(trades)]
    for t in trades:
        r = tbbo[t.sequence]
        assert (t.price, t.size, t.side, t.ts_event) == (
            r.price, r.size * SCALE, r.side.value, r.ts_event,
        )  # fmt: skip
    for q in quotes:
        level = tbbo[q.sequence].levels[0]
        assert (q.bid_price, q.ask_price) == (level.bid_px, level.ask_px)
    # each trade comes right before its quote
    kinds = [type(e).__name__ for e in got.events if isinstance(e, Trade | Quote)]
    assert kinds[: 2 * len(trades)] == ["Trade", "Quote"] * len(trades)


async def test_bbo_1s_is_the_top_sampled_at_every_whole_second(sim: GatewaySimulator) -> None:
    got = Collected()
    async with running(sim, got, schemas=["bbo-1s"]) as (conn, _):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Quote)) >= 2, timeout=5)
    assert got.of(Trade) == []  # a bbo record's last trade is not a new trade
    bbo = {r.sequence: r for r in _decoded(sim, "bbo-1s")}
    for q in got.of(Quote):
        level = bbo[q.sequence].levels[0]
        assert (q.bid_price, q.ask_price, q.bid_size, q.ask_size) == (
            level.bid_px, level.ask_px, level.bid_sz * SCALE, level.ask_sz * SCALE,
        )  # fmt: skip
        assert q.ts_event % 1_000_000_000 == 0


async def test_trades_come_once_when_trades_and_mbp_1_are_both_taken(
    sim: GatewaySimulator,
) -> None:
    got = Collected()
    async with running(sim, got, schemas=["trades", "mbp-1"]) as (conn, _):
        await conn.subscribe(SYMBOLS)
        await until(lambda: len(got.of(Trade)) >= 10)
    made = {r.sequence: (r.ts_event, r.price, r.size * SCALE) for r in _decoded(sim, "trades")}
    # every trade is a trades record (an mbp-1 trade would carry the mbp-1 channel's
    # sequence, whose trades record says something else)
    assert all(made.get(t.sequence) == (t.ts_event, t.price, t.size) for t in got.of(Trade))
    seqs = [t.sequence for t in got.of(Trade)]
    assert seqs == sorted(set(seqs))
