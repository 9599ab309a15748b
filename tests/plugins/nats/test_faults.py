"""Faults through a real nats-server: the server restarted mid-stream, a slow consumer,
and the accounting that proves nothing went silently missing (every record published
either arrived or is inside a Gap's sequence range)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from hub_core import ConnectionStateChanged, ExchangeConfig, ExchangeHub, Gap, SinkConfig, Trade

from .conftest import Collected, NatsServer, until

pytestmark = pytest.mark.anyio
S = 1_000_000_000


def source_config(
    server: NatsServer, prefix: str, delay_ms: int = 50, **options: Any
) -> ExchangeConfig:
    return ExchangeConfig(
        protocol="nats",
        endpoint=server.url,
        symbols=[f"{prefix}.>"],
        options={"prefix": prefix, **options},
        reconnect_delay_ms=delay_ms,
        reconnect_max_delay_ms=delay_ms * 2,
    )


def nats_gaps(got: Collected, exchange: str) -> list[Gap]:
    """The Gaps the source published from sequence numbers (not the supervisor's)."""
    return [g for g in got.of(Gap, exchange=exchange) if g.reason.startswith("nats:")]


def gap_records(gaps: list[Gap]) -> int:
    return sum(g.end_seq - g.start_seq + 1 for g in gaps)


class Feed:
    """Publishes numbered trades of one symbol into a hub's bus, every ``every_s``."""

    def __init__(self, hub: ExchangeHub, exchange: str = "x", symbol: str = "A") -> None:
        self.sink = hub._processor.sink_for(exchange)
        self.exchange = exchange
        self.symbol = symbol
        self.sent = 0

    def burst(self, n: int) -> None:
        for _ in range(n):
            self.sent += 1
            now = time.time_ns()
            self.sink.publish(Trade(self.exchange, self.symbol, S, S, "B", now, now, self.sent, ""))

    async def run(self, seconds: float, per_tick: int = 5, every_s: float = 0.002) -> None:
        with anyio.move_on_after(seconds):
            while True:
                self.burst(per_tick)
                await anyio.sleep(every_s)


async def test_server_restart_mid_stream_both_sides_reconnect_and_loss_is_a_gap(
    nats_server: NatsServer, hubs: tuple[ExchangeHub, ExchangeHub]
) -> None:
    a, b = hubs
    got = Collected(b)
    # the source comes back well after the sink: what the sink publishes meanwhile is
    # lost to it (core NATS keeps nothing), and must come out as a Gap
    await b.connect_exchange("remote", source_config(nats_server, "rs", delay_ms=700), timeout=10)
    await a.add_sink(
        SinkConfig(
            kind="nats",
            name="out",
            url=nats_server.url,
            options={"prefix": "rs", "heartbeat_ms": 100},
            reconnect_delay_ms=50,
            reconnect_max_delay_ms=200,
        )
    )
    await until(lambda: a.sink_status()["out"].state == "connected", what="the sink connected")
    feed = Feed(a)
    await feed.run(0.5)
    before = len(got.market("x"))
    assert before > 0
    nats_server.stop()
    await feed.run(0.3)  # the sink is down: the runner holds these
    nats_server.start()
    await feed.run(1.5)
    # every record either arrived or is counted in a Gap's range
    await until(
        lambda: len(got.market("x")) + gap_records(nats_gaps(got, "x")) == feed.sent,
        seconds=20,
        what=f"{feed.sent} records accounted for",
    )
    status = a.sink_status()["out"]
    assert status.state == "connected" and status.reconnects >= 1 and status.dropped == 0
    assert b.connection_status()["remote"] is True
    received = [t.sequence for t in got.market("x")]
    assert received == sorted(received)  # in order, no duplicates
    assert len(set(received)) == len(received)
    lost = feed.sent - len(received)
    assert lost > 0
    assert gap_records(nats_gaps(got, "x")) == lost
    if lost:
        for g in nats_gaps(got, "x"):
            assert g.symbol == "A" and g.start_seq <= g.end_seq and g.start_ts <= g.end_ts
    # the source itself went through the supervisor's reconnect
    states = [e.state for e in got.of(ConnectionStateChanged, exchange="remote")]
    assert "reconnecting" in states and states[-1] == "connected"


async def test_a_slow_consumer_drops_are_counted_and_become_gaps(
    nats_server: NatsServer, hubs: tuple[ExchangeHub, ExchangeHub]
) -> None:
    a, b = hubs
    got = Collected(b)
    # a tiny pending limit and a subscriber that stalls the event loop: nats-py drops
    await b.connect_exchange(
        "remote", source_config(nats_server, "sc", pending_msgs_limit=16), timeout=10
    )
    await a.add_sink(
        SinkConfig(
            kind="nats",
            name="out",
            url=nats_server.url,
            flush_ms=0.1,
            batch=1,  # one tick a message: many messages
            options={"prefix": "sc", "heartbeat_ms": 100},
        )
    )
    await until(lambda: a.sink_status()["out"].state == "connected", what="the sink connected")
    stall = [0]

    def slow(_: object) -> None:
        stall[0] += 1
        if stall[0] % 50 == 0:
            time.sleep(0.05)  # a subscriber that blocks the loop now and then

    b.bus.subscribe(Trade, slow)
    feed = Feed(a)
    await feed.run(1.5, per_tick=20, every_s=0.001)
    factory = b.registry.factory("nats", exchange="remote")
    state = factory.source_state("remote")  # type: ignore[attr-defined]
    await until(lambda: state.slow_consumer_drops > 0, what="slow-consumer drops")
    await until(
        lambda: len(got.market("x")) + gap_records(nats_gaps(got, "x")) == feed.sent,
        seconds=20,
        what="every record accounted for",
    )
    gaps = nats_gaps(got, "x")
    assert gaps and gap_records(gaps) == feed.sent - len(got.market("x"))
    assert state.missing_records == gap_records(gaps)
