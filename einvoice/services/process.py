"""The pipeline's stages, declared once: validate, match, post (``REGISTRY``), their handlers and
ports, and what a person does with a document a stage gave up on (``mark_dead``, ``retry_dead``).

The protocol every stage follows (claim, work, guarded finish) and the runner are in
``services.stages``. Matching (``services.matching``) takes a valid document to ``matched`` or
``exception`` against the purchase commitments of its institution; the ``ApprovalPolicy`` port
then decides whether a matched document is ``approved`` at once (today: every one). Posting runs only when a ``Poster``
is wired in; without one, ``approved`` is where documents rest.

Database and broker errors propagate, so the actor retries with backoff; a stage that cannot
succeed records ``dead`` with the cause (``mark_dead``), which a person can see.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.domain.invoice import Invoice
from einvoice.domain.review import ApprovalRule
from einvoice.domain.states import FINAL_STATES, DocumentStatus
from einvoice.errors import ConflictError, NotFoundError, PermanentError, PostingNotReadyError, TransientError
from einvoice.matching import MatchConfig
from einvoice.services import DocumentView, finding_values
from einvoice.services.responses import message_level_response_row
from einvoice.services.stages import Clock, Outcome, Runner, Stage, StageRegistry, StageResult, Work, utcnow
from einvoice.store import UnitOfWork
from einvoice.store.repositories import parsed_row
from einvoice.store.tables import JournalEntryRow, ParsedDocumentRow, ResponseRow
from einvoice.store.writes import Step

log = logging.getLogger(__name__)

S = DocumentStatus

__all__ = [
    "REGISTRY",
    "ApprovalPolicy",
    "Delivery",
    "FinishPoster",
    "Ports",
    "Poster",
    "StageResult",
    "Validator",
    "posts_in_finish",
    "run_stage",
]


# --- ports -----------------------------------------------------------------------------------------


class ValidationOutcome(Protocol):
    """What the worker needs from a validation report (``einvoice.validation.ValidationReport``)."""

    @property
    def verdict(self) -> str: ...  # valid | invalid | unsupported | error

    @property
    def findings(self) -> Sequence[Finding]: ...

    def rule_set(self) -> dict[str, Any]:
        """What ran: document type, CustomizationID, rule set, version, artefacts (JSON-able)."""
        ...


class Validator(Protocol):
    """Validates a document; ``institution`` (the buyer endpoint) and ``at`` (the receipt time)
    select per-institution rule overrides."""

    def __call__(self, raw: bytes, /, *, institution: str | None, at: datetime | None) -> ValidationOutcome: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a ``Poster`` did with a document's journal entry: ``confirmed_by`` who confirmed it
    (the ERP answered a push, acknowledged a pull, confirmed a file batch), or None while the
    confirmation is still to come, with ``waiting`` saying what for."""

    journal_ref: str
    confirmed_by: str | None
    waiting: str | None = None


class Poster(Protocol):
    """Delivers an approved document's journal entry to the ERP: the ``Delivery``, or the journal
    reference alone when the ERP confirmed it (from the document's parsed form: the stage does not
    read the XML again). Must be idempotent on ``document.id`` (the ERP
    side keys on it): a retry after a crash may repeat the call. Raises TransientError to retry
    later, PermanentError when it never can, PostingNotReadyError while the institution's books
    are not ready."""

    def __call__(self, document: DocumentView, /) -> Delivery | str: ...


class FinishPoster(Poster, Protocol):
    """A ``Poster`` that may post in the finish's transaction: when its delivery needs no slow I/O
    (``posts_in_finish``: the pull feed, where keeping the entry is delivering it), the POST stage
    runs at once in the finish that approves a document, and in the finish of its own message.
    ``post_in_finish`` reads what the entry needs through ``uow`` (the institution's books; the
    commitment, unless ``known`` holds it: what the stages before learnt in the same finish,
    ``Outcome.known``) and returns the ``Delivery`` with the ``journal_entries`` row to write with
    the document's change (None when the entry was kept before: looked for only when
    ``look_for_kept``). Raises as ``Poster`` does."""

    @property
    def posts_in_finish(self) -> bool: ...

    def read_ahead(self, uow: UnitOfWork, document: DocumentView, /) -> None:
        """Queue what ``post_in_finish`` will read of the document's institution (its books) to go
        with the finish's next round trip (``Stage.reads_ahead``)."""

    def post_in_finish(
        self,
        uow: UnitOfWork,
        document: DocumentView,
        invoice: Invoice,
        /,
        *,
        look_for_kept: bool,
        known: Mapping[str, Any],
    ) -> tuple[Delivery, dict[str, Any] | None]: ...


