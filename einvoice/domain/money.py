"""Money and quantities: ``Decimal`` only, rounded in this one place with the EN 16931 rules.

EN 16931 amounts carry at most two decimals (BR-DEC-*); computed amounts are rounded half-up to
two decimals. Quantities and prices (BT-129, BT-146, BT-148, BT-149) are not rounded: they may
legitimately carry more decimals.

Half-up means away from zero (``-1.005`` -> ``-1.01``), as EN 16931 says. The official Schematron
uses XPath ``round()``, which rounds halves towards positive infinity; the two differ only for a
negative amount with a third decimal of exactly 5, which BR-DEC-* already rejects.

Parsing is strict on purpose: the XSD ``xs:decimal`` lexical space is all a document may use, so
``NaN``, ``Infinity``, ``1e5``, ``1,5`` or an empty string are refused rather than read the way
Python's ``Decimal`` constructor would read them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from einvoice.errors import DecimalSyntaxError  # a ValueError; defined there, importable from here

AMOUNT_DECIMALS = 2
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_DECIMALS)  # Decimal("0.01")
ZERO = Decimal("0.00")

# xs:decimal lexical space: optional sign, digits with an optional fraction, no exponent.
_XS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_decimal(text: str) -> Decimal:
    """Read an ``xs:decimal`` (surrounding XML whitespace allowed) as an exact ``Decimal``.

    Returns the value with the scale it was written with (``"10.50"`` stays ``Decimal("10.50")``).
    Raises ``DecimalSyntaxError`` for anything else: exponents, NaN, infinities, commas, empty text.
    """
    stripped = text.strip(" \t\r\n")
    if not _XS_DECIMAL.fullmatch(stripped):
        raise DecimalSyntaxError(f"not a decimal number: {text!r}")
    return Decimal(stripped)


def decimal_places(value: Decimal) -> int:
    """Number of decimals the value was written with (``Decimal("1.50")`` has 2, ``Decimal("3")`` 0)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN/infinity never pass parse_decimal
        raise DecimalSyntaxError(f"not a finite decimal: {value!r}")
    return max(0, -exponent)


def amount_key(value: Decimal) -> str:
    """``value`` as a text that two equal amounts share whatever their scale (``100`` for 100.00
    and 100.0, ``0`` for 0.00 and -0): for finding equal amounts by text, as the store does."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def round_amount(value: Decimal) -> Decimal:
    """Round an amount to two decimals, half-up (away from zero): the EN 16931 rule."""
    return value.quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


def sum_amounts(values: Iterable[Decimal]) -> Decimal:
    """Sum exactly, then round once: what BR-CO-10..BR-CO-14 compare stated totals with."""
    return round_amount(sum(values, Decimal(0)))


def amounts_equal(left: Decimal, right: Decimal) -> bool:
    """True when two amounts agree after EN 16931 rounding (the tolerance is 0.00)."""
    return round_amount(left) == round_amount(right)


@dataclass(frozen=True, slots=True)
class Amount:
    """A monetary amount with the ``currencyID`` it was stated in (None when the document omits it)."""

    value: Decimal
    currency: str | None = None

    def __str__(self) -> str:
        return f"{self.value} {self.currency}" if self.currency else str(self.value)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quantity with its UN/ECE Rec 20 unit code (BT-130, BT-150), None when omitted."""

    value: Decimal
    unit_code: str | None = None
