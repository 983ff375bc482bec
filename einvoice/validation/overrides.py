"""Per-rule severity overrides: a buyer institution may treat an official rule more or less strictly.

The file named by ``Settings.rule_overrides_file`` is JSON, a list (or ``{"overrides": [...]}``)
of objects::

    {"rule": "PEPPOL-EN16931-R008", "severity": "fatal", "institution": "0192:987654321",
     "reason": "the ministry's ERP cannot take empty elements", "from": "2026-01-01", "until": null}

``institution`` is the buyer's Peppol endpoint (scheme:id) or ``"*"`` for every institution;
``from``/``until`` (ISO dates, inclusive, optional) bound the receipt dates it applies to.
When several match a finding, one for the institution beats ``"*"``, and among equals the later
entry in the file wins. Findings of the intake and engine layers are never overridden: a document
that could not be read safely, or a layer that did not run, is not a matter of policy.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.errors import ConfigurationError
from einvoice.settings import Settings

__all__ = ["ANY_INSTITUTION", "Override", "apply_overrides", "load_overrides", "parse_overrides"]

ANY_INSTITUTION = "*"
_NOT_OVERRIDABLE = frozenset({Layer.INTAKE, Layer.ENGINE})


@dataclass(frozen=True)
class Override:
    rule: str
    severity: Severity
    reason: str
    institution: str = ANY_INSTITUTION
    valid_from: date | None = None
    valid_until: date | None = None

    def applies(self, rule: str, institution: str | None, day: date) -> bool:
        if rule != self.rule:
            return False
        if self.institution != ANY_INSTITUTION and self.institution != institution:
            return False
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


def _date(value: Any, key: str, index: int) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"rule override #{index}: '{key}' is not an ISO date: {value!r}") from None


def parse_overrides(raw: Any, origin: str = "rule overrides") -> tuple[Override, ...]:
    """Build overrides from their JSON form; raise ``ConfigurationError`` naming the bad entry."""
    items = raw.get("overrides") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ConfigurationError(f"{origin}: expected a list of overrides")
    result = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ConfigurationError(f"{origin}: override #{index} is not an object")
        unknown = set(item) - {"rule", "severity", "institution", "reason", "from", "until"}
        if unknown:
            raise ConfigurationError(f"{origin}: override #{index} has unknown keys {sorted(unknown)}")
        rule = str(item.get("rule") or "").strip()
        reason = str(item.get("reason") or "").strip()
        if not rule or not reason:
            raise ConfigurationError(f"{origin}: override #{index} needs a 'rule' and a 'reason'")
        try:
            severity = Severity(str(item.get("severity", "")).strip().lower())
        except ValueError:
            raise ConfigurationError(
                f"{origin}: override #{index} ({rule}): severity must be fatal, warning or information"
            ) from None
        valid_from = _date(item.get("from"), "from", index)
        valid_until = _date(item.get("until"), "until", index)
        if valid_from and valid_until and valid_until < valid_from:
            raise ConfigurationError(f"{origin}: override #{index} ({rule}): 'until' is before 'from'")
        result.append(
            Override(
                rule=rule,
                severity=severity,
                reason=reason,
                institution=str(item.get("institution") or ANY_INSTITUTION).strip(),
                valid_from=valid_from,
                valid_until=valid_until,
            )
        )
    return tuple(result)


_cache: dict[Path, tuple[float, tuple[Override, ...]]] = {}
_cache_lock = threading.Lock()


def load_overrides(source: Path | None = None, settings: Settings | None = None) -> tuple[Override, ...]:
    """The overrides in ``source`` (default ``Settings.rule_overrides_file``; none if unset).

    Cached by modification time, so an edited file is picked up without a restart.
    Raises ``ConfigurationError`` if the file is missing or malformed.
    """
    if source is None:
        # Without settings, the environment's: building them costs a few milliseconds, which the
        # validator (it passes its own) never pays per document.
        source = (settings if settings is not None else Settings()).rule_overrides_file
        if source is None:
            return ()
    source = source.expanduser().resolve()
    try:
        mtime = source.stat().st_mtime
    except OSError:
        raise ConfigurationError(f"rule overrides file not found: {source}") from None
    with _cache_lock:
        cached = _cache.get(source)
        if cached and cached[0] == mtime:
            return cached[1]
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"rule overrides file unreadable: {source}: {exc}") from None
    overrides = parse_overrides(raw, str(source))
    with _cache_lock:
        _cache[source] = (mtime, overrides)
    return overrides


def utc_day(at: datetime | date | None) -> date:
    """The calendar day (UTC) of a receipt time; today when ``at`` is None, naive datetimes taken as UTC."""
    if at is None:
        return datetime.now(UTC).date()
    if isinstance(at, datetime):
        return (at.astimezone(UTC) if at.tzinfo else at).date()
    return at


def _best(overrides: Sequence[Override], rule: str, institution: str | None, day: date) -> Override | None:
    best: Override | None = None
    for override in overrides:  # later entries win among equals
        if not override.applies(rule, institution, day):
            continue
        if best is None or (override.institution != ANY_INSTITUTION or best.institution == ANY_INSTITUTION):
            best = override
    return best


def apply_overrides(
    findings: Iterable[Finding],
    institution: str | None = None,
    at: datetime | date | None = None,
    *,
    overrides: Sequence[Override] | None = None,
    settings: Settings | None = None,
) -> list[Finding]:
    """Return the findings with overridden severities; ``Finding.override`` says what changed and why.

    ``overrides`` default: ``load_overrides(settings=settings)``. ``institution`` is the buyer's
    endpoint (scheme:id); ``at`` the receipt time (default now). Raises ``ConfigurationError`` if
    the overrides file is missing or malformed.
    """
    if overrides is None:
        overrides = load_overrides(settings=settings)
    findings = list(findings)
    if not overrides:
        return findings
    day = utc_day(at)
    result = []
    for finding in findings:
        override = None if finding.layer in _NOT_OVERRIDABLE else _best(overrides, finding.rule, institution, day)
        if override is None or override.severity is finding.severity:
            result.append(finding)
            continue
        scope = "every institution" if override.institution == ANY_INSTITUTION else override.institution
        change = f"{finding.severity.value}\u2192{override.severity.value}"
        text = f"severity {change} by override for {scope}: {override.reason}"
        result.append(replace(finding, severity=override.severity, override=text))
    return result
