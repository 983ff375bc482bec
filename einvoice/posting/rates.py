"""Exchange rates for foreign-currency documents that do not state their VAT in accounting
currency (BT-111): reading a rates file, and the rate an entry uses. Pure: no I/O.

Two CSV layouts are read:

- the ECB reference rates (``eurofxref.csv``, ``eurofxref-hist.csv``): a ``Date`` column, then one
  column per currency, each cell the units of that currency per 1 EUR (``N/A`` or empty where the
  ECB published none that day), trailing commas and spaces allowed;
- one rate a row, with the header ``currency,date,rate`` (units of ``currency`` per 1 unit of the
  base, EUR unless the caller names another).

An entry's rate is the other way round: accounting currency units per unit of the document's
currency, so a rate ``1 EUR = 1.0543 USD`` gives a USD invoice ``1 / 1.0543`` EUR per USD.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from einvoice.domain.journal import ExchangeRate
from einvoice.errors import PostingSetupError

#: Digits kept of an inverted rate (the ECB publishes 4 to 6 significant digits).
RATE_PLACES = Decimal("0.0000000001")


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate`` units of ``currency`` per 1 unit of the base currency on ``on``."""

    currency: str
    on: date
    rate: Decimal


def _currency(text: str, where: str) -> str:
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise PostingSetupError(f"{where}: a currency code of three letters, not {text.strip()!r}")
    return code


def _date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PostingSetupError(f"{where}: a date YYYY-MM-DD, not {text.strip()!r}") from None


def _rate(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise PostingSetupError(f"{where}: a rate, not {text.strip()!r}") from None
    if not value.is_finite() or value <= 0:
        raise PostingSetupError(f"{where}: a rate above zero, not {text.strip()!r}")
    return value


def parse_rates(text: str) -> list[Rate]:
    """The rates of a CSV file in either layout (see the module's text). Raises
    PostingSetupError naming the row and the value it cannot read, or when there is no rate."""
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(cell.strip() for cell in row)]
    if not rows:
        raise PostingSetupError("the rates file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    rates: list[Rate] = []
    if header[:3] == ["currency", "date", "rate"]:
        for number, row in enumerate(rows[1:], start=2):
            where = f"row {number}"
            if len(row) < 3:
                raise PostingSetupError(f"{where}: currency, date and rate, not {','.join(row)!r}")
            rates.append(Rate(_currency(row[0], where), _date(row[1], where), _rate(row[2], where)))
    elif header and header[0] == "date":
        named = [(column, name) for column, name in enumerate(rows[0]) if column and name.strip()]
        currencies = [(column, _currency(name, f"column {column + 1}")) for column, name in named]
        for number, row in enumerate(rows[1:], start=2):
            on = _date(row[0], f"row {number}")
            for column, currency in currencies:
                cell = row[column].strip() if column < len(row) else ""
                if cell and cell.upper() != "N/A":
                    rates.append(Rate(currency, on, _rate(cell, f"row {number}, {currency}")))
    else:
        raise PostingSetupError("the header is Date,USD,JPY,… (the ECB reference rates) or currency,date,rate")
    if not rates:
        raise PostingSetupError("the rates file holds no rate")
    return rates


def entry_rate(per_base: Decimal, on: date, source: str) -> ExchangeRate:
    """The entry's rate (base currency units per unit of the document's currency) of a stored
    rate of ``per_base`` document currency units per unit of the base."""
    return ExchangeRate((Decimal(1) / per_base).quantize(RATE_PLACES), on, source)
