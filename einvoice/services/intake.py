"""Intake: take a supplier's bytes, decide at once whether the engine accepts them, and record them.

Runs inside the HTTP request, so it does only what is quick: a size check, a safe parse, the
few fields needed to route and deduplicate, and checks of who sent it and to whom. Validation
(XSD and Schematron) runs later in the worker.

What gets recorded:
- accepted: the document row, its raw bytes, the first transition and an outbox row asking for
  validation, in one transaction;
- refused but well-formed (not an invoice or credit note, unknown buyer): a document in state
  ``refused`` with the reason, so the supplier can look it up; the raised error carries its id;
- not well-formed, unsafe or too large, or sent by someone who is not the seller: nothing.

The same bytes from the same supplier (or the same Idempotency-Key) return the first document;
concurrent submissions race on a unique constraint and the losers return the winner's row.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from lxml import etree

from einvoice import errors
from einvoice.domain.findings import RULE_UNKNOWN_BUYER, RULE_UNSUPPORTED, Finding, Layer, Severity
from einvoice.domain.states import DocumentStatus
from einvoice.errors import DuplicateKeyError, IdempotencyConflictError, SellerMismatchError, UnknownBuyerError
from einvoice.parsers import safe_xml
from einvoice.parsers.ubl import DocumentHeader, read_header
from einvoice.services import (
    DocumentView,
    SupplierView,
    document_view,
    finding_values,
)
from einvoice.services.accounts import compact_identifier
from einvoice.services.responses import invoice_response_row
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.ports import DocumentRecord
from einvoice.store.tables import DocumentRow, ResponseRow, column_length, new_id
from einvoice.store.writes import DocumentChange, Step

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTOR = "api"


# --- errors --------------------------------------------------------------------------------------
# UnknownBuyerError, SellerMismatchError and IdempotencyConflictError are defined in einvoice.errors
# and stay importable from here, where they were first defined.

_REFUSALS: dict[str, type[errors.IntakeError]] = {
    "unsupported-document": errors.UnsupportedDocumentError,
    "unknown-buyer": UnknownBuyerError,
}
_RULE_OF = {"unsupported-document": RULE_UNSUPPORTED, "unknown-buyer": RULE_UNKNOWN_BUYER}


# --- what intake reads from a document ----------------------------------------------------------

#: The fields intake needs, read by ``parsers.ubl.read_header``; everything else is the parser's and
#: the validators' business.
IntakeFields = DocumentHeader


def safe_parse(raw: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """Parse ``raw`` with no DTD, no entities, no network, bounded size and depth; return the root.

    Raises DocumentTooLargeError, UnsafeXmlError, NotWellFormedError (``parsers.safe_xml``).
    """
    return safe_xml.parse(raw, max_bytes=max_bytes, max_depth=max_depth).getroot()


# --- checks --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SellerIdentifier:
    """One identifier a document states for its seller, and the supplier's own of its kind."""

    term: str  # what it is, in the standard's words: "VAT identifier (BT-31)"
    value: str  # as the document writes it
    registered: str | None  # the supplier's registered identifier of this kind, compact

    @property
    def compact(self) -> str:
        return compact_identifier(self.value) or ""


@dataclass(frozen=True, slots=True)
class SellerCheck:
    """What the seller check found without the register: a reason the supplier is not the seller
    (``refusal``), or the identifiers of kinds the supplier has not registered, which must not be
    registered to another supplier (``to_confirm``)."""

    refusal: str | None
    to_confirm: tuple[SellerIdentifier, ...] = ()


def seller_identifiers(supplier: SupplierView, fields: IntakeFields) -> tuple[SellerIdentifier, ...]:
    """Every identifier the document states for its seller, beside the supplier's own of its kind."""
    kinds = (
        ("VAT identifier (BT-31)", fields.seller_vat_ids, supplier.vat_id),
        ("tax registration identifier (BT-32)", fields.seller_tax_ids, supplier.tax_id),
        ("legal registration identifier (BT-30)", fields.seller_legal_ids, supplier.legal_id),
    )
    return tuple(SellerIdentifier(term, value, registered) for term, values, registered in kinds for value in values)


