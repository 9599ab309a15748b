"""Property tests: whatever bytes arrive, in whatever pieces, the codec only ever raises
its own ``CodecError`` (a ``DecodeError``), never loops forever, and never holds more than
one bounded line plus the last read."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from hub_core.errors import DecodeError
from hub_plugin_ninjatrader import codec as c

chunks = st.lists(st.binary(max_size=600), max_size=40)
# text-ish bytes hit the parser's deeper branches more often than uniform noise
line_bytes = st.lists(
    st.sampled_from(
        [b"op=", b"subscribe", b"ping", b"|", b"id=", b"1", b"42", b"symbols=", b"ES", b",",
         b"schemas=", b"mbo", b"\n", b"\r", b"=", b"x", b"\x00", b"\xff", b"version=",
         b"protocol=hubfeed", b"cram=0123456789abcdef", b"success=1", b"heartbeat_s=9"]
    ),
    max_size=80,
).map(b"".join)  # fmt: skip

# a step bound far above what any input here needs: hitting it means a loop
_MAX_STEPS = 10_000


def _drain_client(codec: c.ClientCodec) -> None:
    for _ in range(_MAX_STEPS):
        event = codec.next_event()
        if isinstance(event, c.NeedData | c.ConnectionClosed):
            return
        if isinstance(event, c.Greeting):
            codec.send(c.Hello(1, "u", "p"))
    raise AssertionError("next_event() never asked for data")


def _drain_server(codec: c.ServerCodec) -> list[object]:
    out: list[object] = []
    for _ in range(_MAX_STEPS):
        event = codec.next_event()
        if isinstance(event, c.NeedData | c.ConnectionClosed):
            return out
        out.append(event)
        if isinstance(event, c.Hello):
            codec.send(c.HandshakeAccepted("s", 10))
    raise AssertionError("next_event() never asked for data")


def _buffered(codec: c.ClientCodec | c.ServerCodec) -> int:
    return codec._lines.buffered


@settings(max_examples=300, deadline=None)
@given(chunks)
def test_client_random_bytes_only_raise_codec_errors(parts: list[bytes]) -> None:
    codec = c.ClientCodec()
    try:
        for part in parts:
            codec.receive_data(part)
            _drain_client(codec)
            if codec.state != "streaming":
                assert _buffered(codec) < c.MAX_LINE_BYTES + 600
        codec.receive_data(b"")
        _drain_client(codec)
    except c.CodecError as exc:
        assert isinstance(exc, DecodeError)


@settings(max_examples=300, deadline=None)
@given(st.lists(line_bytes, max_size=30), st.booleans())
def test_server_random_lines_only_raise_codec_errors(parts: list[bytes], greet: bool) -> None:
    codec = c.ServerCodec()
    codec.send(c.Greeting(1, "e" * 32))
    if greet:
        codec.receive_data(b"version=1\n")
        _drain_server(codec)
    try:
        for part in parts:
            codec.receive_data(part)
            for event in _drain_server(codec):
                # every request the server accepts re-encodes to a valid line
                if isinstance(event, c.Subscribe | c.Unsubscribe | c.Ping):
                    assert len(c.encode_request(event)) <= c.MAX_LINE_BYTES
            assert _buffered(codec) < c.MAX_LINE_BYTES + 2400
    except c.CodecError as exc:
        assert isinstance(exc, DecodeError)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=9000), st.integers(min_value=1, max_value=5000))
def test_no_newline_is_bounded(blob: bytes, step: int) -> None:
    """A peer that never sends ``\\n`` gets ``LineTooLong`` once 4096 bytes are buffered."""
    blob = blob.replace(b"\n", b"x")
    codec = c.ServerCodec()
    codec.send(c.Greeting(1, "e" * 32))
    try:
        for i in range(0, len(blob), step):
            codec.receive_data(blob[i : i + step])
            assert codec.next_event() is c.NEED_DATA
            assert _buffered(codec) < c.MAX_LINE_BYTES
    except c.LineTooLong:
        assert len(blob) >= c.MAX_LINE_BYTES
    else:
        assert len(blob) < c.MAX_LINE_BYTES


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.data())
def test_truncated_handshake_never_yields_a_partial_event(cut: int, data: st.DataObject) -> None:
    """Every prefix of a valid greeting+reply is NEED_DATA (or EOF), never an error or a
    half-parsed event; the full bytes in any split give the same two events."""
    full = (
        b"protocol=hubfeed|version=1|cram=0123456789abcdef|server=s\n"
        b"success=1|session_id=z|heartbeat_s=4|version=1\n"
    )
    prefix = full[: min(cut, len(full) - 1)]
    codec = c.ClientCodec()
    codec.receive_data(prefix)
    events = []
    for _ in range(4):
        event = codec.next_event()
        if event is c.NEED_DATA:
            break
        events.append(event)
        if isinstance(event, c.Greeting):
            codec.send(c.Hello())
    assert not any(isinstance(e, c.HandshakeAccepted) for e in events)
    codec.receive_data(b"")
    assert isinstance(codec.next_event(), c.ConnectionClosed)

    sizes = data.draw(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
    whole = c.ClientCodec()
    seen: list[object] = []
    pos = 0
    i = 0
    while pos < len(full):
        n = sizes[i % len(sizes)]
        whole.receive_data(full[pos : pos + n])
        pos += n
        i += 1
        while not isinstance(event := whole.next_event(), c.NeedData):
            seen.append(event)
            if isinstance(event, c.Greeting):
                whole.send(c.Hello())
            if isinstance(event, c.HandshakeAccepted):
                break
    assert seen == [c.Greeting(1, "0123456789abcdef", "s"), c.HandshakeAccepted("z", 4, 1)]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10), st.text(max_size=200))
def test_parse_control_never_raises(code: int, text: str) -> None:
    for kind in ("symbol_mapping", "error", "system", "other"):
        event = c.parse_control(kind, code, text)
        assert event is not None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=",|"),
            min_size=1,
            max_size=70,
        ),
        min_size=1,
        max_size=300,
    )
)
def test_any_valid_symbols_round_trip_through_requests(symbols: list[str]) -> None:
    server = c.ServerCodec()
    server.send(c.Greeting(1, "e" * 32))
    server.receive_data(b"version=1\n")
    server.next_event()
    server.send(c.HandshakeAccepted("s", 10))
    groups = c.chunk_symbols(symbols)
    for req_id, group in enumerate(groups, start=1):
        server.receive_data(c.encode_request(c.Subscribe(req_id, group)))
        assert server.next_event() == c.Subscribe(req_id, group, c.SCHEMAS)
    assert [s for g in groups for s in g] == symbols
