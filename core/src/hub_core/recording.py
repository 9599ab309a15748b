"""``hub run --record DIR``: every tick of every connection written to DBN v3 files.

Layout: ``DIR/<exchange>/<YYYYMMDD-HH>.dbn.zst``, one zstd-compressed DBN
stream per exchange and UTC hour of ``ts_recv``, each starting with a DBN
metadata header (dataset = the exchange name cut to DBN's 15 characters,
schema mixed, stype_in raw_symbol, stype_out instrument_id) and holding a
symbol-mapping record before an instrument's first record. A ``Gap`` is a
DBN system record with code ``GAP_SYSTEM_CODE`` and a ``hub.gap`` text (see
``gap_text``); ``hub_core.replay`` turns it back into the ``Gap``.

The bus handler only appends the tick to a bounded queue (ticks are
immutable, so the object itself is queued); a writer thread encodes with the
core's compiled encoders and writes. When the queue is full the tick is not
written: it is counted (``RecorderStats.dropped``), logged, and the file gets
a ``Gap`` for the window that was lost. This module does file I/O and
imports ``zstandard``: it stays interpreted (never in ``COMPILED_MODULES``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import zstandard

from hub_core.bus import Subscription, TypedEventBus
from hub_core.dbn import (
    HEADER_LEN,
    SIZE_DECIMALS_CODE,
    SIZE_DECIMALS_PREFIX,
    STYPE_INSTRUMENT_ID,
    STYPE_RAW_SYMBOL,
    encode_book_clear,
    encode_book_update,
    encode_metadata,
    encode_quote,
    encode_snapshot,
    encode_symbol_mapping,
    encode_system,
    encode_trade,
    restamp_records,
    size_decimals_text,
)
from hub_core.processor import CONTROL_SYSTEM, ConnectionSink
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Gap, Quote, Trade

log = logging.getLogger("hub_core.recording")

GAP_SYSTEM_CODE: Final = 71
"""The system-record code of a recorded ``Gap`` (``ord("G")``; Databento's own
system codes are 0-4)."""
GAP_PREFIX: Final = "hub.gap "
"""How the text of a recorded ``Gap`` starts."""
MAX_QUEUE: Final = 200_000
"""Ticks waiting for the writer at most; past it they are dropped (counted, a ``Gap``)."""
MAX_QUEUED_BYTES: Final = 256 << 20
"""DBN bytes (passed through) waiting for the writer at most; past it, dropped likewise."""
_GAP_IDS: Final = 0xF000_0000
"""First instrument id for a Gap's symbol on a pass-through file (clear of the session's)."""
HOUR_NS: Final = 3_600_000_000_000
ZSTD_LEVEL: Final = 1
"""zstd's fastest level: the compression runs beside the readers, on the same cores."""
FLUSH_EVERY_S: Final = 1.0
"""A zstd block is flushed at least this often, so a file being written is readable."""
_IDLE_S: Final = 0.005
_BATCH: Final = 4096
_DATASET_MAX: Final = 15
_LOG_FIRST: Final = 5
_LOG_EVERY: Final = 10_000
_RECORDED = (Trade, Quote, BookUpdate, BookSnapshot, BookClear, Gap)
_DEPTH: Final = 10
_STEP: Final = tuple(10 ** (9 - d) for d in range(10))


def gap_text(gap: Gap, instrument_id: int) -> str:
    """The system-record text of ``gap``: ``hub.gap`` then ``key=value`` fields, the
    reason last (it may hold spaces); ``instrument_id`` 0 means the whole connection."""
    return (
        f"{GAP_PREFIX}instrument_id={instrument_id} start_ts={gap.start_ts} end_ts={gap.end_ts} "
        f"start_seq={gap.start_seq} end_seq={gap.end_seq} ts_recv={gap.ts_recv} "
        f"reason={gap.reason}"
    )


def parse_size_decimals_text(text: str) -> tuple[int, int] | None:
    """``(instrument_id, decimals)`` of a ``size_decimals_text``, or None."""
    if not text.startswith(SIZE_DECIMALS_PREFIX):
        return None
    fields = dict(item.partition("=")[::2] for item in text[len(SIZE_DECIMALS_PREFIX) :].split())
    iid, dec = fields.get("instrument_id", ""), fields.get("decimals", "")
    if not iid.isdigit() or not dec.isdigit() or int(dec) > 9:
        return None
    return int(iid), int(dec)


