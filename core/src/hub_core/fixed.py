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


# -- RFC 3339 times ---------------------------------------------------------------------------
def rfc3339_ns(text: str) -> int:
    """``2014-11-07T08:19:27.028459Z`` -> ns since the epoch (UTC: ``Z`` or ``+00:00``;
    up to 9 fractional digits, kept exactly). ``ValueError`` for any other shape.

    Compiled for the hot path of venues that stamp every message this way (Coinbase,
    Kraken): ``datetime`` costs more and drops the nanoseconds. Fields are not range
    checked beyond what the calendar needs (month 1-12, year 1 or later)."""
    n: i64 = len(text)
    if n < 20 or ord(text[10]) != 84 or ord(text[13]) != 58 or ord(text[16]) != 58:
        raise _not_rfc3339(text)
    if ord(text[4]) != 45 or ord(text[7]) != 45:  # '-'
        raise _not_rfc3339(text)
    year = _digits(text, 0, 4)
    month = _digits(text, 5, 7)
    day = _digits(text, 8, 10)
    hh = _digits(text, 11, 13)
    mm = _digits(text, 14, 16)
    ss = _digits(text, 17, 19)
    if year < 1 or month < 1 or month > 12:
        raise _not_rfc3339(text)
    frac: i64 = 0
    i: i64 = 19
    if ord(text[i]) == 46:  # '.'
        i += 1
        start = i
        while i < n:
            c: i64 = ord(text[i])
            if c < 48 or c > 57:
                break
            frac = frac * 10 + (c - 48) if i - start < 9 else frac
            i += 1
        got = i - start
        if got == 0 or got > 9:
            raise _not_rfc3339(text)
        frac = frac * _I64_POW10[9 - got]
    rest = n - i
    if rest == 1:
        if ord(text[i]) != 90:  # 'Z'
            raise _not_rfc3339(text)
    elif rest != 6 or text[i:] != "+00:00":
        raise _not_rfc3339(text)
    days = _days_from_civil(year, month) + day - 1
    # an int, not i64: a year past 2262 (or before 1678) does not fit i64 nanoseconds
    secs: int = days * 86_400 + hh * 3600 + mm * 60 + ss
    nanos: int = frac  # int + i64 would be i64 arithmetic
    return secs * 1_000_000_000 + nanos


def _digits(text: str, start: i64, end: i64) -> i64:
    """The ASCII digits ``text[start:end]`` as a number (``ValueError`` otherwise)."""
    v: i64 = 0
    i = start
    while i < end:
        c: i64 = ord(text[i])
        if c < 48 or c > 57:
            raise _not_rfc3339(text)
        v = v * 10 + (c - 48)
        i += 1
    return v


def _days_from_civil(year: i64, month: i64) -> i64:
    """Days from 1970-01-01 to the first of ``month`` of ``year`` (proleptic Gregorian;
    Howard Hinnant's ``days_from_civil``)."""
    y = year - 1 if month <= 2 else year
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _not_rfc3339(text: str) -> ValueError:
    return ValueError(f"not an RFC 3339 UTC time: {text!r}")


# -- depth levels as JSON objects -------------------------------------------------------------
def parse_level_objects(
    data: bytes, price_key: bytes, size_key: bytes, out: list[int], texts: list[bytes]
) -> None:
    """Append to ``out`` the price and size of each level of ``data``, a JSON array of
    objects such as ``{"price": 34.5, "qty": 0.25}`` (Kraken v2's book levels; the keys
    are ``price_key`` and ``size_key``), in order: price, size, price, size, ...; and
    to ``texts`` the same numbers' own text (a quoted decimal without its quotes).

    A number is a JSON number or a string holding a decimal. Other keys are skipped
    when their value is a number, a string, ``true``, ``false`` or ``null``. Any other
    shape (a missing or repeated key, a nested value, an escape) raises
    ``MalformedNumber``; ``out`` and ``texts`` may then hold part of it."""
    n: i64 = len(data)
    i = _obj_token(data, _skip_ws(data, 0, n), n, 91)  # [
    if i < n and data[i] == 93:  # ] an empty array
        i += 1
    else:
        while True:
            i = _obj_token(data, i, n, 123)  # {
            have_price = False
            have_size = False
            price: int = 0
            size: int = 0
            ptext = b""
            stext = b""
            if i < n and data[i] == 125:  # } an empty object
                raise _not_objects(data)
            while True:
                # the key: a plain string
                if i >= n or data[i] != 34:
                    raise _not_objects(data)
                kstart = i + 1
                j = kstart
                while j < n and data[j] != 34 and data[j] != 92:
                    j += 1
                if j >= n or data[j] == 92:
                    raise _not_objects(data)
                i = _obj_token(data, _skip_ws(data, j + 1, n), n, 58)  # :
                vstart, vend, i = _scalar(data, i, n)
                if _span_is(data, kstart, j, price_key):
                    if have_price or vstart < 0:
                        raise _not_objects(data)
                    price = parse_fixed_span(data, vstart, vend)
                    ptext = data[vstart:vend]
                    have_price = True
                elif _span_is(data, kstart, j, size_key):
                    if have_size or vstart < 0:
                        raise _not_objects(data)
                    size = parse_fixed_span(data, vstart, vend)
                    stext = data[vstart:vend]
                    have_size = True
                i = _skip_ws(data, i, n)
                if i < n and data[i] == 44:  # , another key
                    i = _skip_ws(data, i + 1, n)
                    continue
                i = _obj_token(data, i, n, 125)  # } of the level
                break
            if not have_price or not have_size:
                raise _not_objects(data)
            out.append(price)
            out.append(size)
            texts.append(ptext)
            texts.append(stext)
            if i < n and data[i] == 44:  # , another level
                i = _skip_ws(data, i + 1, n)
                continue
            i = _obj_token(data, i, n, 93)  # ] of the array
            break
    if _skip_ws(data, i, n) != n:
        raise _not_objects(data)


