from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.errors import NotFoundError
from einvoice.services import SupplierView, accounts, process, queries
from einvoice.store import UnitOfWork
from einvoice.store.writes import Step
from tests.unit.services import documents
from tests.unit.services.test_process import FakeValidator, Report, submitted

#: Validation with the parser port the pipeline wires (matching reads the parsed document).
validate_document = functools.partial(process.validate_document, parser=documents.PARSER)


@pytest.fixture(autouse=True)
def _registered(contract: object) -> None:
    pass


def test_get_document_is_limited_to_its_supplier(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    doc = submitted(uow_factory, supplier)
    other, _ = accounts.add_supplier(uow_factory(), name="Other", endpoint="0192:974760673")
    assert queries.get_document(uow_factory(), doc, supplier_id=supplier.id).id == doc
    with pytest.raises(NotFoundError):
        queries.get_document(uow_factory(), doc, supplier_id=other.id)
    with pytest.raises(NotFoundError):
        queries.get_raw(uow_factory(), doc, other.id)
    assert queries.get_raw(uow_factory(), doc, supplier.id) == documents.invoice("INV-1")
    assert queries.get_document(uow_factory(), doc).to_dict()["history"][0]["to_status"] == "received"


def test_list_documents_filters_and_orders_newest_first(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    first = submitted(uow_factory, supplier, "A")
    second = submitted(uow_factory, supplier, "B")
    validate_document(uow_factory, first, validator=FakeValidator(Report("invalid")))
    listed = queries.list_documents(uow_factory(), supplier_id=supplier.id)
    assert {d.id for d in listed} == {first, second}
    assert [d.id for d in queries.list_documents(uow_factory(), supplier_id=supplier.id, status="rejected")] == [first]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert queries.list_documents(uow_factory(), supplier_id=supplier.id, since=future) == []
    assert len(queries.list_documents(uow_factory(), supplier_id=supplier.id, limit=1)) == 1


def test_metrics(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    first = submitted(uow_factory, supplier, "A")
    submitted(uow_factory, supplier, "B")
    validate_document(uow_factory, first, validator=FakeValidator(Report("valid")))
    snapshot = queries.metrics(uow_factory(), now=datetime.now(UTC) + timedelta(seconds=10))
    assert snapshot.documents_by_status == {"received": 1, "validated": 1}
    assert snapshot.outbox_pending == 3
    assert snapshot.outbox_lag_seconds >= 10
    assert snapshot.queue_lag_seconds >= 10
    assert set(snapshot.stage_latency_seconds) == {"validating"}
    assert snapshot.to_dict()["stage_latency_seconds"]["validating"]["0.5"] >= 0


def test_stage_latencies_come_from_the_newest_transitions(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [submitted(uow_factory, supplier, f"L-{n}") for n in range(3)]
    t0 = datetime.now(UTC)
    for n, doc in enumerate(docs):  # the n-th document spends n+1 seconds in validating
        validate_document(
            uow_factory,
            doc,
            validator=FakeValidator(Report("valid")),
            clock=iter([t0, t0 + timedelta(seconds=n + 1)]).__next__,
        )
    # The newest 2 transitions are the last document's entry into validating and its exit.
    monkeypatch.setattr(queries, "LATENCY_TRANSITIONS", 2)
    snapshot = queries.metrics(uow_factory(), now=t0 + timedelta(seconds=10))
    assert snapshot.stage_latency_seconds["validating"]["0.5"] == 3.0
    monkeypatch.setattr(queries, "LATENCY_TRANSITIONS", 5_000)
    snapshot = queries.metrics(uow_factory(), now=t0 + timedelta(seconds=10))
    assert snapshot.stage_latency_seconds["validating"]["0.5"] == 2.0


def test_a_stage_latency_spans_the_whole_stay_in_the_state(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    """From the change that entered a working state to the change that left it: a transition
    to the same state in between (a person's note, a renewed lease) neither ends nor restarts
    the stay, and a document that enters the state again is counted again."""
    doc = submitted(uow_factory, supplier, "S-1")
    t0 = datetime.now(UTC)

    def change(at: datetime, *steps: tuple[str, str]) -> None:
        with uow_factory() as uow:
            current = uow.documents.get(doc)
            assert current is not None
            changed = uow.documents.compare_and_set(
                doc,
                expected=[current.status],
                values={"status": steps[-1][1], "status_changed_at": at},
                at=at,
                steps=[Step(a, b, "test") for a, b in steps],
            )
            assert changed
            uow.commit()

    change(t0, ("received", "validating"))
    change(t0 + timedelta(seconds=1), ("validating", "validating"))
    change(t0 + timedelta(seconds=4), ("validating", "received"))
    change(t0 + timedelta(seconds=5), ("received", "validating"))
    change(t0 + timedelta(seconds=7), ("validating", "validated"))
    snapshot = queries.metrics(uow_factory(), now=t0 + timedelta(seconds=10))
    assert snapshot.stage_latency_seconds["validating"] == {"0.5": 4.0, "0.95": 4.0, "1": 4.0}
    with uow_factory() as uow:
        durations = uow.documents.stage_durations(t0 - timedelta(seconds=1), {"validating"})
    assert sorted(durations["validating"]) == [2.0, 4.0]


def test_an_unreachable_database_is_a_transient_error(supplier: SupplierView) -> None:
    from einvoice.errors import TransientError
    from einvoice.services.intake import submit_document
    from einvoice.settings import Settings
    from einvoice.store import make_engine, uow_factory_for

    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    factory = uow_factory_for(engine)
    try:
        with pytest.raises(TransientError):
            queries.get_document(factory(), "x")
        with pytest.raises(TransientError):
            accounts.authenticate_supplier(factory(), "eik_" + "x" * 43)
        with pytest.raises(TransientError):
            submit_document(
                factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=Settings()
            )
    finally:
        engine.dispose()
