"""Matching as the pipeline runs it: the MATCH stage's work in the finish's transaction, a person's
re-match against another commitment (``rematch``), the documents a late commitment sends through
matching again (``match_late_documents``), and what a rejection releases and posting consumes.

The matcher itself (``einvoice.matching``) is pure; here the register is read and changed through
the unit of work. Every change of a commitment's figures happens in the transaction that changes
the document's state, under a lock on the commitment (``SELECT … FOR UPDATE`` on PostgreSQL,
SQLite's one writer), taken in number order so that two transactions locking the same two
commitments cannot wait for each other. Commitments are locked before the document's row is
written, everywhere (the stage, ``rematch``, a rejection, posting).

What a matched document holds is kept in its ``match_result`` beside the result
(``MatchResult.to_dict()``) under ``reservation`` (``Reservation.to_dict()``); the API shows the
result without it. A release takes it out (and sets ``reserved`` to ``0.00``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from einvoice.domain.commitments import (
    NO_RESERVATION,
    Commitment,
    LineReservation,
    MatchResult,
    Reason,
    ReasonCode,
    Reservation,
)
from einvoice.domain.invoice import Invoice
from einvoice.domain.review import reason_rows
from einvoice.domain.states import DocumentStatus
from einvoice.errors import ConflictError, NotFoundError, ReservationError
from einvoice.matching import EarlierDocument, History, MatchConfig, match, release, reserve
from einvoice.matching import consume as consume_reservation
from einvoice.matching.matcher import NO_ORDER
from einvoice.parsers.invoice_dict import invoice_from_dict
from einvoice.responses import may_follow
from einvoice.services import DocumentView, document_view
from einvoice.services.responses import invoice_response_row, prior_codes
from einvoice.services.stages import Outcome
from einvoice.services.users import approval_rule
from einvoice.store import UnitOfWork
from einvoice.store.ports import EarlierQuery, EarlierRow
from einvoice.store.tables import DocumentReasonRow, ParsedDocumentRow, ResponseRow
from einvoice.store.writes import DocumentChange, Step

if TYPE_CHECKING:
    from einvoice.services.process import ApprovalPolicy

log = logging.getLogger(__name__)

S = DocumentStatus
#: Where ``match_result`` keeps what the document holds on its commitment.
HOLDS = "reservation"
#: Where the MATCH stage's outcome tells the stages after it in the same finish the commitment the
#: document was matched to (``Outcome.known``), as locked there: None when matched to none.
MATCHED = "matched_commitment"
#: More rows to write with a re-match, given the states it moves the document from and to.
AlsoWritten = Callable[[str, str], Mapping[str, list[dict[str, Any]]]]
#: The states ``rematch`` takes a document from: waiting for a person, or matched and not posted.
REMATCH_FROM = frozenset({S.EXCEPTION, S.MATCHED, S.APPROVED})


def _now() -> datetime:
    return datetime.now(UTC)


# --- what a document holds -----------------------------------------------------------------------


def held(match_result: Mapping[str, Any] | str | None) -> Reservation | None:
    """What a document's ``match_result`` says it holds on a commitment (reserved, or consumed once
    posted), or None."""
    result = json.loads(match_result) if isinstance(match_result, str) else match_result
    data = (result or {}).get(HOLDS)
    if not data or not data.get("commitment"):
        return None
    return Reservation(
        commitment=data["commitment"],
        amount=Decimal(data["amount"]),
        lines=tuple(LineReservation(x["line"], Decimal(x["quantity"])) for x in data.get("lines") or ()),
        gives_back=bool(data.get("gives_back")),
    )


def result_json(result: MatchResult, reservation: Reservation) -> str:
    """The ``match_result`` column: the result, and what the document holds when it holds anything."""
    data = result.to_dict()
    if not reservation.holds_nothing:
        data[HOLDS] = reservation.to_dict()
    return json.dumps(data, sort_keys=True)


def _changed(before: Commitment, after: Commitment) -> bool:
    return not (after.reserved == before.reserved and after.consumed == before.consumed and after.lines == before.lines)


def _apply(uow: UnitOfWork, before: Commitment, after: Commitment, at: datetime) -> None:
    """Write ``after``'s figures over ``before``'s, read under the commitment's lock in this
    transaction (``put_figures``: nothing read back); nothing when they are the same."""
    if _changed(before, after):
        uow.commitments.put_figures(before, after, at=at)


def _change_held(
    uow: UnitOfWork,
    institution_id: str | None,
    reservation: Reservation | None,
    step: Callable[[Commitment, Reservation], Commitment],
    at: datetime,
) -> None:
    if reservation is None or reservation.commitment is None or institution_id is None:
        return
    commitment = uow.commitments.lock(institution_id, {reservation.commitment}).get(reservation.commitment)
    if commitment is None:  # pragma: no cover - a commitment that documents hold is never deleted
        raise NotFoundError(f"no commitment {reservation.commitment}")
    _apply(uow, commitment, step(commitment, reservation), at)


def release_held(uow: UnitOfWork, row: Any, *, at: datetime | None = None) -> str | None:
    """Release what the document ``row`` holds on its commitment (a rejection), under the
    commitment's lock, in the caller's transaction; the ``match_result`` to write with the change
    of state (without the reservation, ``reserved`` 0.00), or None when it held nothing."""
    reservation = held(row.match_result)
    if reservation is None:
        return None
    _change_held(uow, row.institution_id, reservation, release, at or _now())
    data = json.loads(row.match_result)
    data.pop(HOLDS, None)
    data["reserved"] = "0.00"
    return json.dumps(data, sort_keys=True)


def consume_held(uow: UnitOfWork, document_id: str, *, at: datetime | None = None, row: Any = None) -> None:
    """Posting: what the document holds becomes consumed (a credit note gives back), under the
    commitment's lock, in the transaction that records it ``posted``. ``row``: the document as the
    caller read it in this transaction (not read again)."""
    row = row if row is not None else uow.documents.get(document_id)
    if row is not None:
        _change_held(uow, row.institution_id, held(row.match_result), consume_reservation, at or _now())


def _held_on(row: Any) -> tuple[tuple[str, str], Reservation] | None:
    """What the document ``row`` holds, and on which commitment (its institution id and number);
    None when it holds nothing."""
    reservation = held(row.match_result)
    if reservation is None or reservation.commitment is None or row.institution_id is None:
        return None
    return (row.institution_id, reservation.commitment), reservation


def lock_held(uow: UnitOfWork, rows: Iterable[Any]) -> dict[tuple[str, str], Commitment]:
    """Lock the commitments that the documents ``rows`` hold anything on (``held``), an
    institution's at a time in the order of their ids, each in number order (``lock``), as
    ``consume_held`` does for one; the commitments read under the locks, by (institution id,
    number). For ``consume_held_of``."""
    wanted: dict[str, set[str]] = {}
    for (institution_id, number), _ in filter(None, map(_held_on, rows)):
        wanted.setdefault(institution_id, set()).add(number)
    locked: dict[tuple[str, str], Commitment] = {}
    for institution_id in sorted(wanted):
        found = uow.commitments.lock(institution_id, wanted[institution_id])
        locked.update({(institution_id, number): commitment for number, commitment in found.items()})
    return locked


def consume_held_of(
    uow: UnitOfWork, rows: Iterable[Any], locked: Mapping[tuple[str, str], Commitment], *, at: datetime
) -> None:
    """Posting several documents in one transaction: what each of ``rows`` holds becomes consumed
    (a credit note gives back) on the commitments ``locked`` (``lock_held``, earlier in this
    transaction), each commitment's figures written once, all in one round trip."""
    after = dict(locked)
    for key, reservation in filter(None, map(_held_on, rows)):
        if key not in after:  # pragma: no cover - a commitment that documents hold is never deleted
            raise NotFoundError(f"no commitment {reservation.commitment}")
        after[key] = consume_reservation(after[key], reservation)
    uow.commitments.put_figures_many(
        [(locked[key], new) for key, new in after.items() if _changed(locked[key], new)], at=at
    )


