"""Use cases: accounts, intake, processing stages, queries, the sweeper.

Each takes a unit of work (or a factory of them) and the ports it needs as parameters; nothing
here creates an engine or a broker. This module holds what they share: the read-only views
services return (the document states live in ``einvoice.domain.states`` and are re-exported here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from einvoice.domain.findings import Finding
from einvoice.domain.states import DocumentStatus
from einvoice.store.ports import DocumentRecord, InstitutionRecord, SupplierRecord, TransitionRecord


@dataclass(frozen=True, slots=True)
class InstitutionView:
    id: str
    name: str
    endpoint: str  # "scheme:id", BT-49 of documents addressed to it
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "endpoint": self.endpoint, "created_at": _iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class SupplierView:
    id: str
    name: str
    endpoint: str  # "scheme:id", BT-34
    vat_id: str | None  # BT-31
    legal_id: str | None  # BT-30
    active: bool
    created_at: datetime
    tax_id: str | None = None  # BT-32

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "vat_id": self.vat_id,
            "legal_id": self.legal_id,
            "tax_id": self.tax_id,
            "active": self.active,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class TransitionView:
    from_status: str | None
    to_status: str
    actor: str  # "api", "worker:validate", "sweeper", ...
    at: datetime
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        """The field names of the API's history entries (``api.models.Transition``)."""
        return {
            "from_status": self.from_status,
            "to_status": self.to_status,
            "actor": self.actor,
            "at": _iso(self.at),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class DocumentView:
    """A document as services hand it out. ``history`` and ``findings`` are empty in lists."""

    id: str
    supplier_id: str
    institution_id: str | None
    status: str
    sha256: str
    size: int
    document_type: str | None  # invoice | credit_note
    number: str | None  # BT-1
    issue_date: date | None  # BT-2
    currency: str | None  # BT-5
    payable_amount: Decimal | None  # BT-115
    seller_endpoint: str | None  # BT-34
    buyer_endpoint: str | None  # BT-49
    received_at: datetime
    status_changed_at: datetime
    suspected_duplicate_of: str | None
    refusal_code: str | None = None
    refusal_reason: str | None = None
    failure_reason: str | None = None
    match_result: dict[str, Any] | None = None
    journal_ref: str | None = None
    #: What validation ran (``ValidationReport.rule_set()``); None before validation.
    ruleset: dict[str, Any] | None = None
    history: tuple[TransitionView, ...] = field(default=())
    findings: tuple[Finding, ...] = field(default=())

    @property
    def is_refused(self) -> bool:
        return self.status == DocumentStatus.REFUSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "supplier_id": self.supplier_id,
            "institution_id": self.institution_id,
            "status": self.status,
            "sha256": self.sha256,
            "size": self.size,
            "document_type": self.document_type,
            "number": self.number,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "currency": self.currency,
            "payable_amount": str(self.payable_amount) if self.payable_amount is not None else None,
            "seller_endpoint": self.seller_endpoint,
            "buyer_endpoint": self.buyer_endpoint,
            "received_at": _iso(self.received_at),
            "status_changed_at": _iso(self.status_changed_at),
            "suspected_duplicate_of": self.suspected_duplicate_of,
            "refusal_code": self.refusal_code,
            "refusal_reason": self.refusal_reason,
            "failure_reason": self.failure_reason,
            "match_result": self.match_result,
            "journal_ref": self.journal_ref,
            "ruleset": self.ruleset,
            "history": [t.to_dict() for t in self.history],
            "findings": [f.to_dict() for f in self.findings],
        }


def _iso(value: datetime) -> str:
    return value.isoformat()


# --- record -> view ---------------------------------------------------------------------------------


def institution_view(row: InstitutionRecord) -> InstitutionView:
    return InstitutionView(
        id=row.id, name=row.name, endpoint=f"{row.endpoint_scheme}:{row.endpoint_id}", created_at=row.created_at
    )


def supplier_view(row: SupplierRecord) -> SupplierView:
    return SupplierView(
        id=row.id,
        name=row.name,
        endpoint=f"{row.endpoint_scheme}:{row.endpoint_id}",
        vat_id=row.vat_id,
        legal_id=row.legal_id,
        tax_id=row.tax_id,
        active=row.active,
        created_at=row.created_at,
    )


def transition_view(row: TransitionRecord) -> TransitionView:
    return TransitionView(
        from_status=row.from_status, to_status=row.to_status, actor=row.actor, at=row.at, detail=row.detail
    )


def finding_values(finding: Finding) -> dict[str, Any]:
    """The finding as column values of the findings table (for bulk inserts)."""
    return {
        "rule": finding.rule,
        "severity": finding.severity.value,
        "layer": finding.layer.value,
        "message": finding.message,
        "location": finding.location,
        "line": finding.line,
        "test": finding.test,
        "value": finding.value,
        "override": finding.override,
    }


def document_view(
    row: DocumentRecord,
    *,
    history: tuple[TransitionView, ...] = (),
    findings: tuple[Finding, ...] = (),
) -> DocumentView:
    return DocumentView(
        id=row.id,
        supplier_id=row.supplier_id,
        institution_id=row.institution_id,
        status=row.status,
        sha256=row.sha256,
        size=row.size,
        document_type=row.document_type,
        number=row.number,
        issue_date=row.issue_date,
        currency=row.currency,
        payable_amount=row.payable_amount,
        seller_endpoint=row.seller_endpoint,
        buyer_endpoint=row.buyer_endpoint,
        received_at=row.received_at,
        status_changed_at=row.status_changed_at,
        suspected_duplicate_of=row.suspected_duplicate_of,
        refusal_code=row.refusal_code,
        refusal_reason=row.refusal_reason,
        failure_reason=row.failure_reason,
        match_result=json.loads(row.match_result) if row.match_result else None,
        journal_ref=row.journal_ref,
        ruleset=json.loads(row.ruleset) if row.ruleset else None,
        history=history,
        findings=findings,
    )
