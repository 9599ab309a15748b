"""The real ``ib_async`` client alone against the simulated TWS: what it negotiates,
qualifies, and the exact values of each market-data stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from ib_async import IB, Future, Stock

from hub_core.plugin import PRICE_SCALE, parse_fixed
from hub_plugin_ibkr.codec import MAX_SERVER_VERSION
from hub_plugin_ibkr.simulator import TwsSimulator

pytestmark = pytest.mark.anyio


def fixed(value: float) -> int:
    """ib_async's float back to fixed point (the simulator's prices are on a 0.01 grid)."""
    return parse_fixed(repr(value))


@pytest.fixture
async def ib(sim: TwsSimulator) -> AsyncIterator[Any]:
    client = IB()
    host, port = sim.endpoint.rsplit(":", 1)
    await client.connectAsync(host, int(port), clientId=11, timeout=5)
    try:
        yield client
    finally:
        client.disconnect()


async def until(check: Any, what: str, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - ib_async's state has no event to wait on
            await anyio.sleep(0.01)


async def test_ib_async_negotiates_the_top_version_and_syncs(ib: Any, sim: TwsSimulator) -> None:
    assert ib.client.serverVersion() == MAX_SERVER_VERSION == 178
    assert ib.managedAccounts() == ["DU1234567"]
    assert ib.isConnected()
    asked = {int(r[0]) for r in sim.requests_of(71)}
    assert asked == {71}  # startApi
    # every start-up request ib_async made was answered (connectAsync returned in time)
    assert sim.requests_of(61) and sim.requests_of(6)


async def test_qualify_a_stock_a_future_and_refuse_an_unknown(ib: Any) -> None:
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert (aapl.conId, aapl.symbol, aapl.secType, aapl.currency) == (265598, "AAPL", "STK", "USD")
    [unknown] = await ib.qualifyContractsAsync(Stock("ZZZZ", "SMART", "USD"))
    assert unknown is None


async def test_a_future_from_its_contract_fields() -> None:
    contracts = {"ESZ6": {"ib_symbol": "ES", "sec_type": "FUT", "exchange": "CME",
                          "last_trade_date": "20261218", "multiplier": "50"}}  # fmt: skip
    async with TwsSimulator(["ESZ6"], rate=50, contracts=contracts) as sim:
        client = IB()
        host, port = sim.endpoint.rsplit(":", 1)
        await client.connectAsync(host, int(port), clientId=1, timeout=5)
        try:
            [es] = await client.qualifyContractsAsync(Future("ES", "202612", "CME"))
            assert (es.localSymbol, es.lastTradeDateOrContractMonth) == ("ESZ6", "20261218")
        finally:
            client.disconnect()


async def test_top_of_book_is_the_market_model_s_quote(ib: Any, sim: TwsSimulator) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(c)
    await until(lambda: ticker.last == ticker.last and ticker.bid > 0, "a quote and a trade")
    sim.rate = 0  # freeze the market: the ticker must then show exactly its top
    await anyio.sleep(0.2)
    bid, bsz, ask, asz = sim.market.book("AAPL").top()
    assert (fixed(ticker.bid), fixed(ticker.bidSize)) == (bid, bsz)
    assert (fixed(ticker.ask), fixed(ticker.askSize)) == (ask, asz)
    last_price, last_size, _ = sim.market.book("AAPL").last_trade
    assert (fixed(ticker.last), fixed(ticker.lastSize)) == (last_price, last_size)
    assert ticker.marketDataType == 1
    ib.cancelMktData(c)
    await until(lambda: not sim.streams("top"), "the cancel")


async def test_tick_by_tick_all_last_is_every_trade_in_order(ib: Any, sim: TwsSimulator) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
    before = len(sim.sent_trades("MSFT"))
    ticker = ib.reqTickByTickData(c, "AllLast")
    seen: list[tuple[int, int]] = []
    ticker.updateEvent += lambda t: seen.extend(
        (fixed(x.price), fixed(x.size)) for x in t.tickByTicks
    )
    await until(lambda: len(seen) >= 20, "20 trades")
    sim.rate = 0
    await anyio.sleep(0.2)
    sent = [(p, s) for p, s, _ in sim.sent_trades("MSFT")[before:]]
    assert seen == sent[: len(seen)] and len(seen) >= 20
    ib.cancelTickByTickData(c, "AllLast")
    await until(lambda: not sim.streams("AllLast"), "the cancel")


async def test_depth_rows_are_the_market_model_s_book(ib: Any, sim: TwsSimulator) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktDepth(c, 5)
    await until(lambda: len(ticker.domBids) == 5 and len(ticker.domAsks) == 5, "5 rows a side")
    await anyio.sleep(0.3)
    sim.rate = 0
    await anyio.sleep(0.2)
    bids, asks = sim.market.book("AAPL").levels(5)
    assert [(fixed(r.price), fixed(r.size)) for r in ticker.domBids] == bids
    assert [(fixed(r.price), fixed(r.size)) for r in ticker.domAsks] == asks


async def test_errors_ib_async_sees(ib: Any, sim: TwsSimulator) -> None:
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append((req_id, code))
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    await sim.deny("AAPL", 354)
    ib.reqMktData(c)
    await until(lambda: bool(errors), "the refusal")
    await sim.lose_connectivity()
    await sim.restore_connectivity(data_lost=False)
    await sim.farm_down()
    await sim.farm_up()
    await until(lambda: len(errors) >= 5, "five errors")
    codes = [code for _, code in errors]
    assert codes[0] == 354 and errors[0][0] > 0
    assert codes[1:] == [1100, 1102, 2103, 2104]
    assert all(req_id == -1 for req_id, _ in errors[1:])


async def test_tick_by_tick_past_ib_s_limit_gets_10190(sim: TwsSimulator) -> None:
    sim.max_tick_by_tick = 1
    client = IB()
    host, port = sim.endpoint.rsplit(":", 1)
    await client.connectAsync(host, int(port), clientId=2, timeout=5)
    errors: list[int] = []
    client.errorEvent += lambda req_id, code, text, contract: errors.append(code)
    try:
        a, m = await client.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"),
                                                  Stock("MSFT", "SMART", "USD"))  # fmt: skip
        client.reqTickByTickData(a, "AllLast")
        client.reqTickByTickData(m, "AllLast")
        await until(lambda: 10190 in errors, "error 10190")
    finally:
        client.disconnect()


async def test_a_second_client_with_the_same_id_gets_326(ib: Any, sim: TwsSimulator) -> None:
    other = IB()
    errors: list[int] = []
    other.errorEvent += lambda req_id, code, text, contract: errors.append(code)
    host, port = sim.endpoint.rsplit(":", 1)
    with pytest.raises((ConnectionError, asyncio.TimeoutError, TimeoutError)):
        await other.connectAsync(host, int(port), clientId=11, timeout=2)
    assert 326 in errors
    other.disconnect()


async def test_historical_ticks_serve_the_trades_since_a_time(ib: Any, sim: TwsSimulator) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ib.reqMktData(c)  # the market clock steps subscribed symbols
    await until(lambda: len(sim.trade_log["AAPL"]) >= 10, "10 trades")
    first_ns = sim.trade_log["AAPL"][0][0]
    start = first_ns // 1_000_000_000
    ticks = await ib.reqHistoricalTicksAsync(
        c, f"{__import__('datetime').datetime.utcfromtimestamp(start):%Y%m%d-%H:%M:%S}", "",
        1000, "TRADES", useRth=False,
    )  # fmt: skip
    assert len(ticks) >= 10
    logged = [(p, s) for ts, p, s in sim.trade_log["AAPL"]]
    assert [(fixed(t.price), fixed(t.size)) for t in ticks] == logged[: len(ticks)]
    assert all(t.size * PRICE_SCALE == fixed(t.size) for t in ticks[:3])