def matched_commitment(uow: UnitOfWork, document: DocumentView, invoice: Invoice) -> Commitment | None:
    """The commitment the document was matched to (its ``match_result``), for its journal entry
    (``services.posting.CommitmentLookup``); None when it was matched to none."""
    number = (document.match_result or {}).get("commitment")
    if not number or document.institution_id is None:
        return None
    return uow.commitments.get(document.institution_id, number)


# --- the history and the candidates -------------------------------------------------------------


def _earlier(row: EarlierRow, institution_id: str | None) -> EarlierDocument:
    return EarlierDocument(
        id=row.id,
        number=row.number,
        issue_date=row.issue_date,
        amount=Decimal(row.amount) if row.amount is not None else None,
        credit_note=row.credit_note,
        same_institution=row.institution_id == institution_id,
        preceding=row.preceding,
        reservation=held(row.match_result),
    )


def history_of(uow: UnitOfWork, document: DocumentView, invoice: Invoice, config: MatchConfig) -> History:
    """The supplier's earlier documents matching needs (docs/matching.md, "The entry point"): the
    same number, the same BT-112 within the window of issue dates, its credit notes, its last invoices with the
    institution; read without locks (they are other documents' finished results). What they hold
    on commitments (their ``match_result``, long) is read for a credit note only: nothing else
    uses it."""
    numbers = {invoice.id} if invoice.id else set()
    numbers |= {p.id for p in invoice.preceding_invoices if p.id}
    window = timedelta(days=config.duplicate_window_days)
    issued = invoice.issue_date
    total = invoice.totals.tax_inclusive_amount
    query = EarlierQuery(
        supplier_id=document.supplier_id,
        before=(document.received_at, document.id),
        numbers=frozenset(numbers),
        issued_from=issued - window if issued else None,
        issued_to=issued + window if issued else None,
        amount=total.value if total is not None else None,
        institution_id=document.institution_id,
        last=config.anomaly_invoices,
        holdings=invoice.is_credit_note,
    )
    rows = uow.documents.earlier_of_supplier(query)
    return History(tuple(_earlier(r, document.institution_id) for r in rows), supplier_id=document.supplier_id)


