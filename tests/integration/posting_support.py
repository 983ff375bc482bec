"""What the posting tests share: a validator that finds every document valid (posting's tests are
not validation's), and a chart of accounts written as the CSV that ``einvoice accounts import`` and
``PUT /v1/institutions/{endpoint}/accounts`` take."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from einvoice.domain.findings import Finding


@dataclass
class Valid:
    verdict: str = "valid"
    findings: tuple[Finding, ...] = ()

    def rule_set(self) -> dict[str, object]:
        return {"rules": "peppol-bis3"}


def valid(raw: bytes, **_: object) -> Valid:
    """The validator port: every document valid, with no findings."""
    return Valid()


def chart_csv(accounts: Iterable[tuple[str, str, str]]) -> str:
    """The chart of ``accounts`` (number, name, kind) as CSV with its header line."""
    return "number,name,kind\n" + "".join(f"{number},{name},{kind}\n" for number, name, kind in accounts)