def _decimals(size: int) -> int:
    """Decimal places a fixed-point size needs (0 for a whole number of units)."""
    for d in range(10):
        if size % _STEP[d] == 0:
            return d
    return 9


def _sizes(tick: Any) -> tuple[int, ...]:
    t = type(tick)
    if t is Quote:
        return (tick.bid_size, tick.ask_size)
    if t is BookSnapshot:
        return tuple(sz for _, sz in tick.bids) + tuple(sz for _, sz in tick.asks)
    if t is BookClear:
        return ()
    return (tick.size,)


def _scaled(tick: Any, factor: int) -> Any:
    """``tick`` with every size times ``factor`` (whole units for the encoder)."""
    t = type(tick)
    if t is Trade:
        return Trade(
            tick.exchange,
            tick.symbol,
            tick.price,
            tick.size * factor,
            tick.side,
            tick.ts_event,
            tick.ts_recv,
            tick.sequence,
            tick.trade_id,
        )
    if t is Quote:
        return Quote(
            tick.exchange,
            tick.symbol,
            tick.bid_price,
            tick.bid_size * factor,
            tick.ask_price,
            tick.ask_size * factor,
            tick.ts_event,
            tick.ts_recv,
            tick.sequence,
        )
    if t is BookUpdate:
        return BookUpdate(
            tick.exchange,
            tick.symbol,
            tick.side,
            tick.price,
            tick.size * factor,
            tick.ts_event,
            tick.ts_recv,
            tick.action,
            tick.order_id,
            tick.sequence,
        )
    return BookSnapshot(
        tick.exchange,
        tick.symbol,
        tuple((px, sz * factor) for px, sz in tick.bids),
        tuple((px, sz * factor) for px, sz in tick.asks),
        tick.ts_event,
        tick.ts_recv,
        tick.sequence,
    )


def parse_gap_text(text: str) -> dict[str, Any] | None:
    """The fields of a ``gap_text`` (ints, ``reason`` a str), or None if it is not one."""
    if not text.startswith(GAP_PREFIX):
        return None
    head, sep, reason = text[len(GAP_PREFIX) :].partition(" reason=")
    if not sep:
        return None
    out: dict[str, Any] = {"reason": reason}
    for item in head.split(" "):
        key, eq, value = item.partition("=")
        if not eq or not value.isdigit():
            return None
        out[key] = int(value)
    keys = ("instrument_id", "start_ts", "end_ts", "start_seq", "end_seq", "ts_recv")
    return out if all(k in out for k in keys) else None


