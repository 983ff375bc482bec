"""The accountants' review: the queue of documents waiting for a person, one document with all a
person needs to decide (its match line by line, the commitment's figures, the commitments it could
be matched to instead, its attachments), and the decisions (approve, reject, query, re-match).

Every read is limited to the institutions the user sees: a document of another institution is
``NotFoundError``, exactly as one that does not exist. A decision is one guarded write
(``store.writes.DocumentChange``): the document's state as read, the new state, the transition by
``user:<name>``, and the decision row; when the state changed meanwhile it writes nothing and
raises ``DecisionConflictError``. A re-match is matching's ``rematch`` with the decision row
written in its write.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from einvoice.domain.commitments import Commitment, CommitmentStatus
from einvoice.domain.invoice import Invoice
from einvoice.domain.review import (
    ACTION_FROM,
    PAGE_SIZES,
    REASON_LABELS,
    SORTS,
    STATUS_REASONS,
    Action,
    ApprovalRule,
    QueueCounts,
    QueueFilter,
    QueueRow,
    QueueSlice,
    Role,
    check_approval,
    reason_codes,
)
from einvoice.domain.states import DocumentStatus
from einvoice.errors import ConflictError, DecisionConflictError, DecisionRefusedError, NotFoundError
from einvoice.parsers.attachments import EmbeddedAttachment, embedded_attachment
from einvoice.responses import may_follow
from einvoice.services import DocumentView, matching
from einvoice.services.matching import release_held
from einvoice.services.queries import get_document
from einvoice.services.responses import invoice_response_row, prior_codes
from einvoice.services.users import SignedIn, approval_rule
from einvoice.store import UnitOfWork
from einvoice.store.ports import DecisionRecord, DocumentRecord
from einvoice.store.tables import DecisionRow, ResponseRow
from einvoice.store.writes import DocumentChange, Step

S = DocumentStatus


@dataclass(frozen=True, slots=True)
class QueuePage:
    found: QueueSlice  # the page's rows, the filter's total, the cursors
    by_reason: Mapping[str, int]  # the user's whole queue, by reason code
    by_institution: Mapping[str, tuple[str, int]]  # institution id -> (name, count)
    institutions: Mapping[str, str]  # the user's institutions: id -> name

    @property
    def rows(self) -> tuple[QueueRow, ...]:
        return self.found.rows

    @property
    def total(self) -> int:
        return self.found.total

    def pages(self, per_page: int) -> int:
        return max(1, -(-self.total // per_page))


#: Counts by (store, institutions): (when they were counted, monotonic seconds; the counts).
_COUNTED: dict[tuple[int, tuple[str, ...]], tuple[float, QueueCounts]] = {}
_COUNTED_LOCK = threading.Lock()


def _counts(uow: UnitOfWork, ids: tuple[str, ...], max_age: float) -> QueueCounts:
    """The queue's counts for ``ids``, counted again when those kept are older than ``max_age``
    seconds: counting a queue of 100,000 reads every row, which a page cannot afford each time."""
    cache_key = (id(uow.scope), ids)
    with _COUNTED_LOCK:
        kept = _COUNTED.get(cache_key)
    if kept is not None and time.monotonic() - kept[0] < max_age:
        return kept[1]
    counts = uow.review.counts(institution_ids=ids)
    with _COUNTED_LOCK:
        if len(_COUNTED) > 1_000:
            _COUNTED.clear()
        _COUNTED[cache_key] = (time.monotonic(), counts)
    return counts


def queue(
    uow: UnitOfWork,
    user: SignedIn,
    wanted: QueueFilter,
    *,
    now: datetime | None = None,
    counts_max_age: float = 0,
) -> QueuePage:
    """One page of the documents waiting for a person in the user's institutions, as ``wanted``
    filters, sorts and pages them (ties broken by id, so pages do not overlap), with the counts of
    the user's whole queue by reason and by institution, at most ``counts_max_age`` seconds old
    (``EINVOICE_UI_QUEUE_COUNTS_SECONDS``)."""
    now = now or datetime.now(UTC)
    ids = tuple(sorted(user.institution_ids))
    with uow:
        institutions = {i: row.name for i in ids if (row := uow.institutions.get(i)) is not None}
        found = uow.review.queue(wanted, institution_ids=ids, now=now)
        counts = _counts(uow, ids, counts_max_age)
    by_reason = {code: counts.by_reason[code] for code in REASON_LABELS if counts.by_reason.get(code)}
    by_reason.update({code: n for code, n in counts.by_reason.items() if code not in by_reason and n})
    by_institution = {i: (institutions.get(i, i), n) for i, n in sorted(counts.by_institution.items())}
    return QueuePage(found, by_reason, by_institution, institutions)


# --- one document ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionView:
    action: str
    username: str
    at: datetime
    from_status: str
    to_status: str
    reason: str | None
    comment: str | None

    def to_dict(self) -> dict[str, Any]:
        """The API's form (``GET /v1/documents/{id}``: ``decisions``)."""
        return {
            "action": self.action,
            "by": self.username,
            "at": self.at.isoformat(),
            "from_status": self.from_status,
            "to_status": self.to_status,
            "reason": self.reason,
            "reason_text": STATUS_REASONS.get(self.reason) if self.reason else None,
            "comment": self.comment,
        }


