"""The store and intake against a real database, each test on SQLite and on PostgreSQL (the
``database_url`` fixture of ``conftest.py``): migrations, UTC, concurrency, values longer than their
columns. ``test_store_postgres.py`` has what only PostgreSQL does."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from dramatiq.brokers.stub import StubBroker

from einvoice import messaging, store
from einvoice.domain.states import DocumentStatus as S
from einvoice.services import SupplierView, accounts, process, queries
from einvoice.services.intake import SubmitOutcome, UnknownBuyerError, submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.tables import Base
from tests.integration.databases import downgraded
from tests.unit.services import documents

THREADS = 20


def in_threads(count: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn(i)`` in ``count`` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_migrated_schema_matches_the_tables(database_url: str) -> None:
    engine = store.make_engine(database_url)
    try:
        assert store.current_revision(engine) == store.head_revision()
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        store.migrate(engine)  # idempotent
    finally:
        engine.dispose()


def test_timestamps_round_trip_as_utc(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    outcome = submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=Settings(), now=at
    )
    view = queries.get_document(uow_factory(), outcome.document.id)
    assert view.received_at == at
    assert view.received_at.utcoffset() == timedelta(0)
    assert view.history[0].at == at
    listed = queries.list_documents(uow_factory(), supplier_id=supplier.id, since=at - timedelta(seconds=1))
    assert [d.id for d in listed] == [view.id]
    assert queries.list_documents(uow_factory(), supplier_id=supplier.id, since=at + timedelta(seconds=1)) == []


def test_what_the_repositories_return_outlives_its_unit_of_work(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    outcome = submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice("KEPT-1"), idempotency_key=None, settings=Settings()
    )
    document_id = outcome.document.id
    with uow_factory() as uow:  # left without a commit: rolled back, its session closed
        document = uow.documents.get(document_id)
        by_hash = uow.documents.by_sha256(supplier.id, outcome.document.sha256)
        history = uow.documents.transitions(document_id)
        answers = uow.documents.responses(document_id)
        registered = uow.suppliers.get(supplier.id)
        institutions = uow.institutions.list()
    assert document is not None
    assert by_hash == document
    assert (document.id, document.status, document.number) == (document_id, S.RECEIVED, "KEPT-1")
    assert [t.to_status for t in history] == [S.RECEIVED]
    assert [a.code for a in answers] == ["AB"]
    assert registered is not None
    assert (registered.name, registered.active) == (supplier.name, True)
    assert [i.endpoint_id for i in institutions] == [documents.BUYER_ENDPOINT.split(":", 1)[1]]
    with pytest.raises(FrozenInstanceError):
        document.status = S.APPROVED  # type: ignore[misc]
    with uow_factory() as uow:  # changed only through the store
        assert uow.suppliers.set_active(supplier.id, False).active is False
        uow.commit()
    assert registered.active
    assert accounts.get_supplier(uow_factory(), supplier.id) == replace(supplier, active=False)


def test_twenty_concurrent_submissions_of_the_same_bytes_make_one_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    raw = documents.invoice("RACE-1")
    results = in_threads(
        THREADS,
        lambda i: submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings()),
    )
    assert all(isinstance(r, SubmitOutcome) for r in results), results
    outcomes = [r for r in results if isinstance(r, SubmitOutcome)]
    assert len({o.document.id for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1
    with uow_factory() as uow:
        assert len(uow.documents.list_for_supplier(supplier.id)) == 1
        assert uow.outbox.pending_count() == 1


def test_twenty_concurrent_submissions_with_one_idempotency_key_make_one_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    raw = documents.invoice("RACE-2")
    results = in_threads(
        THREADS,
        lambda i: submit_document(
            uow_factory, supplier=supplier, raw=raw, idempotency_key="key-1", settings=Settings()
        ),
    )
    outcomes = [r for r in results if isinstance(r, SubmitOutcome)]
    assert len(outcomes) == THREADS, results
    assert len({o.document.id for o in outcomes}) == 1


def test_concurrent_stage_calls_run_the_stage_once(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, contract: object
) -> None:
    doc = submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=Settings()
    ).document.id
    calls: list[int] = []

    class Report:
        verdict = "valid"
        findings = ()

        def rule_set(self) -> dict[str, object]:
            return {}

    def validator(raw: bytes, **context: object) -> Report:
        calls.append(1)
        return Report()

    results = in_threads(
        10, lambda i: process.validate_document(uow_factory, doc, validator=validator, parser=documents.PARSER)
    )
    ran = [r for r in results if isinstance(r, process.StageResult) and r.ran]
    assert len(ran) == 1, results
    assert len(calls) == 1
    results = in_threads(10, lambda i: process.match_document(uow_factory, doc))
    assert sum(1 for r in results if isinstance(r, process.StageResult) and r.ran) == 1, results
    view = queries.get_document(uow_factory(), doc)
    assert view.status == S.APPROVED
    assert [t.to_status for t in view.history] == [
        "received",
        "validating",
        "validated",
        "matching",
        "matched",
        "approved",
    ]


def test_concurrent_relays_send_each_row_once(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    for n in range(30):
        submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(f"R-{n}"), idempotency_key=None, settings=Settings()
        )
    sent: list[str] = []
    lock = threading.Lock()

    def sender(action: str, document_id: str) -> None:
        with lock:
            sent.append(document_id)

    relays = [messaging.OutboxRelay(uow_factory, sender, batch_size=5) for _ in range(4)]
    in_threads(4, lambda i: relays[i].drain())
    assert len(sent) == 30
    assert len(set(sent)) == 30
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 0
        assert uow.outbox.oldest_pending_created_at() is None


def test_metrics_on_a_real_database(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    submit_document(uow_factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=Settings())
    snapshot = queries.metrics(uow_factory(), now=datetime.now(UTC) + timedelta(seconds=5))
    assert snapshot.documents_by_status == {"received": 1}
    assert snapshot.outbox_pending == 1
    assert snapshot.outbox_lag_seconds >= 5


def test_concurrent_documents_with_one_number_are_all_but_one_suspected_duplicates(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    results = in_threads(
        10,
        lambda i: submit_document(
            uow_factory,
            supplier=supplier,
            raw=documents.invoice("SAME-1", amount=f"{i}.00"),
            idempotency_key=None,
            settings=Settings(),
        ),
    )
    outcomes = [r for r in results if isinstance(r, SubmitOutcome)]
    assert len(outcomes) == 10, results
    ids = {o.document.id for o in outcomes}
    unflagged = [o for o in outcomes if o.document.suspected_duplicate_of is None]
    assert len(unflagged) == 1
    assert all(o.document.suspected_duplicate_of in ids for o in outcomes if o not in unflagged)


def test_the_answer_to_a_submission_is_the_stored_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    answered = submit_document(
        uow_factory,
        supplier=supplier,
        raw=documents.invoice("STORED-1", amount="1656.25"),
        idempotency_key="k-stored",
        settings=Settings(),
    ).document
    stored = queries.get_document(uow_factory(), answered.id)
    assert replace(stored, history=(), findings=()) == answered
    assert [(t.from_status, t.to_status, t.actor, t.detail) for t in stored.history] == [
        (None, "received", "api", None)
    ]


def test_a_later_document_with_the_number_names_the_earliest_not_refused_one(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    def submit(raw: bytes) -> SubmitOutcome:
        return submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())

    with pytest.raises(UnknownBuyerError):  # refused, recorded: not an earlier copy
        submit(documents.invoice("DUP-1", buyer_endpoint="0192:000000000", amount="1.00"))
    first = submit(documents.invoice("DUP-1", amount="2.00")).document
    second = submit(documents.invoice("DUP-1", amount="3.00")).document
    third = submit(documents.invoice("DUP-1", amount="4.00")).document
    other_year = submit(documents.invoice("DUP-1", issue_date="2025-11-01")).document
    assert first.suspected_duplicate_of is None
    assert second.suspected_duplicate_of == first.id
    assert third.suspected_duplicate_of == first.id
    assert other_year.suspected_duplicate_of is None
    history = queries.get_document(uow_factory(), third.id).history
    assert [t.detail for t in history] == [f"suspected duplicate of {first.id}"]
    assert queries.get_document(uow_factory(), first.id).history[0].detail is None


def test_a_document_added_in_a_transaction_that_is_not_committed_is_not_stored(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    now = datetime.now(UTC)
    values = {
        "id": "0" * 32,
        "supplier_id": supplier.id,
        "status": S.RECEIVED,
        "sha256": "a" * 64,
        "size": 3,
        "number": "TX-1",
        "issue_year": 2026,
        "received_at": now,
        "status_changed_at": now,
    }
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 0  # the unit of work has begun its transaction
        uow.documents.add_received(values, b"abc", actor="api", next_action="validate", commit=True)
    with uow_factory() as uow:
        assert uow.documents.get("0" * 32) is None
        assert uow.outbox.pending_count() == 0


def submit_many(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, prefix: str, count: int) -> list[str]:
    """Submit ``count`` invoices numbered ``<prefix>-<n>``; return their ids in order."""
    return [
        submit_document(
            uow_factory,
            supplier=supplier,
            raw=documents.invoice(f"{prefix}-{n}"),
            idempotency_key=None,
            settings=Settings(),
        ).document.id
        for n in range(count)
    ]


def test_concurrent_batch_relays_send_each_row_once_and_oldest_first(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    ids = submit_many(uow_factory, supplier, "B", 30)
    batches: list[list[str]] = []
    lock = threading.Lock()

    def batch_sender(items: Sequence[tuple[str, str]]) -> None:
        assert {action for action, _ in items} == {"validate"}
        with lock:
            batches.append([document_id for _, document_id in items])

    relays = [
        messaging.OutboxRelay(uow_factory, lambda a, d: None, batch_size=5, batch_sender=batch_sender) for _ in range(4)
    ]
    in_threads(4, lambda i: relays[i].drain())
    sent = [document_id for batch in batches for document_id in batch]
    assert sorted(sent) == sorted(ids)
    assert all(batch == sorted(batch, key=ids.index) for batch in batches)
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 0


def test_a_batch_the_broker_did_not_take_stays_pending(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    ids = submit_many(uow_factory, supplier, "F", 3)

    def refuse(items: Sequence[tuple[str, str]]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        messaging.OutboxRelay(uow_factory, lambda a, d: None, batch_sender=refuse).relay_once()
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 3
    taken: list[tuple[str, str]] = []
    assert messaging.OutboxRelay(uow_factory, lambda a, d: None, batch_sender=taken.extend).relay_once() == 3
    assert taken == [("validate", i) for i in ids]
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 0


def test_an_in_process_queue_gets_a_batch_once_its_rows_are_committed_as_sent(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    for n in range(2):
        submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice(f"IP-{n}"), idempotency_key=None, settings=Settings()
        )
    pending_when_handed_over: list[int] = []

    class InProcessQueue:
        after_commit = True

        def __call__(self, items: Sequence[tuple[str, str]]) -> None:
            with uow_factory() as uow:  # another connection: sees only what is committed
                pending_when_handed_over.append(uow.outbox.pending_count())

    assert messaging.OutboxRelay(uow_factory, lambda a, d: None, batch_sender=InProcessQueue()).relay_once() == 2
    assert pending_when_handed_over == [0]
    assert getattr(messaging.batch_sender_for(StubBroker()), "after_commit", False)


def test_upgrading_a_database_that_holds_documents_keys_their_numbers(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    first, _ = submit_many(uow_factory, supplier, "MIG", 2)
    with downgraded(database_url, "0001") as tables:
        assert "number_key" not in tables["documents"]
    with uow_factory() as uow:
        row = uow.documents.get(first)
        assert row is not None
        assert row.number_key == f"{supplier.id}:2026:MIG-0"
    again = submit_document(
        uow_factory,
        supplier=supplier,
        raw=documents.invoice("MIG-0", note="x"),
        idempotency_key=None,
        settings=Settings(),
    )
    assert again.document.suspected_duplicate_of == first


def test_upgrading_renames_intakes_former_rule_ids_and_adds_the_rule_set(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    from einvoice import errors

    order = b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>'
    with pytest.raises(errors.UnsupportedDocumentError) as refused:
        submit_document(uow_factory, supplier=supplier, raw=order, idempotency_key=None, settings=Settings())
    document_id = refused.value.document_id  # type: ignore[attr-defined]

    def rules() -> list[str]:
        with uow_factory() as uow:
            return [f.rule for f in uow.documents.findings(document_id)]

    assert rules() == ["DOCUMENT-TYPE"]
    with downgraded(database_url, "0003") as tables:
        assert "ruleset" not in tables["documents"]
        assert rules() == ["INTAKE-UNSUPPORTED-DOCUMENT"]  # what a database of the last release holds
    assert rules() == ["DOCUMENT-TYPE"]


def test_values_longer_than_their_columns_are_stored_cut_and_the_document_whole(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # The same answer on both databases (PostgreSQL refused such rows: a 500 and nothing stored).
    # A supplier with no legal id registered, so that a 200-character one is its to state.
    supplier, _ = accounts.add_supplier(
        uow_factory(), name="Long Names", endpoint="0192:444444444", vat=documents.SELLER_VAT, unchecked=True
    )
    number = "N" * 300
    raw = (
        documents.invoice(number, seller_endpoint=supplier.endpoint, seller_legal_id="L" * 200, amount="1" * 60)
        .replace(b">EUR</cbc:DocumentCurrencyCode>", b">EURO</cbc:DocumentCurrencyCode>")
        .replace(b"poacc:billing:3.0<", b"poacc:billing:3.0" + b"#x" * 200 + b"<")
    )
    first = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())
    assert first.created
    with uow_factory() as uow:
        row = uow.documents.get(first.document.id)
        assert row is not None
        assert row.number == number[:200]
        assert row.seller_legal_id == "L" * 128
        assert row.customization_id is not None
        assert len(row.customization_id) == 300
        assert (row.currency, row.payable_amount) == (None, None)  # no code, no amount: not cut into another
        assert uow.documents.raw(first.document.id) == raw
    again = submit_document(
        uow_factory,
        supplier=supplier,
        raw=documents.invoice(number, seller_endpoint=supplier.endpoint, seller_legal_id=None, note="other bytes"),
        idempotency_key=None,
        settings=Settings(),
    )
    assert again.document.suspected_duplicate_of == first.document.id
