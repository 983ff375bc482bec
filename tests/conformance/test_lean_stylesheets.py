"""The lean stylesheets report exactly what the official ones report, on every document we have.

``lean_stylesheet`` removes output nobody reads (fired-rule elements, idle default-mode walks); this
proves on the whole corpus, and on every EN 16931 unit-test document, that the failed asserts and
successful reports (rule id, flag, location, test, text) are the same, in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from einvoice.validation.schematron import FiredRule, lean_stylesheet, parse_svrl
from tests.conformance.test_en16931_unit import CASES
from tests.conformance.test_samples import SAMPLES

STYLESHEETS = (
    "peppol-bis3-2026.5/CEN-EN16931-UBL.xslt",
    "peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt",
    "en16931-1.3.16/EN16931-UBL-validation.xslt",
)
UBL = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
)


class Pair:
    def __init__(self, rules_dir: Path) -> None:
        from saxonche import PySaxonProcessor

        self.proc = PySaxonProcessor(license=False)
        compiler = self.proc.new_xslt30_processor()
        self.pairs: dict[str, tuple[Any, Any]] = {}
        for relpath in STYLESHEETS:
            text = (rules_dir / relpath).read_text("utf-8")
            self.pairs[relpath] = (
                compiler.compile_stylesheet(stylesheet_text=text),
                compiler.compile_stylesheet(stylesheet_text=lean_stylesheet(text)),
            )

    def both(self, relpath: str, data: bytes) -> tuple[tuple[FiredRule, ...], tuple[FiredRule, ...]]:
        node = self.proc.parse_xml(xml_text=data.decode("utf-8"))
        results = []
        for executable in self.pairs[relpath]:
            executable.set_global_context_item(xdm_item=node)
            results.append(parse_svrl(executable.apply_templates_returning_string(xdm_value=node)))
        return results[0], results[1]


@pytest.fixture(scope="module")
def pair(rules_dir: Path) -> Pair:
    return Pair(rules_dir)


def _is_ubl(data: bytes) -> bool:
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return False
    return etree.QName(root).namespace in UBL


def test_lean_equals_official_on_samples(pair: Pair) -> None:
    compared = 0
    for path in SAMPLES:
        data = path.read_bytes()
        if not _is_ubl(data):
            continue
        for relpath in STYLESHEETS:
            official, lean = pair.both(relpath, data)
            assert lean == official, (path, relpath)
            compared += 1
    assert compared > 150


def test_lean_equals_official_on_unit_test_documents(pair: Pair) -> None:
    fired = 0
    for case in CASES:
        official, lean = pair.both("en16931-1.3.16/EN16931-UBL-validation.xslt", case.document)
        assert lean == official, case.id
        fired += len(official)
    assert len(CASES) >= 1131
    assert fired > 1000
