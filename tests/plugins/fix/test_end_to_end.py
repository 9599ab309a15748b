"""The FIX plugin through a real ``ExchangeHub`` against its simulator on 127.0.0.1:
restart with persisted sequence numbers, reset on logon, reconnect with resubscribe
and ``Gap``, sequence gaps recovered through ResendRequest, refused logons without a
retry storm, per-symbol refusals, venue logout, unsubscribe, malformed input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import hub_plugin_fix
from hub_core import (
    BookSnapshot,
    ConnectionState,
    ExchangeConfig,
    ExchangeHub,
    Gap,
    SequenceMismatch,
    SubscriptionError,
    Trade,
    TypedEventBus,
)
from hub_core.registry import ExchangeRegistry
from hub_core.testing import EventRecorder
from hub_plugin_fix import connection as fix_connection
from hub_plugin_fix.connection import FixConnection, parse_endpoint
from hub_plugin_fix.factory import FixFactory
from hub_plugin_fix.options import FixOptions
from hub_plugin_fix.simulator import FixSimulator, demo_config

from .conftest import Collected

pytestmark = pytest.mark.anyio

NAME = "cme"
TIMEOUT = 10.0


def config(sim: FixSimulator, symbols: list[str], **kw: Any) -> ExchangeConfig:
    options = {"heartbeat_interval_s": 1, "logon_timeout_s": 2, **kw.pop("options", {})}
    defaults: dict[str, Any] = {
        "reconnect_delay_ms": 50,
        "reconnect_max_delay_ms": 200,
        "connect_timeout_ms": 3000,
    }
    defaults.update(kw)
    return ExchangeConfig.fix(NAME, sim.endpoint, symbols=symbols, options=options, **defaults)


class Running:
    def __init__(self, hub: ExchangeHub, rec: EventRecorder) -> None:
        self.hub = hub
        self.rec = rec

    async def trades_for(self, symbols: list[str], after: int = 0) -> None:
        def ok() -> bool:
            seen = {t.symbol for t in self.rec.events[after:] if isinstance(t, Trade)}
            return all(sym in seen for sym in symbols)

        await self.rec.wait_for(ok, TIMEOUT, f"trades of {symbols}")

    async def state(self, state: str, after: int = 0) -> None:
        await self.rec.wait_for(
            lambda: state in [getattr(e, "state", "") for e in self.rec.events[after:]],
            TIMEOUT,
            f"state {state}",
        )


@asynccontextmanager
async def start(cfg: ExchangeConfig, *, wait: bool = True) -> AsyncIterator[Running]:
    registry = ExchangeRegistry()
    registry.register(hub_plugin_fix, name="fix")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with ExchangeHub(bus, registry=registry) as hub:
        with anyio.fail_after(TIMEOUT):
            await hub.connect_exchange(NAME, cfg, wait=wait)
        yield Running(hub, rec)
    rec.close()


@pytest.fixture
async def sim() -> AsyncIterator[FixSimulator]:
    async with FixSimulator(["ES", "NQ"], rate=200, seed=3) as s:
        yield s


async def test_restart_continues_the_persisted_session(sim: FixSimulator, tmp_path: Path) -> None:
    cfg = config(sim, ["ES"], options={"store_path": str(tmp_path)})
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    (seq_file,) = list(tmp_path.glob("*.seqnums"))  # noqa: ASYNC240 - a test's tmp dir
    assert seq_file.name == "FIX.4.4-HUB-VENUE.seqnums"
    ours, theirs = map(int, seq_file.read_text().split())
    assert ours > 2 and theirs > 2
    # a new hub (a restarted process: new registry, new factory) continues the session
    async with start(cfg) as run:
        await run.trades_for(["ES"])
        assert [e for e in run.rec.of(Gap) if "sequence" in e.reason] == []
    assert [(sender, reset) for sender, _, reset in sim.logons] == [("HUB", False)] * 2
    assert sim.logons[1][1] == ours  # the Logon carried the stored number
    store = sim.store_of("HUB")
    assert store is not None and store.next_target > ours


async def test_reset_on_logon_starts_at_one(sim: FixSimulator, tmp_path: Path) -> None:
    (tmp_path / "FIX.4.4-HUB-VENUE.seqnums").write_text("57 91\n")
    cfg = config(sim, ["ES"], options={"store_path": str(tmp_path), "reset_on_logon": True})
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    assert sim.logons == [("HUB", 1, True)]


async def test_drop_reconnects_resubscribes_and_reports_the_gap(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES", "NQ"])) as run:
        await run.trades_for(["ES", "NQ"])
        first = len(sim.requests)
        mark = len(run.rec.events)
        await sim.drop_connections()
        await run.state(ConnectionState.RECONNECTING, mark)
        await run.state(ConnectionState.CONNECTED, mark)
        await run.trades_for(["ES", "NQ"], mark)
        gaps = [e for e in run.rec.events[mark:] if isinstance(e, Gap)]
        assert any("blind while reconnecting" in g.reason for g in gaps)
        again = sorted(sym for _, kind, sym in sim.requests[first:] if kind == "1")
        assert again == ["ES", "NQ"]
        # the session continued: no reset, the second Logon carried the next number
        assert [reset for _, _, reset in sim.logons] == [False, False]
        assert sim.logons[1][1] > sim.logons[0][1]


def _contiguous_in(got: list[tuple[int, int, str]], sent: list[tuple[int, int, str]]) -> bool:
    """``got`` appears in ``sent`` as one contiguous run: nothing lost, nothing doubled,
    nothing out of order (the receiver may have joined late)."""
    n = len(got)
    return n > 0 and any(sent[i : i + n] == got for i in range(len(sent) - n + 1))


async def test_withheld_messages_are_resent_and_nothing_is_lost(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES"])) as run:
        await run.trades_for(["ES"])
        mark = len(run.rec.events)
        sim.withhold(25)  # numbered and kept, not sent: the hub sees a gap
        await run.rec.wait_for(lambda: bool(sim.resend_requests), TIMEOUT, "a ResendRequest")
        begin, end = sim.resend_requests[0]
        assert end - begin + 1 == 25 and sim.withheld == 25
        await run.rec.wait_for(
            lambda: len(run.rec.of(Trade)) > 40,
            TIMEOUT,
            "trades after the resend",
        )
        await run.trades_for(["ES"], len(run.rec.events))
        # no Gap: the resend filled the hole, and every trade arrived once, in order
        assert [e for e in run.rec.events[mark:] if isinstance(e, Gap)] == []
        got = [(t.price, t.size, t.side) for t in run.rec.of(Trade) if t.symbol == "ES"]
        assert _contiguous_in(got, sim.sent_trades("ES"))
        assert run.hub.connection_status() == {NAME: True}


async def test_messages_numbered_on_a_dead_connection_are_resent_on_the_next(
    sim: FixSimulator,
) -> None:
    async with start(config(sim, ["ES"])) as run:
        await run.trades_for(["ES"])
        mark = len(run.rec.events)
        # everything from now on is numbered and kept, nothing sent: the hub has no
        # later message that would show it the gap on this connection
        sim.withhold(1_000_000)
        await run.rec.wait_for(lambda: sim.withheld >= 10, TIMEOUT, "10 messages withheld")
        await sim.drop_connections()  # the next connection withholds nothing
        await run.state(ConnectionState.RECONNECTING, mark)
        await run.state(ConnectionState.CONNECTED, mark)
        await run.trades_for(["ES"], len(run.rec.events))
        # the Logon reply showed the gap; the venue resent the real messages
        assert sim.resend_requests, "no ResendRequest after the reconnect"
        gaps = [e for e in run.rec.events[mark:] if isinstance(e, Gap)]
        assert [g for g in gaps if "sequence" in g.reason] == []
        assert any("blind while reconnecting" in g.reason for g in gaps)


async def test_messages_lost_for_good_publish_a_gap_and_resynchronise(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES"])) as run:
        await run.trades_for(["ES"])
        mark = len(run.rec.events)
        requests = len(sim.requests)
        await sim.skip_sequence(3)  # never made: the resend can only gap-fill them
        await run.rec.wait_for(
            lambda: any(isinstance(e, Gap) for e in run.rec.events[mark:]), TIMEOUT, "a Gap"
        )
        gap = next(e for e in run.rec.events[mark:] if isinstance(e, Gap))
        assert "sequence gap" in gap.reason and gap.end_seq - gap.start_seq == 2
        assert sim.resend_requests[0] == (gap.start_seq, gap.end_seq)
        # resynchronised: the request is made again and a fresh snapshot replaces the book
        await run.rec.wait_for(
            lambda: any(kind == "1" for _, kind, _ in sim.requests[requests:]),
            TIMEOUT,
            "a new MarketDataRequest",
        )
        assert [(kind, sym) for _, kind, sym in sim.requests[requests:]] == [
            ("2", "ES"),
            ("1", "ES"),
        ]
        after = len(run.rec.events)
        await run.rec.wait_for(
            lambda: any(isinstance(e, BookSnapshot) for e in run.rec.events[mark:]),
            TIMEOUT,
            "a new snapshot",
        )
        await run.trades_for(["ES"], after)
        assert run.hub.connection_status() == {NAME: True}


async def test_wrong_comp_ids_fail_once_without_a_retry_storm(sim: FixSimulator) -> None:
    cfg = config(sim, ["ES"], options={"target_comp_id": "SOMEONE_ELSE"})
    async with start(cfg, wait=False) as run:
        await run.state(ConnectionState.AUTH_FAILED)
        reason = next(e.reason for e in run.rec.events if e.state == ConnectionState.AUTH_FAILED)
        assert "SOMEONE_ELSE" in reason and "Logout" in reason
        await anyio.sleep(0.5)
        assert sim.connections_accepted == 1


async def test_rejected_logon_and_credentials(sim: FixSimulator) -> None:
    sim.users = {"alice": "s3cret"}
    async with start(config(sim, ["ES"]), wait=False) as run:
        await run.state(ConnectionState.AUTH_FAILED)
        assert "wrong password" in run.rec.events[-1].reason
    from hub_core import Credentials

    good = config(sim, ["ES"], credentials=Credentials("alice", "s3cret"))
    async with start(good) as run:
        await run.trades_for(["ES"])
    sim.reject_logons("closed for maintenance")
    async with start(good, wait=False) as run:
        await run.state(ConnectionState.AUTH_FAILED)
        assert "closed for maintenance" in run.rec.events[-1].reason
        assert "s3cret" not in run.rec.events[-1].reason


async def test_refused_credentials_and_symbols(sim: FixSimulator) -> None:
    await sim.refuse_credentials()
    async with start(config(sim, ["ES"]), wait=False) as run:
        await run.state(ConnectionState.AUTH_FAILED)
        assert "credentials refused" in run.rec.events[-1].reason
    await sim.refuse_credentials(False)
    await sim.refuse_symbol("NQ")
    async with start(config(sim, ["ES"])) as run:
        with pytest.raises(SubscriptionError, match=r"'NQ'.*unknown symbol"):
            await run.hub.subscribe_market_data(NAME, ["NQ"])
        await run.trades_for(["ES"])
        await sim.refuse_symbol("NQ", on=False)
        await run.hub.subscribe_market_data(NAME, ["NQ"])
        await run.trades_for(["NQ"], len(run.rec.events))


async def test_a_venue_that_hangs_up_on_logon_is_retried_not_refused() -> None:
    # a venue outside its session hours accepts TCP and hangs up on the Logon: transient
    accepted = 0

    async def hang_up(stream: Any) -> None:
        nonlocal accepted
        accepted += 1
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hang_up)
        cfg = ExchangeConfig.fix(
            NAME,
            f"fix://127.0.0.1:{port}",
            symbols=["ES"],
            reconnect_delay_ms=20,
            reconnect_max_delay_ms=40,
        )
        async with start(cfg, wait=False) as run:
            await run.rec.wait_for(lambda: accepted >= 5, TIMEOUT * 3, "five Logon attempts")
            states = [getattr(e, "state", "") for e in run.rec.events]
            assert ConnectionState.AUTH_FAILED not in states
            assert ConnectionState.DEAD not in states
            reasons = [getattr(e, "reason", "") for e in run.rec.events]
            assert any("times in a row" in r and "session hours" in r for r in reasons)
        tg.cancel_scope.cancel()


async def _connect(cfg: ExchangeConfig, collected: Collected) -> FixConnection:
    conn = FixFactory().create(cfg, collected.sink)  # a new factory: a restarted hub
    assert isinstance(conn, FixConnection)
    with anyio.fail_after(TIMEOUT):
        await conn.connect(cfg.endpoint)
    return conn


async def test_two_hub_runs_in_a_row_continue_the_session_by_default(
    sim: FixSimulator, state_dir: Path
) -> None:
    cfg = config(sim, ["ES"])  # no store_path, no reset_on_logon: the defaults
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    async with start(cfg) as run:
        await run.trades_for(["ES"])
        assert run.hub.connection_status() == {NAME: True}
    # one file per session and venue address, in the per-user state directory
    (seq_file,) = state_dir.glob("*.seqnums")  # noqa: ASYNC240 - a test's tmp dir
    assert seq_file.name == f"FIX.4.4-HUB-VENUE-127.0.0.1_{sim.port}.seqnums"
    assert [reset for _, _, reset in sim.logons] == [False, False]
    assert sim.logons[1][1] > sim.logons[0][1] > 0


async def test_a_venue_that_reset_its_numbers_is_a_sequence_mismatch(
    sim: FixSimulator, state_dir: Path, collected: Collected
) -> None:
    cfg = config(sim, ["ES"])
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    store = sim.store_of("HUB")
    assert store is not None
    seq_file = next(state_dir.glob("*.seqnums"))  # noqa: ASYNC240 - a test's tmp dir
    ours, theirs = map(int, seq_file.read_text().split())
    store.next_sender, store.next_target = 1, ours  # the venue restarted its numbers
    with pytest.raises(SequenceMismatch) as err:
        await _connect(cfg, collected)
    text = str(err.value)
    assert f"MsgSeqNum {theirs}" in text and "received 1" in text
    assert str(state_dir) in text and "reset_on_logon = true" in text
    assert "CompID" not in text and "password" not in text


async def test_through_the_hub_a_sequence_mismatch_stops_the_connection(
    sim: FixSimulator,
) -> None:
    cfg = config(sim, ["ES"], options={"store_path": ":memory:"})
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    async with start(cfg, wait=False) as run:  # a restarted hub without its numbers
        await run.state(ConnectionState.DEAD)
        reason = [e for e in run.rec.events if getattr(e, "state", "") == "dead"][-1].reason
        assert "MsgSeqNum too low" in reason and "reset_on_logon = true" in reason
        await anyio.sleep(0.5)
        assert len(sim.logons) == 1  # one refused attempt, no retry storm
        assert sim.connections_accepted == 2


async def test_a_hub_that_lost_its_numbers_is_a_sequence_mismatch(
    sim: FixSimulator, collected: Collected
) -> None:
    cfg = config(sim, ["ES"], options={"store_path": ":memory:"})
    async with start(cfg) as run:
        await run.trades_for(["ES"])
    store = sim.store_of("HUB")
    assert store is not None and store.next_target > 2
    # a new process, numbers in memory: our Logon carries 1, the venue wants more
    with pytest.raises(SequenceMismatch) as err:
        await _connect(cfg, collected)
    text = str(err.value)
    assert f"expecting {store.next_target} but received 1" in text
    assert "in memory" in text and "reset_on_logon = true" in text


async def test_unknown_symbol_is_refused_by_name_others_flow(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES"])) as run:
        with pytest.raises(SubscriptionError, match=r"'ZZTOP'.*unknown symbol"):
            await run.hub.subscribe_market_data(NAME, ["ZZTOP", "NQ"])
        await run.trades_for(["ES", "NQ"])


async def test_venue_logout_is_followed_by_a_new_logon(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES"])) as run:
        await run.trades_for(["ES"])
        mark = len(run.rec.events)
        sim.logout_all("end of session")
        await run.state(ConnectionState.RECONNECTING, mark)
        reason = next(
            e.reason
            for e in run.rec.events[mark:]
            if getattr(e, "state", "") == ConnectionState.RECONNECTING
        )
        assert "end of session" in reason
        await run.trades_for(["ES"], len(run.rec.events))
        assert len(sim.logons) == 2


async def test_unsubscribe_disables_the_request(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES", "NQ"])) as run:
        await run.trades_for(["ES", "NQ"])
        await run.hub.unsubscribe_market_data(NAME, ["ES"])
        await run.rec.wait_for(
            lambda: any(kind == "2" and sym == "ES" for _, kind, sym in sim.requests),
            TIMEOUT,
            "263=2 for ES",
        )
        stop_id = next(rid for rid, kind, sym in sim.requests if kind == "2")
        start_id = next(rid for rid, kind, sym in sim.requests if kind == "1" and sym == "ES")
        assert stop_id == start_id
        assert sim.subscriptions() == [{"NQ"}]


@pytest.mark.parametrize("kind", ["garbage", "body_length", "checksum"])
async def test_malformed_input_is_counted_and_the_feed_goes_on(
    sim: FixSimulator, kind: str
) -> None:
    async with start(config(sim, ["ES"])) as run:
        await run.trades_for(["ES"])
        await sim.send_malformed(kind)
        await run.rec.wait_for(
            lambda: run.hub.event_processor().get_stats().malformed_frames >= 1,
            TIMEOUT,
            "the malformed message to be counted",
        )
        await run.trades_for(["ES"], len(run.rec.events))
        assert run.hub.connection_status() == {NAME: True}


async def test_snapshot_then_increments_make_a_consistent_book(sim: FixSimulator) -> None:
    async with start(config(sim, ["ES"], options={"market_depth": 3})) as run:
        await run.trades_for(["ES"])
        (snap, *_) = run.rec.of(BookSnapshot)
        assert len(snap.bids) == 3 and len(snap.asks) == 3
        assert snap.bids[0][0] < snap.asks[0][0]


def test_endpoints() -> None:
    assert parse_endpoint("fix://127.0.0.1:9878").tls is False
    tls = parse_endpoint("fixs://venue.example:443")
    assert (tls.host, tls.port, tls.tls) == ("venue.example", 443, True)
    assert parse_endpoint("[::1]:5001").host == "::1"
    for bad in ("http://x:1", "fix://x", "fix://x:0", "fix://::1:5"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


def test_options() -> None:
    opts = FixOptions.model_validate({"entry_types": ["Trade", "0", "trade"]})
    assert opts.entry_types == ["2", "0"]
    assert FixOptions().entry_types == ["0", "1", "2"]
    with pytest.raises(ValueError, match="unknown entry type"):
        FixOptions.model_validate({"entry_types": ["volume"]})
    with pytest.raises(ValueError):
        FixOptions.model_validate({"begin_string": "FIX.4.0"})
    with pytest.raises(ValueError):
        FixOptions.model_validate({"sender_comp_id": "has space"})
    with pytest.raises(ValueError):
        FixOptions.model_validate({"unknown_key": 1})


def test_factory_shape() -> None:
    spec = FixFactory().simulator()
    cfg = spec.demo_config("127.0.0.1:5001", ["ES"])
    assert cfg.endpoint == "fix://127.0.0.1:5001" and cfg.protocol == "fix"
    assert demo_config("fix://[::1]:7", []).endpoint == "fix://[::1]:7"
    FixOptions.model_validate(cfg.options)


def test_simulator_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FixSimulator(host="0.0.0.0")


def test_hub_sim_fix_prints_where_it_listens() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "hub_core.cli", "sim", "fix", "--port", "0", "--symbols", "ES"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("listening on 127.0.0.1:")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def endless_subscribe_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """``subscribe()`` would wait an hour for data or a refusal: a call that returns
    within the tests' bounds returned because of the venue's answer, not a timer."""
    monkeypatch.setattr(fix_connection, "SUBSCRIBE_WAIT_S", 3600.0)


@pytest.mark.usefixtures("endless_subscribe_wait")
async def test_subscribe_returns_once_data_arrives(sim: FixSimulator) -> None:
    # trades only: the snapshot has no entries, the first trades come later
    async with start(config(sim, [], options={"entry_types": ["trade"]})) as run:
        with anyio.fail_after(TIMEOUT * 3):
            await run.hub.subscribe_market_data(NAME, ["ES"])
        await run.trades_for(["ES"])
        assert not run.rec.of(BookSnapshot) or all(
            s.bids == () and s.asks == () for s in run.rec.of(BookSnapshot)
        )


@pytest.mark.usefixtures("endless_subscribe_wait")
async def test_a_reject_of_our_market_data_request_fails_that_subscription() -> None:
    """A venue that answers 35=V with a session-level Reject (35=3, RefSeqNum = the V's)."""
    from hub_plugin_fix import session as fs
    from hub_plugin_fix.messages import Header

    async def venue(stream: Any) -> None:
        session = fs.FixSession(Header("FIX.4.4", "VENUE", ""), role="acceptor")
        async with stream:
            while True:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    return
                session.receive_data(data)
                while not isinstance(event := session.next_event(), fs.NeedData):
                    if isinstance(event, fs.LogonRequested):
                        await stream.send(session.accept_logon())
                    elif isinstance(event, fs.AppMessage) and event.frame.msg_type == "V":
                        m = session.new_message("3")
                        for tag, value in ((45, event.frame.seq), (371, 264), (372, "V"),
                                           (373, 5), (58, "depth not supported")):  # fmt: skip
                            m.append_pair(tag, value)
                        await stream.send(m.encode())
                    elif isinstance(event, fs.ConnectionClosed | fs.LoggedOut):
                        await stream.send(session.data_to_send())
                        return
                await stream.send(session.data_to_send())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, venue)
        cfg = ExchangeConfig.fix(NAME, f"fix://127.0.0.1:{port}", options={"logon_timeout_s": 2})
        async with start(cfg) as run:
            with (
                anyio.fail_after(TIMEOUT * 3),
                pytest.raises(SubscriptionError, match=r"'ES'.*tag 264.*depth not supported"),
            ):
                await run.hub.subscribe_market_data(NAME, ["ES"])
        tg.cancel_scope.cancel()


def test_the_factory_checks_endpoints_before_any_dial() -> None:
    factory = FixFactory()
    factory.check_endpoint("fix://127.0.0.1:9878")
    factory.check_endpoint("fixs://[::1]:9878")
    for bad in ("http://127.0.0.1:9878", "fix://127.0.0.1", "fix://::1:9878", "fix://h:0"):
        with pytest.raises(ValueError):
            factory.check_endpoint(bad)
