"""Validation reports: the result object and its JSON, text and HTML forms.

The JSON shape is documented in ``docs/validation.md`` and is stable: keys are only ever added.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from einvoice.domain.findings import Finding, Severity
from einvoice.parsers.namespaces import PREFIXES

Verdict = Literal["valid", "invalid", "unsupported", "error"]

REPORT_FORMAT_VERSION = 1
VALUE_MAX_CHARS = 200  # an offending value longer than this is cut, ending in "…"

_SEVERITY_ORDER = {Severity.FATAL: 0, Severity.WARNING: 1, Severity.INFORMATION: 2}


@dataclass(frozen=True, slots=True)
class ArtefactRef:
    """One official file a verdict rests on, as the manifest records it."""

    layer: str  # xsd, en16931, peppol: the layer that ran it
    set_id: str  # the artefact set: "peppol-bis3-2026.5"
    version: str  # the set's version: "2026.5"
    path: str  # inside the set: "PEPPOL-EN16931-UBL.xslt"
    sha256: str

    @property
    def id(self) -> str:
        """``<set id>/<path>``, the artefact's identifier (its path under the rules directory)."""
        return f"{self.set_id}/{self.path}"

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "layer": self.layer,
            "set": self.set_id,
            "version": self.version,
            "path": self.path,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtefactRef:
        return cls(str(data["layer"]), str(data["set"]), str(data["version"]), str(data["path"]), str(data["sha256"]))


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What the engine says about one document.

    ``verdict``: ``valid`` (no fatal finding), ``invalid`` (at least one fatal finding),
    ``unsupported`` (well-formed XML of a type the engine does not validate) or ``error`` (a layer
    could not run; the document is never reported valid then, and the cause is a finding of layer
    ``engine``). ``valid`` is true only for the verdict ``valid``.
    """

    file: str | None
    document_type: str | None
    customization_id: str | None
    rules: str | None
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    svrl: dict[str, str] | None = None  # layer -> raw SVRL, when asked for
    timings: dict[str, float] = field(default_factory=dict)  # layer -> seconds
    rules_version: str | None = None  # the rule set's release: "2026.5" (with rules "peppol-bis3")
    artefacts: tuple[ArtefactRef, ...] = ()  # the files the layers ran, XSD first

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    @property
    def rules_label(self) -> str | None:
        """The rule set and its version as people read them: ``peppol-bis3 2026.5``."""
        if self.rules is None:
            return None
        return f"{self.rules} {self.rules_version}" if self.rules_version else self.rules

    def rule_set(self) -> dict[str, Any]:
        """What a stored report keeps besides the findings: the document type and CustomizationID
        as validated, the rule set, its version and artefacts (the keys of ``to_dict``)."""
        return {
            "document_type": self.document_type,
            "customization_id": self.customization_id,
            "rules": self.rules,
            "rules_version": self.rules_version,
            "artefacts": [a.to_dict() for a in self.artefacts],
        }

    @property
    def fatal(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.FATAL)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity (every severity present, zero when none)."""
        counts = {s.value: 0 for s in Severity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def to_dict(self, *, include_svrl: bool = False) -> dict[str, Any]:
        """The stable JSON object for this report (see docs/validation.md)."""
        data: dict[str, Any] = {
            "file": self.file,
            "document_type": self.document_type,
            "customization_id": self.customization_id,
            "rules": self.rules,
            "rules_version": self.rules_version,
            "artefacts": [a.to_dict() for a in self.artefacts],
            "valid": self.valid,
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
        }
        if include_svrl and self.svrl is not None:
            data["svrl"] = dict(self.svrl)
        return data

    def to_json(self, *, include_svrl: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(include_svrl=include_svrl), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        return reports_to_text([self])

    def to_html(self) -> str:
        return reports_to_html([self])


def offending_value(text: str | None) -> str | None:
    """A finding's ``value``: the text stripped, None when empty, cut to ``VALUE_MAX_CHARS``."""
    value = text.strip() if text is not None else None
    if not value:
        return None
    return value if len(value) <= VALUE_MAX_CHARS else value[: VALUE_MAX_CHARS - 1] + "…"


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings ordered by severity (fatal first), keeping the engine's order within a severity."""
    return sorted(findings, key=lambda f: _SEVERITY_ORDER[f.severity])


def reports_to_json(reports: Sequence[ValidationReport], *, include_svrl: bool = False) -> str:
    """One JSON array of report objects, in the order given."""
    return json.dumps([r.to_dict(include_svrl=include_svrl) for r in reports], indent=2, ensure_ascii=False)


def reports_to_text(reports: Sequence[ValidationReport]) -> str:
    """A plain text summary: one headline per document, then its findings, then totals."""
    lines: list[str] = []
    for report in reports:
        counts = report.counts()
        headline = f"{report.file or '<bytes>'}: {report.verdict.upper()}"
        details = [x for x in (report.document_type, report.rules_label) if x]
        if details:
            headline += f" ({', '.join(details)})"
        headline += f" - {counts['fatal']} fatal, {counts['warning']} warning, {counts['information']} information"
        lines.append(headline)
        for f in sorted_findings(report.findings):
            where = f" line {f.line}" if f.line else ""
            override = f" [override: {f.override}]" if f.override else ""
            lines.append(f"  {f.severity.value:<11} {f.layer.value:<7} {f.rule}{where}: {f.message}{override}")
            if f.value:
                lines.append(f"  {'':<11} {'':<7} value: {f.value}")
    total = len(reports)
    by_verdict: dict[str, int] = {}
    for report in reports:
        by_verdict[report.verdict] = by_verdict.get(report.verdict, 0) + 1
    if total > 1:
        summary = ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items()))
        lines.append(f"{total} documents: {summary}")
    return "\n".join(lines) + "\n"


# Prefixes people read in UBL paths; a namespace not listed keeps its local name only.
_UBL_PREFIXES = {PREFIXES[p]: f"{p}:" for p in ("cbc", "cac", "ext")}
_SVRL_STEP = re.compile(r"\*:([\w.\-]+)\[namespace-uri\(\)='([^']*)'\](?:\[(\d+)\])?")


def short_location(location: str | None) -> str | None:
    """The SVRL location as people read it: ``/Invoice/cac:TaxTotal/cbc:TaxAmount[2]``.

    ``/*:TaxTotal[namespace-uri()='…CommonAggregateComponents-2'][1]`` becomes ``cac:TaxTotal``
    (a position is kept only when it is not 1). Locations in another form are returned unchanged.
    """
    if not location or "namespace-uri()" not in location:
        return location

    def step(match: re.Match[str]) -> str:
        name, namespace, position = match.groups()
        index = f"[{position}]" if position and position != "1" else ""
        return f"{_UBL_PREFIXES.get(namespace, '')}{name}{index}"

    return _SVRL_STEP.sub(step, location)


def reports_to_html(reports: Sequence[ValidationReport]) -> str:
    """A standalone HTML page: per document, findings grouped by severity with rule text and location."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("einvoice.validation", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short_location"] = short_location
    template = env.get_template("report.html")
    documents = []
    for report in reports:
        groups = []
        for severity in Severity:
            items = [f for f in report.findings if f.severity is severity]
            if items:
                groups.append({"severity": severity.value, "findings": items})
        documents.append({"report": report, "groups": groups, "counts": report.counts()})
    return template.render(documents=documents)
