"""The zero-copy scanner: framing, BodyLength/CheckSum checks, resynchronisation after
garbage, bounds, header fields, and agreement with simplefix (the reference) on the
fields of valid messages."""

from __future__ import annotations

import datetime as dt

import pytest
import simplefix  # type: ignore[import-untyped]
from hypothesis import given, settings, strategies as st

from hub_core.errors import DecodeError, FrameTooLarge
from hub_plugin_fix.errors import FixDecodeError, GarbledMessage, MalformedMessage, MessageTooLarge
from hub_plugin_fix.scanner import (
    FixReader,
    Frame,
    checksum,
    parse_timestamp,
    scan_messages,
)
from tests.plugins.fix.conftest import fix_message

HB = fix_message("0", 7, [])
X = fix_message("X", 8, [(262, "r1"), (268, 1), (279, 0), (269, 2), (270, "1.5"), (271, 2)])


def drain(reader: FixReader) -> tuple[list[Frame], list[Exception]]:
    frames: list[Frame] = []
    errors: list[Exception] = []
    for _ in range(100_000):
        try:
            frame = reader.next_frame()
        except FixDecodeError as exc:
            errors.append(exc)
            continue
        if frame is None:
            return frames, errors
        frames.append(frame)
    raise AssertionError("next_frame() never asked for data")


def test_errors_are_decode_errors() -> None:
    assert issubclass(FixDecodeError, DecodeError)
    assert issubclass(MessageTooLarge, FrameTooLarge)
    assert issubclass(MessageTooLarge, GarbledMessage)


def test_frame_header_fields() -> None:
    data = fix_message("X", 42, [(262, "r1"), (268, 0)], poss_dup=True)
    reader = FixReader()
    reader.expect_comp_ids(b"VENUE", b"HUB")
    reader.feed(data, 0)
    frames, errors = drain(reader)
    assert not errors
    (f,) = frames
    assert f.msg_type == "X"
    assert f.seq == 42
    assert f.poss_dup
    assert f.comp_ids_ok
    secs = int(dt.datetime(2024, 1, 2, 12, 0, 0, tzinfo=dt.UTC).timestamp())
    expected_ns = secs * 1_000_000_000 + 123_000_000
    assert f.sending_time == expected_ns
    assert f.raw() == data
    assert f.get(262) == b"r1"
    assert f.get(999) is None
    assert f.buf[f.body : f.body + 4] == b"262="  # body starts after the standard header


def test_wrong_comp_ids_are_flagged_not_dropped() -> None:
    reader = FixReader()
    reader.expect_comp_ids(b"VENUE", b"OTHER")
    reader.feed(HB, 0)
    (f,), _ = drain(reader)
    assert not f.comp_ids_ok


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_any_split_gives_the_same_messages(step: int) -> None:
    stream = HB + X + HB
    reader = FixReader()
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        reader.feed(stream[i : i + step], 0)
        frames, errors = drain(reader)
        assert not errors
        got.extend(f.raw() for f in frames)
    assert got == [HB, X, HB]
    assert reader.buffered == 0


def test_garbage_is_skipped_to_the_next_message_and_reported_once() -> None:
    reader = FixReader()
    reader.feed(b"junk 58=8=x" + HB + b"\xff\xfe" + X, 0)
    frames, errors = drain(reader)
    assert [f.raw() for f in frames] == [HB, X]
    assert len(errors) == 2
    assert all(isinstance(e, GarbledMessage) for e in errors)
    assert reader.bytes_skipped == len(b"junk 58=8=x") + 2


def test_wrong_checksum_drops_that_message_only() -> None:
    bad = HB[:-4] + b"%03d\x01" % ((int(HB[-4:-1]) + 1) % 256)
    reader = FixReader()
    reader.feed(bad + X, 0)
    frames, errors = drain(reader)
    assert [f.raw() for f in frames] == [X]
    assert len(errors) == 1
    assert "CheckSum" in str(errors[0])


