"""Sinks: the DBN batcher, the runner's buffering and supervision, relays, TOML, shards."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from hypothesis import given, strategies as st

from hub_core import (
    ExchangeHub,
    ExchangeRegistry,
    SinkConfig,
    TypedEventBus,
)
from hub_core.cli.commands import shard_names
from hub_core.config import parse_config
from hub_core.errors import ConfigError
from hub_core.plugin import (
    AuthenticationError,
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionFailed,
    ConnectionStateChanged,
    DbnBatcher,
    Gap,
    Quote,
    SinkFactory,
    Trade,
    hookimpl,
)
from hub_core.processor import EventProcessor

S = 1_000_000_000
T0 = 1_700_000_000_000_000_000


def _market_ticks(exchange: str = "binance") -> list[object]:
    return [
        Trade(exchange, "BTCUSDT", 65_000 * S, 3 * S, "B", T0, T0 + 1, 7),
        Trade(exchange, "BTCUSDT", 65_001 * S, 1_250_000, "A", T0 + 2, T0 + 3, 8),  # 0.00125
        Quote(exchange, "ETHUSDT", 3_000 * S, 2 * S, 3_001 * S, 5 * S, T0 + 4, T0 + 5, 9),
        BookUpdate(exchange, "ES", "B", 5_000 * S, 4 * S, T0 + 6, T0 + 7, "A", 42, 10),
        BookClear(exchange, "ES", T0 + 8, T0 + 9, 11),
        BookUpdate(exchange, "ES", "A", 5_001 * S, 2 * S, T0 + 10, T0 + 11, "A", 43, 12),
        BookSnapshot(
            exchange,
            "NQ",
            ((18_000 * S, 1 * S), (17_999 * S, 2 * S)),
            ((18_001 * S, 3 * S),),
            T0 + 12,
            T0 + 13,
            13,
        ),
    ]


def _key(t: object) -> tuple[object, ...]:
    fields = [f for f in dir(t) if not f.startswith("_") and not callable(getattr(t, f))]
    return (
        type(t).__name__,
        *((f, getattr(t, f)) for f in sorted(fields) if f not in ("trade_id", "reason")),
    )


def _relay_round_trip(groups: list[object], exchange: str = "binance") -> list[object]:
    bus = TypedEventBus()
    got: list[object] = []
    for tick_type in (Trade, Quote, BookUpdate, BookSnapshot, BookClear, Gap):
        bus.subscribe(tick_type, got.append)
    relay = EventProcessor(bus).sink_for("remote").relay(exchange)
    for g in groups:
        relay.feed_dbn(g.records, T0 + 1_000)  # type: ignore[attr-defined]
    return got


def test_batched_records_decode_back_to_the_same_ticks() -> None:
    ticks = _market_ticks()
    batcher = DbnBatcher()
    assert all(batcher.add(t) for t in ticks)
    groups = batcher.take()
    # a stream whose sizes need decimals is cut there: whole-unit trades first
    assert [(g.kind, g.symbol, g.count) for g in groups] == [
        ("trade", "BTCUSDT", 1),
        ("trade", "BTCUSDT", 1),
        ("quote", "ETHUSDT", 1),
        ("book_update", "ES", 3),
        ("book_snapshot", "NQ", 1),
    ]
    assert groups[1].size_decimals == 5 and groups[0].size_decimals == 0
    got = _relay_round_trip(groups)
    by_symbol = sorted(ticks, key=lambda t: (t.symbol, t.ts_event))  # type: ignore[attr-defined]
    assert [_key(t) for t in sorted(got, key=lambda t: (t.symbol, t.ts_event))] == [  # type: ignore[attr-defined]
        _key(t) for t in by_symbol
    ]
    assert batcher.take() == []  # taken: nothing left


def test_batcher_keeps_stream_ids_and_cuts_deep_snapshots() -> None:
    batcher = DbnBatcher()
    bids = tuple((100 * S - i * S, S) for i in range(12))
    deep = BookSnapshot("x", "A", bids, (), T0, T0, 0)
    batcher.add(deep)
    batcher.add(Trade("x", "A", S, S, "B", T0, T0, 1))
    batcher.add(Trade("y", "A", S, S, "B", T0, T0, 1))
    first = batcher.take()
    assert batcher.cut_snapshots == 1
    assert [g.instrument_id for g in first] == [1, 2, 1]  # per exchange, first seen first
    batcher.add(Trade("x", "A", S, S, "B", T0, T0, 2))
    (again,) = batcher.take()
    assert again.instrument_id == 2 and again.exchange == "x"
    (snap,) = [t for t in _relay_round_trip(first, "x") if isinstance(t, BookSnapshot)]
    assert snap.bids == bids[:10]
    assert not batcher.add(Gap("x", "", T0, T0, "why"))
    assert not batcher.add(ConnectionStateChanged("x", "connected", "", T0, T0, "", 0))


def test_a_relay_is_refused_for_a_local_connection_name() -> None:
    proc = EventProcessor(TypedEventBus())
    remote = proc.sink_for("remote")
    proc.sink_for("es_feed")
    with pytest.raises(ValueError, match="rename the connection"):
        remote.relay("es_feed")
    remote.relay("binance")
    with pytest.raises(ValueError, match="relayed from another hub"):
        proc.sink_for("binance")


# -- the runner, through a real in-process sink plugin --------------------------------
class MemorySink:
    """A sink that keeps what it is written; faults on request."""

    def __init__(self, plan: MemoryFactory) -> None:
        self.plan = plan
        self.opens = 0

    async def open(self) -> None:
        self.opens += 1
        self.plan.opens += 1
        if self.plan.refuse:
            raise AuthenticationError("memory: bad token")
        if self.plan.fail_opens > 0:
            self.plan.fail_opens -= 1
            raise ConnectionFailed("memory: not reachable")

    async def write(self, ticks: Sequence[object]) -> None:
        await self.plan.gate.wait()
        if self.plan.bug:
            raise KeyError("a bug in the sink")
        self.plan.attempts.append(list(ticks))
        if self.plan.fail_writes > 0:
            self.plan.fail_writes -= 1
            raise ConnectionFailed("memory: link lost")
        self.plan.written.extend(ticks)

    async def close(self) -> None:
        self.plan.closed = True

    def stats(self) -> dict[str, int]:
        return {"written": len(self.plan.written)}


class MemoryFactory(SinkFactory):
    kind = "memory"

    def __init__(self) -> None:
        self.written: list[object] = []
        self.attempts: list[list[object]] = []
        self.fail_writes = 0
        self.fail_opens = 0
        self.refuse = False
        self.bug = False
        self.opens = 0
        self.closed = False
        self.gate = anyio.Event()
        self.gate.set()

    def create(self, config: SinkConfig) -> MemorySink:
        return MemorySink(self)


def _hub(factory: MemoryFactory) -> ExchangeHub:
    class Plugin:
        @hookimpl
        def hub_sink_factories(self) -> list[SinkFactory]:
            return [factory]

    reg = ExchangeRegistry()
    info = reg.register(Plugin(), name="memory-sink")
    assert info.enabled, info.error
    return ExchangeHub(registry=reg)


async def _until(cond: object, seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while True:
            if cond():  # type: ignore[operator]
                return
            await anyio.sleep(0.005)


@pytest.mark.anyio
async def test_a_sink_gets_every_tick_in_bus_order() -> None:
    factory = MemoryFactory()
    hub = _hub(factory)
    async with hub:
        runner = await hub.add_sink(SinkConfig(kind="memory", name="mem", batch=3))
        sink = hub._processor.sink_for("binance")
        ticks = _market_ticks()
        for t in ticks:
            sink.publish(t)
        await _until(lambda: len(factory.written) == len(ticks))
        assert hub.sink_status()["mem"].state == "connected"
        assert runner.sent == len(ticks)
    assert factory.written == ticks
    assert all(len(batch) <= 3 for batch in factory.attempts)
    assert factory.closed
    assert runner.status().state == "closed"


@pytest.mark.anyio
async def test_a_broken_link_is_reopened_and_the_same_batch_written_again() -> None:
    factory = MemoryFactory()
    factory.fail_writes = 1
    factory.fail_opens = 2
    hub = _hub(factory)
    async with hub:
        runner = await hub.add_sink(
            SinkConfig(kind="memory", name="mem", reconnect_delay_ms=1, reconnect_max_delay_ms=5)
        )
        sink = hub._processor.sink_for("binance")
        ticks = _market_ticks()
        for t in ticks:
            sink.publish(t)
        await _until(lambda: len(factory.written) == len(ticks))
    assert factory.written == ticks  # nothing lost, nothing twice
    assert factory.attempts[0] == factory.attempts[1]  # the failed batch, retried as it was
    assert factory.opens == 4  # two refused opens, one up, one after the lost link
    assert runner.reconnects == 1


@pytest.mark.anyio
async def test_a_refused_sink_stops_at_once() -> None:
    factory = MemoryFactory()
    factory.refuse = True
    hub = _hub(factory)
    async with hub:
        await hub.add_sink(SinkConfig(kind="memory", name="mem"))
        await _until(lambda: hub.sink_status()["mem"].state == "auth_failed")
        status = hub.sink_status()["mem"]
        assert "bad token" in status.reason
        await anyio.sleep(0.05)
        assert factory.opens == 1  # never retried


@pytest.mark.anyio
async def test_ticks_past_the_buffer_are_counted_and_sent_as_a_gap() -> None:
    factory = MemoryFactory()
    factory.gate = anyio.Event()  # the sink cannot take anything yet
    hub = _hub(factory)
    async with hub:
        runner = await hub.add_sink(SinkConfig(kind="memory", name="mem", buffer=10, batch=5))
        sink = hub._processor.sink_for("binance")
        for i in range(5):
            sink.trade("BTCUSDT", S, S, "B", T0 + i, T0 + i, i + 1)
        await _until(lambda: runner.status().buffered == 5 and not runner._queue)
        for i in range(5, 100):
            sink.trade("BTCUSDT", S, S, "B", T0 + i, T0 + i, i + 1)
        assert runner.dropped == 100 - 10 - 5  # 5 in the batch in hand, 10 buffered
        factory.gate.set()
        await _until(lambda: len(factory.written) == 16)  # 15 trades and the Gap
        sink.trade("BTCUSDT", S, S, "B", T0 + 200, T0 + 200, 201)  # the feed goes on
        await _until(lambda: len(factory.written) == 17)
    gaps = [t for t in factory.written if isinstance(t, Gap)]
    assert len(gaps) == 1
    (gap,) = gaps
    assert gap.exchange == "binance" and "85 ticks not sent" in gap.reason
    trades = [t for t in factory.written if isinstance(t, Trade)]
    assert gap.start_ts == trades[14].ts_recv + 1 and gap.end_ts == T0 + 99
    assert factory.written[-1] is not gap and factory.written[-2] is gap


@pytest.mark.anyio
async def test_relayed_ticks_are_not_sent_back_and_exchanges_filter() -> None:
    factory = MemoryFactory()
    hub = _hub(factory)
    async with hub:
        await hub.add_sink(SinkConfig(kind="memory", name="all"))
        only = MemoryFactory()
        hub.registry.unregister("memory-sink")

        class Only:
            @hookimpl
            def hub_sink_factories(self) -> list[SinkFactory]:
                return [only]

        hub.registry.register(Only(), name="only-sink")
        await hub.add_sink(SinkConfig(kind="memory", name="only", exchanges=["es_feed"]))
        local = hub._processor.sink_for("es_feed")
        relayed = hub._processor.sink_for("remote").relay("binance")
        local.trade("ES", S, S, "B", T0, T0, 1)
        relayed.trade("BTCUSDT", S, S, "B", T0, T0, 1)
        hub._processor.sink_for("other").trade("X", S, S, "B", T0, T0, 1)
        await _until(lambda: len(factory.written) == 2 and len(only.written) == 1)
        await anyio.sleep(0.02)
    assert [t.exchange for t in factory.written] == ["es_feed", "other"]  # type: ignore[attr-defined]
    assert [t.exchange for t in only.written] == ["es_feed"]  # type: ignore[attr-defined]


# -- configuration ----------------------------------------------------------------------
def test_sinks_tables_parse_with_their_names_and_defaults() -> None:
    cfg = parse_config(
        {
            "sinks": {
                "fanout": {
                    "kind": "nats",
                    "url": "nats://127.0.0.1:4222",
                    "options": {"prefix": "md"},
                }
            }
        }
    )
    sc = cfg.sinks["fanout"]
    assert (sc.name, sc.kind, sc.options, sc.buffer, sc.exchanges) == (
        "fanout",
        "nats",
        {"prefix": "md"},
        1_000_000,
        None,
    )
    with pytest.raises(ConfigError, match=r"sinks\.fanout\.bufer"):
        parse_config({"sinks": {"fanout": {"kind": "nats", "bufer": 3}}})


def test_hub_check_names_an_unknown_sink_kind(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        '[exchanges.a]\nprotocol = "ninjatrader"\nendpoint = "127.0.0.1:7496"\n'
        '[sinks.out]\nkind = "carrier-pigeon"\nurl = "coop://roof"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "hub_core.cli", "check", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "sinks.out.kind" in done.stderr and "carrier-pigeon" in done.stderr


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=20), st.integers(1, 6))
def test_shards_own_every_exchange_exactly_once(names: list[str], count: int) -> None:
    owned = [n for i in range(1, count + 1) for n in shard_names(names, i, count)]
    assert sorted(owned) == sorted(names)


def test_a_shard_that_owns_nothing_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        '[exchanges.a]\nprotocol = "ninjatrader"\nendpoint = "127.0.0.1:7496"\n'
        '[exchanges.b]\nprotocol = "ninjatrader"\nendpoint = "127.0.0.1:7497"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "hub_core.cli", "run", str(cfg), "--shard", "3/3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "owns none of the 2" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "hub_core.cli", "run", str(cfg), "--shard", "0/2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "I must be 1..N" in bad.stderr


@pytest.mark.anyio
async def test_sinks_show_in_the_metrics_and_the_live_view() -> None:
    from hub_core.cli.live_view import FrameSource
    from hub_core.cli.metrics import HubMetrics

    factory = MemoryFactory()
    hub = _hub(factory)
    async with hub:
        await hub.add_sink(SinkConfig(kind="memory", name="mem"))
        hub._processor.sink_for("es_feed").trade("ES", S, S, "B", T0, T0, 1)
        await _until(lambda: hub.sink_status()["mem"].sent == 1)
        samples = {
            (s.name, s.labels.get("sink"), s.labels.get("state")): s.value
            for family in HubMetrics(hub).collect()
            for s in family.samples
        }
        assert samples[("hub_sink_sent_total", "mem", None)] == 1.0
        assert samples[("hub_sink_state", "mem", "connected")] == 1.0
        assert samples[("hub_sink_state", "mem", "dead")] == 0.0
        frame = FrameSource(hub, "t").collect()
        assert frame.sinks == [("mem", "connected", 1, 0)]
        assert hub.sink_status()["mem"].sink == {"written": 1}


@pytest.mark.anyio
async def test_sink_states_are_events_on_the_bus_that_no_sink_ships() -> None:
    factory = MemoryFactory()
    factory.fail_opens = 1
    hub = _hub(factory)
    states: list[tuple[str, str, int]] = []
    hub.bus.subscribe(
        ConnectionStateChanged, lambda e: states.append((e.exchange, e.state, e.attempt))
    )
    async with hub:
        await hub.add_sink(SinkConfig(kind="memory", name="mem", reconnect_delay_ms=1))
        await _until(lambda: hub.sink_status()["mem"].state == "connected")
        hub._processor.sink_for("es_feed").state("connected", "")
        await _until(lambda: len(factory.written) == 1)
    assert states[:2] == [("sinks.mem", "reconnecting", 1), ("sinks.mem", "connected", 0)]
    assert states[-1] == ("sinks.mem", "closed", 0)
    assert [t.exchange for t in factory.written] == ["es_feed"]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_sink_that_raises_a_bug_is_stopped_not_the_hub() -> None:
    factory = MemoryFactory()
    factory.bug = True
    hub = _hub(factory)
    async with hub:
        await hub.add_sink(SinkConfig(kind="memory", name="mem"))
        sink = hub._processor.sink_for("es_feed")
        sink.trade("ES", S, S, "B", T0, T0, 1)
        await _until(lambda: hub.sink_status()["mem"].state == "dead")
        status = hub.sink_status()["mem"]
        assert "KeyError" in status.reason and status.dropped == 1
        sink.trade("ES", S, S, "B", T0, T0, 2)  # the feed goes on; nothing is held for it
        assert hub.sink_status()["mem"].buffered == 0