def decision_view(row: DecisionRecord) -> DecisionView:
    return DecisionView(row.action, row.username, row.at, row.from_status, row.to_status, row.reason, row.comment)


def decisions_of(uow: UnitOfWork, document_id: str) -> list[DecisionView]:
    with uow:
        return [decision_view(row) for row in uow.users.decisions(document_id)]


@dataclass(frozen=True)
class Review:
    """One document as the document page shows it."""

    document: DocumentView
    institution: str
    supplier: str
    invoice: Invoice | None  # the parsed document; None before validation found it valid
    reasons: tuple[str, ...]
    decisions: tuple[DecisionView, ...]
    rule: ApprovalRule
    actions: frozenset[str] = field(default_factory=frozenset)  # what the state and the user's role allow
    commitment: Commitment | None = None  # the one the match result names, with its figures now
    candidates: tuple[Commitment, ...] = ()  # the open commitments of its institution and supplier


def _own_row(uow: UnitOfWork, user: SignedIn, document_id: str) -> DocumentRecord:
    row = uow.documents.get(document_id)
    if row is None or row.institution_id not in user.institution_ids:
        raise NotFoundError(f"no document {document_id}")
    return row


#: Who may re-match a document to another commitment.
REMATCH_ROLES = frozenset({Role.ACCOUNTANT, Role.APPROVER})
#: How many of the supplier's commitments the page offers to re-match to (those ``find`` selects).
CANDIDATES = 100


def _actions(status: str, role: Role) -> frozenset[str]:
    allowed = {a.value for a, states in ACTION_FROM.items() if status in states}
    if role not in REMATCH_ROLES:
        allowed.discard(Action.REMATCH.value)
    return frozenset(allowed)


def _candidates(uow: UnitOfWork, row: DocumentRecord, find: str | None) -> tuple[Commitment, ...]:
    if row.institution_id is None:
        return ()
    found = uow.commitments.list_for(
        row.institution_id, supplier_id=row.supplier_id, status=CommitmentStatus.OPEN.value, limit=10 * CANDIDATES
    )
    wanted = (find or "").strip().casefold()
    return tuple(c for c in found if wanted in c.number.casefold())[:CANDIDATES]


def review(uow: UnitOfWork, user: SignedIn, document_id: str, *, find: str | None = None) -> Review:
    """The document with its parsed invoice, findings, history, match result (with the figures of
    the commitment it names), reasons, decisions, and the open commitments of its institution and
    supplier it could be re-matched to (those whose number contains ``find``). Raises
    NotFoundError for an unknown document or one of an institution the user does not see."""
    with uow:
        row = _own_row(uow, user, document_id)
        view = get_document(uow, document_id)
        institution_row = uow.institutions.get(row.institution_id) if row.institution_id else None
        supplier_row = uow.suppliers.get(row.supplier_id)
        institution = institution_row.name if institution_row else ""
        supplier = supplier_row.name if supplier_row else ""
        invoice = uow.documents.parsed(document_id)
        decisions = tuple(decision_view(d) for d in uow.users.decisions(document_id))
        rule = approval_rule(uow, row.institution_id)
        number = (view.match_result or {}).get("commitment")
        commitment = uow.commitments.get(row.institution_id, number) if number and row.institution_id else None
        candidates = _candidates(uow, row, find)
    return Review(
        document=view,
        institution=institution,
        supplier=supplier,
        invoice=invoice,
        reasons=reason_codes(view.status, view.match_result, view.suspected_duplicate_of),
        decisions=decisions,
        rule=rule,
        actions=_actions(view.status, user.role),
        commitment=commitment,
        candidates=candidates,
    )


def raw_of(uow: UnitOfWork, user: SignedIn, document_id: str) -> bytes:
    """The document's bytes as received; NotFoundError as ``review``."""
    with uow:
        _own_row(uow, user, document_id)
        raw = uow.documents.raw(document_id)
        if raw is None:  # pragma: no cover - stored with the row
            raise NotFoundError(f"no document {document_id}")
        return raw