def _named(invoice: Invoice, history: History) -> set[str]:
    """The commitment numbers the invoice's references name (BT-13 unless ``NA``, BT-12, BT-10),
    and for a credit note those the invoices it credits hold on."""
    numbers = {
        ref.strip()
        for ref in (invoice.order_reference, invoice.contract_reference, invoice.buyer_reference)
        if ref and ref.strip() and ref.strip() != NO_ORDER
    }
    if invoice.is_credit_note:
        credited = {p.id for p in invoice.preceding_invoices if p.id}
        numbers |= {
            e.reservation.commitment
            for e in history.earlier
            if e.number in credited and e.reservation is not None and e.reservation.commitment
        }
    return numbers


def _locked(uow: UnitOfWork, institution_id: str | None, numbers: set[str]) -> dict[str, Commitment]:
    """The institution's commitments of ``numbers``, each locked until the transaction ends, in
    number order (two transactions wanting the same two commitments take them in the same order)."""
    if institution_id is None:
        return {}
    return uow.commitments.lock(institution_id, numbers)


def _refused(result: MatchResult, error: ReservationError) -> MatchResult:
    """An exception instead of a match whose reservation the commitment refused."""
    reason = Reason(
        ReasonCode.AMOUNT_EXCEEDS_REMAINING,
        f"The commitment cannot hold this invoice: {error}",
        expected="a reservation within the commitment's amount and quantities",
        actual=str(result.reserved),
    )
    return dataclasses.replace(result, outcome="exception", reasons=(reason,), reserved=Decimal("0.00"))


