"""Findings kept per rule, and the finding of a validation stopped at a limit."""

from __future__ import annotations

from einvoice.domain.findings import Layer, Severity
from einvoice.validation.limits import RULE_CAPPED, RULE_LIMIT, cap_per_rule, capped_findings, limit_finding


def test_cap_per_rule_keeps_the_first_of_each_rule_in_order() -> None:
    items = ["a1", "b1", "a2", "a3", "b2", "a4", "c1"]
    kept, omitted = cap_per_rule(items, lambda item: item[0], 2)
    assert kept == ["a1", "b1", "a2", "b2", "c1"]
    assert omitted == {"a": 2}


def test_capped_findings_count_the_rest() -> None:
    (finding,) = capped_findings({"BR-21": 2900}, Layer.EN16931, 100)
    assert finding.rule == RULE_CAPPED
    assert finding.severity is Severity.INFORMATION
    assert finding.layer is Layer.EN16931
    assert finding.value == "BR-21"
    assert finding.message == "BR-21: 2,900 more findings not listed (a report keeps the first 100 of each rule)"


def test_limit_finding_is_fatal_and_says_what() -> None:
    finding = limit_finding("it took longer than the time limit of 60 s")
    assert finding.rule == RULE_LIMIT
    assert finding.is_fatal
    assert finding.layer is Layer.ENGINE
    assert "time limit of 60 s" in finding.message