def posts_in_finish(ports: Ports) -> bool:
    """Whether the POST stage runs in the finish's transaction with these ports (its poster a
    ``FinishPoster`` whose delivery needs no slow I/O)."""
    return getattr(ports.poster, "posts_in_finish", False) is True


class ApprovalPolicy(Protocol):
    """Decides whether a matched document is approved without a person, under its institution's
    approval limits (``rule``): the state and the detail of the transition to take it to
    (``approved``), or None to leave it ``matched``, waiting for a person."""

    def __call__(
        self, document: DocumentView, match: Mapping[str, Any], rule: ApprovalRule, /
    ) -> tuple[str, str] | None: ...


def approve_within_limits(
    document: DocumentView, match: Mapping[str, Any], rule: ApprovalRule, /
) -> tuple[str, str] | None:
    """The default policy: a document matched without exception is approved at once, unless its
    amount due (BT-115) is above the institution's ``person_above`` limit (``einvoice institutions
    set-approval``): then it waits in ``matched`` for a person."""
    if rule.needs_person(document.payable_amount):
        return None
    return S.APPROVED, "approved automatically: matched without exception"


class Parser(Protocol):
    """Reads a valid document's bytes into the EN 16931 model (``parsers.ubl.parse_for_pipeline``
    within the intake limits). Raises DocumentParseError (permanent) when it cannot."""

    def __call__(self, raw: bytes, /) -> Invoice: ...


@dataclass(frozen=True)
class Ports:
    """What the stages' handlers use, wired by ``bootstrap`` (tests pass fakes). Without a
    ``parser`` no parsed document is stored."""

    validator: Validator | None = None
    poster: Poster | None = None
    approval: ApprovalPolicy = approve_within_limits
    parser: Parser | None = None
    match_config: MatchConfig = field(default_factory=MatchConfig)


#: Where validation's outcome tells the stages run at once after it, in the same finish, the
#: document parsed into the EN 16931 model (``Outcome.known``): matching and posting use it as it
#: is instead of building it again out of the row written beside it.
PARSED = "parsed_invoice"


# --- handlers -------------------------------------------------------------------------------------


def validate(work: Work[Ports]) -> Outcome:
    """``validated`` when no finding is fatal, ``rejected`` when one is (or the rules do not cover
    the document); the findings are stored either way, with the rule set that ran. A valid
    document is parsed (the ``parser`` port) and its EN 16931 model stored in the same write
    (``parsed_documents``), for matching and posting. A validator
    that could not run (verdict ``error``) leaves the document ``dead``; a validator that raises
    TransientError has the message retried."""
    if work.ports.validator is None:
        raise PermanentError("no validator configured")
    if work.raw is None:
        raise PermanentError(f"document {work.document.id} has no stored bytes")
    report = work.ports.validator(work.raw, institution=work.document.buyer_endpoint, at=work.document.received_at)
    findings = tuple(report.findings)
    fatal = sum(1 for f in findings if f.severity is Severity.FATAL)
    values: dict[str, Any] = {"ruleset": json.dumps(report.rule_set())}  # the stored report names what ran
    rows: dict[str, list[dict[str, Any]]] = {}
    known: dict[str, Any] = {}
    if report.verdict == "valid":
        path: tuple[tuple[str, str | None], ...] = ((S.VALIDATED, f"{len(findings)} findings, none fatal"),)
        if work.ports.parser is not None:
            invoice = work.ports.parser(work.raw)
            rows[ParsedDocumentRow.__tablename__] = [
                parsed_row(work.document.id, invoice, datetime.now(UTC), supplier_id=work.document.supplier_id)
            ]
            known[PARSED] = invoice  # for the stages run at once after it: not read back from its row
    elif report.verdict in ("invalid", "unsupported"):
        detail = f"{fatal} fatal findings" if report.verdict == "invalid" else "unsupported document"
        path = ((S.REJECTED, detail),)
        rows[ResponseRow.__tablename__] = [message_level_response_row(datetime.now(UTC), detail)]
    else:
        cause = f"validation could not run (verdict {report.verdict})"
        path = ((S.DEAD, cause),)
        values["failure_reason"] = cause
    return Outcome(path, values, findings, rows, known=known)


