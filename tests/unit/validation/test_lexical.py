"""The check of values the stylesheets convert: which elements, which forms, where a bad one is."""

from __future__ import annotations

import pytest
from lxml import etree

from einvoice.domain.findings import Layer, Severity
from einvoice.validation import lexical
from einvoice.validation.report import short_location

CBC = lexical.CBC_NS
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"


def tree(body: str) -> etree._ElementTree:
    text = (
        f'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cbc="{CBC}"'
        f' xmlns:cac="{CAC}">{body}</Invoice>'
    )
    return etree.ElementTree(etree.fromstring(text.encode()))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("PayableAmount", "decimal"),
        ("InvoicedQuantity", "decimal"),
        ("Percent", "decimal"),
        ("MultiplierFactorNumeric", "decimal"),
        ("CalculationRate", "decimal"),
        ("GrossWeightMeasure", "decimal"),
        ("ChargeIndicator", "boolean"),
        ("TimeAmount", None),
        ("ID", None),
        ("IssueDate", None),
    ],
)
def test_kind_by_name(name: str, kind: str | None) -> None:
    assert lexical.kind_of(name) == kind


@pytest.mark.parametrize("value", ["0", "12", "-3.", "+.5", "1.000", " 12.50\n", "\t-0.0 "])
def test_decimal_forms_pass(value: str) -> None:
    assert lexical.check(tree(f"<cbc:PayableAmount>{value}</cbc:PayableAmount>"), limit=10) == ([], {})


@pytest.mark.parametrize(
    "value", ["1e400", "NaN", "INF", "-INF", "abc", "1,00", "", "1e2", "0x10", ".", "+", "1 000", "١٢"]
)
def test_other_forms_are_fatal_findings(value: str) -> None:
    findings, omitted = lexical.check(tree(f"<cbc:PayableAmount>{value}</cbc:PayableAmount>"), limit=10)
    (finding,) = findings
    assert omitted == {}
    assert finding.rule == lexical.RULE_DECIMAL
    assert finding.severity is Severity.FATAL
    assert finding.layer is Layer.XSD
    assert finding.value == (value.strip() or None)
    assert finding.test == "xs:decimal"


@pytest.mark.parametrize(
    ("value", "bad"), [("true", False), (" 0 ", False), ("1", False), ("yes", True), ("", True), ("True", True)]
)
def test_boolean_forms(value: str, bad: bool) -> None:
    findings, _ = lexical.check(
        tree(f"<cac:AllowanceCharge><cbc:ChargeIndicator>{value}</cbc:ChargeIndicator></cac:AllowanceCharge>"), limit=10
    )
    assert [f.rule for f in findings] == ([lexical.RULE_BOOLEAN] if bad else [])


def test_location_and_line_as_the_stylesheets_write_them() -> None:
    quantity = "<cbc:InvoicedQuantity>{}</cbc:InvoicedQuantity>"
    body = "<cbc:Note>x</cbc:Note>" + "".join(
        f"<cac:InvoiceLine><cbc:ID>{n}</cbc:ID><!-- c -->{quantity.format('x' if n == 3 else n)}</cac:InvoiceLine>\n"
        for n in range(1, 5)
    )
    findings, _ = lexical.check(tree(body), limit=10)
    (finding,) = findings
    assert short_location(finding.location) == "/Invoice/cac:InvoiceLine[3]/cbc:InvoicedQuantity"
    assert finding.location is not None
    assert finding.location.startswith(
        "/*:Invoice[namespace-uri()='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'][1]/*:InvoiceLine["
    )
    assert finding.line == 3


def test_findings_per_rule_are_capped_and_the_rest_counted() -> None:
    body = "".join(
        f"<cac:InvoiceLine><cbc:InvoicedQuantity>q{n}</cbc:InvoicedQuantity></cac:InvoiceLine>" for n in range(7)
    )
    findings, omitted = lexical.check(tree(body), limit=3)
    assert [f.value for f in findings] == ["q0", "q1", "q2"]
    assert omitted == {lexical.RULE_DECIMAL: 4}


def test_elements_outside_cbc_are_not_checked() -> None:
    assert lexical.check(tree("<Amount>abc</Amount><cac:Amount>x</cac:Amount>"), limit=3) == ([], {})
