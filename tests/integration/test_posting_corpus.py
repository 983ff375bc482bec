"""The journal entries of the corpus's billing samples (``peppol-2026.5/billing/``, the EN 16931
examples), each checked against an entry worked out by hand from the document's figures: line net
amounts (BT-131), document level allowances and charges (BG-20, BG-21), the VAT breakdown (BT-117
per category and rate), the prepaid (BT-113) and payable (BT-115) amounts. The parser reads the
files; the builder is the one posting uses (``einvoice.posting.build_entry``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from einvoice.domain.journal import ExchangeRate, PostingProfile
from einvoice.errors import PostingNotReadyError
from einvoice.parsers.ubl import parse_invoice_bytes
from einvoice.posting import build_entry

PROFILE = PostingProfile.from_dict(
    {
        "payable": "5310",
        "input_vat": {"25": "2641", "15": "2642"},
        "output_vat": "5790",
        "self_assessment_rate": "25",
        "rounding": "8690",
        "default_expense": "4000",
        "prepaid": "1790",
        "allowances": "own_accounts",
        "allowance_account": "4080",
        "charge_account": "4090",
        "accounting_currency": "EUR",
        "accounting_references": {"4025:123:4343": "4025"},
    }
)
POSTED_ON = date(2026, 3, 3)

# (role, account, debit, credit), in any order: what the document's figures say by hand.
HAND_WORKED = {
    # EUR with its VAT also stated in SEK (BT-111), which the EUR books leave aside; 1000.00 paid in
    # advance, so payable is 7125.00 - 1000.00. Line 2 is exempt (E): no VAT line for it.
    "Allowance-example.xml": [
        ("expense", "4025", "4000.00", "0.00"),  # the lines' BT-133 is not mapped; BT-19 is
        ("expense", "4025", "1000.00", "0.00"),
        ("expense", "4025", "900.00", "0.00"),
        ("charge", "4090", "200.00", "0.00"),  # Cleaning
        ("allowance", "4080", "0.00", "200.00"),  # Discount
        ("input_vat", "2641", "1225.00", "0.00"),  # S 25 %: 25 % of 4900.00
        ("payable", "5310", "0.00", "6125.00"),
        ("prepaid", "1790", "0.00", "1000.00"),
    ],
    # Two rates of category S.
    "Vat-category-S.xml": [
        ("expense", "4025", "4000.00", "0.00"),
        ("expense", "4025", "2000.00", "0.00"),
        ("expense", "4025", "900.00", "0.00"),
        ("charge", "4090", "200.00", "0.00"),
        ("allowance", "4080", "0.00", "100.00"),
        ("input_vat", "2641", "1250.00", "0.00"),  # S 25 % of 5000.00
        ("input_vat", "2642", "300.00", "0.00"),  # S 15 % of 2000.00
        ("payable", "5310", "0.00", "8550.00"),
    ],
    # A credit note: the mirror image of base-example's entry; its negative line goes the other way.
    "base-creditnote-correction.xml": [
        ("expense", "4025", "0.00", "2800.00"),
        ("expense", "4025", "1500.00", "0.00"),
        ("charge", "4090", "0.00", "25.00"),
        ("input_vat", "2641", "0.00", "331.25"),
        ("payable", "5310", "1656.25", "0.00"),
    ],
    # An invoice whose every amount is negative (a correction by invoice): the sides swap, no
    # amount is written negative.
    "base-negative-inv-correction.xml": [
        ("expense", "4025", "0.00", "2800.00"),
        ("expense", "4025", "1500.00", "0.00"),
        ("charge", "4090", "0.00", "25.00"),
        ("input_vat", "2641", "0.00", "331.25"),
        ("payable", "5310", "1656.25", "0.00"),
    ],
    # Base example, its profile 02 variant and the sales order example carry the same figures.
    **{
        name: [
            ("expense", "4025", "2800.00", "0.00"),
            ("expense", "4025", "0.00", "1500.00"),
            ("charge", "4090", "25.00", "0.00"),
            ("input_vat", "2641", "331.25", "0.00"),
            ("payable", "5310", "0.00", "1656.25"),
        ]
        for name in ("base-example.xml", "base-example_profile02.xml", "sales-order-example.xml")
    },
}

# Documents in another currency than the books', with no BT-111: converted at a rate from a source,
# each amount rounded half-up to cents. No VAT to book in categories E, O and Z.
FOREIGN = {
    "vat-category-E.xml": (
        "GBP",
        Decimal("1.1534"),
        [("expense", "4000", "1384.08", "0.00"), ("payable", "5310", "0.00", "1384.08")],
    ),
    "vat-category-Z.xml": (
        "GBP",
        Decimal("1.1534"),
        [("expense", "4000", "1384.08", "0.00"), ("payable", "5310", "0.00", "1384.08")],
    ),
    "vat-category-O.xml": (
        "SEK",
        Decimal("0.0875"),
        [("expense", "4000", "280.00", "0.00"), ("payable", "5310", "0.00", "280.00")],
    ),
}


def _billing(corpus_dir: Path, name: str) -> bytes:
    return (corpus_dir / "peppol-2026.5/billing" / name).read_bytes()


def _sides(entry_dict: dict) -> list[tuple[str, str, str, str]]:  # type: ignore[type-arg]
    return sorted((x["role"], x["account"], x["debit"], x["credit"]) for x in entry_dict["lines"])


def _totals(expected: list[tuple[str, str, str, str]]) -> dict[str, str]:
    debit = sum((Decimal(d) for _, _, d, _ in expected), Decimal(0))
    credit = sum((Decimal(c) for _, _, _, c in expected), Decimal(0))
    return {"debit": f"{debit:.2f}", "credit": f"{credit:.2f}"}


def test_every_billing_sample_has_a_hand_worked_entry(corpus_dir: Path) -> None:
    samples = {p.name for p in (corpus_dir / "peppol-2026.5/billing").glob("*.xml")}
    assert samples == set(HAND_WORKED) | set(FOREIGN)


@pytest.mark.parametrize("name", sorted(HAND_WORKED))
def test_the_entry_of_a_corpus_sample_is_the_hand_worked_one(corpus_dir: Path, name: str) -> None:
    invoice = parse_invoice_bytes(_billing(corpus_dir, name))
    entry = build_entry(invoice, PROFILE, document_id="d1", posting_date=POSTED_ON).to_dict()
    expected = HAND_WORKED[name]
    assert _sides(entry) == sorted(expected)
    assert entry["totals"] == _totals(expected)
    assert (entry["currency"], entry["exchange_rate"]) == ("EUR", None)
    if name == "base-creditnote-correction.xml":
        assert (entry["kind"], entry["corrects"]) == ("credit_note", ["Snippet1"])
    else:
        assert entry["kind"] == "invoice"


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_sample_in_another_currency_waits_for_a_rate_then_books_at_it(corpus_dir: Path, name: str) -> None:
    currency, rate, expected = FOREIGN[name]
    invoice = parse_invoice_bytes(_billing(corpus_dir, name))
    with pytest.raises(PostingNotReadyError, match=f"no exchange rate from {currency} to EUR"):
        build_entry(invoice, PROFILE, document_id="d1", posting_date=POSTED_ON)
    source = ExchangeRate(rate, date(2026, 3, 2), "ECB reference rate")
    entry = build_entry(invoice, PROFILE, document_id="d1", posting_date=POSTED_ON, exchange_rate=source).to_dict()
    assert _sides(entry) == sorted(expected)
    assert entry["totals"] == _totals(expected)
    assert entry["currency"] == "EUR"
    assert entry["exchange_rate"] == {"rate": str(rate), "date": "2026-03-02", "source": "ECB reference rate"}
