"""``health().last_activity_ns`` moves on every frame the venue sends, not only on data:
acknowledgements, the venue's pings, the pongs to ours, application heartbeats. The
supervisor takes it as the link's liveness, so a quiet market on a live link must keep
it moving. Every simulator here has its market stopped (``rate=0``): no data frame
arrives, so whatever moves the clock is a control frame."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from hub_core import ExchangeConfig, TypedEventBus
from hub_core.processor import EventProcessor
from hub_plugin_websocket import WebSocketConnection, WebSocketFactory
from hub_plugin_websocket.simulator import BinanceSimulator
from hub_plugin_websocket.simulators import KrakenSimulator

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _connected(
    venue: str, endpoint: str, transport: str, channels: list[str], **options: Any
) -> AsyncIterator[WebSocketConnection]:
    cfg = ExchangeConfig.websocket(
        venue,
        endpoint,
        options={"channels": channels, "transport": transport, "dialect": venue, **options},
    )
    conn = WebSocketFactory().create(cfg, EventProcessor(TypedEventBus()).sink_for(venue))
    await conn.connect(endpoint)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        yield conn
        await conn.close()
        tg.cancel_scope.cancel()


async def _moves(conn: WebSocketConnection, times: int, timeout: float = 20) -> None:
    """Wait until ``last_activity_ns`` has moved forward ``times`` times."""
    last = conn.health().last_activity_ns
    moved = 0
    with anyio.fail_after(timeout):
        while moved < times:
            await anyio.sleep(0.02)
            now = conn.health().last_activity_ns
            assert now >= last, "monotonic"
            if now > last:
                moved += 1
                last = now


async def test_an_acknowledgement_moves_it(transport: str) -> None:
    async with (
        BinanceSimulator(["BTCUSDT"], rate=0, ping_interval_s=3600) as sim,
        _connected("binance", sim.endpoint, transport, ["trade"], ping_interval_s=0) as conn,
    ):
        before = conn.health().last_activity_ns
        await conn.subscribe(["BTCUSDT"])  # returns on the venue's acknowledgement
        assert conn.health().last_activity_ns > before


async def test_the_venues_pings_move_it(transport: str) -> None:
    async with (
        BinanceSimulator(["BTCUSDT"], rate=0, ping_interval_s=0.1) as sim,
        _connected("binance", sim.endpoint, transport, ["trade"], ping_interval_s=0) as conn,
    ):
        await conn.subscribe(["BTCUSDT"])
        await _moves(conn, 3)
        assert conn.health().connected


async def test_the_pongs_to_our_pings_move_it(transport: str) -> None:
    async with (
        BinanceSimulator(["BTCUSDT"], rate=0, ping_interval_s=3600) as sim,
        _connected("binance", sim.endpoint, transport, ["trade"], ping_interval_s=0.1) as conn,
    ):
        await conn.subscribe(["BTCUSDT"])
        await _moves(conn, 3)


async def test_application_heartbeats_move_it(transport: str) -> None:
    async with (
        KrakenSimulator(["BTC/USD"], rate=0, heartbeat_interval_s=0.1) as sim,
        _connected("kraken", sim.endpoint, transport, ["trade"], ping_interval_s=0) as conn,
    ):
        await conn.subscribe(["BTC/USD"])
        await _moves(conn, 3)
