"""The response builders, pure: the Invoice Response for every status code, the Message Level
Response with its capped line responses, and the transitions the specification forbids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from lxml import etree

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.errors import ResponseError
from einvoice.responses import (
    Answered,
    Party,
    check_transition,
    invoice_response,
    may_follow,
    message_level_response,
)

NS = {
    "r": "urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}
BUYER = Party.from_endpoint("0088:7300010000001", "Buyer AB")
SELLER = Party.from_endpoint("0088:7315458756328", "Seller Ltd")
AT = datetime(2026, 12, 2, 10, 30, 5, tzinfo=UTC)


def _ir(code: str, **kwargs: object) -> etree._Element:
    xml = invoice_response(
        response_id="r-1",
        issued_at=AT,
        sender=BUYER,
        receiver=SELLER,
        answered=Answered("INV-7", "381"),
        code=code,
        **kwargs,  # type: ignore[arg-type]
    )
    return etree.fromstring(xml)


def _all(root: etree._Element, path: str) -> list[Any]:
    found: Any = root.xpath(path, namespaces=NS)
    return list(found)


def _text(root: etree._Element, path: str) -> list[str]:
    return [e.text for e in _all(root, path)]


def test_an_invoice_response_names_parties_code_and_the_document_answered() -> None:
    root = _ir("AP")
    assert _text(root, "cbc:CustomizationID") == ["urn:fdc:peppol.eu:poacc:trns:invoice_response:3"]
    assert _text(root, "cbc:ProfileID") == ["urn:fdc:peppol.eu:poacc:bis:invoice_response:3"]
    assert _text(root, "cbc:IssueDate") == ["2026-12-02"]
    assert _text(root, "cac:SenderParty/cbc:EndpointID") == ["7300010000001"]
    assert _all(root, "cac:SenderParty/cbc:EndpointID/@schemeID") == ["0088"]
    assert _text(root, "cac:ReceiverParty/cac:PartyLegalEntity/cbc:RegistrationName") == ["Seller Ltd"]
    assert _text(root, "cac:DocumentResponse/cac:Response/cbc:ResponseCode") == ["AP"]
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:ID") == ["INV-7"]
    assert _text(root, "cac:DocumentResponse/cac:DocumentReference/cbc:DocumentTypeCode") == ["381"]
    assert _all(root, "//cac:Status") == []


def test_a_rejection_carries_reason_action_and_words() -> None:
    root = _ir("RE", reason="PRI", action="NIN", note="  unit price  differs from the order ")
    statuses = _all(root, "//cac:Status")
    assert [
        (s.findtext("cbc:StatusReasonCode", namespaces=NS), s.find("cbc:StatusReasonCode", NS).get("listID"))
        for s in statuses
    ] == [("PRI", "OPStatusReason"), ("NIN", "OPStatusAction")]
    assert _text(root, "//cac:Status/cbc:StatusReason") == ["unit price differs from the order"]


def test_under_query_with_an_effective_date() -> None:
    root = _ir("UQ", reason="REF", action="PIN", note="which order?", effective=date(2026, 12, 3))
    assert _text(root, "//cac:Response/cbc:EffectiveDate") == ["2026-12-03"]


def test_words_without_a_code_go_with_reason_non() -> None:
    root = _ir("AP", note="approved after the price was confirmed")
    assert _text(root, "//cac:Status/cbc:StatusReasonCode") == ["NON"]


@pytest.mark.parametrize(
    ("code", "reason", "action", "note"),
    [
        ("RE", None, None, None),  # RE, UQ and CA carry a clarification (PEPPOL-T111-R001)
        ("UQ", None, None, "words alone"),
        ("CA", None, None, None),
        ("AP", "PPD", None, "half"),  # PPD only with PD (PEPPOL-T111-R005, never fired by the stylesheet)
        ("PD", "PPD", None, None),  # PPD with words (R004)
        ("RE", "OTH", None, None),  # OTH with words (R002)
        ("RE", "XYZ", None, "x"),
        ("RE", None, "XYZ", "x"),
        ("ZZ", None, None, None),
    ],
)
def test_what_the_specification_does_not_allow_is_refused(
    code: str, reason: str | None, action: str | None, note: str | None
) -> None:
    with pytest.raises(ResponseError):
        _ir(code, reason=reason, action=action, note=note)


@pytest.mark.parametrize(
    ("previous", "code", "allowed"),
    [
        ((), "AB", True),
        (("AB",), "IP", True),
        (("AB", "IP"), "UQ", True),
        (("AB", "IP", "UQ"), "IP", False),  # backwards
        (("AB", "UQ"), "AP", True),
        (("AB", "IP"), "RE", True),
        (("RE",), "AP", False),  # nothing follows RE
        (("AP",), "PD", True),
        (("AP",), "RE", False),  # only PD follows AP
        (("AP", "PD"), "PD", False),  # nothing follows PD
        (("IP",), "IP", True),
    ],
)
def test_a_status_never_moves_backwards(previous: tuple[str, ...], code: str, allowed: bool) -> None:
    assert may_follow(previous, code) is allowed
    if not allowed:
        with pytest.raises(ResponseError):
            _ir(code, reason="REF" if code in ("RE", "UQ") else None, previous=previous)


def test_check_transition_names_the_problem() -> None:
    with pytest.raises(ResponseError, match="only PD may follow AP"):
        check_transition(["AB", "AP"], "RE")


def _finding(rule: str, layer: Layer, severity: Severity = Severity.FATAL, location: str | None = None) -> Finding:
    return Finding(rule=rule, severity=severity, layer=layer, message=f"{rule} broken", location=location)


def test_a_message_level_response_has_one_line_per_fatal_finding() -> None:
    findings = [
        _finding("BR-CO-15", Layer.EN16931, location="/Invoice[1]/cac:LegalMonetaryTotal[1]"),
        _finding("XSD", Layer.XSD),
        _finding("PEPPOL-EN16931-R008", Layer.PEPPOL, Severity.WARNING),
    ]
    root = etree.fromstring(
        message_level_response(
            response_id="m-1",
            issued_at=AT,
            sender=BUYER,
            receiver=SELLER,
            answered=Answered("INV-7"),
            findings=findings,
        )
    )
    assert _text(root, "cbc:CustomizationID") == ["urn:fdc:peppol.eu:poacc:trns:mlr:3"]
    assert _text(root, "cac:DocumentResponse/cac:Response/cbc:ResponseCode") == ["RE"]
    assert _text(root, "cac:DocumentResponse/cac:Response/cbc:Description") == [
        "Rejected by validation: 2 fatal findings"
    ]
    lines = _all(root, "//cac:LineResponse")
    assert [line.findtext("cac:LineReference/cbc:LineID", namespaces=NS) for line in lines] == [
        "/Invoice[1]/cac:LegalMonetaryTotal[1]",
        "NA",
    ]
    assert [line.findtext("cac:Response/cac:Status/cbc:StatusReasonCode", namespaces=NS) for line in lines] == [
        "BV",
        "SV",
    ]
    assert lines[0].findtext("cac:Response/cbc:Description", namespaces=NS) == "[BR-CO-15] BR-CO-15 broken"


def test_the_line_responses_are_capped_and_the_description_says_so() -> None:
    findings = [_finding(f"BR-{n:02}", Layer.EN16931) for n in range(1, 8)]
    root = etree.fromstring(
        message_level_response(
            response_id="m-1",
            issued_at=AT,
            sender=BUYER,
            receiver=SELLER,
            answered=Answered("INV-7"),
            findings=findings,
            max_lines=3,
        )
    )
    assert len(_all(root, "//cac:LineResponse")) == 3
    assert _text(root, "cac:DocumentResponse/cac:Response/cbc:Description") == [
        "Rejected by validation: 7 fatal findings; the first 3 are listed, 4 more are not"
    ]
