"""Purchase commitments: the orders, contracts and frameworks an institution may pay against, their
tolerances, the receipts of what arrived, and what matching decides about an invoice.

Pure data (frozen dataclasses, ``Decimal`` for every amount and quantity), shared by the register
(``store``), the API and the matcher (``einvoice.matching``). The JSON forms (``to_dict``) are the
API's: every amount and quantity a decimal written as a string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from einvoice.domain.money import round_amount


class CommitmentKind(StrEnum):
    ORDER = "order"
    CONTRACT = "contract"
    FRAMEWORK = "framework"


class CommitmentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far an invoice may stray from its commitment and still match. A variance is within
    tolerance when it exceeds neither the percentage nor the absolute limit that is set; a limit
    not set (None) allows nothing: exact, in Decimal, with no hidden slack."""

    price_percent: Decimal | None = None
    price_amount: Decimal | None = None
    quantity_percent: Decimal | None = None
    amount_percent: Decimal | None = None
    amount_amount: Decimal | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "price_percent": _text(self.price_percent),
            "price_amount": _text(self.price_amount),
            "quantity_percent": _text(self.quantity_percent),
            "amount_percent": _text(self.amount_percent),
            "amount_amount": _text(self.amount_amount),
        }


@dataclass(frozen=True, slots=True)
class Supplier:
    """How a commitment names its supplier: any one identifier identifies it."""

    endpoint: str | None = None  # BT-34 form "SCHEME:ID"
    vat: str | None = None  # BT-31
    legal_id: str | None = None  # BT-30

    def to_dict(self) -> dict[str, str | None]:
        return {"endpoint": self.endpoint, "vat": self.vat, "legal_id": self.legal_id}


@dataclass(frozen=True, slots=True)
class Budget:
    """The budget classification the commitment is reserved under."""

    programme: str | None = None
    economic_code: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"programme": self.programme, "economic_code": self.economic_code}


@dataclass(frozen=True, slots=True)
class CommitmentLine:
    """One line of a commitment, with what has happened to it so far (``received`` by receipts,
    ``invoiced`` by the matched invoices that hold it)."""

    id: str
    quantity: Decimal
    unit_price: Decimal  # net, as on invoices (BT-146 per BT-149 base quantity)
    unit_code: str | None = None  # UN/ECE rec 20 (BT-130's code list)
    description: str | None = None
    seller_item_id: str | None = None  # compared with BT-155
    standard_item_id: str | None = None  # "SCHEME:ID", compared with BT-157
    vat_category: str | None = None  # UNCL 5305 (BT-151)
    vat_rate: Decimal | None = None  # BT-152
    account: str | None = None
    received: Decimal = Decimal(0)
    invoiced: Decimal = Decimal(0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seller_item_id": self.seller_item_id,
            "standard_item_id": self.standard_item_id,
            "description": self.description,
            "quantity": str(self.quantity),
            "unit_code": self.unit_code,
            "unit_price": str(self.unit_price),
            "vat_category": self.vat_category,
            "vat_rate": _text(self.vat_rate),
            "account": self.account,
            "ordered": str(self.quantity),
            "received": str(self.received),
            "invoiced": str(self.invoiced),
        }


