"""Findings: what a validation layer or a business check says about a document."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Schematron flags, normalised. A document is valid when no finding is fatal."""

    FATAL = "fatal"
    WARNING = "warning"
    INFORMATION = "information"

    @classmethod
    def from_flag(cls, flag: str | None) -> Severity:
        """Map an SVRL ``flag`` (fatal, error, warning, information, info) to a severity.

        Unknown or missing flags count as fatal: a rule that fires without saying how bad it is
        must not let a document through.
        """
        value = (flag or "").strip().lower()
        if value in ("warning", "warn"):
            return cls.WARNING
        if value in ("information", "info"):
            return cls.INFORMATION
        return cls.FATAL


class Layer(StrEnum):
    INTAKE = "intake"  # well-formedness, safety limits, document type
    XSD = "xsd"
    EN16931 = "en16931"
    PEPPOL = "peppol"
    BUSINESS = "business"  # matching, duplicates, party checks
    ENGINE = "engine"  # the engine could not run a layer


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a layer found. ``rule`` is the official rule id (BR-01, PEPPOL-EN16931-R001, …)."""

    rule: str
    severity: Severity
    layer: Layer
    message: str
    location: str | None = None  # XPath
    line: int | None = None
    test: str | None = None  # the rule's test expression, where known
    value: str | None = None  # the offending value, where known
    override: str | None = None  # why the severity differs from the official one, if it does

    @property
    def is_fatal(self) -> bool:
        return self.severity is Severity.FATAL

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "layer": self.layer.value,
            "location": self.location,
            "line": self.line,
            "message": self.message,
            "test": self.test,
            "value": self.value,
            "override": self.override,
        }


# --- rule ids of the engine's own findings ---------------------------------------------------------
# The official rules have their own ids (BR-01, PEPPOL-EN16931-R001, …). These name what the engine
# finds itself, one id per problem, the same from the CLI, POST /v1/validate, POST /v1/documents
# and the stored reports.

RULE_NOT_WELL_FORMED = "XML-WELL-FORMED"
RULE_UNSAFE = "XML-SAFETY"  # DOCTYPE, entities, XInclude, nesting too deep
RULE_TOO_LARGE = "XML-SIZE"
RULE_UNSUPPORTED = "DOCUMENT-TYPE"  # well-formed, but no rule set of the engine covers it
RULE_SELECTION = "RULE-SELECTION"
RULE_ENGINE = "ENGINE"
RULE_UNKNOWN_BUYER = "INTAKE-UNKNOWN-BUYER"
RULE_SELLER_MISMATCH = "INTAKE-SELLER-MISMATCH"

#: Ids the intake's problem details used before the engine's ids became the only ones (release
#: of 2026-12): the problem body names them as ``former_rule`` for one more release.
FORMER_RULES = {
    RULE_NOT_WELL_FORMED: "INTAKE-NOT-WELL-FORMED",
    RULE_UNSAFE: "INTAKE-UNSAFE-XML",
    RULE_TOO_LARGE: "INTAKE-TOO-LARGE",
    RULE_UNSUPPORTED: "INTAKE-UNSUPPORTED-DOCUMENT",
}
