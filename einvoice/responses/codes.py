"""The code lists of the Peppol Invoice Response (BIS 63, T111) and Message Level Response (BIS 36,
T71), and the order in which an invoice's status may move. Pure: no I/O.

- ``RESPONSE_CODES``: the UNCL 4343 subset of the Invoice Response, in the order a status moves;
- ``STATUS_REASONS``: ``OPStatusReason`` (what is wrong), ``STATUS_ACTIONS``: ``OPStatusAction``
  (what the supplier should do);
- ``MLR_REASONS``: the Message Level Response's status reasons (``BV`` business rule, ``SV``
  syntax, ``BW`` a warning).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from einvoice.domain.review import STATUS_REASONS as _REVIEW_REASONS
from einvoice.errors import ResponseError

#: Invoice status codes (UNCL 4343 subset), in the order a status moves.
RESPONSE_CODES: Mapping[str, str] = {
    "AB": "Message acknowledgement",
    "IP": "In process",
    "UQ": "Under query",
    "CA": "Conditionally accepted",
    "RE": "Rejected",
    "AP": "Accepted",
    "PD": "Fully paid",
}
_RANK = {code: rank for rank, code in enumerate(RESPONSE_CODES)}

#: OPStatusReason: the reason codes a person may give (``domain.review``) and ``PPD``, partially
#: paid, which goes only with ``PD``.
STATUS_REASONS: Mapping[str, str] = {**_REVIEW_REASONS, "PPD": "Partially paid"}

#: OPStatusAction: what the buyer asks the supplier to do.
STATUS_ACTIONS: Mapping[str, str] = {
    "NOA": "No action required",
    "PIN": "Provide information",
    "NIN": "Issue new invoice",
    "CNF": "Credit fully",
    "CNP": "Credit partially",
    "CNA": "Credit the amount",
    "OTH": "Other",
}

#: Codes that must carry a clarification (a reason or an action): PEPPOL-T111-R001.
NEEDS_CLARIFICATION = frozenset({"UQ", "CA", "RE"})
#: Codes after which nothing may follow.
FINAL_CODES = frozenset({"RE", "PD"})

#: Message Level Response line status reasons.
MLR_REASONS: Mapping[str, str] = {"BV": "Business rule violation, fatal", "SV": "Syntax violation", "BW": "Warning"}


def check_transition(previous: Iterable[str], code: str) -> None:
    """Raise ResponseError unless an Invoice Response with ``code`` may follow the ``previous``
    ones: a status never moves backwards along ``AB → IP → UQ → CA → RE → AP → PD``, nothing
    follows ``RE`` or ``PD``, ``AP`` is followed only by ``PD``."""
    if code not in RESPONSE_CODES:
        raise ResponseError(f"{code!r} is not an Invoice Response status code ({', '.join(RESPONSE_CODES)})")
    before = [c for c in previous if c in _RANK]
    if not before:
        return
    last = max(before, key=_RANK.__getitem__)
    if last in FINAL_CODES:
        raise ResponseError(f"nothing follows {last}: the invoice's status is final")
    if last == "AP" and code != "PD":
        raise ResponseError(f"only PD may follow AP, not {code}")
    if _RANK[code] < _RANK[last]:
        raise ResponseError(f"{code} would move the status back from {last}")


def may_follow(previous: Iterable[str], code: str) -> bool:
    """Whether ``check_transition`` lets ``code`` follow ``previous``."""
    try:
        check_transition(previous, code)
    except ResponseError:
        return False
    return True


def check_clarification(code: str, reason: str | None, action: str | None, note: str | None) -> None:
    """Raise ResponseError for a clarification the status cannot carry: ``UQ``, ``CA`` and ``RE``
    carry a reason or an action; ``PPD`` only with ``PD`` and with words (PEPPOL-T111-R004, and
    R005, which the official stylesheet never fires, is checked here); ``OTH`` with words."""
    if reason is not None and reason not in STATUS_REASONS:
        raise ResponseError(f"{reason!r} is not an OPStatusReason code")
    if action is not None and action not in STATUS_ACTIONS:
        raise ResponseError(f"{action!r} is not an OPStatusAction code")
    if code in NEEDS_CLARIFICATION and reason is None and action is None:
        raise ResponseError(f"{code} needs a status reason or action code")
    if reason == "PPD" and code != "PD":
        raise ResponseError("reason PPD (partially paid) goes only with PD")
    if reason in ("PPD", "OTH") and not (note or "").strip():
        raise ResponseError(f"reason {reason} needs words for the supplier")
