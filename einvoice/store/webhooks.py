"""The suppliers' webhooks and their deliveries in SQL (``webhooks``, ``webhook_deliveries``).

Not part of the unit of work: a delivery is not part of any stage's write. The stages write
responses (``ResponseRow``) as they always did; ``scan`` finds the responses of suppliers with a
webhook that have no delivery yet and records one, and ``claim_due`` hands the relay the
deliveries whose time has come, moving their next attempt a lease ahead so that another relay (or
this one's next round) does not send them to the queue twice. Each method is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from einvoice.store.ports import DeliveryJob, FailedDelivery, ResponseRecord, WebhookView, record_of
from einvoice.store.tables import DocumentRow, ResponseRow, WebhookDeliveryRow, WebhookRow, new_id

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
#: How old a response id must be before the scan stops looking below it (far longer than any write).
SETTLE = timedelta(minutes=10)


class SqlWebhookStore:
    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._sessions = session_factory

    @classmethod
    def for_engine(cls, engine: Engine) -> SqlWebhookStore:
        return cls(sessionmaker(engine, expire_on_commit=False))

    def get(self, supplier_id: str) -> WebhookView | None:
        with self._sessions() as session:
            row = session.get(WebhookRow, supplier_id)
            return None if row is None else WebhookView(row.url, row.created_at, row.rotated_at)

    def put(self, supplier_id: str, url: str, secret: str, *, now: datetime) -> WebhookView:
        """Register (from the newest response on) or replace the URL and rotate the secret."""
        with self._sessions() as session, session.begin():
            row = session.get(WebhookRow, supplier_id, with_for_update=True)
            if row is None:
                since = session.scalar(select(func.coalesce(func.max(ResponseRow.id), 0))) or 0
                row = WebhookRow(
                    supplier_id=supplier_id, url=url, secret=secret, since_response_id=since, created_at=now
                )
                session.add(row)
            else:
                row.url, row.secret, row.rotated_at = url, secret, now
            return WebhookView(row.url, row.created_at, row.rotated_at)

    def delete(self, supplier_id: str) -> bool:
        """Remove the webhook and the deliveries still pending; False when there was none."""
        with self._sessions() as session, session.begin():
            row = session.get(WebhookRow, supplier_id)
            if row is None:
                return False
            session.execute(
                delete(WebhookDeliveryRow).where(
                    WebhookDeliveryRow.supplier_id == supplier_id, WebhookDeliveryRow.status == PENDING
                )
            )
            session.delete(row)
            return True

    def failures(self, supplier_id: str, *, limit: int) -> list[FailedDelivery]:
        """The supplier's dead-lettered deliveries, newest first."""
        with self._sessions() as session:
            rows = session.execute(
                select(WebhookDeliveryRow, ResponseRow.document_id)
                .join(ResponseRow, ResponseRow.id == WebhookDeliveryRow.response_id)
                .where(WebhookDeliveryRow.supplier_id == supplier_id, WebhookDeliveryRow.status == DEAD)
                .order_by(WebhookDeliveryRow.finished_at.desc(), WebhookDeliveryRow.id)
                .limit(limit)
            ).all()
            return [
                FailedDelivery(d.id, d.response_id, document_id, d.attempts, d.last_error or "", d.finished_at)
                for d, document_id in rows
            ]

    def scan(self, *, now: datetime, limit: int) -> int:
        """Record a pending delivery for each new response of a supplier with a webhook (at most
        ``limit``); return how many."""
        with self._sessions() as session, session.begin():
            # The lowest scan start of any webhook, as a constant: the responses after it are read
            # by their key (the join's condition alone lets the planner read every response).
            floor = session.scalar(select(func.min(WebhookRow.since_response_id)))
            if floor is None:  # no webhook: nothing to look for
                return 0
            found = session.execute(
                select(ResponseRow.id, DocumentRow.supplier_id)
                .join(DocumentRow, DocumentRow.id == ResponseRow.document_id)
                .join(WebhookRow, WebhookRow.supplier_id == DocumentRow.supplier_id)
                .outerjoin(WebhookDeliveryRow, WebhookDeliveryRow.response_id == ResponseRow.id)
                .where(
                    ResponseRow.id > floor,
                    ResponseRow.id > WebhookRow.since_response_id,
                    WebhookDeliveryRow.id.is_(None),
                )
                .order_by(ResponseRow.id)
                .limit(limit)
            ).all()
            if len(found) < limit:  # caught up: every response visible now has its delivery
                self._advance(session, now)
            if not found:
                return 0
            session.execute(
                insert(WebhookDeliveryRow),
                [
                    {
                        "id": new_id(),
                        "response_id": response_id,
                        "supplier_id": supplier_id,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for response_id, supplier_id in found
                ],
            )
            return len(found)

    @staticmethod
    def _advance(session: Session, now: datetime) -> None:
        """Move each webhook's scan start up, so that the scan reads only recent responses: to the
        last response id seen ``SETTLE`` ago, when the scan has caught up (a response numbered
        before then, committed since, was seen by a scan in between: no stage's write lasts that
        long); then note the last response id now, for the next move."""
        last = session.scalar(select(func.coalesce(func.max(ResponseRow.id), 0))) or 0
        for row in session.scalars(select(WebhookRow).with_for_update(skip_locked=True)):
            if row.next_since_at is not None and row.next_since_at <= now - SETTLE:
                row.since_response_id = max(row.since_response_id, row.next_since_response_id or 0)
                row.next_since_response_id = row.next_since_at = None
            if row.next_since_at is None and last > row.since_response_id:
                row.next_since_response_id, row.next_since_at = last, now

    def claim_due(self, *, now: datetime, lease: timedelta, limit: int) -> list[str]:
        """The ids of pending deliveries due by ``now`` (oldest first), each put ``lease`` ahead."""
        with self._sessions() as session, session.begin():
            rows = session.scalars(
                select(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= now)
                .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.next_attempt_at = now + lease
            return [row.id for row in rows]

    def job(self, delivery_id: str) -> DeliveryJob | None:
        """What one attempt needs, or None when the delivery is no longer pending or its webhook is gone."""
        with self._sessions() as session:
            found = session.execute(
                select(WebhookDeliveryRow, WebhookRow, ResponseRow)
                .join(WebhookRow, WebhookRow.supplier_id == WebhookDeliveryRow.supplier_id)
                .join(ResponseRow, ResponseRow.id == WebhookDeliveryRow.response_id)
                .where(WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.status == PENDING)
            ).first()
            if found is None:
                return None
            delivery, webhook, response = found
            return DeliveryJob(
                delivery.id, delivery.attempts, webhook.url, webhook.secret, record_of(ResponseRecord, response)
            )

    def record(self, delivery_id: str, *, error: str | None, now: datetime, retry_at: datetime | None) -> None:
        """One attempt's end: delivered (``error`` None), to be retried at ``retry_at``, or dead."""
        with self._sessions() as session, session.begin():
            row = session.get(WebhookDeliveryRow, delivery_id, with_for_update=True)
            if row is None or row.status != PENDING:
                return
            row.attempts += 1
            row.last_error = error
            if error is None or retry_at is None:
                row.status = DELIVERED if error is None else DEAD
                row.finished_at = now
            else:
                row.next_attempt_at = retry_at
