"""The names the value check goes by are the UBL 2.1 schema's own types, element for element."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from einvoice.validation import lexical

XSD = "http://www.w3.org/2001/XMLSchema"
DECIMAL_TYPES = {"AmountType", "MeasureType", "NumericType", "PercentType", "QuantityType", "RateType", "ValueType"}


def test_element_kinds_match_the_ubl_schema(rules_dir: Path) -> None:
    schema = etree.parse(str(rules_dir / "ubl-2.1" / "xsd" / "common" / "UBL-CommonBasicComponents-2.1.xsd"))
    ns = {"xsd": XSD}
    base_of = {
        t.get("name"): t.xpath("string(.//xsd:extension/@base | .//xsd:restriction/@base)", namespaces=ns)
        for t in schema.xpath("/xsd:schema/xsd:complexType", namespaces=ns)
    }
    elements = {e.get("name"): base_of[e.get("type")] for e in schema.xpath("/xsd:schema/xsd:element", namespaces=ns)}
    assert len(elements) > 800
    expected = {
        name: "decimal"
        if base.removeprefix("udt:") in DECIMAL_TYPES
        else "boolean"
        if base == "udt:IndicatorType"
        else None
        for name, base in elements.items()
    }
    assert {name: lexical.kind_of(name) for name in elements} == expected
