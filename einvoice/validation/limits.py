"""Bounds on what one document may cost: findings kept per rule, and the finding that says a
validation was stopped at its time or memory limit.

A report never grows without bound: of each rule, the first ``limit`` findings are kept and the
rest are counted in one information finding (rule ``FINDINGS-CAPPED``). A document of thousands of
failing lines otherwise made a report of tens of thousands of findings (11.8 MB of SVRL for 3,000
empty lines), stored and served whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from einvoice.domain.findings import Finding, Layer, Severity

T = TypeVar("T")

RULE_CAPPED = "FINDINGS-CAPPED"
RULE_LIMIT = "VALIDATION-LIMIT"


def cap_per_rule(items: Iterable[T], rule: Callable[[T], str], limit: int) -> tuple[list[T], dict[str, int]]:
    """The first ``limit`` items of each rule, in their order, and how many of each rule were left out."""
    seen: dict[str, int] = {}
    kept: list[T] = []
    omitted: dict[str, int] = {}
    for item in items:
        key = rule(item)
        count = seen.get(key, 0)
        if count < limit:
            kept.append(item)
            seen[key] = count + 1
        else:
            omitted[key] = omitted.get(key, 0) + 1
    return kept, omitted


def capped_findings(omitted: Mapping[str, int], layer: Layer, limit: int) -> list[Finding]:
    """One information finding per rule with findings left out, saying how many."""
    return [
        Finding(
            rule=RULE_CAPPED,
            severity=Severity.INFORMATION,
            layer=layer,
            message=f"{rule}: {count:,} more findings not listed (a report keeps the first {limit:,} of each rule)",
            value=rule,
        )
        for rule, count in omitted.items()
    ]


def limit_finding(what: str) -> Finding:
    """The fatal finding of a validation stopped at a limit: ``what`` says which and how far it went."""
    return Finding(
        rule=RULE_LIMIT,
        severity=Severity.FATAL,
        layer=Layer.ENGINE,
        message=f"validation stopped: {what}; the findings up to then are listed",
    )
