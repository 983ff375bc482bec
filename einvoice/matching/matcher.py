"""``match``: one invoice or credit note against the commitments its references name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from einvoice.domain.commitments import (
    NO_RESERVATION,
    Commitment,
    CommitmentKind,
    CommitmentStatus,
    LineMatch,
    LineReservation,
    MatchResult,
    Reason,
    ReasonCode,
    Reservation,
)
from einvoice.domain.invoice import Invoice, Line
from einvoice.domain.money import ZERO
from einvoice.errors import MatchingError
from einvoice.matching import history as earlier_documents
from einvoice.matching import lines as line_checks
from einvoice.matching.config import MatchConfig
from einvoice.matching.history import History
from einvoice.matching.reservations import amount_limit, holding

_ORDER = frozenset({CommitmentKind.ORDER})
_CONTRACT = frozenset({CommitmentKind.CONTRACT, CommitmentKind.FRAMEWORK})
_ANY = frozenset(CommitmentKind)
NO_ORDER = "NA"  # BT-13 as Peppol's sales-order example writes "no order"


def _references(invoice: Invoice) -> list[tuple[str, str, frozenset[CommitmentKind]]]:
    """(what, reference, kinds it may name), in the order they are looked at."""
    found = []
    order = (invoice.order_reference or "").strip()
    if order and order != NO_ORDER:
        found.append(("order reference (BT-13)", order, _ORDER))
    contract = (invoice.contract_reference or "").strip()
    if contract:
        found.append(("contract reference (BT-12)", contract, _CONTRACT))
    buyer = (invoice.buyer_reference or "").strip()
    if buyer:
        found.append(("buyer reference (BT-10)", buyer, _ANY))
    return found


def find_commitment(invoice: Invoice, candidates: Sequence[Commitment]) -> tuple[Commitment | None, Reason | None]:
    """The one commitment the invoice's references name: BT-13 an order (``NA`` is none), BT-12 a
    contract or framework, BT-10 any commitment whose number it equals. None and
    ``NO_COMMITMENT`` when none does; None and ``AMBIGUOUS_COMMITMENT`` when they name more than one."""
    references = _references(invoice)
    named: list[tuple[str, Commitment]] = []
    for what, reference, kinds in references:
        named.extend((what, c) for c in candidates if c.number == reference and c.kind in kinds)
    distinct: list[Commitment] = []
    for _, commitment in named:
        if commitment not in distinct:
            distinct.append(commitment)
    if len(distinct) == 1:
        return distinct[0], None
    if not distinct:
        given = ", ".join(f"the {what} {reference}" for what, reference, _ in references)
        return None, Reason(
            ReasonCode.NO_COMMITMENT,
            f"No commitment of the institution is named by {given}"
            if given
            else "The invoice has no order (BT-13), contract (BT-12) or buyer reference (BT-10)",
            actual=", ".join(reference for _, reference, _ in references) or None,
        )
    said = "; ".join(f"the {what} names {c.kind.value} {c.number}" for what, c in named)
    return None, Reason(
        ReasonCode.AMBIGUOUS_COMMITMENT,
        f"The references point at different commitments: {said}",
        expected="one commitment",
        actual=", ".join(f"{c.kind.value} {c.number}" for c in distinct),
    )


def _norm(value: str | None) -> str:
    return "".join((value or "").split()).casefold()


def _seller_ids(invoice: Invoice) -> dict[str, str]:
    seller = invoice.seller
    if seller is None:
        return {}
    ids = {}
    if seller.endpoint_id is not None:
        endpoint = seller.endpoint_id
        ids["endpoint"] = f"{endpoint.scheme}:{endpoint.value}" if endpoint.scheme else endpoint.value
    if seller.vat_id:
        ids["vat"] = seller.vat_id
    if seller.legal_registration_id is not None:
        ids["legal_id"] = seller.legal_registration_id.value
    return ids


def check_supplier(invoice: Invoice, commitment: Commitment, supplier_id: str | None) -> Reason | None:
    """``SUPPLIER_MISMATCH`` when the seller is not the commitment's supplier: the registered
    supplier that submitted the invoice when it is known, else any one identifier the commitment
    names its supplier by (endpoint BT-34, VAT id BT-31, legal id BT-30) equal to the seller's."""
    seller = _seller_ids(invoice)
    wanted = {k: v for k, v in commitment.supplier.to_dict().items() if v}
    if supplier_id is not None and commitment.supplier_id:
        same = supplier_id == commitment.supplier_id
    else:
        same = any(_norm(seller.get(k)) == _norm(v) for k, v in wanted.items())
    if same:
        return None
    expected = ", ".join(f"{k} {v}" for k, v in wanted.items()) or f"supplier {commitment.supplier_id}"
    actual = ", ".join(f"{k} {v}" for k, v in seller.items()) or "no identifier"
    return Reason(
        ReasonCode.SUPPLIER_MISMATCH,
        f"The seller ({actual}) is not the supplier of commitment {commitment.number} ({expected})",
        expected=expected,
        actual=actual,
    )


