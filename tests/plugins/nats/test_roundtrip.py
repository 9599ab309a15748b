"""Sink -> nats-server -> source, against a real nats-server: every tick type exact,
under its original exchange name; retried batches are dropped as duplicates; a
missing sequence is a Gap with its range."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    ExchangeConfig,
    ExchangeHub,
    Gap,
    Quote,
    SinkConfig,
    Trade,
)
from hub_plugin_nats import codec as c
from hub_plugin_nats.options import NatsSinkOptions
from hub_plugin_nats.sink import NatsSink

from .conftest import Collected, NatsServer, until

pytestmark = pytest.mark.anyio
S = 1_000_000_000
T0 = 1_765_000_000_000_000_000


def market_ticks(exchange: str = "binance") -> list[Any]:
    """Every market-data tick type, awkward symbols and sizes included."""
    return [
        Trade(exchange, "BTC/USDT", 97_000 * S, 2 * S, "B", T0, T0 + 5, 11, ""),
        Trade(exchange, "BTC/USDT", 97_001 * S, 12_345_000, "A", T0 + 1, T0 + 6, 12, ""),
        Quote(exchange, "ES.c.0", 6000 * S, 3 * S, 6000 * S + S // 4, 7 * S, T0 + 2, T0 + 7, 3),
        BookUpdate(exchange, "BRK.B", "B", 500 * S, 10 * S, T0 + 3, T0 + 8, "A", 0, 4),
        BookUpdate(exchange, "BRK.B", "A", 501 * S, 0, T0 + 4, T0 + 9, "C", 0, 5),
        BookClear(exchange, "BRK.B", T0 + 5, T0 + 10, 6, ""),
        BookSnapshot(
            exchange,
            "6758.T*",
            ((100 * S, 1 * S), (99 * S, 2 * S)),
            ((101 * S, 3 * S),),
            T0 + 6,
            T0 + 11,
            7,
        ),
    ]


def key(t: Any) -> tuple[Any, ...]:
    """Every field a tick carries over NATS (the venue's trade id text does not)."""
    fields = [f for f in dir(t) if not f.startswith("_") and not callable(getattr(t, f))]
    return (type(t).__name__, *((f, getattr(t, f)) for f in sorted(fields) if f != "trade_id"))


async def start_pair(
    a: ExchangeHub, b: ExchangeHub, server: NatsServer, prefix: str, **sink: Any
) -> Collected:
    got = Collected(b)
    await b.connect_exchange(
        "remote",
        ExchangeConfig(
            protocol="nats",
            endpoint=server.url,
            symbols=[f"{prefix}.>"],
            options={"prefix": prefix},
        ),
        timeout=10,
    )
    await a.add_sink(
        SinkConfig(
            kind="nats",
            name="fanout",
            url=server.url,
            options={"prefix": prefix, "heartbeat_ms": 100, **sink.pop("options", {})},
            **sink,
        )
    )
    await until(lambda: a.sink_status()["fanout"].state == "connected", what="the sink connected")
    return got


async def test_every_tick_type_round_trips_exactly(
    nats_server: NatsServer, hubs: tuple[ExchangeHub, ExchangeHub]
) -> None:
    a, b = hubs
    got = await start_pair(a, b, nats_server, "rt")
    src = a._processor.sink_for("binance")
    ticks = market_ticks()
    for t in ticks:
        src.publish(t)
    src.gap("BTC/USDT", T0, T0 + 100, "the venue froze", 13, 20)
    src.state("reconnecting", "venue dropped", "wss://venue.example/ws", 2)
    for t in market_ticks():
        src.publish(t)
    await until(lambda: len(got.market("binance")) == 2 * len(ticks), what="every tick")
    await until(lambda: got.of(ConnectionStateChanged, exchange="binance"), what="the state")
    market = got.market("binance")
    assert sorted(map(key, market)) == sorted(map(key, ticks + market_ticks()))
    # each stream in its own order (a flush groups streams, never reorders one)
    for stream in {(type(t), t.symbol) for t in ticks}:
        sent = [key(t) for t in ticks + market_ticks() if (type(t), t.symbol) == stream]
        recv = [key(t) for t in market if (type(t), t.symbol) == stream]
        assert recv == sent
    (gap,) = got.of(Gap, exchange="binance")
    assert (gap.symbol, gap.start_ts, gap.end_ts, gap.reason, gap.start_seq, gap.end_seq) == (
        "BTC/USDT",
        T0,
        T0 + 100,
        "the venue froze",
        13,
        20,
    )
    (state,) = got.of(ConnectionStateChanged, exchange="binance")
    assert (state.state, state.reason, state.attempt) == ("reconnecting", "venue dropped", 2)
    # the gap came after the first batch's ticks and before the second's
    events = [e for e in got.events if getattr(e, "exchange", "") == "binance"]
    assert events.index(gap) >= len(ticks)
    stats = a.sink_status()["fanout"].sink
    assert stats["records"] == 2 * len(ticks) and stats["gaps"] == 1 and stats["states"] == 1
    assert stats["messages"] < stats["records"] + 2  # batched: fewer messages than ticks


async def test_a_retried_batch_is_dropped_as_a_duplicate_and_a_hole_is_a_gap(
    nats_server: NatsServer, hubs: tuple[ExchangeHub, ExchangeHub]
) -> None:
    _, b = hubs
    got = Collected(b)
    await b.connect_exchange(
        "remote",
        ExchangeConfig(
            protocol="nats", endpoint=nats_server.url, symbols=["dup.>"], options={"prefix": "dup"}
        ),
        timeout=10,
    )
    sink = NatsSink(
        SinkConfig(kind="nats", name="t", url=nats_server.url),
        NatsSinkOptions(prefix="dup", heartbeat_ms=60_000),
    )
    await sink.open()
    try:
        first = [Trade("x", "A", S, S, "B", T0 + i, T0 + i, i, "") for i in range(3)]
        await sink.write(first)
        # the runner saw a write fail and hands over the same batch: the same messages
        batch = [Trade("x", "A", S, S, "B", T0 + 10, T0 + 10, 10, "")]
        messages = sink._encode(batch)
        for _ in range(2):
            sink._retry = (batch, messages)
            await sink.write(batch)
        # a batch whose messages never went out: its sequence numbers are a hole
        sink._encode([Trade("x", "A", S, S, "B", T0 + 20, T0 + 20, 20, "")])
        await sink.write([Trade("x", "A", S, S, "B", T0 + 30, T0 + 30, 30, "")])
        await until(lambda: len(got.market("x")) == 5, what="five trades")
        await until(lambda: got.of(Gap, exchange="x"), what="the gap")
    finally:
        await sink.close()
    assert sink.stats()["retried_batches"] == 2
    (gap,) = got.of(Gap, exchange="x")
    assert (gap.symbol, gap.start_seq, gap.end_seq) == ("A", 5, 5)
    assert "dup.x.trade.A sequence 5..5 missing" in gap.reason
    assert [t.sequence for t in got.market("x")] == [0, 1, 2, 10, 30]
    factory = b.registry.factory("nats", exchange="remote")
    state = factory.source_state("remote")  # type: ignore[attr-defined]
    assert state.tracker.duplicates == 1


async def test_heartbeats_reveal_a_lost_last_message(nats_server: NatsServer) -> None:
    import nats

    nc = await nats.connect(nats_server.url)
    try:
        sub = await nc.subscribe("hb.>")
        pub = c.Publisher("hb", "p1", epoch=time.time_ns(), heartbeat_ms=100)
        m = pub.records("x", "trade", "A", b"x", 2)
        pub.sent([m])
        subject, payload = pub.heartbeat(time.time_ns())
        await nc.publish(subject, payload)
        msg = await sub.next_msg(timeout=5)
        hb = c.decode_message(msg.subject, msg.headers, msg.data)
        assert isinstance(hb, c.HeartbeatBody) and hb.last == {"hb.x.trade.A": 2}
    finally:
        await nc.close()
