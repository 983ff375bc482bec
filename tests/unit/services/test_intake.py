from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from einvoice import errors
from einvoice.domain.states import DocumentStatus
from einvoice.services import InstitutionView, SupplierView, accounts
from einvoice.services.intake import (
    IdempotencyConflictError,
    IntakeFields,
    SellerMismatchError,
    UnknownBuyerError,
    check_seller,
    submit_document,
)
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.unit.services import documents

SETTINGS = Settings(max_document_bytes=64 * 1024, max_xml_depth=32)


def submit(
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    raw: bytes,
    key: str | None = None,
):
    return submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=key, settings=SETTINGS)


@pytest.fixture(autouse=True)
def _registered(institution: InstitutionView) -> None:
    pass


def test_accepted_document_is_stored_with_bytes_transition_and_outbox_row(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, institution: InstitutionView
) -> None:
    raw = documents.invoice("INV-7", amount="1656.25")
    outcome = submit(uow_factory, supplier, raw)
    doc = outcome.document
    assert outcome.created
    assert doc.status == DocumentStatus.RECEIVED
    assert doc.institution_id == institution.id
    assert (doc.number, str(doc.issue_date), doc.currency, str(doc.payable_amount)) == (
        "INV-7",
        "2026-11-01",
        "EUR",
        "1656.25",
    )
    assert doc.document_type == "invoice"
    assert doc.received_at.tzinfo is not None
    with uow_factory() as uow:
        assert uow.documents.raw(doc.id) == raw
        assert [(t.from_status, t.to_status, t.actor) for t in uow.documents.transitions(doc.id)] == [
            (None, "received", "api")
        ]
        pending = uow.outbox.claim_pending()
        assert [(o.document_id, o.action) for o in pending] == [(doc.id, "validate")]