def check_header(invoice: Invoice, commitment: Commitment, supplier_id: str | None) -> list[Reason]:
    """``SUPPLIER_MISMATCH``, ``CURRENCY_MISMATCH`` (BT-5), ``OUTSIDE_VALIDITY`` (BT-2 outside
    ``valid_from``..``valid_to``, both days included), ``COMMITMENT_CLOSED``. A credit note is
    checked for the first two only: giving back to a closed or expired commitment is no harm."""
    reasons = []
    supplier = check_supplier(invoice, commitment, supplier_id)
    if supplier:
        reasons.append(supplier)
    if invoice.currency != commitment.currency:
        reasons.append(
            Reason(
                ReasonCode.CURRENCY_MISMATCH,
                f"The invoice is in {invoice.currency}, commitment {commitment.number} in {commitment.currency}",
                expected=commitment.currency,
                actual=invoice.currency,
            )
        )
    if invoice.is_credit_note:
        return reasons
    issued = invoice.issue_date
    if issued is not None and (
        (commitment.valid_from is not None and issued < commitment.valid_from)
        or (commitment.valid_to is not None and issued > commitment.valid_to)
    ):
        period = f"{commitment.valid_from or '…'} to {commitment.valid_to or '…'}"
        reasons.append(
            Reason(
                ReasonCode.OUTSIDE_VALIDITY,
                f"Issue date {issued} is outside commitment {commitment.number}'s validity, {period}",
                expected=period,
                actual=issued.isoformat(),
            )
        )
    if commitment.status is CommitmentStatus.CLOSED:
        reasons.append(
            Reason(
                ReasonCode.COMMITMENT_CLOSED,
                f"Commitment {commitment.number} is closed",
                expected=CommitmentStatus.OPEN.value,
                actual=commitment.status.value,
            )
        )
    return reasons


def _quantity(line: Line) -> Decimal:
    return line.quantity.value if line.quantity is not None else Decimal(0)


