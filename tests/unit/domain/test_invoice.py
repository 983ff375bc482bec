"""The domain Invoice and its totals check (BR-CO-10 .. BR-CO-16)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from einvoice.domain.findings import Layer, Severity
from einvoice.domain.invoice import (
    AllowanceCharge,
    DocumentKind,
    DocumentTotals,
    Invoice,
    Line,
    VatBreakdown,
    check_totals,
    compute_totals,
    compute_vat_breakdown,
)
from einvoice.domain.money import Amount, Quantity, round_amount


def eur(value: str | Decimal) -> Amount:
    return Amount(Decimal(value), "EUR")


def line(net: str | Decimal, category: str = "S", rate: str | Decimal = "25") -> Line:
    return Line(
        id="1",
        quantity=Quantity(Decimal(1), "EA"),
        net_amount=eur(net),
        vat_category_code=category,
        vat_rate=Decimal(rate),
    )


def allowance(amount: str | Decimal, category: str = "S", rate: str | Decimal = "25") -> AllowanceCharge:
    return AllowanceCharge(is_charge=False, amount=eur(amount), vat_category_code=category, vat_rate=Decimal(rate))


def charge(amount: str | Decimal, category: str = "S", rate: str | Decimal = "25") -> AllowanceCharge:
    return AllowanceCharge(is_charge=True, amount=eur(amount), vat_category_code=category, vat_rate=Decimal(rate))


def build(
    lines: list[Line],
    allowances_charges: list[AllowanceCharge] = [],  # noqa: B006 - never mutated
    *,
    prepaid: Decimal | None = None,
    rounding: Decimal | None = None,
) -> Invoice:
    """An invoice whose VAT breakdown and totals are computed from its parts, as a seller should."""
    draft = Invoice(
        kind=DocumentKind.INVOICE,
        id="INV-1",
        issue_date=date(2026, 1, 15),
        type_code="380",
        currency="EUR",
        lines=tuple(lines),
        allowances_charges=tuple(allowances_charges),
        vat_breakdown=tuple(
            dataclasses.replace(vb, taxable_amount=eur(vb.taxable_amount.value), tax_amount=eur(vb.tax_amount.value))
            for vb in compute_vat_breakdown(lines, allowances_charges)
            if vb.taxable_amount is not None and vb.tax_amount is not None
        ),
        totals=DocumentTotals(
            prepaid_amount=None if prepaid is None else eur(prepaid),
            rounding_amount=None if rounding is None else eur(rounding),
        ),
    )
    return dataclasses.replace(draft, totals=compute_totals(draft))


def with_totals(invoice: Invoice, **changes: Amount | None) -> Invoice:
    return dataclasses.replace(invoice, totals=dataclasses.replace(invoice.totals, **changes))


def rules(invoice: Invoice) -> list[str]:
    return [finding.rule for finding in check_totals(invoice)]


# --- the model -------------------------------------------------------------------------------


def test_domain_imports_no_io_libraries() -> None:
    code = (
        "import sys, einvoice.domain.invoice, einvoice.domain.money; "
        "print(sorted(m for m in ('lxml', 'sqlalchemy', 'fastapi', 'dramatiq', 'saxonche') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_invoice_is_frozen() -> None:
    invoice = build([line("10.00")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.id = "other"  # type: ignore[misc]


def test_allowances_and_charges_are_told_apart() -> None:
    unknown = AllowanceCharge(is_charge=None, amount=eur("1.00"))
    invoice = build([line("100.00")], [allowance("5.00"), charge("2.00"), allowance("1.00")])
    invoice = dataclasses.replace(invoice, allowances_charges=(*invoice.allowances_charges, unknown))
    assert [ac.amount for ac in invoice.allowances] == [eur("5.00"), eur("1.00")]
    assert [ac.amount for ac in invoice.charges] == [eur("2.00")]


@pytest.mark.parametrize(
    ("kind", "type_code", "expected"),
    [
        (DocumentKind.INVOICE, "380", False),
        (DocumentKind.INVOICE, "381", True),  # a credit note type code in an Invoice document
        (DocumentKind.CREDIT_NOTE, "381", True),
        (DocumentKind.CREDIT_NOTE, None, True),
        (DocumentKind.INVOICE, None, False),
    ],
)
def test_is_credit_note(kind: DocumentKind, type_code: str | None, expected: bool) -> None:
    invoice = dataclasses.replace(build([line("1.00")]), kind=kind, type_code=type_code)
    assert invoice.is_credit_note is expected


# --- compute_vat_breakdown / compute_totals --------------------------------------------------


def test_vat_breakdown_groups_by_category_and_rate() -> None:
    breakdown = compute_vat_breakdown(
        [line("100.00"), line("50.00", "S", "25.00"), line("40.00", "Z", "0"), line("10.00", "S", "12")],
        [allowance("20.00"), charge("5.00", "Z", "0")],
    )
    summary = [(vb.category_code, vb.rate, vb.taxable_amount, vb.tax_amount) for vb in breakdown]
    assert summary == [
        ("S", Decimal("25"), Amount(Decimal("130.00")), Amount(Decimal("32.50"))),  # 25 and 25.00 are one rate
        ("Z", Decimal("0"), Amount(Decimal("45.00")), Amount(Decimal("0.00"))),
        ("S", Decimal("12"), Amount(Decimal("10.00")), Amount(Decimal("1.20"))),
    ]


def test_vat_breakdown_rounds_tax_half_up() -> None:
    (vb,) = compute_vat_breakdown([line("82.50")], [])
    assert vb.tax_amount == Amount(Decimal("20.63"))  # 20.625
    (negative,) = compute_vat_breakdown([line("-82.50")], [])
    assert negative.tax_amount == Amount(Decimal("-20.63"))


def test_compute_totals() -> None:
    invoice = build(
        [line("100.00"), line("-30.00"), line("40.00", "Z", "0")],
        [allowance("10.00"), charge("20.00")],
        prepaid=Decimal("50.00"),
        rounding=Decimal("0.50"),
    )
    totals = invoice.totals
    assert totals.line_extension_amount == eur("110.00")
    assert totals.allowance_total_amount == eur("10.00")
    assert totals.charge_total_amount == eur("20.00")
    assert totals.tax_exclusive_amount == eur("120.00")
    assert totals.tax_amount == eur("20.00")
    assert totals.tax_inclusive_amount == eur("140.00")
    assert totals.prepaid_amount == eur("50.00")
    assert totals.rounding_amount == eur("0.50")
    assert totals.payable_amount == eur("90.50")


def test_compute_totals_leaves_sums_of_incomplete_parts_unset() -> None:
    invoice = build([line("10.00")])
    broken = dataclasses.replace(invoice, lines=(*invoice.lines, dataclasses.replace(line("1.00"), net_amount=None)))
    totals = compute_totals(broken)
    assert totals.line_extension_amount is None
    assert totals.tax_exclusive_amount is None
    assert totals.payable_amount is None
    assert totals.tax_amount == eur("2.50")


# --- check_totals ----------------------------------------------------------------------------


def test_consistent_invoice_has_no_findings() -> None:
    invoice = build(
        [line("100.00"), line("-30.00"), line("40.00", "Z", "0")],
        [allowance("10.00"), charge("20.00")],
        prepaid=Decimal("50.00"),
        rounding=Decimal("-0.40"),
    )
    assert check_totals(invoice) == []


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("line_extension_amount", "BR-CO-10"),
        ("allowance_total_amount", "BR-CO-11"),
        ("charge_total_amount", "BR-CO-12"),
        ("tax_exclusive_amount", "BR-CO-13"),
        ("tax_amount", "BR-CO-14"),
        ("tax_inclusive_amount", "BR-CO-15"),
        ("payable_amount", "BR-CO-16"),
    ],
)
def test_each_total_off_by_a_cent_is_found(field: str, rule: str) -> None:
    invoice = build([line("100.00")], [allowance("10.00"), charge("5.00")])
    stated = getattr(invoice.totals, field)
    wrong = with_totals(invoice, **{field: eur(stated.value + Decimal("0.01"))})
    found = check_totals(wrong)
    assert rule in [f.rule for f in found]
    finding = next(f for f in found if f.rule == rule)
    assert finding.layer is Layer.BUSINESS
    assert finding.severity is Severity.FATAL
    assert finding.value == str(stated.value + Decimal("0.01"))
    assert finding.location is not None
    assert finding.location.startswith("/*/cac:")


def test_a_wrong_line_total_also_breaks_the_tax_exclusive_identity() -> None:
    invoice = build([line("100.00")])
    assert rules(with_totals(invoice, line_extension_amount=eur("99.00"))) == ["BR-CO-10", "BR-CO-13"]


def test_message_names_the_business_terms() -> None:
    invoice = build([line("100.00")])
    (finding,) = check_totals(with_totals(invoice, payable_amount=eur("1.00")))
    assert finding.message == "Amount due for payment (BT-115) is 1.00, the parts give 125.00"


def test_scale_of_stated_amounts_does_not_matter() -> None:
    invoice = build([line("100")])
    assert check_totals(with_totals(invoice, payable_amount=eur("125"), tax_inclusive_amount=eur("125.000"))) == []


def test_rounding_amount_is_tolerated_and_nothing_else() -> None:
    invoice = build([line("99.99")], rounding=Decimal("0.01"))  # VAT 24.9975 -> 25.00
    assert invoice.totals.tax_inclusive_amount == eur("124.99")
    assert invoice.totals.payable_amount == eur("125.00")
    assert check_totals(invoice) == []
    without_rounding = with_totals(invoice, rounding_amount=None)
    assert rules(without_rounding) == ["BR-CO-16"]


def test_prepaid_amount_is_subtracted() -> None:
    invoice = build([line("100.00")], prepaid=Decimal("125.00"))
    assert invoice.totals.payable_amount == eur("0.00")
    assert check_totals(invoice) == []
    assert rules(with_totals(invoice, payable_amount=eur("125.00"))) == ["BR-CO-16"]


def test_allowances_without_bt_107_disagree_like_br_co_11() -> None:
    invoice = build([line("100.00")], [allowance("10.00")])
    assert rules(with_totals(invoice, allowance_total_amount=None)) == ["BR-CO-11", "BR-CO-13"]


def test_charges_without_bt_108_disagree_like_br_co_12() -> None:
    invoice = build([line("100.00")], [charge("10.00")])
    assert rules(with_totals(invoice, charge_total_amount=None)) == ["BR-CO-12", "BR-CO-13"]


def test_absent_allowance_and_charge_totals_without_parts_are_fine() -> None:
    invoice = build([line("100.00")])
    assert check_totals(with_totals(invoice, allowance_total_amount=None, charge_total_amount=None)) == []


def test_stated_allowance_total_without_allowances_must_be_zero() -> None:
    invoice = build([line("100.00")])
    assert check_totals(invoice) == []  # compute_totals states 0.00
    wrong = with_totals(invoice, allowance_total_amount=eur("5.00"), tax_exclusive_amount=eur("95.00"))
    assert rules(wrong) == ["BR-CO-11", "BR-CO-15"]  # BT-112 no longer equals BT-109 + BT-110


def test_totals_the_document_does_not_state_are_not_checked() -> None:
    invoice = build([line("100.00")])
    assert check_totals(dataclasses.replace(invoice, totals=DocumentTotals())) == []
    no_tax = with_totals(invoice, tax_amount=None, tax_inclusive_amount=eur("1.00"))
    assert rules(no_tax) == ["BR-CO-16"]  # BR-CO-15 needs BT-110; its absence is BR-CO-15's schematron's


def test_parts_with_missing_amounts_are_not_summed() -> None:
    invoice = build([line("100.00")])
    broken = dataclasses.replace(invoice, lines=(*invoice.lines, dataclasses.replace(line("1.00"), net_amount=None)))
    assert check_totals(broken) == []


def test_breakdown_missing_means_no_br_co_14() -> None:
    invoice = dataclasses.replace(build([line("100.00")]), vat_breakdown=())
    assert check_totals(invoice) == []


def test_vat_total_against_breakdown() -> None:
    invoice = build([line("100.00"), line("10.00", "Z", "0")])
    extra = VatBreakdown(eur("10.00"), eur("1.00"), "S", Decimal("10"))
    assert rules(dataclasses.replace(invoice, vat_breakdown=(*invoice.vat_breakdown, extra))) == ["BR-CO-14"]


def test_sum_of_line_amounts_with_more_decimals_is_rounded_once() -> None:
    # Three lines of 0.005 (invalid by BR-DEC-23, but the sum is still compared as EN 16931 does).
    invoice = build([line("0.005"), line("0.005"), line("0.005")])
    assert invoice.totals.line_extension_amount == eur("0.02")
    assert "BR-CO-10" not in rules(with_totals(invoice, line_extension_amount=eur("0.02")))
    assert "BR-CO-10" in rules(with_totals(invoice, line_extension_amount=eur("0.03")))


def test_negative_invoice_totals_agree() -> None:
    invoice = build([line("-100.00"), line("-0.05")], [allowance("-1.00")], rounding=Decimal("0.01"))
    # -100.05 - (-1.00) = -99.05; VAT -24.7625 -> -24.76; -123.81 + 0.01
    assert invoice.totals.payable_amount == eur("-123.80")
    assert check_totals(invoice) == []


# --- properties ------------------------------------------------------------------------------

CATEGORIES = [("S", Decimal("25")), ("S", Decimal("12.5")), ("S", Decimal("6")), ("Z", Decimal("0")),
              ("E", Decimal("0")), ("AE", Decimal("0"))]  # fmt: skip
money = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2)
positive_money = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=2)
categories = st.sampled_from(CATEGORIES)

lines_strategy = st.lists(st.tuples(money, categories).map(lambda t: line(t[0], *t[1])), min_size=1, max_size=12)
allowances_charges_strategy = st.lists(
    st.tuples(st.booleans(), positive_money, categories).map(
        lambda t: charge(t[1], *t[2]) if t[0] else allowance(t[1], *t[2])
    ),
    max_size=6,
)
optional_money = st.none() | positive_money
rounding_strategy = st.none() | st.decimals(min_value=Decimal("-0.99"), max_value=Decimal("0.99"), places=2)


@given(lines_strategy, allowances_charges_strategy, optional_money, rounding_strategy)
def test_computed_totals_satisfy_the_br_co_identities(
    lines: list[Line],
    allowances_charges: list[AllowanceCharge],
    prepaid: Decimal | None,
    rounding: Decimal | None,
) -> None:
    invoice = build(lines, allowances_charges, prepaid=prepaid, rounding=rounding)
    t = invoice.totals

    def v(amount: Amount | None) -> Decimal:
        assert amount is not None
        return amount.value

    net = [v(x.net_amount) for x in lines]
    assert v(t.line_extension_amount) == round_amount(sum(net, Decimal(0)))  # BR-CO-10
    assert v(t.allowance_total_amount) == sum((v(a.amount) for a in invoice.allowances), Decimal(0))  # BR-CO-11
    assert v(t.charge_total_amount) == sum((v(c.amount) for c in invoice.charges), Decimal(0))  # BR-CO-12
    assert v(t.tax_exclusive_amount) == (  # BR-CO-13
        v(t.line_extension_amount) - v(t.allowance_total_amount) + v(t.charge_total_amount)
    )
    assert v(t.tax_amount) == sum((v(vb.tax_amount) for vb in invoice.vat_breakdown), Decimal(0))  # BR-CO-14
    assert v(t.tax_inclusive_amount) == v(t.tax_exclusive_amount) + v(t.tax_amount)  # BR-CO-15
    assert v(t.payable_amount) == (  # BR-CO-16
        v(t.tax_inclusive_amount) - (prepaid or Decimal(0)) + (rounding or Decimal(0))
    )
    # The breakdown's taxable amounts add up to BT-109, and each tax amount is its rate's share (BR-CO-17).
    assert sum((v(vb.taxable_amount) for vb in invoice.vat_breakdown), Decimal(0)) == v(t.tax_exclusive_amount)
    for vb in invoice.vat_breakdown:
        assert vb.rate is not None
        assert v(vb.tax_amount) == round_amount(v(vb.taxable_amount) * vb.rate / 100)
    assert check_totals(invoice) == []


TOTAL_RULES = {
    "line_extension_amount": "BR-CO-10",
    "allowance_total_amount": "BR-CO-11",
    "charge_total_amount": "BR-CO-12",
    "tax_exclusive_amount": "BR-CO-13",
    "tax_amount": "BR-CO-14",
    "tax_inclusive_amount": "BR-CO-15",
    "payable_amount": "BR-CO-16",
}


@given(
    lines_strategy,
    allowances_charges_strategy,
    st.sampled_from(sorted(TOTAL_RULES)),
    st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=2).filter(lambda d: d != 0),
)
def test_any_disagreement_in_a_stated_total_is_found(
    lines: list[Line], allowances_charges: list[AllowanceCharge], field: str, delta: Decimal
) -> None:
    invoice = build(lines, allowances_charges)
    stated: Amount = getattr(invoice.totals, field)
    wrong = with_totals(invoice, **{field: eur(stated.value + delta)})
    assert TOTAL_RULES[field] in rules(wrong)


@given(lines_strategy, allowances_charges_strategy)
def test_credit_note_totals_follow_the_same_identities(
    lines: list[Line], allowances_charges: list[AllowanceCharge]
) -> None:
    invoice = dataclasses.replace(build(lines, allowances_charges), kind=DocumentKind.CREDIT_NOTE, type_code="381")
    assert check_totals(invoice) == []
