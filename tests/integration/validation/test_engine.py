"""The engine's orchestration: layers, verdicts, engine failures, lines and values, SVRL on request.

Uses the official artefacts from ../shared/rules (the installed layout) through one Validator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.settings import Settings
from einvoice.validation import artefacts, engine, rulesets
from einvoice.validation.engine import (
    RULE_ENGINE,
    RULE_NOT_WELL_FORMED,
    RULE_TOO_LARGE,
    RULE_UNSAFE,
    RULE_UNSUPPORTED,
    Validator,
)


@pytest.fixture(scope="module")
def validator(shared_dir: Path) -> Validator:
    return Validator(Settings(rules_dir=shared_dir / "rules"))


@pytest.fixture(scope="module")
def base_example(corpus_dir: Path) -> bytes:
    return (corpus_dir / "peppol-2026.5" / "billing" / "base-example.xml").read_bytes()


def test_valid_peppol_invoice(validator: Validator, base_example: bytes) -> None:
    report = validator.validate(base_example, file="base-example.xml")
    assert report.verdict == "valid"
    assert report.valid
    assert report.rules == "peppol-bis3"
    assert report.document_type == "Invoice"
    assert report.customization_id is not None
    assert report.customization_id.endswith("billing:3.0")
    assert not [f for f in report.findings if f.is_fatal]
    assert {"parse", "xsd", "en16931", "peppol"} <= set(report.timings)


def test_fatal_rule_gives_invalid_with_line_value_and_test(validator: Validator, base_example: bytes) -> None:
    data = base_example.replace(b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:DocumentCurrencyCode>QQQ<")
    assert data != base_example
    report = validator.validate(data)
    assert report.verdict == "invalid"
    fired = [f for f in report.findings if f.rule == "BR-CL-04"]
    assert fired, report.findings
    finding = fired[0]
    assert finding.severity is Severity.FATAL
    assert finding.layer is Layer.EN16931
    assert finding.value == "QQQ"
    assert finding.line == base_example[: base_example.index(b"<cbc:DocumentCurrencyCode>")].count(b"\n") + 1
    assert finding.test
    assert finding.location is not None
    assert finding.location.startswith("/*:Invoice")


def test_xsd_failure_does_not_skip_schematron(validator: Validator, base_example: bytes) -> None:
    data = base_example.replace(
        b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:Unknown>1</cbc:Unknown><cbc:DocumentCurrencyCode>QQQ<"
    )
    report = validator.validate(data)
    layers = {f.layer for f in report.findings if f.is_fatal}
    assert Layer.XSD in layers
    assert Layer.EN16931 in layers
    xsd = next(f for f in report.findings if f.layer is Layer.XSD)
    assert xsd.line is not None
    assert xsd.message.startswith("Element 'cbc:Unknown': This element is not expected.")
    assert "{urn:" not in xsd.message
    assert xsd.value == "1"
    assert not any(f.layer is Layer.XSD for f in validator.validate(data, skip_xsd=True).findings)


def test_not_well_formed_stops_at_intake(validator: Validator) -> None:
    report = validator.validate(b"<Invoice>\n<unclosed>\n</Invoice>")
    assert report.verdict == "invalid"
    assert [f.rule for f in report.findings] == [RULE_NOT_WELL_FORMED]
    assert report.findings[0].layer is Layer.INTAKE
    assert report.findings[0].line is not None


def test_unsupported_document_type(validator: Validator) -> None:
    report = validator.validate(b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>')
    assert report.verdict == "unsupported"
    assert not report.valid
    assert report.findings[0].rule == RULE_UNSUPPORTED


def test_missing_artefacts_are_an_error_never_valid(tmp_path: Path, base_example: bytes) -> None:
    report = Validator(Settings(rules_dir=tmp_path)).validate(base_example)
    assert report.verdict == "error"
    assert not report.valid
    engine = [f for f in report.findings if f.rule == RULE_ENGINE]
    assert engine
    assert all(f.layer is Layer.ENGINE and f.is_fatal for f in engine)


def test_broken_stylesheet_is_an_error(tmp_path: Path, shared_dir: Path, base_example: bytes) -> None:
    for item in (shared_dir / "rules").iterdir():
        (tmp_path / item.name).symlink_to(item)
    broken = tmp_path / "peppol-bis3-2026.5"
    broken.unlink()
    broken.mkdir()
    for item in (shared_dir / "rules" / "peppol-bis3-2026.5").iterdir():
        (broken / item.name).symlink_to(item)
    original = broken / "PEPPOL-EN16931-UBL.xslt"
    size = original.stat().st_size
    original.unlink()
    # Same size as the released file, so only compiling can tell it is broken.
    text = b"<xsl:stylesheet this is not xslt"
    original.write_bytes(text + b" " * (size - len(text)))
    report = Validator(Settings(rules_dir=tmp_path)).validate(base_example)
    assert report.verdict == "error"
    assert any(f.rule == RULE_ENGINE and "PEPPOL-EN16931-UBL.xslt" in f.message for f in report.findings)


def test_an_artefact_removed_while_running_is_an_error_once_rechecked(
    tmp_path: Path, shared_dir: Path, base_example: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for item in (shared_dir / "rules").iterdir():
        (tmp_path / item.name).symlink_to(item)
    validator = Validator(Settings(rules_dir=tmp_path))
    assert validator.validate(base_example).verdict == "valid"
    (tmp_path / "peppol-bis3-2026.5").unlink()
    # Within the recheck interval the compiled stylesheets in memory keep validating.
    assert validator.validate(base_example).verdict == "valid"
    monkeypatch.setattr(engine, "ARTEFACT_RECHECK_SECONDS", 0.0)
    report = validator.validate(base_example)
    assert report.verdict == "error"
    assert any(f.rule == RULE_ENGINE and "not installed" in f.message for f in report.findings)


def test_artefacts_are_not_checked_on_every_document(
    validator: Validator, base_example: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    validator.validate(base_example)
    calls: list[str] = []
    original = artefacts.path

    def counting(set_id: str, relpath: str, *args: object, **kwargs: object) -> Path:
        calls.append(relpath)
        return original(set_id, relpath, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(artefacts, "path", counting)
    for _ in range(5):
        assert validator.validate(base_example).verdict == "valid"
    assert calls == []


def test_forced_rules_and_raw_svrl(validator: Validator, base_example: bytes) -> None:
    report = validator.validate(base_example, rules="en16931", svrl=True)
    assert report.rules == "en16931"
    assert report.svrl is not None
    assert set(report.svrl) == {"en16931"}
    assert "schematron-output" in report.svrl["en16931"]
    assert validator.validate(base_example).svrl is None
    with pytest.raises(ValueError, match="rules"):
        validator.validate(base_example, rules="nonsense")


def test_path_input_sets_file(validator: Validator, corpus_dir: Path) -> None:
    path = corpus_dir / "peppol-2026.5" / "billing" / "base-creditnote-correction.xml"
    report = validator.validate(path)
    assert report.file == str(path)
    assert report.document_type == "CreditNote"
    assert report.valid


def test_overrides_are_applied_and_decide_the_verdict(
    validator: Validator, base_example: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = base_example.replace(b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:DocumentCurrencyCode>QQQ<")
    seen = {}

    def downgrade(
        findings: list[Finding], institution: str | None = None, at: object = None, **_: object
    ) -> list[Finding]:
        seen["institution"] = institution
        return [
            replace(f, severity=Severity.WARNING, override="accepted by institution") if f.is_fatal else f
            for f in findings
        ]

    monkeypatch.setattr(rulesets, "apply_overrides", downgrade)
    report = validator.validate(data, institution="ministry-1")
    assert seen["institution"] == "ministry-1"
    assert report.verdict == "valid"
    assert any(f.override == "accepted by institution" for f in report.findings)


def test_one_validator_shared_by_threads_gives_the_same_reports(validator: Validator, corpus_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    docs = [p.read_bytes() for p in sorted((corpus_dir / "peppol-2026.5" / "billing").glob("*.xml"))]
    docs.append(docs[0].replace(b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:DocumentCurrencyCode>QQQ<"))
    expected = [validator.validate(d).to_dict() for d in docs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda d: validator.validate(d).to_dict(), docs * 3))
    assert got == expected * 3


def test_unsafe_and_oversized_documents_are_invalid_at_intake(shared_dir: Path, base_example: bytes) -> None:
    validator = Validator(Settings(rules_dir=shared_dir / "rules", max_document_bytes=len(base_example) - 1))
    too_large = validator.validate(base_example)
    assert too_large.verdict == "invalid"
    assert [f.rule for f in too_large.findings] == [RULE_TOO_LARGE]
    unsafe = validator.validate(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    assert unsafe.verdict == "invalid"
    assert [f.rule for f in unsafe.findings] == [RULE_UNSAFE]
    assert unsafe.findings[0].layer is Layer.INTAKE
