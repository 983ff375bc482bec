"""Invoices for the posting tests, built as a seller should: the VAT breakdown and the totals
computed from the lines and the document level allowances and charges."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

from einvoice.domain.commitments import Budget, Commitment, CommitmentKind, CommitmentLine
from einvoice.domain.invoice import (
    AllowanceCharge,
    DocumentKind,
    DocumentTotals,
    Identifier,
    Invoice,
    Item,
    Line,
    Party,
    PaymentMeans,
    PrecedingInvoice,
    compute_totals,
    compute_vat_breakdown,
)
from einvoice.domain.journal import PostingProfile
from einvoice.domain.money import Amount, Quantity

PROFILE = PostingProfile.from_dict(
    {
        "payable": "5310",
        "input_vat": {"21": "5721", "12": "5722", "5": "5723"},
        "output_vat": "5790",
        "self_assessment_rate": "21",
        "rounding": "8690",
        "default_expense": "2239",
        "prepaid": "2390",
        "allowances": "own_accounts",
        "allowance_account": "2238",
        "charge_account": "2237",
        "accounting_currency": "EUR",
    }
)

SELLER = Party(
    name="Paper Mill SIA",
    endpoint_id=Identifier("40003000000", "9939"),
    vat_id="LV40003000000",
    legal_registration_id=Identifier("40003000000", "0218"),
)


def eur(value: str | Decimal, currency: str = "EUR") -> Amount:
    return Amount(Decimal(value), currency)


def line(
    net: str | Decimal,
    category: str = "S",
    rate: str | Decimal = "21",
    *,
    id: str = "1",
    name: str | None = "Printer paper A4",
    accounting_reference: str | None = None,
    order_line: str | None = None,
    currency: str = "EUR",
) -> Line:
    return Line(
        id=id,
        quantity=Quantity(Decimal(1), "EA"),
        net_amount=eur(net, currency),
        accounting_reference=accounting_reference,
        order_line_reference=order_line,
        vat_category_code=category,
        vat_rate=Decimal(rate),
        item=Item(name=name),
    )


def allowance(amount: str, category: str = "S", rate: str = "21", reason: str = "discount") -> AllowanceCharge:
    return AllowanceCharge(
        is_charge=False, amount=eur(amount), vat_category_code=category, vat_rate=Decimal(rate), reason=reason
    )


def charge(amount: str, category: str = "S", rate: str = "21", reason: str = "freight") -> AllowanceCharge:
    return AllowanceCharge(
        is_charge=True, amount=eur(amount), vat_category_code=category, vat_rate=Decimal(rate), reason=reason
    )


def invoice(
    lines: list[Line],
    allowances_charges: list[AllowanceCharge] | None = None,
    *,
    credit_note: bool = False,
    currency: str = "EUR",
    prepaid: str | None = None,
    rounding: str | None = None,
    accounting_reference: str | None = None,
    corrects: str | None = None,
) -> Invoice:
    """An invoice (or credit note) whose breakdown and totals follow from its parts."""
    acs = tuple(allowances_charges or ())
    breakdown = tuple(
        dataclasses.replace(
            vb,
            taxable_amount=eur(vb.taxable_amount.value, currency),
            tax_amount=eur(vb.tax_amount.value, currency),
        )
        for vb in compute_vat_breakdown(lines, acs)
        if vb.taxable_amount is not None and vb.tax_amount is not None
    )
    draft = Invoice(
        kind=DocumentKind.CREDIT_NOTE if credit_note else DocumentKind.INVOICE,
        id="CN-1" if credit_note else "INV-1",
        issue_date=date(2026, 3, 2),
        type_code="381" if credit_note else "380",
        currency=currency,
        due_date=date(2026, 4, 1),
        accounting_reference=accounting_reference,
        order_reference="PO-2026-0042",
        preceding_invoices=(PrecedingInvoice(corrects),) if corrects else (),
        seller=SELLER,
        payment_means=(PaymentMeans("30", remittance_information="RF18 5390 0754 7034"),),
        lines=tuple(lines),
        allowances_charges=acs,
        vat_breakdown=breakdown,
        totals=DocumentTotals(
            prepaid_amount=None if prepaid is None else eur(prepaid, currency),
            rounding_amount=None if rounding is None else eur(rounding, currency),
        ),
    )
    return dataclasses.replace(draft, totals=compute_totals(draft))


def commitment(line_account: str | None = "2311", account: str | None = "2330") -> Commitment:
    return Commitment(
        number="PO-2026-0042",
        kind=CommitmentKind.ORDER,
        institution_id="inst",
        supplier_id="sup",
        currency="EUR",
        amount=Decimal("10000.00"),
        lines=(CommitmentLine("1", Decimal(100), Decimal("3.50"), account=line_account),),
        budget=Budget(programme="01.00.00", economic_code="2311"),
        account=account,
    )