@dataclass(frozen=True, slots=True)
class Commitment:
    """An order, contract or framework of one institution with one supplier, and its figures:
    ``amount`` is the ceiling the budget reserves, VAT included (what an invoice's BT-112
    consumes); ``reserved`` is held by matched invoices not yet posted, ``consumed`` by posted
    ones; ``remaining = amount - reserved - consumed``."""

    number: str
    kind: CommitmentKind
    institution_id: str
    supplier_id: str
    currency: str
    amount: Decimal
    lines: tuple[CommitmentLine, ...] = ()
    supplier: Supplier = field(default_factory=Supplier)
    valid_from: date | None = None
    valid_to: date | None = None
    budget: Budget = field(default_factory=Budget)
    account: str | None = None
    receipt_required: bool = False
    tolerances: Tolerances = field(default_factory=Tolerances)
    status: CommitmentStatus = CommitmentStatus.OPEN
    reserved: Decimal = Decimal(0)
    consumed: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.reserved - self.consumed

    def line(self, line_id: str) -> CommitmentLine | None:
        return next((line for line in self.lines if line.id == line_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind.value,
            "supplier": self.supplier.to_dict(),
            "currency": self.currency,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "budget": self.budget.to_dict(),
            "account": self.account,
            "receipt_required": self.receipt_required,
            "amount": str(self.amount),
            "tolerances": self.tolerances.to_dict(),
            "status": self.status.value,
            "reserved": str(self.reserved),
            "consumed": str(self.consumed),
            "remaining": str(self.remaining),
            "lines": [line.to_dict() for line in self.lines],
        }


def amount_of_lines(lines: Iterable[CommitmentLine]) -> Decimal:
    """What ``lines`` cost with their VAT, as an invoice of them would total it (BT-112): the net
    amount of each line rounded to two decimals, the VAT of each category and rate computed on the
    sum of its lines and rounded once (BR-CO-17), the sum of both. A line without a rate adds no VAT."""
    net_by_rate: dict[tuple[str | None, Decimal], Decimal] = {}
    for line in lines:
        key = (line.vat_category, line.vat_rate or Decimal(0))
        net_by_rate[key] = net_by_rate.get(key, Decimal(0)) + round_amount(line.quantity * line.unit_price)
    total = Decimal("0.00")
    for (_, rate), net in net_by_rate.items():
        total += net + round_amount(net * rate / 100)
    return round_amount(total)


def definition(commitment: Commitment) -> Commitment:
    """The commitment as registered, without what has happened to it since (reserved, consumed,
    received, invoiced all zero): two registrations of one number are the same when their
    definitions are equal (decimals compare by value: ``3.5`` is ``3.50``)."""
    zero = Decimal(0)
    return replace(
        commitment,
        reserved=zero,
        consumed=zero,
        lines=tuple(replace(line, received=zero, invoiced=zero) for line in commitment.lines),
    )


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    line: str  # the commitment line's id
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Receipt:
    """Goods received or services accepted: the buyer's word on what arrived."""

    reference: str
    received_on: date
    lines: tuple[ReceiptLine, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "received_on": self.received_on.isoformat(),
            "lines": [{"line": line.line, "quantity": str(line.quantity)} for line in self.lines],
        }


# --- what matching decides -------------------------------------------------------------------------


class ReasonCode(StrEnum):
    """Why an invoice cannot go on by itself (issue: matching). Each stops the invoice."""

    NO_COMMITMENT = "NO_COMMITMENT"
    AMBIGUOUS_COMMITMENT = "AMBIGUOUS_COMMITMENT"
    SUPPLIER_MISMATCH = "SUPPLIER_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    OUTSIDE_VALIDITY = "OUTSIDE_VALIDITY"
    COMMITMENT_CLOSED = "COMMITMENT_CLOSED"
    LINE_UNMATCHED = "LINE_UNMATCHED"
    PRICE_VARIANCE = "PRICE_VARIANCE"
    QUANTITY_EXCEEDS_ORDERED = "QUANTITY_EXCEEDS_ORDERED"
    QUANTITY_EXCEEDS_RECEIVED = "QUANTITY_EXCEEDS_RECEIVED"
    UNIT_MISMATCH = "UNIT_MISMATCH"
    VAT_MISMATCH = "VAT_MISMATCH"
    AMOUNT_EXCEEDS_REMAINING = "AMOUNT_EXCEEDS_REMAINING"
    DUPLICATE = "DUPLICATE"
    SUSPECTED_DUPLICATE = "SUSPECTED_DUPLICATE"
    CREDIT_NOTE_UNRESOLVED = "CREDIT_NOTE_UNRESOLVED"
    CREDIT_EXCEEDS_INVOICE = "CREDIT_EXCEEDS_INVOICE"


class WarningCode(StrEnum):
    """What matching notes without stopping the invoice."""

    AMOUNT_ANOMALY = "AMOUNT_ANOMALY"


class LineMatchedBy(StrEnum):
    ORDER_LINE_REFERENCE = "order_line_reference"  # BT-132
    ITEM_ID = "item_id"  # BT-155 or BT-157
    DESCRIPTION = "description"  # similarity above the threshold, same unit code


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason (or warning), with the figures a person needs to decide."""

    code: str  # a ReasonCode or WarningCode value
    message: str  # plain language
    line: str | None = None  # the invoice line (BT-126)
    commitment_line: str | None = None
    expected: str | None = None
    actual: str | None = None
    tolerance: str | None = None  # e.g. "2% / 1.00"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "line": self.line,
            "commitment_line": self.commitment_line,
            "expected": self.expected,
            "actual": self.actual,
            "tolerance": self.tolerance,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class LineMatch:
    line: str  # BT-126
    commitment_line: str | None
    by: LineMatchedBy | None
    outcome: str  # matched | variance | unmatched
    quantity: Decimal | None = None  # what the line takes of the commitment line

    def to_dict(self) -> dict[str, str | None]:
        return {
            "line": self.line,
            "commitment_line": self.commitment_line,
            "by": self.by.value if self.by else None,
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What matching decided: ``matched`` (no reason) or ``exception`` (every reason listed), the
    commitment, the lines, and what the invoice holds on the commitment (``reserved``)."""

    outcome: str  # matched | exception
    commitment: str | None
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    lines: tuple[LineMatch, ...] = ()
    reserved: Decimal = Decimal("0.00")

    @property
    def matched(self) -> bool:
        return self.outcome == "matched"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "commitment": self.commitment,
            "reasons": [r.to_dict() for r in self.reasons],
            "warnings": [w.to_dict() for w in self.warnings],
            "lines": [line.to_dict() for line in self.lines],
            "reserved": str(self.reserved),
        }


