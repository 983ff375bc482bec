"""The invoices the tests and the pipeline benchmark send pass the official rules without a finding."""

from __future__ import annotations

import random

import pytest

from einvoice.benchmarks.pipeline import random_invoice
from tests.e2e.documents import BUYER_ENDPOINT, SELLER_ENDPOINT, SELLER_VAT, invoice

pytestmark = pytest.mark.slow


def test_generated_invoices_are_valid_peppol_bis3() -> None:
    from einvoice.validation import validate

    rng = random.Random(20261122)
    documents = [
        invoice(),
        invoice("LINES", lines=[("a", "1", "9.99", "S", "14"), ("b", "3", "5", "Z", "0"), ("c", "2", "7.5", "E", "0")]),
    ]
    documents += [
        random_invoice(
            rng,
            number=f"GEN-{i}",
            seller_endpoint=SELLER_ENDPOINT,
            seller_vat=SELLER_VAT,
            buyer_endpoint=BUYER_ENDPOINT,
        )
        for i in range(30)
    ]
    for document in documents:
        report = validate(document)
        assert report.valid, [f.to_dict() for f in report.findings]
        assert report.findings == (), [f.to_dict() for f in report.findings]