def check_seller(supplier: SupplierView, fields: IntakeFields) -> SellerCheck:
    """The seller must be the authenticated supplier by every identifier the document states:

    - the endpoint (BT-34) must be the supplier's registered endpoint;
    - each VAT identifier (BT-31, tax scheme ``VAT``), tax registration identifier (BT-32, any
      other tax scheme) and legal registration identifier (BT-30) must be the supplier's own: equal
      to the one registered for the supplier when it registered one of that kind, and, when it did
      not, registered to no other supplier (``SellerCheck.to_confirm``, checked by the caller).

    Identifiers are compared in their compact form (no white space, upper case)."""
    endpoint = ":".join(fields.seller_endpoint) if fields.seller_endpoint else None
    if endpoint is None:
        return SellerCheck("the document states no seller endpoint (BT-34), so it cannot be the supplier's")
    if compact_identifier(endpoint) != compact_identifier(supplier.endpoint):
        return SellerCheck(
            f"the seller endpoint (BT-34) {endpoint} is not the authenticated supplier's endpoint {supplier.endpoint}"
        )
    to_confirm: list[SellerIdentifier] = []
    for identifier in seller_identifiers(supplier, fields):
        if identifier.registered is None:
            to_confirm.append(identifier)
        elif identifier.compact != identifier.registered:
            return SellerCheck(
                f"the seller's {identifier.term} {identifier.value} is not the authenticated supplier's "
                f"({identifier.registered})"
            )
    return SellerCheck(None, tuple(to_confirm))


def _confirm_seller(uow: UnitOfWork, supplier: SupplierView, check: SellerCheck) -> None:
    """Raise SellerMismatchError naming the first identifier of ``check.to_confirm`` that another
    supplier has registered."""
    if not check.to_confirm:
        return
    held = uow.suppliers.holding_identifiers({i.compact for i in check.to_confirm}, other_than=supplier.id)
    for identifier in check.to_confirm:
        if identifier.compact in held:
            raise SellerMismatchError(
                f"the seller's {identifier.term} {identifier.value} is registered to another supplier"
            )


# --- the use case --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitOutcome:
    """``created`` is True when this call accepted the document, False when it returned the
    document an earlier call (same bytes or same Idempotency-Key) accepted."""

    document: DocumentView
    created: bool


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str  # key of _REFUSALS
    reason: str

    def error(self, document_id: str | None) -> errors.IntakeError:
        return _REFUSALS[self.code](self.reason, document_id=document_id, findings=(self.finding(),))

    def finding(self) -> Finding:
        return Finding(rule=_RULE_OF[self.code], severity=Severity.FATAL, layer=Layer.INTAKE, message=self.reason)


def submit_document(
    uow_factory: Callable[[], UnitOfWork],
    *,
    supplier: SupplierView,
    raw: bytes,
    idempotency_key: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> SubmitOutcome:
    """Accept, return the earlier copy of, or refuse a supplier's document.

    Returns a SubmitOutcome. Raises TransientError when the database is unreachable;
    DocumentTooLargeError, UnsafeXmlError, NotWellFormedError
    (nothing recorded); UnsupportedDocumentError, UnknownBuyerError (recorded as ``refused``, the
    error's ``document_id`` says where); SellerMismatchError (nothing recorded);
    IdempotencyConflictError when the key was used for other bytes.
    """
    now = now or datetime.now(UTC)
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()[:200] or None
    sha256 = hashlib.sha256(raw).hexdigest()

    # Parse before touching the database: a bad document never costs a transaction.
    root = safe_parse(raw, max_bytes=settings.max_document_bytes, max_depth=settings.max_xml_depth)
    refusal: _Refusal | None = None
    fields: IntakeFields | None = None
    try:
        fields = read_header(root)
    except errors.UnsupportedDocumentError as exc:
        refusal = _Refusal("unsupported-document", str(exc))
    seller = check_seller(supplier, fields) if fields is not None else SellerCheck(None)
    if seller.refusal is not None:
        raise SellerMismatchError(seller.refusal)

    for attempt in range(3):
        try:
            # First try as a new document: the unique constraints on (supplier, sha256) and
            # (supplier, key) catch a repeat, and only then are earlier copies looked up.
            return _record(
                uow_factory,
                supplier,
                raw,
                sha256,
                idempotency_key,
                fields,
                refusal,
                now,
                seller=seller,
                look_first=attempt > 0,
            )
        except DuplicateKeyError:
            # Another request stored the same bytes (or key) between our lookup and insert;
            # the next pass finds its row.
            log.debug("intake race on supplier %s sha256 %s; looking up the winner", supplier.id, sha256)
    raise errors.TransientError("could not record the document after repeated conflicts")


#: Institutions by endpoint, per engine, for ``INSTITUTION_TTL`` seconds: every submission names
#: one, they are added rarely and never removed. Only found ones are kept (a newly registered
#: institution is seen at once).
_institutions: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[float, str]]] = weakref.WeakKeyDictionary()
INSTITUTION_TTL = 60.0


