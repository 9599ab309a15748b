"""The Gap rule as a check: every window in which a connection was blind is covered by a Gap.

A consumer relies on "no Gap" meaning "nothing was missed". These helpers turn
a recorded stream of events (bus objects, or ``hub run --jsonl`` lines as
dicts) into the silent windows between consecutive market-data ticks of one
connection, and report the windows that no ``Gap`` covers. The conformance
suite and the CLI fault suite use them; a plugin's own tests can too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DATA_TYPES = ("Trade", "Quote", "BookUpdate", "BookSnapshot", "BookClear")
"""The event types that are market data (a ``Gap`` or a state change is not)."""


@dataclass(frozen=True)
class Window:
    """A stretch of wall-clock time (ns) with no market data from one connection."""

    exchange: str
    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def __str__(self) -> str:
        return f"{self.exchange}: {self.seconds:.3f} s from {self.start_ns} to {self.end_ns}"


def _get(event: Any, name: str) -> Any:
    if isinstance(event, Mapping):
        return event.get(name)
    return getattr(event, name, None)


def _type_name(event: Any) -> str:
    if isinstance(event, Mapping):
        return str(event.get("type", ""))
    return type(event).__name__


def blind_windows(events: Iterable[Any], threshold_ns: int, exchange: str = "") -> list[Window]:
    """Silences longer than ``threshold_ns`` between consecutive data ticks, per connection.

    ``events`` are bus events or ``--jsonl`` dicts in the order received;
    ``exchange`` limits the check to one connection ("" = every one). The
    time of a tick is its ``ts_recv``.
    """
    last: dict[str, int] = {}
    found: list[Window] = []
    for event in events:
        if _type_name(event) not in DATA_TYPES:
            continue
        ex = str(_get(event, "exchange"))
        if exchange and ex != exchange:
            continue
        ts = int(_get(event, "ts_recv") or 0)
        prev = last.get(ex)
        if prev is not None and ts - prev > threshold_ns:
            found.append(Window(ex, prev, ts))
        if prev is None or ts > prev:
            last[ex] = ts
    return found


FINAL_STATES = ("dead", "auth_failed", "closed")
"""States after which a connection delivers nothing more."""


def trailing_windows(events: Iterable[Any], threshold_ns: int, exchange: str = "") -> list[Window]:
    """Per connection, the silence from its last data tick to its first final state
    (``dead``, ``auth_failed``, ``closed``) after it, when longer than ``threshold_ns``:
    the blindness of a connection that stopped for good."""
    last: dict[str, int] = {}
    found: list[Window] = []
    for event in events:
        name = _type_name(event)
        ex = str(_get(event, "exchange"))
        if exchange and ex != exchange:
            continue
        if name in DATA_TYPES:
            last[ex] = max(last.get(ex, 0), int(_get(event, "ts_recv") or 0))
        elif name == "ConnectionStateChanged" and _get(event, "state") in FINAL_STATES:
            start = last.pop(ex, None)
            end = int(_get(event, "ts_event") or 0)
            if start is not None and end - start > threshold_ns:
                found.append(Window(ex, start, end))
    return found


def connection_gaps(events: Iterable[Any], exchange: str) -> list[tuple[int, int]]:
    """The [start_ts, end_ts] of every connection-wide ``Gap`` (symbol "") of ``exchange``."""
    return [
        (int(_get(e, "start_ts")), int(_get(e, "end_ts")))
        for e in events
        if _type_name(e) == "Gap" and _get(e, "exchange") == exchange and not _get(e, "symbol")
    ]


def uncovered(
    windows: Iterable[Window], events: Iterable[Any], tolerance_ns: int = 50_000_000
) -> list[Window]:
    """The windows that the connection-wide Gaps in ``events`` do not cover.

    A window is covered when the union of its connection's Gap intervals,
    each widened by ``tolerance_ns``, contains it whole.
    """
    events = list(events)
    by_exchange: dict[str, list[tuple[int, int]]] = {}
    missing: list[Window] = []
    for w in windows:
        gaps = by_exchange.get(w.exchange)
        if gaps is None:
            gaps = sorted(connection_gaps(events, w.exchange))
            by_exchange[w.exchange] = gaps
        reach = w.start_ns
        for start, end in gaps:
            if start - tolerance_ns <= reach:
                reach = max(reach, end + tolerance_ns)
            if reach >= w.end_ns:
                break
        if reach < w.end_ns:
            missing.append(w)
    return missing


def assert_blind_windows_covered(
    events: Iterable[Any],
    threshold_ns: int,
    *,
    exchange: str = "",
    tolerance_ns: int = 50_000_000,
) -> list[Window]:
    """Fail (``AssertionError``) naming every silence of more than ``threshold_ns`` that no
    Gap covers (between ticks, and from the last tick to a final stop); returns the
    windows found, so a test can also check the fault made one."""
    events = list(events)
    windows = blind_windows(events, threshold_ns, exchange)
    windows += trailing_windows(events, threshold_ns, exchange)
    missing = uncovered(windows, events, tolerance_ns)
    assert not missing, "blind windows with no Gap: " + "; ".join(str(w) for w in missing)
    return windows


__all__ = [
    "DATA_TYPES",
    "FINAL_STATES",
    "Window",
    "assert_blind_windows_covered",
    "blind_windows",
    "connection_gaps",
    "trailing_windows",
    "uncovered",
]
