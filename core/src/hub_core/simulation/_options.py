"""``hub sim -o KEY=VALUE``: simulator options given as text, converted per keyword."""

from __future__ import annotations

import math
from collections.abc import Callable

OptionParser = Callable[[str], object]
"""Turns the text of ``hub sim -o KEY=VALUE`` into the simulator keyword's value."""


def parse_bool(text: str) -> bool:
    """``true``/``false``/``1``/``0``/``yes``/``no`` (any case) as a bool."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def parse_list(text: str) -> list[str]:
    """``A,B,C`` as ``["A", "B", "C"]`` (items stripped, empty ones left out)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_users(text: str) -> dict[str, str]:
    """``USER:PASSWORD[,USER:PASSWORD...]`` as a mapping (the simulator's accounts)."""
    users: dict[str, str] = {}
    for item in text.split(","):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise ValueError(item)
        users[user] = password
    return users


def simulator_options(
    simulator: str,
    given: dict[str, object],
    parsers: dict[str, tuple[OptionParser, str] | None],
) -> dict[str, object]:
    """``hub sim -o`` options for ``simulator``, text converted by each key's parser.

    ``parsers`` maps every keyword the simulator takes to ``(parse, what it expects)``,
    or to None for a keyword only Python can pass (an SSL context). An unknown key, a
    value its parser refuses or a number that is not finite is a ``ValueError``
    naming the option, which ``hub sim`` prints as a one-line error (exit 2). Values
    that are not text (from Python) pass as they are.
    """
    out: dict[str, object] = {}
    for key, raw in given.items():
        if key not in parsers:
            takes = ", ".join(sorted(parsers)) or "no options"
            raise ValueError(f"the {simulator} simulator has no option {key!r} (it takes {takes})")
        value = raw
        if isinstance(raw, str):
            parser = parsers[key]
            if parser is None:
                raise ValueError(f"option {key!r} cannot be given as text")
            parse, what = parser
            try:
                value = parse(raw)
            except ValueError:
                raise ValueError(f"option {key}={raw!r}: expected {what}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"option {key}={raw!r}: expected a finite number")
        out[key] = value
    return out


__all__ = ["OptionParser", "parse_bool", "parse_list", "parse_users", "simulator_options"]
