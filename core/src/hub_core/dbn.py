"""DBN (Databento Binary Encoding, version 3) records: compiled decoder and encoder.

One data plane for every binary feed: ``DbnDecoder.feed`` decodes a whole
buffer of records at a time and hands ticks to a ``RecordHandler`` (the
hub's ``ConnectionSink``); the ``encode_*`` functions write the same records
back from ticks, so files we write open in Databento's own tools.

Layouts, the rtype -> tick mapping and the error behaviour are documented in
``sdk-docs/dbn.md``; the tests check every layout against ``databento-dbn``.

Speed notes (this module is compiled with mypyc together with ``ticks``):
fields are read with ``librt.strings`` fixed-width readers, which mypyc
turns into inline bounds-checked loads; ticks are built positionally in this
compilation unit (native construction); dispatch is on the integer rtype.
Unsigned fields are read as signed and masked, because mypyc only has native
primitives for the signed readers. ``feed`` takes ``bytes`` (not bytearray or
memoryview): the readers need it, and a partial tail is kept as bytes and
joined to the next buffer only when there is one.
"""

from typing import Final, final

from librt.strings import (
    BytesWriter,
    read_i16_le,
    read_i32_le,
    read_i64_le,
    write_i16_le,
    write_i32_le,
    write_i64_le,
)
from mypy_extensions import i16, i32, i64, mypyc_attr

from hub_core.fixed import PRICE_SCALE
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Quote, Trade

# -- constants -------------------------------------------------------------------

DBN_VERSION: Final = 3
UNDEF_PRICE: Final = 9_223_372_036_854_775_807
"""DBN's "no price" (i64 max)."""
UNDEF_TIMESTAMP: Final = 18_446_744_073_709_551_615
"""DBN's "no timestamp" (u64 max)."""
SYMBOL_CSTR_LEN: Final = 71
SIZE_DECIMALS_CODE: Final = 68
"""The system-record code (``ord("D")``) saying in what fraction of a unit an
instrument's sizes are from here on: DBN sizes are whole numbers, a crypto venue's
are not (see ``size_decimals_text``)."""
SIZE_DECIMALS_PREFIX: Final = "hub.size_decimals "
"""Width of a symbol field in DBN v2/v3 (70 characters + NUL)."""
HEADER_LEN: Final = 16
"""Every record starts with a 16-byte header: length/4, rtype, publisher, instrument, ts_event."""

# record types (the header's ``rtype`` byte)
RTYPE_MBP_0: Final = 0x00
RTYPE_MBP_1: Final = 0x01
RTYPE_MBP_10: Final = 0x0A
RTYPE_OHLCV_DEPRECATED: Final = 0x11
RTYPE_STATUS: Final = 0x12
RTYPE_INSTRUMENT_DEF: Final = 0x13
RTYPE_IMBALANCE: Final = 0x14
RTYPE_ERROR: Final = 0x15
RTYPE_SYMBOL_MAPPING: Final = 0x16
RTYPE_SYSTEM: Final = 0x17
RTYPE_STATISTICS: Final = 0x18
RTYPE_OHLCV_1S: Final = 0x20
RTYPE_OHLCV_1M: Final = 0x21
RTYPE_OHLCV_1H: Final = 0x22
RTYPE_OHLCV_1D: Final = 0x23
RTYPE_OHLCV_EOD: Final = 0x24
RTYPE_MBO: Final = 0xA0
RTYPE_CMBP_1: Final = 0xB1
RTYPE_CBBO_1S: Final = 0xC0
RTYPE_CBBO_1M: Final = 0xC1
RTYPE_TCBBO: Final = 0xC2
RTYPE_BBO_1S: Final = 0xC3
RTYPE_BBO_1M: Final = 0xC4
RTYPE_TBBO: Final = 0xC5

# record sizes in bytes (DBN v3, without ts_out)
TRADE_LEN: Final = 48
MBP1_LEN: Final = 80
MBP10_LEN: Final = 368
MBO_LEN: Final = 56
BBO_LEN: Final = 80
SYMBOL_MAPPING_LEN: Final = 176
ERROR_LEN: Final = 320
SYSTEM_LEN: Final = 320

# flags byte: F_LAST marks the last record of an event (every record we write is one event)
F_LAST: Final = 0x80
SYSTEM_CODE_HEARTBEAT: Final = 0
HEARTBEAT_MESSAGE: Final = "Heartbeat"
STYPE_INSTRUMENT_ID: Final = 0
STYPE_RAW_SYMBOL: Final = 1
STYPE_PARENT: Final = 4

_ERR_TEXT_LEN: Final = 302
_SYS_TEXT_LEN: Final = 303
_DATASET_LEN: Final = 16
_METADATA_FIXED_LEN: Final = 100
_METADATA_RESERVED_LEN: Final = 53
_METADATA_RESERVED_LEN_V1: Final = 47
_NULL_SCHEMA: Final = 0xFFFF
_NULL_STYPE: Final = 0xFF

_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFF_FFFF
_U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF
_I64_MIN: Final = -9_223_372_036_854_775_808
_TWO_64: Final = 1 << 64


def _min_words_table() -> bytes:
    """Smallest valid record length (in 4-byte words) per rtype; 0 = unknown rtype.

    Decoded rtypes need their full v3 layout. Rtypes we only skip need just
    their smallest layout across DBN v1-v3 (statistics and definitions grew in
    v2/v3): we never read their fields, and this keeps v2 streams decodable.
    """
    t = bytearray(256)
    for rt, size in (
        (RTYPE_MBP_0, TRADE_LEN),
        (RTYPE_MBP_1, MBP1_LEN),
        (RTYPE_MBP_10, MBP10_LEN),
        (RTYPE_MBO, MBO_LEN),
        (RTYPE_BBO_1S, BBO_LEN),
        (RTYPE_BBO_1M, BBO_LEN),
        (RTYPE_CMBP_1, BBO_LEN),
        (RTYPE_CBBO_1S, BBO_LEN),
        (RTYPE_CBBO_1M, BBO_LEN),
        (RTYPE_TCBBO, BBO_LEN),
        (RTYPE_TBBO, MBP1_LEN),
        (RTYPE_SYMBOL_MAPPING, SYMBOL_MAPPING_LEN),
        (RTYPE_ERROR, ERROR_LEN),
        (RTYPE_SYSTEM, SYSTEM_LEN),
        # skipped: ohlcv, status, definition (v1), imbalance, statistics (v1)
        (RTYPE_OHLCV_DEPRECATED, 56),
        (RTYPE_OHLCV_1S, 56),
        (RTYPE_OHLCV_1M, 56),
        (RTYPE_OHLCV_1H, 56),
        (RTYPE_OHLCV_1D, 56),
        (RTYPE_OHLCV_EOD, 56),
        (RTYPE_STATUS, 40),
        (RTYPE_INSTRUMENT_DEF, 360),
        (RTYPE_IMBALANCE, 112),
        (RTYPE_STATISTICS, 64),
    ):
        t[rt] = size // 4
    return bytes(t)


_MIN_WORDS: Final = _min_words_table()


