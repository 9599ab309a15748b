"""Fuzzing the DBN decoder: whatever the bytes, it only ever produces ticks and
``on_malformed`` calls (plus control callbacks) -- never an exception, never a hang
(pytest-timeout guards that), never an unbounded kept tail."""

from __future__ import annotations

import itertools
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from hub_core.dbn import (
    DbnDecoder,
    encode_book_update,
    encode_error,
    encode_heartbeat,
    encode_mbp1_raw,
    encode_snapshot,
    encode_symbol_mapping,
    encode_trade_raw,
)
from hub_core.fixed import PRICE_SCALE
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Quote, Trade

from .test_dbn import EX, IID, RECV, SYM, Collector

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
KINDS = {"tick", "mapping", "error", "system", "malformed", "gap"}
FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

iids = st.sampled_from([IID, 7, 70_000])  # 7 and 70000 are unmapped: reported once each
prices = st.integers(-(2**63), 2**63 - 2)
counts = st.integers(0, U32_MAX).map(lambda n: n * PRICE_SCALE)
u64s = st.integers(0, U64_MAX)
u32s = st.integers(0, U32_MAX)
sides = st.sampled_from("ABN")


def _snapshot(iid: int, px: int, n: int, ts: int, seq: int) -> bytes:
    lv = tuple((px - i, (i + 1) * PRICE_SCALE) for i in range(n))
    return encode_snapshot(BookSnapshot(EX, SYM, lv, lv[:3], ts, ts, seq), iid)


records = st.one_of(
    st.builds(
        lambda iid, px, sz, side, ts, seq: encode_trade_raw(iid, px, sz, side, ts, ts, seq),
        iids, prices, counts, sides, u64s, u32s,
    ),
    st.builds(
        lambda iid, px, sz, ts, seq: encode_mbp1_raw(iid, px, sz, px + 1, sz, ts, ts, seq),
        iids, st.integers(-(2**62), 2**62), counts, u64s, u32s,
    ),
    st.builds(
        lambda iid, px, sz, side, act, oid, seq: encode_book_update(
            BookUpdate(EX, SYM, side, px, sz, 1, 2, act, oid, seq), iid
        ),
        iids, prices, counts, sides, st.sampled_from("ACMRTFN"), u64s, u32s,
    ),
    st.builds(_snapshot, iids, st.integers(-(2**62), 2**62), st.integers(0, 10), u64s, u32s),
    st.builds(lambda iid, ts: encode_symbol_mapping(iid, f"S{iid}", ts), iids, u64s),
    st.builds(encode_heartbeat, u64s),
    st.builds(encode_error, st.text(max_size=40), st.integers(0, 255), u64s),
)  # fmt: skip
streams = st.lists(records, min_size=1, max_size=12)


def new(max_record_len: int = 1024, check_sequence: bool = False) -> tuple[DbnDecoder, Collector]:
    h = Collector()
    dec = DbnDecoder(EX, h, max_record_len=max_record_len)
    dec.symbols[IID] = SYM
    dec.check_sequence = check_sequence
    return dec, h


def feed_in_pieces(dec: DbnDecoder, data: bytes, cuts: list[int]) -> int:
    total = 0
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        total += dec.feed(data[pos:cut], RECV)
        pos = cut
    return total + dec.feed(data[pos:], RECV)


def check_invariants(dec: DbnDecoder, h: Collector, n: int, max_record_len: int) -> None:
    assert n >= 0
    # a partial record, or while resynchronising an undecided chain of two records
    assert dec.pending <= 2 * max_record_len + 40
    for event in h.events:
        assert event[0] in KINDS
        if event[0] == "tick":
            tick = event[1]
            assert isinstance(tick, Trade | Quote | BookUpdate | BookSnapshot | BookClear)
            assert (tick.exchange, tick.ts_recv) == (EX, RECV)
            assert isinstance(tick.symbol, str) and tick.symbol
        elif event[0] == "malformed":
            assert isinstance(event[1], str) and event[1]
    data_events = sum(1 for e in h.events if e[0] in ("tick", "mapping", "error", "system"))
    assert n == data_events


