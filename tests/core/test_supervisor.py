"""Supervisor behaviour against a real loopback server (see lineproto.py)."""

import itertools
import random
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import given, strategies as st

from hub_core import (
    AuthenticationError,
    ConfigError,
    ConnectionDead,
    ConnectionState,
    ConnectionStateChanged,
    Credentials,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    SequenceMismatch,
    SubscriptionError,
    Trade,
    TypedEventBus,
)
from hub_core.plugin import ConnectionFactory, hookimpl
from hub_core.supervisor import backoff_delay_ms, endpoint_address, endpoint_host
from hub_core.testing import EventRecorder

from .lineproto import LineFactory, LineServer, Plugin

pytestmark = pytest.mark.anyio


@given(
    attempt=st.integers(1, 60),
    base=st.integers(1, 5_000),
    extra=st.integers(0, 100_000),
    seed=st.integers(0, 2**32),
)
def test_backoff_stays_inside_its_bounds(attempt: int, base: int, extra: int, seed: int) -> None:
    cap = base + extra
    d = backoff_delay_ms(attempt, base, cap, random.Random(seed))
    assert base <= d <= max(base, min(cap, base * 2**attempt))


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def config(endpoint: str, **kw: Any) -> ExchangeConfig:
    kw.setdefault("credentials", Credentials(username="u", password="pw"))
    kw.setdefault("reconnect_delay_ms", 20)
    kw.setdefault("reconnect_max_delay_ms", 80)
    kw.setdefault("stale_after_ms", 0)
    return ExchangeConfig(protocol="lineproto", endpoint=endpoint, symbols=["AAA"], **kw)


@pytest.fixture
async def server() -> AsyncIterator[LineServer]:
    srv = LineServer()
    async with anyio.create_task_group() as tg:
        await tg.start(srv.serve)
        yield srv
        tg.cancel_scope.cancel()


@pytest.fixture
async def hub() -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
    reg = ExchangeRegistry()
    reg.register(Plugin(), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=reg) as h:
        yield h, rec


