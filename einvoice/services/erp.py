"""The ERP's side of posting: its credentials, the pull feed of journal entries, their
acknowledgement, and the payments it reports.

- **Credentials** (``add_erp``): an ERP serves one or more institutions; its API key (``eik_…``,
  only the sha256 kept, as suppliers' and institutions' keys) reaches only their entries and
  documents.
- **Pull** (``pull``): the unconfirmed entries of its institutions in a stable order (when each was
  built, then the document id), ``limit`` at a time after an opaque cursor, with the cursor to
  continue from. An entry not acknowledged is offered again to every pull that starts before it
  (a posting job starts without a cursor and follows ``next`` until no entry comes); an
  acknowledged one never again.
- **Confirmation** (``confirm_entry``): the one way an entry becomes confirmed and its document
  ``posted``, whoever confirms (an ERP's acknowledgement, a file batch's ``.ack``, ``einvoice erp
  confirm``): recorded on the entry once, and the document moved from ``posting`` (or
  ``posting_failed``) to ``posted`` by a guarded compare-and-set, the transition naming who
  confirmed. Idempotent: a second acknowledgement changes nothing and answers the same. A
  document elsewhere (``dead``, say) is posted by its next post stage, which finds the entry
  confirmed.
- **Payment** (``record_payment``): the ERP paid a posted document: the payment kept, and the
  supplier's Invoice Response ``PD`` written in the same guarded write (only after ``AP``; nothing
  after ``PD``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from einvoice.domain.states import DocumentStatus
from einvoice.errors import (
    AccountError,
    AckBatchError,
    ConflictError,
    DuplicateAccountError,
    DuplicateKeyError,
    FeedCursorError,
    NotFoundError,
    PaymentError,
)
from einvoice.responses.codes import may_follow
from einvoice.services.accounts import _key_holder, hash_api_key, new_api_key, registered_institution
from einvoice.services.matching import consume_held_of, lock_held
from einvoice.services.responses import invoice_response_row, prior_codes
from einvoice.store import UnitOfWork
from einvoice.store.ports import ErpRecord
from einvoice.store.tables import ErpRow, PaymentRow, ResponseRow
from einvoice.store.writes import DocumentChange, Step

S = DocumentStatus
#: States an entry's confirmation moves a document on from: held waiting for it, or between
#: retries of a delivery.
CONFIRMABLE = (S.POSTING, S.POSTING_FAILED)
MAX_PULL = 500
#: Entries confirmed in one transaction (``confirm_entries``): a page of the feed in a few.
ACK_TRANSACTION = 100


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ErpView:
    id: str
    name: str
    institution_ids: tuple[str, ...]
    institutions: tuple[str, ...]  # endpoints

    @property
    def actor(self) -> str:
        """How the history names this ERP."""
        return f"erp:{self.name}"


@dataclass(frozen=True, slots=True)
class Confirmed:
    entry_id: str
    document_id: str
    confirmed_at: datetime
    confirmed_by: str
    status: str  # the document's, afterwards

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "document_id": self.document_id,
            "acknowledged_at": self.confirmed_at.isoformat(),
            "acknowledged_by": self.confirmed_by,
            "document_status": self.status,
        }


def _view(uow: UnitOfWork, row: ErpRow | ErpRecord) -> ErpView:
    institutions = uow.posting.erp_institutions(row.id)
    return ErpView(
        row.id,
        row.name,
        tuple(i.id for i in institutions),
        tuple(f"{i.endpoint_scheme}:{i.endpoint_id}" for i in institutions),
    )


def add_erp(uow: UnitOfWork, *, name: str, endpoints: Iterable[str]) -> tuple[ErpView, str]:
    """Register an ERP serving the institutions of ``endpoints``; return it and its API key (the
    only time the key is available). Raises AccountError (no name, no institution),
    InvalidEndpointError, NotFoundError (an institution not registered), DuplicateAccountError."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise AccountError("an ERP needs a name of 1 to 200 characters")
    endpoints = list(dict.fromkeys(e.strip() for e in endpoints))
    if not endpoints:
        raise AccountError("an ERP serves at least one institution (--institution ENDPOINT)")
    api_key = new_api_key()
    with uow:
        institutions = [registered_institution(uow, endpoint) for endpoint in endpoints]
        if uow.posting.erp_by_name(name) is not None:
            raise DuplicateAccountError(f"an ERP named {name!r} exists")
        try:
            row = uow.posting.add_erp(
                ErpRow(name=name, api_key_hash=hash_api_key(api_key), created_at=_now()), (i.id for i in institutions)
            )
            view = _view(uow, row)
            uow.commit()
        except DuplicateKeyError as exc:
            raise DuplicateAccountError(f"an ERP named {name!r} exists") from exc
    return view, api_key


