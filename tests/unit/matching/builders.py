"""Commitments, invoices and earlier documents for the matcher's tests: the issue's example order
PO-2026-0042 (100 C62 of printer paper at 3.50, 21% VAT, 5,000.00) and invoices against it."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

from einvoice.domain.commitments import (
    Commitment,
    CommitmentKind,
    CommitmentLine,
    Supplier,
    Tolerances,
)
from einvoice.domain.invoice import (
    DocumentKind,
    DocumentTotals,
    Identifier,
    Invoice,
    Item,
    Line,
    Party,
    PrecedingInvoice,
    Price,
)
from einvoice.domain.money import Amount, Quantity, round_amount

NUMBER = "PO-2026-0042"
SUPPLIER_ID = "sup-1"


def d(value: str | int | Decimal) -> Decimal:
    return Decimal(str(value))


def commitment_line(**changes: Any) -> CommitmentLine:
    values: dict[str, Any] = {
        "id": "1",
        "seller_item_id": "SKU-1",
        "standard_item_id": "0160:7300010000017",
        "description": "Printer paper A4",
        "quantity": d(100),
        "unit_code": "C62",
        "unit_price": d("3.50"),
        "vat_category": "S",
        "vat_rate": d(21),
        "account": "2311",
    }
    values.update(changes)
    return CommitmentLine(**values)


def commitment(*lines: CommitmentLine, **changes: Any) -> Commitment:
    values: dict[str, Any] = {
        "number": NUMBER,
        "kind": CommitmentKind.ORDER,
        "institution_id": "inst-1",
        "supplier_id": SUPPLIER_ID,
        "supplier": Supplier(endpoint="0088:7300010000001", vat="LV40003000000"),
        "currency": "EUR",
        "valid_from": date(2026, 1, 1),
        "valid_to": date(2026, 12, 31),
        "amount": d("5000.00"),
        "lines": lines if lines else (commitment_line(),),
        "tolerances": Tolerances(),
    }
    values.update(changes)
    return Commitment(**values)


def tolerances(**limits: str) -> Tolerances:
    return Tolerances(**{name: d(value) for name, value in limits.items()})


def line(
    id: str = "1",
    quantity: str | Decimal = "10",
    price: str | Decimal = "3.50",
    *,
    unit: str | None = "C62",
    order_line: str | None = "1",
    sellers_id: str | None = None,
    standard_id: Identifier | None = None,
    name: str = "Printer paper A4",
    category: str | None = "S",
    rate: str | None = "21",
    base: str | None = None,
) -> Line:
    q, p = d(quantity), d(price)
    base_quantity = Quantity(d(base), unit) if base is not None else None
    net = round_amount(q * p / (d(base) if base is not None else 1))
    return Line(
        id=id,
        quantity=Quantity(q, unit),
        net_amount=Amount(net, "EUR"),
        order_line_reference=order_line,
        price=Price(net_price=Amount(p, "EUR"), base_quantity=base_quantity),
        vat_category_code=category,
        vat_rate=None if rate is None else d(rate),
        item=Item(name=name, sellers_id=sellers_id, standard_id=standard_id),
    )


SELLER = Party(
    name="Paper Supplies SIA",
    endpoint_id=Identifier("7300010000001", "0088"),
    vat_id="LV40003000000",
    legal_registration_id=Identifier("40003000000"),
)


def invoice(
    *lines: Line,
    order: str | None = NUMBER,
    contract: str | None = None,
    buyer_reference: str | None = None,
    total: str | Decimal | None = None,
    number: str = "INV-1",
    issued: date = date(2026, 3, 1),
    currency: str = "EUR",
    credit_note: bool = False,
    preceding: tuple[PrecedingInvoice, ...] = (),
    seller: Party = SELLER,
) -> Invoice:
    """An invoice (or credit note) with BT-112 = the lines' net amounts plus 21% VAT, unless ``total``."""
    lines = lines if lines else (line(),)
    if total is None:
        net = sum((ln.net_amount.value for ln in lines if ln.net_amount), Decimal(0))
        total = round_amount(net * d("1.21"))
    return Invoice(
        kind=DocumentKind.CREDIT_NOTE if credit_note else DocumentKind.INVOICE,
        id=number,
        issue_date=issued,
        type_code="381" if credit_note else "380",
        currency=currency,
        order_reference=order,
        contract_reference=contract,
        buyer_reference=buyer_reference,
        preceding_invoices=preceding,
        seller=seller,
        lines=lines,
        totals=DocumentTotals(tax_inclusive_amount=Amount(d(total), currency)),
    )


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)


#: The ``match_result`` the issue's example gives: its invoice against PO-2026-0042, line 2 at 3.80
#: against the committed 3.50 with a tolerance of 2% / 1.00.
ISSUE_MATCH_RESULT: dict[str, Any] = {
    "outcome": "exception",
    "commitment": "PO-2026-0042",
    "reasons": [
        {
            "code": "PRICE_VARIANCE",
            "line": "2",
            "commitment_line": "1",
            "expected": "3.50",
            "actual": "3.80",
            "tolerance": "2% / 1.00",
            "message": "Unit price 3.80 is 8.6% above the committed 3.50 (limit 2%)",
        }
    ],
    "warnings": [],
    "lines": [
        {"line": "1", "commitment_line": "1", "by": "order_line_reference", "outcome": "matched"},
        {"line": "2", "commitment_line": "1", "by": "item_id", "outcome": "variance"},
    ],
    "reserved": "0.00",
}
