"""Report shapes: the stable JSON object, the text summary, the HTML page."""

from __future__ import annotations

import json

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.validation.report import (
    ArtefactRef,
    ValidationReport,
    reports_to_html,
    reports_to_json,
    reports_to_text,
)

FINDINGS = (
    Finding("BR-CO-10", Severity.WARNING, Layer.EN16931, "Sum mismatch <b>", "/x", 12, "a = b", "1.00"),
    Finding("BR-01", Severity.FATAL, Layer.EN16931, "Missing spec id", "/", 1, "cbc:CustomizationID"),
    Finding("PEPPOL-R1", Severity.INFORMATION, Layer.PEPPOL, "Note", override="institution 42 says so"),
)


def make(verdict: str = "invalid", findings: tuple[Finding, ...] = FINDINGS) -> ValidationReport:
    return ValidationReport(
        file="a.xml",
        document_type="Invoice",
        customization_id="urn:cen.eu:en16931:2017",
        rules="en16931",
        verdict=verdict,  # type: ignore[arg-type]
        findings=findings,
        svrl={"en16931": "<svrl/>"},
        rules_version="1.3.16",
        artefacts=ARTEFACTS,
    )


ARTEFACTS = (
    ArtefactRef("xsd", "ubl-2.1", "2.1 OS 2013-11-04", "xsd/maindoc/UBL-Invoice-2.1.xsd", "a" * 64),
    ArtefactRef("en16931", "en16931-1.3.16", "1.3.16", "EN16931-UBL-validation.xslt", "b" * 64),
)


def test_to_dict_has_the_documented_keys() -> None:
    data = make().to_dict()
    assert list(data) == [
        "file",
        "document_type",
        "customization_id",
        "rules",
        "rules_version",
        "artefacts",
        "valid",
        "verdict",
        "findings",
    ]
    assert data["valid"] is False
    assert (data["rules"], data["rules_version"]) == ("en16931", "1.3.16")
    assert data["artefacts"][1] == {
        "id": "en16931-1.3.16/EN16931-UBL-validation.xslt",
        "layer": "en16931",
        "set": "en16931-1.3.16",
        "version": "1.3.16",
        "path": "EN16931-UBL-validation.xslt",
        "sha256": "b" * 64,
    }
    assert ArtefactRef.from_dict(data["artefacts"][1]) == ARTEFACTS[1]
    finding = data["findings"][1]
    for key in ("rule", "severity", "layer", "location", "line", "message"):
        assert key in finding
    assert finding == {
        "rule": "BR-01",
        "severity": "fatal",
        "layer": "en16931",
        "location": "/",
        "line": 1,
        "message": "Missing spec id",
        "test": "cbc:CustomizationID",
        "value": None,
        "override": None,
    }


def test_svrl_only_on_request() -> None:
    assert "svrl" not in make().to_dict()
    assert make().to_dict(include_svrl=True)["svrl"] == {"en16931": "<svrl/>"}


def test_valid_only_for_the_valid_verdict() -> None:
    assert make("valid", ()).valid
    assert not make("error", ()).valid
    assert not make("unsupported", ()).valid


def test_json_array_of_reports() -> None:
    data = json.loads(reports_to_json([make(), make("valid", ())]))
    assert [d["verdict"] for d in data] == ["invalid", "valid"]


def test_text_summary_orders_by_severity_and_shows_overrides() -> None:
    text = reports_to_text([make(), make("valid", ())])
    lines = text.splitlines()
    assert lines[0].startswith("a.xml: INVALID (Invoice, en16931 1.3.16) - 1 fatal, 1 warning, 1 information")
    assert "BR-01" in lines[1]
    assert "BR-CO-10" in lines[2]
    assert "override: institution 42 says so" in text
    assert lines[-1] == "2 documents: 1 invalid, 1 valid"


def test_html_groups_by_severity_and_escapes() -> None:
    html = reports_to_html([make()])
    assert html.index("Fatal (1)") < html.index("Warning (1)") < html.index("Information (1)")
    assert "Sum mismatch &lt;b&gt;" in html
    assert "institution 42 says so" in html
    assert "1.00" in html
    assert "<dd>en16931 1.3.16</dd>" in html  # the rule set and its version
    assert "en16931-1.3.16/EN16931-UBL-validation.xslt" in html


def test_short_location_reads_like_a_ubl_path() -> None:
    from einvoice.validation.report import short_location

    svrl = (
        "/*:Invoice[namespace-uri()='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'][1]"
        "/*:TaxTotal[namespace-uri()='urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2'][1]"
        "/*:TaxSubtotal[namespace-uri()='urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2'][2]"
        "/*:TaxAmount[namespace-uri()='urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2'][1]"
    )
    assert short_location(svrl) == "/Invoice/cac:TaxTotal/cac:TaxSubtotal[2]/cbc:TaxAmount"
    assert short_location("/Invoice/cbc:ID") == "/Invoice/cbc:ID"
    assert short_location(None) is None
