"""Exact decimal text -> int fixed point (scale 1e9), compiled with mypyc.

Venues send prices as decimal text ("0.35130000", "6195.5", "-1.2e-3"). Going
through ``float`` loses digits past the 15th and ``Decimal`` costs about a
microsecond, so this is a digit loop: it never rounds, and a value that cannot
be represented exactly at 1e-9 (or is not a number at all) raises
``MalformedNumber`` instead of being silently changed.
"""

from typing import Final

from hub_core.errors import MalformedNumber

PRICE_SCALE: Final = 1_000_000_000
"""Every price and size is an int holding ``value * PRICE_SCALE``."""

SCALE_DIGITS: Final = 9
# i64 bound, the width DBN and our wire formats carry.
_I64_MAX: Final = 9_223_372_036_854_775_807
# bounds the digit loop so a hostile 10 kB "number" costs nothing
_MANT_MAX: Final = 10**30
_POW10: Final = (
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
)


def parse_fixed(text: str) -> int:
    """Parse decimal text to an int scaled by ``PRICE_SCALE``, exactly."""
    n = len(text)
    i = 0
    neg = False
    if n == 0:
        raise MalformedNumber("empty number")
    c = ord(text[0])
    if c == 45 or c == 43:  # '-' '+'
        neg = c == 45
        i = 1
    mant = 0
    frac_digits = 0
    any_digit = False
    seen_dot = False
    exp = 0
    while i < n:
        c = ord(text[i])
        if 48 <= c <= 57:
            if seen_dot:
                frac_digits += 1
            # leading zeros do not count toward the 19-digit bound
            any_digit = True
            mant = mant * 10 + (c - 48)
            if mant > _MANT_MAX:
                raise MalformedNumber(f"number out of range: {text!r}")
        elif c == 46 and not seen_dot:  # '.'
            seen_dot = True
        elif c == 101 or c == 69:  # 'e' 'E'
            exp = _parse_exponent(text, i + 1, n)
            break
        else:
            raise MalformedNumber(f"not a decimal number: {text!r}")
        i += 1
    return _scale(mant, frac_digits - exp, neg, any_digit, text)


def parse_fixed_bytes(text: bytes) -> int:
    """Parse decimal ASCII bytes to an int scaled by ``PRICE_SCALE``, exactly."""
    n = len(text)
    i = 0
    neg = False
    if n == 0:
        raise MalformedNumber("empty number")
    c = text[0]
    if c == 45 or c == 43:
        neg = c == 45
        i = 1
    mant = 0
    frac_digits = 0
    any_digit = False
    seen_dot = False
    exp = 0
    while i < n:
        c = text[i]
        if 48 <= c <= 57:
            if seen_dot:
                frac_digits += 1
            any_digit = True
            mant = mant * 10 + (c - 48)
            if mant > _MANT_MAX:
                raise MalformedNumber(f"number out of range: {text!r}")
        elif c == 46 and not seen_dot:
            seen_dot = True
        elif c == 101 or c == 69:
            exp = _parse_exponent(text.decode("ascii", "replace"), i + 1, n)
            break
        else:
            raise MalformedNumber(f"not a decimal number: {text!r}")
        i += 1
    return _scale(mant, frac_digits - exp, neg, any_digit, text)


def _parse_exponent(text: str, i: int, n: int) -> int:
    neg = False
    if i < n and (text[i] == "-" or text[i] == "+"):
        neg = text[i] == "-"
        i += 1
    if i >= n:
        raise MalformedNumber(f"not a decimal number: {text!r}")
    e = 0
    while i < n:
        c = ord(text[i])
        if not 48 <= c <= 57:
            raise MalformedNumber(f"not a decimal number: {text!r}")
        e = e * 10 + (c - 48)
        if e > 400:
            raise MalformedNumber(f"exponent out of range: {text!r}")
        i += 1
    return -e if neg else e


def _scale(mant: int, frac: int, neg: bool, any_digit: bool, text: object) -> int:
    """Return ``mant * 10**(9 - frac)`` with sign, refusing any inexact result."""
    if not any_digit:  # "", "-", ".", "e5"
        raise MalformedNumber(f"not a decimal number: {text!r}")
    shift = SCALE_DIGITS - frac
    if shift >= 0:
        value = mant * (_POW10[shift] if shift <= 9 else 10**shift)
    else:
        div = _POW10[-shift] if -shift <= 9 else 10 ** (-shift)
        value = mant // div
        if value * div != mant:
            raise MalformedNumber(f"more precision than 1e-9 in {text!r}")
    if value > _I64_MAX:
        raise MalformedNumber(f"number out of range: {text!r}")
    return -value if neg else value


def format_fixed(value: int) -> str:
    """Render a fixed-point int as the shortest exact decimal text."""
    neg = value < 0
    if neg:
        value = -value
    whole = value // PRICE_SCALE
    frac = value - whole * PRICE_SCALE
    if frac == 0:
        s = str(whole)
    else:
        s = f"{whole}.{frac:09d}".rstrip("0")
    return "-" + s if neg else s


def to_float(value: int) -> float:
    """Convenience float view of a fixed-point int (display only, never for arithmetic)."""
    return value / PRICE_SCALE
