"""The gateway protocol's sans-I/O codec, with no sockets."""

from __future__ import annotations

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
