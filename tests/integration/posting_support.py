"""What the posting tests share: a validator that finds every document valid (posting's tests are
not validation's), charts of accounts written as the CSV that ``einvoice accounts import`` and
``PUT /v1/institutions/{endpoint}/accounts`` take, and the two buyers' books (chart and posting
profile) the tests post with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from einvoice.domain.findings import Finding


@dataclass
class Valid:
    verdict: str = "valid"
    findings: tuple[Finding, ...] = ()

    def rule_set(self) -> dict[str, object]:
        return {"rules": "peppol-bis3"}


def valid(raw: bytes, **_: object) -> Valid:
    """The validator port: every document valid, with no findings."""
    return Valid()


def chart_csv(accounts: Iterable[tuple[str, str, str]]) -> str:
    """The chart of ``accounts`` (number, name, kind) as CSV with its header line."""
    return "number,name,kind\n" + "".join(f"{number},{name},{kind}\n" for number, name, kind in accounts)


#: The books of the buyer of the test documents (``tests.unit.services.documents``: VAT 24%).
PROFILE = {
    "payable": "5310",
    "input_vat": {"24": "5721"},
    "output_vat": "5790",
    "self_assessment_rate": "24",
    "rounding": "8690",
    "default_expense": "2239",
    "prepaid": "2390",
    "allowances": "spread",
    "accounting_currency": "EUR",
}
CHART = chart_csv(
    [
        ("2239", "Supplies", "expense"),
        ("2390", "Advances paid", "asset"),
        ("5310", "Accounts payable", "liability"),
        ("5721", "Input VAT 24%", "asset"),
        ("5790", "Output VAT", "liability"),
        ("8690", "Rounding", "expense"),
    ]
)

#: The books of the buyer of the corpus's base example (``peppol-2026.5/billing/base-example.xml``:
#: VAT 25%, allowances and charges on accounts of their own, a line's accounting reference).
CORPUS_PROFILE = {
    "payable": "5310",
    "input_vat": {"25": "2641"},
    "output_vat": "5790",
    "self_assessment_rate": "25",
    "rounding": "8690",
    "default_expense": "4000",
    "prepaid": "2390",
    "allowances": "own_accounts",
    "allowance_account": "4080",
    "charge_account": "4090",
    "accounting_currency": "EUR",
    "accounting_references": {"4025:123:4343": "4025"},
}
CORPUS_CHART = chart_csv(
    [
        ("2390", "Advances paid", "asset"),
        ("2641", "Input VAT 25%", "asset"),
        ("4000", "Goods", "expense"),
        ("4025", "Office equipment", "expense"),
        ("4080", "Discounts received", "expense"),
        ("4090", "Freight and insurance", "expense"),
        ("5310", "Accounts payable", "liability"),
        ("5790", "Output VAT", "liability"),
        ("8690", "Rounding", "expense"),
    ]
)