@FUZZ
@given(
    st.binary(max_size=3000),
    st.lists(st.integers(0, 3000), max_size=8),
    st.sampled_from([16, 64, 400, 1024]),
    st.booleans(),
)
def test_random_bytes(data: bytes, cuts: list[int], max_record_len: int, check: bool) -> None:
    dec, h = new(max_record_len, check)
    n = feed_in_pieces(dec, data, cuts)
    check_invariants(dec, h, n, max_record_len)


@FUZZ
@given(streams, st.data())
def test_truncated_streams_decode_their_whole_records(
    recs: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(recs)
    cut = data.draw(st.integers(0, len(stream)))
    whole = 0
    size = 0
    for r in recs:
        if size + len(r) > cut:
            break
        size += len(r)
        whole += 1
    expected_dec, expected = new()
    expected_dec.feed(b"".join(recs[:whole]), RECV)
    dec, h = new()
    n = dec.feed(stream[:cut], RECV)
    assert h.events == expected.events
    assert dec.pending == cut - size
    assert n == sum(1 for e in h.events if e[0] != "malformed")
    assert whole == 0 or n > 0


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete"]), st.integers(0, 10**6),
              st.integers(0, 255)),
    min_size=1,
    max_size=6,
)  # fmt: skip


def mutate(stream: bytes, muts: list[tuple[str, int, int]]) -> tuple[bytes, int]:
    """Apply the mutations; return the result and the first byte position changed."""
    buf = bytearray(stream)
    first = len(buf)
    for op, where, value in muts:
        i = where % (len(buf) + 1)
        if op == "insert":
            buf.insert(i, value)
        elif i == len(buf):
            continue
        elif op == "delete":
            del buf[i]
        elif op == "flip":
            buf[i] ^= 1 << (value % 8)
        else:
            buf[i] = value
        first = min(first, i)
    return bytes(buf), first


@FUZZ
@given(streams, mutations, st.lists(st.integers(0, 10**6), max_size=5), st.booleans())
def test_mutated_streams(
    recs: list[bytes], muts: list[tuple[str, int, int]], cuts: list[int], check: bool
) -> None:
    stream = b"".join(recs)
    bad, first = mutate(stream, muts)
    dec, h = new(check_sequence=check)
    n = feed_in_pieces(dec, bad, cuts)
    check_invariants(dec, h, n, 1024)
    # every record wholly before the first changed byte decodes exactly as before
    intact = []
    size = 0
    for r in recs:
        if size + len(r) > first:
            break
        intact.append(r)
        size += len(r)
    expected_dec, expected = new(check_sequence=check)
    expected_dec.feed(b"".join(intact), RECV)
    assert h.events[: len(expected.events)] == expected.events


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=40), st.integers(1, 2**31))
def test_sequence_gaps_reported_exactly(steps: list[int], start: int) -> None:
    seqs = []
    seq = start
    for step in steps:
        seqs.append(seq)
        seq += step
    stream = b"".join(
        encode_trade_raw(IID, 1, PRICE_SCALE, "B", 1000 + i, 1000 + i, s)
        for i, s in enumerate(seqs)
    )
    dec, h = new(check_sequence=True)
    assert dec.feed(stream, RECV) == len(seqs)
    expected: list[tuple[object, ...]] = []
    for i, s in enumerate(seqs):
        if i and s != seqs[i - 1] + 1:
            expected.append(("gap", seqs[i - 1] + 1, s, 1000 + i))
    assert [e for e in h.events if e[0] == "gap"] == expected
    assert [e[0] for e in h.events].count("tick") == len(seqs)
    assert dec.next_sequence == seqs[-1] + 1


# -- framing errors are counted and recovered from (deterministic, seeded) -----------------


