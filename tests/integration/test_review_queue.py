"""The accountants' queue read by the store (``uow.review``) on SQLite and PostgreSQL, over a queue
loaded as ``einvoice bench review`` loads it: every filter keeps only what it says, every sort
orders by its key with ties broken by id, the pages of a filter hold each document exactly once,
the counts agree with the rows; and a document's reasons are replaced when it is matched again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from einvoice import store
from einvoice.benchmarks.review import Loaded, load_queue
from einvoice.domain.review import QueueFilter, QueueRow, reason_rows
from einvoice.domain.states import REVIEW_STATES
from einvoice.store import UnitOfWork
from einvoice.store.tables import DocumentReasonRow, DocumentRow
from einvoice.store.writes import DocumentChange

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PER_PAGE = 25


@pytest.fixture
def loaded(database_url: str) -> Loaded:
    engine = store.make_engine(database_url)
    try:
        return load_queue(engine, waiting=240, done=60, institutions=3, suppliers=6, seed=7, now=NOW)
    finally:
        engine.dispose()


def every_page(
    uow_factory: Callable[[], UnitOfWork], ids: list[str], wanted: QueueFilter
) -> tuple[list[QueueRow], int]:
    """The rows of every page of ``wanted``, in order, following each page's next cursor (and
    checking that the previous cursor of each page gives back the page before), and the total."""
    pages: list[tuple[QueueRow, ...]] = []
    after = None
    total = None
    for _ in range(100):
        with uow_factory() as uow:
            found = uow.review.queue(replace(wanted, after=after, per_page=PER_PAGE), institution_ids=ids, now=NOW)
            if pages:
                back = uow.review.queue(
                    replace(wanted, before=found.first, per_page=PER_PAGE), institution_ids=ids, now=NOW
                )
                assert back.rows == pages[-1]
                assert back.has_next
        total = found.total if total is None else total
        assert found.has_previous == bool(pages)
        pages.append(found.rows)
        if not found.has_next:
            break
        after = found.last
    assert total is not None
    return [row for page in pages for row in page], total


def waiting_documents(uow_factory: Callable[[], UnitOfWork], ids: list[str]) -> dict[str, Any]:
    with uow_factory() as uow:
        session = uow.session  # type: ignore[attr-defined]
        documents = {
            d.id: d
            for d in session.scalars(
                select(DocumentRow).where(DocumentRow.status.in_(REVIEW_STATES), DocumentRow.institution_id.in_(ids))
            )
        }
        session.expunge_all()
    return documents


SHAPES: list[tuple[QueueFilter, Callable[[QueueRow], bool]]] = [
    (QueueFilter(), lambda r: True),
    (QueueFilter(reason="PRICE_VARIANCE", sort="amount", descending=False), lambda r: "PRICE_VARIANCE" in r.reasons),
    (QueueFilter(reason="UNDER_QUERY"), lambda r: r.status == "under_query"),
    (QueueFilter(status="exception", sort="number"), lambda r: r.status == "exception"),
    (
        QueueFilter(min_amount=Decimal("5000"), max_amount=Decimal("30000"), sort="issue_date"),
        lambda r: r.amount is not None and Decimal(5000) <= r.amount <= Decimal(30000),
    ),
    (QueueFilter(min_age_days=30, sort="supplier"), lambda r: r.waiting_since <= NOW - timedelta(days=30)),
    (QueueFilter(supplier="supplier 0002", sort="institution", descending=True), lambda r: r.supplier.endswith("0002")),
]


@pytest.mark.parametrize(("wanted", "keeps"), SHAPES, ids=lambda v: "" if callable(v) else repr(v)[11:60])
def test_every_filter_and_sort_pages_through_each_document_once_in_order(
    uow_factory: Callable[[], UnitOfWork], loaded: Loaded, wanted: QueueFilter, keeps: Callable[[QueueRow], bool]
) -> None:
    ids = loaded.institutions[:2]  # a user of two of the three institutions
    documents = waiting_documents(uow_factory, ids)
    rows, total = every_page(uow_factory, ids, wanted)
    assert total == len(rows) > 0
    assert len({r.id for r in rows}) == len(rows)
    assert all(keeps(r) for r in rows)
    assert {r.id for r in rows} <= set(documents)
    left_out = [d for d in documents.values() if d.id not in {r.id for r in rows}]
    as_rows = {r.id: r for r in rows}
    if wanted.reason is None and wanted.status is None:  # what a filter left out fails it
        assert not any(keeps(_row(d)) for d in left_out)
    key: dict[str, Callable[[QueueRow], Any]] = {
        "age": lambda r: r.waiting_since,
        "amount": lambda r: r.amount,
        "issue_date": lambda r: r.issue_date,
        "number": lambda r: r.number,
        "supplier": lambda r: r.supplier,
        "institution": lambda r: r.institution,
    }
    ordered = sorted(rows, key=lambda r: (key[wanted.sort](r), r.id), reverse=wanted.descending)
    assert [r.id for r in rows] == [r.id for r in ordered]
    assert all(as_rows[i].status in REVIEW_STATES for i in as_rows)


def _row(d: Any) -> QueueRow:
    return QueueRow(
        d.id, "", "", d.number, d.issue_date, d.payable_amount, d.currency, d.status, (), d.status_changed_at
    )


def test_the_counts_are_those_of_the_rows(uow_factory: Callable[[], UnitOfWork], loaded: Loaded) -> None:
    ids = loaded.institutions[:2]
    rows, total = every_page(uow_factory, ids, QueueFilter())
    with uow_factory() as uow:
        counts = uow.review.counts(institution_ids=ids)
    assert sum(counts.by_institution.values()) == total
    assert dict(counts.by_reason) == dict(Counter(code for r in rows for code in r.reasons))
    assert set(counts.by_institution) <= set(ids)
    with uow_factory() as uow:
        assert uow.review.queue(QueueFilter(), institution_ids=[], now=NOW).total == 0


def test_a_documents_reasons_are_replaced_when_it_is_matched_again(
    uow_factory: Callable[[], UnitOfWork], loaded: Loaded
) -> None:
    ids = loaded.institutions
    with uow_factory() as uow:
        document = uow.review.queue(QueueFilter(status="exception"), institution_ids=ids, now=NOW).rows[0]

    def match(result: dict[str, Any]) -> None:
        with uow_factory() as uow:
            change = DocumentChange(
                document.id,
                ("exception",),
                {"status": "exception"},
                NOW,
                rows={"document_reasons": reason_rows(result)},
            )
            assert uow.documents.write(change).changed
            uow.commit()

    def stored() -> list[str]:
        with uow_factory() as uow:
            session = uow.session  # type: ignore[attr-defined]
            return list(
                session.scalars(select(DocumentReasonRow.code).where(DocumentReasonRow.document_id == document.id))
            )

    match(
        {"reasons": [{"code": "PRICE_VARIANCE"}, {"code": "UNIT_MISMATCH"}], "warnings": [{"code": "AMOUNT_ANOMALY"}]}
    )
    assert sorted(stored()) == ["AMOUNT_ANOMALY", "PRICE_VARIANCE", "UNIT_MISMATCH"]
    match({"reasons": ["suspected duplicate of X"], "suspected_duplicate_of": "X"})  # the pass-through's shape
    assert stored() == ["SUSPECTED_DUPLICATE"]
    match({"outcome": "matched", "reasons": []})
    assert stored() == []
    with uow_factory() as uow:
        found = uow.review.queue(QueueFilter(reason="PRICE_VARIANCE"), institution_ids=ids, now=NOW)
    assert document.id not in {r.id for r in found.rows}
