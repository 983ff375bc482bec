"""A person's review of a document: who may do what, the reasons a document waits for a person,
the decisions (approve, reject, query, re-match) and the approval rules (a person above one amount, two
different people above another).

Pure: no I/O. The services (``services.review``) read and write; the pages show what this decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from einvoice.domain.commitments import ReasonCode, WarningCode
from einvoice.domain.states import DocumentStatus

S = DocumentStatus


class Role(StrEnum):
    """What a user of the accountants' pages may do.

    - ``accountant``: works the queue; approves, rejects, queries (not over a variance);
    - ``approver``: all of that, and approves over a variance;
    - ``administrator``: all of that, and manages users and institutions' approval rules.
    """

    ACCOUNTANT = "accountant"
    APPROVER = "approver"
    ADMINISTRATOR = "administrator"

    @property
    def may_approve_variances(self) -> bool:
        return self is not Role.ACCOUNTANT


class Action(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    QUERY = "query"
    REMATCH = "rematch"  # to another commitment of the institution and supplier (matching's ``rematch``)


#: The states each decision may be taken from; anything else answers 409.
ACTION_FROM: Mapping[Action, frozenset[str]] = {
    Action.APPROVE: frozenset({S.EXCEPTION, S.MATCHED, S.UNDER_QUERY, S.AWAITING_SECOND_APPROVAL}),
    Action.REJECT: frozenset({S.EXCEPTION, S.MATCHED, S.UNDER_QUERY, S.AWAITING_SECOND_APPROVAL}),
    Action.QUERY: frozenset({S.EXCEPTION, S.MATCHED}),
    Action.REMATCH: frozenset({S.EXCEPTION, S.MATCHED}),
}

#: Status reason codes of the Peppol Invoice Response (OpenPeppol code list ``OPStatusReason``),
#: with the words the pages show. ``PPD`` (paid) belongs to the payment response, never a rejection.
STATUS_REASONS: Mapping[str, str] = {
    "NON": "No issue",
    "REF": "References incorrect",
    "LEG": "Legal information incorrect",
    "REC": "Receiver unknown",
    "QUA": "Item quality insufficient",
    "DEL": "Delivery issues",
    "PRI": "Prices incorrect",
    "QTY": "Quantity incorrect",
    "ITM": "Items incorrect",
    "PAY": "Payment information incorrect",
    "UNR": "Not recognised",
    "FIN": "Finance incorrect",
    "OTH": "Other",
}

#: Short labels of the reasons a document waits for a person, by code.
REASON_LABELS: Mapping[str, str] = {
    ReasonCode.NO_COMMITMENT: "no commitment found",
    ReasonCode.AMBIGUOUS_COMMITMENT: "several commitments fit",
    ReasonCode.SUPPLIER_MISMATCH: "supplier differs from the commitment's",
    ReasonCode.CURRENCY_MISMATCH: "currency differs from the commitment's",
    ReasonCode.OUTSIDE_VALIDITY: "outside the commitment's validity",
    ReasonCode.COMMITMENT_CLOSED: "commitment closed",
    ReasonCode.LINE_UNMATCHED: "a line matches no commitment line",
    ReasonCode.PRICE_VARIANCE: "price over tolerance",
    ReasonCode.QUANTITY_EXCEEDS_ORDERED: "more than ordered",
    ReasonCode.QUANTITY_EXCEEDS_RECEIVED: "more than received",
    ReasonCode.UNIT_MISMATCH: "unit of measure differs",
    ReasonCode.VAT_MISMATCH: "VAT differs from the commitment's",
    ReasonCode.AMOUNT_EXCEEDS_REMAINING: "more than the commitment has left",
    ReasonCode.DUPLICATE: "duplicate (same supplier, number and year)",
    ReasonCode.SUSPECTED_DUPLICATE: "suspected duplicate (same supplier and amount, a few days apart)",
    ReasonCode.CREDIT_NOTE_UNRESOLVED: "credit note without its invoice",
    ReasonCode.CREDIT_EXCEEDS_INVOICE: "credit note larger than its invoice",
    WarningCode.AMOUNT_ANOMALY: "unusual amount for this supplier",
    "APPROVAL_REQUIRED": "amount above the institution's limit for automatic approval",
    "SECOND_APPROVAL": "four eyes: a second approver is needed",
    "UNDER_QUERY": "waiting for the supplier's answer",
}

#: Reasons that make an approval one "over a variance": it needs the approver role and a comment.
VARIANCE_CODES = frozenset(
    {
        ReasonCode.PRICE_VARIANCE,
        ReasonCode.QUANTITY_EXCEEDS_ORDERED,
        ReasonCode.QUANTITY_EXCEEDS_RECEIVED,
        ReasonCode.UNIT_MISMATCH,
        ReasonCode.VAT_MISMATCH,
        ReasonCode.AMOUNT_EXCEEDS_REMAINING,
        ReasonCode.CREDIT_EXCEEDS_INVOICE,
    }
)
#: Reasons (and warnings) after which an approval needs a comment.
COMMENT_CODES = VARIANCE_CODES | {ReasonCode.DUPLICATE, ReasonCode.SUSPECTED_DUPLICATE, WarningCode.AMOUNT_ANOMALY}


def reason_label(code: str) -> str:
    return REASON_LABELS.get(code, code.replace("_", " ").lower())


def reason_codes(
    status: str, match_result: Mapping[str, Any] | None, suspected_duplicate_of: str | None = None
) -> tuple[str, ...]:
    """The codes of the reasons a document waits for a person, in the order found: those of the
    match result (``MatchResult.to_dict()``: ``reasons`` and ``warnings`` with a ``code``; the
    pass-through's plain reasons name none), a suspected duplicate, and the state's own."""
    codes: list[str] = []
    for key in ("reasons", "warnings"):
        for reason in (match_result or {}).get(key) or ():
            if isinstance(reason, Mapping) and reason.get("code"):
                codes.append(str(reason["code"]))
    if suspected_duplicate_of and ReasonCode.SUSPECTED_DUPLICATE not in codes:
        codes.append(ReasonCode.SUSPECTED_DUPLICATE)
    if status == S.MATCHED:
        codes.append("APPROVAL_REQUIRED")
    elif status == S.AWAITING_SECOND_APPROVAL:
        codes.append("SECOND_APPROVAL")
    elif status == S.UNDER_QUERY:
        codes.append("UNDER_QUERY")
    return tuple(dict.fromkeys(codes))


def reason_rows(match_result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The ``document_reasons`` rows of a match result, for the match stage's ``Outcome.rows``
    (written with ``match_result``, replacing the reasons of an earlier match): one per code of
    its reasons and warnings (``MatchResult.to_dict()``), and ``SUSPECTED_DUPLICATE`` for the
    pass-through's ``suspected_duplicate_of``."""
    codes = reason_codes(S.EXCEPTION, match_result, (match_result or {}).get("suspected_duplicate_of"))
    return [{"code": code[:40]} for code in codes]


def reason_words(match_result: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Every reason and warning of a match result in words (its ``message``, or the plain text the
    pass-through records)."""
    words: list[str] = []
    for key in ("reasons", "warnings"):
        for reason in (match_result or {}).get(key) or ():
            if isinstance(reason, Mapping):
                text = str(reason.get("message") or reason_label(str(reason.get("code", ""))))
                words.append(f"{reason_label(str(reason['code']))}: {text}" if reason.get("code") else text)
            else:
                words.append(str(reason))
    return tuple(words)


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """An institution's approval limits (``einvoice institutions set-approval``): a matched
    invoice above ``person_above`` waits for a person; an approval above ``two_people_above``
    needs two different people. None: no limit."""

    person_above: Decimal | None = None
    two_people_above: Decimal | None = None

    def needs_person(self, amount: Decimal | None) -> bool:
        return self.person_above is not None and amount is not None and amount > self.person_above

    def needs_two_people(self, amount: Decimal | None) -> bool:
        return self.two_people_above is not None and amount is not None and amount > self.two_people_above


@dataclass(frozen=True, slots=True)
class ApprovalCheck:
    """What approving asks of this person now: refused (with the words why), or allowed, and
    whether the approval completes (``final``) or waits for a second person."""

    refused: str | None
    final: bool = True


def check_approval(
    *,
    role: Role,
    username: str,
    codes: Sequence[str],
    comment: str | None,
    amount: Decimal | None,
    rule: ApprovalRule,
    first_approver: str | None,
) -> ApprovalCheck:
    """Whether ``username`` (with ``role``) may approve a document waiting for ``codes``, with
    ``comment``, for ``amount`` under ``rule``; ``first_approver``: who approved it first, when
    it waits for a second approval."""
    over_variance = any(code in VARIANCE_CODES for code in codes)
    if over_variance and not role.may_approve_variances:
        return ApprovalCheck("approving over a variance needs the approver role")
    if any(code in COMMENT_CODES for code in codes) and not (comment or "").strip():
        return ApprovalCheck("a comment is required to approve over a variance or a duplicate warning")
    if first_approver is not None:
        if first_approver == username:
            return ApprovalCheck(
                f"four eyes: {username} gave the first approval; the second must come from another person"
            )
        return ApprovalCheck(None, final=True)
    if rule.needs_two_people(amount):
        return ApprovalCheck(None, final=False)
    return ApprovalCheck(None)


# --- the queue ----------------------------------------------------------------------------------------

#: The reasons that are the state's own (``reason_codes``), found by the document's state.
STATE_REASONS: Mapping[str, str] = {
    "APPROVAL_REQUIRED": S.MATCHED,
    "SECOND_APPROVAL": S.AWAITING_SECOND_APPROVAL,
    "UNDER_QUERY": S.UNDER_QUERY,
}
#: What the queue sorts by (each with an index of its own, ``store.tables``), ties broken by id.
SORTS = ("age", "amount", "issue_date", "supplier", "number", "institution")
PAGE_SIZES = (25, 50, 100)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the queue shows: every field is a query parameter of ``/ui/queue`` of the same name."""

    institution: str | None = None  # an institution id
    reason: str | None = None  # a reason code
    supplier: str | None = None  # part of the supplier's name or endpoint
    status: str | None = None  # one of REVIEW_STATES
    min_age_days: int | None = None  # waiting at least this many days
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: str = "age"
    descending: bool = True  # age: the longest waiting first
    page: int = 1  # shown; read by the store only without a cursor
    per_page: int = 50
    #: Keyset paging: the page after (or before) the row with this cursor (``QueueSlice.last``,
    #: ``first``): its sort key and id. A page is then read off its sort's index, however deep.
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One document of the queue, as the store reads it (``ReviewStore.queue``)."""

    id: str
    institution: str
    supplier: str
    number: str | None
    issue_date: date | None
    amount: Decimal | None
    currency: str | None
    status: str
    reasons: tuple[str, ...]
    waiting_since: datetime

    def age(self, now: datetime) -> str:
        seconds = max(0, int((now - self.waiting_since).total_seconds()))
        if seconds >= 86_400:
            return f"{seconds // 86_400} d"
        if seconds >= 3_600:
            return f"{seconds // 3_600} h"
        return f"{seconds // 60} min"


#: The queue counts the documents a filter finds up to this many ("10000+" beyond).
COUNT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class QueueSlice:
    """One page of the queue: its rows, how many documents the filter finds in all (at most
    ``COUNT_LIMIT``: ``total_capped`` beyond), whether there are pages before and after it, and
    the cursors of its first and last rows (``QueueFilter.before``, ``after``)."""

    rows: tuple[QueueRow, ...]
    total: int
    total_capped: bool = False
    has_previous: bool = False
    has_next: bool = False
    first: str | None = None
    last: str | None = None


def cursor_of(key: object, document_id: str) -> str:
    """A row's cursor: its sort key (ISO dates and times, decimals and text as written) and id."""
    shown = key.isoformat() if isinstance(key, date | datetime) else str(key)
    return f"{shown}~{document_id}"


def parse_cursor(sort: str, cursor: str) -> tuple[object, str] | None:
    """The sort key and id of a cursor of the queue sorted by ``sort``; None when it is not one."""
    value, _, document_id = cursor.rpartition("~")
    if not document_id or not value:
        return None
    try:
        if sort == "age":
            return datetime.fromisoformat(value), document_id
        if sort == "issue_date":
            return date.fromisoformat(value), document_id
        if sort == "amount":
            amount = Decimal(value)
            return (amount, document_id) if amount.is_finite() else None
    except (ValueError, ArithmeticError):
        return None
    return value, document_id


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """A user's whole queue counted by reason code and by institution id."""

    by_reason: Mapping[str, int]
    by_institution: Mapping[str, int]


def queue_reasons(status: str, stored: Sequence[str]) -> tuple[str, ...]:
    """The reasons the queue shows for a document: those stored with its match result
    (``document_reasons``), then its state's own."""
    own = [code for code, state in STATE_REASONS.items() if state == status]
    return tuple(dict.fromkeys([*stored, *own]))
