"""The official EN 16931 unit tests (vefa testSet files), every case through the engine.

The runner reads the testSet files directly: a new release of the tests is picked up by dropping
its folder under ``corpus/`` (``en16931-*/test/*-unit-UBL/*.xml``). Each test's embedded Invoice
or CreditNote becomes a document of its own, validated with ``--skip-xsd`` and the EN 16931 rules
(configuration ``tc434-ubl``). For every rule in the testSet's scope: a ``success`` rule must not
fire, an ``error`` rule must fire as fatal, a ``warning`` rule must fire as a warning.
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
EXPECTED_CASES = 1131  # EN 16931 1.3.16; a newer release may only add cases


@dataclass(frozen=True)
class Case:
    id: str
    document: bytes
    scope: frozenset[str]
    success: frozenset[str]
    error: frozenset[str]
    warning: frozenset[str]


def _texts(element: etree._Element, name: str) -> frozenset[str]:
    return frozenset((e.text or "").strip() for e in element.iterfind(f"{VEFA}assert/{VEFA}{name}"))


def load_cases(corpus: Path) -> list[Case]:
    cases = []
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for path in sorted(corpus.glob(TEST_GLOB)):
        root = etree.parse(str(path), parser).getroot()
        if root.get("configuration") not in (None, "tc434-ubl"):
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
                )
            )
    return cases


CASES = load_cases(CORPUS_DIR) if CORPUS_DIR.is_dir() else []


def test_all_cases_found(corpus_dir: Path) -> None:
    assert len(load_cases(corpus_dir)) >= EXPECTED_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_unit_case(case: Case, validator: Validator) -> None:
    report = validator.validate(case.document, rules="en16931", skip_xsd=True)
    assert report.verdict != "error", report.findings
    assert report.rules == "en16931"
    fired: dict[str, set[Severity]] = {}
    for finding in report.findings:
        if finding.layer is Layer.EN16931:
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
