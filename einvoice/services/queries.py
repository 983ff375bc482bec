"""Read side: one document with its history and findings, a supplier's list, the raw bytes, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from einvoice.domain.states import DocumentStatus
from einvoice.errors import NotFoundError
from einvoice.services import (
    DocumentView,
    document_view,
    transition_view,
)
from einvoice.services.process import POST, REGISTRY, Ports
from einvoice.store import UnitOfWork

__all__ = ["DocumentView", "MetricsSnapshot", "get_document", "get_raw", "list_documents", "metrics"]

S = DocumentStatus
#: The working states of the stage registry (stage latencies are the time spent in them).
WORKING_STATES = REGISTRY.working_states
#: States in which a document waits for the pipeline (queue lag is the age of the oldest): the
#: registry's waiting states for the stages that always run (``approved`` waits for posting only
#: where an ERP connector is wired; a document in ``posting_failed`` was given one), and its
#: working states.
PIPELINE_WAITING = REGISTRY.waiting_states(Ports()) | {POST.resume} | WORKING_STATES
LATENCY_WINDOW = timedelta(hours=1)
#: Stage latencies are read from at most this many recent transitions: a scrape's cost is bounded.
LATENCY_TRANSITIONS = 5_000


def get_document(uow: UnitOfWork, document_id: str, *, supplier_id: str | None = None) -> DocumentView:
    """The document with its history and findings. Raises NotFoundError when it does not exist
    or belongs to another supplier than ``supplier_id`` (the two are not told apart)."""
    with uow:
        row = uow.documents.get(document_id)
        if row is None or (supplier_id is not None and row.supplier_id != supplier_id):
            raise NotFoundError(f"no document {document_id}")
        history = tuple(transition_view(t) for t in uow.documents.transitions(document_id))
        findings = tuple(uow.documents.findings(document_id))
        return document_view(row, history=history, findings=findings)


def list_documents(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[DocumentView]:
    """The supplier's documents, newest first, without history and findings."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    limit = max(1, min(limit, 1000))
    with uow:
        rows = uow.documents.list_for_supplier(supplier_id, status=status, since=since, limit=limit)
        return [document_view(row) for row in rows]


def get_raw(uow: UnitOfWork, document_id: str, supplier_id: str | None = None) -> bytes:
    """The bytes exactly as received. Raises NotFoundError like ``get_document``."""
    with uow:
        row = uow.documents.get(document_id)
        if row is None or (supplier_id is not None and row.supplier_id != supplier_id):
            raise NotFoundError(f"no document {document_id}")
        raw = uow.documents.raw(document_id)
        if raw is None:  # pragma: no cover - written in the same transaction as the row
            raise NotFoundError(f"no stored bytes for document {document_id}")
        return raw


@dataclass(frozen=True)
class MetricsSnapshot:
    """Figures for operators. Latencies are seconds spent in each working state over the last hour."""

    taken_at: datetime
    documents_by_status: dict[str, int]
    outbox_pending: int
    outbox_lag_seconds: float  # age of the oldest message not yet handed to the broker
    queue_lag_seconds: float  # age of the oldest document waiting for a pipeline step
    stage_latency_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at.isoformat(),
            "documents_by_status": dict(self.documents_by_status),
            "outbox_pending": self.outbox_pending,
            "outbox_lag_seconds": self.outbox_lag_seconds,
            "queue_lag_seconds": self.queue_lag_seconds,
            "stage_latency_seconds": {k: dict(v) for k, v in self.stage_latency_seconds.items()},
        }


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"0.5": at(0.5), "0.95": at(0.95), "1": ordered[-1]}


def metrics(uow: UnitOfWork, *, now: datetime | None = None) -> MetricsSnapshot:
    """Documents by state, outbox and queue lag, and stage latencies (over the newest
    ``LATENCY_TRANSITIONS`` state changes of the last ``LATENCY_WINDOW``, paired by the store)."""
    now = now or datetime.now(UTC)
    with uow:
        by_status = uow.documents.count_by_status()
        pending = uow.outbox.pending_count()
        oldest_outbox = uow.outbox.oldest_pending_created_at()
        oldest_waiting = uow.documents.oldest_status_change(PIPELINE_WAITING)
        durations = uow.documents.stage_durations(now - LATENCY_WINDOW, WORKING_STATES, limit=LATENCY_TRANSITIONS)
    return MetricsSnapshot(
        taken_at=now,
        documents_by_status=by_status,
        outbox_pending=pending,
        outbox_lag_seconds=max(0.0, (now - oldest_outbox).total_seconds()) if oldest_outbox else 0.0,
        queue_lag_seconds=max(0.0, (now - oldest_waiting).total_seconds()) if oldest_waiting else 0.0,
        stage_latency_seconds={stage: _quantiles(values) for stage, values in sorted(durations.items())},
    )
