"""Small valid Peppol BIS Billing 3.0 invoices for the HTTP tests, with the parts a test varies as parameters.

The template itself lives in ``einvoice.benchmarks.pipeline.invoice_xml`` (the benchmark sends the
same kind of documents); this module gives it the defaults the tests share and a few hostile inputs.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from einvoice.benchmarks.pipeline import InvoiceLine, invoice_xml
from einvoice.services.commitments import COMMITMENT_EXAMPLE

SELLER_ENDPOINT = "0216:003720000006"
SELLER_VAT = "FI20000006"
BUYER_ENDPOINT = "0216:003710000008"
OTHER_SELLER_ENDPOINT = "0216:003730000004"
OTHER_SELLER_VAT = "FI30000004"


def commitment(number: str, **changes: Any) -> dict[str, Any]:
    """The API description's example commitment (a body for ``POST /v1/commitments``), numbered
    ``number``, its fields in ``changes`` replaced."""
    return copy.deepcopy(COMMITMENT_EXAMPLE) | {"number": number, **changes}


def default_issue_date(number: str) -> date:
    """The issue date ``invoice`` gives a number when none is asked for: 2026-11-02 moved by a
    multiple of 8 days the number chooses."""
    return date(2026, 11, 2) + timedelta(days=8 * (zlib.crc32(number.encode()) % 1000))


def invoice(
    number: str = "INV-1",
    *,
    issue_date: date | None = None,
    seller_endpoint: str = SELLER_ENDPOINT,
    seller_vat: str | None = SELLER_VAT,
    seller_legal_id: str | None = None,
    buyer_endpoint: str = BUYER_ENDPOINT,
    lines: Sequence[tuple[str, str, str, str, str]] | None = None,
    note: str | None = None,
) -> bytes:
    """Return an invoice; ``lines`` are (name, quantity, price, VAT category, VAT rate) tuples. Its
    buyer reference (BT-10) names the contract ``register_contracts`` registers. Without an
    ``issue_date``, 2026-11-02 moved by a multiple of 8 days the number chooses: invoices of one
    total issued within 7 days of each other would be suspected duplicates."""
    if issue_date is None:
        issue_date = default_issue_date(number)
    parsed = [
        InvoiceLine(name, Decimal(qty), Decimal(price), category, Decimal(rate))
        for name, qty, price, category, rate in (lines or [("Consulting", "2", "100.00", "S", "24")])
    ]
    return invoice_xml(
        number=number,
        issue_date=issue_date,
        seller_endpoint=seller_endpoint,
        seller_vat=seller_vat,
        seller_legal_id=seller_legal_id,
        buyer_endpoint=buyer_endpoint,
        lines=parsed,
        note=note,
    )


def register_contracts(uow_factory: Callable[[], Any], buyer_endpoint: str = BUYER_ENDPOINT) -> None:
    """The buyer's contract ``REF-1`` (what the invoices' buyer reference names) with the seller
    (``SELLER_ENDPOINT``), large enough for every test: its valid invoices are then matched."""
    from einvoice.services import accounts
    from tests.unit.services.documents import register_contract

    buyer = accounts.institution_by_endpoint(uow_factory(), buyer_endpoint)
    register_contract(uow_factory, buyer.id, amount="100000000.00", supplier_endpoint=SELLER_ENDPOINT)


def with_doctype(document: bytes) -> bytes:
    """The document behind a DOCTYPE with an internal entity (the start of a billion-laughs attack)."""
    head, _, rest = document.partition(b"?>")
    return head + b'?>\n<!DOCTYPE Invoice [<!ENTITY lol "lol">]>' + rest.replace(b"REF-1", b"&lol;", 1)


NOT_UBL = (
    b'<?xml version="1.0"?><Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2">'
    b"<ID xmlns='urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2'>1</ID></Order>"
)
MALFORMED = b'<?xml version="1.0"?><Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">\n<a></b>'