# --- what a document holds on its commitment ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineReservation:
    line: str  # the commitment line's id
    quantity: Decimal  # in the commitment line's unit; negative for what a credit note gives back


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one document holds on one commitment: the amount (an invoice's BT-112) and the quantity
    per commitment line. An invoice's figures are positive (a line that returns goods may be
    negative); a credit note's are negative, what it gives back, and ``gives_back`` says so.
    ``NO_RESERVATION`` holds nothing (a document in exception, or matched to no commitment).
    ``einvoice.matching.reservations`` applies it to a ``Commitment``."""

    commitment: str | None
    amount: Decimal = Decimal("0.00")
    lines: tuple[LineReservation, ...] = ()
    gives_back: bool = False  # a credit note's: frees what an invoice took, once posted

    @property
    def holds_nothing(self) -> bool:
        return self.commitment is None or (self.amount == 0 and all(line.quantity == 0 for line in self.lines))

    def quantity(self, line_id: str) -> Decimal:
        """The quantity it holds on one commitment line (0 when it holds none there)."""
        return sum((line.quantity for line in self.lines if line.line == line_id), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment,
            "amount": str(self.amount),
            "lines": [{"line": line.line, "quantity": str(line.quantity)} for line in self.lines],
            "gives_back": self.gives_back,
        }


NO_RESERVATION = Reservation(commitment=None)


# --- Peppol Orders and Despatch Advices ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    """A Peppol BIS Order (T01) read as the commitment it registers: ``commitment`` has the Order's
    number, lines, currency and amounts; its ``institution_id`` and ``supplier_id`` are empty until
    the register resolves ``buyer`` (the BuyerCustomerParty's endpoint, ``SCHEME:ID``) and the
    supplier (``commitment.supplier``: the SellerSupplierParty's endpoint, VAT id, legal id)."""

    commitment: Commitment
    buyer: str | None


class DespatchStatus(StrEnum):
    ADVISED = "advised"  # what the supplier says it shipped: expected deliveries
    CONFIRMED = "confirmed"  # the institution confirmed what arrived: a receipt


@dataclass(frozen=True, slots=True)
class DespatchLine:
    """One line of a Despatch Advice: what was shipped against one order line."""

    id: str  # cac:DespatchLine/cbc:ID
    order_line: str  # cac:OrderLineReference/cbc:LineID: the commitment line
    quantity: Decimal  # cbc:DeliveredQuantity
    unit_code: str | None = None
    order: str | None = None  # the line's own cac:OrderReference/cbc:ID, when it names one
    seller_item_id: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "line": self.id,
            "order_line": self.order_line,
            "quantity": str(self.quantity),
            "unit_code": self.unit_code,
            "seller_item_id": self.seller_item_id,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class DespatchAdvice:
    """A supplier's Peppol Despatch Advice (T16): what was shipped, not yet what arrived. Stored
    against the order's lines as expected deliveries (``expected``); the institution's confirmation
    makes it a receipt (``receipt_reference``)."""

    number: str  # cbc:ID
    order: str  # cac:OrderReference/cbc:ID: the commitment's number
    lines: tuple[DespatchLine, ...]
    issue_date: date | None = None
    supplier_endpoint: str | None = None  # DespatchSupplierParty, SCHEME:ID
    customer_endpoint: str | None = None  # DeliveryCustomerParty, SCHEME:ID: the institution
    id: str = ""  # the register's, once stored
    status: DespatchStatus = DespatchStatus.ADVISED
    receipt_reference: str | None = None  # the receipt the confirmation recorded

    def expected(self) -> dict[str, Decimal]:
        """What the advice says is coming, per order line (lines for one order line added up)."""
        expected: dict[str, Decimal] = {}
        for line in self.lines:
            expected[line.order_line] = expected.get(line.order_line, Decimal(0)) + line.quantity
        return expected

    def same_content(self, other: DespatchAdvice) -> bool:
        """Whether ``other`` advises the same shipment (number, order, date, lines)."""

        def key(advice: DespatchAdvice) -> tuple[object, ...]:
            lines = sorted((x.id, x.order_line, x.quantity, x.unit_code) for x in advice.lines)
            return (advice.number, advice.order, advice.issue_date, lines)

        return key(self) == key(other)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "order": self.order,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "status": self.status.value,
            "receipt_reference": self.receipt_reference,
            "lines": [line.to_dict() for line in self.lines],
            "expected": [{"line": k, "quantity": str(v)} for k, v in self.expected().items()],
        }
