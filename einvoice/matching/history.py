"""The supplier's earlier documents: duplicates, the amount anomaly, and the invoices a credit
note credits."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from math import fsum, sqrt

from einvoice.domain.commitments import Reason, ReasonCode, Reservation, WarningCode
from einvoice.domain.invoice import Invoice
from einvoice.domain.money import round_amount
from einvoice.matching.config import MatchConfig
from einvoice.matching.tolerance import plain


@dataclass(frozen=True, slots=True)
class EarlierDocument:
    """One of the supplier's earlier documents, as matching needs it."""

    id: str
    number: str | None  # BT-1
    issue_date: date | None  # BT-2
    amount: Decimal | None  # BT-112
    credit_note: bool = False
    same_institution: bool = True  # the same buyer institution as the document being matched
    preceding: tuple[str, ...] = ()  # a credit note's BT-25: the numbers of the invoices it credits
    reservation: Reservation | None = None  # what its match holds (reserved or consumed), not released


@dataclass(frozen=True, slots=True)
class History:
    """What the register knows around the document being matched.

    ``supplier_id``: the registered supplier that submitted it, compared with the commitment's
    (the seller's identifiers are compared when it is not given). ``earlier``: the supplier's
    documents that count (not rejected or refused, the document itself left out): at least those
    with the same number BT-1, those with the same BT-112 within the duplicate window, its last
    ``anomaly_invoices`` invoices with the institution, the invoices a credit note's BT-25 names and
    the other credit notes that name them. More may be given: the matcher picks what it needs."""

    earlier: tuple[EarlierDocument, ...] = ()
    supplier_id: str | None = None


def _money(value: Decimal) -> str:
    return str(round_amount(value))


def duplicates(invoice: Invoice, history: History, config: MatchConfig) -> list[Reason]:
    """``DUPLICATE``: an earlier document with the same number BT-1 in the same issue year (BT-2).
    ``SUSPECTED_DUPLICATE``: an earlier document of the same kind (invoice or credit note) with the
    same BT-112, another number, issued at most ``duplicate_window_days`` days apart."""
    reasons: list[Reason] = []
    issued = invoice.issue_date
    amount = invoice.totals.tax_inclusive_amount
    for earlier in history.earlier:
        if (
            invoice.id
            and earlier.number == invoice.id
            and issued
            and earlier.issue_date
            and earlier.issue_date.year == issued.year
        ):
            reasons.append(
                Reason(
                    ReasonCode.DUPLICATE,
                    f"Number {invoice.id} of {issued.year} was already used by this supplier "
                    f"(document {earlier.id}, issued {earlier.issue_date.isoformat()})",
                    expected=f"a number not used in {issued.year}",
                    actual=invoice.id,
                )
            )
            continue
        if (
            amount is not None
            and earlier.amount is not None
            and earlier.amount == amount.value
            and earlier.number != invoice.id
            and earlier.credit_note == invoice.is_credit_note
            and issued
            and earlier.issue_date
            and abs((issued - earlier.issue_date).days) <= config.duplicate_window_days
        ):
            days = abs((issued - earlier.issue_date).days)
            reasons.append(
                Reason(
                    ReasonCode.SUSPECTED_DUPLICATE,
                    f"Document {earlier.id} (number {earlier.number}) of this supplier has the same total "
                    f"{amount.value} and was issued {days} day{'s' if days != 1 else ''} apart "
                    f"(limit {config.duplicate_window_days} days)",
                    expected=f"no other document of {amount.value} within {config.duplicate_window_days} days",
                    actual=f"{earlier.number} of {earlier.issue_date.isoformat()}",
                    tolerance=f"{config.duplicate_window_days} days",
                )
            )
    return reasons


def amount_anomaly(invoice: Invoice, history: History, config: MatchConfig) -> Reason | None:
    """``AMOUNT_ANOMALY`` (a warning) when BT-112 is more than ``anomaly_deviations`` sample
    standard deviations from the mean of the supplier's last ``anomaly_invoices`` invoices with the
    institution (by issue date), given at least ``anomaly_minimum`` of them; None otherwise."""
    amount = invoice.totals.tax_inclusive_amount
    if invoice.is_credit_note or amount is None:
        return None
    basis = [
        e
        for e in history.earlier
        if e.same_institution and not e.credit_note and e.amount is not None and e.number != invoice.id
    ]
    basis.sort(key=lambda e: e.issue_date or date.min)
    values = [e.amount for e in basis[-config.anomaly_invoices :] if e.amount is not None]
    if len(values) < max(config.anomaly_minimum, 2):
        return None
    if _clearly_within(amount.value, values, config.anomaly_deviations):
        return None
    mean = statistics.mean(values)
    deviation = statistics.stdev(values)
    limit = config.anomaly_deviations * deviation
    if abs(amount.value - mean) <= limit:
        return None
    k = plain(config.anomaly_deviations)
    sd = deviation.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return Reason(
        WarningCode.AMOUNT_ANOMALY,
        f"Total {amount.value} is far from this supplier's last {len(values)} invoices with the institution "
        f"(mean {_money(mean)}, standard deviation {sd}; limit {k} standard deviations)",
        expected=f"{_money(mean - limit)} to {_money(mean + limit)}",
        actual=str(amount.value),
        tolerance=f"{k} standard deviations of {len(values)} invoices",
    )


def _clearly_within(amount: Decimal, values: list[Decimal], deviations: Decimal) -> bool:
    """Whether ``amount`` is within 99 % of the limit, less far more than a float's error (about
    1e-16 of the largest figure per operation), by a float estimate: where a float cannot change
    the answer. The exact figures in Decimal (``statistics`` on Decimals: exact, and many times
    slower) decide the rest."""
    floats = [float(v) for v in values]
    mean = fsum(floats) / len(floats)
    variance = fsum((v - mean) ** 2 for v in floats) / (len(floats) - 1)
    slack = 1e-12 * len(floats) * max(abs(float(amount)), *map(abs, floats))
    return abs(float(amount) - mean) <= 0.99 * float(deviations) * sqrt(variance) - slack


def credited(invoice: Invoice, history: History) -> tuple[list[EarlierDocument], list[str]]:
    """The invoices a credit note credits (its BT-25, each found once among the supplier's earlier
    invoices; BT-26 tells apart two of one number in different years), and the BT-25 numbers it
    could not resolve, each with why."""
    found: list[EarlierDocument] = []
    unresolved: list[str] = []
    references = [p for p in invoice.preceding_invoices if p.id]
    if not references:
        return [], ["the credit note names no preceding invoice (BT-25)"]
    for reference in references:
        candidates = [e for e in history.earlier if not e.credit_note and e.number == reference.id]
        if reference.issue_date is not None:
            dated = [e for e in candidates if e.issue_date == reference.issue_date]
            candidates = dated or candidates
        if not candidates:
            unresolved.append(f"no invoice {reference.id} of this supplier was found")
        elif len(candidates) > 1:
            unresolved.append(f"{len(candidates)} invoices numbered {reference.id} and no issue date (BT-26) to tell")
        else:
            found.append(candidates[0])
    return found, unresolved


def credits_of(invoices: list[EarlierDocument], history: History) -> list[EarlierDocument]:
    """The earlier credit notes that credit any of ``invoices``."""
    numbers = {e.number for e in invoices}
    return [e for e in history.earlier if e.credit_note and numbers.intersection(e.preceding)]
