"""The commitments register in the store (``uow.commitments``), on SQLite and on PostgreSQL: the
domain ``Commitment`` back with its figures, the lookups matching needs, figures changed under the
commitment's lock by many threads at once, and the documents waiting for a late commitment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from einvoice import store
from einvoice.domain.commitments import Commitment, CommitmentKind, CommitmentLine
from einvoice.domain.invoice import PrecedingInvoice
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import SupplierView, accounts
from einvoice.services.commitments import late_documents
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.ports import EarlierQuery
from tests.integration.test_store_postgres import fresh_postgres_database
from tests.unit.services import documents

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def uow_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], UnitOfWork]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'einvoice.db'}"
        store.migrate(url)
        engine = store.make_engine(url)
        yield store.uow_factory_for(engine)
        engine.dispose()
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        engine = store.make_engine(url)
        yield store.uow_factory_for(engine)
        engine.dispose()


@pytest.fixture
def parties(uow_factory: Callable[[], UnitOfWork]) -> tuple[str, SupplierView]:
    institution = accounts.add_institution(uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT)
    supplier, _ = accounts.add_supplier(
        uow_factory(), name="Acme", endpoint=documents.SELLER_ENDPOINT, vat=documents.SELLER_VAT
    )
    return institution.id, supplier


def order(
    institution_id: str, supplier_id: str, number: str = "PO-1", kind: CommitmentKind = CommitmentKind.ORDER
) -> Commitment:
    return Commitment(
        number=number,
        kind=kind,
        institution_id=institution_id,
        supplier_id=supplier_id,
        currency="EUR",
        amount=Decimal("1000.00"),
        lines=(
            CommitmentLine(id="1", quantity=Decimal("100"), unit_price=Decimal("3.50"), vat_rate=Decimal("21")),
            CommitmentLine(id="2", quantity=Decimal("2.5"), unit_price=Decimal("10.00"), unit_code="HUR"),
        ),
        reserved=Decimal("0.00"),
        consumed=Decimal("0.00"),
    )


def test_a_commitment_reads_back_as_it_was_added_and_by_number_for_its_kinds(
    uow_factory: Callable[[], UnitOfWork], parties: tuple[str, SupplierView]
) -> None:
    institution_id, supplier = parties
    added = order(institution_id, supplier.id)
    contract = order(institution_id, supplier.id, "CT-1", CommitmentKind.CONTRACT)
    with uow_factory() as uow:
        uow.commitments.add(added, source="api", at=AT)
        uow.commitments.add(replace(contract, lines=()), source="api", at=AT)
        uow.commit()
    with uow_factory() as uow:
        assert uow.commitments.get(institution_id, "PO-1") == added
        assert uow.commitments.by_number(institution_id, "PO-1", kinds=[CommitmentKind.ORDER]) == added
        assert uow.commitments.by_number(institution_id, "PO-1", kinds=[CommitmentKind.CONTRACT]) is None
        found = uow.commitments.by_number(institution_id, "CT-1", kinds=[CommitmentKind.CONTRACT, "framework"])
        assert found is not None
        assert found.lines == ()
        assert uow.commitments.by_number("another", "PO-1") is None
        assert [c.number for c in uow.commitments.list_for(institution_id)] == ["CT-1", "PO-1"]


def test_figures_change_under_the_lock_and_none_is_lost_by_threads_at_once(
    uow_factory: Callable[[], UnitOfWork], parties: tuple[str, SupplierView]
) -> None:
    institution_id, supplier = parties
    with uow_factory() as uow:
        uow.commitments.add(order(institution_id, supplier.id), source="api", at=AT)
        uow.commit()
    errors: list[BaseException] = []

    def reserve() -> None:
        try:
            with uow_factory() as uow:
                held = uow.commitments.get(institution_id, "PO-1", for_update=True)
                assert held is not None
                # read, then write what was read plus one: lost updates would show without the lock
                uow.commitments.change_figures(
                    institution_id, "PO-1", at=AT, reserved=Decimal("1.25"), invoiced={"1": Decimal("0.5")}
                )
                uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reserve) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with uow_factory() as uow:
        after = uow.commitments.change_figures(
            institution_id,
            "PO-1",
            at=AT,
            consumed=Decimal("5.00"),
            reserved=Decimal("-5.00"),
            received={"2": Decimal("1.5")},
        )
        uow.commit()
    assert (after.reserved, after.consumed, after.remaining) == (Decimal("15.00"), Decimal("5.00"), Decimal("980.00"))
    assert [(line.invoiced, line.received) for line in after.lines] == [(Decimal("8.0"), 0), (0, Decimal("1.5"))]
    with uow_factory() as uow:
        assert uow.commitments.get(institution_id, "PO-1") == after
        with pytest.raises(LookupError):
            uow.commitments.change_figures(institution_id, "PO-1", at=AT, invoiced={"9": Decimal(1)})


def test_matching_locks_commitments_with_their_lines_in_one_read_and_writes_the_figures_it_worked_out(
    uow_factory: Callable[[], UnitOfWork], parties: tuple[str, SupplierView]
) -> None:
    institution_id, supplier = parties
    contract = replace(order(institution_id, supplier.id, "CT-1", CommitmentKind.CONTRACT), lines=())
    with uow_factory() as uow:
        for commitment in (order(institution_id, supplier.id), order(institution_id, supplier.id, "PO-2"), contract):
            uow.commitments.add(commitment, source="api", at=AT)
        uow.commit()

    errors: list[BaseException] = []

    def reserve() -> None:
        try:
            with uow_factory() as uow:
                before = uow.commitments.lock(institution_id, {"PO-1"})["PO-1"]
                line = replace(before.lines[0], invoiced=before.lines[0].invoiced + Decimal("0.5"))
                after = replace(before, reserved=before.reserved + Decimal("1.25"), lines=(line, before.lines[1]))
                uow.commitments.put_figures(before, after, at=AT)
                uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # read, then write what was read plus a little: lost updates would show without the lock
    threads = [threading.Thread(target=reserve) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []

    with uow_factory() as uow:
        locked = uow.commitments.lock(institution_id, {"PO-2", "PO-1", "CT-1", "NOT-REGISTERED"})
        assert list(locked) == ["CT-1", "PO-1", "PO-2"]  # in number order, the unknown left out
        assert locked["CT-1"] == contract
        assert locked["PO-2"] == order(institution_id, supplier.id, "PO-2")
        held = locked["PO-1"]
        assert held == uow.commitments.get(institution_id, "PO-1")
        assert (held.reserved, [line.invoiced for line in held.lines]) == (Decimal("15.00"), [Decimal("6.0"), 0])
        # figures that are not those the row holds (read without the lock, or before another
        # change) are refused, and so is a line the commitment has not
        stale = replace(held, reserved=Decimal("0.00"))
        with pytest.raises(LookupError):
            uow.commitments.put_figures(stale, replace(stale, reserved=Decimal("1.00")), at=AT)
        unknown = replace(held.lines[1], id="9", invoiced=Decimal(1))
        with pytest.raises(LookupError):
            uow.commitments.put_figures(
                replace(held, lines=(held.lines[0], replace(unknown, invoiced=0))),
                replace(held, lines=(held.lines[0], unknown)),
                at=AT,
            )
        assert uow.commitments.lock(institution_id, set()) == {}


def test_late_documents_are_the_institutions_exceptions_that_reference_the_number(
    uow_factory: Callable[[], UnitOfWork], parties: tuple[str, SupplierView]
) -> None:
    institution_id, supplier = parties

    def document(number: str, status: str, **references: str) -> str:
        raw = documents.invoice(number)
        outcome = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())
        document_id = outcome.document.id
        with uow_factory() as uow:
            uow.documents.add_parsed(document_id, replace(parse_for_pipeline(raw), **references), at=AT)
            assert uow.documents.compare_and_set(document_id, expected={"received"}, values={"status": status}, at=AT)
            uow.commit()
        return document_id

    by_order = document("I-1", "exception", order_reference="PO-7")
    by_contract = document("I-2", "exception", contract_reference="PO-7", order_reference="NA")
    by_buyer_reference = document("I-3", "exception", buyer_reference="PO-7")
    document("I-4", "approved", order_reference="PO-7")  # not waiting
    document("I-5", "exception", order_reference="PO-70")  # another number
    assert late_documents(uow_factory(), institution_id=institution_id, number="PO-7") == [
        by_order,
        by_contract,
        by_buyer_reference,
    ]
    assert late_documents(uow_factory(), institution_id="another", number="PO-7") == []


def test_the_supplier_history_matching_reads_names_credit_notes_and_what_they_credit(
    uow_factory: Callable[[], UnitOfWork], parties: tuple[str, SupplierView]
) -> None:
    institution_id, supplier = parties

    def document(number: str, issue_date: str, **parsed: object) -> str:
        raw = documents.invoice(number, issue_date=issue_date)
        outcome = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())
        with uow_factory() as uow:
            uow.documents.add_parsed(outcome.document.id, replace(parse_for_pipeline(raw), **parsed), at=AT)
            uow.commit()
        return outcome.document.id

    invoice = document("H-1", "2026-03-01")
    credit = document("H-2", "2026-03-05", type_code="381", preceding_invoices=(PrecedingInvoice("H-1"),))
    # an invoice that names an earlier one (BT-25) is no credit note: its BT-25 does not count
    corrected = document("H-3", "2026-06-01", preceding_invoices=(PrecedingInvoice("H-1"),))
    later = document("H-4", "2026-09-01")
    with uow_factory() as uow:
        row = uow.documents.get(later)
        assert row is not None
        query = EarlierQuery(
            supplier_id=supplier.id,
            before=(row.received_at, row.id),
            numbers=frozenset({"H-4"}),
            issued_from=date(2026, 8, 25),
            issued_to=date(2026, 9, 8),
            institution_id=institution_id,
            last=30,
        )
        found = uow.documents.earlier_of_supplier(query)
    # BT-112 as its amount key (125.00 and 125 are one amount); an Invoice of type 381 is a credit note
    assert [(r.id, r.number, r.amount, r.credit_note, r.preceding) for r in found] == [
        (invoice, "H-1", "125", False, ()),
        (credit, "H-2", "125", True, ("H-1",)),
        (corrected, "H-3", "125", False, ()),
    ]
    with uow_factory() as uow:  # the last invoice with the institution, by issue date, only
        assert [r.id for r in uow.documents.earlier_of_supplier(replace(query, last=1))] == [corrected]
    # the duplicate window: the documents of the same BT-112 issued in it
    march = replace(query, numbers=frozenset(), issued_from=date(2026, 2, 25), issued_to=date(2026, 3, 8), last=0)
    with uow_factory() as uow:
        assert [r.id for r in uow.documents.earlier_of_supplier(replace(march, amount=Decimal("125.0")))] == [
            invoice,
            credit,
        ]
        assert uow.documents.earlier_of_supplier(replace(march, amount=Decimal("125.01"))) == []
        assert uow.documents.earlier_of_supplier(march) == []  # no BT-112: no window
