"""Interactive Brokers: the plugin's read path against ib_async's own, same bytes, same run.

    python benchmarks/ibkr_compare.py        # or compare.py --only ibkr

1. In process, one stream of tick-by-tick AllLast messages (8 instruments, as the TWS
   API frames them), fed as socket reads of 64 KiB and as reads of 1 MiB (a backlog
   after a pause):
   - ib_async alone: its socket callback (``Client._onSocketHasData``: its framing,
     which re-slices the buffer for every message, its decoder, its Tickers);
   - ours: the connection's read path (``IbkrConnection._on_data``: the kit's bounded
     framing, our handlers, ``sink.trade_text`` into the bus with a no-op subscriber).
2. End to end over loopback: the TWS simulator sends a burst of tick-by-tick trades;
   the hub's connection to a no-op subscriber, and ib_async alone to a Ticker callback.
3. Receive-to-callback latency at 10 k ticks/s (batches every 10 ms): ours from each
   Trade's ``ts_recv`` (stamped once per socket read) to its subscriber; ib_async's from
   its ``Ticker.timestamp`` (stamped once per socket read) to the Ticker's
   ``updateEvent`` (once per read, for all of its ticks). p50 and p99 in microseconds.

Ratios are ours / theirs (above 1: ours is faster); "overhead" is our ns per tick
minus ib_async's (negative: we add nothing, we save). Nothing here is asserted.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from ib_async import IB, Stock
from ib_async.client import Client

from hub_core import ExchangeConfig, Quote, Trade, TypedEventBus
from hub_core.hub import tune_gc
from hub_core.processor import EventProcessor
from hub_plugin_ibkr import IbkrFactory, codec
from hub_plugin_ibkr.connection import StreamState
from hub_plugin_ibkr.simulator import TwsSimulator

N_TICKS = 200_000
N_SYMBOLS = 8
E2E_TICKS = 200_000


def tbt_stream(n: int = N_TICKS) -> bytes:
    """``n`` AllLast messages for request ids 1..N_SYMBOLS."""
    now = 1_790_000_000
    return b"".join(
        codec.encode_tbt_last(1 + i % N_SYMBOLS, now + i // 1000, f"{100 + i % 97 / 100:.2f}",
                              str(1 + i % 9), "ISLAND")
        for i in range(n)
    )  # fmt: skip


def pieces_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _ready_ib() -> IB:
    """An ``IB`` as after the handshake at version 178, with a Ticker per request id."""
    ib = IB()
    client: Any = ib.client
    client._serverVersion = 178
    client.decoder.serverVersion = 178
    client.connState = Client.CONNECTED
    client._apiReady = True
    for req_id in range(1, N_SYMBOLS + 1):
        contract = Stock(f"S{req_id}", "SMART", "USD", conId=req_id)
        ib.wrapper.startTicker(req_id, contract, "AllLast")
    return ib


def ib_async_alone(pieces: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        ib = _ready_ib()
        feed = ib.client._onSocketHasData
        for piece in pieces:
            feed(piece)

    return run


def _noop(_: object) -> None:
    pass


def ours(pieces: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        bus = TypedEventBus()
        bus.subscribe(Trade, _noop)
        bus.subscribe(Quote, _noop)
        sink = EventProcessor(bus).sink_for("ib")
        cfg = ExchangeConfig.interactive_brokers("127.0.0.1:1", 1)
        conn = IbkrFactory().create(cfg, sink)
        conn._ib = _ready_ib()
        for req_id in range(1, N_SYMBOLS + 1):
            st = StreamState(req_id, "AllLast", f"S{req_id}")
            conn._streams[req_id] = st
            conn._symbols[st.symbol] = [st]
        for piece in pieces:
            conn._on_data(piece)

    return run


# -- end to end ---------------------------------------------------------------------------
async def _e2e_ours(n: int) -> float:
    import anyio

    async with TwsSimulator(["AAPL"], rate=0) as sim:
        counted = 0
        t_first = 0.0
        done = anyio.Event()

        def count(_: object) -> None:
            nonlocal counted, t_first
            if not counted:
                t_first = time.perf_counter()
            counted += 1
            if counted == n:
                done.set()

        bus = TypedEventBus()
        bus.subscribe(Trade, count)
        sink = EventProcessor(bus).sink_for("ib")
        cfg = ExchangeConfig.interactive_brokers(
            sim.endpoint, 1, options={"market_data": "tick_by_tick",
                                      "tick_by_tick_types": ["AllLast"]},
        )  # fmt: skip
        conn = IbkrFactory().create(cfg, sink)
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(["AAPL"])
            tg.start_soon(sim.send_burst, n)
            await done.wait()
            elapsed = time.perf_counter() - t_first
            await conn.close()
            tg.cancel_scope.cancel()
    return n / elapsed


async def _e2e_ib_async(n: int) -> float:
    async with TwsSimulator(["AAPL"], rate=0) as sim:
        ib = IB()
        host, port = sim.endpoint.rsplit(":", 1)
        await ib.connectAsync(host, int(port), clientId=2)
        [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqTickByTickData(c, "AllLast")
        counted = 0
        t_first = 0.0
        done = asyncio.Event()

        def on_update(t: Any) -> None:
            nonlocal counted, t_first
            if not counted:
                t_first = time.perf_counter()
            counted += len(t.tickByTicks)
            if counted >= n:
                done.set()

        ticker.updateEvent += on_update
        await asyncio.sleep(0.3)  # the request reached the simulator
        burst = asyncio.ensure_future(sim.send_burst(n))
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t_first
        await burst
        ib.disconnect()
    return n / elapsed


LATENCY_RATE = 10_000.0
LATENCY_TICKS = 30_000


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _latency_ours() -> list[float]:
    import anyio

    async with TwsSimulator(["AAPL"], rate=0) as sim:
        samples: list[float] = []
        done = anyio.Event()

        def on_trade(t: Trade) -> None:
            samples.append((time.time_ns() - t.ts_recv) / 1000)
            if len(samples) == LATENCY_TICKS:
                done.set()

        bus = TypedEventBus()
        bus.subscribe(Trade, on_trade)
        sink = EventProcessor(bus).sink_for("ib")
        cfg = ExchangeConfig.interactive_brokers(
            sim.endpoint, 1, options={"market_data": "tick_by_tick",
                                      "tick_by_tick_types": ["AllLast"]},
        )  # fmt: skip
        conn = IbkrFactory().create(cfg, sink)
        await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(["AAPL"])
            tg.start_soon(sim.send_burst, LATENCY_TICKS, 2000, LATENCY_RATE)
            await done.wait()
            await conn.close()
            tg.cancel_scope.cancel()
    return samples


async def _latency_ib_async() -> list[float]:
    async with TwsSimulator(["AAPL"], rate=0) as sim:
        ib = IB()
        host, port = sim.endpoint.rsplit(":", 1)
        await ib.connectAsync(host, int(port), clientId=2)
        [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqTickByTickData(c, "AllLast")
        samples: list[float] = []
        counted = 0
        done = asyncio.Event()

        def on_update(t: Any) -> None:
            nonlocal counted
            samples.append((time.time() - t.timestamp) * 1e6)
            counted += len(t.tickByTicks)
            if counted >= LATENCY_TICKS:
                done.set()

        ticker.updateEvent += on_update
        await asyncio.sleep(0.3)
        burst = asyncio.ensure_future(sim.send_burst(LATENCY_TICKS, 2000, LATENCY_RATE))
        await asyncio.wait_for(done.wait(), 120)
        await burst
        ib.disconnect()
    return samples


def bench_ibkr(report: Callable[..., None], result: type, median_time: Any) -> None:
    """Both sections; ``report(result(...))`` per figure (see compare.py)."""
    tune_gc()
    data = tbt_stream()
    for label, size in (("64 KiB reads", 64 * 1024), ("1 MiB reads (a backlog)", 1024 * 1024)):
        pieces = pieces_of(data, size)
        gc.collect()
        theirs = N_TICKS / median_time(ib_async_alone(pieces), 3)
        mine = N_TICKS / median_time(ours(pieces), 3)
        overhead = (1 / mine - 1 / theirs) * 1e9
        report(
            result(
                f"ibkr: tick-by-tick -> hub Trades, {label}", mine, "ticks/s",
                "ib_async alone -> Tickers", theirs, mine / theirs,
                f"overhead {overhead:+.0f} ns/tick",
            )
        )  # fmt: skip
    e2e_ours = max(asyncio.run(_e2e_ours(E2E_TICKS)) for _ in range(2))
    e2e_theirs = max(asyncio.run(_e2e_ib_async(E2E_TICKS)) for _ in range(2))
    report(
        result(
            "ibkr: simulator -> ib_async -> hub bus (loopback)", e2e_ours, "ticks/s",
            "simulator -> ib_async alone -> Ticker callback", e2e_theirs, e2e_ours / e2e_theirs,
            f"overhead {(1 / e2e_ours - 1 / e2e_theirs) * 1e9:+.0f} ns/tick",
        )
    )  # fmt: skip
    ours_lat = asyncio.run(_latency_ours())
    theirs_lat = asyncio.run(_latency_ib_async())
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        mine, base = _pct(ours_lat, q), _pct(theirs_lat, q)
        report(
            result(
                f"ibkr: receive-to-callback {label} at 10 k ticks/s", mine, "us",
                "ib_async alone (per read)", base, base / mine if mine else 0.0, "",
            )
        )  # fmt: skip


if __name__ == "__main__":
    from compare import Result, median_time, report

    bench_ibkr(report, Result, median_time)