@pytest.mark.parametrize("delta", [-3, -1, 1, 5])
def test_wrong_body_length_resynchronises(delta: int) -> None:
    head, _, rest = HB.partition(b"\x019=")
    n, _, body = rest.partition(b"\x01")
    bad = head + b"\x019=" + str(int(n) + delta).encode() + b"\x01" + body
    reader = FixReader()
    reader.feed(bad + X + HB, 0)
    frames, errors = drain(reader)
    assert [f.raw() for f in frames] == [X, HB]
    assert errors and all(isinstance(e, GarbledMessage) for e in errors)


def test_body_length_above_the_bound_is_refused_without_waiting() -> None:
    reader = FixReader(max_message=1000)
    reader.feed(b"8=FIX.4.4\x019=5000\x0135=X\x01", 0)  # the rest never arrives
    frames, errors = drain(reader)
    assert not frames
    assert len(errors) == 1
    assert isinstance(errors[0], MessageTooLarge)
    assert reader.buffered < len(b"8=FIX")  # only what could begin the next message


def test_begin_string_must_match_when_given() -> None:
    reader = FixReader(begin_string=b"FIX.4.2")
    reader.feed(HB + fix_message("0", 8, [], begin="FIX.4.2"), 0)
    frames, errors = drain(reader)
    assert [f.seq for f in frames] == [8]
    assert len(errors) == 1
    assert "BeginString" in str(errors[0])


def test_msg_type_must_be_the_third_field() -> None:
    m = simplefix.FixMessage()
    m.append_pair(8, "FIX.4.4")
    m.append_pair(35, "0")
    m.append_pair(49, "VENUE")
    raw = m.encode(raw=True)
    body = raw[len(b"8=FIX.4.4\x01") :]
    body = b"49=VENUE\x0135=0\x01"
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    msg = head + body
    msg += b"10=%03d\x01" % (sum(msg) % 256)
    reader = FixReader()
    reader.feed(msg + HB, 0)
    frames, errors = drain(reader)
    assert [f.raw() for f in frames] == [HB]
    assert len(errors) == 1
    assert isinstance(errors[0], MalformedMessage)


def test_bad_msg_seq_num_is_malformed() -> None:
    reader = FixReader()
    reader.feed(fix_message("0", 0, []) + HB, 0)
    frames, errors = drain(reader)
    assert [f.raw() for f in frames] == [HB]
    assert len(errors) == 1 and "MsgSeqNum" in str(errors[0])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 300), st.integers(0, 300))
def test_checksum_is_the_byte_sum_mod_256(data: bytes, a: int, b: int) -> None:
    lo, hi = sorted((min(a, len(data)), min(b, len(data))))
    assert checksum(data, lo, hi) == sum(data[lo:hi]) % 256
    assert checksum(data, 0, len(data)) == sum(data) % 256


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 12, 31)),
    st.sampled_from([0, 3, 6, 9]),
)
def test_sending_time_parses_exactly(when: dt.datetime, digits: int) -> None:
    text = when.strftime("%Y%m%d-%H:%M:%S")
    frac_ns = when.microsecond * 1000
    if digits:
        frac = f"{frac_ns:09d}"[:digits]
        text += "." + frac
        frac_ns = int(frac) * 10 ** (9 - digits)
    else:
        frac_ns = 0
    raw = text.encode()
    secs = int(when.replace(tzinfo=dt.UTC, microsecond=0).timestamp())
    assert parse_timestamp(raw, 0, len(raw)) == secs * 1_000_000_000 + frac_ns


@pytest.mark.parametrize(
    "text", [b"", b"2024010212:00:00", b"20241302-12:00:00", b"20240102-25:00:00", b"x" * 30]
)
def test_bad_sending_time_is_zero(text: bytes) -> None:
    assert parse_timestamp(text, 0, len(text)) == 0


# -- agreement with simplefix ------------------------------------------------------------
_SIMPLEFIX_RAW = {*simplefix.FixParser().raw_len_tags, *simplefix.FixParser().raw_data_tags}
_values = st.binary(min_size=1, max_size=20).filter(lambda v: b"\x01" not in v)
_fields = st.lists(st.tuples(st.integers(11, 99_999), _values), max_size=25)


