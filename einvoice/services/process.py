"""The processing stages a worker runs: validate, match, post.

Every stage follows one protocol, so that a lost or repeated message changes nothing:

1. **claim** (one transaction): if the document is in a state the stage starts from, move it to
   the stage's working state with a guarded UPDATE (``WHERE status = <expected>``) and give it a
   lease: a token (the message id; dramatiq keeps it across retries) and an expiry. If the
   document is already in the working state, the same token, or an expired lease, may take it
   again; anything else means the stage is not called for (or someone else is doing it), and
   the call returns without effect.
2. **work**, outside any transaction (validation may take seconds), the lease extended every
   third of its length meanwhile (``leases.keep``), so the sweeper takes back only the documents
   of workers that stopped.
3. **finish** (one transaction): guarded UPDATE from the working state *with our token* to the
   outcome, plus the stage's effects (findings, match result, journal reference) and the
   outbox row for the next stage. If the guard fails, another worker finished or took over,
   and everything we computed is discarded: no effect is ever written twice.

Database and broker errors propagate, so the actor retries with backoff; a stage that cannot
succeed records ``dead`` with the cause (``mark_dead``), which a person can see.

Matching and posting are later issues. Matching here passes documents through (a suspected
duplicate goes to ``exception``, anything else to ``matched`` and on to ``approved``). Posting
runs only when a ``Poster`` is wired in; without one, ``approved`` is where documents rest.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.domain.states import FINAL_STATES, DocumentStatus
from einvoice.errors import PermanentError, TransientError
from einvoice.services import DocumentView, document_view, finding_to_row, finding_values, leases
from einvoice.store import UnitOfWork

log = logging.getLogger(__name__)

S = DocumentStatus
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- ports -----------------------------------------------------------------------------------------


class ValidationOutcome(Protocol):
    """What the worker needs from a validation report (``einvoice.validation.ValidationReport``)."""

    @property
    def verdict(self) -> str: ...  # valid | invalid | unsupported | error

    @property
    def findings(self) -> Sequence[Finding]: ...


class Validator(Protocol):
    """Validates a document; ``institution`` (the buyer endpoint) and ``at`` (the receipt time)
    select per-institution rule overrides."""

    def __call__(self, raw: bytes, /, *, institution: str | None, at: datetime | None) -> ValidationOutcome: ...


class Poster(Protocol):
    """Posts an approved document to the ERP and returns the journal reference. Must be
    idempotent on ``document.id`` (the ERP side keys on it): a retry after a crash may repeat
    the call. Raises TransientError to retry later, PermanentError when it never can."""

    def __call__(self, document: DocumentView, raw: bytes, /) -> str: ...


# --- stages ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # also the outbox action and the actor suffix
    starts_from: frozenset[str]
    working: str

    @property
    def actor(self) -> str:
        return f"worker:{self.name}"


VALIDATE = Stage("validate", frozenset({S.RECEIVED}), S.VALIDATING)
MATCH = Stage("match", frozenset({S.VALIDATED}), S.MATCHING)
POST = Stage("post", frozenset({S.APPROVED, S.POSTING_FAILED}), S.POSTING)
STAGES = {stage.name: stage for stage in (VALIDATE, MATCH, POST)}
#: The stage a document waiting in a state needs next (what the sweeper re-sends).
NEXT_STAGE = {S.RECEIVED: VALIDATE, S.VALIDATED: MATCH, S.APPROVED: POST, S.POSTING_FAILED: POST}
WORKING_STAGE = {stage.working: stage for stage in STAGES.values()}


@dataclass(frozen=True, slots=True)
class StageResult:
    """What a stage call did. ``ran`` is False when the state did not call for the stage."""

    document_id: str
    stage: str
    ran: bool
    status: str | None = None  # the state the document was left in, when known
    note: str | None = None
    #: The document as the stage read it (validation hands it on to matching).
    document: DocumentView | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Claim:
    document: DocumentView
    raw: bytes | None
    token: str


def _claim(
    uow_factory: Callable[[], UnitOfWork],
    stage: Stage,
    document_id: str,
    *,
    token: str,
    now: datetime,
    lease: timedelta,
    with_raw: bool,
) -> _Claim | StageResult:
    with uow_factory() as uow:
        # The usual case in one round trip: the document waits in the one state the stage starts
        # from (with several, the transition must name which, so the general path below reads it).
        if len(stage.starts_from) == 1:
            (waiting,) = stage.starts_from
            taken = uow.documents.claim_for_stage(
                document_id,
                waiting=waiting,
                working=stage.working,
                token=token,
                expires=now + lease,
                actor=stage.actor,
                at=now,
                with_raw=with_raw,
                commit=True,  # nothing else in this unit of work
            )
            if taken is not None:
                view = document_view(taken[0])
                uow.commit()
                return _Claim(view, taken[1], token)
        row = uow.documents.get(document_id)
        if row is None:
            return StageResult(document_id, stage.name, False, None, "no such document")
        status = row.status
        values: dict[str, Any] = {"lease_token": token, "lease_expires_at": now + lease}
        detail = None
        if status in stage.starts_from:
            values |= {"status": stage.working, "status_changed_at": now}
            claimed = uow.documents.compare_and_set(document_id, expected=[status], values=values)
        elif status == stage.working:
            held_by_us = row.lease_token == token
            expired = row.lease_expires_at is None or row.lease_expires_at <= now
            if not (held_by_us or expired):
                return StageResult(document_id, stage.name, False, status, "another worker holds the document")
            claimed = uow.documents.compare_and_set(
                document_id,
                expected=[status],
                values=values,
                lease_token=row.lease_token,
                lease_free=row.lease_token is None,
            )
            if claimed and not held_by_us:
                detail = "taken over: the previous worker's lease ran out"
        else:
            return StageResult(document_id, stage.name, False, status, f"state {status} does not call for it")
        if not claimed:
            return StageResult(document_id, stage.name, False, None, "another worker claimed it first")
        if status != stage.working or detail:
            uow.documents.add_transition(
                document_id, from_status=status, to_status=stage.working, actor=stage.actor, at=now, detail=detail
            )
        uow.documents.refresh(row)
        view = document_view(row)
        raw = uow.documents.raw(document_id) if with_raw else None
        uow.commit()
    return _Claim(view, raw, token)


def _finish(
    uow: UnitOfWork,
    stage: Stage,
    claim: _Claim,
    *,
    now: datetime,
    path: Sequence[tuple[str, str | None]],
    then: tuple[Stage, Sequence[tuple[str, str | None]]] | None = None,
    values: dict[str, Any] | None = None,
    next_action: str | None = None,
    findings: Sequence[dict[str, Any]] | None = None,
) -> bool:
    """Move the claimed document along ``path`` ((state, detail) pairs, recorded as transitions)
    and, with ``then``, on through the next stage (its working state, then its own path, recorded
    with its actor), setting ``values``, replacing its findings with ``findings`` (None: left as
    they are) and writing the outbox row for ``next_action``, all in one transaction. Returns
    False when the claim was lost (nothing is written). ``uow`` must hold nothing else: the store
    may commit the finish as it writes it (the caller still commits ``uow``)."""
    steps = _steps(stage.working, stage.actor, path)
    if then is not None:
        next_stage, next_path = then
        steps += _steps(path[-1][0], next_stage.actor, [(next_stage.working, None), *next_path])
    changed = uow.documents.finish_stage(
        claim.document.id,
        working=stage.working,
        token=claim.token,
        values=values or {},
        steps=steps,
        at=now,
        findings=findings,
        next_action=next_action,
        commit=True,
    )
    if not changed:
        log.info("%s of %s: claim lost, result discarded", stage.name, claim.document.id)
    return changed


def _steps(
    start: str, actor: str, path: Sequence[tuple[str, str | None]]
) -> list[tuple[str | None, str, str, str | None]]:
    """(from, to, actor, detail) transitions along ``path`` from ``start``."""
    steps: list[tuple[str | None, str, str, str | None]] = []
    previous: str = start
    for status, detail in path:
        steps.append((previous, status, actor, detail))
        previous = status
    return steps


def new_token() -> str:
    return uuid.uuid4().hex


def validate_document(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    validator: Validator,
    token: str | None = None,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    pause: Callable[[str], None] | None = None,
    send_match: bool = True,
    then_match: bool = False,
    posting_enabled: bool = False,
) -> StageResult:
    """Validate a received document: ``validated`` (then matching) when no finding is fatal,
    ``rejected`` when one is (or the rules do not cover the document); the findings are stored
    either way. A validator that could not run (verdict ``error``) leaves the document ``dead``
    with its findings; raise TransientError from the validator instead to have it retried.
    ``send_match=False`` writes no message for matching: the caller matches itself.
    ``then_match=True`` matches a valid document at once, in the transaction that records its
    validation (validated, matching and the match outcome recorded as ever, each by its stage's
    actor): the result is then matching's."""
    token = token or new_token()
    claim = _claim(
        uow_factory,
        VALIDATE,
        document_id,
        token=token,
        now=clock(),
        lease=timedelta(seconds=lease_seconds),
        with_raw=True,
    )
    if isinstance(claim, StageResult):
        return claim
    if pause is not None:
        pause(VALIDATE.name)
    if claim.raw is None:
        raise PermanentError(f"document {document_id} has no stored bytes")
    with leases.keeper().keep(
        uow_factory, document_id=document_id, working=VALIDATE.working, token=token, lease_seconds=lease_seconds
    ):
        report = validator(claim.raw, institution=claim.document.buyer_endpoint, at=claim.document.received_at)
    findings = tuple(report.findings)
    fatal = sum(1 for f in findings if f.severity is Severity.FATAL)
    then: tuple[Stage, Sequence[tuple[str, str | None]]] | None = None
    values: dict[str, Any] = {}
    if report.verdict == "valid":
        path: list[tuple[str, str | None]] = [(S.VALIDATED, f"{len(findings)} findings, none fatal")]
        next_action: str | None = MATCH.name if send_match else None
        if then_match:
            match_path, values, next_action = _match_outcome(claim.document, posting_enabled)
            then = (MATCH, match_path)
    elif report.verdict in ("invalid", "unsupported"):
        path = [(S.REJECTED, f"{fatal} fatal findings" if report.verdict == "invalid" else "unsupported document")]
        next_action = None
    else:
        cause = f"validation could not run (verdict {report.verdict})"
        path = [(S.DEAD, cause)]
        next_action = None
        values = {"failure_reason": cause}
    with uow_factory() as uow:
        if not _finish(
            uow,
            VALIDATE,
            claim,
            now=clock(),
            path=path,
            then=then,
            values=values,
            next_action=next_action,
            findings=[finding_values(f) for f in findings],
        ):
            return StageResult(document_id, VALIDATE.name, False, None, "claim lost")
        uow.commit()
    if then is not None:
        return StageResult(document_id, MATCH.name, True, then[1][-1][0], document=claim.document)
    return StageResult(document_id, VALIDATE.name, True, path[-1][0], document=claim.document)