def _lines(
    invoice: Invoice,
    commitment: Commitment,
    config: MatchConfig,
    *,
    prices: bool,
    credit: Reservation | None,
) -> tuple[list[LineMatch], list[Reason]]:
    """Each invoice line found on the commitment and checked. For an invoice: unit, VAT, price
    (when ``prices``: the currencies agree), the ordered and the received quantity. For a credit
    note (``credit``: what the invoices it credits still hold): unit, VAT, and no more given back
    per commitment line than they hold (``CREDIT_EXCEEDS_INVOICE``)."""
    matches: list[LineMatch] = []
    reasons: list[Reason] = []
    taken: dict[str, Decimal] = {}
    for line in invoice.lines:
        found = line_checks.find_line(line, commitment, config.description_similarity)
        committed = found.line
        if committed is None:
            matches.append(LineMatch(line.id or "", None, None, "unmatched"))
            reasons.append(
                Reason(
                    ReasonCode.LINE_UNMATCHED,
                    f"Line {line.id} matches no line of commitment {commitment.number}: {found.why_not}",
                    line=line.id,
                )
            )
            continue
        quantity = _quantity(line)
        line_reasons = [
            r for r in (line_checks.check_unit(line, committed), line_checks.check_vat(line, committed)) if r
        ]
        same_unit = not any(r.code == ReasonCode.UNIT_MISMATCH for r in line_reasons)
        if same_unit:
            taken[committed.id] = taken.get(committed.id, Decimal(0)) + quantity
        if credit is not None:
            held = credit.quantity(committed.id)
            if same_unit and taken[committed.id] > held:
                line_reasons.append(
                    Reason(
                        ReasonCode.CREDIT_EXCEEDS_INVOICE,
                        f"Line {line.id} gives back {taken[committed.id]} on commitment line {committed.id}, "
                        f"more than the {held} the credited invoices hold there",
                        line=line.id,
                        commitment_line=committed.id,
                        expected=str(held),
                        actual=str(taken[committed.id]),
                        tolerance="exact",
                    )
                )
        else:
            if prices:
                price = line_checks.check_price(line, committed, commitment)
                if price:
                    line_reasons.append(price)
            if same_unit:
                for check in (line_checks.check_ordered, line_checks.check_received):
                    reason = check(line, committed, commitment, taken[committed.id])
                    if reason:
                        line_reasons.append(reason)
        matches.append(
            LineMatch(
                line.id or "",
                committed.id,
                found.by,
                "variance" if line_reasons else "matched",
                quantity,
            )
        )
        reasons.extend(line_reasons)
    return matches, reasons


def _total(invoice: Invoice) -> Decimal:
    total = invoice.totals.tax_inclusive_amount
    if total is None:
        raise MatchingError(f"document {invoice.id} has no total amount with VAT (BT-112) to match")
    return total.value


def _budget(amount: Decimal, commitment: Commitment) -> Reason | None:
    """``AMOUNT_EXCEEDS_REMAINING`` when BT-112 is more than the remaining amount plus the amount
    tolerance (a percentage of the commitment's amount, an absolute amount)."""
    limit = amount_limit(commitment)
    over = limit.exceeded(amount - commitment.remaining, commitment.amount)
    if not over:
        return None
    return Reason(
        ReasonCode.AMOUNT_EXCEEDS_REMAINING,
        f"Total {amount} is more than the {commitment.remaining} remaining of commitment {commitment.number}'s "
        f"{commitment.amount} (limit {' / '.join(over)})",
        expected=str(commitment.remaining),
        actual=str(amount),
        tolerance=limit.describe(),
    )


def _credit_commitment(
    invoice: Invoice, candidates: Sequence[Commitment], history: History
) -> tuple[Commitment | None, Reservation | None, list[Reason]]:
    """A credit note's commitment: the one the invoices it credits (BT-25) hold on, and what they
    still hold there (less what earlier credit notes give back)."""
    invoices, unresolved = earlier_documents.credited(invoice, history)
    if unresolved:
        return None, None, [_unresolved("; ".join(unresolved))]
    numbers = sorted({e.reservation.commitment for e in invoices if e.reservation and e.reservation.commitment})
    if not numbers:
        credited = ", ".join(str(e.number) for e in invoices)
        return None, None, [_unresolved(f"invoice {credited} holds nothing on any commitment")]
    if len(numbers) > 1:
        reason = Reason(
            ReasonCode.AMBIGUOUS_COMMITMENT,
            f"The invoices the credit note credits hold on different commitments: {', '.join(numbers)}",
            expected="one commitment",
            actual=", ".join(numbers),
        )
        return None, None, [reason]
    number = numbers[0]
    commitment = next((c for c in candidates if c.number == number), None)
    if commitment is None:
        return None, None, [_unresolved(f"commitment {number}, which the credited invoice holds on, was not found")]
    reservations: Iterable[Reservation] = [
        e.reservation for e in [*invoices, *earlier_documents.credits_of(invoices, history)] if e.reservation
    ]
    return commitment, holding(reservations, number), []


