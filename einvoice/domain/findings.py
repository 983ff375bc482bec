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
