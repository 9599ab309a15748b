"""FIX receive path: 35=X messages (3 entries: a trade, a bid, an offer) decoded to ticks
by the hub's session + compiled scanner, next to simplefix's parser on the same bytes in
the same run.

    python benchmarks/fix_compare.py              # this section alone
    (compare.py runs it as the "fix" section when it lists it)

Both read the stream in 64 KiB pieces, what ``FixConnection`` reads per ``receive``.
Ours goes all the way: framing, BodyLength/CheckSum, sequence check, group walk, local
book, ticks built in the core and published to a bus with one subscriber per tick type.
simplefix only splits messages into (tag, value) pairs, and re-slices its buffer after
every field, so its cost per message grows with the size of a read.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simplefix  # type: ignore[import-untyped]

import hub_plugin_fix
from hub_core import BookUpdate, Quote, Trade, TypedEventBus
from hub_core.processor import EventProcessor
from hub_plugin_fix import session as s
from hub_plugin_fix.marketdata import MarketDataDecoder
from hub_plugin_fix.messages import Header

N_MESSAGES = 20_000
N_SIMPLEFIX = 3_000
CHUNK = 64 * 1024
TARGET_RATE = 150_000.0
TARGET_RATIO = 25.0


def x_message(seq: int) -> bytes:
    """One MarketDataIncrementalRefresh: a trade at the ask, then both sides' new tops."""
    m = simplefix.FixMessage()
    m.append_pair(8, "FIX.4.4")
    m.append_pair(35, "X")
    m.append_pair(49, "VENUE")
    m.append_pair(56, "HUB")
    m.append_pair(34, seq)
    m.append_pair(52, "20240102-14:30:00.125")
    m.append_pair(262, "md-1")
    m.append_pair(268, 3)
    px = 5000 + (seq % 40) * 0.25
    m.append_pair(279, 0)
    m.append_pair(269, 2)
    m.append_pair(55, "ES")
    m.append_pair(270, f"{px:.2f}")
    m.append_pair(271, 1 + seq % 5)
    m.append_pair(2446, 1 + seq % 2)
    m.append_pair(279, 1)
    m.append_pair(269, 0)
    m.append_pair(55, "ES")
    m.append_pair(270, f"{px - 0.25:.2f}")
    m.append_pair(271, 10 + seq % 7)
    m.append_pair(279, 1)
    m.append_pair(269, 1)
    m.append_pair(55, "ES")
    m.append_pair(270, f"{px:.2f}")
    m.append_pair(271, 12 + seq % 3)
    data: bytes = m.encode()
    return data


def x_stream(n: int, first_seq: int = 2) -> bytes:
    """``n`` 35=X messages numbered from ``first_seq`` (after the Logon reply's 1)."""
    return b"".join(x_message(first_seq + i) for i in range(n))


def chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def logon_reply() -> bytes:
    m = simplefix.FixMessage()
    for tag, value in ((8, "FIX.4.4"), (35, "A"), (49, "VENUE"), (56, "HUB"), (34, 1),
                       (52, "20240102-14:30:00.000"), (98, 0), (108, 30)):  # fmt: skip
        m.append_pair(tag, value)
    data: bytes = m.encode()
    return data


class Receiver:
    """What ``FixConnection.run`` does with each read, minus the socket."""

    def __init__(self) -> None:
        self.bus = TypedEventBus()
        self.ticks = 0
        for kind in (Trade, Quote, BookUpdate):
            self.bus.subscribe(kind, self._count)
        self.sink = EventProcessor(self.bus).sink_for("bench")
        self.session = s.FixSession(
            Header("FIX.4.4", "HUB", "VENUE"), market_data=MarketDataDecoder(self.sink)
        )
        self.session.logon()
        self.session.receive_data(logon_reply())
        if not isinstance(self.session.next_event(), s.LoggedOn):
            raise RuntimeError("the benchmark session did not log on")

    def _count(self, tick: object) -> None:
        self.ticks += 1

    def feed(self, parts: list[bytes]) -> int:
        session = self.session
        events = 0
        for part in parts:
            session.receive_data(part, time.time_ns())
            while not isinstance(session.next_event(), s.NeedData):
                events += 1  # none expected: every message is in sequence
        return events


def ours_rate(parts: list[bytes], n: int, median_time: Callable[..., float]) -> tuple[float, int]:
    receivers: list[Receiver] = []

    def run() -> None:
        r = Receiver()  # a fresh session each run: the sequence starts over
        receivers.append(r)
        if r.feed(parts):
            raise RuntimeError("unexpected session events in the benchmark stream")

    seconds = median_time(run)
    last = receivers[-1]
    if last.session.expected_seq != n + 2:
        raise RuntimeError(f"decoded {last.session.expected_seq - 2} of {n} messages")
    return n / seconds, last.ticks


def simplefix_rate(parts: list[bytes], n: int, median_time: Callable[..., float]) -> float:
    def run() -> None:
        parser = simplefix.FixParser()
        count = 0
        for part in parts:
            parser.append_buffer(part)
            while parser.get_message() is not None:
                count += 1
        if count != n:
            raise RuntimeError(f"simplefix parsed {count} of {n} messages")

    return n / median_time(run, repeats=3)


def bench_fix(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    gc.collect()
    data = x_stream(N_MESSAGES)
    parts = chunks(data)
    ours, ticks = ours_rate(parts, N_MESSAGES, median_time)
    # the same messages for simplefix (a prefix: its rate per message does not depend
    # on how many there are, only on the read size)
    sf_data = x_stream(N_SIMPLEFIX)
    theirs = simplefix_rate(chunks(sf_data), N_SIMPLEFIX, median_time)
    ratio = ours / theirs
    report(
        Result(
            f"FIX 35=X (3 entries) -> ticks, compiled={hub_plugin_fix.COMPILED}",
            ours,
            "msgs/s",
            "simplefix FixParser",
            theirs,
            ratio,
            f">= {TARGET_RATE:,.0f} msgs/s and >= {TARGET_RATIO:.0f}x",
        )
    )
    report(
        Result(
            "  ticks per message (trade, 2 book updates, quote if the top moved)",
            ticks / N_MESSAGES,
            "ticks",
        )
    )
    # one 5 MB buffer in a single feed: linear, where simplefix is quadratic
    big = x_stream(5_000_000 // len(x_message(2)) + 1)
    r = Receiver()
    t0 = time.perf_counter()
    r.feed([big])
    dt = time.perf_counter() - t0
    report(
        Result(
            f"  one {len(big) / 1e6:.1f} MB read, decoded in one pass", len(big) / dt / 1e6, "MB/s"
        )
    )
    # linearity (was a test's wall-clock ratio): the cost per byte of that one big read
    # against a small one; ~1 is linear, a quadratic path would give 10x and more
    small = x_stream(2_500)
    small_dt = min(_one_feed(small) for _ in range(3))
    growth = (dt / len(big)) / (small_dt / len(small))
    report(Result("  cost per byte, 5 MB read / small read (1 = linear)", growth, "x"))


def _one_feed(data: bytes) -> float:
    r = Receiver()
    t0 = time.perf_counter()
    r.feed([data])
    return time.perf_counter() - t0


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from compare import Result, median_time, report

    bench_fix(report, Result, median_time)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
