"""Writes that block: one writer per stream, on both sides.

A FIX session has several writers that can be due at once (a heartbeat from the timer,
market data, the answer to a TestRequest, a probe, a subscribe). When the peer stops
reading, the socket blocks and they pile up; they must queue behind one writer, in
sequence order, never race (anyio raises ``BusyResourceError`` on a second concurrent
send: that killed ``hub sim fix`` when a frozen venue was thawed)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from hub_core import ExchangeConfig, Trade
from hub_plugin_fix import session as s
from hub_plugin_fix.connection import FixConnection
from hub_plugin_fix.factory import FixFactory
from hub_plugin_fix.messages import Header
from hub_plugin_fix.simulator import FixSimulator

from .conftest import Collected

pytestmark = pytest.mark.anyio

BOUND = 60.0
"""Generous bound for any one wait on a loaded 2-core machine."""


async def _wait(what: str, ok: Any, bound: float = BOUND) -> None:
    with anyio.fail_after(bound):
        while not ok():  # noqa: ASYNC110 - plain state of the objects, no event to wait on
            await anyio.sleep(0.02)


class RawClient:
    """A FIX initiator on a bare socket, so the test decides when it reads."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.session = s.FixSession(
            Header("FIX.4.4", "RAW", "VENUE"), heartbeat_s=1, reset_on_logon=True
        )
        self.events: list[Any] = []
        self.eof = False

    async def read_once(self) -> None:
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            data = b""
            self.eof = True
        self.session.receive_data(data)
        while not isinstance(event := self.session.next_event(), s.NeedData):
            self.events.append(event)
            if isinstance(event, s.ConnectionClosed):
                self.eof = True
                break
        out = self.session.data_to_send()
        if out and not self.eof:
            await self.stream.send(out)

    async def until(self, ok: Any) -> None:
        with anyio.fail_after(BOUND):
            while not ok() and not self.eof:
                await self.read_once()


async def _logged_on_client(sim: FixSimulator, symbols: list[str]) -> RawClient:
    stream = await anyio.connect_tcp("127.0.0.1", sim.port)
    cl = RawClient(stream)
    await stream.send(cl.session.logon())
    await cl.until(lambda: any(isinstance(e, s.LoggedOn) for e in cl.events))
    for i, sym in enumerate(symbols):
        await stream.send(cl.session.market_data_request(f"r{i}", sym))
    return cl


async def test_the_simulator_survives_a_client_that_stops_reading_then_resumes() -> None:
    async with FixSimulator(["ES", "NQ"], rate=3000, seed=5) as sim:
        cl = await _logged_on_client(sim, ["ES", "NQ"])
        # stop reading (but keep talking, so the venue does not hang up on a silent
        # client): the simulator's sends block once the buffers are full
        with anyio.fail_after(BOUND):
            while sim.blocked_writers() == 0:
                await cl.stream.send(cl.session.heartbeat())
                await anyio.sleep(0.2)
        # while it is blocked: market data piles up, its timer runs, and our
        # TestRequest and Logout each need an answer
        await cl.stream.send(cl.session.test_request())
        for _ in range(8):
            await cl.stream.send(cl.session.heartbeat())
            await anyio.sleep(0.2)
        await cl.stream.send(cl.session.logout("bye"))
        await anyio.sleep(0.5)
        # resume reading: whatever the simulator still sends is well-formed FIX
        await cl.until(lambda: False)
        assert cl.eof
        assert not [e for e in cl.events if isinstance(e, s.Malformed)]
        await cl.stream.aclose()
        # the simulator still serves: a new session logs on and gets market data
        again = await _logged_on_client(sim, ["ES"])
        await again.until(lambda: again.session.expected_seq > 20)
        assert again.session.state == s.State.ACTIVE
        await again.stream.aclose()


def _config(sim: FixSimulator) -> ExchangeConfig:
    return ExchangeConfig.fix(
        "fx",
        sim.endpoint,
        symbols=["ES"],
        options={"heartbeat_interval_s": 1, "logon_timeout_s": 60, "reset_on_logon": True},
    )