@settings(max_examples=200, deadline=None)
@given(st.lists(_fields, min_size=1, max_size=5), st.integers(1, 50))
def test_fields_match_simplefix(messages: list[list[tuple[int, bytes]]], step: int) -> None:
    # tags that simplefix or the header treat specially are kept out of bodies
    special = {34, 35, 43, 49, 52, 56, *_SIMPLEFIX_RAW}
    stream = b""
    expected: list[list[tuple[int, bytes]]] = []
    for i, fields in enumerate(messages):
        body = [(t, v) for t, v in fields if t not in special]
        stream += fix_message("B", i + 1, list(body))
        expected.append(body)
    parser = simplefix.FixParser()
    parser.append_buffer(stream)
    reference = []
    while (msg := parser.get_message()) is not None:
        reference.append([(int(t), v) for t, v in msg.pairs])
    reader = FixReader()
    frames: list[Frame] = []
    for i in range(0, len(stream), step):
        reader.feed(stream[i : i + step], 0)
        got, errors = drain(reader)
        assert not errors
        frames.extend(got)
    assert len(frames) == len(reference) == len(messages)
    for frame, ref, body in zip(frames, reference, expected, strict=True):
        # simplefix keeps 8, 9, 35 and 10; ours: everything after 35, 10 excluded
        assert frame.fields() == [(t, v) for t, v in ref if t not in (8, 9, 35, 10)]
        assert [(t, v) for t, v in frame.fields() if t not in special] == body


# -- robustness ------------------------------------------------------------------------------
_noise = st.lists(
    st.sampled_from(
        [b"8=FIX.4.4\x01", b"9=", b"12", b"5\x01", b"35=X\x01", b"34=", b"1\x01", b"10=",
         b"000\x01", b"\x01", b"=", b"268=", b"2\x01", b"279=0\x01", b"8=", b"\xff", HB, X,
         HB[:17], X[5:], b"9=9999999\x01", b"52=20240102-12:00:00\x01"]
    ),
    max_size=60,
).map(b"".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=3000), _noise), st.integers(1, 97))
def test_random_input_only_raises_the_scanners_error(data: bytes, step: int) -> None:
    reader = FixReader(max_message=4096)
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step], 0)
        try:
            drain(reader)
        except FixDecodeError:  # pragma: no cover - drain catches these
            raise
        # never more than one bounded partial message waits
        assert reader.buffered <= 4096 + 64


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(HB + X + HB)))
def test_truncated_stream_yields_only_whole_messages(cut: int) -> None:
    stream = HB + X + HB
    reader = FixReader()
    reader.feed(stream[:cut], 0)
    frames, errors = drain(reader)
    assert not errors
    whole = [m for m, end in ((HB, len(HB)), (X, len(HB + X)), (HB, len(stream))) if end <= cut]
    assert [f.raw() for f in frames] == whole
    reader.feed(stream[cut:], 0)
    rest, errors = drain(reader)
    assert not errors
    assert [f.raw() for f in frames + rest] == [HB, X, HB]


def test_data_fields_may_hold_soh() -> None:
    blob = b"a\x01b=\x01c"
    body: list[tuple[int, object]] = [(95, len(blob)), (96, blob), (58, "after")]
    data = fix_message("B", 3, body)
    reader = FixReader()
    reader.feed(data, 0)
    (f,), errors = drain(reader)
    assert not errors
    assert f.get(96) == blob
    assert f.get(58) == b"after"
    assert (96, blob) in f.fields()
    # a length that does not land on SOH is malformed, not a crash
    bad = fix_message("B", 4, [(95, 2), (96, blob)])
    reader.feed(bad, 0)
    (g,), _ = drain(reader)
    with pytest.raises(MalformedMessage):
        g.fields()


def test_scan_messages_reports_and_skips() -> None:
    errors: list[Exception] = []
    frames = scan_messages(b"zz" + HB + X, errors.append)
    assert [f.msg_type for f in frames] == ["0", "X"]
    assert len(errors) == 1