def hour_name(ts_recv: int) -> str:
    """``YYYYMMDD-HH`` of the UTC hour of ``ts_recv`` (ns)."""
    return datetime.fromtimestamp(ts_recv // 1_000_000_000, UTC).strftime("%Y%m%d-%H")


def dataset_of(exchange: str) -> str:
    """The DBN dataset field for ``exchange``: ASCII, at most 15 characters."""
    text = exchange.encode("ascii", "replace").decode("ascii")
    return text[:_DATASET_MAX]


@dataclass
class RecorderStats:
    """What the recorder did so far (``Recorder.stats()``)."""

    written: int = 0
    """Ticks (and Gaps) written to files."""
    dropped: int = 0
    """Ticks not written: the queue was full or the disk failed; each window is a Gap."""
    write_errors: int = 0
    cut_snapshots: int = 0
    """Snapshots deeper than ten levels a side, written as their best ten (mbp-10)."""
    files: list[str] = field(default_factory=list)
    """Every file opened, in order."""
    queued: int = 0


class _RawChunk:
    """Whole DBN records of one buffer of a connection that speaks DBN, restamped."""

    __slots__ = ("count", "data", "exchange", "symbols", "ts_recv")

    def __init__(
        self,
        exchange: str,
        data: bytes | bytearray,
        ts_recv: int,
        count: int,
        symbols: dict[int, str] | None,
    ) -> None:
        self.exchange = exchange
        self.data = data
        self.ts_recv = ts_recv
        self.count = count
        self.symbols = symbols
        """The session's id -> symbol map when it changed since the last chunk, else None."""


class DropWindow:
    """One exchange's open window of dropped ticks (the recorder's, a sink runner's)."""

    __slots__ = ("count", "first_ts", "last_ts")

    def __init__(self, ts: int) -> None:
        self.count = 0
        self.first_ts = ts
        self.last_ts = ts


class _ExchangeFiles:
    """The writer thread's state for one exchange: ids, the open hour file."""

    def __init__(self, root: Path, exchange: str) -> None:
        self.exchange = exchange
        self.dir = root / exchange
        self.ids: dict[str, int] = {}
        """symbol -> instrument_id (1, 2, ... first seen first), stable while recording."""
        self.mapped: set[int] = set()
        """ids whose mapping the open file already has."""
        self.decimals: dict[int, int] = {}
        """id -> decimal places its sizes are written with (only ever grows)."""
        self.announced: dict[int, int] = {}
        """id -> the decimals the open file has said (absent: 0, whole units)."""
        self.session: dict[int, str] = {}
        """Pass-through: the connection's own id -> symbol map, as of the last chunk."""
        self.passed: dict[int, str] = {}
        """Pass-through: the mappings the open file has (written before the chunk)."""
        self.hour = -1
        self.out: Any = None
        self.chunks: list[bytes | bytearray] = []

    def instrument(self, symbol: str, ts: int) -> int:
        iid = self.ids.get(symbol)
        if iid is None:
            iid = len(self.ids) + 1
            self.ids[symbol] = iid
        if iid not in self.mapped:
            self.mapped.add(iid)
            self.chunks.append(encode_symbol_mapping(iid, symbol, ts))
        return iid

    def gap_instrument(self, symbol: str, ts: int) -> int:
        """The id a Gap of ``symbol`` names: the session's on a pass-through file."""
        if not self.session:
            return self.instrument(symbol, ts)
        for session_id, sym in self.session.items():
            if sym == symbol:
                if self.passed.get(session_id) != sym:  # a new file: map it here too
                    self.passed[session_id] = sym
                    self.chunks.append(encode_symbol_mapping(session_id, sym, ts))
                return session_id
        iid = self.ids.setdefault(symbol, _GAP_IDS + len(self.ids))
        if iid not in self.mapped:
            self.mapped.add(iid)
            self.chunks.append(encode_symbol_mapping(iid, symbol, ts))
        return iid

    def raw(self, item: _RawChunk) -> None:
        """A pass-through chunk, after the mappings of any id the file does not have yet."""
        if item.symbols is not None:
            self.session = item.symbols
        passed = self.passed
        if len(passed) != len(self.session) or item.symbols is not None:
            for iid, sym in self.session.items():
                if passed.get(iid) != sym:
                    passed[iid] = sym
                    self.chunks.append(encode_symbol_mapping(iid, sym, item.ts_recv))
        self.chunks.append(item.data)

    def size_factor(self, iid: int, tick: Any, ts: int) -> int:
        """What ``tick``'s sizes are multiplied by (1: whole units); announces a change."""
        need = 0
        for size in _sizes(tick):
            if size % _STEP[0]:
                need = max(need, _decimals(size))
        dec = self.decimals.get(iid, 0)
        if need > dec:
            dec = self.decimals[iid] = need
        if self.announced.get(iid, 0) != dec:
            self.announced[iid] = dec
            self.chunks.append(encode_system(size_decimals_text(iid, dec), SIZE_DECIMALS_CODE, ts))
        return 1 if dec == 0 else 10**dec

    def open(self, hour: int, ts_recv: int) -> Path:
        self.close()
        self.dir.mkdir(parents=True, exist_ok=True)
        name = hour_name(ts_recv)
        path = self.dir / f"{name}.dbn.zst"
        n = 1
        while path.exists():  # a restart within the hour: never append a second header
            n += 1
            path = self.dir / f"{name}.{n}.dbn.zst"
        fh: BinaryIO = open(path, "xb")  # noqa: SIM115 (closed by the zstd writer)
        self.out = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(fh, closefd=True)
        self.hour = hour
        self.mapped = set()
        self.announced = {}
        self.passed = {}
        self.out.write(
            encode_metadata(
                dataset_of(self.exchange),
                None,
                ts_recv,
                None,
                STYPE_RAW_SYMBOL,
                STYPE_INSTRUMENT_ID,
                [],
            )
        )
        return path

    def flush(self, block: bool) -> None:
        if self.chunks and self.out is not None:
            self.out.write(b"".join(self.chunks))
        self.chunks = []
        if block and self.out is not None:
            self.out.flush(zstandard.FLUSH_BLOCK)

    def close(self) -> None:
        out, self.out = self.out, None
        if out is not None:
            if self.chunks:
                out.write(b"".join(self.chunks))
            self.chunks = []
            out.close()  # ends the zstd frame and closes the file


class Recorder:
    """Writes the ticks published on a bus to ``DIR/<exchange>/<YYYYMMDD-HH>.dbn.zst``.

    ``attach(bus)`` subscribes and starts the writer thread; ``close()``
    unsubscribes, writes what is queued and closes every file (zstd frame
    finished). ``stats()`` says what was written and dropped.
    """

    def __init__(self, directory: str | Path, *, max_queue: int = MAX_QUEUE) -> None:
        self.directory = Path(directory)
        self.max_queue = max_queue
        self._queue: deque[object] = deque()
        self._drops: dict[str, DropWindow] = {}
        self._subs: list[Subscription] = []
        self._files: dict[str, _ExchangeFiles] = {}
        self._stats = RecorderStats()
        self._dbn_sinks: dict[str, ConnectionSink] = {}
        self._dbn_symbols: dict[str, dict[int, str]] = {}
        self._queued_bytes = 0
        self._bus: TypedEventBus | None = None
        self._every = True
        self._watch: dict[str, list[Subscription]] = {}
        """Per tapped exchange, its market-data subscriptions until it proves to speak DBN."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _stats.files between the threads

    @staticmethod
    def check_directory(directory: str | Path) -> Path:
        """Create ``directory`` if needed and check it is writable (``OSError`` if not)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".hub-record-probe"
        probe.write_bytes(b"")
        probe.unlink()
        return path

    # -- the bus side (the reader's task) --------------------------------------
    def take(self, tick: Any) -> None:
        """The bus handler: queue ``tick`` for the writer, or count it as dropped."""
        if self._dbn_sinks:
            sink = self._dbn_sinks.get(tick.exchange)
            if sink is not None and sink.dbn_recorded and type(tick) is not Gap:
                return  # its DBN bytes are recorded as they came (tap)
        if len(self._queue) >= self.max_queue:
            self._drop(tick)
            return
        if self._drops:
            self._close_drop_windows()
        self._queue.append(tick)

    def tap(self, sink: ConnectionSink) -> None:
        """Record what ``sink`` decodes from DBN as the bytes themselves (restamped
        with the hub's ``ts_recv``, ignored instruments left out), not re-encoded."""
        exchange = sink.exchange
        self._dbn_sinks[exchange] = sink
        bus = self._bus
        if bus is not None and not self._every and exchange not in self._watch:
            self._watch[exchange] = [
                bus.subscribe(t, self.take, exchange=exchange) for t in _RECORDED if t is not Gap
            ]

        def on_records(records: bytes, ts_recv: int, count: int, malformed: int) -> None:
            if self._watch:
                # it speaks DBN: its bytes are recorded, its ticks need not come here
                for sub in self._watch.pop(exchange, ()):
                    sub.unsubscribe()
            if malformed:
                # what was decoded around bad bytes cannot be cut out exactly: a Gap
                self.take(
                    Gap(
                        exchange,
                        "",
                        ts_recv,
                        ts_recv,
                        f"recorder: a DBN buffer with malformed input was not written "
                        f"({count} records decoded from it)",
                    )
                )
                return
            if len(records) < HEADER_LEN:
                return
            if len(self._queue) >= self.max_queue or self._queued_bytes >= MAX_QUEUED_BYTES:
                self._drop_window(exchange, ts_recv, count)
                return
            if self._drops:
                self._close_drop_windows()
            decoder = sink.dbn
            symbols: dict[int, str] | None = None
            if self._dbn_symbols.get(exchange) != decoder.symbols:
                symbols = dict(decoder.symbols)
                self._dbn_symbols[exchange] = symbols
            data = restamp_records(records, ts_recv, decoder.ignored)
            self._queued_bytes += len(data)
            self._queue.append(_RawChunk(exchange, data, ts_recv, count, symbols))

        sink.set_dbn_tap(on_records)

    def untap(self) -> None:
        """Stop the pass-through of every tapped sink."""
        for sink in self._dbn_sinks.values():
            sink.set_dbn_tap(None)
            sink.dbn_recorded = False
        self._dbn_sinks = {}

    def _drop(self, tick: Any) -> None:
        self._drop_window(tick.exchange, tick.ts_recv, 1)

    def _drop_window(self, exchange: str, ts: int, count: int) -> None:
        window = self._drops.get(exchange)
        if window is None:
            window = self._drops[exchange] = DropWindow(ts)
        window.count += count
        window.last_ts = ts
        self._stats.dropped += count
        n = self._stats.dropped
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning(
                "recorder: the writer is behind (%d ticks queued): %d ticks not written so far",
                len(self._queue),
                n,
            )

    def _close_drop_windows(self) -> None:
        drops, self._drops = self._drops, {}
        for exchange, w in drops.items():
            reason = f"recorder: {w.count} ticks not written (the writer fell behind)"
            self._queue.append(Gap(exchange, "", w.first_ts, w.last_ts, reason, 0, 0, w.last_ts))

    def attach(self, bus: TypedEventBus, every_exchange: bool = True) -> None:
        """Subscribe to ``Gap`` and (``every_exchange``) every market-data type, and start
        the writer thread. With ``every_exchange=False`` only the exchanges given to
        ``tap`` are recorded (the hub does this: a connection that speaks DBN then
        costs no call per tick)."""
        self.check_directory(self.directory)
        self._bus = bus
        self._every = every_exchange
        for tick_type in _RECORDED if every_exchange else (Gap,):
            self._subs.append(bus.subscribe(tick_type, self.take))
        self._thread = threading.Thread(target=self._run, name="hub-recorder", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop recording: write what is queued, close every file. Idempotent."""
        for sub in self._subs:
            sub.unsubscribe()
        self._subs = []
        for subs in self._watch.values():
            for sub in subs:
                sub.unsubscribe()
        self._watch = {}
        self.untap()
        if self._drops:
            self._close_drop_windows()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        else:
            while self._drain():  # never attached to a thread: write on the caller's
                pass
            self._close_files()
        if self._stats.dropped:
            log.warning("recorder: %d ticks were not written", self._stats.dropped)

    def stats(self) -> RecorderStats:
        """A copy of the counters, as of this call."""
        with self._lock:
            s = self._stats
            return RecorderStats(
                s.written,
                s.dropped,
                s.write_errors,
                s.cut_snapshots,
                list(s.files),
                len(self._queue),
            )

    # -- the writer thread --------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        try:
            while True:
                wrote = self._drain()
                now = time.monotonic()
                if now - last_flush >= FLUSH_EVERY_S:
                    last_flush = now
                    self._flush_all(time.time_ns() // HOUR_NS)
                if not wrote:
                    if self._stop.is_set() and not self._queue:
                        break
                    time.sleep(_IDLE_S)
        finally:
            self._close_files()

    def _drain(self) -> int:
        queue = self._queue
        done = 0
        touched: set[_ExchangeFiles] = set()
        while queue and done < _BATCH:
            tick = queue.popleft()
            done += 1
            try:
                touched.add(self._encode(tick))
            except (OSError, ValueError) as exc:
                self._write_failed(tick, exc)
        for files in touched:
            try:
                files.flush(False)
            except OSError as exc:
                self._write_failed(None, exc)
        return done

    def _encode(self, tick: Any) -> _ExchangeFiles:
        files = self._files.get(tick.exchange)
        if files is None:
            files = self._files[tick.exchange] = _ExchangeFiles(self.directory, tick.exchange)
        ts = tick.ts_recv
        hour = ts // HOUR_NS
        if files.out is None or hour > files.hour:
            files.flush(False)
            path = files.open(hour, ts)
            with self._lock:
                self._stats.files.append(str(path))
            log.info("recorder: writing %s", path)
        t = type(tick)
        if t is _RawChunk:
            files.raw(tick)
            self._queued_bytes -= len(tick.data)
            self._stats.written += tick.count
            return files
        if t is Gap:
            iid = files.gap_instrument(tick.symbol, ts) if tick.symbol else 0
            files.chunks.append(encode_system(gap_text(tick, iid), GAP_SYSTEM_CODE, tick.ts_event))
        else:
            iid = files.instrument(tick.symbol, ts)
            if t is BookSnapshot and (len(tick.bids) > _DEPTH or len(tick.asks) > _DEPTH):
                tick = self._cut(tick)
            factor = files.size_factor(iid, tick, ts)
            if factor != 1:
                tick = _scaled(tick, factor)
            if t is Trade:
                files.chunks.append(encode_trade(tick, iid))
            elif t is Quote:
                files.chunks.append(encode_quote(tick, iid))
            elif t is BookUpdate:
                files.chunks.append(encode_book_update(tick, iid))
            elif t is BookClear:
                files.chunks.append(encode_book_clear(tick, iid))
            else:
                files.chunks.append(encode_snapshot(tick, iid))
        self._stats.written += 1
        return files

    def _cut(self, snap: BookSnapshot) -> BookSnapshot:
        # mbp-10 holds ten levels a side: the best ten are what Databento's tools read
        self._stats.cut_snapshots += 1
        n = self._stats.cut_snapshots
        if n <= 1 or n % _LOG_EVERY == 0:
            log.warning(
                "recorder: %s %s: a snapshot of %d bids and %d asks is written as its best "
                "%d levels a side (DBN's mbp-10; %d snapshots so far)",
                snap.exchange,
                snap.symbol,
                len(snap.bids),
                len(snap.asks),
                _DEPTH,
                n,
            )
        return BookSnapshot(
            snap.exchange,
            snap.symbol,
            snap.bids[:_DEPTH],
            snap.asks[:_DEPTH],
            snap.ts_event,
            snap.ts_recv,
            snap.sequence,
        )

    def _write_failed(self, tick: object, exc: Exception) -> None:
        self._stats.write_errors += 1
        if tick is not None:
            self._stats.dropped += 1
        n = self._stats.write_errors
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.error("recorder: cannot write (%d errors so far): %s", n, exc)

    def _flush_all(self, clock_hour: int) -> None:
        for files in self._files.values():
            try:
                if files.out is not None and files.hour < clock_hour:
                    files.close()  # the hour is over: finish its file now, not at the next tick
                else:
                    files.flush(True)
            except OSError as exc:
                self._write_failed(None, exc)

    def _close_files(self) -> None:
        for files in self._files.values():
            try:
                files.close()
            except OSError as exc:
                self._write_failed(None, exc)


class HubRecords:
    """A sink's ``control`` for DBN written by the hub itself (``--record`` files, a
    relayed stream): size-decimals records set the instrument's size scale, Gap
    records become ``Gap`` ticks of the sink's exchange; other control records pass."""

    def __init__(self, sink: ConnectionSink) -> None:
        self.sink = sink

    def __call__(self, kind: str, number: int, text: str) -> object:
        if kind != CONTROL_SYSTEM:
            return None
        if number == SIZE_DECIMALS_CODE:
            scale = parse_size_decimals_text(text)
            if scale is not None:
                self.sink.dbn.size_divisors[scale[0]] = 10 ** scale[1]
            return None
        if number != GAP_SYSTEM_CODE:
            return None
        fields = parse_gap_text(text)
        if fields is None:
            return None
        iid = int(fields["instrument_id"])
        sink = self.sink
        symbol = sink.dbn.symbols.get(iid, "") if iid else ""
        sink.publish(
            Gap(
                sink.exchange,
                symbol,
                fields["start_ts"],
                fields["end_ts"],
                fields["reason"],
                fields["start_seq"],
                fields["end_seq"],
                fields["end_ts"],
                fields["ts_recv"],
            )
        )
        return None
