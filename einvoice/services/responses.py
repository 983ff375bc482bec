"""The responses a document got: the rows the pipeline and the decisions write (``invoice_response_row``,
``message_level_response_row``), and what a supplier reads (``list_responses``, ``response_xml``).

A response is stored as its facts (``store.tables.ResponseRow``), written in the same write as the
change of state that causes it:

- validation's ``rejected`` (verdict ``invalid`` or ``unsupported``): a Message Level Response, code
  ``RE``, whose line responses are the document's fatal findings;
- matching's ``exception``, and ``matched`` left for a person by the approval policy: ``IP``;
  ``approved`` by the policy: ``AP``;
- a person's decision (``services.review.decide``): ``UQ`` (query), ``RE`` (reject), ``AP``
  (approve), ``IP`` (the first of two approvals), each only where it may follow the responses
  before it (``responses.codes.may_follow``).

Its XML is built when it is read, from the row, the document, its findings and its parties (the
institution sends, the supplier receives), by the pure builders of ``einvoice.responses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from einvoice.errors import NotFoundError
from einvoice.responses import DOCUMENT_TYPE_CODES, Answered, Party, invoice_response, message_level_response
from einvoice.store import UnitOfWork
from einvoice.store.ports import DocumentRecord, ResponseRecord
from einvoice.store.tables import ResponseRow, new_id

INVOICE_RESPONSE = "invoice-response"
MESSAGE_LEVEL_RESPONSE = "message-level-response"
TABLE = ResponseRow.__tablename__


def invoice_response_row(
    code: str, at: datetime, *, reason: str | None = None, action: str | None = None, note: str | None = None
) -> dict[str, Any]:
    """The ``responses`` row of an Invoice Response, for a ``DocumentChange``'s ``rows``."""
    return {
        "kind": INVOICE_RESPONSE,
        "code": code,
        "reason": reason,
        "action": action,
        "note": note[:4000] if note else None,
        "number": new_id(),
        "issued_at": at,
    }


def message_level_response_row(at: datetime, note: str | None = None) -> dict[str, Any]:
    """The ``responses`` row of a Message Level Response rejecting the document."""
    return {
        "kind": MESSAGE_LEVEL_RESPONSE,
        "code": "RE",
        "reason": None,
        "action": None,
        "note": note,
        "number": new_id(),
        "issued_at": at,
    }


@dataclass(frozen=True, slots=True)
class ResponseView:
    id: int
    document_id: str
    kind: str
    code: str
    reason: str | None
    action: str | None
    note: str | None
    issued_at: datetime

    @property
    def url(self) -> str:
        return f"/v1/documents/{self.document_id}/responses/{self.id}.xml"

    def to_dict(self) -> dict[str, Any]:
        """The API's form (``GET /v1/documents/{id}/responses``)."""
        return {
            "id": self.id,
            "type": self.kind,
            "code": self.code,
            "issued_at": self.issued_at.isoformat(),
            "reason": self.reason,
            "action": self.action,
            "note": self.note,
            "url": self.url,
        }


def response_view(row: ResponseRecord) -> ResponseView:
    return ResponseView(row.id, row.document_id, row.kind, row.code, row.reason, row.action, row.note, row.issued_at)


def _own(uow: UnitOfWork, document_id: str, supplier_id: str | None) -> DocumentRecord:
    row = uow.documents.get(document_id)
    if row is None or (supplier_id is not None and row.supplier_id != supplier_id):
        raise NotFoundError(f"no document {document_id}")
    return row


def list_responses(uow: UnitOfWork, document_id: str, *, supplier_id: str | None = None) -> list[ResponseView]:
    """The responses the document got, oldest first. NotFoundError for an unknown document or
    another supplier's."""
    with uow:
        _own(uow, document_id, supplier_id)
        return [response_view(r) for r in uow.documents.responses(document_id)]


def prior_codes(rows: Sequence[ResponseRecord]) -> list[str]:
    """The Invoice Response codes among ``rows``, for ``may_follow``."""
    return [r.code for r in rows if r.kind == INVOICE_RESPONSE]


def response_xml(uow: UnitOfWork, document_id: str, response_id: int, *, supplier_id: str | None = None) -> bytes:
    """The response's UBL ApplicationResponse. NotFoundError for an unknown document or response,
    or another supplier's."""
    with uow:
        document = _own(uow, document_id, supplier_id)
        row = uow.documents.response(document_id, response_id)
        if row is None:
            raise NotFoundError(f"no response {response_id} of document {document_id}")
        institution = uow.institutions.get(document.institution_id) if document.institution_id else None
        supplier = uow.suppliers.get(document.supplier_id)
        if institution is not None:
            sender = Party(institution.endpoint_scheme, institution.endpoint_id, institution.name)
        else:  # pragma: no cover - a document without a buyer is refused at intake and never answered
            sender = Party.from_endpoint(document.buyer_endpoint or "", "")
        if supplier is not None:
            receiver = Party(supplier.endpoint_scheme, supplier.endpoint_id, supplier.name)
        else:  # pragma: no cover - suppliers are never deleted
            receiver = Party.from_endpoint(document.seller_endpoint or "", "")
        answered = Answered(
            document.number or document.id, DOCUMENT_TYPE_CODES.get(document.document_type or "", "380")
        )
        if row.kind == MESSAGE_LEVEL_RESPONSE:
            findings = list(uow.documents.findings(document_id))
            return message_level_response(
                response_id=row.number,
                issued_at=row.issued_at,
                sender=sender,
                receiver=receiver,
                answered=answered,
                findings=findings,
            )
        return invoice_response(
            response_id=row.number,
            issued_at=row.issued_at,
            sender=sender,
            receiver=receiver,
            answered=answered,
            code=row.code,
            reason=row.reason,
            action=row.action,
            note=row.note,
        )


__all__ = [
    "INVOICE_RESPONSE",
    "MESSAGE_LEVEL_RESPONSE",
    "ResponseView",
    "invoice_response_row",
    "list_responses",
    "message_level_response_row",
    "response_xml",
]
