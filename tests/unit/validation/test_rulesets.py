"""Rule-set selection by CustomizationID and date in force; per-institution severity overrides."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.errors import ArtefactMissingError, ConfigurationError, UnsupportedDocumentError
from einvoice.parsers.safe_xml import DocumentType
from einvoice.settings import Settings
from einvoice.validation import artefacts, overrides, rulesets
from einvoice.validation.rulesets import EN16931, PEPPOL_BIS3, RuleSetError

AFTER = date(2026, 11, 1)  # every set of the manifest is in force


# --- selection -----------------------------------------------------------------------------------


def test_peppol_bis3_gets_xsd_and_both_peppol_stylesheets() -> None:
    ruleset = rulesets.select(PEPPOL_BIS3, at=AFTER)
    assert ruleset.name == "peppol-bis3"
    assert ruleset.xsd_set_id == "ubl-2.1"
    assert ruleset.set_ids == ("ubl-2.1", "peppol-bis3-2026.5")
    assert [(s.layer, s.set_id, s.relpath) for s in ruleset.stylesheets] == [
        (Layer.EN16931, "peppol-bis3-2026.5", "CEN-EN16931-UBL.xslt"),
        (Layer.PEPPOL, "peppol-bis3-2026.5", "PEPPOL-EN16931-UBL.xslt"),
    ]
    assert ruleset.notes == ()


def test_customization_id_is_trimmed() -> None:
    assert rulesets.select(f"  {PEPPOL_BIS3}\n", at=AFTER).name == "peppol-bis3"


def test_an_extension_of_peppol_bis3_is_peppol() -> None:
    assert rulesets.select(PEPPOL_BIS3 + "#conformant#urn:example:ext", at=AFTER).name == "peppol-bis3"


def test_a_lookalike_of_peppol_bis3_is_not_peppol() -> None:
    ruleset = rulesets.select(PEPPOL_BIS3 + "9", at=AFTER)
    assert ruleset.name == "en16931"


def test_plain_en16931_gets_the_cen_stylesheet_without_notes() -> None:
    ruleset = rulesets.select(EN16931, at=AFTER)
    assert ruleset.name == "en16931"
    assert ruleset.set_ids == ("ubl-2.1", "en16931-1.3.16")
    assert [(s.layer, s.relpath) for s in ruleset.stylesheets] == [(Layer.EN16931, "EN16931-UBL-validation.xslt")]
    assert ruleset.notes == ()


def test_another_cius_is_validated_against_en16931_with_a_note() -> None:
    cid = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
    ruleset = rulesets.select(cid, at=AFTER)
    assert ruleset.name == "en16931"
    assert len(ruleset.notes) == 1
    assert cid in ruleset.notes[0]
    assert "EN 16931 only" in ruleset.notes[0]


@pytest.mark.parametrize("cid", ["urn:example:something-else", "urn:www.cenbii.eu:transaction:biitrns010:ver2.0"])
def test_unrecognised_customization_id_gets_the_note(cid: str) -> None:
    ruleset = rulesets.select(cid, at=AFTER)
    assert ruleset.name == "en16931"
    assert ruleset.notes == (f"CustomizationID '{cid}' is not recognised; validated against EN 16931 only",)


@pytest.mark.parametrize("cid", [None, "", "   "])
def test_missing_customization_id_is_en16931_with_a_note(cid: str | None) -> None:
    ruleset = rulesets.select(cid, at=AFTER)
    assert ruleset.name == "en16931"
    assert ruleset.notes
    assert "EN 16931 only" in ruleset.notes[0]


def test_rules_can_be_forced() -> None:
    assert rulesets.select(EN16931, rules="peppol-bis3", at=AFTER).name == "peppol-bis3"
    assert rulesets.select(PEPPOL_BIS3, rules="en16931", at=AFTER).name == "en16931"
    with pytest.raises(ValueError, match="rules must be"):
        rulesets.select(EN16931, rules="xrechnung")


def test_at_accepts_dates_and_aware_or_naive_datetimes() -> None:
    for at in (AFTER, datetime(2026, 11, 1, 12, 0), datetime(2026, 11, 1, 12, 0, tzinfo=UTC), None):
        assert rulesets.select(PEPPOL_BIS3, at=at).name == "peppol-bis3"


def test_before_the_oldest_known_release_the_oldest_is_used_and_the_report_says_so() -> None:
    early = rulesets.select(PEPPOL_BIS3, at=date(2026, 8, 23))
    assert early.set_ids[1] == "peppol-bis3-2026.5"
    assert any("no peppol-bis3 release known to this engine was in force on 2026-08-23" in n for n in early.notes)
    on_time = rulesets.select(PEPPOL_BIS3, at=date(2026, 8, 24))
    assert on_time.set_ids[1] == "peppol-bis3-2026.5"
    assert on_time.notes == ()


def test_xsd_relpath() -> None:
    assert rulesets.xsd_relpath(DocumentType.INVOICE) == "xsd/maindoc/UBL-Invoice-2.1.xsd"
    assert rulesets.xsd_relpath(DocumentType.CREDIT_NOTE) == "xsd/maindoc/UBL-CreditNote-2.1.xsd"
    assert rulesets.xsd_relpath("CreditNote") == "xsd/maindoc/UBL-CreditNote-2.1.xsd"
    assert rulesets.xsd_relpath("Order") == "xsd/maindoc/UBL-Order-2.1.xsd"
    assert rulesets.xsd_relpath("ApplicationResponse") == "xsd/maindoc/UBL-ApplicationResponse-2.1.xsd"
    with pytest.raises(ValueError, match="OrderResponse"):
        rulesets.xsd_relpath("OrderResponse")


@pytest.mark.parametrize(
    ("document_type", "cid", "name", "set_id", "stylesheet"),
    [
        ("Order", "urn:fdc:peppol.eu:poacc:trns:order:3", "peppol-order", "peppol-bis3-2026.5", "PEPPOLBIS-T01.xslt"),
        (
            "DespatchAdvice",
            "urn:fdc:peppol.eu:poacc:trns:despatch_advice:3",
            "peppol-despatch-advice",
            "peppol-poacc-2026.5",
            "PEPPOLBIS-T16.xslt",
        ),
        (
            "ApplicationResponse",
            "urn:fdc:peppol.eu:poacc:trns:invoice_response:3",
            "peppol-invoice-response",
            "peppol-bis3-2026.5",
            "PEPPOLBIS-T111.xslt",
        ),
        (
            "ApplicationResponse",
            "urn:fdc:peppol.eu:poacc:trns:mlr:3",
            "peppol-mlr",
            "peppol-poacc-2026.5",
            "PEPPOLBIS-T71.xslt",
        ),
    ],
)
def test_the_other_peppol_documents_get_their_transaction_rules_by_customization_id(
    document_type: str, cid: str, name: str, set_id: str, stylesheet: str
) -> None:
    ruleset = rulesets.select(cid, document_type=document_type, at=AFTER)
    assert (ruleset.name, ruleset.version) == (name, "2026.5")
    assert ruleset.xsd_relpath == f"xsd/maindoc/UBL-{document_type}-2.1.xsd"
    assert [(s.layer, s.set_id, s.relpath) for s in ruleset.stylesheets] == [(Layer.PEPPOL, set_id, stylesheet)]
    manifest = artefacts.load_manifest()

    def sha256(set_id: str, relpath: str) -> str:
        entry = manifest.get(set_id).file(relpath)
        assert entry is not None
        return entry.sha256

    assert [(a.id, a.version, a.sha256) for a in ruleset.artefacts] == [
        (f"ubl-2.1/{ruleset.xsd_relpath}", "2.1 OS 2013-11-04", sha256("ubl-2.1", ruleset.xsd_relpath)),
        (f"{set_id}/{stylesheet}", "2026.5", sha256(set_id, stylesheet)),
    ]


def test_billing_rule_sets_name_their_version_and_artefacts() -> None:
    peppol = rulesets.select(PEPPOL_BIS3, at=AFTER)
    assert (peppol.name, peppol.version) == ("peppol-bis3", "2026.5")
    assert [a.id for a in peppol.artefacts] == [
        "ubl-2.1/xsd/maindoc/UBL-Invoice-2.1.xsd",
        "peppol-bis3-2026.5/CEN-EN16931-UBL.xslt",
        "peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt",
    ]
    cen = rulesets.select(EN16931, document_type=DocumentType.CREDIT_NOTE, at=AFTER)
    assert (cen.name, cen.version) == ("en16931", "1.3.16")
    assert [a.layer for a in cen.artefacts] == ["xsd", "en16931"]
    assert cen.artefacts[0].path == "xsd/maindoc/UBL-CreditNote-2.1.xsd"


@pytest.mark.parametrize(
    ("document_type", "cid", "rules", "message"),
    [
        ("Order", "urn:fdc:peppol.eu:poacc:trns:order_change:3", "auto", "known: urn:fdc:peppol.eu:poacc:trns:order:3"),
        ("Order", None, "auto", "Order with no CustomizationID"),
        ("ApplicationResponse", "urn:fdc:peppol.eu:poacc:trns:order_response:3", "auto", "trns:mlr:3"),
        ("Order", "urn:fdc:peppol.eu:poacc:trns:order:3", "peppol-bis3", "is for Invoice and CreditNote, not Order"),
    ],
)
def test_a_transaction_the_engine_has_no_rules_for_is_unsupported(
    document_type: str, cid: str | None, rules: str, message: str
) -> None:
    with pytest.raises(UnsupportedDocumentError, match=message):
        rulesets.select(cid, document_type=document_type, at=AFTER, rules=rules)


def test_an_extension_of_a_transaction_id_is_that_transaction() -> None:
    cid = "urn:fdc:peppol.eu:poacc:trns:order:3#conformant#urn:example:national"
    assert rulesets.select(cid, document_type="Order", at=AFTER).name == "peppol-order"
    with pytest.raises(UnsupportedDocumentError):
        rulesets.select("urn:fdc:peppol.eu:poacc:trns:order:30", document_type="Order", at=AFTER)


def test_every_selected_file_is_in_the_manifest() -> None:
    manifest = artefacts.load_manifest()
    for cid in (PEPPOL_BIS3, EN16931):
        for document_type in DocumentType:
            ruleset = rulesets.select(cid, at=AFTER)
            assert manifest.get(ruleset.xsd_set_id).file(rulesets.xsd_relpath(document_type)) is not None
            for stylesheet in ruleset.stylesheets:
                assert manifest.get(stylesheet.set_id).file(stylesheet.relpath) is not None


def test_stylesheet_path_resolves_through_artefacts(tmp_path: Path) -> None:
    stylesheet = rulesets.select(PEPPOL_BIS3, at=AFTER).stylesheets[1]
    with pytest.raises(ArtefactMissingError, match="einvoice rules install"):
        stylesheet.resolve(Settings(rules_dir=tmp_path))


# --- changeover between two Peppol releases --------------------------------------------------------


def _manifest_with_next_release(until_old: str | None, from_new: str) -> artefacts.Manifest:
    raw: dict[str, Any] = json.loads(artefacts.MANIFEST_PATH.read_text(encoding="utf-8"))
    old = next(s for s in raw["sets"] if s["id"] == "peppol-bis3-2026.5")
    old["in_force_until"] = until_old
    new = json.loads(json.dumps(old))
    new.update(id="peppol-bis3-2026.11", version="2026.11", in_force_from=from_new, in_force_until=None)
    raw["sets"].append(new)
    return artefacts.parse_manifest(raw)


def test_during_a_changeover_the_newest_release_in_force_is_chosen() -> None:
    manifest = _manifest_with_next_release(None, "2027-02-22")
    assert rulesets.select(PEPPOL_BIS3, at=date(2027, 2, 21), manifest=manifest).set_ids[1] == "peppol-bis3-2026.5"
    assert rulesets.select(PEPPOL_BIS3, at=date(2027, 2, 22), manifest=manifest).set_ids[1] == "peppol-bis3-2026.11"


def test_a_phased_out_release_is_not_chosen() -> None:
    manifest = _manifest_with_next_release("2027-03-31", "2027-02-22")
    assert rulesets.select(PEPPOL_BIS3, at=date(2027, 3, 15), manifest=manifest).set_ids[1] == "peppol-bis3-2026.11"
    assert rulesets.select(PEPPOL_BIS3, at=date(2027, 4, 1), manifest=manifest).set_ids[1] == "peppol-bis3-2026.11"


def test_a_gap_between_releases_is_an_error() -> None:
    manifest = _manifest_with_next_release("2027-01-31", "2027-02-22")
    with pytest.raises(RuleSetError, match="2027-02-10"):
        rulesets.select(PEPPOL_BIS3, at=date(2027, 2, 10), manifest=manifest)


# --- overrides -----------------------------------------------------------------------------------

INSTITUTION = "0192:987654321"


def _finding(
    rule: str = "PEPPOL-EN16931-R008", severity: Severity = Severity.WARNING, layer: Layer = Layer.PEPPOL
) -> Finding:
    return Finding(rule=rule, severity=severity, layer=layer, message="m", location="/Invoice")


def _parse(*items: dict[str, Any]) -> tuple[overrides.Override, ...]:
    return overrides.parse_overrides(list(items))


def test_override_raises_severity_for_one_institution() -> None:
    table = _parse(
        {"rule": "PEPPOL-EN16931-R008", "severity": "fatal", "institution": INSTITUTION, "reason": "ERP needs it"}
    )
    [changed] = overrides.apply_overrides([_finding()], institution=INSTITUTION, overrides=table)
    assert changed.severity is Severity.FATAL
    assert changed.override == f"severity warning\u2192fatal by override for {INSTITUTION}: ERP needs it"
    assert replace(changed, severity=Severity.WARNING, override=None) == _finding()
    [untouched] = overrides.apply_overrides([_finding()], institution="0192:111111111", overrides=table)
    assert untouched == _finding()


def test_wildcard_override_applies_to_everyone_and_specific_wins() -> None:
    table = _parse(
        {"rule": "BR-CL-10", "severity": "warning", "institution": "*", "reason": "code list lag"},
        {"rule": "BR-CL-10", "severity": "information", "institution": INSTITUTION, "reason": "agreed"},
    )
    fatal = _finding("BR-CL-10", Severity.FATAL, Layer.EN16931)
    [other] = overrides.apply_overrides([fatal], institution="0192:1", overrides=table)
    assert other.severity is Severity.WARNING
    assert other.override == "severity fatal\u2192warning by override for every institution: code list lag"
    [mine] = overrides.apply_overrides([fatal], institution=INSTITUTION, overrides=table)
    assert mine.severity is Severity.INFORMATION
    [nobody] = overrides.apply_overrides([fatal], institution=None, overrides=table)
    assert nobody.severity is Severity.WARNING


def test_override_respects_its_dates() -> None:
    table = _parse(
        {"rule": "R1", "severity": "fatal", "reason": "from March", "from": "2027-03-01", "until": "2027-03-31"}
    )
    finding = _finding("R1")
    assert overrides.apply_overrides([finding], at=date(2027, 2, 28), overrides=table) == [finding]
    assert overrides.apply_overrides([finding], at=date(2027, 3, 1), overrides=table)[0].is_fatal
    assert overrides.apply_overrides([finding], at=datetime(2027, 3, 31, 23, 0, tzinfo=UTC), overrides=table)[
        0
    ].is_fatal
    assert overrides.apply_overrides([finding], at=date(2027, 4, 1), overrides=table) == [finding]


def test_same_severity_is_not_marked_as_overridden() -> None:
    table = _parse({"rule": "R1", "severity": "warning", "reason": "same"})
    assert overrides.apply_overrides([_finding("R1")], overrides=table) == [_finding("R1")]


def test_intake_and_engine_findings_are_never_overridden() -> None:
    table = _parse(
        {"rule": "XML-SAFETY", "severity": "information", "reason": "no"},
        {"rule": "ENGINE", "severity": "information", "reason": "no"},
    )
    findings = [_finding("XML-SAFETY", Severity.FATAL, Layer.INTAKE), _finding("ENGINE", Severity.FATAL, Layer.ENGINE)]
    assert overrides.apply_overrides(findings, overrides=table) == findings


def test_no_overrides_configured_changes_nothing(tmp_path: Path) -> None:
    findings = [_finding()]
    assert overrides.apply_overrides(findings, settings=Settings(rule_overrides_file=None)) == findings
    assert rulesets.apply_overrides is overrides.apply_overrides


def test_overrides_file_is_read_and_reloaded_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"overrides": [{"rule": "R1", "severity": "fatal", "reason": "a"}]}), encoding="utf-8")
    settings = Settings(rule_overrides_file=path)
    assert overrides.apply_overrides([_finding("R1")], settings=settings)[0].is_fatal
    path.write_text(json.dumps([{"rule": "R1", "severity": "information", "reason": "b"}]), encoding="utf-8")
    import os

    os.utime(path, (1, 1))  # a different mtime even on coarse file systems
    [changed] = overrides.apply_overrides([_finding("R1")], settings=settings)
    assert changed.severity is Severity.INFORMATION
    assert changed.override
    assert changed.override.endswith(": b")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"rule": "R1"}, "expected a list"),
        ([{"rule": "R1", "severity": "fatal"}], "needs a 'rule' and a 'reason'"),
        ([{"rule": "R1", "severity": "error", "reason": "x"}], "severity must be fatal, warning or information"),
        ([{"rule": "R1", "severity": "fatal", "reason": "x", "from": "tomorrow"}], "not an ISO date"),
        ([{"rule": "R1", "severity": "fatal", "reason": "x", "from": "2027-02-01", "until": "2027-01-01"}], "before"),
        ([{"rule": "R1", "severity": "fatal", "reason": "x", "institutions": "*"}], "unknown keys"),
        (["R1"], "not an object"),
    ],
)
def test_malformed_overrides_are_configuration_errors(items: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        overrides.parse_overrides(items)


def test_missing_overrides_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="rule overrides file not found"):
        overrides.apply_overrides([_finding()], settings=Settings(rule_overrides_file=tmp_path / "nope.json"))


def test_overrides_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env-overrides.json"
    path.write_text(json.dumps([{"rule": "R9", "severity": "fatal", "reason": "env"}]), encoding="utf-8")
    monkeypatch.setenv("EINVOICE_RULE_OVERRIDES_FILE", str(path))
    assert overrides.apply_overrides([_finding("R9")])[0].is_fatal
    monkeypatch.delenv("EINVOICE_RULE_OVERRIDES_FILE")
    assert overrides.apply_overrides([_finding("R9")]) == [_finding("R9")]
