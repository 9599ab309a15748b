"""The kit's framers (``LineFramer``, ``LengthPrefixFramer``) without sockets, and
``receive_counted`` on a real loopback socket: any split of a stream gives the same
frames, nothing lost or duplicated, an oversized frame always refused and never held."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import given, settings, strategies as st

from hub_core.plugin import (
    NEED_DATA,
    ConnectionHealth,
    DecodeError,
    FrameTooLarge,
    LengthPrefixFramer,
    LineFramer,
    NeedData,
    receive_counted,
)
from hub_core.simulation import encode_error, encode_symbol_mapping, encode_trade_raw

Framer = LineFramer | LengthPrefixFramer
REFUSED = "refused"


def drain(framer: Framer) -> list[bytes | str]:
    """Every frame the buffered bytes hold; a refused frame as ``REFUSED``."""
    out: list[bytes | str] = []
    while True:
        try:
            frame = framer.next_frame()
        except FrameTooLarge:
            out.append(REFUSED)
            continue
        if isinstance(frame, NeedData):
            return out
        out.append(frame)


def feed_in_pieces(framer: Framer, wire: bytes, cuts: Sequence[int]) -> list[bytes | str]:
    """Feed ``wire`` cut at ``cuts``, draining after each piece (as a connection does)."""
    out: list[bytes | str] = []
    bounds = [0, *sorted(cuts), len(wire)]
    for start, end in itertools.pairwise(bounds):
        framer.feed(wire[start:end])
        out += drain(framer)
    return out


def cuts_of(wire: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(wire)), max_size=12)


# -- lines ---------------------------------------------------------------------------
def test_lines_come_out_without_their_terminator_in_order() -> None:
    framer = LineFramer()
    framer.feed(b"OK\nT AAA 1 2\n\nHB\nPART")
    assert drain(framer) == [b"OK", b"T AAA 1 2", b"", b"HB"]  # the empty line too
    assert framer.next_frame() is NEED_DATA and framer.buffered == 4
    framer.feed(b"IAL\n")
    assert framer.next_frame() == b"PARTIAL"
    assert framer.next_frame() is NEED_DATA and framer.buffered == 0


def test_crlf_lines_read_as_lf_lines_unless_told_otherwise() -> None:
    framer = LineFramer()
    framer.feed(b"A\r\nB\nC\r")
    assert drain(framer) == [b"A", b"B"]
    framer.feed(b"\n\r\n")
    assert drain(framer) == [b"C", b""]
    leading = LineFramer()  # an empty first line, a \r at the end of the read
    leading.feed(b"\nA\r")
    assert drain(leading) == [b""]
    leading.feed(b"\n")
    assert drain(leading) == [b"A"]
    raw = LineFramer(strip_cr=False)
    raw.feed(b"A\r\nB\n")
    assert drain(raw) == [b"A\r", b"B"]


def test_iterating_yields_the_complete_lines_and_stops_at_need_data() -> None:
    framer = LineFramer()
    framer.feed(b"a\nb\nc")
    assert list(framer) == [b"a", b"b"]
    framer.feed(b"\n")
    assert list(framer) == [b"c"]


def test_a_multibyte_terminator_cut_across_reads_is_found() -> None:
    framer = LineFramer(terminator=b"\r\n", strip_cr=False)
    for piece in (b"ab\r", b"\ncd", b"\r", b"\n\r\n"):
        framer.feed(piece)
    assert drain(framer) == [b"ab", b"cd", b""]
    soh = LineFramer(terminator=b"\x00")
    soh.feed(b"x\x00\x00y\x00")
    assert drain(soh) == [b"x", b"", b"y"]


def test_a_cut_multibyte_terminator_neither_counts_against_the_bound_nor_is_lost() -> None:
    framer = LineFramer(max_line=4, terminator=b"\r\n", strip_cr=False)
    framer.feed(b"abcd\r")  # 5 bytes held, but the \r may open the terminator
    assert framer.next_frame() is NEED_DATA
    framer.feed(b"\n")
    assert framer.next_frame() == b"abcd"
    framer.feed(b"xxxxxxxx\r")  # refused; the \r that may open its end is kept
    with pytest.raises(FrameTooLarge):
        framer.next_frame()
    framer.feed(b"\nok\r\n")
    assert drain(framer) == [b"ok"]


def test_a_line_at_the_bound_passes_and_one_byte_more_is_refused_with_both_sizes() -> None:
    framer = LineFramer(max_line=8)
    framer.feed(b"12345678\n123456789\nok\n")
    assert framer.next_frame() == b"12345678"
    with pytest.raises(FrameTooLarge, match=r"a line of 9 bytes, past the limit of 8 bytes"):
        framer.next_frame()
    assert drain(framer) == [b"ok"]


def test_an_endless_line_is_refused_once_and_never_held() -> None:
    framer = LineFramer(max_line=64)
    framer.feed(b"HB\n" + b"x" * 100)
    assert framer.next_frame() == b"HB"
    with pytest.raises(FrameTooLarge, match=r"more than 100 bytes, past the limit of 64"):
        framer.next_frame()
    for _ in range(100):  # 10 MB more of the same line: nothing kept, nothing raised
        framer.feed(b"y" * 100_000)
        assert framer.buffered == 0 and drain(framer) == []
    framer.feed(b"tail\nHB\n")
    assert drain(framer) == [b"HB"]


def test_take_rest_hands_over_what_follows_the_last_line() -> None:
    framer = LineFramer()
    framer.feed(b"success=1\n\xa0\x01DBN")
    assert framer.next_frame() == b"success=1"
    assert framer.take_rest() == b"\xa0\x01DBN"
    assert framer.buffered == 0 and framer.next_frame() is NEED_DATA


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="terminator"):
        LineFramer(terminator=b"")
    with pytest.raises(ValueError, match="max_line"):
        LineFramer(max_line=0)


line_words = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
line_lists = st.lists(line_words, max_size=30)


@given(lines=line_lists, data=st.data())
def test_any_split_of_lines_gives_the_same_lines(lines: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(line + b"\n" for line in lines)
    cuts = data.draw(cuts_of(wire))
    assert feed_in_pieces(LineFramer(max_line=40), wire, cuts) == lines


@given(
    lines=st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    crlf=st.booleans(),
    data=st.data(),
)
@settings(max_examples=300)
def test_oversized_lines_are_always_refused_once_and_the_rest_kept(
    lines: list[bytes], crlf: bool, data: st.DataObject
) -> None:
    """Each line longer than the bound is one ``REFUSED`` where it stood, whatever the
    split; every other line comes out once, in order; memory stays bounded."""
    cap = 24
    end = b"\r\n" if crlf else b"\n"
    wire = b"".join(line + end for line in lines)
    cuts = data.draw(cuts_of(wire))
    framer = LineFramer(max_line=cap, terminator=end, strip_cr=False)
    expected = [line if len(line) <= cap else REFUSED for line in lines]
    got: list[bytes | str] = []
    bounds = [0, *sorted(cuts), len(wire)]
    for start, stop in itertools.pairwise(bounds):
        framer.feed(wire[start:stop])
        got += drain(framer)
        assert framer.buffered <= cap + len(end) - 1  # drained: at most one bounded line
    assert got == expected


# -- length-prefixed frames ----------------------------------------------------------
def prefixed(bodies: Sequence[bytes], size: int, order: str, includes_header: bool) -> bytes:
    fmt = {1: "B", 2: "H", 4: "I"}[size]
    sign = ">" if order == "big" else "<"
    extra = size if includes_header else 0
    return b"".join(struct.pack(sign + fmt, len(b) + extra) + b for b in bodies)


def test_a_frame_is_its_body_or_with_keep_header_the_whole_frame() -> None:
    framer = LengthPrefixFramer(2, max_frame=8)
    framer.feed(b"\x00\x03abc\x00\x00\x00\x01z")
    assert drain(framer) == [b"abc", b"", b"z"]
    whole = LengthPrefixFramer(2, "little", includes_header=True, keep_header=True)
    whole.feed(b"\x05\x00abc\x02\x00")
    assert drain(whole) == [b"\x05\x00abc", b"\x02\x00"]
    whole.feed(b"\x04\x00ab\x09\x00par")
    assert whole.next_frame() == b"\x04\x00ab" and whole.next_frame() is NEED_DATA
    assert whole.buffered == 5 and whole.take_rest() == b"\x09\x00par"
    assert whole.buffered == 0


def test_a_body_past_the_bound_is_refused_from_its_prefix_and_skipped_unheld() -> None:
    framer = LengthPrefixFramer(4, max_frame=100)
    framer.feed(b"\x00\x00\x00\x02ok" + struct.pack(">I", 5_000_000) + b"x" * 10)
    assert framer.next_frame() == b"ok"
    with pytest.raises(FrameTooLarge, match="a frame of 5000000 bytes, past the limit of 100"):
        framer.next_frame()
    assert framer.buffered == 0
    for _ in range(49):  # the body arrives: dropped as it comes
        framer.feed(b"y" * 100_000)
        assert framer.buffered == 0 and framer.next_frame() is NEED_DATA
    framer.feed(b"y" * (100_000 - 10) + b"\x00\x00\x00\x01!")
    assert drain(framer) == [b"!"]


def test_a_length_shorter_than_its_prefix_is_a_decode_error_that_moves_on() -> None:
    framer = LengthPrefixFramer(2, includes_header=True)
    framer.feed(b"\x00\x01\x00\x03a")
    with pytest.raises(DecodeError, match="shorter than its prefix"):
        framer.next_frame()
    assert framer.next_frame() == b"a"


def test_dbn_records_frame_by_their_length_byte_in_words() -> None:
    """DBN's header starts with the record's length in 4-byte words, header included:
    the framer returns the core's own encoded records, whole, from any split."""
    records = [
        encode_symbol_mapping(7, "ESZ6", 1),
        encode_trade_raw(7, 5_000 * 10**9, 2 * 10**9, "B", 2, 3, 1),
        encode_error("no such symbol", 4, 5),
    ]
    wire = b"".join(records)
    for cut in range(len(wire) + 1):
        framer = LengthPrefixFramer(1, unit=4, includes_header=True, keep_header=True)
        assert feed_in_pieces(framer, wire, [cut]) == records


