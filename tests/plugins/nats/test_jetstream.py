"""JetStream through a real nats-server: the stream is created with its limits, a
retried batch is stored once (Nats-Msg-Id), and a consumer that starts late replays
from a point in time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio
import nats
import pytest

from hub_core import ExchangeConfig, ExchangeHub, SinkConfig, Trade
from hub_plugin_nats.options import NatsSinkOptions
from hub_plugin_nats.sink import NatsSink

from .conftest import Collected, NatsServer, registry, until

pytestmark = pytest.mark.anyio
S = 1_000_000_000


def trades(first: int, n: int) -> list[object]:
    now = time.time_ns()
    return [Trade("x", "A", S, S, "B", now, now, first + i, "") for i in range(n)]


async def test_stream_limits_dedup_and_late_replay_from_a_time(nats_server: NatsServer) -> None:
    options = NatsSinkOptions(
        prefix="js", jetstream=True, stream="T_JS", max_age_s=600, max_bytes=8 << 20
    )
    sink = NatsSink(SinkConfig(kind="nats", name="j", url=nats_server.url), options)
    await sink.open()
    try:
        for i in range(10):
            await sink.write(trades(i * 10, 10))  # before the replay point
        await anyio.sleep(0.3)
        middle = datetime.now(UTC)
        await anyio.sleep(0.3)
        later = [trades(100 + i * 10, 10) for i in range(5)]  # 100..149
        for batch in later:
            await sink.write(batch)
        # the last batch again as its retry: the same ids, stored once
        retried = trades(150, 10)
        last = sink._encode(retried)
        for _ in range(2):
            sink._retry = (retried, last)
            await sink.write(retried)
    finally:
        await sink.close()
    assert sink.stats()["jetstream_duplicates"] == 1  # the second send of `last`
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info("T_JS")
    finally:
        await nc.close()
    assert info.config.subjects == ["js.*.*.*"]
    assert info.config.max_bytes == 8 << 20 and info.config.max_age == 600
    assert info.state.messages == 16  # 10 + 5 + the retried batch once

    # a consumer started now replays from `middle`: the later batches, exactly once
    async with ExchangeHub(registry=registry()) as hub:
        got = Collected(hub)
        await hub.connect_exchange(
            "late",
            ExchangeConfig(
                protocol="nats",
                endpoint=nats_server.url,
                symbols=["js.x.>"],
                options={
                    "prefix": "js",
                    "jetstream": True,
                    "stream": "T_JS",
                    "start_time": middle.isoformat(),
                },
            ),
            timeout=10,
        )
        await until(lambda: len(got.market("x")) >= 60, what="the replay")
        await anyio.sleep(0.3)  # nothing more comes
    assert [t.sequence for t in got.market("x")] == list(range(100, 160))


async def test_a_jetstream_source_recovers_what_a_server_restart_hid(
    nats_server: NatsServer,
) -> None:
    from hub_core import Gap

    async with ExchangeHub(registry=registry()) as a, ExchangeHub(registry=registry()) as b:
        got = Collected(b)
        await a.add_sink(
            SinkConfig(
                kind="nats",
                name="out",
                url=nats_server.url,
                reconnect_delay_ms=50,
                reconnect_max_delay_ms=200,
                options={"prefix": "jr", "jetstream": True, "stream": "T_JR"},
            )
        )
        await until(lambda: a.sink_status()["out"].state == "connected", what="the sink")
        await b.connect_exchange(
            "late",
            ExchangeConfig(
                protocol="nats",
                endpoint=nats_server.url,
                symbols=["jr.>"],
                options={"prefix": "jr", "jetstream": True, "stream": "T_JR"},
                reconnect_delay_ms=600,  # back well after the sink: the stream kept it all
                reconnect_max_delay_ms=1200,
            ),
            timeout=10,
        )
        src = a._processor.sink_for("x")
        sent = 0

        async def feed(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                sent += 1
                src.trade("A", S, S, "B", sent, sent, sent)
                if sent % 20 == 0:
                    await anyio.sleep(0.01)

        await feed(200)
        await until(lambda: len(got.market("x")) == 200, what="the first 200")
        nats_server.stop()
        await feed(100)  # held by the sink runner while the server is down
        nats_server.start()
        await feed(200)
        await until(lambda: len(got.market("x")) >= sent, seconds=30, what="every trade")
        await anyio.sleep(0.3)
    assert [t.sequence for t in got.market("x")] == list(range(1, sent + 1))
    assert not [g for g in got.of(Gap) if g.exchange in ("x", "late")]
