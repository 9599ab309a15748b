"""Sans-I/O pieces of the generic connector that are not venue-specific.

Venue protocols live in the dialects (``hub_plugin_websocket.dialects``);
this module holds what every dialect shares: URL rules (TLS unless loopback)
and ``RateWindow``, the sliding-window limiter the connection uses to stay
under a venue's rate limits. Nothing here does I/O or reads a clock: the
caller passes ``now``.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_HOSTS",
    "RateWindow",
    "check_rest_url",
    "check_stream_url",
    "is_loopback_host",
]

LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def check_stream_url(url: str) -> str:
    """The host of a stream URL; ``ValueError`` unless it is ``wss://`` (or ``ws://`` to
    a loopback host, where nothing leaves the machine)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("ws", "wss") or not host:
        raise ValueError(f"{url!r} is not a WebSocket URL (its scheme must be wss or ws)")
    if parts.scheme == "ws" and not is_loopback_host(host):
        raise ValueError(
            f"{url!r}: plain ws:// is only allowed to a loopback host; use wss:// "
            "(TLS, verified) for a venue"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number 1..65535") from None
    return host


def check_rest_url(url: str) -> str:
    """The host of a REST base URL; ``ValueError`` unless ``https://`` (or loopback http)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"{url!r}: plain http:// is only allowed to a loopback host")
    return host


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
