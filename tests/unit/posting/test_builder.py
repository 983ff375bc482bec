"""The journal entry builder: every rule of the issue's "Journal entries", case by case."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest

from einvoice.domain.commitments import LineMatch, LineMatchedBy, MatchResult
from einvoice.domain.journal import (
    Account,
    AccountKind,
    ChartOfAccounts,
    ExchangeRate,
    JournalEntry,
    PostingProfile,
    ProfileError,
    Role,
)
from einvoice.domain.money import Amount
from einvoice.errors import PostingNotReadyError
from einvoice.posting import build_entry, net_by_account
from tests.unit.posting.invoices import PROFILE, allowance, charge, commitment, eur, invoice, line

POSTED_ON = date(2026, 3, 3)


def post(document, profile: PostingProfile = PROFILE, **kwargs) -> JournalEntry:  # type: ignore[no-untyped-def]
    kwargs.setdefault("document_id", "doc1")
    kwargs.setdefault("posting_date", POSTED_ON)
    kwargs.setdefault("institution", "0218:90000012345")
    entry = build_entry(document, profile, **kwargs)
    assert entry.balanced, entry.to_dict()
    return entry


def sides(entry: JournalEntry) -> list[tuple[str, str, str, str]]:
    """(role, account, debit, credit) of every line, amounts as text."""
    return [(line.role.value, line.account, str(line.debit), str(line.credit)) for line in entry.lines]


# --- the issue's example --------------------------------------------------------------------


def test_the_issues_example_entry() -> None:
    entry = post(invoice([line("350.00", order_line="1")]), commitment=commitment())
    data = entry.to_dict()
    assert data["id"] == "je_doc1"
    assert data["document_number"] == "INV-1"
    assert data["kind"] == "invoice"
    assert data["institution"] == "0218:90000012345"
    assert data["supplier"] == {
        "name": "Paper Mill SIA",
        "endpoint": "9939:40003000000",
        "vat": "LV40003000000",
        "legal_id": "40003000000",
    }
    assert data["commitment"] == "PO-2026-0042"
    assert (data["currency"], data["exchange_rate"]) == ("EUR", None)
    assert (data["issue_date"], data["posting_date"], data["due_date"]) == ("2026-03-02", "2026-03-03", "2026-04-01")
    assert data["payment_reference"] == "RF18 5390 0754 7034"
    expense, vat, payable = data["lines"]
    assert expense == {
        "account": "2311",
        "debit": "350.00",
        "credit": "0.00",
        "role": "expense",
        "description": "Printer paper A4",
        "vat_category": "S",
        "vat_rate": "21",
        "invoice_line": "1",
        "commitment_line": "1",
        "budget": {"programme": "01.00.00", "economic_code": "2311"},
    }
    assert (vat["account"], vat["debit"], vat["credit"], vat["role"]) == ("5721", "73.50", "0.00", "input_vat")
    assert (vat["vat_category"], vat["vat_rate"]) == ("S", "21")
    assert (payable["account"], payable["debit"], payable["credit"]) == ("5310", "0.00", "423.50")
    assert (payable["role"], payable["due_date"], payable["payment_reference"]) == (
        "payable",
        "2026-04-01",
        "RF18 5390 0754 7034",
    )
    assert data["totals"] == {"debit": "423.50", "credit": "423.50"}


def test_every_line_carries_the_budget_of_the_commitment() -> None:
    entry = post(invoice([line("350.00")]), commitment=commitment())
    assert {line.budget.programme if line.budget else None for line in entry.lines} == {"01.00.00"}


def test_posting_is_pure() -> None:
    code = (
        "import sys, einvoice.posting; "
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'dramatiq', 'lxml') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the expense account ---------------------------------------------------------------------


def test_expense_account_the_commitment_line_first() -> None:
    profile = dataclasses.replace(PROFILE, accounting_references={"PAPER": "2312"})
    document = invoice([line("10.00", accounting_reference="PAPER", order_line="1")])
    assert post(document, profile, commitment=commitment()).lines[0].account == "2311"


def test_expense_account_paired_by_the_match_result() -> None:
    matched = MatchResult("matched", "PO-2026-0042", lines=(LineMatch("7", "1", LineMatchedBy.ITEM_ID, "matched"),))
    entry = post(invoice([line("10.00", id="7")]), commitment=commitment(), match=matched)
    assert (entry.lines[0].account, entry.lines[0].commitment_line) == ("2311", "1")


def test_expense_account_from_the_lines_accounting_reference_then_the_documents() -> None:
    profile = dataclasses.replace(PROFILE, accounting_references={"PAPER": "2312", "OFFICE": "2313"})
    document = invoice(
        [line("10.00", id="1", accounting_reference="PAPER"), line("5.00", id="2")], accounting_reference="OFFICE"
    )
    entry = post(document, profile, commitment=commitment(line_account=None))
    assert [line.account for line in entry.lines_with(Role.EXPENSE)] == ["2312", "2313"]


def test_expense_account_the_commitments_then_the_profiles_default() -> None:
    document = invoice([line("10.00", accounting_reference="UNMAPPED")])
    assert post(document, commitment=commitment(line_account=None)).lines[0].account == "2330"
    assert post(document, commitment=commitment(line_account=None, account=None)).lines[0].account == "2239"
    assert post(document).lines[0].account == "2239"
    entry = post(document)
    assert (entry.commitment, entry.lines[0].budget, entry.lines[0].commitment_line) == (None, None, None)


# --- VAT categories --------------------------------------------------------------------------


def test_standard_and_reduced_rates_each_their_input_vat_account() -> None:
    document = invoice([line("100.00", rate="21", id="1"), line("40.00", rate="12", id="2"), line("9.99", rate="5")])
    entry = post(document)
    vat = [(line.account, str(line.debit), line.vat_rate) for line in entry.lines_with(Role.INPUT_VAT)]
    assert vat == [("5721", "21.00", Decimal(21)), ("5722", "4.80", Decimal(12)), ("5723", "0.50", Decimal(5))]
    assert entry.lines_with(Role.PAYABLE)[0].credit == Decimal("176.29")


@pytest.mark.parametrize("category", ["Z", "E", "G", "O"])
def test_no_vat_to_post_where_there_is_none(category: str) -> None:
    entry = post(invoice([line("80.00", category, "0")]))
    assert sides(entry) == [("expense", "2239", "80.00", "0.00"), ("payable", "5310", "0.00", "80.00")]


@pytest.mark.parametrize("category", ["AE", "K"])
def test_reverse_charge_and_intra_community_self_assess(category: str) -> None:
    entry = post(invoice([line("200.00", category, "0")]))
    assert sides(entry) == [
        ("expense", "2239", "200.00", "0.00"),
        ("input_vat", "5721", "42.00", "0.00"),
        ("output_vat", "5790", "0.00", "42.00"),
        ("payable", "5310", "0.00", "200.00"),  # the amount due, untouched by the self-assessment
    ]
    assert {line.vat_category for line in entry.lines_with(Role.OUTPUT_VAT)} == {category}


def test_self_assessment_at_the_profiles_rate() -> None:
    profile = dataclasses.replace(PROFILE, self_assessment_rate=Decimal(12))
    entry = post(invoice([line("200.00", "AE", "0")]), profile)
    assert [(line.account, str(line.debit), str(line.credit)) for line in entry.lines[1:3]] == [
        ("5722", "24.00", "0.00"),
        ("5790", "0.00", "24.00"),
    ]


def test_mixed_categories_in_one_invoice() -> None:
    document = invoice(
        [line("100.00", "S", "21", id="1"), line("50.00", "E", "0", id="2"), line("30.00", "K", "0", id="3")]
    )
    entry = post(document)
    assert [str(line.debit) for line in entry.lines_with(Role.INPUT_VAT)] == ["21.00", "6.30"]
    assert entry.lines_with(Role.PAYABLE)[0].credit == Decimal("201.00") == document.totals.payable_amount.value  # type: ignore[union-attr]


def test_the_stated_vat_is_booked_not_a_recomputed_one() -> None:
    document = invoice([line("100.00")])
    # EN 16931 lets BT-117 differ from base x rate by less than one unit: 21.01 stated, 21.00 computed.
    stated = dataclasses.replace(document.vat_breakdown[0], tax_amount=eur("21.01"))
    document = dataclasses.replace(
        document,
        vat_breakdown=(stated,),
        totals=dataclasses.replace(
            document.totals, tax_amount=eur("21.01"), tax_inclusive_amount=eur("121.01"), payable_amount=eur("121.01")
        ),
    )
    entry = post(document)
    assert entry.lines_with(Role.INPUT_VAT)[0].debit == Decimal("21.01")
    assert entry.lines_with(Role.PAYABLE)[0].credit == Decimal("121.01")
    assert not entry.lines_with(Role.ROUNDING)


# --- credit notes ----------------------------------------------------------------------------


def test_a_credit_note_posts_the_mirror_image_and_links_to_the_invoice() -> None:
    lines = [line("350.00", id="1"), line("20.00", "AE", "0", id="2")]
    original = post(invoice(lines, [allowance("10.00")]), commitment=commitment())
    credit = post(invoice(lines, [allowance("10.00")], credit_note=True, corrects="INV-1"), commitment=commitment())
    assert credit.kind == "credit_note"
    assert credit.corrects == ("INV-1",)
    assert credit.to_dict()["corrects"] == ["INV-1"]
    assert [(line.role, line.account, line.debit, line.credit) for line in credit.lines] == [
        (line.role, line.account, line.credit, line.debit) for line in original.lines
    ]
    assert set(net_by_account([original, credit]).values()) == {Decimal("0.00")}
    assert original.corrects == ()


def test_negative_amounts_on_an_invoice_go_to_the_other_side() -> None:
    entry = post(invoice([line("100.00", id="1"), line("-30.00", id="2")]))
    assert sides(entry) == [
        ("expense", "2239", "100.00", "0.00"),
        ("expense", "2239", "0.00", "30.00"),
        ("input_vat", "5721", "14.70", "0.00"),
        ("payable", "5310", "0.00", "84.70"),
    ]
    assert all(line.debit >= 0 and line.credit >= 0 for line in entry.lines)


# --- document level allowances and charges ---------------------------------------------------


def test_allowances_and_charges_on_their_own_accounts() -> None:
    entry = post(invoice([line("100.00")], [allowance("10.00"), charge("5.00", reason="freight")]))
    assert sides(entry) == [
        ("expense", "2239", "100.00", "0.00"),
        ("allowance", "2238", "0.00", "10.00"),
        ("charge", "2237", "5.00", "0.00"),
        ("input_vat", "5721", "19.95", "0.00"),
        ("payable", "5310", "0.00", "114.95"),
    ]
    assert entry.lines_with(Role.CHARGE)[0].description == "freight"


def test_allowances_and_charges_spread_over_the_lines_of_their_category_and_rate() -> None:
    profile = PostingProfile.from_dict({**PROFILE.to_dict(), "allowances": "spread"})
    document = invoice(
        [line("100.00", id="1"), line("200.00", id="2"), line("50.00", "S", "12", id="3")],
        [allowance("10.00"), charge("1.00", "S", "12")],
    )
    entry = post(document, profile)
    assert [str(line.debit) for line in entry.lines_with(Role.EXPENSE)] == ["96.67", "193.33", "51.00"]
    assert not entry.lines_with(Role.ALLOWANCE)
    assert not entry.lines_with(Role.CHARGE)
    assert sum(line.debit for line in entry.lines_with(Role.EXPENSE)) == document.totals.tax_exclusive_amount.value  # type: ignore[union-attr]


def test_spread_with_no_line_of_the_category_takes_every_line() -> None:
    profile = PostingProfile.from_dict({**PROFILE.to_dict(), "allowances": "spread"})
    document = invoice([line("10.00", id="1"), line("20.00", id="2")], [charge("3.00", "S", "12")])
    assert [str(line.debit) for line in post(document, profile).lines_with(Role.EXPENSE)] == ["11.00", "22.00"]


# --- prepaid and rounding --------------------------------------------------------------------


def test_a_prepaid_amount_goes_to_the_advances_account_and_payable_is_the_amount_due() -> None:
    entry = post(invoice([line("100.00")], prepaid="50.00"))
    assert sides(entry)[2:] == [("payable", "5310", "0.00", "71.00"), ("prepaid", "2390", "0.00", "50.00")]


def test_a_rounding_amount_goes_to_the_rounding_account() -> None:
    entry = post(invoice([line("100.03")], rounding="-0.03"))
    assert sides(entry) == [
        ("expense", "2239", "100.03", "0.00"),
        ("input_vat", "5721", "21.01", "0.00"),
        ("payable", "5310", "0.00", "121.01"),
        ("rounding", "8690", "0.00", "0.03"),
    ]


# --- currency --------------------------------------------------------------------------------


def test_a_foreign_currency_invoice_at_the_given_rate() -> None:
    document = invoice([line("100.00", currency="USD")], currency="USD")
    rate = ExchangeRate(Decimal("0.923456"), date(2026, 3, 2), "ECB")
    entry = post(document, exchange_rate=rate)
    assert entry.currency == "EUR"
    assert entry.document_currency == "USD"
    assert entry.to_dict()["exchange_rate"] == {"rate": "0.923456", "date": "2026-03-02", "source": "ECB"}
    # 92.35 + 19.39 = 111.74; 121.00 x 0.923456 = 111.74: nothing left to round
    assert sides(entry) == [
        ("expense", "2239", "92.35", "0.00"),
        ("input_vat", "5721", "19.39", "0.00"),
        ("payable", "5310", "0.00", "111.74"),
    ]


def test_a_foreign_currency_invoice_books_the_vat_stated_in_accounting_currency() -> None:
    document = invoice(
        [line("100.00", currency="USD"), line("50.00", "S", "12", id="2", currency="USD")], currency="USD"
    )
    document = dataclasses.replace(
        document,
        tax_currency="EUR",
        totals=dataclasses.replace(document.totals, tax_amount_in_accounting_currency=Amount(Decimal("24.90"), "EUR")),
    )
    entry = post(document, exchange_rate=ExchangeRate(Decimal("0.9"), date(2026, 3, 2), "ECB"))
    assert sum(line.debit for line in entry.lines_with(Role.INPUT_VAT)) == Decimal("24.90")
    assert [line.role for line in entry.lines_with(Role.ROUNDING)] == [Role.ROUNDING]


def test_without_a_rate_the_rate_bt111_implies() -> None:
    document = invoice([line("100.00", currency="USD")], currency="USD")
    document = dataclasses.replace(
        document,
        tax_currency="EUR",
        totals=dataclasses.replace(document.totals, tax_amount_in_accounting_currency=Amount(Decimal("19.32"), "EUR")),
    )
    entry = post(document)
    assert entry.exchange_rate is not None
    assert (entry.exchange_rate.rate, entry.exchange_rate.source) == (Decimal("0.920000"), "BT-111/BT-110")
    assert entry.lines_with(Role.INPUT_VAT)[0].debit == Decimal("19.32")


def test_no_rate_found_is_not_ready() -> None:
    with pytest.raises(PostingNotReadyError, match="no exchange rate from USD to EUR"):
        post(invoice([line("100.00", currency="USD")], currency="USD"))


# --- what the profile or the chart lacks -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "document", "named"),
    [
        ({"payable": None}, invoice([line("1.00")]), "payable"),
        ({"input_vat": {"21": "5721"}}, invoice([line("1.00", rate="12")]), "input_vat account for rate 12"),
        ({"output_vat": None}, invoice([line("1.00", "K", "0")]), "output_vat"),
        ({"self_assessment_rate": None}, invoice([line("1.00", "AE", "0")]), "self_assessment_rate"),
        ({"prepaid": None}, invoice([line("1.00")], prepaid="0.50"), "prepaid"),
        ({"rounding": None}, invoice([line("1.03")], rounding="-0.03"), "rounding"),
        ({"allowance_account": None}, invoice([line("9.00")], [allowance("1.00")]), "allowance_account"),
        ({"default_expense": None}, invoice([line("1.00")]), "default expense"),
    ],
)
def test_what_the_profile_lacks_is_named(change: dict[str, object], document: object, named: str) -> None:
    profile = PostingProfile.from_dict({**PROFILE.to_dict(), **change})
    with pytest.raises(PostingNotReadyError, match=named):
        build_entry(document, profile, document_id="d", posting_date=POSTED_ON)  # type: ignore[arg-type]


def test_accounts_outside_the_chart_are_named() -> None:
    chart = ChartOfAccounts(date(2026, 1, 1), tuple(Account(n, n, AccountKind.EXPENSE) for n in ("2239", "5721")))
    with pytest.raises(PostingNotReadyError, match="5310"):
        post(invoice([line("1.00")]), chart=chart)


def test_profile_completeness_and_its_json() -> None:
    assert PROFILE.missing() == []
    assert PostingProfile.from_dict(PROFILE.to_dict()) == PROFILE
    spread = PostingProfile.from_dict({"payable": "5310", "allowances": "spread"})
    assert "allowance_account" not in spread.missing()
    assert spread.missing() == [
        "input_vat",
        "output_vat",
        "self_assessment_rate",
        "rounding",
        "default_expense",
        "prepaid",
    ]
    assert PostingProfile.from_dict({"input_vat": {"21.00": "5721", "5.50": "5724"}}).input_vat == {
        "21": "5721",
        "5.5": "5724",
    }
    with pytest.raises(ProfileError, match="unknown posting profile keys: payables"):
        PostingProfile.from_dict({"payables": "5310"})
    with pytest.raises(ProfileError, match="own_accounts or spread"):
        PostingProfile.from_dict({"allowances": "somewhere"})
    with pytest.raises(ProfileError, match="not a VAT rate"):
        PostingProfile.from_dict({"input_vat": {"twenty": "5721"}})


def test_the_chart_names_the_profiles_accounts_it_lacks() -> None:
    chart = ChartOfAccounts(date(2026, 1, 1), (Account("5310", "Payables", AccountKind.LIABILITY),))
    unknown = chart.unknown(PROFILE)
    assert "payable" not in unknown
    assert unknown["input_vat.21"] == "5721"