def test_bad_framer_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="prefix_size"):
        LengthPrefixFramer(3)
    with pytest.raises(ValueError, match="byteorder"):
        LengthPrefixFramer(2, "middle")  # type: ignore[arg-type]


bodies = st.lists(st.binary(max_size=80), max_size=20)
layouts = st.tuples(st.sampled_from([1, 2, 4]), st.sampled_from(["big", "little"]), st.booleans())


@given(bodies=bodies, layout=layouts, data=st.data())
@settings(max_examples=300)
def test_any_split_of_prefixed_frames_gives_the_same_frames_and_refuses_oversize(
    bodies: list[bytes], layout: tuple[int, str, bool], data: st.DataObject
) -> None:
    size, order, includes_header = layout
    cap = 40
    wire = prefixed(bodies, size, order, includes_header)
    cuts = data.draw(cuts_of(wire))
    framer = LengthPrefixFramer(
        size,
        "big" if order == "big" else "little",
        cap,
        includes_header=includes_header,
    )
    got: list[bytes | str] = []
    bounds = [0, *sorted(cuts), len(wire)]
    for start, stop in itertools.pairwise(bounds):
        framer.feed(wire[start:stop])
        got += drain(framer)
        assert framer.buffered < size + cap  # at most one bounded frame, never a refused one
    assert got == [b if len(b) <= cap else REFUSED for b in bodies]


# -- the counted read ------------------------------------------------------------------
@pytest.mark.anyio
async def test_receive_counted_counts_every_byte_of_a_partial_frame() -> None:
    """A real loopback socket: a frame sent in two halves is counted as activity when
    its first half arrives, before any framer can return it."""
    health = ConnectionHealth()
    framer = LineFramer()
    sent = anyio.Event()

    async def venue(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"T AAA 1")
            await sent.wait()
            await stream.send(b" 2\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, venue)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            first = await receive_counted(client, health, 4)
            assert first == b"T AA" and health.bytes_received == 4
            stamp = health.last_activity_ns
            assert stamp > 0
            framer.feed(first)
            framer.feed(await receive_counted(client, health))
            assert framer.next_frame() is NEED_DATA and health.bytes_received == 7
            assert health.last_activity_ns >= stamp
            sent.set()
            while (frame := framer.next_frame()) is NEED_DATA:
                framer.feed(await receive_counted(client, health))
            assert frame == b"T AAA 1 2" and health.bytes_received == 10
            with pytest.raises(anyio.EndOfStream):  # the venue closed: as anyio says it
                await receive_counted(client, health)
            assert health.bytes_received == 10
        tg.cancel_scope.cancel()