class _ErpKeys:
    """The ERPs' keys as ``accounts._key_holder`` looks keys up."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def by_key_hash(self, key_hash: str) -> ErpRecord | None:
        return self.uow.posting.erp_by_key_hash(key_hash)


def authenticate_erp(uow: UnitOfWork, api_key: str) -> ErpView | None:
    """The ERP holding ``api_key``, or None."""
    return _key_holder(uow, api_key, _ErpKeys, lambda row: _view(uow, row))


# --- the pull feed ------------------------------------------------------------------------------


def _cursor(created_at: datetime, document_id: str) -> str:
    text = f"{created_at.astimezone(UTC).isoformat()}|{document_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _position(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, document_id = text.split("|", 1)
        created_at = datetime.fromisoformat(when)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise FeedCursorError(f"after: not a cursor of this feed: {cursor[:60]!r}") from None
    if created_at.tzinfo is None or not document_id:
        raise FeedCursorError(f"after: not a cursor of this feed: {cursor[:60]!r}")
    return created_at, document_id


def pull(uow: UnitOfWork, erp: ErpView, *, after: str | None = None, limit: int = 100) -> dict[str, Any]:
    """``{"entries": [...], "next": CURSOR}``: at most ``limit`` (1 to ``MAX_PULL``) unconfirmed
    entries of the ERP's institutions after the cursor ``after`` (from the start without one), and
    the cursor to continue from (``after`` again when none came). Raises FeedCursorError."""
    position = _position(after) if after else None
    limit = max(1, min(limit, MAX_PULL))
    with uow:
        rows = uow.posting.feed(erp.institution_ids, after=position, limit=limit)
        entries = [dict(row.data) for row in rows]
        last = (rows[-1].created_at, rows[-1].document_id) if rows else None
    return {"entries": entries, "next": _cursor(*last) if last else after}


def acknowledge(uow_factory: Callable[[], UnitOfWork], erp: ErpView, entry_id: str) -> Confirmed:
    """The ERP confirms it applied the entry (``confirm_entry`` by ``erp:<name>``). NotFoundError
    for an entry of an institution the ERP does not serve."""
    return confirm_entry(uow_factory, entry_id, by=erp.actor, institution_ids=erp.institution_ids)


def acknowledge_many(
    uow_factory: Callable[[], UnitOfWork], erp: ErpView, entry_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The ERP confirms several entries in one request (``confirm_entries``: ``ACK_TRANSACTION``
    entries a transaction), answered per id in the order given (an id given twice once): the
    acknowledgement, as ``acknowledge`` answers it, or ``{"id", "acknowledged": false, "error":
    "not_found", "detail"}`` for an entry unknown or of an institution the ERP does not serve. At
    most ``MAX_PULL`` ids (AckBatchError beyond)."""
    ids = list(dict.fromkeys(entry_ids))
    if not ids or len(ids) > MAX_PULL:
        raise AckBatchError(f"ids: 1 to {MAX_PULL} entry ids, not {len(ids)}")
    confirmed = confirm_entries(uow_factory, ids, by=erp.actor, institution_ids=erp.institution_ids)
    return [
        {**confirmed[entry_id].to_dict(), "acknowledged": True}
        if entry_id in confirmed
        else {"id": entry_id, "acknowledged": False, "error": "not_found", "detail": f"no journal entry {entry_id}"}
        for entry_id in ids
    ]