async def test_drop_reconnects_resubscribes_and_publishes_gap(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
    mark = len(rec.events)
    await server.drop_all()
    await rec.wait_for(
        lambda: (
            any(isinstance(e, Trade) for e in rec.events[mark:])
            and any(isinstance(e, Gap) for e in rec.events[mark:])
        ),
        5,
        "trades after the reconnect",
    )
    gap = next(e for e in rec.events[mark:] if isinstance(e, Gap))
    assert gap.symbol == "" and gap.end_ts >= gap.start_ts > 0
    # the gap is published before any tick of the new session
    first_trade = next(i for i, e in enumerate(rec.events[mark:]) if isinstance(e, Trade))
    first_gap = next(i for i, e in enumerate(rec.events[mark:]) if isinstance(e, Gap))
    assert first_gap < first_trade
    assert server.connections == 2
    assert h.event_processor().get_stats().reconnects == 1


async def test_wrong_credentials_fail_once_without_retry_storm(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.password = "other"
    with pytest.raises(AuthenticationError, match="login refused"):
        await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
    await anyio.sleep(0.3)
    assert server.logins == 1
    assert rec.states()[-1] == ConnectionState.AUTH_FAILED
    assert h.connection_status() == {"line": False}
    assert "pw" not in repr(rec.events)


async def test_retries_exhausted_mark_the_connection_dead(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    with pytest.raises(ConnectionDead, match="gave up after 2 reconnect attempts"):
        await h.connect_exchange("line", config(f"127.0.0.1:{closed_port()}", reconnect_attempts=2))
    dead = rec.of(ConnectionStateChanged)[-1]
    assert dead.state == ConnectionState.DEAD and "reachable" in dead.reason
    assert h.all_dead()
    attempts = [s for s in rec.states() if s == ConnectionState.CONNECTING]
    assert len(attempts) == 3  # the first try and two reconnects


async def test_fails_over_to_the_backup_endpoint(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    primary = f"127.0.0.1:{closed_port()}"
    backup = f"127.0.0.1:{server.port}"
    await h.connect_exchange("line", config(primary, backup_endpoints=[backup]))
    assert h.connections()["line"].endpoint == backup
    await rec.wait_for(lambda: len(rec.of(Trade)) > 0, 5, "trades from the backup")


async def test_a_venue_that_sends_nothing_at_all_is_declared_dead(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.silent = True  # logs in, then not a byte: no data, no pong, no heartbeat
    await h.connect_exchange(
        "line", config(f"127.0.0.1:{server.port}", stale_after_ms=150, max_silent_recycles=2)
    )
    await rec.wait_for(h.all_dead, 10, "the mute venue to be declared dead")
    dead = rec.of(ConnectionStateChanged)[-1]
    assert dead.state == ConnectionState.DEAD
    assert "sent nothing at all" in dead.reason
    assert ConnectionState.STALE in rec.states()
    assert server.connections == 2
    assert server.pings >= 2  # each session was probed before it was recycled
    # subscribed but blind from the first subscription to the end: one Gap says so
    gaps = rec.of(Gap)
    assert len(gaps) == 1 and gaps[0].end_ts > gaps[0].start_ts
    assert rec.events.index(gaps[0]) < rec.events.index(dead)


async def test_a_quiet_market_on_a_live_link_is_reported_never_recycled(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.ignore_subscriptions = True  # no market data, but every probe is answered
    await h.connect_exchange(
        "line", config(f"127.0.0.1:{server.port}", stale_after_ms=100, max_silent_recycles=1)
    )
    await rec.wait_for(lambda: server.pings >= 4, 20, "several probes, each answered")
    sup = h.connections()["line"]
    assert sup.state == ConnectionState.CONNECTED and sup.quiet
    assert server.connections == 1
    assert ConnectionState.STALE not in rec.states()
    assert ConnectionState.RECONNECTING not in rec.states()
    assert any("quiet" in e.reason for e in rec.of(ConnectionStateChanged))
    server.ignore_subscriptions = False
    await rec.wait_for(lambda: bool(rec.of(Trade)), 5, "trades once the market moves")
    await rec.wait_for(lambda: not sup.quiet, 5, "the quiet flag to clear")
    assert not rec.of(Gap)


async def test_a_quiet_symbol_is_reported_per_symbol(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.mute_symbols = {"BBB"}
    cfg = config(f"127.0.0.1:{server.port}", stale_after_ms=150)
    cfg.symbols = ["AAA", "BBB"]
    await h.connect_exchange("line", cfg)
    sup = h.connections()["line"]
    await rec.wait_for(lambda: sup.quiet_symbols == {"BBB"}, 10, "BBB to be reported quiet")
    assert sup.symbol_states() == {"AAA": "subscribed", "BBB": "quiet"}
    assert not sup.quiet  # the connection as a whole carries data
    assert any("quiet: BBB" in e.reason for e in rec.of(ConnectionStateChanged))
    server.mute_symbols = set()
    await rec.wait_for(lambda: not sup.quiet_symbols, 10, "BBB to trade again")
    assert rec.of(ConnectionStateChanged)[-1].reason == "market data resumed"
    assert server.connections == 1 and not rec.of(Gap)


async def test_heartbeats_keep_a_quiet_link_alive_without_probes(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.ignore_subscriptions = True
    server.heartbeat_s = 0.02
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=150))
    await rec.wait_for(lambda: h.connections()["line"].quiet, 10, "the quiet market to be reported")
    assert server.pings == 0  # every byte counts as liveness: nothing to probe
    assert server.connections == 1


def test_max_silent_recycles_zero_means_never() -> None:
    assert config("127.0.0.1:1", max_silent_recycles=0).max_silent_recycles == 0


async def test_stall_gap_starts_at_the_last_data_and_ends_at_the_first_data(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=150))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
    server.silent = True
    await rec.wait_for(
        lambda: ConnectionState.RECONNECTING in rec.states(), 10, "the stall to be recycled"
    )
    assert ConnectionState.STALE in rec.states()
    assert server.pings >= 1
    server.silent = False
    await rec.wait_for(lambda: bool(rec.of(Gap)), 10, "the Gap once data flows again")
    await rec.wait_for(
        lambda: isinstance(rec.events[-1], Trade) or len(rec.of(Trade)) > 10, 5, "trades"
    )
    gap = rec.of(Gap)[0]
    at = rec.events.index(gap)
    before = [e for e in rec.events[:at] if isinstance(e, Trade)]
    after = next(e for e in rec.events[at:] if isinstance(e, Trade))
    # the window covers the whole silence: from the last trade before it to the first after
    assert gap.start_ts == before[-1].ts_recv
    assert gap.end_ts == after.ts_recv
    assert gap.symbol == "" and "blind while reconnecting" in gap.reason
    assert len(rec.of(Gap)) == 1


async def test_a_stall_that_recovers_without_a_recycle_is_not_a_gap(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=5000))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
    server.silent = True
    await anyio.sleep(0.2)  # far shorter than stale_after_ms: within tolerance
    server.silent = False
    n = len(rec.of(Trade))
    await rec.wait_for(lambda: len(rec.of(Trade)) > n + 3, 5, "trades again")
    assert not rec.of(Gap)
    assert server.connections == 1


async def test_a_connection_that_stops_for_good_closes_its_window(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", reconnect_attempts=2))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
    server.password = "changed"  # every reconnect is now refused
    await server.drop_all()
    await rec.wait_for(h.all_dead, 10, "the refusal to stop the connection")
    last_trade = rec.of(Trade)[-1]
    gaps = rec.of(Gap)
    assert len(gaps) == 1
    assert gaps[0].start_ts == last_trade.ts_recv
    assert gaps[0].end_ts >= gaps[0].start_ts
    assert "blind" in gaps[0].reason
    # the Gap comes before the final state, so a consumer sees it while the feed is known
    states = rec.of(ConnectionStateChanged)
    assert states[-1].state == ConnectionState.AUTH_FAILED
    assert rec.events.index(gaps[0]) < rec.events.index(states[-1])
    assert server.logins == 2  # the first session, and exactly one refused attempt


async def test_closing_the_hub_while_blind_publishes_the_window(server: LineServer) -> None:
    reg = ExchangeRegistry()
    reg.register(Plugin(), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=reg) as h:
        await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=150))
        await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
        server.silent = True
        await rec.wait_for(lambda: ConnectionState.RECONNECTING in rec.states(), 10, "the stall")
    gaps = rec.of(Gap)
    assert len(gaps) == 1
    assert gaps[0].start_ts == rec.of(Trade)[-1].ts_recv
    assert rec.states()[-1] == ConnectionState.CLOSED


async def test_a_rate_limit_is_waited_out_on_the_same_endpoint(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.slow_logins = [0.6]
    backup = f"127.0.0.1:{closed_port()}"
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", backup_endpoints=[backup]))
    assert server.logins == 2
    first, second = server.login_times
    # Retry-After is a floor: the second login never comes before it has passed
    assert second - first >= 600_000_000
    reasons = [e.reason for e in rec.of(ConnectionStateChanged)]
    assert any("rate limited" in r for r in reasons)
    assert h.connections()["line"].endpoint == f"127.0.0.1:{server.port}"  # no failover
    assert h.connections()["line"].state == ConnectionState.CONNECTED


async def test_an_endpoint_the_plugin_cannot_use_is_dead_not_retried(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    with pytest.raises(ConfigError, match="port 0 cannot be dialled"):
        await h.connect_exchange("line", config("127.0.0.1:0"))
    assert rec.states().count(ConnectionState.CONNECTING) == 1
    assert rec.states()[-1] == ConnectionState.DEAD


async def test_the_plugins_endpoint_check_refuses_before_any_attempt(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    with pytest.raises(
        ConfigError, match=r"exchanges\.line\.endpoint: 'nonsense' is not host:port"
    ):
        await h.connect_exchange("line", config("nonsense"))
    with pytest.raises(ConfigError, match=r"backup_endpoints\[0\]"):
        await h.connect_exchange("line", config("127.0.0.1:1", backup_endpoints=["oops"]))
    assert rec.states() == []


async def test_a_sequence_mismatch_stops_with_the_plugins_message(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.sequence_reset = True
    with pytest.raises(SequenceMismatch, match="expects sequence 4"):
        await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
    await anyio.sleep(0.3)
    assert server.logins == 1
    assert rec.states()[-1] == ConnectionState.DEAD


async def test_refused_symbols_are_shown_per_symbol(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.refuse = {"BAD": "unknown-symbol"}
    cfg = config(f"127.0.0.1:{server.port}")
    cfg.symbols = ["AAA", "BAD", "CCC"]
    await h.connect_exchange("line", cfg)
    sup = h.connections()["line"]
    assert sup.refused == {"BAD": "unknown-symbol"}
    connected = [e for e in rec.of(ConnectionStateChanged) if e.state == "connected"]
    assert connected[-1].reason == "subscribed 2 of 3 symbols; refused: BAD (unknown-symbol)"
    await rec.wait_for(
        lambda: {t.symbol for t in rec.of(Trade)} >= {"AAA", "CCC"}, 5, "the accepted symbols"
    )


async def test_secrets_in_the_endpoint_never_reach_events_or_logs(
    server: LineServer,
    hub: tuple[ExchangeHub, EventRecorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    h, rec = hub
    caplog.set_level("DEBUG")
    secret = "S3cr3tPassw0rd"
    endpoint = f"user:{secret}@127.0.0.1:{server.port}"
    await h.connect_exchange("line", config(endpoint))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 2, 5, "trades")
    await server.drop_all()
    await rec.wait_for(lambda: bool(rec.of(Gap)), 5, "the reconnect")
    states = rec.of(ConnectionStateChanged)
    assert states and all(e.endpoint == f"***@127.0.0.1:{server.port}" for e in states)
    assert secret not in repr(rec.events)
    assert secret not in caplog.text
    with pytest.raises(ConnectionDead) as info:
        await h.connect_exchange(
            "other", config(f"user:{secret}@127.0.0.1:{closed_port()}", reconnect_attempts=1)
        )
    assert secret not in str(info.value) and "***@127.0.0.1" in str(info.value)
    assert secret not in caplog.text


async def test_connection_attempts_are_paced(hub: tuple[ExchangeHub, EventRecorder]) -> None:
    h, rec = hub
    await h.connect_exchange(
        "line",
        config(
            f"127.0.0.1:{closed_port()}",
            reconnect_delay_ms=1,
            reconnect_max_delay_ms=2,
            min_connect_interval_ms=100,
        ),
        wait=False,
    )

    def starts() -> list[int]:
        return [
            e.ts_event
            for e in rec.of(ConnectionStateChanged)
            if e.state == ConnectionState.CONNECTING
        ]

    await rec.wait_for(lambda: len(starts()) >= 4, 20, "four attempts")
    await h.disconnect_exchange("line")
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(starts())]
    assert min(gaps_ms) >= 95  # never closer than the interval, however loaded the machine


def test_pacing_is_on_by_default() -> None:
    assert config("127.0.0.1:1").min_connect_interval_ms > 0


async def test_subscribe_and_unsubscribe_while_connected(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
    await h.subscribe_market_data("line", ["BBB"])
    await rec.wait_for(
        lambda: any(t.symbol == "BBB" for t in rec.of(Trade)), 5, "trades of the new symbol"
    )
    await h.unsubscribe_market_data("line", ["AAA", "BBB"])
    assert h.connections()["line"].symbols == []


async def test_pacing_holds_across_connections_to_one_host(
    hub: tuple[ExchangeHub, EventRecorder],
) -> None:
    h, rec = hub
    port = closed_port()
    for name in ("one", "two", "three"):
        await h.connect_exchange(
            name,
            config(
                f"127.0.0.1:{port}",
                reconnect_delay_ms=1,
                reconnect_max_delay_ms=2,
                min_connect_interval_ms=100,
            ),
            wait=False,
        )

    def starts() -> list[int]:
        return sorted(
            e.ts_event
            for e in rec.of(ConnectionStateChanged)
            if e.state == ConnectionState.CONNECTING
        )

    await rec.wait_for(lambda: len(starts()) >= 6, 20, "six attempts")
    for name in ("one", "two", "three"):
        await h.disconnect_exchange(name)
    assert min((b - a) / 1e6 for a, b in itertools.pairwise(starts())) >= 95


async def test_pacing_of_one_address_never_delays_another(
    hub: tuple[ExchangeHub, EventRecorder], server: LineServer
) -> None:
    h, rec = hub
    # one address kept busy at a long interval ...
    await h.connect_exchange(
        "busy",
        config(
            f"127.0.0.1:{closed_port()}",
            reconnect_delay_ms=1,
            reconnect_max_delay_ms=2,
            min_connect_interval_ms=60_000,
        ),
        wait=False,
    )
    await rec.wait_for(
        lambda: ConnectionState.RECONNECTING in rec.states(), 10, "the busy address to retry"
    )
    # ... another address on the same host connects at once
    await h.connect_exchange(
        "other", config(f"127.0.0.1:{server.port}", min_connect_interval_ms=60_000)
    )
    assert h.connections()["other"].state == ConnectionState.CONNECTED


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("127.0.0.1:7496", "127.0.0.1"),
        ("wss://stream.binance.com:9443/ws", "stream.binance.com"),
        ("fix://[::1]:9878", "::1"),
        ("[::1]:7496", "::1"),
        ("wss://user:pw@host.example/x", "host.example"),
    ],
)
def test_endpoint_host(endpoint: str, host: str) -> None:
    assert endpoint_host(endpoint) == host


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("127.0.0.1:7496", "127.0.0.1:7496"),
        ("wss://stream.binance.com:9443/ws", "stream.binance.com:9443"),
        ("wss://ws-feed.exchange.coinbase.com", "ws-feed.exchange.coinbase.com:443"),
        ("ws://alice:pw@127.0.0.1/ws?token=x", "127.0.0.1:80"),
        ("fix://[::1]:9878", "::1:9878"),
        ("user:pw@127.0.0.1:9", "127.0.0.1:9"),
    ],
)
def test_endpoint_address(endpoint: str, address: str) -> None:
    assert endpoint_address(endpoint) == address


async def test_a_close_that_raises_cancelled_still_lets_the_hub_close(server: LineServer) -> None:
    """A plugin's close() that lets a CancelledError out (as an asyncio future cancelled
    under it does) must not leave stop() waiting forever for the supervisor."""
    import asyncio

    from .lineproto import LineConnection

    class BadClose(LineConnection):
        async def close(self) -> None:
            await super().close()
            raise asyncio.CancelledError("a plugin's own future was cancelled")

    reg = ExchangeRegistry()
    reg.register(Plugin(BadClose), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    with anyio.fail_after(10):
        async with ExchangeHub(bus, registry=reg) as h:
            await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
            await rec.wait_for(lambda: bool(rec.of(Trade)), 5, "trades")
    states = [e.state for e in rec.of(ConnectionStateChanged)]
    assert states[-1] == "closed"


async def test_late_data_from_a_closing_session_never_hides_the_blindness(
    server: LineServer,
) -> None:
    """A transport still closing (a thawed venue flushing its buffer) may deliver data
    after the session was declared stale: the silence before it stays inside a Gap."""
    from hub_core.testing import assert_blind_windows_covered

    from .lineproto import LineConnection

    class LateClose(LineConnection):
        async def close(self) -> None:
            if self.sink.data_count:  # what the venue had buffered, delivered on the way out
                self.sink.trade_text("AAA", "1.5", "1", "N", 0, time.time_ns())
            await super().close()

    reg = ExchangeRegistry()
    reg.register(Plugin(LateClose), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=reg) as h:
        await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=150))
        await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
        server.silent = True
        await rec.wait_for(lambda: ConnectionState.RECONNECTING in rec.states(), 10, "the stall")
        server.silent = False
        n = len(rec.of(Trade))
        await rec.wait_for(lambda: len(rec.of(Trade)) > n + 3, 10, "trades after the stall")
    windows = assert_blind_windows_covered(rec.events, 100_000_000)
    assert windows  # the stall made a silence, and a Gap covers it


async def test_an_error_inside_the_hub_block_reaches_the_user_unwrapped(
    server: LineServer,
) -> None:
    reg = ExchangeRegistry()
    reg.register(Plugin(), name="lineproto")
    with pytest.raises(KeyError, match="from the strategy"):
        async with ExchangeHub(TypedEventBus(), registry=reg) as h:
            await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
            raise KeyError("from the strategy")
    server.refuse = {"BAD": "unknown-symbol"}
    with pytest.raises(SubscriptionError) as info:
        async with ExchangeHub(TypedEventBus(), registry=reg) as h:
            await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
            await h.subscribe_market_data("line", ["BAD"])
    assert info.value.refused == {"BAD": "unknown-symbol"}


async def test_streams_end_when_the_hub_that_feeds_them_closes(server: LineServer) -> None:
    reg = ExchangeRegistry()
    reg.register(Plugin(), name="lineproto")
    bus = TypedEventBus()
    got: list[Trade] = []
    three = anyio.Event()

    async def consume(stream: Any) -> None:
        async for tick in stream:
            got.append(tick)
            if len(got) >= 3:
                three.set()

    stream = bus.stream(Trade, maxsize=100_000)
    # the task group waits for the consumer: its loop must end by itself after the close
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, stream)
            async with ExchangeHub(bus, registry=reg) as h:
                await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
                await three.wait()
    assert len(got) >= 3
    published = h.event_processor().get_stats().trades_processed
    assert len(got) == published  # what was buffered at the close was still delivered


async def test_the_factory_decides_the_staleness_limit(server: LineServer) -> None:
    """``ConnectionFactory.stale_after_ms`` is the limit the supervisor applies: a
    factory that answers 0 (a venue known to be silent for long) keeps a mute link
    that the config's 100 ms would have recycled."""

    class PatientFactory(LineFactory):
        def stale_after_ms(self, config: ExchangeConfig) -> int:
            return 0

    class PatientPlugin(Plugin):
        @hookimpl
        def hub_connection_factories(self) -> list[ConnectionFactory]:
            return [PatientFactory(self.connection)]

    reg = ExchangeRegistry()
    reg.register(PatientPlugin(), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    server.silent = True
    async with ExchangeHub(bus, registry=reg) as h:
        await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=100))
        await anyio.sleep(1.0)  # ten times the config's limit
        assert ConnectionState.STALE not in rec.states()
        assert server.connections == 1 and server.pings == 0
