"""``hub replay`` / ``ExchangeHub.replay()``: DBN files back through the bus.

A file's records go through a ``ConnectionSink`` of the hub (the same
compiled decoder and publish path as a live DBN feed), with
``record_ts_recv`` set so each tick keeps the ``ts_recv`` it was recorded
with. Files written by ``hub run --record`` and Databento's own historical
files both replay: zstd or plain, DBN v3 as is, v1/v2 upgraded to v3 by
``databento_dbn``. Instrument ids are named by the metadata's symbology
mappings (Databento's files) and by symbol-mapping records (ours). A system
record with the recorder's ``hub.gap`` text is published as the ``Gap`` it was.

One exchange's files play one after the other (ordered by their metadata
``start``); several exchanges are merged by ``ts_recv``. This module does file
I/O and imports ``zstandard``: it stays interpreted.
"""

from __future__ import annotations

import heapq
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import anyio
import zstandard

from hub_core.dbn import (
    DBN_VERSION,
    RTYPE_MBO,
    RTYPE_SYMBOL_MAPPING,
    STYPE_INSTRUMENT_ID,
    UNDEF_TIMESTAMP,
    decode_metadata,
)
from hub_core.errors import HubError
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.recording import HubRecords
from hub_core.streams import wait_for_capacity

log = logging.getLogger("hub_core.replay")

SUFFIXES: Final = (".dbn", ".dbn.zst")
"""What a directory replays."""
CHUNK: Final = 1 << 20
"""Bytes read (decompressed) at a time."""
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_U64: Final = struct.Struct("<Q")
# rtypes whose ts_recv is at offset 32 (every market record but mbo, at 40)
_TS_RECV_32: Final = frozenset({0x00, 0x01, 0x0A, 0xB1, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5})
_PACE_SLACK_NS: Final = 1_000_000
"""Records due within this much of now are fed together (pacing is by the millisecond)."""

Progress = Callable[[int, int, int], object]
"""``progress(bytes_read, bytes_total, records)``: called after every buffer."""


class ReplayError(HubError):
    """A file cannot be replayed (missing, unreadable, not DBN), or nothing to replay."""


@dataclass
class ReplayStats:
    """What a replay did (``ExchangeHub.replay`` returns it)."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    """Records decoded: ticks, symbol-mapping, system and error records."""
    exchanges: list[str] = field(default_factory=list)
    seconds: float = 0.0


def replay_paths(paths: list[str | Path]) -> list[Path]:
    """The files to replay: each path itself, or a directory's ``*.dbn`` / ``*.dbn.zst``
    (recursively). Raises ``ReplayError`` for a missing path or nothing to replay."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_dbn_name(p))
            if not found:
                raise ReplayError(
                    f"{path}: no *.dbn or *.dbn.zst files in this directory",
                    hint="give a directory written by `hub run --record` or DBN files",
                )
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ReplayError(f"{path}: no such file or directory")
    if not out:
        raise ReplayError("nothing to replay: give at least one file or directory")
    return out


def _is_dbn_name(path: Path) -> bool:
    return any(path.name.endswith(s) for s in SUFFIXES)


