"""Receive-to-callback latency, sampled on the hot path (compiled).

The sink records one sample every ``SAMPLE_EVERY`` ticks (the clock read
costs more than the rest of a publish), into a fixed ring; percentiles sort a
copy on demand, off the hot path.
"""

from typing import Final, final

SAMPLE_EVERY: Final = 64
RING: Final = 4096


@final
class LatencyRecorder:
    """A ring of the most recent latency samples, in ns."""

    count: int

    def __init__(self, size: int = RING) -> None:
        self._ring: list[int] = [0] * size
        self._size = size
        self._pos = 0
        self.count = 0

    def record(self, ns: int) -> None:
        self._ring[self._pos] = ns
        self._pos += 1
        if self._pos == self._size:
            self._pos = 0
        self.count += 1

    def samples(self) -> list[int]:
        n = self.count if self.count < self._size else self._size
        return sorted(self._ring[:n])

    def percentiles(self, qs: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)) -> dict[str, int]:
        """``{"p50": ns, ...}`` over the samples in the ring; empty before any."""
        data = self.samples()
        out: dict[str, int] = {}
        if not data:
            return out
        n = len(data)
        for q in qs:
            idx = int(q * (n - 1) + 0.5)
            label = f"p{q * 100:g}".replace(".", "_")
            out[label] = data[idx]
        return out

    def clear(self) -> None:
        self._pos = 0
        self.count = 0
