"""Small UBL documents for tests that exercise intake and the pipeline, not the validators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from einvoice.benchmarks.pipeline import InvoiceLine, invoice_xml
from einvoice.domain.commitments import Commitment
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import SupplierView, accounts, commitments
from einvoice.store import UnitOfWork

SELLER_ENDPOINT = "0192:123456785"
SELLER_VAT = "NO123456785MVA"
SELLER_LEGAL_ID = "123456785"
BUYER_ENDPOINT = "0192:987654325"


def invoice(
    number: str = "INV-1",
    *,
    issue_date: str = "2026-11-01",
    seller_endpoint: str = SELLER_ENDPOINT,
    seller_vat: str | None = SELLER_VAT,
    seller_legal_id: str | None = SELLER_LEGAL_ID,
    buyer_endpoint: str | None = BUYER_ENDPOINT,
    amount: str = "125.00",
    note: str = "",
) -> bytes:
    """A Peppol BIS 3 invoice of one zero-rated line, so that its payable amount (BT-115) is
    ``amount``, from the one invoice factory the tests and the benchmarks share
    (``einvoice.benchmarks.pipeline.invoice_xml``). An amount too long for any real invoice is
    written into the document as it is (intake's tests of values longer than their columns)."""
    written = Decimal(amount) if len(amount) <= 20 else Decimal("1.00")
    document = invoice_xml(
        number=number,
        issue_date=date.fromisoformat(issue_date),
        seller_endpoint=seller_endpoint,
        seller_vat=seller_vat,
        seller_legal_id=seller_legal_id,
        seller_name="Acme",
        buyer_endpoint=buyer_endpoint,
        lines=[InvoiceLine("Goods", Decimal(1), written, "Z", Decimal(0))],
        country="NO",
        note=note or None,
    )
    if len(amount) > 20:
        document = document.replace(b">1.00</cbc:PayableAmount>", f">{amount}</cbc:PayableAmount>".encode())
    return document


#: The parser port the pipeline wires (``bootstrap``): matching reads the parsed document.
PARSER = parse_for_pipeline


def register_seller(uow_factory: Callable[[], UnitOfWork], *, unchecked: bool = True) -> SupplierView:
    """Register the seller of the factory's invoices with every identifier they state for it (so
    that intake never has to ask the register whether another supplier holds one)."""
    supplier, _ = accounts.add_supplier(
        uow_factory(),
        name="Acme",
        endpoint=SELLER_ENDPOINT,
        vat=SELLER_VAT,
        legal_id=SELLER_LEGAL_ID,
        unchecked=unchecked,
    )
    return supplier


def register_contract(
    uow_factory: Callable[[], UnitOfWork],
    institution_id: str,
    *,
    number: str = "REF-1",
    amount: str = "1000000.00",
    supplier_endpoint: str = SELLER_ENDPOINT,
) -> Commitment:
    """Register a contract without lines of the institution with the supplier, numbered as the
    factory's invoices name it in their buyer reference (BT-10 ``REF-1``): their matching then
    controls the amount only, and a valid invoice is ``matched``."""
    data = commitments.CommitmentInput.model_validate(
        {
            "number": number,
            "kind": "contract",
            "supplier": {"endpoint": supplier_endpoint},
            "currency": "EUR",
            "amount": amount,
        }
    )
    return commitments.register(uow_factory(), data, institution_id=institution_id).commitment
