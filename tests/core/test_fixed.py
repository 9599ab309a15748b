import contextlib
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from hub_core import PRICE_SCALE, MalformedNumber, format_fixed, parse_fixed, parse_fixed_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1", PRICE_SCALE),
        ("-1", -PRICE_SCALE),
        ("+2.5", 2_500_000_000),
        ("0.35130000", 351_300_000),
        ("6195.00000000", 6_195 * PRICE_SCALE),
        ("0.000000001", 1),
        (".5", 500_000_000),
        ("5.", 5 * PRICE_SCALE),
        ("1e-3", 1_000_000),
        ("1.5E2", 150 * PRICE_SCALE),
        ("1234567890.123456789", 1_234_567_890_123_456_789),
        ("0.1000000000000", 100_000_000),  # trailing zeros past 1e-9 are exact
        ("9223372036.854775807", 9_223_372_036_854_775_807),
    ],
)
def test_parses_exactly(text: str, value: int) -> None:
    assert parse_fixed(text) == value
    assert parse_fixed_bytes(text.encode()) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        ".",
        "abc",
        "1.2.3",
        "1e",
        "1e+",
        "--1",
        "0.0000000001",
        "1,5",
        "nan",
        "inf",
        "9223372036.854775808",
        "1" * 5000,
        "1e999",
        " 1",
    ],
)
def test_rejects_malformed_or_inexact(text: str) -> None:
    with pytest.raises(MalformedNumber):
        parse_fixed(text)
    with pytest.raises(MalformedNumber):
        parse_fixed_bytes(text.encode())


def test_float_is_never_involved() -> None:
    # 16 significant digits: float would round this
    assert parse_fixed("12345678.123456789") == 12_345_678_123_456_789


@given(
    st.decimals(
        min_value=Decimal("-9e9"),
        max_value=Decimal("9e9"),
        places=9,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_matches_decimal(d: Decimal) -> None:
    text = format(d, "f")
    expected = int(d * PRICE_SCALE)
    assert parse_fixed(text) == expected
    assert parse_fixed_bytes(text.encode()) == expected
    assert parse_fixed(format_fixed(expected)) == expected


@given(st.text(max_size=30))
def test_random_text_only_raises_malformed_number(text: str) -> None:
    with contextlib.suppress(MalformedNumber):
        parse_fixed(text)


@given(st.binary(max_size=30))
def test_random_bytes_only_raise_malformed_number(data: bytes) -> None:
    with contextlib.suppress(MalformedNumber):
        parse_fixed_bytes(data)
