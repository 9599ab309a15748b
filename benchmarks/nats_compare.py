"""NATS: ticks from a hub's sink through nats-server to a source in another process.

    python benchmarks/nats_compare.py            # starts its own nats-server on a free port

Same run, same server, figures printed (nothing asserted):

1. nats-py's bare publish rate: 128-byte messages, ``nc.publish`` then one flush.
2. Sink -> nats-server -> source in another process (a hub with a ``protocol = "nats"``
   connection, one subscriber per tick): ticks/s from the first write to the last tick
   delivered over there,
   - with batching: the sink handed 4096 ticks a write (one message per symbol),
   - one NATS message per tick (a write per tick).
3. Added latency at 100 k ticks/s: a hub publishes trades into its bus at 100 per ms,
   its ``[sinks]`` runner (``flush_ms = 1``) hands them to the NATS sink, and the other
   process measures, per tick, delivery time minus the tick's ``ts_recv``: p50, p99.
4. JetStream publishing: the sink with ``jetstream = true`` (acks awaited per batch).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import hub_plugin_nats
from hub_core import COMPILED, ExchangeConfig, ExchangeHub, SinkConfig, Trade
from hub_core.registry import ExchangeRegistry
from hub_plugin_nats.options import NatsSinkOptions
from hub_plugin_nats.sink import NatsSink

S = 1_000_000_000
SYMBOLS = [f"SYM{i}" for i in range(10)]
BATCHED_TICKS = 1_000_000
PER_TICK_TICKS = 100_000
BARE_MESSAGES = 500_000
LATENCY_RATE = 100_000
LATENCY_SECONDS = 3.0
JETSTREAM_TICKS = 500_000
BATCH = 4096


def _registry() -> ExchangeRegistry:
    reg = ExchangeRegistry()
    reg.register(hub_plugin_nats, name="nats")
    return reg


def _ticks(n: int, start: int = 0) -> list[object]:
    now = time.time_ns()
    k = len(SYMBOLS)
    return [
        Trade("bench", SYMBOLS[i % k], (100 + i % 50) * S, S, "B", now, now, start + i, "")
        for i in range(n)
    ]


# -- the receiving process ---------------------------------------------------------------
async def _receive(url: str, prefix: str, n: int, latency: bool) -> None:
    got: list[Trade] = []
    lat: list[int] = []

    def on_trade(t: Trade) -> None:
        lat.append(time.time_ns() - t.ts_recv)

    hub = ExchangeHub(registry=_registry())
    # throughput: the cheapest real subscriber (list.append), the clock read by the poll
    # below; latency: a subscriber that reads the clock per tick
    hub.bus.subscribe(Trade, on_trade if latency else got.append)
    async with hub:
        await hub.connect_exchange(
            "remote",
            ExchangeConfig(
                protocol="nats",
                endpoint=url,
                symbols=[f"{prefix}.>"],
                options={
                    "prefix": prefix,
                    "heartbeats": False,
                    "pending_msgs_limit": 10_000_000,
                    "pending_bytes_limit": 2 << 30,
                },
            ),
            timeout=20,
        )
        print("ready", flush=True)
        idle_since = time.monotonic()
        seen = 0
        last_ns = 0
        while True:
            count = len(lat) if latency else len(got)
            if count != seen:
                seen, idle_since, last_ns = count, time.monotonic(), time.time_ns()
            if count >= n or time.monotonic() - idle_since > 10:
                break
            await asyncio.sleep(0.001)
    out: dict[str, Any] = {"count": seen, "last_ns": last_ns}
    if lat:
        lat.sort()
        out["p50_us"] = lat[len(lat) // 2] / 1000
        out["p99_us"] = lat[int(len(lat) * 0.99)] / 1000
    print(json.dumps(out), flush=True)


class Receiver:
    """The other process (this script with ``--receive``)."""

    def __init__(self, url: str, prefix: str, n: int, latency: bool = False) -> None:
        args = [sys.executable, __file__, "--receive", url, prefix, str(n), str(int(latency))]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the receiver did not start: {line!r}")

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.readline()
        self.proc.wait(30)
        return dict(json.loads(out))


# -- the sending side ---------------------------------------------------------------------
async def bare_publish(url: str) -> float:
    import nats

    nc = await nats.connect(url)
    payload = b"x" * 128
    t0 = time.perf_counter()
    for _ in range(BARE_MESSAGES):
        await nc.publish("bare.x", payload)
    await nc.flush(timeout=60)
    dt = time.perf_counter() - t0
    await nc.close()
    return BARE_MESSAGES / dt


async def sink_to_source(url: str, prefix: str, n: int, per_write: int) -> tuple[float, int]:
    """(ticks/s, ticks delivered) sink -> server -> the other process."""
    receiver = Receiver(url, prefix, n)
    sink = NatsSink(
        SinkConfig(kind="nats", name="bench", url=url),
        NatsSinkOptions(prefix=prefix, heartbeat_ms=60_000),
    )
    await sink.open()
    # the ticks exist before the clock starts: what is measured is the sink, the server
    # and the other process, not building ticks here
    ticks = _ticks(n)
    batches = [ticks[i : i + per_write] for i in range(0, n, per_write)]
    start_ns = time.time_ns()
    for batch in batches:
        await sink.write(batch)
    send_s = (time.time_ns() - start_ns) / 1e9
    await sink.close()
    got = receiver.result()
    print(f"    (the sink took {send_s:.2f} s to publish {n:,} ticks: {n / send_s:,.0f} ticks/s)")
    return got["count"] / ((got["last_ns"] - start_ns) / 1e9), int(got["count"])


async def latency_at_rate(url: str, prefix: str) -> dict[str, Any]:
    n = int(LATENCY_RATE * LATENCY_SECONDS)
    receiver = Receiver(url, prefix, n, latency=True)
    async with ExchangeHub(registry=_registry()) as hub:
        runner = await hub.add_sink(
            SinkConfig(
                kind="nats",
                name="lat",
                url=url,
                flush_ms=1.0,
                options={"prefix": prefix, "heartbeat_ms": 60_000},
            )
        )
        for _ in range(2000):  # up within 20 s
            if runner.state == "connected":
                break
            await asyncio.sleep(0.01)
        src = hub._processor.sink_for("bench")
        per_ms = LATENCY_RATE // 1000
        t0 = time.perf_counter()
        sent = 0
        while sent < n:
            due = int((time.perf_counter() - t0) * LATENCY_RATE)
            while sent < min(due, n):
                now = time.time_ns()
                src.trade(SYMBOLS[sent % len(SYMBOLS)], 100 * S, S, "B", now, now, sent)
                sent += 1
            await asyncio.sleep(0.001 if due - sent < per_ms else 0)
        rate = n / (time.perf_counter() - t0)
        await asyncio.sleep(0.5)
    got = receiver.result()
    got["offered_rate"] = rate
    return got


async def jetstream_publish(url: str) -> float:
    sink = NatsSink(
        SinkConfig(kind="nats", name="js", url=url),
        NatsSinkOptions(
            prefix="jsb", jetstream=True, stream="BENCH", storage="memory", heartbeat_ms=60_000
        ),
    )
    await sink.open()
    batches = [_ticks(BATCH, i) for i in range(0, JETSTREAM_TICKS, BATCH)]
    t0 = time.perf_counter()
    for b in batches:
        await sink.write(b)
    dt = time.perf_counter() - t0
    await sink.close()
    return sum(len(b) for b in batches) / dt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str, str]:
    """A nats-server of the benchmark's own on a free loopback port (JetStream on)."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = _free_port()
    store = tempfile.mkdtemp(prefix="nats-bench-")
    server = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.02)
    return server, f"nats://127.0.0.1:{port}", store


