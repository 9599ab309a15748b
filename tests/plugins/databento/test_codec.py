"""The gateway protocol's sans-I/O codec, with no sockets."""

from __future__ import annotations

import itertools

import databento_dbn as dbn
import pytest
from databento.common.cram import get_challenge_response
from hypothesis import given, strategies as st

from hub_plugin_databento import codec as c


def test_cram_response_matches_the_official_client() -> None:
    key = "db-abcdefghijklmnopqrstuvwxyz123"
    assert c.cram_response("challenge-text", key) == get_challenge_response("challenge-text", key)
    assert c.cram_response("x", key).rsplit("-", 1)[1] == key[-5:]
    assert c.verify_cram("x", c.cram_response("x", key), key)
    assert not c.verify_cram("x", c.cram_response("y", key), key)
    assert key not in c.cram_response("x", key)


def test_lines_round_trip_and_refuse_separators() -> None:
    line = c.format_line({"schema": "mbp-1", "start": None, "id": 3})
    assert line == b"schema=mbp-1|id=3\n"
    assert c.parse_line(line[:-1]) == {"schema": "mbp-1", "id": "3"}
    with pytest.raises(ValueError, match="holds"):
        c.format_line({"symbols": "A|B"})
    with pytest.raises(c.CodecError, match="key=value"):
        c.parse_line(b"schema")
    with pytest.raises(c.CodecError, match="twice"):
        c.parse_line(b"a=1|a=2")
    with pytest.raises(c.CodecError, match="UTF-8"):
        c.parse_line(b"a=\xff")


def _authenticated() -> c.GatewayCodec:
    codec = c.GatewayCodec()
    codec.receive_data(b"auth=" + b"0" * 64 + b"-abcde|dataset=GLBX.MDP3|encoding=dbn\n")
    event = codec.next_event()
    assert isinstance(event, c.AuthRequest)
    assert event.bucket == "abcde"
    codec.accept("s1")
    return codec


def test_gateway_codec_reads_the_client_side_in_order() -> None:
    codec = c.GatewayCodec()
    assert codec.greeting().startswith(b"lsg_version=")
    assert codec.next_event() is c.NEED_DATA
    codec.receive_data(b"schema=trades|symbols=ES\n")
    assert isinstance(codec.next_event(), c.BadLine)  # before authentication
    codec = _authenticated()
    codec.receive_data(
        b"schema=mbp-1|stype_in=raw_symbol|symbols=ESZ6,NQZ6|start=17|id=2|is_last=0\nstart_ses"
    )
    sub = codec.next_event()
    assert sub == c.Subscription("mbp-1", "raw_symbol", ("ESZ6", "NQZ6"), 17, False, 2, False)
    assert codec.next_event() is c.NEED_DATA
    codec.receive_data(b"sion=0\r\n")
    assert codec.next_event() == c.SessionStart()
    codec.receive_data(b"schema=mbo|symbols=ES|snapshot=1|start=5\nschema=trades|symbols=\n")
    assert isinstance(codec.next_event(), c.BadLine)  # snapshot with start
    assert isinstance(codec.next_event(), c.BadLine)  # no symbols
    codec.receive_data(b"")
    assert isinstance(codec.next_event(), c.ConnectionClosed)


def test_a_line_past_the_bound_raises_before_it_is_buffered_whole() -> None:
    codec = c.GatewayCodec(max_line=100)
    codec.receive_data(b"x" * 101)
    with pytest.raises(c.LineTooLong):
        codec.next_event()


def test_metadata_reader_takes_the_header_off_exactly() -> None:
    header = dbn.Metadata(
        "GLBX.MDP3", 0, dbn.SType.from_str("raw_symbol"), dbn.SType.from_str("instrument_id"), None
    ).encode()
    reader = c.MetadataReader()
    assert reader.feed(header[:5]) is None
    assert reader.feed(header[5:] + b"rest") == b"rest"
    assert reader.header == header
    assert reader.version == 3
    with pytest.raises(c.CodecError, match="DBN header"):
        c.MetadataReader().feed(b"HTTP/1.1 400")
    with pytest.raises(c.CodecError, match="version 1"):
        c.MetadataReader().feed(b"DBN\x01" + bytes(8))


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=20))
def test_metadata_reader_any_split(cuts: list[int]) -> None:
    header = b"DBN\x03" + (10).to_bytes(4, "little") + bytes(range(10))
    stream = header + b"records"
    reader = c.MetadataReader()
    out = b""
    pos = 0
    for n in cuts:
        piece = stream[pos : pos + n]
        pos += len(piece)
        rest = reader.feed(piece)
        if rest is not None:
            out += rest
            break
    if not reader.done:
        rest = reader.feed(stream[pos:])
        assert rest is not None
        out += rest
    else:
        out += stream[pos:]
    assert reader.header == header
    assert out == b"records"


# -- the seam of two sessions -----------------------------------------------------------
def _trade(seq: int, ts: int, iid: int = 7) -> bytes:
    msg = dbn.TradeMsg(
        1, iid, ts, 10**9, 1, dbn.Action.from_str("T"), dbn.Side.from_str("B"), 0, ts + 1,
        sequence=seq,
    )  # fmt: skip
    return bytes(msg)


