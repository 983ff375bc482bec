"""Properties of the journal entry builder over generated invoices and credit notes: random lines,
quantities and prices, line and document allowances and charges, every VAT category, several
rates, prepaid and rounding amounts, foreign currency."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from einvoice.domain.invoice import AllowanceCharge, Invoice, Line
from einvoice.domain.journal import ExchangeRate, PostingProfile, Role
from einvoice.domain.money import Amount, round_amount
from einvoice.posting import SELF_ASSESSED, build_entry, net_by_account
from tests.unit.posting.invoices import PROFILE, invoice, line

VAT_GROUPS = [
    ("S", "21"),
    ("S", "12"),
    ("S", "5"),
    ("Z", "0"),
    ("E", "0"),
    ("G", "0"),
    ("O", "0"),
    ("AE", "0"),
    ("K", "0"),
]
RATE = ExchangeRate(Decimal("0.913742"), date(2026, 3, 2), "test")


@st.composite
def documents(draw: st.DrawFn) -> tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None]:
    """An invoice, the credit note for the same amounts, a profile and the rate to use."""
    currency = draw(st.sampled_from(["EUR", "EUR", "USD"]))
    groups = draw(st.lists(st.sampled_from(VAT_GROUPS), min_size=1, max_size=4))
    lines: list[Line] = []
    for n, (category, rate) in enumerate(groups, start=1):
        quantity = Decimal(draw(st.integers(1, 500))) / draw(st.sampled_from([Decimal(1), Decimal(4), Decimal(1000)]))
        price = Decimal(draw(st.integers(-2000, 500_000))) / 100
        line_acs = draw(st.lists(st.tuples(st.booleans(), st.integers(0, 5000)), max_size=2))
        net = quantity * price + sum((Decimal(a) / 100 * (1 if c else -1) for c, a in line_acs), Decimal(0))
        lines.append(line(round_amount(net), category, rate, id=str(n), currency=currency))
    acs: list[AllowanceCharge] = []
    for is_charge, cents, (category, rate) in draw(
        st.lists(st.tuples(st.booleans(), st.integers(1, 10_000), st.sampled_from(groups)), max_size=3)
    ):
        acs.append(
            AllowanceCharge(
                is_charge=is_charge,
                amount=Amount(Decimal(cents) / 100, currency),
                vat_category_code=category,
                vat_rate=Decimal(rate),
                reason="charge" if is_charge else "allowance",
            )
        )
    prepaid = draw(st.one_of(st.none(), st.integers(1, 50_000).map(lambda c: str(Decimal(c) / 100))))
    rounding = draw(st.one_of(st.none(), st.integers(-49, 49).map(lambda c: str(Decimal(c) / 100))))
    kwargs = {"currency": currency, "prepaid": prepaid, "rounding": rounding}
    document = invoice(lines, acs, **kwargs)  # type: ignore[arg-type]
    credit = invoice(lines, acs, credit_note=True, corrects="INV-1", **kwargs)  # type: ignore[arg-type]
    allowances = draw(st.sampled_from(["own_accounts", "spread"]))
    profile = PostingProfile.from_dict({**PROFILE.to_dict(), "allowances": allowances})
    return document, credit, profile, (RATE if currency != "EUR" else None)


def _post(document: Invoice, profile: PostingProfile, rate: ExchangeRate | None, name: str = "d"):  # type: ignore[no-untyped-def]
    return build_entry(document, profile, document_id=name, posting_date=date(2026, 3, 3), exchange_rate=rate)


@settings(max_examples=150, deadline=None)
@given(documents())
def test_every_entry_balances_exactly(case: tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None]) -> None:
    document, credit, profile, rate = case
    for entry in (_post(document, profile, rate), _post(credit, profile, rate)):
        assert entry.total_debit == entry.total_credit
        assert all(line.debit >= 0 and line.credit >= 0 for line in entry.lines)
        assert all(line.debit == 0 or line.credit == 0 for line in entry.lines)
        assert all(line.debit.as_tuple().exponent == -2 for line in entry.lines)


@settings(max_examples=150, deadline=None)
@given(documents())
def test_vat_lines_equal_the_vat_breakdown(case: tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None]) -> None:
    document, _, profile, rate = case
    if rate is not None:
        return  # converted amounts: the balance and the cancelling out are what holds
    entry = _post(document, profile, rate)
    booked: dict[tuple[str | None, Decimal | None], Decimal] = {}
    for vat in entry.lines_with(Role.INPUT_VAT):
        if vat.vat_category not in SELF_ASSESSED:
            key = (vat.vat_category, vat.vat_rate.normalize() if vat.vat_rate is not None else None)
            booked[key] = booked.get(key, Decimal(0)) + vat.debit - vat.credit
    stated = {
        (vb.category_code, vb.rate.normalize() if vb.rate is not None else None): vb.tax_amount.value
        for vb in document.vat_breakdown
        if vb.category_code not in SELF_ASSESSED and vb.tax_amount is not None and vb.tax_amount.value != 0
    }
    assert booked == stated
    for vb in document.vat_breakdown:
        if vb.category_code in SELF_ASSESSED and vb.taxable_amount is not None:
            self_assessed = round_amount(vb.taxable_amount.value * 21 / 100)
            outputs = [line for line in entry.lines_with(Role.OUTPUT_VAT) if line.vat_category == vb.category_code]
            assert sum((line.credit - line.debit for line in outputs), Decimal(0)) == self_assessed


@settings(max_examples=150, deadline=None)
@given(documents())
def test_payable_is_the_amount_due(case: tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None]) -> None:
    document, credit, profile, rate = case
    due = document.totals.payable_amount.value  # type: ignore[union-attr]
    expected = due if rate is None else round_amount(due * rate.rate)
    (payable,) = _post(document, profile, rate).lines_with(Role.PAYABLE)
    assert payable.credit - payable.debit == expected
    (payable,) = _post(credit, profile, rate).lines_with(Role.PAYABLE)
    assert payable.debit - payable.credit == expected


@settings(max_examples=150, deadline=None)
@given(documents())
def test_an_invoice_and_its_credit_note_cancel_out(
    case: tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None],
) -> None:
    document, credit, profile, rate = case
    net = net_by_account([_post(document, profile, rate, "a"), _post(credit, profile, rate, "b")])
    assert set(net.values()) <= {Decimal("0.00")}


def test_generated_documents_are_consistent() -> None:
    """The generator's invoices obey BR-CO-15/16, so the properties test the builder, not it."""

    @settings(max_examples=50, deadline=None)
    @given(documents())
    def check(case: tuple[Invoice, Invoice, PostingProfile, ExchangeRate | None]) -> None:
        totals = case[0].totals
        assert totals.payable_amount is not None
        assert totals.tax_inclusive_amount is not None
        prepaid = totals.prepaid_amount.value if totals.prepaid_amount else 0
        rounding = totals.rounding_amount.value if totals.rounding_amount else 0
        assert totals.payable_amount.value == totals.tax_inclusive_amount.value - prepaid + rounding
        assert (
            dataclasses.replace(case[1], kind=case[0].kind, type_code="380", id="INV-1", preceding_invoices=())
            == case[0]
        )

    check()