def match(work: Work[Ports]) -> Outcome:
    """Matching against the buyer institution's purchase commitments (``services.matching``), in
    the finish's transaction: the commitments its references name locked, the matcher run on the
    parsed document and the supplier's history, the reservation of a match held on the commitment
    in the write that records ``matched`` (and, as the approval policy decides, ``approved``) or
    ``exception`` with every reason. The supplier gets an Invoice Response in the same write:
    ``IP`` when the document waits for a person, ``AP`` when it is approved. A document without a
    parsed form (no ``parser`` port wired) cannot be matched: PermanentError."""
    from einvoice.services.matching import match_outcome, parsed_invoice

    assert work.uow is not None, "MATCH runs in the finish's transaction"
    invoice = parsed_invoice(work.uow, work.document.id, work.before)
    if invoice is None:
        raise PermanentError(f"document {work.document.id} has no parsed form to match: no parser is wired")
    return match_outcome(work.uow, work.document, invoice, config=work.ports.match_config, approval=work.ports.approval)


def match_reads_ahead(work: Work[Ports]) -> None:
    """What matching reads besides the history, sent with the history's round trip: the approval
    limits of the institution (read when the document matches)."""
    if work.uow is not None and work.document.institution_id:
        work.uow.users.read_approval_rule_ahead(work.document.institution_id)


#: How the reason of a document held in ``approved`` by posting begins.
WAITING = "waiting: "


def post(work: Work[Ports]) -> Outcome:
    """``posted`` with the journal reference once the ERP confirmed the entry (a push answered
    2xx); or the entry delivered and the document held in ``posting`` with no lease, waiting for
    the ERP's confirmation (a pull acknowledged, a file batch confirmed), which moves it on to
    ``posted`` (``services.erp.confirm_entry``): no retry, no message, the sweeper leaves it
    alone, however long the ERP takes. A delivery that failed for now records ``posting_failed``
    and raises the TransientError again, so that the message is retried with backoff (then
    ``dead``). A document whose institution's books are not ready (PostingNotReadyError: no
    complete posting profile, an account missing, no exchange rate) goes back to ``approved``
    with the reason and rests there, held; setting the profile or loading rates sends it on
    (``services.posting``)."""
    if work.ports.poster is None:
        raise PermanentError("no ERP connector configured")
    kept: dict[str, Any] | None = None
    try:
        if work.uow is None:
            delivery = work.ports.poster(work.document)
        else:
            delivery, kept = _post_in_finish(work)
    except PostingNotReadyError as exc:
        reason = WAITING + str(exc)
        return Outcome(((S.APPROVED, reason),), {"failure_reason": reason}, hold=True)
    except TransientError as exc:
        return Outcome(((S.POSTING_FAILED, str(exc)),), {"failure_reason": str(exc)}, retry=exc)
    if isinstance(delivery, str):
        delivery = Delivery(delivery, "the ERP connector")
    # an entry kept in the finish is written with the document's change: both or neither
    rows = {JournalEntryRow.__tablename__: [kept]} if kept is not None else {}
    if delivery.confirmed_by is None:
        reason = WAITING + (delivery.waiting or "the ERP's confirmation")
        values = {"journal_ref": delivery.journal_ref, "failure_reason": reason}
        return Outcome(((S.POSTING, reason),), values, rows=rows, hold=True)
    from einvoice.services.matching import consume_held

    detail = f"journal {delivery.journal_ref} confirmed by {delivery.confirmed_by}"
    return Outcome(
        ((S.POSTED, detail),),
        {"journal_ref": delivery.journal_ref, "failure_reason": None},
        rows=rows,
        # what the document holds on its commitment is consumed in the write that records it posted
        effects=(functools.partial(consume_held, document_id=work.document.id),),
    )


