"""The NATS tick format without a server: escaping, subjects, headers, sequences,
heartbeats (sdk-docs/protocols/nats-ticks.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from hub_plugin_nats import codec as c

NAMES = [
    "BTC/USD",
    "ES.c.0",
    "BRK.B",
    "a*b",
    "x>y",
    "~",
    "~2E",
    "",
    " ",
    "_hb",
    "é",
    "東京",
    "a\tb",
]


@pytest.mark.parametrize("name", NAMES)
def test_escape_round_trip_of_awkward_names(name: str) -> None:
    token = c.escape_token(name)
    assert token and token.isascii()
    assert not any(ch in token for ch in ".*> \t\r\n")
    assert not token.startswith("_")
    assert c.unescape_token(token) == name


def test_escape_exact_values() -> None:
    assert c.escape_token("BTC/USD") == "BTC/USD"
    assert c.escape_token("ES.c.0") == "ES~2Ec~2E0"
    assert c.escape_token("BRK.B") == "BRK~2EB"
    assert c.escape_token("~") == "~7E"
    assert c.escape_token("") == "~"
    assert c.escape_token("_hb") == "~5Fhb"
    assert c.escape_token("a_b") == "a_b"
    assert c.escape_token("é") == "~C3~A9"
    assert c.escape_token("a b") == "a~20b"


@given(st.text(max_size=40))
def test_escape_round_trip_any_text(name: str) -> None:
    token = c.escape_token(name)
    assert not any(ch in token for ch in ".*> \t\r\n")
    assert token.isascii() and token.isprintable()
    assert c.unescape_token(token) == name


@given(st.text(max_size=20), st.text(max_size=20))
def test_distinct_names_never_share_a_token(a: str, b: str) -> None:
    if a != b:
        assert c.escape_token(a) != c.escape_token(b)


@pytest.mark.parametrize("token", ["~2", "~zz", "~2e", "a.b", "_x", "a b", "~FF", "a*", ""])
def test_unescape_refuses_tokens_escape_never_makes(token: str) -> None:
    with pytest.raises(c.CodecError):
        c.unescape_token(token)


def test_subjects_and_parsing() -> None:
    subject = c.subject_of("md", "binance", "trade", "BTC.USDT")
    assert subject == "md.binance.trade.BTC~2EUSDT"
    assert c.parse_subject(subject) == c.SubjectParts("binance", "trade", "BTC.USDT")
    # a prefix of several tokens parses the same: the last three are ours
    assert c.parse_subject("acme.md.es~5Ffeed.gap.~") == c.SubjectParts("es_feed", "gap", "")
    assert c.parse_subject(c.heartbeat_subject("md", "hub.1")) == "hub.1"
    with pytest.raises(c.CodecError):
        c.parse_subject("md.binance.nonsense.X")
    with pytest.raises(c.CodecError):
        c.parse_subject("md.trade.X")


def test_prefix_and_filter_checks() -> None:
    assert c.check_prefix("acme.md") == "acme.md"
    for bad in ["", "md.", "m*", "md.>", "a b", "md._x"]:
        with pytest.raises(ValueError):
            c.check_prefix(bad)
    assert c.check_subject_filter("md.*.trade.*") == "md.*.trade.*"
    assert c.check_subject_filter("md.binance.>") == "md.binance.>"
    for bad in ["md..x", "md.>.x", "md.a*", "md x"]:
        with pytest.raises(ValueError):
            c.check_subject_filter(bad)


def test_publisher_numbers_each_subject_and_names_the_message() -> None:
    pub = c.Publisher("md", "hub-a", epoch=77)
    first = pub.records("binance", "trade", "BTC.USDT", b"R" * 10, 3)
    second = pub.records("binance", "trade", "BTC.USDT", b"R" * 10, 2)
    other = pub.records("binance", "quote", "BTC.USDT", b"Q", 1)
    assert (first.seq, second.seq, other.seq) == (1, 4, 1)
    assert first.headers == {
        "Hub-Format": "1",
        "Hub-Epoch": "77",
        "Hub-Seq": "1",
        "Hub-Count": "3",
        "Hub-Origin": "binance",
        "Nats-Msg-Id": "binance.trade.BTC~2EUSDT.1.77",
    }
    assert second.headers["Nats-Msg-Id"] == "binance.trade.BTC~2EUSDT.4.77"
    gap = pub.gap("binance", "", c.GapBody(5, 9, "venue froze", 0, 0, 9))
    assert gap.subject == "md.binance.gap.~" and gap.seq == 1
    decoded = c.decode_message(gap.subject, gap.headers, gap.payload)
    assert isinstance(decoded, c.GapMessage)
    assert decoded.body == c.GapBody(5, 9, "venue froze", 0, 0, 9)
    state = pub.state("binance", "", c.StateBody("connected", "up", 3, "wss://x", 1))
    got = c.decode_message(state.subject, state.headers, state.payload)
    assert isinstance(got, c.StateMessage) and got.body.state == "connected"
    data = c.decode_message(first.subject, first.headers, first.payload)
    assert data == c.Records("binance", "trade", "BTC.USDT", first.subject, 77, 1, 3, b"R" * 10)
    with pytest.raises(ValueError):
        pub.records("binance", "gap", "X", b"R", 1)


def test_heartbeat_names_the_subjects_changed_since_the_last_one() -> None:
    pub = c.Publisher("md", "hub-a", epoch=5, heartbeat_ms=250)
    m = pub.records("binance", "trade", "A", b"R", 4)
    unsent = pub.records("binance", "quote", "A", b"R", 1)
    pub.sent([m])  # `unsent` is still on its way: the heartbeat does not name it
    subject, payload = pub.heartbeat(1_000)
    assert unsent.seq == 1
    assert subject == "md._hb.hub-a"
    hb = c.decode_message(subject, None, payload)
    assert isinstance(hb, c.HeartbeatBody)
    assert (hb.publisher, hb.epoch, hb.interval_ms, hb.ts) == ("hub-a", 5, 250, 1_000)
    assert hb.exchanges == ["binance"] and hb.last == {"md.binance.trade.A": 4}
    _, payload = pub.heartbeat(2_000)
    again = c.decode_message(subject, None, payload)
    assert isinstance(again, c.HeartbeatBody) and again.last == {}


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        (None, b"R"),
        ({"Hub-Format": "2", "Hub-Epoch": "1", "Hub-Seq": "1", "Hub-Count": "1"}, b"R"),
        ({"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "x", "Hub-Count": "1"}, b"R"),
        ({"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "0", "Hub-Count": "1"}, b"R"),
        ({"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "1", "Hub-Count": "0"}, b"R"),
        ({"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "1", "Hub-Count": "1"}, b""),
        ({"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "1"}, b"R"),
        (
            {
                "Hub-Format": "1",
                "Hub-Epoch": "1",
                "Hub-Seq": "1",
                "Hub-Count": "1",
                "Hub-Origin": "x",
            },
            b"R",
        ),
    ],
)
def test_decode_refuses_what_is_not_this_format(
    headers: dict[str, str] | None, payload: bytes
) -> None:
    with pytest.raises(c.CodecError):
        c.decode_message("md.binance.trade.A", headers, payload)


def test_decode_refuses_a_bad_control_payload() -> None:
    headers = {"Hub-Format": "1", "Hub-Epoch": "1", "Hub-Seq": "1", "Hub-Count": "1"}
    with pytest.raises(c.CodecError):
        c.decode_message("md.binance.gap.A", headers, b"{not json")
    with pytest.raises(c.CodecError):
        c.decode_message("md._hb.x", None, b"[]")


def test_sequence_tracker_gaps_duplicates_and_restarts() -> None:
    t = c.SequenceTracker()
    s = "md.x.trade.A"
    assert t.check(s, 1, 1, 3, 100) == (True, None)  # 1..3
    assert t.check(s, 1, 4, 1, 200) == (True, None)  # 4
    assert t.check(s, 1, 2, 2, 250) == (False, None)  # 2..3 again: a retried batch
    assert t.duplicates == 1
    deliver, missing = t.check(s, 1, 8, 2, 300)  # 5..7 never came
    assert deliver and missing == c.Missing(s, 5, 7, 200)
    assert t.next_seq(s) == 10
    # a heartbeat says the last was 12: checked at the publisher's next heartbeat
    hb = c.HeartbeatBody("p", 1, 100, 0, ["x"], {s: 12})
    assert t.announced(hb, 400) == []
    quiet = c.HeartbeatBody("p", 1, 100, 0, ["x"], {})
    assert t.announced(quiet, 450) == [c.Missing(s, 10, 12, 300)]
    assert t.announced(quiet, 500) == []
    # a claim that was met in time is no gap
    t.announced(c.HeartbeatBody("p", 1, 100, 0, ["x"], {s: 13}), 510)
    assert t.check(s, 1, 13, 1, 520) == (True, None)
    assert t.announced(quiet, 530) == []
    # the publisher restarted (a new epoch): its sequence starts over
    deliver, missing = t.check(s, 2, 1, 1, 600)
    assert deliver and missing == c.Missing(s, 1, 0, 520, True)
    # an older epoch arriving late (JetStream replay) is not this run's
    assert t.check(s, 1, 14, 1, 650) == (False, None)
    assert t.check("md.x.trade.B", 2, 5, 1, 700) == (True, None)  # first seen: no history


def test_heartbeat_watch_stale_back_restarted() -> None:
    w = c.HeartbeatWatch(factor=3)
    hb = c.HeartbeatBody("p", 1, 100, 0, ["binance"], {})
    assert w.seen(hb, 0) is None
    assert w.next_deadline() == 300_000_000
    assert w.tick(299_000_000) == []
    assert w.tick(301_000_000) == [c.PeerEvent("p", "stale", 0, ("binance",))]
    assert w.tick(400_000_000) == [] and w.stale() == ["p"]
    assert w.seen(hb, 500_000_000) == c.PeerEvent("p", "back", 0, ("binance",))
    assert w.stale() == []
    new = c.HeartbeatBody("p", 2, 100, 0, ["binance", "coinbase"], {})
    assert w.seen(new, 600_000_000) == c.PeerEvent("p", "restarted", 500_000_000, ("binance",))
    assert w.tick(700_000_000) == []


def test_jetstream_filters_stay_inside_the_stream() -> None:
    assert c.data_filter("md.binance.>", "md") == "md.binance.*.*"
    assert c.data_filter("md.>", "md") == "md.*.*.*"
    assert c.data_filter("a.md.x.trade.>", "a.md") == "a.md.x.trade.*"
    assert c.data_filter("md.*.trade.*", "md") == "md.*.trade.*"
    assert c.data_filter("other.>", "md") == "other.>"
