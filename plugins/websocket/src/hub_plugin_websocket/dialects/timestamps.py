"""Venue timestamps to nanoseconds: ``rfc3339_ns`` (Coinbase and Kraken write RFC 3339)."""

from __future__ import annotations

import calendar

__all__ = ["rfc3339_ns"]

_DAY_CACHE: dict[str, int] = {}


def rfc3339_ns(text: str) -> int:
    """``2014-11-07T08:19:27.028459Z`` -> ns since the epoch (UTC, ``Z`` or ``+00:00``).

    Hand-rolled for the hot path: the day's epoch is cached, the rest is integer
    arithmetic (``datetime`` would also lose the nanoseconds). ``ValueError`` if
    the text is not of that shape."""
    if len(text) < 20 or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    day = text[:10]
    base = _DAY_CACHE.get(day)
    if base is None:
        if day[4] != "-" or day[7] != "-" or not (day[:4] + day[5:7] + day[8:]).isdigit():
            raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
        base = calendar.timegm((int(day[:4]), int(day[5:7]), int(day[8:]), 0, 0, 0))
        if len(_DAY_CACHE) > 64:  # a long-running feed crosses days: keep it small
            _DAY_CACHE.clear()
        _DAY_CACHE[day] = base
    hms = text[11:13] + text[14:16] + text[17:19]
    if not hms.isdigit():
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    secs = base + int(hms[:2]) * 3600 + int(hms[2:4]) * 60 + int(hms[4:])
    rest = text[19:]
    frac = 0
    if rest[:1] == ".":
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
        frac = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest not in ("Z", "+00:00"):
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    return secs * 1_000_000_000 + frac
