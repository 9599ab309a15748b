"""Receive-to-callback latency, sampled on the hot path (compiled).

The sink records one sample every ``SAMPLE_EVERY`` ticks (the clock read
costs more than the rest of a publish), into a fixed ring and into histogram
buckets; percentiles sort a copy of the ring on demand, off the hot path. The
buckets are cumulative over the recorder's life, as a Prometheus histogram
wants them.
"""

from typing import Final, final

SAMPLE_EVERY: Final = 64
RING: Final = 4096
BUCKETS_NS: Final[tuple[int, ...]] = (
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
)
"""Upper bounds of the histogram buckets (1 µs to 1 s); one more bucket holds the rest."""


@final
class LatencyRecorder:
    """A ring of the most recent latency samples, in ns, and a histogram of all of them."""

    count: int
    sum_ns: int

    def __init__(self, size: int = RING) -> None:
        self._ring: list[int] = [0] * size
        self._size = size
        self._pos = 0
        self.count = 0
        self.sum_ns = 0
        self._buckets: list[int] = [0] * (len(BUCKETS_NS) + 1)

    def record(self, ns: int) -> None:
        self._ring[self._pos] = ns
        self._pos += 1
        if self._pos == self._size:
            self._pos = 0
        self.count += 1
        self.sum_ns += ns
        i = 0
        for bound in BUCKETS_NS:
            if ns <= bound:
                break
            i += 1
        self._buckets[i] += 1

    def samples(self) -> list[int]:
        n = self.count if self.count < self._size else self._size
        return sorted(self._ring[:n])

    def percentiles(self, qs: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)) -> dict[str, int]:
        """``{"p50": ns, ...}`` over the samples in the ring; empty before any."""
        return percentiles_of(self.samples(), qs)

    def histogram(self) -> list[tuple[int, int]]:
        """``[(upper bound ns, cumulative count), ...]``, the last bound ``-1`` for +Inf."""
        out: list[tuple[int, int]] = []
        total = 0
        for i, bound in enumerate(BUCKETS_NS):
            total += self._buckets[i]
            out.append((bound, total))
        out.append((-1, total + self._buckets[len(BUCKETS_NS)]))
        return out

    def clear(self) -> None:
        self._pos = 0
        self.count = 0
        self.sum_ns = 0
        self._buckets = [0] * (len(BUCKETS_NS) + 1)


def percentiles_of(
    data: list[int], qs: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
) -> dict[str, int]:
    """``{"p50": ns, ...}`` of sorted ``data``; empty for no data."""
    out: dict[str, int] = {}
    if not data:
        return out
    n = len(data)
    for q in qs:
        idx = int(q * (n - 1) + 0.5)
        label = f"p{q * 100:g}".replace(".", "_")
        out[label] = data[idx]
    return out