def _institution_id(uow: UnitOfWork, endpoint: tuple[str, str]) -> str | None:
    cache = _institutions.setdefault(uow.scope, {})
    hit = cache.get(endpoint)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    institution = uow.institutions.by_endpoint(*endpoint)
    if institution is None:
        return None
    if len(cache) > 10_000:
        cache.clear()
    cache[endpoint] = (time.monotonic() + INSTITUTION_TTL, institution.id)
    return institution.id


def _record(
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    raw: bytes,
    sha256: str,
    idempotency_key: str | None,
    fields: IntakeFields | None,
    refusal: _Refusal | None,
    now: datetime,
    *,
    seller: SellerCheck,
    look_first: bool = True,
) -> SubmitOutcome:
    with uow_factory() as uow:
        _confirm_seller(uow, supplier, seller)
        existing = uow.documents.by_sha256(supplier.id, sha256) if look_first else None
        if look_first and existing is None and idempotency_key is not None:
            existing = uow.documents.by_idempotency_key(supplier.id, idempotency_key)
            if existing is not None and existing.sha256 != sha256:
                raise IdempotencyConflictError(
                    f"Idempotency-Key {idempotency_key!r} was used for a different document ({existing.id})"
                )

        institution_id = None
        if fields is not None and refusal is None:
            institution_id = _institution_id(uow, fields.buyer_endpoint) if fields.buyer_endpoint else None
            if institution_id is None:
                shown = ":".join(fields.buyer_endpoint) if fields.buyer_endpoint else "none"
                refusal = _Refusal(
                    "unknown-buyer", f"the buyer endpoint (BT-49) {shown} is not a registered institution"
                )

        if existing is not None:
            return _repeat(uow, existing, institution_id, refusal, now)

        values = _document_values(supplier, raw, sha256, idempotency_key, fields, institution_id, refusal, now)
        if refusal is not None:
            uow.documents.add_refused(
                values, raw, actor=ACTOR, detail=refusal.reason, findings=[finding_values(refusal.finding())]
            )
            uow.commit()
            raise refusal.error(values["id"])
        values["suspected_duplicate_of"] = uow.documents.add_received(
            values,
            raw,
            actor=ACTOR,
            next_action="validate",
            not_duplicate_of=(DocumentStatus.REFUSED,),
            commit=True,
            rows={ResponseRow.__tablename__: [invoice_response_row("AB", now)]},
        )
        uow.commit()
    return SubmitOutcome(document=_new_view(values), created=True)


def _document_values(
    supplier: SupplierView,
    raw: bytes,
    sha256: str,
    idempotency_key: str | None,
    fields: IntakeFields | None,
    institution_id: str | None,
    refusal: _Refusal | None,
    now: datetime,
) -> dict[str, Any]:
    """The new document's columns (the ones intake sets; the rest start empty)."""
    values: dict[str, Any] = {
        "id": new_id(),
        "supplier_id": supplier.id,
        "institution_id": institution_id,
        "status": DocumentStatus.REFUSED if refusal else DocumentStatus.RECEIVED,
        "sha256": sha256,
        "size": len(raw),
        "idempotency_key": idempotency_key,
        "received_at": now,
        "status_changed_at": now,
        "refusal_code": refusal.code if refusal else None,
        "refusal_reason": refusal.reason if refusal else None,
        "document_type": None,
        "customization_id": None,
        "number": None,
        "issue_date": None,
        "issue_year": None,
        "currency": None,
        "payable_amount": None,
        "seller_endpoint": None,
        "seller_vat_id": None,
        "seller_legal_id": None,
        "buyer_endpoint": None,
    }
    if fields is not None:
        values["document_type"] = fields.document_type
        values["customization_id"] = _fitted("customization_id", fields.customization_id)
        values["number"] = _fitted("number", fields.number)
        values["issue_date"] = fields.issue_date
        values["issue_year"] = fields.issue_date.year if fields.issue_date else None
        values["currency"] = _whole_or_none("currency", fields.currency)
        values["payable_amount"] = _whole_or_none("payable_amount", fields.payable_amount)
        values["seller_endpoint"] = _fitted("seller_endpoint", ":".join(fields.seller_endpoint or ()) or None)
        values["seller_vat_id"] = _fitted("seller_vat_id", fields.seller_vat_ids[0] if fields.seller_vat_ids else None)
        values["seller_legal_id"] = _fitted(
            "seller_legal_id", fields.seller_legal_ids[0] if fields.seller_legal_ids else None
        )
        values["buyer_endpoint"] = _fitted("buyer_endpoint", ":".join(fields.buyer_endpoint or ()) or None)
    return values