class DbnFile:
    """One DBN file opened for replay: its metadata and its v3 record bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size if path.exists() else 0
        self._raw: IO[bytes] | None = None
        self._stream: Any = None
        try:
            raw = path.open("rb")
        except OSError as exc:
            raise ReplayError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self._raw = raw
        magic = raw.read(4)
        raw.seek(0)
        if magic == _ZSTD_MAGIC:
            self._stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        else:
            self._stream = raw
        head = b""
        meta: dict[str, object] = {}
        consumed = 0
        try:
            while consumed == 0:
                more = self._stream.read(CHUNK if head else 8)
                if not more:
                    raise ValueError("the file ends inside its metadata header")
                head += more
                meta, consumed = decode_metadata(head)
        except (ValueError, zstandard.ZstdError, OSError) as exc:
            self.close()
            raise ReplayError(f"{path}: not a DBN file ({exc})") from None
        self.metadata = meta
        self.version = int(str(meta["version"]))
        self._header = head[:consumed]
        self._first = head[consumed:]
        start = meta.get("start")
        self.start = start if isinstance(start, int) else 0

    @property
    def bytes_read(self) -> int:
        """Bytes of the file (compressed, as on disk) read so far."""
        raw = self._raw
        if raw is None or raw.closed:
            return self.size
        return raw.tell()

    def exchange(self) -> str:
        """The exchange to publish under: the metadata's dataset, or the directory's name
        when the dataset is empty or that name cut to DBN's 15 characters."""
        dataset = str(self.metadata.get("dataset") or "")
        parent = self.path.parent.name
        if not dataset or (parent != dataset and parent.startswith(dataset)):
            return parent or self.path.name.split(".", 1)[0]
        return dataset

    def instrument_symbols(self) -> dict[int, str]:
        """instrument_id -> symbol from the metadata's symbology mappings."""
        out: dict[int, str] = {}
        if self.metadata.get("stype_out") != STYPE_INSTRUMENT_ID:
            return out
        mappings = self.metadata.get("mappings")
        for m in mappings if isinstance(mappings, list) else []:
            for _d0, _d1, iid in m["intervals"]:
                if str(iid).isdigit():
                    out[int(iid)] = str(m["raw_symbol"])
        return out

    def chunks(self) -> Iterator[bytes]:
        """The records as DBN v3 bytes, a buffer at a time (a record may span two)."""
        if self.version < DBN_VERSION:
            yield from self._upgraded()
            return
        if self._first:
            yield self._first
        try:
            while True:
                data = self._stream.read(CHUNK)
                if not data:
                    return
                yield data
        except (zstandard.ZstdError, OSError) as exc:
            raise ReplayError(f"{self.path}: cannot read: {exc}") from None

    def _upgraded(self) -> Iterator[bytes]:
        # v1/v2 records differ from v3 (symbol-mapping, error, system, definition
        # layouts): Databento's own decoder upgrades them, record by record
        try:
            import databento_dbn
        except ImportError:
            raise ReplayError(
                f"{self.path}: DBN version {self.version} needs databento-dbn to upgrade it",
                hint="pip install databento-dbn",
            ) from None
        # the stub types the member as an int; at run time it is the enum value
        upgrade: Any = databento_dbn.VersionUpgradePolicy.UPGRADE_TO_V3
        decoder = databento_dbn.DBNDecoder(upgrade_policy=upgrade)
        decoder.write(self._header)
        pending = self._first
        while True:
            if pending:
                decoder.write(pending)
                records = decoder.decode()
                body = b"".join(
                    bytes(r) for r in records if not isinstance(r, databento_dbn.Metadata)
                )
                if body:
                    yield body
            pending = self._stream.read(CHUNK)
            if not pending:
                return

    def close(self) -> None:
        """Close the file. Idempotent."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


def record_ts(data: bytes, pos: int) -> int:
    """The time a record is replayed at: its ``ts_recv``, else its ``ts_event``."""
    rtype = data[pos + 1]
    if rtype in _TS_RECV_32:
        ts: int = _U64.unpack_from(data, pos + 32)[0]
    elif rtype == RTYPE_MBO:
        ts = _U64.unpack_from(data, pos + 40)[0]
    else:
        ts = 0
    if ts == 0 or ts == UNDEF_TIMESTAMP:
        ts = _U64.unpack_from(data, pos + 8)[0]
    return ts


class _Exchange:
    """One exchange's files, played in order through its sink."""

    def __init__(self, name: str, files: list[DbnFile], sink: ConnectionSink) -> None:
        self.name = name
        self.files = sorted(files, key=lambda f: (f.start, f.path.name))
        self.sink = sink
        self.current: DbnFile | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._index = 0
        self.buf = b""
        self.pos = 0
        self.done = False
        sink.dbn.record_ts_recv = True
        sink.control = HubRecords(sink)

    def next_file(self) -> bool:
        """Start the next file: a fresh decoder state, its metadata's symbols."""
        self.finish_file()
        if self._index >= len(self.files):
            self.done = True
            return False
        f = self.files[self._index]
        self._index += 1
        self.current = f
        decoder = self.sink.dbn
        decoder.reset()
        decoder.symbols.update(f.instrument_symbols())
        self._chunks = f.chunks()
        return True

    def finish_file(self) -> None:
        f, self.current = self.current, None
        if f is None:
            return
        if self.sink.dbn.pending or self.pos < len(self.buf):
            self.sink.malformed(f"{f.path}: the file ends inside a record (truncated)")
        self.buf = b""
        self.pos = 0
        f.close()

    def next_chunk(self) -> bytes | None:
        """The next buffer of the current file, or None at its end."""
        return next(self._chunks, None)

    # -- record by record (merging, pacing) -------------------------------------------
    def head_ts(self) -> int | None:
        """ts of the next record (reading on as needed); None when every file is done."""
        while True:
            n = len(self.buf)
            pos = self.pos
            if pos < n:
                rlen = self.buf[pos] * 4
                if rlen == 0:
                    self.sink.malformed(f"{self.name}: a record of length 0; rest of file skipped")
                    self.buf, self.pos = b"", 0
                    self._chunks = iter(())
                    continue
                if pos + rlen <= n:
                    if self.buf[pos + 1] == RTYPE_SYMBOL_MAPPING:
                        return -1  # mappings go first: they name what follows
                    return record_ts(self.buf, pos)
            chunk = self.next_chunk() if self.current is not None else None
            if chunk:
                self.buf = self.buf[pos:] + chunk
                self.pos = 0
                continue
            if not self.next_file():
                return None

    def take_run(self, bound: int) -> bytes:
        """Consecutive whole records of the current buffer with ts <= ``bound`` (at least one)."""
        buf = self.buf
        n = len(buf)
        start = pos = self.pos
        while pos < n:
            rlen = buf[pos] * 4
            if rlen == 0 or pos + rlen > n:
                break
            if pos > start and buf[pos + 1] != RTYPE_SYMBOL_MAPPING and record_ts(buf, pos) > bound:
                break
            pos += rlen
        self.pos = pos
        return buf[start:pos]


