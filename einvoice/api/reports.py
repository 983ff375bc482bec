"""Validation reports of stored documents, built from the findings the pipeline recorded."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from einvoice.domain.findings import Severity

if TYPE_CHECKING:
    from einvoice.services.queries import DocumentView

# States in which validation has not produced its findings yet.
PENDING_STATES = frozenset({"received", "validating"})


def verdict_of(view: DocumentView) -> str:
    """Return ``invalid`` when a finding is fatal, ``pending`` before validation, else ``valid``."""
    if any(f.severity is Severity.FATAL for f in view.findings):
        return "invalid"
    if str(view.status) in PENDING_STATES:
        return "pending"
    return "valid"


# Intake's stored document types, as validation reports name them (the UBL root element).
_VALIDATION_TYPES = {"invoice": "Invoice", "credit_note": "CreditNote"}


def rule_set_of(view: DocumentView) -> dict[str, Any]:
    """What validation ran, as the validation report names it (``document_type``,
    ``customization_id``, ``rules``, ``rules_version``, ``artefacts``). Before validation, or for a
    document refused at intake, all but the document type are null."""
    ran = view.ruleset or {}
    return {
        "document_type": ran.get("document_type", _VALIDATION_TYPES.get(view.document_type or "")),
        "customization_id": ran.get("customization_id"),
        "rules": ran.get("rules"),
        "rules_version": ran.get("rules_version"),
        "artefacts": list(ran.get("artefacts") or ()),
    }


def report_of(view: DocumentView) -> dict[str, Any]:
    """Return the JSON report of a stored document."""
    counts = {s.value: 0 for s in Severity}
    for finding in view.findings:
        counts[finding.severity.value] += 1
    return {
        "document_id": str(view.id),
        "status": str(view.status),
        "verdict": verdict_of(view),
        **rule_set_of(view),
        "findings": [f.to_dict() for f in view.findings],
        "counts": counts,
    }


def render_report_html(view: DocumentView) -> str:
    """Return the HTML report of a stored document (the validation report page, or a 'pending' page)."""
    verdict = verdict_of(view)
    if verdict == "pending":
        return (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>Document {html.escape(str(view.id))}</title>"
            f"<h1>Document {html.escape(str(view.id))}</h1>"
            f"<p>Status: <strong>{html.escape(str(view.status))}</strong>. "
            "Validation has not finished yet; reload this page in a moment.</p></html>"
        )
    from einvoice.validation.report import ArtefactRef, ValidationReport

    ran = rule_set_of(view)
    report = ValidationReport(
        file=f"document {view.id}" + (f" ({view.number})" if view.number else ""),
        document_type=ran["document_type"],
        customization_id=ran["customization_id"],
        rules=ran["rules"],
        verdict="invalid" if verdict == "invalid" else "valid",
        findings=tuple(view.findings),
        rules_version=ran["rules_version"],
        artefacts=tuple(ArtefactRef.from_dict(a) for a in ran["artefacts"]),
    )
    return report.to_html()
