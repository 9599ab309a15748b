"""End to end over loopback: a simulator in another process -> hub -> subscriber.

Throughput: the NinjaTrader simulator's bench mode (pre-encoded DBN batches,
as fast as the socket takes them) against the hub's full path (socket read,
DBN decode, bus, one interpreted subscriber). The baseline is the same bytes
read by a bare anyio socket loop that decodes nothing: the ratio is how much
of the transport's rate the hub keeps. Latency: `ts_recv` (stamped when the
buffer was read) to the subscriber's callback, at about 100 k ticks/s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from hub_core import ExchangeConfig, ExchangeHub, Quote, Trade, TypedEventBus
from hub_core.registry import ExchangeRegistry

SIM = """
import anyio, sys
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator
async def main():
    sim = NinjaTraderSimulator({symbols!r}, {rate!r}, bench={bench!r}, seed=1, **{extra!r})
    async with sim:
        print(sim.endpoint, flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


class Simulator:
    """The simulator in its own process (its own core), endpoint read from stdout."""

    def __init__(self, symbols: list[str], rate: float, bench: bool, **extra: Any) -> None:
        code = SIM.format(symbols=symbols, rate=rate, bench=bench, extra=extra)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _registry() -> ExchangeRegistry:
    import hub_plugin_ninjatrader

    reg = ExchangeRegistry()
    reg.register(hub_plugin_ninjatrader, name="ninjatrader")
    return reg


async def hub_rate(
    endpoint: str, symbols: list[str], seconds: float, record: Path | None = None
) -> float:
    """Ticks/s through the hub to one subscriber; with ``record``, also recording there."""
    bus = TypedEventBus()
    count = [0]

    def on_tick(tick: object) -> None:
        count[0] += 1

    bus.subscribe(Trade, on_tick)
    bus.subscribe(Quote, on_tick)
    async with ExchangeHub(bus, registry=_registry()) as hub:
        if record is not None:
            hub.record(record)
        await hub.connect_exchange("bench", ExchangeConfig.ninjatrader(endpoint, symbols=symbols))
        await anyio.sleep(0.5)  # warm-up
        start, t0 = count[0], time.perf_counter()
        await anyio.sleep(seconds)
        n, dt = count[0] - start, time.perf_counter() - t0
    return n / dt


async def socket_rate(endpoint: str, symbols: list[str], seconds: float) -> float:
    """Records/s a bare socket loop reads from the same simulator, decoding nothing."""
    from hub_plugin_ninjatrader import codec

    host, port = endpoint.rsplit(":", 1)
    cc = codec.ClientCodec()
    async with await anyio.connect_tcp(host, int(port)) as stream:

        async def next_event() -> object:
            while True:
                ev = cc.next_event()
                if not isinstance(ev, codec.NeedData):
                    return ev
                cc.receive_data(await stream.receive())

        assert isinstance(await next_event(), codec.Greeting)
        await stream.send(cc.send(codec.Hello()))
        assert isinstance(await next_event(), codec.HandshakeAccepted)
        await stream.send(cc.send(codec.Subscribe(1, tuple(symbols))))
        await anyio.sleep(0.3)
        total = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            total += len(await stream.receive(1 << 20))
        dt = time.perf_counter() - t0
    return total / 64 / dt  # trades (48 B) and mbp-1 (80 B) alternate: 64 B a record


async def latency(endpoint: str, symbols: list[str], seconds: float) -> tuple[float, list[int]]:
    bus = TypedEventBus()
    lat: list[int] = []
    now = time.time_ns

    def on_tick(tick: Any) -> None:
        lat.append(now() - tick.ts_recv)

    bus.subscribe(Trade, on_tick)
    bus.subscribe(Quote, on_tick)
    async with ExchangeHub(bus, registry=_registry()) as hub:
        await hub.connect_exchange("lat", ExchangeConfig.ninjatrader(endpoint, symbols=symbols))
        await anyio.sleep(0.5)
        lat.clear()
        t0 = time.perf_counter()
        await anyio.sleep(seconds)
        dt = time.perf_counter() - t0
        got = list(lat)
    return len(got) / dt, got


def bench_e2e(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    symbols = ["ES", "NQ", "ZN", "CL"]
    sim = Simulator(symbols, 0.0, True)
    try:
        hub_rates = [anyio.run(hub_rate, sim.endpoint, symbols, 2.0) for _ in range(3)]
        raw_rates = [anyio.run(socket_rate, sim.endpoint, symbols, 2.0) for _ in range(3)]
    finally:
        sim.close()
    h, r = statistics.median(hub_rates), statistics.median(raw_rates)
    report(
        Result(
            "e2e loopback: simulator process -> hub -> subscriber",
            h / 1e6,
            "M ticks/s",
            "bare socket read of the same stream",
            r / 1e6,
            h / r,
            ">= 1 M/s",
        )
    )

    # ~100 k ticks/s: the simulator's rate is events per symbol per second
    sim = Simulator(symbols, 25_000.0, False)
    try:
        rate, lat = anyio.run(latency, sim.endpoint, symbols, 3.0)
    finally:
        sim.close()
    lat.sort()
    if lat:
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        report(Result(f"ts_recv -> callback p50 at {rate / 1e3:.0f} k ticks/s", p50 / 1e3, "us"))
        report(Result(f"ts_recv -> callback p99 at {rate / 1e3:.0f} k ticks/s", p99 / 1e3, "us"))