class Replayer:
    """Plays DBN files through an ``EventProcessor``'s sinks (see ``ExchangeHub.replay``)."""

    def __init__(
        self,
        processor: EventProcessor,
        paths: list[str | Path],
        *,
        speed: float | None = None,
        progress: Progress | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.progress = progress
        files: list[DbnFile] = []
        try:
            for path in replay_paths(paths):
                files.append(DbnFile(path))
        except BaseException:
            for f in files:
                f.close()
            raise
        self.files = files
        self.total_bytes = sum(f.size for f in files)
        by_exchange: dict[str, list[DbnFile]] = {}
        for f in files:
            by_exchange.setdefault(f.exchange(), []).append(f)
        self.exchanges = [
            _Exchange(name, fs, processor.sink_for(name)) for name, fs in by_exchange.items()
        ]
        self.stats = ReplayStats([str(f.path) for f in files], 0, list(by_exchange))

    def bytes_read(self) -> int:
        """Compressed bytes read so far across every file."""
        return sum(f.bytes_read for f in self.files)

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.bytes_read(), self.total_bytes, self.stats.records)

    async def run(self) -> ReplayStats:
        """Replay every file; returns the stats. Files are closed however it ends."""
        started = time.monotonic()
        try:
            if len(self.exchanges) == 1 and self.speed is None:
                await self._run_one(self.exchanges[0])
            else:
                await self._run_merged()
        finally:
            for ex in self.exchanges:
                ex.finish_file()
            for f in self.files:
                f.close()
        self.stats.seconds = time.monotonic() - started
        self._report()
        return self.stats

    async def _feed(self, sink: ConnectionSink, data: bytes) -> None:
        self.stats.records += sink.feed_dbn(data, 0)
        if sink.backpressured:
            await wait_for_capacity(sink)

    async def _run_one(self, ex: _Exchange) -> None:
        # as fast as possible: whole buffers straight into the compiled decoder
        sink = ex.sink
        while ex.next_file():
            while (chunk := ex.next_chunk()) is not None:
                await self._feed(sink, chunk)
                self._report()
                await anyio.lowlevel.checkpoint()

    async def _run_merged(self) -> None:
        heap: list[tuple[int, int]] = []
        for i, ex in enumerate(self.exchanges):
            ts = ex.head_ts()
            if ts is not None:
                heap.append((ts, i))
        heapq.heapify(heap)
        speed = self.speed
        first_ts = min((ts for ts, _ in heap if ts >= 0), default=0)
        t0 = time.monotonic_ns()
        fed = 0
        while heap:
            ts, i = heapq.heappop(heap)
            ex = self.exchanges[i]
            bound = heap[0][0] if heap else UNDEF_TIMESTAMP
            if speed is not None:
                if first_ts == 0 and ts >= 0:
                    first_ts = ts
                now = time.monotonic_ns()
                if ts >= 0:  # (a symbol mapping, -1, is due at once)
                    due = t0 + int((ts - first_ts) / speed)
                    if due > now:
                        await anyio.sleep((due - now) / 1e9)
                        now = time.monotonic_ns()
                if first_ts:
                    # what is due by now (and a little): fed together
                    bound = min(bound, first_ts + int((now - t0 + _PACE_SLACK_NS) * speed))
            run = ex.take_run(bound)
            if run:
                await self._feed(ex.sink, run)
                fed += len(run)
                if fed >= CHUNK:
                    fed = 0
                    self._report()
                    await anyio.lowlevel.checkpoint()
            nxt = ex.head_ts()
            if nxt is not None:
                heapq.heappush(heap, (nxt, i))
