"""pytest-benchmark: the kit's framers over 64 KiB reads, one stream per round, next
to the hand-written bytearray loop the scaffold's codec had before (the baseline)."""

import struct
from typing import Any

from hub_core.plugin import LengthPrefixFramer, LineFramer

LINE = b"T AAA 100.25 3 B 1 1700000000000000000\n"
LINES = LINE * 20_000
RECORD = struct.pack(">I", 40) + b"x" * 40
RECORDS = RECORD * 20_000
READ = 65_536


def reads(stream: bytes) -> list[bytes]:
    return [stream[i : i + READ] for i in range(0, len(stream), READ)]


LINE_READS = reads(LINES)
RECORD_READS = reads(RECORDS)


def count_frames(framer: LineFramer | LengthPrefixFramer, stream: list[bytes]) -> int:
    """Feed every read, taking each frame as a codec would."""
    n = 0
    for data in stream:
        framer.feed(data)
        for _ in framer:
            n += 1
    return n


def test_line_framer(benchmark: Any) -> None:
    assert benchmark(lambda: count_frames(LineFramer(8192), LINE_READS)) == 20_000


def test_hand_written_line_loop_baseline(benchmark: Any) -> None:
    def run() -> int:
        buf, n = bytearray(), 0
        for data in LINE_READS:
            buf += data
            while (end := buf.find(b"\n")) >= 0:
                bytes(buf[:end])
                del buf[: end + 1]
                n += 1
        return n

    assert benchmark(run) == 20_000


def test_length_prefix_framer(benchmark: Any) -> None:
    assert benchmark(lambda: count_frames(LengthPrefixFramer(4), RECORD_READS)) == 20_000
