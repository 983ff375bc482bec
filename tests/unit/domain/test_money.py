"""Decimal money: strict parsing, EN 16931 rounding in one place."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from einvoice.domain.money import (
    Amount,
    DecimalSyntaxError,
    Quantity,
    amount_key,
    amounts_equal,
    decimal_places,
    parse_decimal,
    round_amount,
    sum_amounts,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("10.50", "10.50"),
        ("-3.1", "-3.1"),
        ("+7", "7"),
        (".25", "0.25"),
        ("4.", "4"),
        (" 12.34\n", "12.34"),
        ("00012.3400", "12.3400"),
        ("123456789012345678.123456789", "123456789012345678.123456789"),
    ],
)
def test_parse_decimal_reads_xs_decimal_exactly(text: str, expected: str) -> None:
    value = parse_decimal(text)
    assert value == Decimal(expected)
    assert isinstance(value, Decimal)


def test_parse_decimal_keeps_the_written_scale() -> None:
    assert str(parse_decimal("10.50")) == "10.50"
    assert decimal_places(parse_decimal("10.50")) == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "NaN",
        "-NaN",
        "sNaN",
        "Infinity",
        "inf",
        "1e5",
        "1E5",
        "1.5e-3",
        "1,5",
        "1 000",
        "--1",
        ".",
        "+",
        "0x1A",
        "١٢",
    ],
)
def test_parse_decimal_refuses_anything_else(text: str) -> None:
    with pytest.raises(DecimalSyntaxError):
        parse_decimal(text)


def test_decimal_syntax_error_is_a_value_error() -> None:
    assert issubclass(DecimalSyntaxError, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.005", "1.01"),
        ("1.004999", "1.00"),
        ("2.675", "2.68"),
        ("-1.005", "-1.01"),  # half-up is away from zero
        ("-0.004", "0.00"),
        ("12", "12.00"),
        ("0.125", "0.13"),
        ("99999999.995", "100000000.00"),
    ],
)
def test_round_amount_is_half_up_to_two_decimals(value: str, expected: str) -> None:
    rounded = round_amount(Decimal(value))
    assert rounded == Decimal(expected)
    assert decimal_places(rounded) == 2


def test_sum_amounts_sums_exactly_then_rounds_once() -> None:
    # Rounding each part first would give 0.01 + 0.01 + 0.01 = 0.03.
    assert sum_amounts([Decimal("0.005"), Decimal("0.005"), Decimal("0.005")]) == Decimal("0.02")
    assert sum_amounts([]) == Decimal("0.00")


def test_amounts_equal_compares_after_rounding() -> None:
    assert amounts_equal(Decimal("10"), Decimal("10.00"))
    assert amounts_equal(Decimal("10.004"), Decimal("10.00"))
    assert not amounts_equal(Decimal("10.00"), Decimal("10.01"))


def test_decimal_places() -> None:
    assert decimal_places(Decimal("3")) == 0
    assert decimal_places(Decimal("3.140")) == 3
    assert decimal_places(Decimal("1E+2")) == 0


def test_amount_and_quantity_are_frozen_values() -> None:
    amount = Amount(Decimal("1.00"), "EUR")
    with pytest.raises(dataclasses.FrozenInstanceError):
        amount.value = Decimal(2)  # type: ignore[misc]
    assert amount == Amount(Decimal("1.0"), "EUR")  # Decimal equality ignores the scale
    assert str(amount) == "1.00 EUR"
    assert str(Amount(Decimal("1"))) == "1"
    assert Quantity(Decimal("2"), "EA") != Quantity(Decimal("2"), "HUR")


decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=6)


@given(decimals)
def test_round_amount_properties(value: Decimal) -> None:
    rounded = round_amount(value)
    assert decimal_places(rounded) == 2
    assert abs(rounded - value) <= Decimal("0.005")
    assert round_amount(rounded) == rounded
    assert round_amount(-value) == -rounded  # symmetric: half-up rounds away from zero


@given(decimals)
def test_parse_decimal_round_trips_fixed_notation(value: Decimal) -> None:
    assert parse_decimal(f"{value:f}") == value


@given(
    st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False),
    st.integers(min_value=0, max_value=4),
)
def test_equal_amounts_share_their_key_whatever_their_scale(value: Decimal, extra_zeros: int) -> None:
    wider = Decimal(f"{value}{'0' * extra_zeros}") if "." in str(value) else value
    assert amount_key(wider) == amount_key(value)
    assert Decimal(amount_key(value)) == value
    assert "E" not in amount_key(value)


def test_amount_keys_are_plain_numbers() -> None:
    assert [amount_key(Decimal(t)) for t in ("100.00", "100.0", "1E+2", "-0.00", "0.10", "1234.5")] == [
        "100",
        "100",
        "100",
        "0",
        "0.1",
        "1234.5",
    ]
    assert amount_key(Decimal("100.01")) != amount_key(Decimal("100.1"))
