"""Every complete sample in the corpus gets a verdict; its fatal rules agree with the official stylesheets.

The independent path: the official Peppol stylesheets run directly through plain saxonche here,
with no engine code in between, and their fatal rule ids must equal the engine's. The Peppol
Order, Despatch Advice, Invoice Response and Message Level Response samples are all valid, so
variants of each that break rules (empty elements, wrong codes, identifiers and dates) are
compared too.
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
POACC_SET = "peppol-poacc-2026.5"
# Rule set -> (its stylesheet, the CustomizationID of its samples, the corpus folders holding them).
TRANSACTIONS = {
    "peppol-order": (
        f"{PEPPOL_SET}/PEPPOLBIS-T01.xslt",
        "urn:fdc:peppol.eu:poacc:trns:order:3",
        ("Order use cases", "Advanced Ordering scenarios"),
    ),
    "peppol-despatch-advice": (
        f"{POACC_SET}/PEPPOLBIS-T16.xslt",
        "urn:fdc:peppol.eu:poacc:trns:despatch_advice:3",
        ("Despatch Advice use cases",),
    ),
    "peppol-invoice-response": (
        f"{PEPPOL_SET}/PEPPOLBIS-T111.xslt",
        "urn:fdc:peppol.eu:poacc:trns:invoice_response:3",
        ("Invoice reponse use cases",),
    ),
    "peppol-mlr": (f"{POACC_SET}/PEPPOLBIS-T71.xslt", "urn:fdc:peppol.eu:poacc:trns:mlr:3", ()),
}
SAMPLE_GLOBS = (
    "en16931-*/ubl/examples/*",
    "en16931-*/test/testfiles/*",
    "peppol-bis3/rules/examples/*",
    "peppol-bis3/rules/snippets/*",
    "peppol-2026.5/billing/*",
    "peppol-2026.5/SB-*",
    "peppol-2026.5/*_Example.xml",
    "peppol-2026.5/*use cases/*",
    "peppol-2026.5/Advanced Ordering scenarios/*/*",
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
            **{name: [compile_(stylesheet)] for name, (stylesheet, _, _) in TRANSACTIONS.items()},
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
    assert len(files) >= 70
    assert any(p.parent.name == "billing" for p in files)


@pytest.mark.parametrize("path", SAMPLES, ids=IDS)
def test_sample_gets_a_verdict(path: Path, validator: Validator, official: OfficialStylesheets) -> None:
    report = validator.validate(path)
    assert report.verdict in ("valid", "invalid", "unsupported"), report.findings
    if report.verdict == "unsupported":
        assert report.document_type is None
        return
    assert report.document_type in ("Invoice", "CreditNote", "Order", "DespatchAdvice", "ApplicationResponse")
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


# --- the other Peppol documents -------------------------------------------------------------------


def _customization_id(path: Path) -> str | None:
    return etree.parse(str(path)).getroot().findtext(f"{{{CBC}}}CustomizationID")


CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
TRANSACTION_SAMPLES = [
    (name, path)
    for path in SAMPLES
    for name, (_, cid, _) in TRANSACTIONS.items()
    if "peppol-2026.5" in path.parts
    if _customization_id(path) == cid
]


def test_every_order_despatch_advice_invoice_response_and_mlr_sample_is_found() -> None:
    counts = {name: sum(1 for n, _ in TRANSACTION_SAMPLES if n == name) for name in TRANSACTIONS}
    assert counts == {"peppol-order": 8, "peppol-despatch-advice": 6, "peppol-invoice-response": 14, "peppol-mlr": 1}
    for name, (_, _, folders) in TRANSACTIONS.items():
        for folder in folders:  # every sample of the use-case folders has the transaction's id
            assert any(folder in path.parts for n, path in TRANSACTION_SAMPLES if n == name), folder


def _variants(data: bytes) -> dict[str, bytes]:
    """The sample, and variants of it that break rules every transaction has: an empty element,
    unknown codes and schemes, a wrong profile, a document without its id, impossible dates."""
    variants = {"as published": data}

    def variant(name: str, change: Any) -> None:
        root = etree.fromstring(data)
        change(root)
        variants[name] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def child(root: etree._Element, name: str) -> etree._Element:
        found = root.find(f"{{{CBC}}}{name}")
        assert found is not None, name
        return found

    def empty_note(root: etree._Element) -> None:
        child(root, "ID").addnext(etree.Element(f"{{{CBC}}}Note"))

    def codes(root: etree._Element) -> None:
        for element in root.iter(f"{{{CBC}}}*"):
            if etree.QName(element).localname.endswith("Code") and element.text:
                element.text = "ZZZ"
            for attribute in ("schemeID", "currencyID", "unitCode", "listID"):
                if element.get(attribute) is not None:
                    element.set(attribute, "QQQ")

    def profile(root: etree._Element) -> None:
        child(root, "ProfileID").text = "urn:fdc:peppol.eu:poacc:bis:unknown:3"

    def no_id(root: etree._Element) -> None:
        root.remove(child(root, "ID"))

    def dates(root: etree._Element) -> None:
        for element in root.iter(f"{{{CBC}}}*"):
            if etree.QName(element).localname.endswith("Date"):
                element.text = "2026-02-30x"
        for party in list(root.iter(f"{{{CAC}}}Party")):
            parent = party.getparent()
            if parent is not None:
                parent.remove(party)

    for name, change in (
        ("empty element", empty_note),
        ("unknown codes", codes),
        ("wrong profile", profile),
        ("no id", no_id),
        ("bad dates, no parties", dates),
    ):
        variant(name, change)
    return variants


@pytest.mark.parametrize(
    ("name", "path"), TRANSACTION_SAMPLES, ids=[str(p.relative_to(CORPUS_DIR)) for _, p in TRANSACTION_SAMPLES]
)
def test_transaction_samples_are_validated_with_their_rules_as_the_official_stylesheet_does(
    name: str, path: Path, validator: Validator, official: OfficialStylesheets
) -> None:
    stylesheet, cid, _ = TRANSACTIONS[name]
    fired: set[str] = set()
    for variant, data in _variants(path.read_bytes()).items():
        report = validator.validate(data, file=f"{path.name} ({variant})")
        assert report.verdict in ("valid", "invalid"), (variant, report.findings)
        assert (report.rules, report.rules_version, report.customization_id) == (name, "2026.5", cid)
        assert [a.id for a in report.artefacts][1:] == [stylesheet]
        engine_fatal = {f.rule for f in report.findings if f.is_fatal and f.layer is Layer.PEPPOL}
        assert engine_fatal == official.fatal_rules(data, name), variant
        if variant == "as published":
            assert report.valid, report.findings
        else:
            assert not report.valid, variant
        fired |= engine_fatal
    assert len(fired) >= 3, fired  # the variants break the transaction's own rules, not only the XSD