def _exact_sizes_table() -> bytes:
    """Resync only: 1 at ``rtype * 256 + words`` for every length a real record of
    that rtype has (its v1/v2/v3 layouts, each with or without the 8-byte ts_out)."""
    sizes: dict[int, tuple[int, ...]] = {
        RTYPE_MBP_0: (TRADE_LEN,),
        RTYPE_MBP_1: (MBP1_LEN,),
        RTYPE_MBP_10: (MBP10_LEN,),
        RTYPE_MBO: (MBO_LEN,),
        RTYPE_BBO_1S: (BBO_LEN,),
        RTYPE_BBO_1M: (BBO_LEN,),
        RTYPE_CMBP_1: (BBO_LEN,),
        RTYPE_CBBO_1S: (BBO_LEN,),
        RTYPE_CBBO_1M: (BBO_LEN,),
        RTYPE_TCBBO: (BBO_LEN,),
        RTYPE_TBBO: (MBP1_LEN,),
        RTYPE_SYMBOL_MAPPING: (SYMBOL_MAPPING_LEN,),
        RTYPE_ERROR: (ERROR_LEN,),
        RTYPE_SYSTEM: (SYSTEM_LEN,),
        RTYPE_OHLCV_DEPRECATED: (56,),
        RTYPE_OHLCV_1S: (56,),
        RTYPE_OHLCV_1M: (56,),
        RTYPE_OHLCV_1H: (56,),
        RTYPE_OHLCV_1D: (56,),
        RTYPE_OHLCV_EOD: (56,),
        RTYPE_STATUS: (40,),
        RTYPE_INSTRUMENT_DEF: (360, 400, 520),
        RTYPE_IMBALANCE: (112,),
        RTYPE_STATISTICS: (64, 80),
    }
    t = bytearray(256 * 256)
    for rt, lens in sizes.items():
        for size in lens:
            t[rt * 256 + size // 4] = 1
            t[rt * 256 + size // 4 + 2] = 1  # with ts_out
    return bytes(t)


_EXACT_SIZES: Final = _exact_sizes_table()
# one-character strings for side/action bytes: a tuple index, no per-record chr()
_CHARS: Final = tuple([chr(i) for i in range(256)])
_ACTION_CLEAR: Final = 82  # 'R': an mbo record that clears the book (a BookClear)


def _cstr(data: bytes, start: i64, width: i64) -> str:
    """A NUL-terminated text field of ``width`` bytes (never raises on bad UTF-8)."""
    end: i64 = data.find(b"\x00", start, start + width)
    if end < 0:
        end = start + width
    return data[start:end].decode("utf-8", "replace")


def _u32(v: i32) -> i64:
    return i64(v) & 0xFFFF_FFFF


def _u64(v: i64) -> int:
    return int(v) if v >= 0 else int(v) + _TWO_64


def _is_side(c: int) -> bool:
    return c == 65 or c == 66 or c == 78  # 'A' 'B' 'N'


def _is_action(c: int) -> bool:
    # 'A' 'C' 'F' 'M' 'N' 'R' 'T'
    return c == 65 or c == 67 or c == 70 or c == 77 or c == 78 or c == 82 or c == 84


# -- decoding --------------------------------------------------------------------


@mypyc_attr(allow_interpreted_subclasses=True)
class RecordHandler:
    """Receives what ``DbnDecoder`` decodes. ``ConnectionSink`` subclasses it.

    Native (compiled) base class: the decoder calls these through a vtable.
    Interpreted subclasses (tests, tools) are allowed; they are called through
    the Python API, so they are slower. Every method does nothing by default.
    """

    def on_trade(self, tick: Trade) -> None:
        """A trade (mbp-0 / trades, tbbo, tcbbo)."""

    def on_quote(self, tick: Quote) -> None:
        """Top of book (mbp-1, bbo-1s/1m, cmbp-1, cbbo-1s/1m)."""

    def on_book_update(self, tick: BookUpdate) -> None:
        """An order-book event (mbo), any action but ``R``."""

    def on_book_clear(self, tick: BookClear) -> None:
        """A clear-book event (mbo with action ``R``)."""

    def on_snapshot(self, tick: BookSnapshot) -> None:
        """Ten levels of book (mbp-10)."""

    def on_symbol_mapping(self, instrument_id: int, symbol: str, ts_event: int) -> None:
        """A symbol-mapping record; the decoder has already updated its ``symbols``."""

    def on_error_record(self, message: str, code: int, ts_event: int) -> None:
        """An error record from the venue/gateway."""

    def on_system_record(self, message: str, code: int, ts_event: int) -> None:
        """A system record; heartbeats are ``code == 0`` (``SYSTEM_CODE_HEARTBEAT``)."""

    def on_malformed(self, reason: str) -> None:
        """Input the decoder could not use (reason says what and what it did about it)."""

    def on_sequence_gap(self, expected: int, got: int, ts_event: int) -> None:
        """With ``check_sequence``: records ``expected`` .. ``got - 1`` are missing."""


@final
class DbnDecoder:
    """Decodes a stream of DBN v3 records (no metadata header: callers strip it).

    ``feed`` decodes every whole record in (kept tail + data) and keeps a
    trailing partial record for the next call. Malformed input never raises:
    it is reported through ``handler.on_malformed`` (see ``sdk-docs/dbn.md``
    for how the decoder resynchronises).
    """

    exchange: str
    handler: RecordHandler
    symbols: dict[int, str]
    """instrument_id -> symbol; filled by symbol-mapping records or by the plugin."""
    ignored: set[int]
    """instrument_ids whose market records are skipped (unsubscribed mid-session, on a
    venue that cannot unsubscribe); see ``ignore``."""
    check_sequence: bool
    """When True, records' ``sequence`` must be contiguous (gaps -> ``on_sequence_gap``)."""
    mbp1_trades: bool
    """When True, an mbp-1 record whose action is a trade (``T``: Databento's mbp-1 and
    tbbo schemas) is also a ``Trade``, published before its ``Quote``."""
    next_sequence: int
    """The sequence expected next; 0 = unknown (the next sequenced record sets it)."""
    max_record_len: int
    size_divisors: dict[int, int]
    """instrument_id -> divisor of its record sizes (``10 ** decimals``), for files whose
    sizes are in fractions of a unit (``hub.size_decimals`` records; sdk-docs/dbn.md)."""
    keep_whole: bool
    """When True, ``feed`` keeps the whole records it decoded in ``whole`` (the recorder's
    pass-through of DBN bytes)."""
    whole: bytes
    record_ts_recv: bool
    """When True, a tick's ``ts_recv`` is the record's own ``ts_recv`` field, not the one
    passed to ``feed`` (replaying a file: the time it was received, not now)."""

    def __init__(self, exchange: str, handler: RecordHandler, max_record_len: int = 1024) -> None:
        if max_record_len < HEADER_LEN:
            raise ValueError(f"max_record_len must be at least {HEADER_LEN}, got {max_record_len}")
        self.exchange = exchange
        self.handler = handler
        self.symbols = {}
        self.ignored = set()
        self.check_sequence = False
        self.mbp1_trades = False
        self.next_sequence = 0
        self.max_record_len = max_record_len
        self.record_ts_recv = False
        self.keep_whole = False
        self.whole = b""
        self.size_divisors = {}
        self._tail = b""
        # True after a framing error until a plausible record boundary is found
        self._resyncing = False

    @property
    def pending(self) -> int:
        """Bytes of a partial record kept for the next ``feed``."""
        return len(self._tail)

    def reset(self) -> None:
        """A new session: drop the partial tail, sequence state and symbol map."""
        self._tail = b""
        self._resyncing = False
        self.next_sequence = 0
        self.symbols.clear()
        self.ignored.clear()
        self.size_divisors.clear()

    def ignore(self, instrument_id: int, on: bool = True) -> None:
        """Skip (``on``) or decode again the market records of ``instrument_id``; its
        symbol-mapping, error and system records are always decoded."""
        if on:
            self.ignored.add(instrument_id)
        else:
            self.ignored.discard(instrument_id)

    def feed(self, data: bytes, ts_recv: int) -> int:
        """Decode every whole record in (kept tail + ``data``); return how many were decoded.

        ``ts_recv`` (local receive time, ns) is stamped on every tick. Counted:
        ticks, symbol-mapping, error and system records; not counted: known
        rtypes we skip (ohlcv, status, definition, imbalance, statistics) and
        malformed input.
        """
        if len(self._tail) > 0:
            data = self._tail + data
            self._tail = b""
        if self.keep_whole:
            self.whole = b""
        n: i64 = len(data)
        pos: i64 = 0
        count = 0
        max_len: i64 = self.max_record_len
        if self._resyncing:
            pos = self._scan(data, 0, n)
            if pos < 0:
                return 0
        while pos < n:
            words: i64 = data[pos]
            rlen = words * 4
            if rlen < HEADER_LEN or rlen > max_len:
                self._framing_error(
                    f"impossible record length {rlen} (length byte {words}; must be "
                    f"{HEADER_LEN}..{max_len})",
                    data,
                    pos,
                )
                pos = self._scan(data, pos + 1, n)
                if pos < 0:
                    return count
                continue
            if pos + 2 > n:
                break
            rtype: i64 = data[pos + 1]
            end = pos + rlen
            if _EXACT_SIZES[rtype * 256 + words] == 0:
                # checked before the whole record is here: a bad length is caught at once
                known_words: i64 = _MIN_WORDS[rtype]
                if known_words != 0:
                    self._framing_error(
                        f"a {rlen}-byte record of rtype 0x{rtype:02x}, which is "
                        f"{known_words * 4} bytes (+8 with ts_out)",
                        data,
                        pos,
                    )
                    pos = self._scan(data, pos + 1, n)
                    if pos < 0:
                        return count
                    continue
                if end > n:
                    break
                # An unknown rtype is skipped by its length (DBN's rule for new record
                # types) only if a record follows it; else the length is garbage too.
                if end < n and self._candidate(data, end, n) == 0:
                    self._framing_error(
                        f"unknown rtype 0x{rtype:02x} with a length ({rlen}) that does not "
                        "lead to another record",
                        data,
                        pos,
                    )
                    pos = self._scan(data, pos + 1, n)
                    if pos < 0:
                        return count
                    continue
                self.handler.on_malformed(
                    f"{self.exchange}: unknown DBN rtype 0x{rtype:02x} ({rlen}-byte record); "
                    "skipped by its length"
                )
                pos = end
                continue
            if end > n:
                break
            if (
                len(self.ignored) > 0
                and rtype != RTYPE_SYMBOL_MAPPING
                and rtype != RTYPE_SYSTEM
                and rtype != RTYPE_ERROR
                and _u32(read_i32_le(data, pos + 4)) in self.ignored
            ):
                pos = end
                continue
            if rtype == RTYPE_MBP_0:
                self._trade(data, pos, ts_recv, True)
            elif rtype == RTYPE_MBP_1:
                self._quote(data, pos, ts_recv, 1)
            elif rtype == RTYPE_MBO:
                self._mbo(data, pos, ts_recv)
            elif rtype == RTYPE_MBP_10:
                self._mbp10(data, pos, ts_recv)
            elif rtype in (RTYPE_BBO_1S, RTYPE_BBO_1M):
                self._quote(data, pos, ts_recv, 2)
            elif rtype in (RTYPE_CMBP_1, RTYPE_CBBO_1S, RTYPE_CBBO_1M):
                self._quote(data, pos, ts_recv, 0)
            elif rtype == RTYPE_TBBO:
                self._trade(data, pos, ts_recv, True)
            elif rtype == RTYPE_TCBBO:
                self._trade(data, pos, ts_recv, False)
            elif rtype == RTYPE_SYMBOL_MAPPING:
                if not self._symbol_mapping(data, pos):
                    pos = end
                    continue
            elif rtype == RTYPE_SYSTEM:
                self.handler.on_system_record(
                    _cstr(data, pos + 16, _SYS_TEXT_LEN), data[pos + 319], self._ts_event(data, pos)
                )
            elif rtype == RTYPE_ERROR:
                self.handler.on_error_record(
                    _cstr(data, pos + 16, _ERR_TEXT_LEN), data[pos + 318], self._ts_event(data, pos)
                )
            else:
                # a known rtype we do not turn into ticks: skip it silently
                pos = end
                continue
            count += 1
            pos = end
        if pos < n:
            self._tail = data[pos:]
        if self.keep_whole:
            self.whole = data if pos >= n else data[:pos]
        return count

    # -- per-record decoders (offsets: sdk-docs/dbn.md) -----------------------------
    def _symbol_of(self, data: bytes, pos: i64) -> str:
        iid = _u32(read_i32_le(data, pos + 4))
        sym = self.symbols.get(iid)
        if sym is None:
            # remembered, so on_malformed fires once per unknown id
            sym = str(iid)
            self.symbols[iid] = sym
            self.handler.on_malformed(
                f"{self.exchange}: no symbol mapping for instrument_id {iid}; "
                f"publishing its ticks under symbol {sym!r}"
            )
        return sym

    def _ts_event(self, data: bytes, pos: i64) -> int:
        return _u64(read_i64_le(data, pos + 8))

    def _size(self, data: bytes, pos: i64, at: i64) -> int:
        """The fixed-point size of the u32 count at ``pos + at``."""
        size: int = _u32(read_i32_le(data, pos + at)) * PRICE_SCALE
        if len(self.size_divisors) > 0:
            div = self.size_divisors.get(_u32(read_i32_le(data, pos + 4)), 1)
            if div != 1:
                size = size // div
        return size

    def _sequence(self, seq: i64, ts_event: int) -> None:
        """Check contiguity; 0 means "not sequenced" and is ignored."""
        if seq == 0:
            return
        # an int, not i64: next_sequence is public and may be set to anything
        expected: int = self.next_sequence
        # u32 wrap lands on 0 = unknown, so a wrap never reports a gap
        self.next_sequence = (seq + 1) & 0xFFFF_FFFF
        if expected == 0 or seq == expected:
            return
        if seq > expected:
            self.handler.on_sequence_gap(expected, seq, ts_event)
        else:
            self.handler.on_malformed(
                f"{self.exchange}: sequence went backwards: expected {expected}, got {seq} "
                "(duplicate or replayed record); delivered, now expecting the next after it"
            )

    def _trade(self, data: bytes, pos: i64, ts_recv: int, sequenced: bool) -> None:
        symbol = self._symbol_of(data, pos)
        if self.record_ts_recv:
            ts_recv = _u64(read_i64_le(data, pos + 32))
        ts_event = _u64(read_i64_le(data, pos + 8))
        seq: i64 = 0
        if sequenced:
            seq = _u32(read_i32_le(data, pos + 44))
            if self.check_sequence:
                self._sequence(seq, ts_event)
        self._publish_trade(data, pos, symbol, ts_event, ts_recv, seq)

    def _publish_trade(
        self, data: bytes, pos: i64, symbol: str, ts_event: int, ts_recv: int, seq: i64
    ) -> None:
        """The Trade of a record whose price, size and side sit where trades (mbp-0)
        and mbp-1 records keep them (offsets 16, 24, 29)."""
        self.handler.on_trade(
            Trade(
                self.exchange,
                symbol,
                read_i64_le(data, pos + 16),
                self._size(data, pos, 24),
                _CHARS[data[pos + 29]],
                ts_event,
                ts_recv,
                seq,
            )
        )

    def _quote(self, data: bytes, pos: i64, ts_recv: int, kind: i64) -> None:
        """kind: 1 = mbp-1 (checked sequence), 2 = bbo (sequence, unchecked), 0 = none."""
        symbol = self._symbol_of(data, pos)
        if self.record_ts_recv:
            ts_recv = _u64(read_i64_le(data, pos + 32))
        ts_event = _u64(read_i64_le(data, pos + 8))
        seq: i64 = 0
        if kind != 0:
            seq = _u32(read_i32_le(data, pos + 44))
            if kind == 1 and self.check_sequence:
                self._sequence(seq, ts_event)
        if kind == 1 and self.mbp1_trades and data[pos + 28] == 84:  # action 'T'
            self._publish_trade(data, pos, symbol, ts_event, ts_recv, seq)
        bid_px = read_i64_le(data, pos + 48)
        ask_px = read_i64_le(data, pos + 56)
        bid_sz: i64 = 0
        ask_sz: i64 = 0
        # an undefined side becomes price 0 / size 0 (our "no level")
        if bid_px == UNDEF_PRICE:
            bid_px = 0
        else:
            bid_sz = self._size(data, pos, 64)
        if ask_px == UNDEF_PRICE:
            ask_px = 0
        else:
            ask_sz = self._size(data, pos, 68)
        self.handler.on_quote(
            Quote(self.exchange, symbol, bid_px, bid_sz, ask_px, ask_sz, ts_event, ts_recv, seq)
        )

    def _mbo(self, data: bytes, pos: i64, ts_recv: int) -> None:
        symbol = self._symbol_of(data, pos)
        if self.record_ts_recv:
            ts_recv = _u64(read_i64_le(data, pos + 40))
        ts_event = _u64(read_i64_le(data, pos + 8))
        seq = _u32(read_i32_le(data, pos + 52))
        if self.check_sequence:
            self._sequence(seq, ts_event)
        action = data[pos + 38]
        if action == _ACTION_CLEAR:
            # the record's side, price and size say nothing for a clear: not copied
            self.handler.on_book_clear(BookClear(self.exchange, symbol, ts_event, ts_recv, seq))
            return
        self.handler.on_book_update(
            BookUpdate(
                self.exchange,
                symbol,
                _CHARS[data[pos + 39]],
                read_i64_le(data, pos + 24),
                self._size(data, pos, 32),
                ts_event,
                ts_recv,
                _CHARS[action],
                _u64(read_i64_le(data, pos + 16)),
                seq,
            )
        )

    def _mbp10(self, data: bytes, pos: i64, ts_recv: int) -> None:
        symbol = self._symbol_of(data, pos)
        if self.record_ts_recv:
            ts_recv = _u64(read_i64_le(data, pos + 32))
        ts_event = _u64(read_i64_le(data, pos + 8))
        seq = _u32(read_i32_le(data, pos + 44))
        if self.check_sequence:
            self._sequence(seq, ts_event)
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        unit: int = PRICE_SCALE
        div: int = 1
        if len(self.size_divisors) > 0:
            div = self.size_divisors.get(_u32(read_i32_le(data, pos + 4)), 1)
        lvl: i64 = pos + 48
        stop: i64 = pos + MBP10_LEN
        while lvl < stop:
            # skip empty levels: undefined price or zero size
            px = read_i64_le(data, lvl)
            sz = _u32(read_i32_le(data, lvl + 16))
            if px != UNDEF_PRICE and sz != 0:
                bids.append((px, sz * unit if div == 1 else sz * unit // div))
            px = read_i64_le(data, lvl + 8)
            sz = _u32(read_i32_le(data, lvl + 20))
            if px != UNDEF_PRICE and sz != 0:
                asks.append((px, sz * unit if div == 1 else sz * unit // div))
            lvl += 32
        self.handler.on_snapshot(
            BookSnapshot(self.exchange, symbol, tuple(bids), tuple(asks), ts_event, ts_recv, seq)
        )

    def _symbol_mapping(self, data: bytes, pos: i64) -> bool:
        iid = _u32(read_i32_le(data, pos + 4))
        stype_in: i64 = data[pos + 16]
        symbol = _cstr(data, pos + 17, SYMBOL_CSTR_LEN)
        # stype_in_symbol is what was asked for (our feed: the symbol; Databento: the
        # raw or continuous symbol). A parent or instrument-id request names many or
        # a number, so then the output (raw) symbol is the useful one.
        if stype_in in (STYPE_PARENT, STYPE_INSTRUMENT_ID) or symbol == "":
            symbol = _cstr(data, pos + 89, SYMBOL_CSTR_LEN)
        if symbol == "":
            self.handler.on_malformed(
                f"{self.exchange}: symbol mapping for instrument_id {iid} has no symbol; ignored"
            )
            return False
        self.symbols[iid] = symbol
        self.handler.on_symbol_mapping(iid, symbol, self._ts_event(data, pos))
        return True

    # -- framing errors ---------------------------------------------------------------
    def _framing_error(self, what: str, data: bytes, pos: i64) -> None:
        self._resyncing = True
        self.handler.on_malformed(
            f"{self.exchange}: DBN framing lost: {what} at byte {pos} of a "
            f"{len(data)}-byte buffer; scanning for the next record boundary"
        )

    def _candidate(self, data: bytes, p: i64, n: i64) -> i64:
        """Could a record start at ``p``? 1 = yes, 0 = no, -1 = not enough bytes to tell.

        Stricter than decoding (resync only): the length must be one a real
        record of that rtype has, and the side/action bytes of market-data
        records must be DBN's letters. Little-endian payloads are full of
        "small byte, then 0x00", which would otherwise pass as trade headers.
        """
        if p + 2 > n:
            return -1
        words: i64 = data[p]
        rtype: i64 = data[p + 1]
        if words * 4 > self.max_record_len or _EXACT_SIZES[rtype * 256 + words] == 0:
            return 0
        side_at: i64 = 0
        action_at: i64 = 0
        if rtype == RTYPE_MBO:
            action_at = 38
            side_at = 39
        elif rtype in (RTYPE_BBO_1S, RTYPE_BBO_1M, RTYPE_CBBO_1S, RTYPE_CBBO_1M):
            side_at = 29
        elif rtype in (
            RTYPE_MBP_0,
            RTYPE_MBP_1,
            RTYPE_MBP_10,
            RTYPE_TBBO,
            RTYPE_CMBP_1,
            RTYPE_TCBBO,
        ):
            action_at = 28
            side_at = 29
        if side_at == 0:
            return 1
        if p + side_at >= n:
            return -1
        if not _is_side(data[p + side_at]):
            return 0
        if action_at != 0 and not _is_action(data[p + action_at]):
            return 0
        return 1

    def _chain(self, data: bytes, p: i64, n: i64) -> i64:
        """Judge a candidate boundary ``p``: 1 = accept, 0 = reject, -1 = undecided.

        Accept when three candidate headers follow one another from ``p``, or
        when the chain ends exactly at the end of the buffer (framed transports
        end buffers on a record boundary). Undecided when the buffer ends before
        that could be checked.
        """
        links: i64 = 0
        q = p
        while links < 3:
            verdict = self._candidate(data, q, n)
            if verdict != 1:
                return verdict
            links += 1
            q += i64(data[q]) * 4
            if q == n:
                return 1
        return 1

    def _scan(self, data: bytes, start: i64, n: i64) -> i64:
        """Find the next record boundary at or after ``start`` while resynchronising.

        DBN has no sync marker, so this is a heuristic: the first candidate
        ``_chain`` accepts wins (candidates still undecided are passed over, so
        the records that are here get decoded now). Returns the boundary, or -1
        when none was found: then the bytes from the first undecided candidate
        (or the last byte) are kept as the tail, at most two records and a
        header, and scanning resumes with the next ``feed``.
        """
        p = start
        undecided: i64 = -1
        while p + 1 < n:
            verdict = self._chain(data, p, n)
            if verdict == 1:
                self._resyncing = False
                return p
            if verdict < 0 and undecided < 0:
                undecided = p
            p += 1
        keep = undecided if undecided >= 0 else p
        if keep < n:
            self._tail = data[keep:]
        return -1


# -- encoding --------------------------------------------------------------------
#
# Range checks raise ValueError (never silently truncate). Each check has a fast
# path for values that fit mypyc's tagged short int (|v| < 2**62): comparing a
# short int is a machine compare, comparing against a boxed constant such as
# 2**64 - 1 is a call into CPython.

_SHORT_MAX: Final = (1 << 62) - 1


def _i64_of(v: int, what: str) -> i64:
    """An i64 price; ``ValueError`` outside the i64 range."""
    if -_SHORT_MAX <= v <= _SHORT_MAX:
        return i64(v)
    if v < _I64_MIN or v > UNDEF_PRICE:
        raise ValueError(f"{what} {v} out of the i64 range of DBN prices")
    return i64(v)


def _u64_bits(v: int, what: str) -> i64:
    """A u64 field as the i64 with the same bits; ``ValueError`` outside 0..2**64-1."""
    if 0 <= v <= _SHORT_MAX:
        return i64(v)
    if v < 0 or v > _U64_MAX:
        raise ValueError(f"{what} {v} out of range 0..{_U64_MAX}")
    if v > UNDEF_PRICE:
        return i64(v - _TWO_64)
    return i64(v)


def _u32_bits(v: int, what: str) -> i32:
    """A u32 field as the i32 with the same bits; ``ValueError`` outside 0..2**32-1."""
    if v < 0 or v > _U32_MAX:
        raise ValueError(f"{what} {v} out of range 0..{_U32_MAX}")
    if v > 0x7FFF_FFFF:
        return i32(v - 0x1_0000_0000)
    return i32(v)


def _u16_bits(v: int, what: str) -> i16:
    if v < 0 or v > _U16_MAX:
        raise ValueError(f"{what} {v} out of range 0..{_U16_MAX}")
    if v > 0x7FFF:
        return i16(v - 0x1_0000)
    return i16(v)


def _u8(v: int, what: str) -> int:
    if v < 0 or v > 255:
        raise ValueError(f"{what} {v} out of range 0..255")
    return v


def _count(size: int, what: str) -> i32:
    """Fixed-point size -> DBN's u32 count (as i32 bits); refuses fractions and overflow."""
    if size < 0:
        raise ValueError(f"{what} {size} is negative")
    units = size // PRICE_SCALE
    if units * PRICE_SCALE != size:
        raise ValueError(
            f"{what} {size} is not a whole number of units (DBN sizes are integers; "
            f"fixed point scale {PRICE_SCALE})"
        )
    if units > _U32_MAX:
        raise ValueError(f"{what} {size} is more than DBN's u32 maximum of {_U32_MAX} units")
    return _u32_bits(units, what)


def _side(c: str) -> int:
    if c == "B" or c == "A" or c == "N":
        return ord(c)
    raise ValueError(f"side must be 'B', 'A' or 'N' (hub_core.ticks.Side), got {c!r}")


def _action(c: str) -> int:
    if len(c) == 1 and c in "ACMRTFN":
        return ord(c)
    raise ValueError(f"action must be one of A, C, M, R, T, F, N (DBN's), got {c!r}")


def _header(
    w: BytesWriter, size: int, rtype: int, publisher_id: int, instrument_id: int, ts_event: int
) -> None:
    pub = _u16_bits(publisher_id, "publisher_id")
    iid = _u32_bits(instrument_id, "instrument_id")
    ts = _u64_bits(ts_event, "ts_event")
    w.append(size // 4)
    w.append(rtype)
    write_i16_le(w, pub)
    write_i32_le(w, iid)
    write_i64_le(w, ts)


def _w_cstr(w: BytesWriter, text: bytes, width: int) -> None:
    w.write(text)
    w.write(bytes(width - len(text)))


def _symbol_bytes(symbol: str, what: str) -> bytes:
    raw = symbol.encode("utf-8")
    if not symbol.isascii() or len(raw) >= SYMBOL_CSTR_LEN:
        raise ValueError(
            f"{what} {symbol!r} must be ASCII and at most {SYMBOL_CSTR_LEN - 1} characters"
        )
    return raw


def _text_bytes(text: str, width: int) -> bytes:
    """UTF-8 text cut to fit ``width`` with its NUL, never mid-character."""
    raw = text.encode("utf-8")
    if len(raw) < width:
        return raw
    return raw[: width - 1].decode("utf-8", "ignore").encode("utf-8")


def _event_fields(w: BytesWriter, ts_recv: i64, sequence: i32) -> None:
    """price .. sequence of an mbp-1/mbp-10 record written for a book state, not an
    event: price ``UNDEF_PRICE``, size 0, action ``'M'``, side ``'N'``, flags
    ``F_LAST``, depth 0, ts_in_delta 0."""
    write_i64_le(w, UNDEF_PRICE)
    write_i32_le(w, 0)
    w.append(77)  # action 'M'
    w.append(78)  # side 'N'
    w.append(F_LAST)
    w.append(0)  # depth
    write_i64_le(w, ts_recv)
    write_i32_le(w, 0)  # ts_in_delta
    write_i32_le(w, sequence)


def encode_trade_raw(
    instrument_id: int,
    price: int,
    size: int,
    side: str,
    ts_event: int,
    ts_recv: int,
    sequence: int,
    publisher_id: int = 0,
) -> bytes:
    """One trades (mbp-0) record from plain values, for simulators (no tick object).

    ``price`` and ``size`` are fixed point (``PRICE_SCALE``) like every tick;
    ``size`` must be a whole number of units. Action ``'T'``, flags ``F_LAST``,
    depth 0. Raises ``ValueError`` for any value DBN cannot hold.
    """
    px = _i64_of(price, "price")
    units = _count(size, "size")
    side_c = _side(side)
    recv = _u64_bits(ts_recv, "ts_recv")
    seq = _u32_bits(sequence, "sequence")
    w = BytesWriter()
    _header(w, TRADE_LEN, RTYPE_MBP_0, publisher_id, instrument_id, ts_event)
    write_i64_le(w, px)
    write_i32_le(w, units)
    w.append(84)  # action 'T'
    w.append(side_c)
    w.append(F_LAST)
    w.append(0)  # depth
    write_i64_le(w, recv)
    write_i32_le(w, 0)  # ts_in_delta
    write_i32_le(w, seq)
    return w.getvalue()


def _quote_side(w: BytesWriter, price: int, size: int, price_what: str, size_what: str) -> i32:
    """Write a quote side's price, return its count; (0, 0) is the empty side."""
    if price == 0 and size == 0:
        write_i64_le(w, UNDEF_PRICE)
        return 0
    if price == UNDEF_PRICE:
        raise ValueError(
            f"{price_what} {price} is DBN's UNDEF_PRICE; an empty side is price 0 and size 0"
        )
    write_i64_le(w, _i64_of(price, price_what))
    return _count(size, size_what)


def encode_mbp1_raw(
    instrument_id: int,
    bid_price: int,
    bid_size: int,
    ask_price: int,
    ask_size: int,
    ts_event: int,
    ts_recv: int,
    sequence: int,
    publisher_id: int = 0,
) -> bytes:
    """One mbp-1 record (top of book) from plain values, for simulators.

    Fixed-point prices and sizes; a side with price 0 and size 0 is written
    empty (``UNDEF_PRICE``, size 0). The record's event fields say "book
    changed, side unknown": action ``'M'``, side ``'N'``, price
    ``UNDEF_PRICE``, size 0, depth 0.
    """
    recv = _u64_bits(ts_recv, "ts_recv")
    seq = _u32_bits(sequence, "sequence")
    w = BytesWriter()
    _header(w, MBP1_LEN, RTYPE_MBP_1, publisher_id, instrument_id, ts_event)
    _event_fields(w, recv, seq)
    bsz = _quote_side(w, bid_price, bid_size, "bid_price", "bid_size")
    asz = _quote_side(w, ask_price, ask_size, "ask_price", "ask_size")
    write_i32_le(w, bsz)
    write_i32_le(w, asz)
    write_i64_le(w, 0)  # bid_ct, ask_ct
    return w.getvalue()


def encode_trade(t: Trade, instrument_id: int, publisher_id: int = 0) -> bytes:
    """A ``Trade`` as a trades (mbp-0) record. ``trade_id`` has no DBN field and is dropped."""
    return encode_trade_raw(
        instrument_id, t.price, t.size, t.side, t.ts_event, t.ts_recv, t.sequence, publisher_id
    )


def encode_quote(q: Quote, instrument_id: int, publisher_id: int = 0) -> bytes:
    """A ``Quote`` as an mbp-1 record (see ``encode_mbp1_raw``)."""
    return encode_mbp1_raw(
        instrument_id,
        q.bid_price,
        q.bid_size,
        q.ask_price,
        q.ask_size,
        q.ts_event,
        q.ts_recv,
        q.sequence,
        publisher_id,
    )


def encode_book_update(b: BookUpdate, instrument_id: int, publisher_id: int = 0) -> bytes:
    """A ``BookUpdate`` as an mbo record (``order_id``, ``action``, ``side`` kept;
    flags ``F_LAST``, channel 0). A clear is a ``BookClear``: ``encode_book_clear``."""
    return mbo_record_raw(
        instrument_id,
        b.price,
        b.size,
        b.side,
        b.action,
        b.order_id,
        b.ts_event,
        b.ts_recv,
        b.sequence,
        publisher_id,
    )


def mbo_record_raw(
    instrument_id: int,
    price: int,
    size: int,
    side: str,
    action: str,
    order_id: int,
    ts_event: int,
    ts_recv: int,
    sequence: int,
    publisher_id: int = 0,
) -> bytes:
    """One mbo record from plain values (fixed-point price and size), as
    ``encode_book_update`` writes a ``BookUpdate``."""
    return _mbo_record(
        instrument_id,
        publisher_id,
        ts_event,
        _u64_bits(order_id, "order_id"),
        _i64_of(price, "price"),
        _count(size, "size"),
        _action(action),
        _side(side),
        _u64_bits(ts_recv, "ts_recv"),
        _u32_bits(sequence, "sequence"),
    )


def encode_book_clear(c: BookClear, instrument_id: int, publisher_id: int = 0) -> bytes:
    """A ``BookClear`` as the mbo record DBN has for it: action ``'R'``, side ``'N'``,
    price ``UNDEF_PRICE``, size 0, order id 0, flags ``F_LAST``, channel 0.
    ``reason`` has no DBN field and is dropped."""
    return _mbo_record(
        instrument_id,
        publisher_id,
        c.ts_event,
        0,
        UNDEF_PRICE,
        0,
        _ACTION_CLEAR,
        78,  # side 'N'
        _u64_bits(c.ts_recv, "ts_recv"),
        _u32_bits(c.sequence, "sequence"),
    )


def _mbo_record(
    instrument_id: int,
    publisher_id: int,
    ts_event: int,
    order_id: i64,
    price: i64,
    units: i32,
    action: int,
    side: int,
    ts_recv: i64,
    sequence: i32,
) -> bytes:
    """One mbo record from checked fields (flags ``F_LAST``, channel 0)."""
    w = BytesWriter()
    _header(w, MBO_LEN, RTYPE_MBO, publisher_id, instrument_id, ts_event)
    write_i64_le(w, order_id)
    write_i64_le(w, price)
    write_i32_le(w, units)
    w.append(F_LAST)
    w.append(0)  # channel_id
    w.append(action)
    w.append(side)
    write_i64_le(w, ts_recv)
    write_i32_le(w, 0)  # ts_in_delta
    write_i32_le(w, sequence)
    return w.getvalue()


def _snapshot_levels(levels: tuple[tuple[int, int], ...], what: str) -> list[tuple[i64, i32]]:
    """Validate one side; the decoder drops empty levels, so they cannot be encoded."""
    out: list[tuple[i64, i32]] = []
    for i in range(len(levels)):
        px, sz = levels[i]
        if px == UNDEF_PRICE or sz == 0:
            raise ValueError(f"{what} level {i} ({px}, {sz}) is empty; leave it out instead")
        try:
            out.append((_i64_of(px, "price"), _count(sz, "size")))
        except ValueError as exc:
            raise ValueError(f"{what} level {i}: {exc}") from None
    return out


def encode_snapshot(s: BookSnapshot, instrument_id: int, publisher_id: int = 0) -> bytes:
    """A ``BookSnapshot`` as an mbp-10 record (at most 10 levels a side, else ``ValueError``).

    Missing levels are written empty (``UNDEF_PRICE``, size 0); levels of
    size 0 are refused (the decoder drops them). Event fields as in
    ``encode_mbp1_raw``.
    """
    if len(s.bids) > 10 or len(s.asks) > 10:
        raise ValueError(
            f"mbp-10 holds at most 10 levels a side, got {len(s.bids)} bids and {len(s.asks)} asks"
        )
    bids = _snapshot_levels(s.bids, "bid")
    asks = _snapshot_levels(s.asks, "ask")
    recv = _u64_bits(s.ts_recv, "ts_recv")
    seq = _u32_bits(s.sequence, "sequence")
    w = BytesWriter()
    _header(w, MBP10_LEN, RTYPE_MBP_10, publisher_id, instrument_id, s.ts_event)
    _event_fields(w, recv, seq)
    for i in range(10):
        bpx: i64 = UNDEF_PRICE
        bsz: i32 = 0
        apx: i64 = UNDEF_PRICE
        asz: i32 = 0
        if i < len(bids):
            bpx, bsz = bids[i]
        if i < len(asks):
            apx, asz = asks[i]
        write_i64_le(w, bpx)
        write_i64_le(w, apx)
        write_i32_le(w, bsz)
        write_i32_le(w, asz)
        write_i64_le(w, 0)  # bid_ct, ask_ct
    return w.getvalue()


def encode_symbol_mapping(
    instrument_id: int, symbol: str, ts_event: int, start_ts: int = 0, end_ts: int = 0
) -> bytes:
    """A symbol-mapping record; ``symbol`` goes in both the input and output fields
    (stype raw_symbol), so our decoder and Databento's tools agree."""
    raw = _symbol_bytes(symbol, "symbol")
    start = _u64_bits(start_ts, "start_ts")
    end = _u64_bits(end_ts, "end_ts")
    w = BytesWriter()
    _header(w, SYMBOL_MAPPING_LEN, RTYPE_SYMBOL_MAPPING, 0, instrument_id, ts_event)
    w.append(STYPE_RAW_SYMBOL)
    _w_cstr(w, raw, SYMBOL_CSTR_LEN)
    w.append(STYPE_RAW_SYMBOL)
    _w_cstr(w, raw, SYMBOL_CSTR_LEN)
    write_i64_le(w, start)
    write_i64_le(w, end)
    return w.getvalue()


def encode_error(message: str, code: int, ts_event: int, is_last: bool = True) -> bytes:
    """An error record. ``message`` is cut to 301 bytes of UTF-8 if longer (field width)."""
    c = _u8(code, "code")
    w = BytesWriter()
    _header(w, ERROR_LEN, RTYPE_ERROR, 0, 0, ts_event)
    _w_cstr(w, _text_bytes(message, _ERR_TEXT_LEN), _ERR_TEXT_LEN)
    w.append(c)
    w.append(1 if is_last else 0)
    return w.getvalue()


def encode_system(message: str, code: int, ts_event: int) -> bytes:
    """A system record. ``message`` is cut to 302 bytes of UTF-8 if longer (field width)."""
    c = _u8(code, "code")
    w = BytesWriter()
    _header(w, SYSTEM_LEN, RTYPE_SYSTEM, 0, 0, ts_event)
    _w_cstr(w, _text_bytes(message, _SYS_TEXT_LEN), _SYS_TEXT_LEN)
    w.append(c)
    return w.getvalue()


def size_decimals_text(instrument_id: int, decimals: int) -> str:
    """The text of a size-decimals record: the instrument's record sizes count
    ``10 ** -decimals`` units from this record on (0: whole units again)."""
    return f"{SIZE_DECIMALS_PREFIX}instrument_id={instrument_id} decimals={decimals}"


def encode_heartbeat(ts_event: int) -> bytes:
    """A heartbeat: system record, code 0, message ``"Heartbeat"`` (as Databento sends)."""
    return encode_system(HEARTBEAT_MESSAGE, SYSTEM_CODE_HEARTBEAT, ts_event)


def _ts_recv_offsets() -> bytes:
    """Per rtype, where a market record's ``ts_recv`` is (0: it has none)."""
    t = bytearray(256)
    for rt in (
        RTYPE_MBP_0,
        RTYPE_MBP_1,
        RTYPE_MBP_10,
        RTYPE_BBO_1S,
        RTYPE_BBO_1M,
        RTYPE_CMBP_1,
        RTYPE_CBBO_1S,
        RTYPE_CBBO_1M,
        RTYPE_TCBBO,
        RTYPE_TBBO,
    ):
        t[rt] = 32
    t[RTYPE_MBO] = 40
    return bytes(t)


_TS_RECV_AT: Final = _ts_recv_offsets()


def restamp_records(data: bytes, ts_recv: int, ignored: set[int]) -> bytearray:
    """Whole DBN v3 records with every market record's ``ts_recv`` set to ``ts_recv``
    and the market records of ``ignored`` instrument ids left out: the records as the
    decoder published them (the recorder writes DBN that arrived as DBN this way)."""
    stamp = _u64_bits(ts_recv, "ts_recv")
    out = bytearray(data)
    n: i64 = len(data)
    # Every v1-v3 record length is a multiple of 8, and so is each ts_recv offset: the
    # fields are aligned words of a whole-record buffer, one store each (no slices).
    words = memoryview(out).cast("q") if n % 8 == 0 else None
    raw = int(stamp).to_bytes(8, "little", signed=True) if words is None else b""
    filtering = len(ignored) > 0
    kept = bytearray()
    pos: i64 = 0
    while pos < n:
        rlen: i64 = data[pos] * 4
        if rlen == 0 or pos + rlen > n:
            break
        at: i64 = _TS_RECV_AT[data[pos + 1]]
        if at != 0 and at + 8 <= rlen:
            if words is not None:
                words[(pos + at) >> 3] = stamp
            else:
                out[pos + at : pos + at + 8] = raw
            if filtering and _u32(read_i32_le(data, pos + 4)) in ignored:
                pos += rlen
                continue
        if filtering:
            kept += out[pos : pos + rlen]
        pos += rlen
    if words is not None:
        words.release()
    return kept if filtering else out  # a new buffer either way: one copy, not two


# -- metadata (file / stream header) ---------------------------------------------


def encode_metadata(
    dataset: str,
    schema: int | None,
    start: int,
    end: int | None,
    stype_in: int | None,
    stype_out: int,
    symbols: list[str],
    ts_out: bool = False,
) -> bytes:
    """The DBN v3 metadata header (``b"DBN\\x03"``, length, fields) that starts a file.

    ``schema``/``stype_in`` None mean mixed; ``end`` None means open-ended.
    Values are DBN's enum numbers (schema: trades = 4, mbp-1 = 1, ...; stype:
    instrument_id = 0, raw_symbol = 1). No partial/not-found/mapping lists.
    """
    raw_dataset = dataset.encode("utf-8")
    if not dataset.isascii() or len(raw_dataset) >= _DATASET_LEN:
        raise ValueError(f"dataset {dataset!r} must be ASCII and at most {_DATASET_LEN - 1} chars")
    raw_symbols = [_symbol_bytes(s, "metadata symbol") for s in symbols]
    # None is DBN's null value; a real value must not collide with it
    schema_v = _u16_bits(_NULL_SCHEMA if schema is None else schema, "schema")
    if schema is not None and schema == _NULL_SCHEMA:
        raise ValueError(f"schema {schema} is DBN's null schema; pass None")
    stype_in_v = _u8(_NULL_STYPE if stype_in is None else stype_in, "stype_in")
    if stype_in is not None and stype_in == _NULL_STYPE:
        raise ValueError(f"stype_in {stype_in} is DBN's null stype; pass None")
    stype_out_v = _u8(stype_out, "stype_out")
    start_v = _u64_bits(start, "start")
    end_v = _u64_bits(UNDEF_TIMESTAMP if end is None else end, "end")
    # fixed fields + schema_definition_length + 4 list counts + symbols, padded to 8
    length = _METADATA_FIXED_LEN + 4 * 5 + SYMBOL_CSTR_LEN * len(raw_symbols)
    padding = (8 - length % 8) % 8
    w = BytesWriter()
    w.write(b"DBN")
    w.append(DBN_VERSION)
    write_i32_le(w, _u32_bits(length + padding, "metadata length"))
    _w_cstr(w, raw_dataset, _DATASET_LEN)
    write_i16_le(w, schema_v)
    write_i64_le(w, start_v)
    write_i64_le(w, end_v)
    write_i64_le(w, 0)  # limit: none
    w.append(stype_in_v)
    w.append(stype_out_v)
    w.append(1 if ts_out else 0)
    write_i16_le(w, SYMBOL_CSTR_LEN)
    w.write(bytes(_METADATA_RESERVED_LEN))
    write_i32_le(w, 0)  # schema_definition_length
    write_i32_le(w, len(raw_symbols))
    for raw in raw_symbols:
        _w_cstr(w, raw, SYMBOL_CSTR_LEN)
    write_i32_le(w, 0)  # partial
    write_i32_le(w, 0)  # not_found
    write_i32_le(w, 0)  # mappings
    w.write(bytes(padding))
    return w.getvalue()


def _need(data: bytes, pos: int, size: int) -> None:
    if pos + size > len(data):
        raise ValueError(f"DBN metadata is truncated at byte {pos} (needs {size} more bytes)")


def _read_symbols(data: bytes, pos: int, cstr_len: int) -> tuple[list[str], int]:
    _need(data, pos, 4)
    count = _u32(read_i32_le(data, pos))
    pos += 4
    _need(data, pos, count * cstr_len)
    out: list[str] = []
    for _ in range(count):
        out.append(_cstr(data, pos, cstr_len))
        pos += cstr_len
    return out, pos


def decode_metadata(data: bytes) -> tuple[dict[str, object], int]:
    """Parse a DBN metadata header (versions 1-3) at the start of ``data``.

    Returns ``(fields, consumed)``: the record stream starts at
    ``data[consumed:]``. When ``data`` is a prefix of a header that is not
    complete yet, returns ``({}, 0)``: read more and call again. Raises
    ``ValueError`` if ``data`` is not a DBN header or is inconsistent. Fields:
    ``version``, ``dataset``, ``schema``, ``start``, ``end``, ``limit``,
    ``stype_in``, ``stype_out`` (ints; None where DBN says "null"),
    ``ts_out``, ``symbol_cstr_len``, ``symbols``, ``partial``, ``not_found``
    and ``mappings`` (``{"raw_symbol", "intervals": [(start_date, end_date,
    symbol)]}`` with yyyymmdd ints).
    """
    n = len(data)
    prefix = b"DBN"
    if data[: min(n, 3)] != prefix[: min(n, 3)]:
        raise ValueError("not a DBN stream: it does not start with b'DBN'")
    if n < 8:
        return {}, 0
    version: int = data[3]
    if version < 1 or version > DBN_VERSION:
        raise ValueError(f"unsupported DBN version {version} (this decoder reads 1..{DBN_VERSION})")
    length = _u32(read_i32_le(data, 4))
    if length < _METADATA_FIXED_LEN:
        raise ValueError(f"DBN metadata length {length} is shorter than its fixed part")
    total = 8 + length
    if n < total:
        return {}, 0
    body = data[8:total]
    pos = 0
    dataset = _cstr(body, 0, _DATASET_LEN)
    pos += _DATASET_LEN
    schema_raw = int(read_i16_le(body, pos)) & _U16_MAX
    pos += 2
    start = _u64(read_i64_le(body, pos))
    end = _u64(read_i64_le(body, pos + 8))
    limit = _u64(read_i64_le(body, pos + 16))
    pos += 24
    if version == 1:
        pos += 8  # deprecated record_count
    stype_in_raw: int = body[pos]
    stype_out: int = body[pos + 1]
    ts_out = body[pos + 2] != 0
    pos += 3
    cstr_len = 22
    if version > 1:
        cstr_len = int(read_i16_le(body, pos)) & _U16_MAX
        pos += 2
        pos += _METADATA_RESERVED_LEN
    else:
        pos += _METADATA_RESERVED_LEN_V1
    if cstr_len == 0:
        raise ValueError("DBN metadata has a symbol length of 0")
    _need(body, pos, 4)
    if _u32(read_i32_le(body, pos)) != 0:
        raise ValueError("DBN metadata with a schema definition is not supported")
    pos += 4
    symbols, pos = _read_symbols(body, pos, cstr_len)
    partial, pos = _read_symbols(body, pos, cstr_len)
    not_found, pos = _read_symbols(body, pos, cstr_len)
    _need(body, pos, 4)
    n_mappings = _u32(read_i32_le(body, pos))
    pos += 4
    mappings: list[dict[str, object]] = []
    for _ in range(n_mappings):
        _need(body, pos, cstr_len + 4)
        raw_symbol = _cstr(body, pos, cstr_len)
        pos += cstr_len
        n_intervals = _u32(read_i32_le(body, pos))
        pos += 4
        _need(body, pos, n_intervals * (8 + cstr_len))
        intervals: list[tuple[int, int, str]] = []
        for _ in range(n_intervals):
            d0 = _u32(read_i32_le(body, pos))
            d1 = _u32(read_i32_le(body, pos + 4))
            intervals.append((d0, d1, _cstr(body, pos + 8, cstr_len)))
            pos += 8 + cstr_len
        mappings.append({"raw_symbol": raw_symbol, "intervals": intervals})
    fields: dict[str, object] = {
        "version": version,
        "dataset": dataset,
        "schema": None if schema_raw == _NULL_SCHEMA else schema_raw,
        "start": start,
        "end": None if end == UNDEF_TIMESTAMP else end,
        "limit": None if limit == 0 else limit,
        "stype_in": None if stype_in_raw == _NULL_STYPE else stype_in_raw,
        "stype_out": stype_out,
        "ts_out": ts_out,
        "symbol_cstr_len": cstr_len,
        "symbols": symbols,
        "partial": partial,
        "not_found": not_found,
        "mappings": mappings,
    }
    return fields, total