def decide(
    uow: UnitOfWork,
    document: DocumentView,
    invoice: Invoice,
    config: MatchConfig,
    *,
    releasing: Reservation | None = None,
    at: datetime | None = None,
) -> tuple[MatchResult, Reservation, Commitment | None]:
    """Match the document in the caller's transaction: read the supplier's history, lock the
    commitments its references name (and the one it held, ``releasing``, released first), run the
    matcher, and hold the reservation of a match on the commitment. A reservation the commitment
    refuses (``ReservationError``: its figures changed under another worker's lock before ours)
    is matched once more on the figures read again under the lock, then becomes an exception
    with the reason: the document is never lost. Returns the result, the reservation, and the
    commitment the result names as read under its lock here, the reservation held (None when it
    names none)."""
    at = at or _now()
    history = history_of(uow, document, invoice, config)
    numbers = _named(invoice, history)
    if releasing is not None and releasing.commitment:
        numbers.add(releasing.commitment)
    locked = _locked(uow, document.institution_id, numbers)
    if releasing is not None and releasing.commitment in locked:
        before = locked[releasing.commitment]
        locked[releasing.commitment] = release(before, releasing)
        _apply(uow, before, locked[releasing.commitment], at)
    for attempt in (1, 2):
        result, reservation = match(invoice, list(locked.values()), history, config)
        if not result.matched or reservation.commitment is None:
            return result, NO_RESERVATION if not result.matched else reservation, locked.get(result.commitment or "")
        before = locked[reservation.commitment]
        try:
            after = reserve(before, reservation)
        except ReservationError as exc:
            if attempt == 2:
                return _refused(result, exc), NO_RESERVATION, None
            log.warning("document %s: reservation refused (%s); matching again under the lock", document.id, exc)
            locked |= uow.commitments.lock(before.institution_id, {before.number})
            continue
        _apply(uow, before, after, at)
        locked[reservation.commitment] = after
        return result, reservation, locked.get(result.commitment or "")
    raise AssertionError("unreachable")  # pragma: no cover


# --- the MATCH stage ---------------------------------------------------------------------------------


def parsed_invoice(uow: UnitOfWork, document_id: str, before: Outcome | None) -> Invoice | None:
    """The document's parsed form: the one the stage before parsed in the same finish (not stored
    yet), else the stored one."""
    from einvoice.services.process import PARSED

    if before is not None and isinstance(known := before.known.get(PARSED), Invoice):
        return known
    rows = (before.rows if before is not None else {}).get(ParsedDocumentRow.__tablename__) or ()
    for row in rows:
        return invoice_from_dict(row["data"], format_version=row["format_version"])
    return uow.documents.parsed(document_id)


def _path(
    uow: UnitOfWork, document: DocumentView, result: MatchResult, approval: ApprovalPolicy
) -> list[tuple[str, str | None]]:
    if not result.matched:
        codes = ", ".join(dict.fromkeys(r.code for r in result.reasons))
        return [(S.EXCEPTION, f"exception: {codes}"[:4000])]
    said = f"matched to commitment {result.commitment}" if result.commitment else "matched"
    said = f"{said}, {result.reserved} reserved"
    rule = approval_rule(uow, document.institution_id)
    decision = approval(document, result.to_dict(), rule)
    if decision is None:  # waits for a person
        limit = rule.person_above
        why = f"amount due above {limit}, the limit for approval without a person" if limit is not None else None
        return [(S.MATCHED, f"{said}; waits for a person: {why}" if why else f"{said}; waits for a person")]
    return [(S.MATCHED, said), decision]


def _response(path: list[tuple[str, str | None]], at: datetime, previous: list[str]) -> list[dict[str, Any]]:
    """The Invoice Response: ``AP`` when approved, ``IP`` when the document waits for a person;
    none where the code may not follow the responses before it."""
    code = "AP" if path[-1][0] == S.APPROVED else "IP"
    return [invoice_response_row(code, at)] if may_follow(previous, code) else []