def _span_is(data: bytes, start: i64, end: i64, key: bytes) -> bool:
    """``data[start:end] == key`` without the slice."""
    m: i64 = len(key)
    if end - start != m:
        return False
    k: i64 = 0
    while k < m:
        if data[start + k] != key[k]:
            return False
        k += 1
    return True


def _scalar(data: bytes, i: i64, n: i64) -> tuple[i64, i64, i64]:
    """The JSON scalar at ``i``: ``(start, end, past)``, where ``data[start:end]`` is a
    number's text (a string's content) and ``start`` is -1 for ``true``/``false``/``null``
    (no number); ``past`` is the index after the value."""
    if i >= n:
        raise _not_objects(data)
    c: i64 = data[i]
    if c == 34:  # a string: its content
        start = i + 1
        j = start
        while j < n and data[j] != 34 and data[j] != 92:
            j += 1
        if j >= n or data[j] == 92:
            raise _not_objects(data)
        return start, j, j + 1
    if c == 45 or 48 <= c <= 57:  # a number (msgspec checked the JSON already)
        j = i + 1
        while j < n:
            d: i64 = data[j]
            if not (48 <= d <= 57 or d == 46 or d == 101 or d == 69 or d == 43 or d == 45):
                break
            j += 1
        return i, j, j
    for word in (b"true", b"false", b"null"):
        m: i64 = len(word)
        if data[i : i + m] == word:
            return -1, -1, i + m
    raise _not_objects(data)


def _obj_token(data: bytes, i: i64, n: i64, want: i64) -> i64:
    """The index past the byte ``want`` at ``i`` and the whitespace after it."""
    if i >= n or data[i] != want:
        raise _not_objects(data)
    return _skip_ws(data, i + 1, n)


def _not_objects(data: bytes) -> MalformedNumber:
    return MalformedNumber(f"not a JSON array of price/size objects: {data[:80]!r}")


# -- depth changes as JSON [side, "price", "size"] triples -------------------------------------
def parse_sided_json(data: bytes, bid: bytes, ask: bytes, out: list[int]) -> None:
    """Append to ``out`` each change of ``data``, a JSON array of ``[side, "price",
    "size"]`` string triples (Coinbase's ``l2update`` ``changes``), in order: 1 for a
    ``bid`` side or 0 for an ``ask`` one, then price and size in fixed point. Raises
    ``MalformedNumber`` for any other shape or side (``out`` may then hold part of it)."""
    n: i64 = len(data)
    i = _token(data, _skip_ws(data, 0, n), n, 91)  # [
    if i < n and data[i] == 93:  # ] an empty array
        i += 1
    else:
        while True:
            i = _token(data, i, n, 91)  # [ of a change
            if i >= n or data[i] != 34:
                raise _not_pairs(data)
            start = i + 1
            j = start
            while j < n and data[j] != 34 and data[j] != 92:
                j += 1
            if j >= n or data[j] == 92:
                raise _not_pairs(data)
            if _span_is(data, start, j, bid):
                out.append(1)
            elif _span_is(data, start, j, ask):
                out.append(0)
            else:
                raise MalformedNumber(f"a change side is neither {bid!r} nor {ask!r}")
            i = _token(data, _skip_ws(data, j + 1, n), n, 44)  # ,
            i = _number_string(data, i, n, out)
            i = _token(data, i, n, 44)  # ,
            i = _number_string(data, i, n, out)
            i = _token(data, i, n, 93)  # ] of the change
            if i < n and data[i] == 44:  # , another change
                i = _skip_ws(data, i + 1, n)
                continue
            i = _token(data, i, n, 93)  # ] of the array
            break
    if _skip_ws(data, i, n) != n:
        raise _not_pairs(data)
