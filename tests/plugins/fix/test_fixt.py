"""FIXT.1.1 with FIX.5.0SP2 (DefaultApplVerID 1137=9) through a real ``ExchangeHub``
against the simulator as a FIXT.1.1 acceptor: logon, market data (35=W/X carrying
ApplVerID 1128=9 in their header), logout, the persisted session's file name, and
the acceptor refusing a FIXT Logon without the application version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from hub_core import BookSnapshot, BookUpdate, ConnectionState, Quote, Trade
from hub_plugin_fix import session as fs
from hub_plugin_fix.messages import Header
from hub_plugin_fix.simulator import FixSimulator
from tests.plugins.fix.conftest import fix_message
from tests.plugins.fix.test_end_to_end import TIMEOUT, config, start

pytestmark = pytest.mark.anyio

FIXT = {"begin_string": "FIXT.1.1"}


@pytest.fixture
async def fixt_sim() -> AsyncIterator[FixSimulator]:
    async with FixSimulator(["ES", "NQ"], rate=200, seed=7, begin_string="FIXT.1.1") as sim:
        yield sim


async def test_fixt_logon_market_data_and_logout(fixt_sim: FixSimulator, tmp_path: Path) -> None:
    cfg = config(fixt_sim, ["ES", "NQ"], options={**FIXT, "store_path": str(tmp_path)})
    async with start(cfg) as run:
        await run.trades_for(["ES", "NQ"])
        assert fixt_sim.appl_ver_ids == ["9"]  # our Logon announced FIX.5.0SP2
        assert {s.symbol for s in run.rec.of(BookSnapshot)} == {"ES", "NQ"}
        assert run.rec.of(BookUpdate) and run.rec.of(Quote)
        sent = set(fixt_sim.sent_trades("NQ"))
        got = [(t.price, t.size, t.side) for t in run.rec.of(Trade) if t.symbol == "NQ"]
        assert got and all(trade in sent for trade in got)
        assert run.hub.event_processor().get_stats().malformed_frames == 0
    # closing the hub logged out: the acceptor received our Logout and answered it
    await run.rec.wait_for(lambda: fixt_sim.session_count == 0, TIMEOUT, "the logout")
    assert fixt_sim.logouts == [""]
    (seq_file,) = list(tmp_path.glob("*.seqnums"))  # noqa: ASYNC240 - a test's tmp dir
    assert seq_file.name == "FIXT.1.1-HUB-VENUE.seqnums"
    ours, theirs = map(int, seq_file.read_text().split())
    store = fixt_sim.store_of("HUB")
    assert store is not None and (store.next_target, store.next_sender) == (ours, theirs)


async def test_fixt_session_continues_after_a_venue_logout(fixt_sim: FixSimulator) -> None:
    async with start(config(fixt_sim, ["ES"], options=FIXT)) as run:
        await run.trades_for(["ES"])
        mark = len(run.rec.events)
        fixt_sim.logout_all("end of FIXT session")
        await run.state(ConnectionState.RECONNECTING, mark)
        await run.trades_for(["ES"], len(run.rec.events))
    assert [reset for _, _, reset in fixt_sim.logons] == [False, False]
    assert fixt_sim.logons[1][1] > fixt_sim.logons[0][1]
    assert fixt_sim.appl_ver_ids == ["9", "9"]


async def test_a_fix44_client_gets_no_answer_from_a_fixt_venue(fixt_sim: FixSimulator) -> None:
    cfg = config(fixt_sim, ["ES"], options={"logon_timeout_s": 0.5})
    async with start(cfg, wait=False) as run:
        await run.state(ConnectionState.RECONNECTING)
        assert "no Logon reply within 0.5s" in run.rec.events[-1].reason
        await anyio.sleep(0.1)
    assert fixt_sim.logons == []


def test_the_fixt_acceptor_requires_the_application_version() -> None:
    """Sans-I/O: the acceptor sees 1137 in a FIXT.1.1 Logon, none in a FIX.4.4 one."""
    client = fs.FixSession(Header("FIXT.1.1", "HUB", "VENUE"))
    venue = fs.FixSession(Header("FIXT.1.1", "VENUE", ""), role="acceptor")
    venue.receive_data(client.logon())
    request = venue.next_event()
    assert isinstance(request, fs.LogonRequested)
    assert request.default_appl_ver_id == "9"
    assert "default_appl_ver_id='9'" in repr(request)
    # a FIX.4.4 Logon carries none
    venue44 = fs.FixSession(Header("FIX.4.4", "VENUE", ""), role="acceptor")
    venue44.receive_data(fs.FixSession(Header("FIX.4.4", "HUB", "VENUE")).logon())
    request44 = venue44.next_event()
    assert isinstance(request44, fs.LogonRequested) and request44.default_appl_ver_id is None


@pytest.mark.parametrize("appl_ver", [None, "7"])
async def test_the_fixt_simulator_refuses_a_logon_without_fix50sp2(
    fixt_sim: FixSimulator, appl_ver: str | None
) -> None:
    body: list[tuple[int, object]] = [(98, 0), (108, 30)]
    if appl_ver is not None:
        body.append((1137, appl_ver))
    logon = fix_message("A", 1, body, sender="HUB", target="VENUE", begin="FIXT.1.1")
    reply = b""
    async with await anyio.connect_tcp("127.0.0.1", fixt_sim.port) as stream:
        await stream.send(logon)
        with anyio.fail_after(TIMEOUT):
            try:
                while True:
                    reply += await stream.receive()
            except anyio.EndOfStream:
                pass
    assert reply.startswith(b"8=FIXT.1.1\x01") and b"\x0135=5\x01" in reply
    assert b"DefaultApplVerID (1137) must be 9 (FIX.5.0SP2)" in reply
    assert fixt_sim.logons == []