def _rows(result: MatchResult, responses: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows a match writes with its result: the supplier's response, and the result's reason
    codes (``document_reasons``, replacing those of an earlier match) for the review queue."""
    return {ResponseRow.__tablename__: responses, DocumentReasonRow.__tablename__: reason_rows(result.to_dict())}


def match_outcome(
    uow: UnitOfWork,
    document: DocumentView,
    invoice: Invoice,
    *,
    config: MatchConfig,
    approval: ApprovalPolicy,
) -> Outcome:
    """The MATCH stage's outcome, decided in the finish's transaction (``decide``): ``exception``
    with every reason, or ``matched`` with the reservation held and, as the approval policy says,
    ``approved``; the supplier's Invoice Response (``IP`` or ``AP``) in the same write."""
    now = _now()
    result, reservation, commitment = decide(uow, document, invoice, config, at=now)
    path = _path(uow, document, result, approval)
    # posting, run at once after an approval in the same finish, takes the commitment from here
    known = {MATCHED: commitment} if commitment is not None or result.commitment is None else {}
    return Outcome(
        tuple(path),
        {"match_result": result_json(result, reservation)},
        rows=_rows(result, _response(path, now, [])),
        known=known,
    )


# --- a person's re-match, late commitments -------------------------------------------------------


def _match_again(
    uow: UnitOfWork,
    row: Any,
    invoice: Invoice,
    *,
    actor: str,
    config: MatchConfig,
    approval: ApprovalPolicy,
    why: str,
    also: AlsoWritten | None = None,
) -> str:
    """Release what the document holds, match it again and write the outcome, in the caller's
    transaction; the new status. ``also(from_status, to_status)``: more rows to write with it.
    ConflictError when the document changed meanwhile."""
    now = _now()
    document = document_view(row)
    result, reservation, _ = decide(uow, document, invoice, config, releasing=held(row.match_result), at=now)
    path = _path(uow, document, result, approval)
    steps = [Step(row.status, S.MATCHING, actor, why)]
    previous: str = S.MATCHING
    for status, detail in path:
        steps.append(Step(previous, status, actor, detail))
        previous = status
    responses = _response(path, now, prior_codes(uow.documents.responses(row.id)))
    rows = _rows(result, responses)
    if also is not None:
        rows.update(also(str(row.status), str(path[-1][0])))
    written = uow.documents.write(
        DocumentChange(
            row.id,
            (row.status,),
            {"status": path[-1][0], "status_changed_at": now, "match_result": result_json(result, reservation)},
            now,
            steps=tuple(steps),
            rows=rows,
        )
    )
    if not written.changed:
        raise ConflictError(f"document {row.id} changed meanwhile", document_id=row.id, status=row.status)
    return str(path[-1][0])


def _default_approval() -> ApprovalPolicy:
    from einvoice.services.process import approve_within_limits

    return approve_within_limits


def rematch(
    uow_factory: Callable[[], UnitOfWork],
    document_id: str,
    commitment_number: str,
    *,
    actor: str,
    config: MatchConfig | None = None,
    also: AlsoWritten | None = None,
) -> str:
    """Release what the document holds and match it again against the named commitment of the same
    institution and supplier only (whatever its references say); return the document's new status
    (``matched``, ``approved`` as the approval policy says, or ``exception``). The history records
    ``actor``; ``also(from_status, to_status)`` gives more rows to write in the same write (a
    person's decision). Raises NotFoundError (no such document, no such commitment of its institution and
    supplier) and ConflictError (the state does not allow it: only from ``exception``, ``matched``
    and ``approved`` before posting; or it changed meanwhile)."""
    config = config or MatchConfig()
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        if row.status not in REMATCH_FROM:
            raise ConflictError(
                f"document {document_id} is {row.status}: it can be matched again only from "
                f"{', '.join(sorted(REMATCH_FROM))}",
                document_id=document_id,
                status=row.status,
            )
        commitment = uow.commitments.get(row.institution_id, commitment_number) if row.institution_id else None
        if commitment is None or commitment.supplier_id != row.supplier_id:
            raise NotFoundError(f"no commitment {commitment_number} of the document's institution and supplier")
        invoice = uow.documents.parsed(document_id)
        if invoice is None:
            raise ConflictError(
                f"document {document_id} has no parsed form to match", document_id=document_id, status=row.status
            )
        # The person's choice stands in for the references: the buyer reference names any kind.
        chosen = dataclasses.replace(
            invoice, order_reference=None, contract_reference=None, buyer_reference=commitment_number
        )
        status = _match_again(
            uow,
            row,
            chosen,
            actor=actor,
            config=config,
            approval=_default_approval(),
            why=f"matched again against commitment {commitment_number}",
            also=also,
        )
        uow.commit()
    return status


#: How many documents waiting for a late commitment the request that registers it matches itself;
#: the others go to the workers (``match_late_documents``).
LATE_IN_REQUEST = 20


def match_late_documents(
    uow_factory: Callable[[], UnitOfWork],
    *,
    institution_id: str,
    number: str,
    config: MatchConfig | None = None,
    in_request: int = LATE_IN_REQUEST,
) -> dict[str, str]:
    """Match again the institution's documents waiting in ``exception`` whose references name the
    commitment ``number`` (registered or changed just now: invoices that arrived before their
    order), oldest first: the first ``in_request`` here, each in its own transaction; the others
    are sent back to ``validated`` with a message for the MATCH stage, all in one transaction, so
    that the workers match them and the request stays quick. Their ids and new statuses
    (``validated`` for those sent to the workers). A document that moved on meanwhile is left as
    it is."""
    from einvoice.services.commitments import late_documents

    config = config or MatchConfig()
    actor = f"commitment:{number}"
    statuses: dict[str, str] = {}
    waiting = late_documents(uow_factory(), institution_id=institution_id, number=number)
    for document_id in waiting[:in_request]:
        with uow_factory() as uow:
            row = uow.documents.get(document_id)
            invoice = uow.documents.parsed(document_id)
            if row is None or row.status != S.EXCEPTION or invoice is None:
                continue
            try:
                statuses[document_id] = _match_again(
                    uow,
                    row,
                    invoice,
                    actor=actor,
                    config=config,
                    approval=_default_approval(),
                    why=f"commitment {number} registered or changed",
                )
            except ConflictError:
                continue
            uow.commit()
    statuses |= _to_the_workers(uow_factory, waiting[in_request:], actor=actor, number=number)
    return statuses


def _to_the_workers(
    uow_factory: Callable[[], UnitOfWork], document_ids: list[str], *, actor: str, number: str
) -> dict[str, str]:
    """Send documents waiting in ``exception`` back to ``validated`` (where the MATCH stage resumes,
    ``REGISTRY.resume_point``), each with the stage's message, in one transaction. A document in
    ``exception`` holds nothing on any commitment: there is nothing to release."""
    from einvoice.services.process import MATCH

    if not document_ids:
        return {}
    sent: dict[str, str] = {}
    now = _now()
    detail = f"commitment {number} registered or changed: to be matched again by a worker"
    with uow_factory() as uow:
        for document_id in document_ids:
            if uow.documents.compare_and_set(
                document_id,
                expected=[S.EXCEPTION],
                values={"status": S.VALIDATED, "status_changed_at": now, "failure_reason": None},
                at=now,
                steps=[Step(S.EXCEPTION, S.VALIDATED, actor, detail)],
                message=MATCH.name,
            ):
                sent[document_id] = S.VALIDATED
        uow.commit()
    log.info("commitment %s: %d waiting documents sent to the workers to be matched again", number, len(sent))
    return sent


__all__ = [
    "HOLDS",
    "LATE_IN_REQUEST",
    "MATCHED",
    "consume_held",
    "decide",
    "held",
    "match_late_documents",
    "match_outcome",
    "matched_commitment",
    "release_held",
    "rematch",
]