def post_reads_ahead(work: Work[Ports]) -> None:
    """What posting in the finish reads of the institution, sent with the finish's next round
    trip (the supplier's history when matching runs before it)."""
    if work.uow is not None and posts_in_finish(work.ports):
        cast(FinishPoster, work.ports.poster).read_ahead(work.uow, work.document)


def _post_in_finish(work: Work[Ports]) -> tuple[Delivery, dict[str, Any] | None]:
    """Posting in the finish's transaction (``posts_in_finish``): the document's parsed form and
    match result as the stages before wrote them in the same finish (not stored yet), else as
    stored, and what they learnt (``Outcome.known``: the commitment matching locked); the entry
    looked for only when no stage before ran in this finish (a document matched and approved just
    now has none: no state that follows a kept entry leads back to matching)."""
    from einvoice.services.matching import parsed_invoice

    assert work.uow is not None
    poster = cast(FinishPoster, work.ports.poster)
    invoice = parsed_invoice(work.uow, work.document.id, work.before)
    if invoice is None:
        raise PermanentError(f"document {work.document.id} has no parsed document to post")
    document = work.document
    matched = work.before.values.get("match_result") if work.before is not None else None
    if matched is not None:
        document = replace(document, match_result=json.loads(matched))
    known = work.before.known if work.before is not None else {}
    return poster.post_in_finish(work.uow, document, invoice, look_for_kept=work.before is None, known=known)


# --- the registry -----------------------------------------------------------------------------------

VALIDATE = Stage[Ports](
    "validate",
    starts_from=frozenset({S.RECEIVED}),
    working=S.VALIDATING,
    outcomes=frozenset({S.VALIDATED, S.REJECTED, S.DEAD}),
    resume=S.RECEIVED,
    handler=validate,
    needs_raw=True,
)
MATCH = Stage[Ports](
    "match",
    starts_from=frozenset({S.VALIDATED}),
    working=S.MATCHING,
    outcomes=frozenset({S.MATCHED, S.EXCEPTION, S.APPROVED}),
    resume=S.VALIDATED,
    handler=match,
    at_once=True,  # no slow work: run inside validation's finish, saving a round trip
    in_finish=True,  # locks the commitments it reserves on in the transaction that records it
    reads_ahead=match_reads_ahead,
)
POST = Stage[Ports](
    "post",
    starts_from=frozenset({S.APPROVED, S.POSTING_FAILED}),
    working=S.POSTING,
    outcomes=frozenset({S.POSTED, S.POSTING_FAILED, S.APPROVED, S.POSTING}),
    resume=S.POSTING_FAILED,
    handler=post,  # the entry is built from the parsed form: the XML is not read again
    runs_with=lambda ports: ports.poster is not None,
    # by pull, keeping the entry is delivering it: posted in the finish that approves the document
    # (validation's, with matching), the entry written with the document's change
    at_once=posts_in_finish,
    in_finish=posts_in_finish,
    reads_ahead=post_reads_ahead,
    # approved: waiting for the institution's posting profile, chart or an exchange rate;
    # posting: the entry delivered, waiting for the ERP's confirmation (pull, file batch)
    holds=frozenset({S.APPROVED, S.POSTING}),
)
REGISTRY = StageRegistry[Ports]([VALIDATE, MATCH, POST])


def runner(
    uow_factory: Callable[[], UnitOfWork],
    ports: Ports,
    *,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    pause: Callable[[str], None] | None = None,
    chain: bool = True,
    registry: StageRegistry[Ports] = REGISTRY,
) -> Runner[Ports]:
    """The runner of the pipeline's stages with ``ports``."""
    return Runner(
        registry, uow_factory, ports, clock=clock, lease=timedelta(seconds=lease_seconds), chain=chain, pause=pause
    )


