"""What the posting tests share: a validator that finds every document valid (posting's tests are
not validation's), an invoice in US dollars for the rates' tests, charts of accounts written as the
CSV that ``einvoice accounts import`` and ``PUT /v1/institutions/{endpoint}/accounts`` take, and the
two buyers' books (chart and posting profile) the tests post with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from einvoice.benchmarks.pipeline import InvoiceLine, invoice_xml
from einvoice.domain.findings import Finding
from einvoice.services import commitments
from einvoice.store import UnitOfWork
from tests.unit.services import documents


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


def usd_invoice(uow_factory: Callable[[], UnitOfWork], institution_id: str) -> bytes:
    """An invoice of the test documents' seller in USD, issued 2026-11-01 for 108.00 (zero-rated),
    naming in its buyer reference the contract ``K-USD`` registered here for the institution: it
    is approved, and its entry needs a rate from USD to the accounting currency."""
    contract = commitments.CommitmentInput.model_validate(
        {"number": "K-USD", "kind": "contract", "supplier": {"endpoint": documents.SELLER_ENDPOINT}}
        | {"currency": "USD", "amount": "1000.00"}
    )
    commitments.register(uow_factory(), contract, institution_id=institution_id)
    return invoice_xml(
        number="USD-1",
        buyer_reference="K-USD",
        issue_date=date(2026, 11, 1),
        seller_endpoint=documents.SELLER_ENDPOINT,
        seller_vat=documents.SELLER_VAT,
        seller_legal_id=documents.SELLER_LEGAL_ID,
        buyer_endpoint=documents.BUYER_ENDPOINT,
        currency="USD",
        lines=[InvoiceLine("Licence", Decimal(1), Decimal("108.00"), "Z", Decimal(0))],
    )
