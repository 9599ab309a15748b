"""``RateWindow``: the sliding-window limiter that keeps the connector under a venue's
rate limits (connections per host, control messages, REST snapshots).

Sans-I/O: nothing here sleeps or reads a clock; the caller passes ``now``.
"""

from __future__ import annotations

__all__ = ["RateWindow"]


class RateWindow:
    """At most ``limit`` events in any ``window_s`` seconds (a sliding window).

    ``delay(now)`` is how long to wait before the next event is allowed;
    ``record(now)`` counts one. A sliding window (not a token bucket with a
    burst) is what venues count, so a burst after a quiet period is safe too.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        # a list, not a deque: windows are short, and an idle connection holds several
        # (an empty deque costs 600 bytes)
        self._times: list[float] = []

    def _expire(self, now: float) -> None:
        times = self._times
        n = 0
        while n < len(times) and now - times[n] >= self.window_s:
            n += 1
        if n:
            del times[:n]

    def delay(self, now: float) -> float:
        """Seconds until one more event fits (0.0 = now)."""
        self._expire(now)
        if len(self._times) < self.limit:
            return 0.0
        # a hair more than exact, so that float rounding never lets the wait end a
        # fraction short of the window (the caller re-checks after sleeping anyway)
        return max(0.0, self._times[0] + self.window_s - now) + 1e-6

    def record(self, now: float) -> None:
        """Count one event at ``now``."""
        self._expire(now)
        self._times.append(now)

    def reserve(self, now: float) -> float:
        """Count one event at the earliest time from ``now`` on that the window admits,
        and return that time (the caller sleeps until then).

        Reservations are made in order, so the times stay sorted: a caller can take its
        slot under a lock and sleep without it, and the next caller's slot is computed
        against every slot already promised, slept through or not."""
        self._expire(now)
        times = self._times
        at = now
        if len(times) >= self.limit:
            # the event ``limit`` back must have left the window (see delay's hair)
            at = max(now, times[-self.limit] + self.window_s + 1e-6)
        times.append(at)
        return at

    def __len__(self) -> int:
        return len(self._times)