async def measure(url: str) -> dict[str, float]:
    """Every figure, printed as it comes, and returned by name."""
    print(f"hub_core compiled: {COMPILED}; nats-server {url}")
    bare = await bare_publish(url)
    print(f"nats-py bare publish (128 B msgs):           {bare:>12,.0f} msgs/s")
    batched, got = await sink_to_source(url, "b1", BATCHED_TICKS, BATCH)
    print(
        f"sink -> nats -> source (other process), batched: {batched:>12,.0f} ticks/s "
        f"({got:,} of {BATCHED_TICKS:,} delivered)"
    )
    single, got = await sink_to_source(url, "b2", PER_TICK_TICKS, 1)
    print(
        f"sink -> nats -> source, one message per tick:  {single:>12,.0f} ticks/s "
        f"({got:,} of {PER_TICK_TICKS:,} delivered)"
    )
    print(
        f"  batching / one-per-tick: {batched / single:.1f}x; batched / bare: {batched / bare:.2f}x"
    )
    lat = await latency_at_rate(url, "lat")
    print(
        f"added latency at {lat['offered_rate']:,.0f} ticks/s (flush_ms=1): "
        f"p50 {lat.get('p50_us', float('nan')):,.0f} us, "
        f"p99 {lat.get('p99_us', float('nan')):,.0f} us ({lat['count']:,} ticks)"
    )
    js = await jetstream_publish(url)
    print(f"JetStream publish (batches of {BATCH}, acks per batch): {js:>12,.0f} ticks/s")
    return {
        "bare": bare,
        "batched": batched,
        "single": single,
        "p50_us": float(lat.get("p50_us", 0.0)),
        "p99_us": float(lat.get("p99_us", 0.0)),
        "jetstream": js,
    }


def run_all() -> dict[str, float]:
    """``measure`` against a nats-server of this run's own."""
    server, url, store = start_server()
    try:
        return asyncio.run(measure(url))
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(store, ignore_errors=True)


def bench_nats(report: Callable[..., None], result: type, median_time: Any) -> None:
    """The figures as ``compare.py`` results (``--only nats``)."""
    f = run_all()
    report(
        result(
            "nats: sink -> nats-server -> source (other process), batched", f["batched"],
            "ticks/s", "one NATS message per tick", f["single"], f["batched"] / f["single"],
            ">= 1 M/s",
        )
    )  # fmt: skip
    report(
        result(
            "nats: the same, against nats-py's bare publish", f["batched"], "ticks/s",
            "nats-py publish, 128 B (msgs/s)", f["bare"], f["batched"] / f["bare"], "",
        )
    )  # fmt: skip
    report(result("nats: added latency p50 at 100 k ticks/s", f["p50_us"], "us"))
    report(result("nats: added latency p99 at 100 k ticks/s", f["p99_us"], "us"))
    report(result("nats: JetStream publish", f["jetstream"], "ticks/s", target=">= 100 k/s"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--receive":
        url_, prefix_, n_, lat_ = sys.argv[2:6]
        asyncio.run(_receive(url_, prefix_, int(n_), lat_ == "1"))
    else:
        run_all()