def _whole_or_none(column: str, value: T | None) -> T | None:
    """A value read from the document when its text fits its column whole, else None: a code or
    an amount cut short would be another one (validation reports the value in the document)."""
    return value if value is not None and len(str(value)) <= column_length(DocumentRow, column) else None


def _fitted(column: str, value: str | None) -> str | None:
    """A value read from the document, cut to the length of its column. These columns serve
    lists and lookups; the stored bytes keep every value whole, and validation reads those. (A
    document is never refused, or lost, because a supplier wrote a 300-character number.)"""
    if value is None:
        return None
    length = column_length(DocumentRow, column)
    return value if len(value) <= length else value[:length]


def _new_view(values: dict[str, Any]) -> DocumentView:
    """The view of a document just stored from ``values``, without reading it back."""
    return DocumentView(
        id=values["id"],
        supplier_id=values["supplier_id"],
        institution_id=values["institution_id"],
        status=values["status"],
        sha256=values["sha256"],
        size=values["size"],
        document_type=values["document_type"],
        number=values["number"],
        issue_date=values["issue_date"],
        currency=values["currency"],
        payable_amount=values["payable_amount"],
        seller_endpoint=values["seller_endpoint"],
        buyer_endpoint=values["buyer_endpoint"],
        received_at=values["received_at"],
        status_changed_at=values["status_changed_at"],
        suspected_duplicate_of=values["suspected_duplicate_of"],
        refusal_code=values["refusal_code"],
        refusal_reason=values["refusal_reason"],
    )


def _repeat(
    uow: UnitOfWork,
    existing: DocumentRecord,
    institution_id: str | None,
    refusal: _Refusal | None,
    now: datetime,
) -> SubmitOutcome:
    """The same bytes (or key) again. An accepted document is returned as it is. A refused one is
    refused again, unless what refused it has changed (its buyer has been registered since): then
    it is accepted now, under its first id."""
    if existing.status != DocumentStatus.REFUSED:
        return SubmitOutcome(document=document_view(existing), created=False)
    if refusal is not None:
        raise refusal.error(existing.id)
    # Entering the pipeline now: the same duplicate check as a new document's (add_received).
    earlier = uow.documents.earlier_with_key(existing.number_key, not_duplicate_of=(DocumentStatus.REFUSED,))
    detail = "submitted again and accepted: the buyer is now registered"
    change = DocumentChange(
        existing.id,
        (DocumentStatus.REFUSED,),
        {
            "status": DocumentStatus.RECEIVED,
            "status_changed_at": now,
            "institution_id": institution_id,
            "refusal_code": None,
            "refusal_reason": None,
            "suspected_duplicate_of": earlier,
        },
        now,
        steps=(
            Step(
                DocumentStatus.REFUSED,
                DocumentStatus.RECEIVED,
                ACTOR,
                f"{detail}; suspected duplicate of {earlier}" if earlier else detail,
            ),
        ),
        findings=[],
        message="validate",
        rows={ResponseRow.__tablename__: [invoice_response_row("AB", now)]},
    )
    accepted = uow.documents.write(change).changed
    row = uow.documents.get(existing.id)  # accepted here, or by another submission of it
    assert row is not None
    view = document_view(row)
    uow.commit()
    return SubmitOutcome(document=view, created=accepted)