def validate_and_match(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    validator: Validator,
    token: str | None = None,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    posting_enabled: bool = False,
    pause: Callable[[str], None] | None = None,
) -> StageResult:
    """Validate, then match in the same call: one message takes a valid document through both
    stages, its validation and its match outcome written in one guarded transaction, instead of
    a second trip through outbox, broker and claim. (With a fault-drill ``pause`` the two stages
    keep their own transactions, so a drill can stop a worker between them.)

    A repeated message skips validation and resumes matching when the document waits for it (or
    is held in ``matching`` under this token, a retry). Should the process die after validation
    without matching (only possible with a pause), the unacknowledged message is delivered
    again; were it lost too, the sweeper re-sends ``validated`` documents."""
    token = token or new_token()
    result = validate_document(
        uow_factory,
        document_id,
        validator=validator,
        token=token,
        clock=clock,
        lease_seconds=lease_seconds,
        pause=pause,
        send_match=False,
        then_match=pause is None,
        posting_enabled=posting_enabled,
    )
    if result.status not in (S.VALIDATED, S.MATCHING):
        return result
    return match_document(
        uow_factory,
        document_id,
        token=token,
        clock=clock,
        lease_seconds=lease_seconds,
        posting_enabled=posting_enabled,
        pause=pause,
        document=result.document if result.status == S.VALIDATED else None,
    )


