"""Supervisor behaviour against a real loopback server (see lineproto.py)."""

import itertools
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_core import (
    AuthenticationError,
    ConnectionDead,
    ConnectionState,
    ConnectionStateChanged,
    Credentials,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Trade,
    TypedEventBus,
    hookimpl,
)
from hub_core.supervisor import backoff_delay_ms, endpoint_host
from hub_core.testing import EventRecorder

from .lineproto import LineServer, Plugin

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


async def test_silent_feed_escalates_instead_of_reconnecting_forever(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    server.ignore_subscriptions = True
    await h.connect_exchange(
        "line", config(f"127.0.0.1:{server.port}", stale_after_ms=150, max_silent_recycles=2)
    )
    await rec.wait_for(h.all_dead, 10, "the silent feed to be declared dead")
    dead = rec.of(ConnectionStateChanged)[-1]
    assert dead.state == ConnectionState.DEAD
    assert "ignoring the subscription" in dead.reason
    assert ConnectionState.STALE in rec.states()
    assert server.connections == 2


async def test_stall_is_probed_then_recycled(
    server: LineServer, hub: tuple[ExchangeHub, EventRecorder]
) -> None:
    h, rec = hub
    await h.connect_exchange("line", config(f"127.0.0.1:{server.port}", stale_after_ms=150))
    await rec.wait_for(lambda: len(rec.of(Trade)) > 3, 5, "trades")
    server.silent = True
    await rec.wait_for(
        lambda: ConnectionState.RECONNECTING in rec.states(), 5, "the stall to be recycled"
    )
    assert ConnectionState.STALE in rec.states()
    server.silent = False
    mark = len(rec.events)
    await rec.wait_for(
        lambda: any(isinstance(e, Trade) for e in rec.events[mark:]), 5, "trades again"
    )


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
    await anyio.sleep(0.65)
    await h.disconnect_exchange("line")
    starts = [
        e.ts_event for e in rec.of(ConnectionStateChanged) if e.state == ConnectionState.CONNECTING
    ]
    assert 3 <= len(starts) <= 8
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(starts)]
    assert min(gaps_ms) >= 95


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
    await anyio.sleep(0.65)
    for name in ("one", "two", "three"):
        await h.disconnect_exchange(name)
    starts = sorted(
        e.ts_event for e in rec.of(ConnectionStateChanged) if e.state == ConnectionState.CONNECTING
    )
    assert 3 <= len(starts) <= 9
    assert min((b - a) / 1e6 for a, b in itertools.pairwise(starts)) >= 95


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


async def test_a_close_that_raises_cancelled_still_lets_the_hub_close(server: LineServer) -> None:
    """A plugin's close() that lets a CancelledError out (as an asyncio future cancelled
    under it does) must not leave stop() waiting forever for the supervisor."""
    import asyncio

    from .lineproto import LineConnection, LineFactory

    class BadClose(LineConnection):
        async def close(self) -> None:
            await super().close()
            raise asyncio.CancelledError("a plugin's own future was cancelled")

    class Factory(LineFactory):
        def create(self, config: ExchangeConfig, sink: Any) -> LineConnection:
            return BadClose(config, sink)

    class BadPlugin:
        @hookimpl
        def hub_connection_factories(self) -> list[LineFactory]:
            return [Factory()]

    reg = ExchangeRegistry()
    reg.register(BadPlugin(), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    with anyio.fail_after(10):
        async with ExchangeHub(bus, registry=reg) as h:
            await h.connect_exchange("line", config(f"127.0.0.1:{server.port}"))
            await rec.wait_for(lambda: bool(rec.of(Trade)), 5, "trades")
    states = [e.state for e in rec.of(ConnectionStateChanged)]
    assert states[-1] == "closed"
