"""Every complete sample in the corpus gets a verdict; its fatal rules agree with the official stylesheets.

The independent path: the official Peppol stylesheets run directly through plain saxonche here,
with no engine code in between, and their fatal rule ids must equal the engine's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from einvoice.domain.findings import Layer, Severity
from einvoice.validation.engine import Validator
from tests.conftest import CORPUS_DIR

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
PEPPOL_BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_SET = "peppol-bis3-2026.5"
SAMPLE_GLOBS = (
    "en16931-*/ubl/examples/*",
    "en16931-*/test/testfiles/*",
    "peppol-bis3/rules/examples/*",
    "peppol-bis3/rules/snippets/*",
    "peppol-2026.5/billing/*",
    "peppol-2026.5/SB-*",
    "peppol-2026.5/*_Example.xml",
    "peppol-2026.5/*use cases/*",
)


def sample_files(corpus: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in SAMPLE_GLOBS:
        found.update(p for p in corpus.glob(pattern) if p.is_file() and p.suffix.lower() == ".xml")
    return sorted(found)


SAMPLES = sample_files(CORPUS_DIR) if CORPUS_DIR.is_dir() else []
IDS = [str(p.relative_to(CORPUS_DIR)) for p in SAMPLES]


class OfficialStylesheets:
    """The Peppol CEN + PEPPOL stylesheets, compiled and run the plain way (no engine code)."""

    def __init__(self, rules_dir: Path) -> None:
        from saxonche import PySaxonProcessor

        self.proc = PySaxonProcessor(license=False)
        compiler = self.proc.new_xslt30_processor()

        def compile_(relpath: str) -> Any:
            return compiler.compile_stylesheet(stylesheet_text=(rules_dir / relpath).read_text("utf-8"))

        self.executables: dict[str, list[Any]] = {
            "peppol-bis3": [
                compile_(f"{PEPPOL_SET}/{name}") for name in ("CEN-EN16931-UBL.xslt", "PEPPOL-EN16931-UBL.xslt")
            ],
            "en16931": [compile_("en16931-1.3.16/EN16931-UBL-validation.xslt")],
        }

    def fatal_rules(self, data: bytes, rules: str = "peppol-bis3") -> set[str]:
        node = self.proc.parse_xml(xml_text=data.decode("utf-8"))
        fatal: set[str] = set()
        for executable in self.executables[rules]:
            executable.set_global_context_item(xdm_item=node)
            svrl = etree.fromstring(executable.apply_templates_returning_string(xdm_value=node).encode())
            for element in svrl.iter(f"{SVRL}failed-assert", f"{SVRL}successful-report"):
                if (element.get("flag") or "fatal") not in ("warning", "information"):
                    fatal.add(element.get("id") or "")
        return fatal


@pytest.fixture(scope="module")
def official(rules_dir: Path) -> OfficialStylesheets:
    return OfficialStylesheets(rules_dir)


def test_samples_found(corpus_dir: Path) -> None:
    files = sample_files(corpus_dir)
    assert len(files) >= 60
    assert any(p.parent.name == "billing" for p in files)


@pytest.mark.parametrize("path", SAMPLES, ids=IDS)
def test_sample_gets_a_verdict(path: Path, validator: Validator, official: OfficialStylesheets) -> None:
    report = validator.validate(path)
    assert report.verdict in ("valid", "invalid", "unsupported"), report.findings
    if report.verdict == "unsupported":
        assert report.document_type is None
        return
    assert report.document_type in ("Invoice", "CreditNote")
    if path.parent.name == "billing":
        assert report.valid, [f for f in report.findings if f.is_fatal]
    if report.customization_id == PEPPOL_BILLING:
        assert report.rules == "peppol-bis3"
    # The engine's fatal Schematron rule ids equal those of the official stylesheets run plainly.
    assert report.rules is not None
    engine_fatal = {
        f.rule
        for f in report.findings
        if f.severity is Severity.FATAL and f.layer in (Layer.EN16931, Layer.PEPPOL) and not f.override
    }
    assert engine_fatal == official.fatal_rules(path.read_bytes(), report.rules)