def _realistic(rng: random.Random, i: int) -> bytes:
    ts = 1_700_000_000_000_000_000 + i * 1_000 + rng.randrange(1_000)
    px = rng.randrange(1, 10**6) * 250_000_000
    sz = rng.randrange(1, 500) * PRICE_SCALE
    kind = rng.randrange(4)
    if kind == 0:
        return encode_trade_raw(IID, px, sz, rng.choice("AB"), ts, ts + 5_000, i + 1)
    if kind == 1:
        return encode_mbp1_raw(IID, px, sz, px + 250_000_000, sz, ts, ts + 5_000, i + 1)
    if kind == 2:
        b = BookUpdate(EX, SYM, rng.choice("AB"), px, sz, ts, ts, rng.choice("ACM"), i, i + 1)
        return encode_book_update(b, IID)
    return _snapshot(IID, px, rng.randrange(11), ts, i + 1)


def _feed_randomly(rng: random.Random, dec: DbnDecoder, stream: bytes) -> None:
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 7, 48, 100, 1000, 4096, 65536])
        dec.feed(stream[pos : pos + step], RECV)
        pos += step


def test_impossible_lengths_are_counted_and_resynced() -> None:
    rng = random.Random(20240607)
    for _ in range(300):
        recs = [_realistic(rng, i) for i in range(40)]
        bad_at = sorted(rng.sample(range(1, 39), rng.randrange(1, 4)))
        if any(b - a < 4 for a, b in itertools.pairwise(bad_at)):
            continue  # resync wants three good records in a row after a corruption
        stream = bytearray()
        for i, r in enumerate(recs):
            b = bytearray(r)
            if i in bad_at:
                # impossible: below the header, or not a size of this rtype
                b[0] = rng.choice([0, 1, 2, 3, b[0] - 1, b[0] + 1, b[0] + 3])
            stream += b
        dec, h = new()
        dec.check_sequence = True
        _feed_randomly(rng, dec, bytes(stream))
        expected = [i + 1 for i in range(40) if i not in bad_at]
        assert [t.sequence for t in h.ticks] == expected  # type: ignore[attr-defined]
        assert len(h.malformed) == len(bad_at)
        # the lost records also show up as sequence gaps
        gaps = [e for e in h.events if e[0] == "gap"]
        assert [(g[1], g[2]) for g in gaps] == [(i + 1, i + 2) for i in bad_at]
        assert dec.pending == 0


def test_unknown_rtypes_are_counted_and_skipped() -> None:
    rng = random.Random(7)
    recs = [_realistic(rng, i) for i in range(50)]
    stream = bytearray()
    unknown = 0
    for i, r in enumerate(recs):
        stream += r
        if i % 7 == 3:
            rtype = rng.choice([0x02, 0x30, 0x63, 0x99, 0xFF])
            length = rng.randrange(4, 60) * 4
            stream += bytes([length // 4, rtype]) + bytes(length - 2)
            unknown += 1
    dec, h = new()
    n = dec.feed(bytes(stream), RECV)
    assert n == 50
    assert len(h.malformed) == unknown
    assert all("unknown DBN rtype" in m for m in h.malformed)
    assert [t.sequence for t in h.ticks] == list(range(1, 51))  # type: ignore[attr-defined]


def test_pathological_garbage_is_linear() -> None:
    # headers that are almost right everywhere, and a long run of zeros: the scanner
    # must keep moving (pytest-timeout fails a quadratic or endless scan)
    rng = random.Random(3)
    dec, h = new()
    garbage = (
        bytes(rng.randrange(256) for _ in range(200_000)),
        b"\x0d\x00" * 50_000,
        b"\x0c\x00\x00\x00" + bytes(44) + b"\x0c\x00" * 30_000,
        bytes(100_000),
    )
    for chunk in garbage:
        n = dec.feed(chunk, RECV)
        check_invariants(dec, h, n, 1024)
        h.events.clear()
    for chunk in garbage:
        for i in range(0, 4_000, 1):  # one byte at a time through the resync tail
            dec.feed(chunk[i : i + 1], RECV)
        assert dec.pending <= 2 * 1024 + 40
    dec.reset()
    dec.symbols[IID] = SYM
    assert dec.feed(encode_trade_raw(IID, 1, PRICE_SCALE, "B", 1, 1, 1), RECV) == 1