def pass_through_match(document: DocumentView) -> tuple[str, dict[str, Any], str]:
    """The matching placeholder: (outcome state, match result, detail). Matching against purchase
    commitments is a later issue; until then only suspected duplicates need a person."""
    if document.suspected_duplicate_of:
        reason = f"suspected duplicate of {document.suspected_duplicate_of} (same supplier, number and year)"
        return (
            S.EXCEPTION,
            {
                "method": "pass-through",
                "outcome": "exception",
                "reasons": [reason],
                "suspected_duplicate_of": document.suspected_duplicate_of,
            },
            reason,
        )
    return (
        S.MATCHED,
        {
            "method": "pass-through",
            "outcome": "matched",
            "reasons": ["no commitment matching yet: documents pass through"],
        },
        "pass-through: no commitment matching yet",
    )


def match_document(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    token: str | None = None,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    posting_enabled: bool = False,
    pause: Callable[[str], None] | None = None,
    document: DocumentView | None = None,
) -> StageResult:
    """Match a validated document: ``exception`` for a person, or ``matched`` and at once
    ``approved`` (then posting, when enabled), all recorded. ``document``: the document as the
    caller just read it (saves reading it again).

    Matching does no slow work outside the database, so a document waiting in ``validated`` is
    matched in one guarded transaction (``validated`` to the outcome, with the ``matching``
    transitions recorded as ever); a document already held in ``matching`` (a retry, an expired
    lease) goes through claim and finish like every stage."""
    if pause is None:
        done = _match_at_once(uow_factory, document_id, clock=clock, posting_enabled=posting_enabled, document=document)
        if done is not None:
            return done
    token = token or new_token()
    claim = _claim(
        uow_factory,
        MATCH,
        document_id,
        token=token,
        now=clock(),
        lease=timedelta(seconds=lease_seconds),
        with_raw=False,
    )
    if isinstance(claim, StageResult):
        return claim
    if pause is not None:
        pause(MATCH.name)
    path, values, next_action = _match_outcome(claim.document, posting_enabled)
    with uow_factory() as uow:
        if not _finish(
            uow,
            MATCH,
            claim,
            now=clock(),
            path=path,
            values=values,
            next_action=next_action,
        ):
            return StageResult(document_id, MATCH.name, False, None, "claim lost")
        uow.commit()
    return StageResult(document_id, MATCH.name, True, path[-1][0])