def confirm_entry(
    uow_factory: Callable[[], UnitOfWork],
    entry_id: str,
    *,
    by: str,
    institution_ids: Iterable[str] | None = None,
    now: datetime | None = None,
) -> Confirmed:
    """Record that ``by`` confirmed the entry (once: a repeat changes nothing) and move its
    document from ``posting`` or ``posting_failed`` to ``posted`` with a guarded write whose
    transition names ``by``; return what is recorded (``confirm_entries`` of one). NotFoundError
    for an unknown entry, or one outside ``institution_ids``."""
    confirmed = confirm_entries(uow_factory, [entry_id], by=by, institution_ids=institution_ids, now=now)
    if entry_id not in confirmed:
        raise NotFoundError(f"no journal entry {entry_id}")
    return confirmed[entry_id]


def confirm_entries(
    uow_factory: Callable[[], UnitOfWork],
    entry_ids: Iterable[str],
    *,
    by: str,
    institution_ids: Iterable[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Confirmed]:
    """Record that ``by`` confirmed each entry of ``entry_ids`` (once: a repeat changes nothing)
    and move each one's document from ``posting`` or ``posting_failed`` to ``posted`` with a
    guarded write whose transition names ``by``, what it holds on its commitment becoming
    consumed in the same transaction; return what is recorded, by entry id (an entry unknown or
    outside ``institution_ids`` is left out). ``ACK_TRANSACTION`` entries a transaction: each a
    few statements for all its entries, so that a commitment's lock is held for milliseconds."""
    now = now or _now()
    allowed = None if institution_ids is None else list(institution_ids)
    ids = list(dict.fromkeys(entry_ids))
    confirmed: dict[str, Confirmed] = {}
    for start in range(0, len(ids), ACK_TRANSACTION):
        confirmed.update(_confirm(uow_factory, ids[start : start + ACK_TRANSACTION], by, allowed, now))
    return confirmed


def _confirm(
    uow_factory: Callable[[], UnitOfWork], ids: list[str], by: str, allowed: list[str] | None, now: datetime
) -> dict[str, Confirmed]:
    """``confirm_entries`` for one transaction's ids. In the order every writer takes its locks:
    the entries (in entry id order), the commitments their documents hold on (``lock_held``),
    the documents (their guarded writes, in one round trip), then the commitments' figures for
    the documents that moved (one that moved on meanwhile consumes nothing; its entry stays
    confirmed)."""
    with uow_factory() as uow:
        # The usual case, entries not confirmed yet, in one statement; else read what is recorded.
        recorded = {
            entry_id: (document_id, now, by[:200])
            for entry_id, document_id in uow.posting.confirm_unconfirmed(
                ids, at=now, by=by, institution_ids=allowed
            ).items()
        }
        for row in uow.posting.entries_by_ids([i for i in ids if i not in recorded]):
            if allowed is None or row.institution_id in allowed:
                recorded[row.entry_id] = (row.document_id, row.confirmed_at or now, row.confirmed_by or by)
        documents = uow.documents.get_many([document_id for document_id, _, _ in recorded.values()])
        entry_of = {document_id: entry_id for entry_id, (document_id, _, _) in recorded.items()}
        waiting = [documents[d] for d in sorted(entry_of) if d in documents and documents[d].status in CONFIRMABLE]
        posted: set[str] = set()
        if waiting:
            # what each document holds on its commitment becomes consumed in the write that records
            # it posted, the commitments locked first, as everywhere (``services.matching``)
            locked = lock_held(uow, waiting)
            changes = [
                DocumentChange(
                    d.id,
                    (d.status,),
                    {
                        "status": S.POSTED,
                        "status_changed_at": now,
                        "journal_ref": entry_of[d.id],
                        "failure_reason": None,
                        "lease_token": None,
                        "lease_expires_at": None,
                    },
                    now,
                    steps=(Step(d.status, S.POSTED, by, f"journal {entry_of[d.id]} confirmed by {by}"),),
                )
                for d in waiting
            ]
            written = uow.documents.write_many(changes)
            posted = {change.document_id for change, one in zip(changes, written, strict=True) if one.changed}
            consume_held_of(uow, [d for d in waiting if d.id in posted], locked, at=now)
        uow.commit()
    answers: dict[str, Confirmed] = {}
    for entry_id in ids:
        if entry_id in recorded:
            document_id, confirmed_at, confirmed_by = recorded[entry_id]
            document = documents.get(document_id)
            status = S.POSTED if document_id in posted else (document.status if document is not None else "?")
            answers[entry_id] = Confirmed(entry_id, document_id, confirmed_at, confirmed_by, status)
    return answers


# --- payments -------------------------------------------------------------------------------------


def record_payment(
    uow_factory: Callable[[], UnitOfWork],
    erp: ErpView,
    document_id: str,
    *,
    paid_on: date,
    amount: Decimal | None = None,
    reference: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ERP paid the document: keep the payment and write the supplier's Invoice Response
    ``PD`` in one guarded write (the document must be ``posted``, its responses end with ``AP``).
    The same payment reported again answers as the first, with ``recorded`` false. Raises
    NotFoundError (no such document, or one of an institution the ERP does not serve),
    PaymentError (an amount other than the amount due, BT-115), ConflictError (not posted, not
    approved to the supplier, or paid before with other figures)."""
    now = now or _now()
    reference = (reference or "").strip()[:200] or None
    with uow_factory() as uow:
        document = uow.documents.get(document_id)
        if document is None or document.institution_id not in erp.institution_ids:
            raise NotFoundError(f"no document {document_id}")
        due = document.payable_amount
        amount = due if amount is None else amount
        if amount is None or due is None or amount != due:
            raise PaymentError(
                f"the amount paid ({amount}) is not the amount due ({due}); only full payments are recorded"
            )
        earlier = uow.posting.payment(document_id)
        if earlier is not None:
            if (earlier.paid_on, earlier.amount, earlier.reference) != (paid_on, amount, reference):
                raise ConflictError(
                    f"document {document_id} was recorded paid on {earlier.paid_on} already",
                    document_id=document_id,
                    status=document.status,
                )
            return _payment_dict(earlier, recorded=False)
        if document.status != S.POSTED:
            raise ConflictError(
                f"document {document_id} is {document.status}, not posted: nothing to pay",
                document_id=document_id,
                status=document.status,
            )
        codes = prior_codes(uow.documents.responses(document_id))
        if "AP" not in codes or not may_follow(codes, "PD"):
            raise ConflictError(
                f"document {document_id} was not approved to its supplier (AP): no payment response may follow",
                document_id=document_id,
                status=document.status,
            )
        note = f"paid on {paid_on.isoformat()}" + (f", reference {reference}" if reference else "")
        payment = {
            "erp_id": erp.id,
            "paid_on": paid_on,
            "amount": amount,
            "reference": reference,
            "recorded_at": now,
        }
        written = uow.documents.write(
            DocumentChange(
                document_id,
                (S.POSTED,),
                {"status": S.POSTED},
                now,
                steps=(Step(S.POSTED, S.POSTED, erp.actor, note),),
                rows={
                    PaymentRow.__tablename__: [payment],
                    ResponseRow.__tablename__: [invoice_response_row("PD", now, note=note)],
                },
            )
        )
        if not written.changed:
            raise ConflictError(f"document {document_id} changed meanwhile", document_id=document_id)
        uow.commit()
        kept = PaymentRow(document_id=document_id, **payment)
    return _payment_dict(kept, recorded=True)


def _payment_dict(row: PaymentRow, *, recorded: bool) -> dict[str, Any]:
    return {
        "document_id": row.document_id,
        "paid_on": row.paid_on.isoformat(),
        "amount": str(row.amount),
        "reference": row.reference,
        "response": "PD",
        "recorded": recorded,
    }


__all__ = [
    "ACK_TRANSACTION",
    "CONFIRMABLE",
    "Confirmed",
    "ErpView",
    "acknowledge",
    "acknowledge_many",
    "add_erp",
    "authenticate_erp",
    "confirm_entries",
    "confirm_entry",
    "pull",
    "record_payment",
]
