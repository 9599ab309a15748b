"""Exact decimal text -> int fixed point (scale 1e9), compiled with mypyc.

Venues send prices as decimal text ("0.35130000", "6195.5", "-1.2e-3"). Going
through ``float`` loses digits past the 15th and ``Decimal`` costs about a
microsecond, so this is a digit loop: it never rounds, and a value that cannot
be represented exactly at 1e-9 (or is not a number at all) raises
``MalformedNumber`` instead of being silently changed.
"""

from typing import Final

from mypy_extensions import i64

from hub_core.errors import MalformedNumber

PRICE_SCALE: Final = 1_000_000_000
"""Every price and size is an int holding ``value * PRICE_SCALE``."""

SCALE_DIGITS: Final = 9
# i64 bound, the width DBN and our wire formats carry.
_I64_MAX: Final = 9_223_372_036_854_775_807
_I64_MAX_NATIVE: Final[i64] = 9_223_372_036_854_775_807
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


_I64_POW10: Final[tuple[i64, ...]] = (
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
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
)
_I64_MAX_OVER_POW10: Final[tuple[i64, ...]] = tuple(
    [_I64_MAX_NATIVE // _I64_POW10[k] for k in range(SCALE_DIGITS + 1)]
)
"""The largest mantissa that ``10**k`` scales within i64, per ``k`` (0..9)."""
# Up to 18 significant digits fit an i64 mantissa; longer text (or an
# exponent) takes the exact arbitrary-precision path.
_FAST_DIGITS: Final = 18


def parse_fixed(text: str) -> int:
    """Parse decimal text to an int scaled by ``PRICE_SCALE``, exactly."""
    n: i64 = len(text)
    if n == 0:
        raise MalformedNumber("empty number")
    i: i64 = 0
    neg = False
    c: i64 = ord(text[0])
    if c == 45 or c == 43:  # '-' '+'
        neg = c == 45
        i = 1
    mant: i64 = 0
    sig: i64 = 0
    frac: i64 = 0
    any_digit = False
    dot = False
    while i < n:
        c = ord(text[i])
        if 48 <= c <= 57:
            any_digit = True
            if dot:
                frac += 1
            if mant != 0 or c != 48:
                sig += 1
                if sig > _FAST_DIGITS:
                    return _parse_exact(text)
            mant = mant * 10 + (c - 48)
        elif c == 46 and not dot:  # '.'
            dot = True
        elif c == 101 or c == 69:  # 'e' 'E'
            return _parse_exact(text)
        else:
            raise MalformedNumber(f"not a decimal number: {text!r}")
        i += 1
    if not any_digit:
        raise MalformedNumber(f"not a decimal number: {text!r}")
    return _scale_fast(mant, frac, neg, text, 0, -1)


def parse_fixed_bytes(text: bytes) -> int:
    """Parse decimal ASCII bytes to an int scaled by ``PRICE_SCALE``, exactly."""
    return parse_fixed_span(text, 0, len(text))


def parse_fixed_span(data: bytes, start: i64, end: i64) -> int:
    """``parse_fixed_bytes(data[start:end])`` without the slice."""
    if end <= start:
        raise MalformedNumber("empty number")
    i: i64 = start
    neg = False
    c: i64 = data[i]
    if c == 45 or c == 43:
        neg = c == 45
        i += 1
    mant: i64 = 0
    sig: i64 = 0
    frac: i64 = 0
    any_digit = False
    dot = False
    while i < end:
        c = data[i]
        if 48 <= c <= 57:
            any_digit = True
            if dot:
                frac += 1
            if mant != 0 or c != 48:
                sig += 1
                if sig > _FAST_DIGITS:
                    return _parse_exact(data[start:end].decode("ascii", "replace"))
            mant = mant * 10 + (c - 48)
        elif c == 46 and not dot:
            dot = True
        elif c == 101 or c == 69:
            return _parse_exact(data[start:end].decode("ascii", "replace"))
        else:
            raise MalformedNumber(f"not a decimal number: {data[start:end]!r}")
        i += 1
    if not any_digit:
        raise MalformedNumber(f"not a decimal number: {data[start:end]!r}")
    return _scale_fast(mant, frac, neg, data, start, end)


def parse_pairs_json(data: bytes, out: list[int]) -> None:
    """Append to ``out`` the numbers of ``data``, a JSON array of ``["price", "size"]``
    decimal strings (a depth message's levels as Binance writes them), in order:
    price, size, price, size, ... Raises ``MalformedNumber`` for any other shape
    (``out`` may then hold part of it). No ``str`` or tuple is built per level."""
    n: i64 = len(data)
    i = _token(data, _skip_ws(data, 0, n), n, 91)  # [
    if i < n and data[i] == 93:  # ] an empty array
        i += 1
    else:
        while True:
            i = _token(data, i, n, 91)  # [ of a pair
            i = _number_string(data, _skip_ws(data, i, n), n, out)
            i = _token(data, i, n, 44)  # ,
            i = _number_string(data, i, n, out)
            i = _token(data, i, n, 93)  # ] of the pair
            if i < n and data[i] == 44:  # , another pair
                i = _skip_ws(data, i + 1, n)
                continue
            i = _token(data, i, n, 93)  # ] of the array
            break
    if _skip_ws(data, i, n) != n:
        raise _not_pairs(data)


def _skip_ws(data: bytes, i: i64, n: i64) -> i64:
    while i < n:
        c: i64 = data[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        i += 1
    return i


def _token(data: bytes, i: i64, n: i64, want: i64) -> i64:
    """The index past the byte ``want`` at ``i`` and the whitespace after it."""
    if i >= n or data[i] != want:
        raise _not_pairs(data)
    return _skip_ws(data, i + 1, n)


def _number_string(data: bytes, i: i64, n: i64, out: list[int]) -> i64:
    """Parse the JSON string at ``i`` as a decimal number into ``out``; the index past it
    and the whitespace after it."""
    if i >= n or data[i] != 34:  # "
        raise _not_pairs(data)
    start = i + 1
    j = start
    while j < n:
        c: i64 = data[j]
        if c == 34:
            break
        if c == 92:  # a backslash: no number is written with escapes
            raise _not_pairs(data)
        j += 1
    if j >= n:
        raise _not_pairs(data)
    out.append(parse_fixed_span(data, start, j))
    return _skip_ws(data, j + 1, n)


def _not_pairs(data: bytes) -> MalformedNumber:
    return MalformedNumber(f"not a JSON array of [price, size] strings: {data[:80]!r}")


def _scale_fast(mant: i64, frac: i64, neg: bool, text: object, start: i64, end: i64) -> int:
    """``mant * 10**(9 - frac)`` in i64, refusing inexact or out-of-range results.

    ``text`` is only for the error message (``text[start:end]`` when ``end`` >= 0)."""
    if frac <= SCALE_DIGITS:
        k = SCALE_DIGITS - frac
        if mant > _I64_MAX_OVER_POW10[k]:  # a table, not a division per number
            raise MalformedNumber(f"number out of range: {_shown(text, start, end)!r}")
        value = mant * _I64_POW10[k]
    else:
        extra = frac - SCALE_DIGITS
        if extra > _FAST_DIGITS:
            if mant == 0:
                return 0
            raise MalformedNumber(f"more precision than 1e-9 in {_shown(text, start, end)!r}")
        div = _I64_POW10[extra]
        value = mant // div
        if value * div != mant:
            raise MalformedNumber(f"more precision than 1e-9 in {_shown(text, start, end)!r}")
    return -value if neg else value


def _shown(text: object, start: i64, end: i64) -> object:
    if end >= 0 and isinstance(text, bytes):
        return text[start:end]
    return text


def _parse_exact(text: str) -> int:
    """Arbitrary-precision path: long digit strings and exponents (rare)."""
    n = len(text)
    i = 0
    neg = False
    c = ord(text[0])
    if c == 45 or c == 43:
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
            any_digit = True
            mant = mant * 10 + (c - 48)
            if mant > _MANT_MAX:
                raise MalformedNumber(f"number out of range: {text!r}")
        elif c == 46 and not seen_dot:
            seen_dot = True
        elif c == 101 or c == 69:
            exp = _parse_exponent(text, i + 1, n)
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