def _unresolved(why: str) -> Reason:
    return Reason(ReasonCode.CREDIT_NOTE_UNRESOLVED, f"The credit note's invoice cannot be resolved: {why}")


def match(
    invoice: Invoice,
    candidates: Sequence[Commitment],
    history: History | None = None,
    config: MatchConfig | None = None,
) -> tuple[MatchResult, Reservation]:
    """Match one parsed invoice or credit note against the commitments of its buyer institution
    that its references name (``candidates``: what the register found for BT-13, BT-12, BT-10, and
    for a credit note the commitment its invoices hold on), with the supplier's earlier documents
    (``history``) and the engine's settings (``config``).

    Returns the ``MatchResult`` (``matched`` with no reason, else ``exception`` with every reason;
    warnings never stop it) and the ``Reservation`` the document takes: for a matched invoice its
    BT-112 and its quantity per commitment line, for a matched credit note what it gives back
    (negative, ``gives_back``), for an exception nothing (``NO_RESERVATION``). Apply it with
    ``reservations.reserve`` in the transaction that records the outcome, under the commitment's
    lock, with the commitment read under that lock. Raises ``MatchingError`` for a document
    without BT-112 (validation rejects those)."""
    history = history or History()
    config = config or MatchConfig()
    amount = _total(invoice)
    reasons: list[Reason] = []
    matches: list[LineMatch] = []
    credit: Reservation | None = None

    if invoice.is_credit_note:
        commitment, credit, found_reasons = _credit_commitment(invoice, candidates, history)
        reasons.extend(found_reasons)
    else:
        commitment, reason = find_commitment(invoice, candidates)
        if reason:
            reasons.append(reason)

    if commitment is not None:
        header = check_header(invoice, commitment, history.supplier_id)
        reasons.extend(header)
        same_currency = not any(r.code == ReasonCode.CURRENCY_MISMATCH for r in header)
        if commitment.lines:  # a contract or framework without lines controls the amount only
            matches, line_reasons = _lines(invoice, commitment, config, prices=same_currency, credit=credit)
            reasons.extend(line_reasons)
        if credit is not None:
            if amount > credit.amount:
                reasons.append(
                    Reason(
                        ReasonCode.CREDIT_EXCEEDS_INVOICE,
                        f"The credit note gives back {amount}, more than the {credit.amount} "
                        f"the credited invoices hold on commitment {commitment.number}",
                        expected=str(credit.amount),
                        actual=str(amount),
                        tolerance="exact",
                    )
                )
        elif same_currency:
            budget = _budget(amount, commitment)
            if budget:
                reasons.append(budget)

    reasons.extend(earlier_documents.duplicates(invoice, history, config))
    anomaly = earlier_documents.amount_anomaly(invoice, history, config)
    warnings = (anomaly,) if anomaly else ()

    if reasons or commitment is None:
        result = MatchResult(
            "exception", commitment.number if commitment else None, tuple(reasons), warnings, tuple(matches), ZERO
        )
        return result, NO_RESERVATION

    sign = -1 if invoice.is_credit_note else 1
    quantities: dict[str, Decimal] = {}
    for line_match in matches:
        if line_match.commitment_line is not None and line_match.quantity is not None:
            key = line_match.commitment_line
            quantities[key] = quantities.get(key, Decimal(0)) + sign * line_match.quantity
    reservation = Reservation(
        commitment.number,
        sign * amount,
        tuple(LineReservation(line, quantity) for line, quantity in quantities.items()),
        gives_back=invoice.is_credit_note,
    )
    result = MatchResult("matched", commitment.number, (), warnings, tuple(matches), reservation.amount)
    return result, reservation