def test_same_bytes_again_return_the_first_document(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    raw = documents.invoice()
    first = submit(uow_factory, supplier, raw)
    again = submit(uow_factory, supplier, raw)
    assert not again.created
    assert again.document.id == first.document.id
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 1


def test_same_idempotency_key_returns_the_first_document_and_other_bytes_conflict(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    first = submit(uow_factory, supplier, documents.invoice("A"), key="k-1")
    assert submit(uow_factory, supplier, documents.invoice("A"), key="k-1").document.id == first.document.id
    with pytest.raises(IdempotencyConflictError):
        submit(uow_factory, supplier, documents.invoice("B"), key="k-1")


def test_same_number_same_year_is_stored_as_suspected_duplicate(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    first = submit(uow_factory, supplier, documents.invoice("INV-9", amount="10.00"))
    second = submit(uow_factory, supplier, documents.invoice("INV-9", amount="11.00"))
    other_year = submit(uow_factory, supplier, documents.invoice("INV-9", issue_date="2025-12-31"))
    assert second.created
    assert second.document.id != first.document.id
    assert second.document.suspected_duplicate_of == first.document.id
    assert first.document.suspected_duplicate_of is None
    assert other_year.document.suspected_duplicate_of is None


def test_seller_must_be_the_supplier(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    raw = documents.invoice(seller_endpoint="0192:999999999", seller_vat="NO999", seller_legal_id="999")
    with pytest.raises(SellerMismatchError) as caught:
        submit(uow_factory, supplier, raw)
    assert "0192:999999999" in caught.value.reason
    assert caught.value.document_id is None


SUPPLIER = SupplierView(
    id="s1",
    name="Acme Ltd",
    endpoint="0192:123456785",
    vat_id="NO123456785MVA",
    legal_id=None,
    tax_id="TX-1",
    active=True,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def fields(
    endpoint: tuple[str, str] | None = ("0192", "123456785"),
    vat: tuple[str, ...] = ("NO123456785MVA",),
    tax: tuple[str, ...] = (),
    legal: tuple[str, ...] = (),
) -> IntakeFields:
    return IntakeFields(
        document_type="invoice",
        customization_id=None,
        number="1",
        issue_date=None,
        currency=None,
        payable_amount=None,
        seller_endpoint=endpoint,
        seller_vat_ids=vat,
        seller_tax_ids=tax,
        seller_legal_ids=legal,
        buyer_endpoint=None,
    )


@pytest.mark.parametrize(
    ("stated", "refused_for"),
    [
        (fields(), None),
        (fields(vat=()), None),  # identifiers other than the endpoint are checked when present
        (fields(vat=("no 123456785 mva",)), None),  # compared without white space, in upper case
        (fields(tax=("TX-1",)), None),
        (fields(endpoint=None), "BT-34"),
        (fields(endpoint=("0192", "999999999")), "0192:999999999"),
        (fields(endpoint=("0088", "123456785")), "0088:123456785"),  # same id, other scheme
        (fields(vat=("SE999999999901",)), "SE999999999901"),
        (fields(vat=("NO123456785MVA", "SE999999999901")), "SE999999999901"),  # every one of them
        (fields(tax=("TX-2",)), "TX-2"),
        (fields(tax=("NO123456785MVA",)), "NO123456785MVA"),  # its VAT id is not its tax id
    ],
)
def test_the_seller_must_be_the_supplier_by_every_identifier_it_states(
    stated: IntakeFields, refused_for: str | None
) -> None:
    check = check_seller(SUPPLIER, stated)
    if refused_for is None:
        assert check.refusal is None
    else:
        assert check.refusal is not None
        assert refused_for in check.refusal


def test_identifiers_of_a_kind_the_supplier_did_not_register_are_left_to_the_register() -> None:
    check = check_seller(SUPPLIER, fields(legal=("123456785", "987")))
    assert check.refusal is None
    assert [(i.term, i.value) for i in check.to_confirm] == [
        ("legal registration identifier (BT-30)", "123456785"),
        ("legal registration identifier (BT-30)", "987"),
    ]


def test_an_identifier_registered_to_another_supplier_is_refused_naming_it(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    other, _ = accounts.add_supplier(
        uow_factory(), name="Other AS", endpoint="0192:999999999", vat="NO999999999MVA", tax_id="T 99", unchecked=True
    )
    lone, _ = accounts.add_supplier(uow_factory(), name="Lone AS", endpoint="0192:888888888", unchecked=True)
    for stated in ("NO 999999999 MVA", "t99"):
        raw = documents.invoice(seller_endpoint=lone.endpoint, seller_vat=stated, seller_legal_id=None)
        with pytest.raises(SellerMismatchError) as caught:
            submit(uow_factory, lone, raw)
        assert stated in caught.value.reason
        assert "another supplier" in caught.value.reason
    assert submit(
        uow_factory, lone, documents.invoice(seller_endpoint=lone.endpoint, seller_vat="NO888", seller_legal_id=None)
    ).created
    assert other.vat_id == "NO999999999MVA"
    assert other.tax_id == "T99"


def test_unknown_buyer_is_refused_and_recorded(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    raw = documents.invoice(buyer_endpoint="0192:000000000")
    with pytest.raises(UnknownBuyerError) as caught:
        submit(uow_factory, supplier, raw)
    document_id = caught.value.document_id  # type: ignore[attr-defined]
    assert document_id
    with uow_factory() as uow:
        row = uow.documents.get(document_id)
        assert row is not None
        assert row.status == DocumentStatus.REFUSED
        assert uow.outbox.pending_count() == 0
        assert [f.rule for f in uow.documents.findings(document_id)] == ["INTAKE-UNKNOWN-BUYER"]
    # Again: refused again under the same id.
    with pytest.raises(UnknownBuyerError) as again:
        submit(uow_factory, supplier, raw)
    assert again.value.document_id == document_id  # type: ignore[attr-defined]


def test_refused_for_unknown_buyer_is_accepted_once_the_buyer_is_registered(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    raw = documents.invoice(buyer_endpoint="0192:555555555")
    with pytest.raises(UnknownBuyerError) as caught:
        submit(uow_factory, supplier, raw)
    accounts.add_institution(uow_factory(), name="Late agency", endpoint="0192:555555555", unchecked=True)
    outcome = submit(uow_factory, supplier, raw)
    assert outcome.document.id == caught.value.document_id  # type: ignore[attr-defined]
    assert outcome.document.status == DocumentStatus.RECEIVED
    with uow_factory() as uow:
        assert [t.to_status for t in uow.documents.transitions(outcome.document.id)] == ["refused", "received"]
        assert uow.outbox.pending_count() == 1


def test_unsupported_document_is_refused_and_recorded(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    with pytest.raises(errors.UnsupportedDocumentError) as caught:
        submit(uow_factory, supplier, b"<Order xmlns='urn:x'/>")
    assert caught.value.document_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"<Invoice", errors.NotWellFormedError),
        (b"", errors.NotWellFormedError),
        (b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", errors.UnsafeXmlError),
        (b"<a>" * 40 + b"</a>" * 40, errors.UnsafeXmlError),
        (b"<a>" + b" " * (64 * 1024) + b"</a>", errors.DocumentTooLargeError),
    ],
)
def test_bad_bytes_are_refused_and_not_recorded(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        submit(uow_factory, supplier, raw)
    with uow_factory() as uow:
        assert uow.documents.list_for_supplier(supplier.id) == []


def test_now_is_recorded_in_utc(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    outcome = submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=SETTINGS, now=at
    )
    with uow_factory() as uow:
        row = uow.documents.get(outcome.document.id)
        assert row is not None
        assert row.received_at == at
