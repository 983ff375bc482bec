"""The accountants' queue, read in SQL (``ports.ReviewStore``): one page of the documents waiting
for a person, filtered and sorted, and the counts by reason and by institution.

Every query states the queue's predicate as written in ``tables.REVIEW_PREDICATE``, so that the
planner reads the partial indexes made for it (``tables.REVIEW_INDEXES``: one per sort, each
ending with the id that breaks ties). A reason is looked up in ``document_reasons`` (by code,
then document), never in the match result's JSON; the state's own reasons (``APPROVAL_REQUIRED``,
…) by state.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, or_, select, text, tuple_
from sqlalchemy.orm import Session

from einvoice.domain.review import (
    COUNT_LIMIT,
    STATE_REASONS,
    QueueCounts,
    QueueFilter,
    QueueRow,
    QueueSlice,
    cursor_of,
    parse_cursor,
    queue_reasons,
)
from einvoice.store.tables import (
    PAYABLE_AMOUNT,
    REVIEW_PREDICATE,
    DocumentReasonRow,
    DocumentRow,
    InstitutionRow,
    SupplierRow,
)

D = DocumentRow
R = DocumentReasonRow
_SORT_KEYS: dict[str, Any] = {
    "age": D.status_changed_at,
    "amount": PAYABLE_AMOUNT,
    "issue_date": D.issue_date,
    "number": D.number,
    "supplier": SupplierRow.name,
    "institution": InstitutionRow.name,
}


def _visible(institution_ids: Collection[str]) -> list[Any]:
    return [text(REVIEW_PREDICATE), D.institution_id.in_(sorted(institution_ids))]


def _conditions(wanted: QueueFilter, institution_ids: Collection[str], now: datetime) -> list[Any]:
    conditions = _visible(institution_ids)
    if wanted.institution:
        conditions.append(D.institution_id == wanted.institution)
    if wanted.status:
        conditions.append(D.status == wanted.status)
    if wanted.reason and wanted.reason in STATE_REASONS:
        conditions.append(D.status == STATE_REASONS[wanted.reason])
    elif wanted.reason:
        conditions.append(D.id.in_(select(R.document_id).where(R.code == wanted.reason)))
    if wanted.min_age_days:
        conditions.append(D.status_changed_at <= now - timedelta(days=wanted.min_age_days))
    if wanted.min_amount is not None:
        conditions.append(wanted.min_amount <= PAYABLE_AMOUNT)
    if wanted.max_amount is not None:
        conditions.append(wanted.max_amount >= PAYABLE_AMOUNT)
    return conditions


class ReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def queue(self, wanted: QueueFilter, *, institution_ids: Collection[str], now: datetime) -> QueueSlice:
        """One page of the documents of ``institution_ids`` waiting for a person, as ``wanted``
        filters, sorts (ties broken by id) and pages them (by cursor, or by page number without
        one), and how many the filter finds, counted up to ``COUNT_LIMIT``."""
        if not institution_ids:
            return QueueSlice((), 0)
        conditions = _conditions(wanted, institution_ids, now)
        if wanted.supplier:
            # The suppliers first (a small table), then their documents by index: a pattern
            # matched against every document of the queue would read them all.
            pattern = f"%{wanted.supplier.strip().lower()}%"
            endpoint = SupplierRow.endpoint_scheme + ":" + SupplierRow.endpoint_id
            named = select(SupplierRow.id).where(
                or_(func.lower(SupplierRow.name).like(pattern), func.lower(endpoint).like(pattern))
            )
            conditions.append(D.supplier_id.in_(sorted(self.session.scalars(named))))
        counted = select(D.id).where(*conditions).limit(COUNT_LIMIT + 1).subquery()
        total = int(self.session.scalar(select(func.count()).select_from(counted)) or 0)
        key = _SORT_KEYS.get(wanted.sort, D.status_changed_at)
        cursor = parse_cursor(wanted.sort, wanted.after or wanted.before or "")
        backwards = cursor is not None and not wanted.after
        descending = wanted.descending != backwards
        query = select(
            D.id,
            D.institution_id,
            D.supplier_id,
            D.number,
            D.issue_date,
            D.payable_amount,
            D.currency,
            D.status,
            D.status_changed_at,
            key.label("sort_key"),
        ).where(*conditions)
        if wanted.sort == "supplier":
            query = query.join(SupplierRow, SupplierRow.id == D.supplier_id)
        elif wanted.sort == "institution":
            query = query.join(InstitutionRow, InstitutionRow.id == D.institution_id)
        if cursor is not None:
            row_key, at = tuple_(key, D.id), tuple_(literal(cursor[0], key.type), literal(cursor[1]))
            query = query.where(row_key < at if descending else row_key > at)
        order = [key.desc(), D.id.desc()] if descending else [key.asc(), D.id.asc()]
        query = query.order_by(*order).limit(wanted.per_page + 1)
        if cursor is None:
            query = query.offset((max(1, wanted.page) - 1) * wanted.per_page)
        found = list(self.session.execute(query).all())
        more = len(found) > wanted.per_page
        found = found[: wanted.per_page]
        if backwards:
            found.reverse()
        ids = [r.id for r in found]
        reasons: dict[str, list[str]] = {}
        if ids:
            for document_id, code in self.session.execute(
                select(R.document_id, R.code).where(R.document_id.in_(ids)).order_by(R.id)
            ):
                reasons.setdefault(document_id, []).append(code)
        suppliers = self._names(SupplierRow, {r.supplier_id for r in found})
        institutions = self._names(InstitutionRow, {r.institution_id for r in found})
        rows = tuple(
            QueueRow(
                id=r.id,
                institution=institutions.get(r.institution_id, ""),
                supplier=suppliers.get(r.supplier_id, ""),
                number=r.number,
                issue_date=r.issue_date,
                amount=r.payable_amount,
                currency=r.currency,
                status=r.status,
                reasons=queue_reasons(r.status, reasons.get(r.id, ())),
                waiting_since=r.status_changed_at,
            )
            for r in found
        )
        return QueueSlice(
            rows,
            min(total, COUNT_LIMIT),
            total > COUNT_LIMIT,
            has_previous=more if backwards else (cursor is not None or wanted.page > 1),
            has_next=True if backwards else more,
            first=cursor_of(found[0].sort_key, found[0].id) if found else None,
            last=cursor_of(found[-1].sort_key, found[-1].id) if found else None,
        )

    def _names(self, row_class: type[SupplierRow] | type[InstitutionRow], ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        named = select(row_class.id, row_class.name).where(row_class.id.in_(sorted(ids)))
        return {str(i): str(name) for i, name in self.session.execute(named)}

    def counts(self, *, institution_ids: Collection[str]) -> QueueCounts:
        """The documents of ``institution_ids`` waiting for a person, by reason code (each
        document once per code) and by institution id."""
        if not institution_ids:
            return QueueCounts({}, {})
        visible = _visible(institution_ids)
        by_reason: dict[str, int] = {}
        for code, n in self.session.execute(
            select(R.code, func.count()).join(D, D.id == R.document_id).where(*visible).group_by(R.code)
        ):
            by_reason[code] = int(n)
        by_institution: dict[str, int] = {}
        by_state = {state: code for code, state in STATE_REASONS.items()}
        for institution_id, status, n in self.session.execute(
            select(D.institution_id, D.status, func.count()).where(*visible).group_by(D.institution_id, D.status)
        ):
            by_institution[str(institution_id)] = by_institution.get(str(institution_id), 0) + int(n)
            if status in by_state:
                by_reason[by_state[status]] = by_reason.get(by_state[status], 0) + int(n)
        return QueueCounts(by_reason, by_institution)
