"""Every kind of response the engine builds passes the UBL ApplicationResponse XSD and the official
T111 (Invoice Response) or T71 (Message Level Response) stylesheet: validated by the engine's own
validator, which chooses the rule set by CustomizationID."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.responses import STATUS_ACTIONS, STATUS_REASONS, Answered, Party, invoice_response, message_level_response
from einvoice.validation import validate

BUYER = Party.from_endpoint("0088:7300010000001", "Buyer AB")
SELLER = Party.from_endpoint("0088:7315458756328", "Seller Ltd")
AT = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)

KINDS = [
    ("AB", None, None, None, None),
    ("IP", None, None, None, None),
    ("IP", None, None, "waiting for the approver", None),
    ("UQ", "REF", "PIN", "which order is this for?", date(2026, 12, 3)),
    ("UQ", "OTH", None, "the delivery note is missing", None),
    ("CA", "QTY", "CNP", "two items short", None),
    ("AP", None, None, None, None),
    ("AP", None, None, "approved over the price variance", None),
    ("PD", None, None, None, None),
    ("PD", "PPD", None, "half paid, the rest on delivery", None),
    *[("RE", reason, "NIN", f"rejected: {reason}", None) for reason in STATUS_REASONS if reason != "PPD"],
    *[("RE", "OTH", action, "see the words", None) for action in STATUS_ACTIONS],
]


@pytest.mark.parametrize(("code", "reason", "action", "note", "effective"), KINDS)
@pytest.mark.parametrize("type_code", ["380", "381"])
def test_every_invoice_response_passes_t111(
    code: str, reason: str | None, action: str | None, note: str | None, effective: date | None, type_code: str
) -> None:
    xml = invoice_response(
        response_id="IR-1",
        issued_at=AT,
        sender=BUYER,
        receiver=SELLER,
        answered=Answered("INV-7", type_code),
        code=code,
        reason=reason,
        action=action,
        note=note,
        effective=effective,
    )
    report = validate(xml)
    assert report.rules == "peppol-invoice-response"
    assert [f.rule for f in report.findings if f.is_fatal] == []
    assert report.valid


@pytest.mark.parametrize("count", [1, 3, 250])
def test_every_message_level_response_passes_t71(count: int) -> None:
    findings = [
        Finding(
            rule=f"BR-{n:02}",
            severity=Severity.FATAL,
            layer=Layer.XSD if n % 2 else Layer.EN16931,
            message=f"rule {n} <broken> & not kept",
            location=f"/Invoice[1]/cac:InvoiceLine[{n}]" if n % 3 else None,
        )
        for n in range(1, count + 1)
    ]
    xml = message_level_response(
        response_id="MLR-1", issued_at=AT, sender=BUYER, receiver=SELLER, answered=Answered("INV-7"), findings=findings
    )
    report = validate(xml)
    assert report.rules == "peppol-mlr"
    assert [f.rule for f in report.findings if f.is_fatal] == []
    assert report.valid