def run_stage(
    stage_name: str,
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    validator: Validator | None = None,
    poster: Poster | None = None,
    approval: ApprovalPolicy = approve_within_limits,
    parser: Parser | None = None,
    match_config: MatchConfig | None = None,
    token: str | None = None,
    clock: Clock = utcnow,
    lease_seconds: float = 300,
    pause: Callable[[str], None] | None = None,
    chain: bool = False,
) -> StageResult:
    """Run one stage for a document, as a worker does (``chain``: and the ``at_once`` stages that
    follow it, in its finish)."""
    run = runner(
        uow_factory,
        Ports(validator, poster, approval, parser, match_config or MatchConfig()),
        clock=clock,
        lease_seconds=lease_seconds,
        pause=pause,
        chain=chain,
    )
    return run.run(stage_name, document_id, token=token)


#: ``run_stage`` of one stage: ``validate_document(uow_factory, document_id, validator=…)``.
validate_document = functools.partial(run_stage, VALIDATE.name)
match_document = functools.partial(run_stage, MATCH.name)
post_document = functools.partial(run_stage, POST.name)


def mark_dead(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    stage: str,
    cause: str,
    actor: str | None = None,
    clock: Clock = utcnow,
    registry: StageRegistry[Ports] = REGISTRY,
) -> bool:
    """Record that ``stage`` gave up on the document (a permanent error, or retries exhausted):
    ``dead`` with the cause, unless the document has moved on meanwhile (it is no longer waiting
    for or held by the stage). Returns whether it did."""
    spec = registry[stage]
    now = clock()
    cause = cause[:4000]
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        if row is None or row.status in FINAL_STATES or registry.owner(row.status) is not spec:
            return False
        died = Finding(
            rule="ENGINE-STAGE-FAILED", severity=Severity.FATAL, layer=Layer.ENGINE, message=f"{stage} failed: {cause}"
        )
        findings = [finding_values(f) for f in _findings(uow, document_id)] + [finding_values(died)]
        if not uow.documents.compare_and_set(
            document_id,
            expected=[row.status],
            values={
                "status": S.DEAD,
                "status_changed_at": now,
                "failure_reason": cause,
                "lease_token": None,
                "lease_expires_at": None,
            },
            at=now,
            steps=[Step(row.status, S.DEAD, actor or spec.actor, cause)],
            findings=findings,
        ):
            return False
        uow.commit()
    return True


def _findings(uow: UnitOfWork, document_id: str) -> list[Finding]:
    return list(uow.documents.findings(document_id))


def retry_dead(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    *,
    actor: str,
    reason: str | None = None,
    clock: Clock = utcnow,
    registry: StageRegistry[Ports] = REGISTRY,
) -> str:
    """Send a ``dead`` document back to the stage it died in (after a person fixed the cause);
    return the state it is now in. Raises NotFoundError, or ConflictError when its state does not
    allow it: not dead (say, someone sent it back already), dead in a state no stage resumes, or
    changed between the read and the write."""
    now = clock()
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        if row.status != S.DEAD:
            raise ConflictError(
                f"document {document_id} is {row.status}, not dead: nothing to send back",
                document_id=document_id,
                status=row.status,
            )
        died_in = next(
            (t.from_status for t in reversed(uow.documents.transitions(document_id)) if t.to_status == S.DEAD),
            None,
        )
        resume = registry.resume_point(died_in) if died_in is not None else None
        if resume is None:
            raise ConflictError(
                f"document {document_id} died in state {died_in}, which no stage resumes",
                document_id=document_id,
                status=row.status,
            )
        back_to, stage = resume
        kept = [finding_values(f) for f in _findings(uow, document_id) if f.rule != "ENGINE-STAGE-FAILED"]
        if not uow.documents.compare_and_set(
            document_id,
            expected=[S.DEAD],
            values={"status": back_to, "status_changed_at": now, "failure_reason": None},
            at=now,
            steps=[Step(S.DEAD, back_to, actor, reason or f"sent back to {stage.name}")],
            findings=kept,
            message=stage.name,
        ):
            raise ConflictError(
                f"document {document_id} changed while it was being sent back; look at it again",
                document_id=document_id,
            )
        uow.commit()
    return back_to