def attachment(uow: UnitOfWork, user: SignedIn, document_id: str, number: int) -> EmbeddedAttachment:
    """The document's ``number``-th attachment (from 1, as the page lists them), decoded from the
    XML as received; NotFoundError as ``review``, and for one that is not embedded."""
    found = embedded_attachment(raw_of(uow, user, document_id), number)
    if found is None:
        raise NotFoundError(f"no embedded attachment {number} in document {document_id}")
    return found


# --- decisions ---------------------------------------------------------------------------------------


def decide(
    uow: UnitOfWork,
    user: SignedIn,
    document_id: str,
    *,
    action: str,
    reason: str | None = None,
    comment: str | None = None,
    next_message: Any = None,
    now: datetime | None = None,
) -> DecisionView:
    """Record ``user``'s decision on the document and move it on:

    - ``approve``: to ``approved`` (or ``awaiting_second_approval`` when the institution's rules
      ask two people for this amount and this is the first approval); a comment is required over a
      variance or a duplicate warning, the approver role over a variance, and a second approval
      must come from another person;
    - ``reject``: to ``rejected``, with a status reason code (``domain.review.STATUS_REASONS``)
      and words for the supplier;
    - ``query``: to ``under_query``, with the question for the supplier.

    ``next_message(state)``: the stage to message after the new state (posting after approval,
    when an ERP connector is configured), or None. Raises NotFoundError (unknown, or another
    institution's), DecisionRefusedError (something missing, not this person's to approve),
    DecisionConflictError (the state does not allow it, or changed meanwhile)."""
    now = now or datetime.now(UTC)
    comment = (comment or "").strip() or None
    reason = (reason or "").strip().upper() or None
    try:
        chosen = Action(action)
    except ValueError:
        raise DecisionRefusedError(f"unknown decision {action!r}: approve, reject or query") from None
    if chosen is Action.REMATCH:
        raise DecisionRefusedError("a re-match names the commitment: it is recorded by rematch")
    if reason is not None and reason not in STATUS_REASONS:
        raise DecisionRefusedError(f"reason must be an Invoice Response status reason code, not {reason!r}")
    with uow:
        row = _own_row(uow, user, document_id)
        status = row.status
        if status not in ACTION_FROM[chosen]:
            raise DecisionConflictError(f"the document is {status}: it cannot be {_past(chosen)} now")
        if chosen is Action.APPROVE:
            match_result = json.loads(row.match_result) if row.match_result else None
            first = None
            if status == S.AWAITING_SECOND_APPROVAL:
                first = next(
                    (
                        d.username
                        for d in reversed(uow.users.decisions(document_id))
                        if d.action == Action.APPROVE and d.to_status == S.AWAITING_SECOND_APPROVAL
                    ),
                    None,
                )
            check = check_approval(
                role=user.role,
                username=user.username,
                codes=reason_codes(status, match_result, row.suspected_duplicate_of),
                comment=comment,
                amount=row.payable_amount,
                rule=approval_rule(uow, row.institution_id),
                first_approver=first,
            )
            if check.refused:
                raise DecisionRefusedError(check.refused)
            to = S.APPROVED if check.final else S.AWAITING_SECOND_APPROVAL
            detail = "approved" if check.final else "first approval: four eyes, a second approver is needed"
            if first is not None:
                detail = f"second approval (first by {first})"
        elif chosen is Action.REJECT:
            if reason is None or reason == "NON":
                raise DecisionRefusedError("a rejection needs a status reason code (REF, PRI, QTY, …)")
            if comment is None:
                raise DecisionRefusedError("a rejection needs words for the supplier (the comment)")
            to, detail = S.REJECTED, f"rejected: {reason} {STATUS_REASONS[reason].lower()}"
        else:
            if comment is None:
                raise DecisionRefusedError("a query needs the question for the supplier (the comment)")
            to, detail = S.UNDER_QUERY, "under query: information asked of the supplier"
        if comment:
            detail = f"{detail}: {comment}"
        response = _response(chosen, to, reason, comment, now, prior_codes(uow.documents.responses(document_id)))
        actor = f"user:{user.username}"
        values: dict[str, Any] = {"status": to, "status_changed_at": now}
        if to == S.REJECTED:  # what the document holds on its commitment goes back to the budget
            released = release_held(uow, row, at=now)
            if released is not None:
                values["match_result"] = released
        decision = _decision_row(user, chosen, reason, comment, status, to, now)
        written = uow.documents.write(
            DocumentChange(
                document_id,
                (status,),
                values,
                now,
                steps=(Step(status, to, actor, detail[:4000]),),
                message=next_message(to) if next_message is not None else None,
                rows={DecisionRow.__tablename__: [decision], ResponseRow.__tablename__: response},
            )
        )
        if not written.changed:
            raise DecisionConflictError("the document changed meanwhile: reload it and decide again")
        uow.commit()
    return DecisionView(chosen.value, user.username, now, status, to, reason, comment)


