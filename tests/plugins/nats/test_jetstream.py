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