def _match_outcome(
    document: DocumentView, posting_enabled: bool
) -> tuple[list[tuple[str, str | None]], dict[str, Any], str | None]:
    """(path of (state, detail), the column values recording the match result, next action) for
    a document being matched."""
    outcome, result, detail = pass_through_match(document)
    path: list[tuple[str, str | None]] = [(outcome, detail)]
    next_action = None
    if outcome == S.MATCHED:
        path.append((S.APPROVED, "approved automatically: matched without exception"))
        next_action = POST.name if posting_enabled else None
    return path, {"match_result": json.dumps(result, sort_keys=True)}, next_action


def _match_at_once(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    clock: Clock,
    posting_enabled: bool,
    document: DocumentView | None,
) -> StageResult | None:
    """Match a document waiting in ``validated`` in one transaction; None when it is not waiting
    there (the caller takes the general path, which says why or resumes a held claim)."""
    now = clock()
    with uow_factory() as uow:
        if document is None:
            row = uow.documents.get(document_id)
            if row is None or row.status != S.VALIDATED:
                return None
            document = document_view(row)
        path, values, next_action = _match_outcome(document, posting_enabled)
        if not uow.documents.finish_stage(
            document_id,
            working=S.VALIDATED,
            token=None,
            values=values,
            steps=_steps(S.VALIDATED, MATCH.actor, [(S.MATCHING, None), *path]),
            at=now,
            next_action=next_action,
        ):
            return None
        uow.commit()
    return StageResult(document_id, MATCH.name, True, path[-1][0])


def post_document(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    poster: Poster | None,
    token: str | None = None,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    pause: Callable[[str], None] | None = None,
) -> StageResult:
    """Post an approved document through ``poster``: ``posted`` with the journal reference, or
    ``posting_failed`` (and the TransientError re-raised, so the message is retried). Without a
    poster nothing happens: posting arrives with its own issue."""
    if poster is None:
        return StageResult(document_id, POST.name, False, None, "no ERP connector configured")
    token = token or new_token()
    claim = _claim(
        uow_factory, POST, document_id, token=token, now=clock(), lease=timedelta(seconds=lease_seconds), with_raw=True
    )
    if isinstance(claim, StageResult):
        return claim
    if pause is not None:
        pause(POST.name)
    try:
        with leases.keeper().keep(
            uow_factory, document_id=document_id, working=POST.working, token=token, lease_seconds=lease_seconds
        ):
            journal_ref = poster(claim.document, claim.raw or b"")
    except TransientError as exc:
        with uow_factory() as uow:
            if _finish(
                uow, POST, claim, now=clock(), path=[(S.POSTING_FAILED, str(exc))], values={"failure_reason": str(exc)}
            ):
                uow.commit()
        raise
    with uow_factory() as uow:
        if not _finish(
            uow,
            POST,
            claim,
            now=clock(),
            path=[(S.POSTED, f"journal {journal_ref}")],
            values={"journal_ref": journal_ref, "failure_reason": None},
        ):
            return StageResult(document_id, POST.name, False, None, "claim lost")
        uow.commit()
    return StageResult(document_id, POST.name, True, S.POSTED)


