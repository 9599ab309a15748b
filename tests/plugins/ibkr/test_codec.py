"""The TWS API wire without sockets: framing, the handshake, each message's fields."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from hub_core.plugin import NEED_DATA, DecodeError, FrameTooLarge
from hub_plugin_ibkr import codec
from hub_plugin_ibkr.codec import (
    ClientCodec,
    ClientHello,
    ContractFields,
    HistoricalTick,
    Malformed,
    Message,
    ServerCodec,
    ServerHello,
)


def test_a_frame_is_a_big_endian_length_and_nul_terminated_fields() -> None:
    frame = codec.encode_fields(1, 6, 42, "100.25", True)
    assert frame == b"\x00\x00\x00\x101\x006\x0042\x00100.25\x001\x00"
    assert codec.decode_fields(frame[4:]) == ["1", "6", "42", "100.25", "1"]


def test_a_body_without_its_last_nul_is_refused() -> None:
    with pytest.raises(DecodeError):
        codec.decode_fields(b"1\x002")


def test_the_client_hello_and_the_negotiated_version() -> None:
    hello = codec.encode_client_hello(157, 178)
    assert hello == b"API\x00\x00\x00\x00\tv157..178"
    server = ServerCodec()
    for i in range(len(hello)):  # one byte at a time: the prefix may come split too
        server.receive_data(hello[i : i + 1])
    assert server.next_event() == ClientHello(157, 178, "")
    assert codec.negotiate(157, 178) == 178
    assert codec.negotiate(100, 200) == codec.MAX_SERVER_VERSION
    assert codec.negotiate(179, 190) is None
    assert codec.negotiate(100, 150) is None


def test_a_client_without_the_api_prefix_is_malformed() -> None:
    server = ServerCodec()
    server.receive_data(b"GET / HTTP/1.1\r\n")
    assert isinstance(server.next_event(), Malformed)
    assert server.prefix_ok is False


def test_requests_after_the_hello_are_messages() -> None:
    server = ServerCodec()
    server.receive_data(codec.encode_client_hello() + codec.encode_fields(71, 2, 7, ""))
    assert isinstance(server.next_event(), ClientHello)
    assert server.next_event() == Message(71, ["71", "2", "7", ""])
    assert server.next_event() is NEED_DATA


@given(st.integers(min_value=1, max_value=200))
def test_the_client_side_decodes_the_same_whatever_the_split(cut: int) -> None:
    wire = (
        codec.encode_server_hello(178, "20261204 20:00:00 UTC")
        + codec.encode_tbt_last(5, 1_700_000_000, "101.25", "300", "ISLAND")
        + codec.encode_tick_price(3, 1, "100.5", "12")
    )
    cut = min(cut, len(wire) - 1)
    client = ClientCodec()
    got: list[object] = []
    for part in (wire[:cut], wire[cut:]):
        client.receive_data(part)
        while (e := client.next_event()) is not NEED_DATA:
            got.append(e)
    assert got[0] == ServerHello(178, "20261204 20:00:00 UTC")
    assert [m.fields for m in got[1:] if isinstance(m, Message)] == [
        ["99", "5", "2", "1700000000", "101.25", "300", "0", "ISLAND", ""],
        ["1", "6", "3", "1", "100.5", "12", "0"],
    ]


def test_a_frame_past_the_bound_is_refused_and_the_next_one_read() -> None:
    client = ClientCodec(max_frame=64)
    client.receive_data(codec.encode_fields("9" * 100) + codec.encode_fields(49, 1, 5))
    with pytest.raises(FrameTooLarge):
        client.next_fields()
    assert client.next_fields() == ["49", "1", "5"]


def test_the_market_data_messages_parse_to_exact_text() -> None:
    def fields(data: bytes) -> list[str]:
        return codec.decode_fields(data[4:])

    p = codec.parse_tick_price(fields(codec.encode_tick_price(3, 2, "100.07", "41")))
    assert (p.req_id, p.tick_type, p.price, p.size) == (3, 2, "100.07", "41")
    s = codec.parse_tick_size(fields(codec.encode_tick_size(3, 0, "17")))
    assert (s.req_id, s.tick_type, s.size) == (3, 0, "17")
    t = codec.parse_tick_by_tick(fields(codec.encode_tbt_last(4, 17, "99.5", "2", "ARCA")))
    assert t == codec.TickByTickLast(4, 17, "99.5", "2", "ARCA", "")
    q = codec.parse_tick_by_tick(fields(codec.encode_tbt_bid_ask(4, 18, "1.1", "1.2", "5", "6")))
    assert q == codec.TickByTickBidAsk(4, 18, "1.1", "1.2", "5", "6")
    d = codec.parse_depth(fields(codec.encode_depth(6, 2, 1, 0, "100.02", "9")))
    assert d == codec.DepthUpdate(6, 2, 1, 0, "100.02", "9")
    e = codec.parse_error(fields(codec.encode_error(-1, 1100, "lost")))
    assert e == codec.ErrorMessage(-1, 1100, "lost")
    m = codec.parse_market_data_type(fields(codec.encode_market_data_type(3, 3)))
    assert m == codec.MarketDataType(3, 3)
    ticks = [HistoricalTick(10, "1.5", "2", "X", ""), HistoricalTick(11, "1.6", "3", "Y", "I")]
    h = codec.parse_historical_ticks_last(
        fields(codec.encode_historical_ticks_last(8, ticks, True))
    )
    assert h == codec.HistoricalTicksLast(8, ticks, True)


def test_short_messages_raise_decode_error_only() -> None:
    for parse in (
        codec.parse_tick_price,
        codec.parse_tick_size,
        codec.parse_tick_by_tick,
        codec.parse_depth,
        codec.parse_error,
        codec.parse_historical_ticks_last,
    ):
        with pytest.raises(DecodeError):
            parse(["1", "2"])


def test_a_request_contract_and_its_request_id() -> None:
    f = ["97", "12", "0", "ES", "FUT", "202612", "0", "", "", "CME", "", "USD", "ESZ6", "ES"]
    c = ContractFields.parse(f, 2)
    assert (c.symbol, c.sec_type, c.last_trade_date, c.exchange, c.local_symbol) == (
        "ES",
        "FUT",
        "202612",
        "CME",
        "ESZ6",
    )
    assert codec.request_req_id(f) == 12
    assert codec.request_req_id(["1", "11", "33"]) == 33