def _decision_row(
    user: SignedIn,
    action: Action,
    reason: str | None,
    comment: str | None,
    from_status: str,
    to_status: str,
    at: datetime,
) -> dict[str, Any]:
    """The ``decisions`` row of ``user``'s decision."""
    return {
        "user_id": user.user_id,
        "username": user.username,
        "action": action.value,
        "reason": reason,
        "comment": comment,
        "from_status": from_status,
        "to_status": to_status,
        "at": at,
    }


def rematch(
    uow_factory: Callable[[], UnitOfWork],
    user: SignedIn,
    document_id: str,
    *,
    commitment: str,
    reason: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> DecisionView:
    """Match the document again against ``commitment``, another of its institution's commitments
    with its supplier (``services.matching.rematch``: what it held is released, the new match
    reserved, the supplier's Invoice Response ``AP`` or ``IP`` written), and record ``user``'s
    decision in the same write. Accountants and approvers only. Raises NotFoundError (the
    document, or a commitment not of its institution and supplier), DecisionRefusedError (no
    commitment named, a reason that is not a status reason code, another role) and
    DecisionConflictError (the state does not allow it, or changed meanwhile)."""
    now = now or datetime.now(UTC)
    number = (commitment or "").strip()
    comment = (comment or "").strip() or None
    reason = (reason or "").strip().upper() or None
    if user.role not in REMATCH_ROLES:
        raise DecisionRefusedError("re-matching is for accountants and approvers")
    if not number:
        raise DecisionRefusedError("a re-match needs the commitment's number (choose one of the list)")
    if reason is not None and reason not in STATUS_REASONS:
        raise DecisionRefusedError(f"reason must be an Invoice Response status reason code, not {reason!r}")
    with uow_factory() as uow:
        status = _own_row(uow, user, document_id).status
    if status not in ACTION_FROM[Action.REMATCH]:
        raise DecisionConflictError(f"the document is {status}: it cannot be {_past(Action.REMATCH)} now")
    # What changed beyond the states: the commitment, named in the comment (the decision's words).
    words = f"to commitment {number}" + (f": {comment}" if comment else "")
    moved: list[str] = []

    def decision(from_status: str, to_status: str) -> dict[str, list[dict[str, Any]]]:
        if from_status not in ACTION_FROM[Action.REMATCH]:  # moved on since it was read above
            raise DecisionConflictError(f"the document is {from_status}: it cannot be {_past(Action.REMATCH)} now")
        moved[:] = [from_status, to_status]
        return {
            DecisionRow.__tablename__: [_decision_row(user, Action.REMATCH, reason, words, from_status, to_status, now)]
        }

    try:
        matching.rematch(uow_factory, document_id, number, actor=f"user:{user.username}", also=decision)
    except ConflictError:
        raise DecisionConflictError("the document changed meanwhile: reload it and decide again") from None
    return DecisionView(Action.REMATCH.value, user.username, now, moved[0], moved[1], reason, words)


def _response(
    action: Action, to: str, reason: str | None, comment: str | None, at: datetime, previous: list[str]
) -> list[dict[str, Any]]:
    """The Invoice Response a decision sends the supplier (none where its code may not follow the
    responses before it: no ``IP`` once the document was under query): ``AP`` for an approval (its
    words with reason ``NON``), ``IP`` for the first of two, ``RE`` with the reason and the words
    for a rejection, ``UQ`` with the reason (``OTH`` when none was given) and action ``PIN``
    (provide information) for a query."""
    if action is Action.APPROVE:
        code, response_action = ("AP" if to == S.APPROVED else "IP"), None
        comment = comment if code == "AP" else None  # a first approval's comment is for the second approver
        reason = "NON" if comment else None  # the words go with reason NON, "no issue"
    elif action is Action.REJECT:
        code, response_action = "RE", None
    else:
        code, reason, response_action = "UQ", reason or "OTH", "PIN"
    if not may_follow(previous, code):
        return []
    return [invoice_response_row(code, at, reason=reason, action=response_action, note=comment)]


def _past(action: Action) -> str:
    return {
        Action.APPROVE: "approved",
        Action.REJECT: "rejected",
        Action.QUERY: "put under query",
        Action.REMATCH: "matched again",
    }[action]


__all__ = [
    "PAGE_SIZES",
    "SORTS",
    "QueueFilter",
    "QueuePage",
    "QueueRow",
    "Review",
    "attachment",
    "decide",
    "queue",
    "rematch",
    "review",
]