async def test_probe_heartbeat_and_subscribe_queue_behind_a_blocked_send(
    collected: Collected,
) -> None:
    symbols = ["ES"] + [f"S{i:03d}" + "X" * 100 for i in range(40)]
    async with FixSimulator(symbols, rate=50, seed=7) as sim:
        conn = FixFactory().create(_config(sim), collected.sink)
        assert isinstance(conn, FixConnection)
        failures: list[BaseException] = []

        async def run() -> None:
            try:
                await conn.run()
            except Exception as exc:  # recorded: the test asserts there is none
                failures.append(exc)

        async def call(what: Any) -> None:
            try:
                await what
            except Exception as exc:
                failures.append(exc)

        with anyio.fail_after(BOUND):
            await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(BOUND):
                await conn.subscribe(["ES"])
            sim.stop_reading()
            # flood the venue that no longer reads until our own sends block
            deadline = time.monotonic() + BOUND
            while conn.pending_output == 0 and time.monotonic() < deadline:
                for _ in range(200):
                    tg.start_soon(call, conn.probe())
                await anyio.sleep(0.01)
            assert conn.pending_output > 0, "the sends never blocked"
            # blocked: the timer's heartbeat falls due, a subscribe and probes join in
            tg.start_soon(call, conn.subscribe(symbols[1:]))
            for _ in range(20):
                tg.start_soon(call, conn.probe())
            await anyio.sleep(1.5)
            mark = len(collected.of(Trade))
            sim.resume_reading()
            await _wait("everything written", lambda: conn.pending_output == 0)
            await _wait(
                "all subscriptions at the venue",
                lambda: sim.subscriptions() and sim.subscriptions()[0] >= set(symbols),
            )
            await _wait("trades after the resume", lambda: len(collected.of(Trade)) > mark)
            assert failures == []
            # the venue saw every message in sequence order: no gap, nothing too low
            assert sim.inbound_gaps == [] and sim.session_failures == []
            assert conn.health().connected
            await conn.close()
            tg.cancel_scope.cancel()


async def test_last_activity_moves_on_heartbeats_of_a_quiet_market(collected: Collected) -> None:
    async with FixSimulator(["ES"], rate=0, seed=1) as sim:
        conn = FixFactory().create(_config(sim), collected.sink)
        with anyio.fail_after(BOUND):
            await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            seen = [conn.health().last_activity_ns]
            # no market data at all (rate 0): only the venue's heartbeats (1 s) arrive
            while len(seen) < 4:
                with anyio.fail_after(BOUND):
                    while conn.health().last_activity_ns == seen[-1]:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                seen.append(conn.health().last_activity_ns)
            assert seen == sorted(seen) and len(set(seen)) == 4
            assert collected.of(Trade) == []
            await conn.close()
            tg.cancel_scope.cancel()


async def test_a_venue_that_lost_our_market_data_request_gets_it_resent(
    collected: Collected,
) -> None:
    async with FixSimulator(["ES", "NQ"], rate=100, seed=9) as sim:
        conn = FixFactory().create(_config(sim), collected.sink)
        with anyio.fail_after(BOUND):
            await conn.connect(sim.endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            with anyio.fail_after(BOUND):
                await conn.subscribe(["ES"])
            session = conn.session
            assert session is not None
            # a MarketDataRequest lost on the way: numbered and kept, never delivered
            session.market_data_request("lost-1", "NQ")
            # the next message shows the venue the gap; it asks, we resend the request
            await conn.probe()
            await _wait("the resent request", lambda: ("lost-1", "1", "NQ") in sim.requests)
            assert sim.inbound_gaps and sim.resend_requests == []  # the venue asked, not us
            assert session.resent == 1
            await _wait("NQ at the venue", lambda: "NQ" in sim.subscriptions()[0])
            assert sim.session_failures == []
            await conn.close()
            tg.cancel_scope.cancel()