def run_stage(
    stage_name: str,
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    **kwargs: Any,
) -> StageResult:
    """Dispatch by stage name (what the outbox and the sweeper record)."""
    if stage_name == VALIDATE.name:
        return validate_document(uow_factory, document_id, **kwargs)
    if stage_name == MATCH.name:
        return match_document(uow_factory, document_id, **kwargs)
    if stage_name == POST.name:
        return post_document(uow_factory, document_id, **kwargs)
    raise ValueError(f"unknown stage {stage_name!r}")


def mark_dead(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    stage: str,
    cause: str,
    actor: str | None = None,
    clock: Clock = utcnow,
) -> bool:
    """Record that ``stage`` gave up on the document (a permanent error, or retries exhausted):
    ``dead`` with the cause, unless the document has moved on meanwhile. Returns whether it did."""
    spec = STAGES[stage]
    now = clock()
    cause = cause[:4000]
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        if row is None or row.status in FINAL_STATES:
            return False
        if row.status not in spec.starts_from and row.status != spec.working:
            return False
        previous = row.status
        changed = uow.documents.compare_and_set(
            document_id,
            expected=[previous],
            values={
                "status": S.DEAD,
                "status_changed_at": now,
                "failure_reason": cause,
                "lease_token": None,
                "lease_expires_at": None,
            },
        )
        if not changed:
            return False
        uow.documents.add_transition(
            document_id, from_status=previous, to_status=S.DEAD, actor=actor or spec.actor, at=now, detail=cause
        )
        uow.documents.replace_findings(
            document_id,
            [
                *[finding_to_row(f) for f in _existing_findings(uow, document_id)],
                finding_to_row(
                    Finding(
                        rule="ENGINE-STAGE-FAILED",
                        severity=Severity.FATAL,
                        layer=Layer.ENGINE,
                        message=f"{stage} failed: {cause}",
                    )
                ),
            ],
        )
        uow.commit()
    return True


def _existing_findings(uow: UnitOfWork, document_id: str) -> list[Finding]:
    from einvoice.services import finding_from_row

    return [finding_from_row(row) for row in uow.documents.findings(document_id)]


#: Where a dead document resumes, by the state it died in.
RESUME_FROM = {
    S.RECEIVED: (S.RECEIVED, VALIDATE),
    S.VALIDATING: (S.RECEIVED, VALIDATE),
    S.VALIDATED: (S.VALIDATED, MATCH),
    S.MATCHING: (S.VALIDATED, MATCH),
    S.APPROVED: (S.APPROVED, POST),
    S.POSTING: (S.POSTING_FAILED, POST),
    S.POSTING_FAILED: (S.POSTING_FAILED, POST),
}


def retry_dead(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    actor: str,
    reason: str | None = None,
    clock: Clock = utcnow,
) -> str:
    """Send a ``dead`` document back to the stage it died in (after a person fixed the cause);
    return the state it is now in. Raises NotFoundError, or PermanentError when it is not dead."""
    from einvoice.errors import NotFoundError

    now = clock()
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        if row.status != S.DEAD:
            raise PermanentError(f"document {document_id} is {row.status}, not dead")
        died_in = next(
            (t.from_status for t in reversed(uow.documents.transitions(document_id)) if t.to_status == S.DEAD),
            None,
        )
        if died_in not in RESUME_FROM:
            raise PermanentError(f"document {document_id} died in state {died_in}; nothing to resume")
        back_to, stage = RESUME_FROM[S(died_in)]
        if not uow.documents.compare_and_set(
            document_id,
            expected=[S.DEAD],
            values={"status": back_to, "status_changed_at": now, "failure_reason": None},
        ):
            raise PermanentError(f"document {document_id} changed meanwhile")
        uow.documents.replace_findings(
            document_id,
            [finding_to_row(f) for f in _existing_findings(uow, document_id) if f.rule != "ENGINE-STAGE-FAILED"],
        )
        uow.documents.add_transition(
            document_id,
            from_status=S.DEAD,
            to_status=back_to,
            actor=actor,
            at=now,
            detail=reason or f"sent back to {stage.name}",
        )
        uow.outbox.add(document_id, stage.name, now=now)
        uow.commit()
    return back_to
