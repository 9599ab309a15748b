"""Every transition of the sans-I/O session layer, without sockets or sleeping: logon and
its refusals, heartbeats and test requests on a fake clock, sequence gaps, duplicates,
resend requests answered with gap fills, sequence resets both ways, rejects, logout both
ways, the file store, and an initiator talking to an acceptor in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub_core import ConfigError, Trade
from hub_plugin_fix import session as s
from hub_plugin_fix.marketdata import MarketDataDecoder
from hub_plugin_fix.messages import Header
from hub_plugin_fix.scanner import Frame, scan_messages
from hub_plugin_fix.store import FileStore, MemoryStore, session_file_name
from tests.plugins.fix.conftest import Collected, fix_message, incremental

HEADER = Header("FIX.4.4", "HUB", "VENUE")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_session(
    collected: Collected | None = None, clock: Clock | None = None, **kw: Any
) -> s.FixSession:
    md = MarketDataDecoder(collected.sink) if collected is not None else None
    return s.FixSession(
        HEADER,
        heartbeat_s=kw.pop("heartbeat_s", 10),
        market_data=md,
        monotonic=clock or Clock(),
        wall_ns=lambda: 1_700_000_000_000_000_000,
        **kw,
    )


def drain(session: s.FixSession) -> list[object]:
    out: list[object] = []
    for _ in range(10_000):
        event = session.next_event()
        if isinstance(event, s.NeedData):
            return out
        out.append(event)
    raise AssertionError("next_event() never asked for data")


def sent(data: bytes) -> list[Frame]:
    frames = scan_messages(data)
    assert b"".join(f.raw() for f in frames) == data, "we sent something that is not FIX"
    return frames


def logged_on(
    collected: Collected | None = None, clock: Clock | None = None, **kw: Any
) -> s.FixSession:
    session = new_session(collected, clock, **kw)
    session.logon()
    session.receive_data(fix_message("A", 1, [(98, 0), (108, 10)]))
    events = drain(session)
    assert events == [s.LoggedOn(10, False)]
    return session


# -- logon ----------------------------------------------------------------------------------
def test_logon_carries_interval_credentials_and_reset() -> None:
    session = new_session(username="alice", password="s3cret", reset_on_logon=True, heartbeat_s=7)
    session.store.next_sender = 40  # a reset starts again at 1
    (logon,) = sent(session.logon())
    assert session.state == s.State.LOGON_SENT
    assert logon.msg_type == "A"
    assert logon.seq == 1
    assert logon.get(108) == b"7"
    assert logon.get(141) == b"Y"
    assert (logon.get(553), logon.get(554)) == (b"alice", b"s3cret")
    assert (logon.get(49), logon.get(56)) == (b"HUB", b"VENUE")
    assert logon.get(98) == b"0"


def test_fixt_logon_announces_the_application_version() -> None:
    session = s.FixSession(Header("FIXT.1.1", "HUB", "VENUE"))
    (logon,) = sent(session.logon())
    assert logon.get(1137) == b"9"
    assert logon.buf.startswith(b"8=FIXT.1.1\x01")


def test_logon_reply_takes_the_venues_interval() -> None:
    session = new_session(heartbeat_s=30)
    session.logon()
    session.receive_data(fix_message("A", 1, [(98, 0), (108, 5)]))
    assert drain(session) == [s.LoggedOn(5, False)]
    assert session.heartbeat_s == 5
    assert session.state == s.State.ACTIVE
    assert session.expected_seq == 2


@pytest.mark.parametrize(
    "reply, why",
    [
        (fix_message("5", 1, [(58, "bad password")]), "Logout: bad password"),
        (fix_message("3", 1, [(45, 1), (373, 9), (58, "who?")]), "CompID problem"),
        (fix_message("0", 1, []), "expected a Logon"),
        (fix_message("A", 1, [(108, 10)], sender="OTHER"), "49=OTHER"),
        (fix_message("A", 1, [(108, 10)], target="NOTME"), "56=NOTME"),
    ],
)
def test_refused_logons(reply: bytes, why: str) -> None:
    session = new_session()
    session.logon()
    session.receive_data(reply)
    events = drain(session)
    assert len(events) == 1
    assert isinstance(events[0], s.LogonRejected)
    assert why in events[0].reason
    assert events[0].sequence is None  # a refusal, not a sequence problem
    assert session.state in (s.State.CLOSED, s.State.FAILED)


@pytest.mark.parametrize(
    "text, numbers",
    [
        ("MsgSeqNum too low, expecting 4 but received 1", (4, 1)),  # QuickFIX's words
        ("MsgSeqNum too low", (0, 7)),  # the received one is our Logon's
        ("Sequence number mismatch: expected 12, got 7", (12, 7)),
    ],
)
def test_a_logout_about_sequence_numbers_is_a_sequence_problem(
    text: str, numbers: tuple[int, int]
) -> None:
    store = MemoryStore()
    store.next_sender = 7
    session = new_session(store=store)
    session.logon()
    session.receive_data(fix_message("5", 1, [(58, text)]))
    (event,) = drain(session)
    assert isinstance(event, s.LogonRejected)
    assert event.sequence == numbers


def test_logon_reply_below_the_stored_sequence_is_refused() -> None:
    store = MemoryStore()
    store.next_target = 50
    session = new_session(store=store)
    session.logon()
    session.receive_data(fix_message("A", 3, [(108, 10)]))
    (event,) = drain(session)
    assert isinstance(event, s.LogonRejected)
    assert "below the 50 expected" in event.reason
    assert event.sequence == (50, 3)
    (logout,) = sent(session.data_to_send())
    assert logout.msg_type == "5"
    assert b"MsgSeqNum too low" in (logout.get(58) or b"")


def test_logon_reply_above_the_expected_sequence_asks_for_a_resend() -> None:
    session = new_session()
    session.logon()
    session.receive_data(fix_message("A", 5, [(108, 10)]))
    assert drain(session) == [s.LoggedOn(10, False), s.SequenceGap(1, 5)]
    (resend,) = sent(session.data_to_send())
    assert resend.msg_type == "2"
    assert (resend.get(7), resend.get(16)) == (b"1", b"4")
    # the Logon (5) is done; 1..4 are awaited before anything above them is processed
    assert session.recovering and session.expected_seq == 1
    session.receive_data(fix_message("4", 1, [(123, "Y"), (36, 5)], poss_dup=True))
    (lost,) = drain(session)
    assert isinstance(lost, s.GapUnrecovered) and (lost.start, lost.end) == (1, 4)
    assert session.expected_seq == 6 and not session.recovering


def test_venue_reset_in_the_reply_restarts_both_sides() -> None:
    store = MemoryStore()
    store.next_sender, store.next_target = 30, 40
    session = new_session(store=store)
    session.logon()
    session.receive_data(fix_message("A", 1, [(108, 10), (141, "Y")]))
    assert drain(session) == [s.LoggedOn(10, True)]
    assert session.expected_seq == 2
    assert session.next_sender_seq == 2


def test_data_before_logon_fails_the_session() -> None:
    session = new_session()
    session.receive_data(fix_message("0", 1, []))
    (event,) = drain(session)
    assert isinstance(event, s.SessionFailed)


# -- timers -----------------------------------------------------------------------------------
def test_heartbeat_when_we_were_quiet() -> None:
    clock = Clock()
    session = logged_on(clock=clock)
    clock.now += 9.9
    session.tick()
    assert session.data_to_send() == b""
    clock.now += 0.2
    session.receive_data(fix_message("0", 2, []))  # the peer is not quiet
    session.tick()
    (hb,) = sent(session.data_to_send())
    assert hb.msg_type == "0" and hb.get(112) is None
    assert 0 < session.next_timeout() <= 10


def test_test_request_on_silence_then_failure() -> None:
    clock = Clock()
    session = logged_on(clock=clock)
    clock.now += 10 * s.TEST_REQUEST_FACTOR + 0.01
    session.tick()
    msgs = sent(session.data_to_send())
    assert [m.msg_type for m in msgs] == ["1"]  # it also counts as our heartbeat
    assert msgs[0].get(112)
    clock.now += 10.01
    session.tick()
    (event,) = drain(session)
    assert isinstance(event, s.SessionFailed)
    assert "TestRequest" in event.reason
    assert session.state == s.State.FAILED


def test_an_answer_clears_the_test_request() -> None:
    clock = Clock()
    session = logged_on(clock=clock)
    clock.now += 12.5
    session.tick()
    test_id = sent(session.data_to_send())[0].get(112)
    clock.now += 1
    session.receive_data(fix_message("0", 2, [(112, (test_id or b"").decode())]))
    assert drain(session) == []
    clock.now += 9.5
    session.tick()
    assert session.state == s.State.ACTIVE
    assert all(m.msg_type != "1" for m in sent(session.data_to_send()))


def test_probe_sends_a_test_request() -> None:
    session = logged_on()
    (tr,) = sent(session.test_request())
    assert tr.msg_type == "1" and tr.get(112)


def test_inbound_test_request_is_answered_with_its_id() -> None:
    session = logged_on()
    session.receive_data(fix_message("1", 2, [(112, "ping-7")]))
    assert drain(session) == []
    (hb,) = sent(session.data_to_send())
    assert hb.msg_type == "0" and hb.get(112) == b"ping-7"


# -- sequence numbers ---------------------------------------------------------------------------
def test_market_data_in_sequence_reaches_the_sink(collected: Collected) -> None:
    session = logged_on(collected)
    trade = [(279, 0), (269, 2), (55, "ES"), (270, "10.5"), (271, 2)]
    session.receive_data(incremental(2, [trade]) + incremental(3, [trade]))
    assert drain(session) == []
    assert [t.price for t in collected.of(Trade)] == [10_500_000_000] * 2
    assert session.expected_seq == 4


TRADE_AT = [(279, 0), (269, 2), (55, "ES"), (271, 1)]


def trade_msg(seq: int, price: int, **kw: Any) -> bytes:
    return incremental(seq, [[*TRADE_AT, (270, str(price))]], **kw)


def prices(collected: Collected) -> list[int]:
    return [t.price // 1_000_000_000 for t in collected.of(Trade)]


def test_messages_above_a_gap_wait_for_the_resend_then_all_go_in_order(
    collected: Collected,
) -> None:
    session = logged_on(collected)
    session.receive_data(trade_msg(5, 5) + trade_msg(6, 6))
    assert drain(session) == [s.SequenceGap(2, 5)]
    assert prices(collected) == []  # held: applied out of order they would corrupt books
    assert session.recovering and session.held == 2
    (resend,) = sent(session.data_to_send())
    assert (resend.msg_type, resend.get(7), resend.get(16)) == ("2", b"2", b"4")
    # the resend, in two reads: 2 and 3, then 4 (PossDupFlag=Y)
    session.receive_data(trade_msg(2, 2, poss_dup=True) + trade_msg(3, 3, poss_dup=True))
    assert drain(session) == []
    assert prices(collected) == [2, 3]
    session.receive_data(trade_msg(4, 4, poss_dup=True))
    assert drain(session) == []
    assert prices(collected) == [2, 3, 4, 5, 6]
    assert session.expected_seq == 7 and not session.recovering and session.held == 0
    assert session.recovered == 3
    # in sequence again: the fast path goes on, and a late duplicate is ignored
    session.receive_data(trade_msg(7, 7) + trade_msg(3, 3, poss_dup=True))
    assert drain(session) == []
    assert prices(collected) == [2, 3, 4, 5, 6, 7]
    assert session.duplicates_ignored == 1


def test_a_gap_filled_instead_of_resent_is_reported_lost(collected: Collected) -> None:
    session = logged_on(collected)
    session.receive_data(trade_msg(5, 5))
    assert drain(session) == [s.SequenceGap(2, 5)]
    session.data_to_send()
    session.receive_data(trade_msg(2, 2, poss_dup=True))
    session.receive_data(fix_message("4", 3, [(123, "Y"), (36, 5)], poss_dup=True))
    (lost,) = drain(session)
    assert isinstance(lost, s.GapUnrecovered) and (lost.start, lost.end) == (3, 4)
    assert "gap-filled" in lost.reason
    assert prices(collected) == [2, 5]


def test_a_resend_that_never_comes_is_given_up_after_the_timeout(collected: Collected) -> None:
    clock = Clock()
    session = logged_on(collected, clock)
    session.receive_data(trade_msg(5, 5) + trade_msg(6, 6))
    assert drain(session) == [s.SequenceGap(2, 5)]
    assert session.next_timeout() <= 20.0  # the resend deadline is on the timer
    clock.now += 19.0
    session.receive_data(fix_message("0", 7, []))  # heartbeats keep coming, held too
    session.tick()
    assert drain(session) == []
    assert prices(collected) == []
    clock.now += 2.0  # 2 heartbeat intervals (10 s) since the gap
    session.tick()
    (lost,) = drain(session)
    assert isinstance(lost, s.GapUnrecovered) and (lost.start, lost.end) == (2, 4)
    assert "no resend" in lost.reason
    assert prices(collected) == [5, 6] and session.expected_seq == 8


def test_too_many_held_messages_give_the_gap_up(
    collected: Collected, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s, "MAX_HELD", 3)
    session = logged_on(collected)
    session.receive_data(b"".join(trade_msg(n, n) for n in (5, 6, 7)))
    assert drain(session) == [s.SequenceGap(2, 5)]
    assert session.held == 3
    session.receive_data(trade_msg(8, 8))
    (lost,) = drain(session)
    assert isinstance(lost, s.GapUnrecovered) and (lost.start, lost.end) == (2, 4)
    assert "3 messages held" in lost.reason
    assert prices(collected) == [5, 6, 7, 8] and not session.recovering
    # the resend arriving late changes nothing: duplicates
    session.receive_data(trade_msg(2, 2, poss_dup=True))
    assert drain(session) == [] and prices(collected) == [5, 6, 7, 8]


def test_a_second_hole_among_the_held_messages_is_asked_for_too(collected: Collected) -> None:
    session = logged_on(collected)
    session.receive_data(trade_msg(4, 4) + trade_msg(7, 7))
    assert drain(session) == [s.SequenceGap(2, 4)]
    session.data_to_send()
    session.receive_data(trade_msg(2, 2, poss_dup=True) + trade_msg(3, 3, poss_dup=True))
    assert drain(session) == [s.SequenceGap(5, 7)]
    (resend,) = sent(session.data_to_send())
    assert (resend.get(7), resend.get(16)) == (b"5", b"6")
    session.receive_data(trade_msg(5, 5, poss_dup=True) + trade_msg(6, 6, poss_dup=True))
    assert drain(session) == []
    assert prices(collected) == [2, 3, 4, 5, 6, 7]


def test_a_resend_request_resends_our_market_data_requests() -> None:
    session = logged_on()
    session.market_data_request("r1", "ES")  # 2
    session.test_request()  # 3: administrative, gap-filled
    session.market_data_request("r2", "NQ", depth=1)  # 4
    session.receive_data(fix_message("2", 2, [(7, 2), (16, 0)]))
    assert drain(session) == []
    again = sent(session.data_to_send())
    assert [(f.msg_type, f.seq) for f in again] == [("V", 2), ("4", 3), ("V", 4)]
    first, fill, second = again
    assert first.poss_dup and first.get(122) is not None and first.get(52) is not None
    assert (first.get(262), first.get(55), first.get(263)) == (b"r1", b"ES", b"1")
    assert (second.get(262), second.get(55), second.get(264)) == (b"r2", b"NQ", b"1")
    assert (fill.get(123), fill.get(36)) == (b"Y", b"4")
    assert session.resent == 2 and session.next_sender_seq == 5


def test_gap_fill_in_sequence_moves_the_expected_number() -> None:
    session = logged_on()
    session.receive_data(fix_message("4", 2, [(123, "Y"), (36, 9)]))
    assert drain(session) == []
    assert session.expected_seq == 9


def test_sequence_reset_mode_ignores_msg_seq_num() -> None:
    session = logged_on()
    session.receive_data(fix_message("4", 77, [(36, 20)]))
    assert drain(session) == []
    assert session.expected_seq == 20
    session.receive_data(fix_message("4", 1, [(123, "N"), (36, 5)]))
    assert drain(session) == []
    assert session.expected_seq == 20
    (reject,) = sent(session.data_to_send())
    assert reject.msg_type == "3" and reject.get(371) == b"36"


def test_too_low_without_poss_dup_breaks_the_session() -> None:
    session = logged_on()
    session.receive_data(fix_message("0", 2, []) + fix_message("0", 2, []))
    (event,) = drain(session)
    assert isinstance(event, s.SessionFailed)
    assert "MsgSeqNum too low, expecting 3 but received 2" in event.reason
    (logout,) = sent(session.data_to_send())
    assert logout.msg_type == "5"


def test_resend_request_is_answered_with_one_gap_fill() -> None:
    session = logged_on()
    session.test_request()
    session.test_request()  # our numbers 2 and 3 are used; the next is 4
    session.receive_data(fix_message("2", 2, [(7, 1), (16, 0)]))
    assert drain(session) == []
    (fill,) = sent(session.data_to_send())
    assert fill.msg_type == "4"
    assert fill.seq == 1
    assert fill.poss_dup
    assert (fill.get(123), fill.get(36)) == (b"Y", b"4")
    assert fill.get(122) is not None  # OrigSendingTime goes with PossDupFlag
    assert session.next_sender_seq == 4  # a gap fill takes no number of its own


def test_missing_msg_seq_num_is_rejected() -> None:
    session = logged_on()
    data = fix_message("0", 1, []).replace(b"34=1\x01", b"")
    # fix the framing of the hand-edited message
    body = data[data.index(b"35=") : data.index(b"10=")]
    msg = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    msg += b"10=%03d\x01" % (sum(msg) % 256)
    session.receive_data(msg)
    (event,) = drain(session)
    assert isinstance(event, s.Malformed)
    (reject,) = sent(session.data_to_send())
    assert reject.msg_type == "3" and reject.get(371) == b"34"


def test_wrong_comp_ids_mid_session_fail_it() -> None:
    session = logged_on()
    session.receive_data(fix_message("0", 2, [], sender="EVIL"))
    (event,) = drain(session)
    assert isinstance(event, s.SessionFailed)
    assert [m.msg_type for m in sent(session.data_to_send())] == ["3", "5"]


def test_garbled_message_is_malformed_and_the_next_one_shows_the_gap() -> None:
    session = logged_on()
    good = fix_message("0", 2, [])
    bad = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
    session.receive_data(bad + fix_message("0", 3, []))
    events = drain(session)
    assert isinstance(events[0], s.Malformed)
    assert events[1:] == [s.SequenceGap(2, 3)]


# -- rejects and application messages -----------------------------------------------------------
def test_reject_names_the_offending_tag() -> None:
    session = logged_on()
    session.receive_data(
        fix_message("3", 2, [(45, 3), (371, 264), (372, "V"), (373, 5), (58, "depth")])
    )
    (event,) = drain(session)
    assert event == s.SessionReject(
        3, 264, "V", "5 (value is incorrect (out of range) for this tag)", "depth"
    )
    assert "tag 264" in event.describe() and "35=V" in event.describe()


def test_business_reject() -> None:
    session = logged_on()
    session.receive_data(fix_message("j", 2, [(45, 3), (372, "V"), (379, "r9"), (380, 3)]))
    (event,) = drain(session)
    assert isinstance(event, s.BusinessReject)
    assert event.ref_id == "r9" and "unsupported message type" in event.describe()


def test_market_data_request_and_its_rejection() -> None:
    session = logged_on()
    (req,) = sent(session.market_data_request("r1", "ES Z5", depth=5, entry_types=["0", "2"]))
    fields = req.fields()
    assert req.msg_type == "V"
    assert (req.get(262), req.get(263), req.get(264), req.get(265)) == (b"r1", b"1", b"5", b"1")
    assert [v for t, v in fields if t == 269] == [b"0", b"2"]
    assert req.get(267) == b"2" and req.get(146) == b"1" and req.get(55) == b"ES Z5"
    (stop,) = sent(session.market_data_request("r1", "ES Z5", subscribe=False))
    assert stop.get(263) == b"2" and stop.get(262) == b"r1"
    session.receive_data(fix_message("Y", 2, [(262, "r1"), (281, 0), (58, "no such")]))
    assert drain(session) == [s.MarketDataRejected("r1", "0 (unknown symbol)", "no such")]


def test_other_application_messages_are_returned() -> None:
    session = logged_on()
    session.receive_data(fix_message("B", 2, [(148, "news")]))
    (event,) = drain(session)
    assert isinstance(event, s.AppMessage) and event.frame.get(148) == b"news"


def test_requests_need_an_active_session() -> None:
    session = new_session()
    with pytest.raises(RuntimeError):
        session.market_data_request("r", "ES")
    with pytest.raises(RuntimeError):
        session.test_request()


# -- logout ------------------------------------------------------------------------------------
def test_logout_by_us() -> None:
    session = logged_on()
    (logout,) = sent(session.logout("bye"))
    assert logout.msg_type == "5" and logout.get(58) == b"bye"
    assert session.state == s.State.LOGOUT_SENT
    assert session.logout() == b""  # once
    session.receive_data(fix_message("5", 2, []))
    assert drain(session) == [s.LoggedOut("", by_peer=False)]
    assert session.state == s.State.CLOSED
    assert session.data_to_send() == b""


def test_logout_by_the_peer_is_answered() -> None:
    session = logged_on()
    session.receive_data(fix_message("5", 2, [(58, "end of day")]))
    assert drain(session) == [s.LoggedOut("end of day", by_peer=True)]
    (answer,) = sent(session.data_to_send())
    assert answer.msg_type == "5"
    assert session.state == s.State.CLOSED


def test_end_of_stream() -> None:
    session = logged_on()
    session.receive_data(b"")
    assert drain(session) == [s.ConnectionClosed()]
    assert session.state == s.State.CLOSED


# -- the store ------------------------------------------------------------------------------------
def test_file_store_round_trip_and_restart(tmp_path: Path) -> None:
    name = session_file_name("FIX.4.4", "HUB", "VEN/UE")
    assert "/" not in name
    store = FileStore(tmp_path / "seq", name)
    assert (store.next_sender, store.next_target) == (1, 1)
    session = new_session(store=store)
    session.logon()
    session.receive_data(fix_message("A", 1, [(108, 10)]) + fix_message("0", 2, []))
    drain(session)
    # our number is on disk before the message leaves; theirs when the connection flushes
    assert (tmp_path / "seq" / name).read_text() == "2 1\n"
    session.flush_store()
    assert (tmp_path / "seq" / name).read_text() == "2 3\n"
    again = new_session(store=FileStore(tmp_path / "seq", name))
    (logon,) = sent(again.logon())
    assert logon.seq == 2
    assert again.expected_seq == 3
    reset = new_session(store=FileStore(tmp_path / "seq", name), reset_on_logon=True)
    (logon,) = sent(reset.logon())
    assert logon.seq == 1 and logon.get(141) == b"Y"
    assert (tmp_path / "seq" / name).read_text() == "2 1\n"


def test_file_store_refuses_a_damaged_file(tmp_path: Path) -> None:
    (tmp_path / "x.seqnums").write_text("banana\n")
    with pytest.raises(ConfigError, match="two sequence numbers"):
        FileStore(tmp_path, "x.seqnums")


# -- initiator <-> acceptor in memory ---------------------------------------------------------
def test_initiator_and_acceptor_talk(collected: Collected) -> None:
    clock = Clock()
    hub = new_session(collected, clock)
    venue = s.FixSession(Header("FIX.4.4", "VENUE", ""), role="acceptor", monotonic=clock)
    venue.receive_data(hub.logon())
    (req,) = drain(venue)
    assert isinstance(req, s.LogonRequested)
    assert (req.sender_comp_id, req.target_comp_id, req.heartbeat_s) == ("HUB", "VENUE", 10)
    assert "s3cret" not in repr(req)
    hub.receive_data(venue.accept_logon(MemoryStore()))
    assert drain(venue) == [s.LoggedOn(10, False)]
    assert drain(hub) == [s.LoggedOn(10, False)]
    # market data from the acceptor's own session numbering
    m = venue.new_message("X")
    for tag, value in [(262, "r"), (268, 1), (279, 0), (269, 2), (55, "ES"), (270, "7"), (271, 1)]:
        m.append_pair(tag, value)
    hub.receive_data(m.encode())
    assert drain(hub) == []
    assert collected.of(Trade)[0].price == 7_000_000_000
    # market data lost on the way: the hub holds what follows, asks, the acceptor
    # resends the real message, the hub applies both in order
    for price in (8, 9):
        m = venue.new_message("X")
        for tag, value in [(262, "r"), (268, 1), *TRADE_AT, (270, str(price))]:
            m.append_pair(tag, value)
        data = venue.encode_app(m)
    hub.receive_data(data)  # only the second one arrives
    assert drain(hub) == [s.SequenceGap(3, 4)]
    venue.receive_data(hub.data_to_send())
    assert drain(venue) == []
    assert venue.resend_requests == [(3, 3)]
    hub.receive_data(venue.data_to_send())
    assert drain(hub) == []
    assert prices(collected) == [7, 8, 9]
    # the acceptor skips a number (nothing kept): it gap-fills, the hub reports it lost
    venue.store.next_sender += 1
    hub.receive_data(venue.heartbeat())
    assert drain(hub) == [s.SequenceGap(5, 6)]
    venue.receive_data(hub.data_to_send())
    assert drain(venue) == []
    hub.receive_data(venue.data_to_send())
    (lost,) = drain(hub)
    assert isinstance(lost, s.GapUnrecovered) and (lost.start, lost.end) == (5, 5)
    assert hub.expected_seq == venue.next_sender_seq
    # logout from the hub
    venue.receive_data(hub.logout())
    assert drain(venue) == [s.LoggedOut("", by_peer=True)]
    hub.receive_data(venue.data_to_send())
    assert drain(hub) == [s.LoggedOut("", by_peer=False)]


def test_acceptor_refuses_a_logon() -> None:
    hub = new_session()
    venue = s.FixSession(Header("FIX.4.4", "VENUE", ""), role="acceptor")
    venue.receive_data(hub.logon())
    drain(venue)
    hub.receive_data(venue.reject_logon("not today"))
    (event,) = drain(hub)
    assert isinstance(event, s.LogonRejected) and "not today" in event.reason


def test_acceptor_wants_a_logon_first() -> None:
    venue = s.FixSession(Header("FIX.4.4", "VENUE", ""), role="acceptor")
    venue.receive_data(fix_message("0", 1, [], sender="HUB", target="VENUE"))
    (event,) = drain(venue)
    assert isinstance(event, s.SessionFailed)


def test_a_resend_request_above_our_gap_is_answered_at_once() -> None:
    # both sides lost something: each must answer the other's ResendRequest while it
    # waits for its own resend, or both wait for ever
    session = logged_on()
    session.receive_data(fix_message("0", 5, []))
    assert drain(session) == [s.SequenceGap(2, 5)]
    session.data_to_send()
    session.receive_data(fix_message("2", 6, [(7, 1), (16, 0)]))
    assert drain(session) == []
    (fill,) = sent(session.data_to_send())
    assert (fill.msg_type, fill.seq, fill.get(36)) == ("4", 1, b"3")
    assert session.recovering  # its own gap is still open; 6 counts as done
    session.receive_data(fix_message("4", 2, [(123, "Y"), (36, 5)], poss_dup=True))
    (lost,) = drain(session)
    assert isinstance(lost, s.GapUnrecovered)
    assert session.expected_seq == 7 and not session.recovering