def _quote(seq: int, ts: int) -> bytes:
    level = dbn.BidAskPair(10**9, 2 * 10**9, 1, 1, 1, 1)
    msg = dbn.MBP1Msg(
        1, 7, ts, 10**9, 1, dbn.Action.from_str("A"), dbn.Side.from_str("B"), 0, ts + 1,
        sequence=seq, levels=level,  # type: ignore[arg-type]
    )  # fmt: skip
    return bytes(msg)


def _done(schema: str) -> bytes:
    return bytes(
        dbn.SystemMsg(0, f"Finished {schema} replay", code=dbn.SystemCode.REPLAY_COMPLETED)
    )


def _note_in_pieces(tail: c.StreamTail, stream: bytes, cuts: list[int]) -> None:
    """Give ``stream`` to ``tail`` cut at ``cuts``, each piece with where its first
    whole record starts (as the connection works it out from the decoder's tail)."""
    boundaries = [0]
    while boundaries[-1] < len(stream):
        boundaries.append(boundaries[-1] + stream[boundaries[-1]] * 4)
    for a, b in itertools.pairwise(cuts):
        first = next(x for x in boundaries if x >= a) - a
        tail.note(stream[a:b], first)


def test_the_stream_tail_finds_the_last_record_of_each_rtype() -> None:
    records = [_trade(1, 100), _quote(1, 100), _trade(2, 200), _quote(2, 300), _trade(3, 300)]
    stream = b"".join(records)
    tail = c.StreamTail(keep_bytes=10_000)
    _note_in_pieces(tail, stream, [0, 30, 70, 200, len(stream)])  # cuts inside records
    resume = tail.resume()
    assert resume is not None
    assert resume.seams == {0x00: records[4], 0x01: records[3]}
    assert resume.window_start_ts == 100
    assert resume.start_for("trades") == 300 and resume.start_for("mbp-10") == 100


@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=12))
def test_the_stream_tail_is_right_for_any_cut_and_eviction(sizes: list[int]) -> None:
    records = [_trade(i, 100 * i) if i % 3 else _quote(i, 100 * i) for i in range(1, 30)]
    stream = b"".join(records)
    cuts = [0]
    for n in sizes:
        cuts.append(min(cuts[-1] + n, len(stream)))
    cuts.append(len(stream))
    tail = c.StreamTail(keep_bytes=400)  # old pieces are let go
    _note_in_pieces(tail, stream, sorted(set(cuts)))
    resume = tail.resume()
    assert resume is not None
    assert resume.seams[0x00] == records[-1]  # i = 29: a trade
    assert resume.seams[0x01] == records[-3]  # i = 27: the last quote
    assert resume.window_start_ts <= record_ts(records[-3])


def record_ts(record: bytes) -> int:
    return c.record_start_ts(record)


def test_the_replay_filter_drops_exactly_what_was_delivered() -> None:
    seams = {0x00: _trade(3, 300), 0x01: _quote(2, 300)}
    replay = (
        _trade(2, 300) + _trade(3, 300) + _trade(4, 300) + _trade(5, 400) + _done("trades")
        + _quote(2, 300) + _quote(3, 400) + _done("mbp-1") + _trade(6, 500)
    )  # fmt: skip
    f = c.ReplayFilter(seams)
    out = b""
    for i in range(0, len(replay), 37):  # any split
        out += f.feed(replay[i : i + 37])
        if f.done:
            out += f.take_tail() + replay[i + 37 :]
            break
    assert f.done and f.missed == [] and f.dropped == 3
    assert out == _trade(4, 300) + _trade(5, 400) + _done("trades") + _quote(3, 400) + _done(
        "mbp-1"
    ) + _trade(6, 500)


def test_a_replay_that_ends_before_its_seam_is_missed() -> None:
    # the venue lost its history: the replay starts after the seam; nothing is a duplicate
    f = c.ReplayFilter({0x00: _trade(3, 300)})
    out = f.feed(_trade(9, 900) + _done("trades") + _trade(10, 950))
    assert f.done and f.missed == [0x00] and f.dropped == 0
    assert out == _trade(9, 900) + _done("trades") + _trade(10, 950)
    # a record held at the seam's time is delivered when the replay ends without the seam
    f = c.ReplayFilter({0x00: _trade(3, 300)})
    out = f.feed(_trade(8, 300) + _done("trades"))
    assert f.missed == [0x00] and out == _trade(8, 300) + _done("trades")


def test_a_replay_notice_naming_no_schema_ends_every_wait() -> None:
    f = c.ReplayFilter({0x00: _trade(3, 300), 0x01: _quote(2, 300)})
    f.feed(bytes(dbn.SystemMsg(0, "Replay done", code=dbn.SystemCode.REPLAY_COMPLETED)))
    assert f.done and sorted(f.missed) == [0x00, 0x01]
    f = c.ReplayFilter({0x00: _trade(3, 300)})
    f.give_up()
    assert f.done and f.missed == [0x00]
