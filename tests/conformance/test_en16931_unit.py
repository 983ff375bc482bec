"""The official EN 16931 unit tests (vefa testSet files), every case through the engine.

The runner reads the testSet files directly: a new release of the tests is picked up by dropping
its folder under ``corpus/`` (``en16931-*/test/*-unit-UBL/*.xml``). Each test's embedded Invoice
or CreditNote becomes a document of its own, validated with ``--skip-xsd`` and the EN 16931 rules
(configuration ``tc434-ubl``). For every rule in the testSet's scope: a ``success`` rule must not
fire, an ``error`` rule must fire as fatal, a ``warning`` rule must fire as a warning.

OpenPeppol's own unit tests (``rules/unit-UBL-*`` of peppol-bis-invoice-3, configurations
``peppolbis-…``) are picked up the same way from ``peppol-*/**/unit-UBL*/*.xml`` and run with the
Peppol rule set (``peppol-bis3``: the CEN and the Peppol stylesheets). The corpus holds none today;
the tests of a release must match the rules of that release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from einvoice.domain.findings import Layer, Severity
from einvoice.validation.engine import Validator
from tests.conftest import CORPUS_DIR

VEFA = "{http://difi.no/xsd/vefa/validator/1.0}"
TEST_GLOB = "en16931-*/test/*-unit-UBL/*.xml"
PEPPOL_TEST_GLOB = "peppol-*/**/unit-UBL*/*.xml"
EXPECTED_CASES = 1131  # EN 16931 1.3.16; a newer release may only add cases


@dataclass(frozen=True)
class Case:
    id: str
    document: bytes
    scope: frozenset[str]
    success: frozenset[str]
    error: frozenset[str]
    warning: frozenset[str]
    rules: str = "en16931"


def _texts(element: etree._Element, name: str) -> frozenset[str]:
    return frozenset((e.text or "").strip() for e in element.iterfind(f"{VEFA}assert/{VEFA}{name}"))


def _rules(configuration: str | None, peppol: bool) -> str | None:
    """The rule set a testSet's configuration names, or None for one we do not run."""
    if not peppol:
        return "en16931" if configuration in (None, "tc434-ubl") else None
    return "peppol-bis3" if (configuration or "").startswith("peppolbis") else None


def load_cases(corpus: Path, *, peppol: bool = False) -> list[Case]:
    """EN 16931 cases, or with ``peppol=True`` the OpenPeppol cases, found under ``corpus``."""
    cases = []
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for path in sorted(corpus.glob(PEPPOL_TEST_GLOB if peppol else TEST_GLOB)):
        root = etree.parse(str(path), parser).getroot()
        if root.tag != f"{VEFA}testSet":
            continue
        rules = _rules(root.get("configuration"), peppol)
        if rules is None:
            continue
        scope = _texts(root, "scope")
        for index, test in enumerate(root.iterfind(f"{VEFA}test"), start=1):
            document = next(child for child in test if isinstance(child.tag, str) and child.tag != f"{VEFA}assert")
            cases.append(
                Case(
                    id=f"{path.parent.name}/{path.stem}#{index}",
                    document=etree.tostring(document, encoding="utf-8", xml_declaration=True),
                    scope=scope,
                    success=_texts(test, "success"),
                    error=_texts(test, "error"),
                    warning=_texts(test, "warning"),
                    rules=rules,
                )
            )
    return cases


CASES = load_cases(CORPUS_DIR) if CORPUS_DIR.is_dir() else []
PEPPOL_CASES = load_cases(CORPUS_DIR, peppol=True) if CORPUS_DIR.is_dir() else []


def test_all_cases_found(corpus_dir: Path) -> None:
    assert len(load_cases(corpus_dir)) >= EXPECTED_CASES


@pytest.mark.parametrize("case", CASES + PEPPOL_CASES, ids=[c.id for c in CASES + PEPPOL_CASES])
def test_unit_case(case: Case, validator: Validator) -> None:
    report = validator.validate(case.document, rules=case.rules, skip_xsd=True)
    assert report.verdict != "error", report.findings
    assert report.rules == case.rules
    fired: dict[str, set[Severity]] = {}
    for finding in report.findings:
        if finding.layer in (Layer.EN16931, Layer.PEPPOL):
            fired.setdefault(finding.rule, set()).add(finding.severity)
    problems = []
    for rule in sorted(case.scope):
        if rule in case.success and rule in fired:
            problems.append(f"{rule} fired but the case expects success")
        if rule in case.error and Severity.FATAL not in fired.get(rule, set()):
            problems.append(f"{rule} expected to fire as fatal, fired {sorted(fired.get(rule, set()))}")
        if rule in case.warning and Severity.WARNING not in fired.get(rule, set()):
            problems.append(f"{rule} expected to fire as warning, fired {sorted(fired.get(rule, set()))}")
    assert not problems, problems
