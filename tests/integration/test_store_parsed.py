"""The parsed document in the store (``parsed_documents``), on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, inspect, select, text, update

from einvoice.domain.invoice import Invoice
from einvoice.domain.money import amount_key
from einvoice.parsers.invoice_dict import FORMAT_VERSION, StoredInvoiceError
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import SupplierView
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.repositories import parsed_row
from einvoice.store.tables import DocumentRow, ParsedDocumentRow
from tests.integration.databases import downgraded
from tests.unit.services import documents

PARSED = ParsedDocumentRow.__table__
BASE_EXAMPLE = "peppol-2026.5/billing/base-example.xml"
AT = datetime(2026, 12, 2, 13, 30, tzinfo=timezone(timedelta(hours=2)))


# database_url, uow_factory, supplier: tests/integration/conftest.py (each test on SQLite and PostgreSQL)


def submitted(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, number: str = "P-1") -> str:
    raw = documents.invoice(number, amount="1656.25")
    outcome = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())
    return outcome.document.id


def corpus_invoice(corpus_dir: Path, sample: str) -> Invoice:
    return parse_for_pipeline((corpus_dir / sample).read_bytes())


def test_a_submitted_document_parsed_from_its_stored_bytes_reads_back_as_its_invoice(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    document_id = submitted(uow_factory, supplier)
    with uow_factory() as uow:
        assert uow.documents.parsed(document_id) is None  # not parsed yet
        raw = uow.documents.raw(document_id)
        assert raw is not None
        invoice = parse_for_pipeline(raw)
        uow.documents.add_parsed(document_id, invoice, at=AT)
        uow.commit()
    with uow_factory() as uow:
        assert uow.documents.parsed(document_id) == invoice
        row = uow.session.get(ParsedDocumentRow, document_id)
        assert row is not None
        assert (row.format_version, row.parsed_at) == (FORMAT_VERSION, AT)
        assert row.parsed_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "sample",
    [
        BASE_EXAMPLE,
        "peppol-2026.5/billing/base-creditnote-correction.xml",  # BT-25, the preceding invoice
        "peppol-2026.5/billing/Allowance-example.xml",
        "en16931-1.3.16/ubl/examples/ubl-tc434-example5.xml",
    ],
)
def test_the_parsed_row_is_what_a_plain_insert_takes_and_reads_back_equal(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path, sample: str
) -> None:
    # As validation's finish writes it: the values of parsed_row, as an extra row of its transaction.
    document_id = submitted(uow_factory, supplier)
    invoice = corpus_invoice(corpus_dir, sample)
    with uow_factory() as uow:
        uow.session.connection().execute(
            insert(PARSED), [parsed_row(document_id, invoice, AT, supplier_id=supplier.id)]
        )
        uow.commit()
    with uow_factory() as uow:
        back = uow.documents.parsed(document_id)
    assert back == invoice
    assert repr(back) == repr(invoice)  # decimals with their scale


def test_storing_again_replaces_the_parsed_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    document_id = submitted(uow_factory, supplier)
    first = corpus_invoice(corpus_dir, BASE_EXAMPLE)
    second = corpus_invoice(corpus_dir, "peppol-2026.5/billing/vat-category-E.xml")
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, first, at=AT)
        uow.commit()
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, second, at=AT + timedelta(minutes=1))
        uow.commit()
    with uow_factory() as uow:
        assert uow.documents.parsed(document_id) == second
        assert uow.session.scalar(select(PARSED.c.parsed_at)) == AT + timedelta(minutes=1)


def test_a_document_without_a_parsed_row_has_none(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    with uow_factory() as uow:
        assert uow.documents.parsed(submitted(uow_factory, supplier)) is None
        assert uow.documents.parsed("f" * 32) is None


def test_data_of_another_format_version_is_refused_not_misread(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    document_id = submitted(uow_factory, supplier)
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, corpus_invoice(corpus_dir, BASE_EXAMPLE), at=AT)
        uow.session.execute(update(PARSED).values(format_version=FORMAT_VERSION + 1))
        uow.commit()
    with uow_factory() as uow, pytest.raises(StoredInvoiceError, match="format version"):
        uow.documents.parsed(document_id)


def test_the_stored_json_answers_queries_in_sql(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    document_id = submitted(uow_factory, supplier)
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, corpus_invoice(corpus_dir, BASE_EXAMPLE), at=AT)
        uow.commit()
    with uow_factory() as uow:
        if uow.dialect == "postgresql":
            columns = {c["name"]: c["type"] for c in inspect(uow.session.connection()).get_columns("parsed_documents")}
            assert type(columns["data"]).__name__ == "JSONB"
            query = (
                "SELECT data->'seller'->>'vat_id', data->'lines'->0->'net_amount'->>'value',"
                " jsonb_array_length(data->'lines') FROM parsed_documents"
            )
        else:
            query = (
                "SELECT json_extract(data, '$.seller.vat_id'), json_extract(data, '$.lines[0].net_amount.value'),"
                " json_array_length(data, '$.lines') FROM parsed_documents"
            )
        assert tuple(uow.session.execute(text(query)).one()) == ("GB1232434", "2800", 2)


def test_a_parsed_document_goes_with_its_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    document_id = submitted(uow_factory, supplier)
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, corpus_invoice(corpus_dir, BASE_EXAMPLE), at=AT)
        uow.commit()
    with uow_factory() as uow:
        uow.session.execute(delete(DocumentRow.__table__).where(DocumentRow.id == document_id))
        uow.commit()
    with uow_factory() as uow:
        assert uow.session.scalar(select(PARSED.c.document_id)) is None


def test_downgrading_below_0004_drops_the_parsed_documents_and_upgrading_brings_the_table_back(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    document_id = submitted(uow_factory, supplier)
    invoice = corpus_invoice(corpus_dir, BASE_EXAMPLE)
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, invoice, at=datetime.now(UTC))
        uow.commit()
    with downgraded(database_url, "0004") as tables:
        assert "parsed_documents" not in tables
    with uow_factory() as uow:
        assert uow.documents.get(document_id) is not None  # the document itself untouched
        assert uow.documents.parsed(document_id) is None
        uow.documents.add_parsed(document_id, invoice, at=AT)
        uow.commit()
    with uow_factory() as uow:
        assert uow.documents.parsed(document_id) == invoice


def test_the_history_columns_are_written_with_the_parsed_form_and_filled_in_by_migration_0015(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, corpus_dir: Path
) -> None:
    invoice_id, credit_note_id = submitted(uow_factory, supplier, "P-1"), submitted(uow_factory, supplier, "P-2")
    invoice = corpus_invoice(corpus_dir, BASE_EXAMPLE)
    credit_note = corpus_invoice(corpus_dir, "peppol-2026.5/billing/base-creditnote-correction.xml")
    assert invoice.totals.tax_inclusive_amount is not None
    assert credit_note.is_credit_note
    with uow_factory() as uow:
        uow.documents.add_parsed(invoice_id, invoice, at=AT)
        uow.documents.add_parsed(credit_note_id, credit_note, at=AT)
        uow.commit()
    columns = select(PARSED.c.document_id, PARSED.c.tax_inclusive_amount, PARSED.c.credit_note).order_by(
        PARSED.c.document_id
    )
    with uow_factory() as uow:
        written = {row.document_id: tuple(row[1:]) for row in uow.session.execute(columns)}
    assert written[invoice_id] == (amount_key(invoice.totals.tax_inclusive_amount.value), False)
    assert written[credit_note_id][1] is True
    with downgraded(database_url, "0014") as tables:  # as a database of 0014 has them: then filled in
        assert "credit_note" not in tables["parsed_documents"]
    with uow_factory() as uow:
        assert {row.document_id: tuple(row[1:]) for row in uow.session.execute(columns)} == written


def test_the_supplier_and_issue_date_are_kept_beside_the_amount_and_filled_in_by_migration_0017(
    database_url: str, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    # Matching's history finds a supplier's documents of one BT-112 by (supplier, amount, issue date).
    document_id = submitted(uow_factory, supplier, "P-17")
    invoice = parse_for_pipeline(documents.invoice("P-17", amount="1656.25"))  # the document's own bytes
    assert invoice.issue_date is not None
    with uow_factory() as uow:
        uow.documents.add_parsed(document_id, invoice, at=AT)
        uow.commit()
    columns = select(PARSED.c.supplier_id, PARSED.c.issue_date).where(PARSED.c.document_id == document_id)
    with uow_factory() as uow:
        assert tuple(uow.session.execute(columns).one()) == (supplier.id, invoice.issue_date)
    with downgraded(database_url, "0016") as tables:  # as a database of 0016 has them: then filled in
        assert "supplier_id" not in tables["parsed_documents"]
    with uow_factory() as uow:
        assert tuple(uow.session.execute(columns).one()) == (supplier.id, invoice.issue_date)
