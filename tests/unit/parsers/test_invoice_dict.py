"""The parsed Invoice as JSON-able data and back (what ``parsed_documents`` keeps)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einvoice.domain.invoice import (
    AllowanceCharge,
    DocumentKind,
    DocumentTotals,
    Identifier,
    Invoice,
    Item,
    Line,
    Party,
    PrecedingInvoice,
    Price,
    VatBreakdown,
)
from einvoice.domain.money import Amount, Quantity
from einvoice.errors import PermanentError
from einvoice.parsers.invoice_dict import FORMAT_VERSION, StoredInvoiceError, invoice_from_dict, invoice_to_dict

# Leaves as a parsed document can hold them: text XML allows, finite decimals of any scale
# (parse_decimal refuses NaN and infinities), any date.
_LEAVES: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n"), max_size=6),
    Decimal: st.decimals(allow_nan=False, allow_infinity=False),
    date: st.dates(),
    bool: st.booleans(),
    DocumentKind: st.sampled_from(DocumentKind),
}


def _strategy(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a type of the domain model, every field of every dataclass filled or left out."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return st.one_of(*(st.none() if a is type(None) else _strategy(a) for a in typing.get_args(hint)))
    if origin is tuple:  # tuple[X, ...]
        return st.lists(_strategy(typing.get_args(hint)[0]), max_size=2).map(tuple)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: _strategy(hints[f.name]) for f in dataclasses.fields(hint)})
    return _LEAVES[hint]


@settings(max_examples=40, deadline=None)
@given(_strategy(Invoice))
def test_any_invoice_survives_json_and_back(invoice: Invoice) -> None:
    data = invoice_to_dict(invoice)
    stored = json.loads(json.dumps(data))  # JSON types only: no default= needed
    assert stored == data
    back = invoice_from_dict(stored)
    assert back == invoice
    assert repr(back) == repr(invoice)  # decimals keep their scale (1.50 is not 1.5), types their kind


def test_the_stored_form_names_the_model_fields_with_decimals_as_written_and_iso_dates() -> None:
    eur = "EUR"
    invoice = Invoice(
        kind=DocumentKind.CREDIT_NOTE,
        id="CN-1",
        issue_date=date(2026, 11, 1),
        type_code="381",
        currency=eur,
        order_reference="PO-7",  # BT-13
        preceding_invoices=(PrecedingInvoice("INV-9", date(2026, 10, 1)),),  # BT-25, BT-26
        seller=Party(name="Acme", endpoint_id=Identifier("123456785", "0192"), vat_id="NO123456785MVA"),
        allowances_charges=(
            AllowanceCharge(False, Amount(Decimal("5.00"), eur), vat_category_code="S", vat_rate=Decimal("25")),
        ),
        totals=DocumentTotals(payable_amount=Amount(Decimal("10.50"), eur)),
        vat_breakdown=(VatBreakdown(Amount(Decimal("8.40"), eur), Amount(Decimal("2.10"), eur), "S", Decimal("25")),),
        lines=(
            Line(
                id="1",
                quantity=Quantity(Decimal("2.000"), "C62"),
                net_amount=Amount(Decimal("13.40"), eur),
                price=Price(Amount(Decimal("6.70"), eur), base_quantity=Quantity(Decimal("1"), "C62")),
                vat_category_code="S",
                vat_rate=Decimal("25.00"),
                item=Item(name="Paper", standard_id=Identifier("7300010000001", "0160")),
            ),
        ),
    )
    assert invoice_to_dict(invoice) == {
        "kind": "credit_note",
        "id": "CN-1",
        "issue_date": "2026-11-01",
        "type_code": "381",
        "currency": "EUR",
        "order_reference": "PO-7",
        "preceding_invoices": [{"id": "INV-9", "issue_date": "2026-10-01"}],
        "seller": {
            "name": "Acme",
            "endpoint_id": {"value": "123456785", "scheme": "0192"},
            "vat_id": "NO123456785MVA",
        },
        "allowances_charges": [
            {
                "is_charge": False,
                "amount": {"value": "5.00", "currency": "EUR"},
                "vat_category_code": "S",
                "vat_rate": "25",
            }
        ],
        "totals": {"payable_amount": {"value": "10.50", "currency": "EUR"}},
        "vat_breakdown": [
            {
                "taxable_amount": {"value": "8.40", "currency": "EUR"},
                "tax_amount": {"value": "2.10", "currency": "EUR"},
                "category_code": "S",
                "rate": "25",
            }
        ],
        "lines": [
            {
                "id": "1",
                "quantity": {"value": "2.000", "unit_code": "C62"},
                "net_amount": {"value": "13.40", "currency": "EUR"},
                "price": {
                    "net_price": {"value": "6.70", "currency": "EUR"},
                    "base_quantity": {"value": "1", "unit_code": "C62"},
                },
                "vat_category_code": "S",
                "vat_rate": "25.00",
                "item": {"name": "Paper", "standard_id": {"value": "7300010000001", "scheme": "0160"}},
            }
        ],
    }


def test_data_of_another_format_version_or_shape_is_refused() -> None:
    data = invoice_to_dict(Invoice(DocumentKind.INVOICE, "1", None, None, None))
    assert invoice_from_dict(data, format_version=FORMAT_VERSION).id == "1"
    with pytest.raises(StoredInvoiceError, match=f"format version {FORMAT_VERSION + 1}"):
        invoice_from_dict(data, format_version=FORMAT_VERSION + 1)
    for broken in ({**data, "kind": "order"}, {**data, "lines": [{"id": "1"}]}, {**data, "issue_date": "yesterday"}):
        with pytest.raises(StoredInvoiceError, match="does not fit the model") as caught:
            invoice_from_dict(broken)
        assert isinstance(caught.value, PermanentError)
