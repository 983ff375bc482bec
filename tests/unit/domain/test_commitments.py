"""Pure parts of the commitments register: the default amount, a commitment's definition, the input forms."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from einvoice.domain.commitments import Commitment, CommitmentKind, CommitmentLine, amount_of_lines, definition
from einvoice.services.commitments import CommitmentInput, ReceiptInput


def line(
    line_id: str, quantity: str, price: str, category: str | None = "S", rate: str | None = "21"
) -> CommitmentLine:
    return CommitmentLine(
        id=line_id,
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        vat_category=category,
        vat_rate=None if rate is None else Decimal(rate),
    )


def test_the_amount_of_lines_rounds_each_line_then_the_vat_of_each_rate_once() -> None:
    # 3 x 0.335 = 1.005 -> 1.01; 7 x 0.335 = 2.345 -> 2.35; VAT 21 % of 3.36 = 0.7056 -> 0.71
    assert amount_of_lines([line("1", "3", "0.335"), line("2", "7", "0.335")]) == Decimal("4.07")
    # per line, the VAT would be 0.21 + 0.49 = 0.70: BR-CO-17 computes it on the category's sum
    assert amount_of_lines([line("1", "1", "100.00"), line("2", "2", "10.00", "Z", "0")]) == Decimal("141.00")
    assert amount_of_lines([line("1", "2", "5.00", None, None)]) == Decimal("10.00")
    assert amount_of_lines([]) == Decimal("0.00")


def test_a_definition_leaves_out_what_happened_since_and_compares_decimals_by_value() -> None:
    registered = Commitment(
        number="PO-1",
        kind=CommitmentKind.ORDER,
        institution_id="i",
        supplier_id="s",
        currency="EUR",
        amount=Decimal("100.00"),
        lines=(line("1", "10", "3.50"),),
    )
    held = Commitment(
        number="PO-1",
        kind=CommitmentKind.ORDER,
        institution_id="i",
        supplier_id="s",
        currency="EUR",
        amount=Decimal("100.0"),
        lines=(
            CommitmentLine(
                id="1",
                quantity=Decimal("10"),
                unit_price=Decimal("3.5"),
                vat_category="S",
                vat_rate=Decimal("21"),
                received=Decimal("4"),
                invoiced=Decimal("2"),
            ),
        ),
        reserved=Decimal("20.00"),
    )
    assert definition(registered) == definition(held)
    assert definition(registered) != definition(Commitment(**{**_fields(registered), "amount": Decimal("100.01")}))


def _fields(commitment: Commitment) -> dict[str, object]:
    return {name: getattr(commitment, name) for name in Commitment.__slots__}  # type: ignore[attr-defined]


BASE = {
    "number": "PO-1",
    "kind": "order",
    "supplier": {"vat": "LV40003000000"},
    "currency": "EUR",
    "lines": [{"id": "1", "quantity": "1", "unit_price": "3.50"}],
}


@pytest.mark.parametrize(
    ("change", "location", "words"),
    [
        ({"currency": "XXY"}, ("currency",), "ISO 4217"),
        ({"amount": 12.5}, ("amount",), "decimal strings"),
        ({"amount": "12,5"}, ("amount",), "not a decimal"),
        ({"amount": "NaN"}, ("amount",), "not a decimal"),
        ({"lines": [{"id": "1", "quantity": "0", "unit_price": "1"}]}, ("lines", 0, "quantity"), "more than zero"),
        ({"lines": [{"id": "1", "quantity": "1", "unit_price": "1"}] * 2}, ("lines",), "more than once"),
        ({"tolerances": {"amount_amount": "-0.01"}}, ("tolerances", "amount_amount"), "negative"),
    ],
)
def test_the_input_form_names_the_field_it_refuses(
    change: dict[str, object], location: tuple[object, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CommitmentInput.model_validate({**BASE, **change})
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [location]
    assert words in errors[0]["msg"]


def test_the_input_form_keeps_decimals_as_written() -> None:
    form = CommitmentInput.model_validate(
        {**BASE, "amount": " 5000.00 ", "lines": [{"id": "1", "quantity": "1.500", "unit_price": "3.50"}]}
    )
    assert str(form.amount) == "5000.00"
    assert str(form.lines[0].quantity) == "1.500"
    receipt = ReceiptInput.model_validate(
        {"reference": "GRN-17", "received_on": "2026-03-01", "lines": [{"line": "1", "quantity": "40"}]}
    )
    assert receipt.lines[0].quantity == Decimal("40")
