"""The MATCH stage and the matching services on the in-memory unit of work: a match reserves on
the commitment in the write that records it, an exception lists its reasons and holds nothing, a
person's re-match releases and matches again, a late commitment sends waiting documents through
matching again, posting consumes and a release gives back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NoReturn

import pytest

from einvoice.benchmarks.pipeline import InvoiceLine, invoice_xml
from einvoice.domain.commitments import Commitment
from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import ConflictError, NotFoundError
from einvoice.services import InstitutionView, SupplierView, commitments, matching, process, queries
from einvoice.services.intake import submit_document
from einvoice.services.matching import (
    consume_held,
    held,
    match_late_documents,
    matched_commitment,
    release_held,
    rematch,
)
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.unit.services import documents
from tests.unit.services.test_process import FakeValidator, Report

PAPER = InvoiceLine("Printer paper A4", Decimal(10), Decimal("3.50"), "S", Decimal(21))


def order(
    uow_factory: Callable[[], UnitOfWork],
    institution: InstitutionView,
    *,
    number: str = "PO-1",
    quantity: str = "100",
    receipt_required: bool = False,
    price_percent: str | None = None,
) -> Commitment:
    """An order of the institution with the supplier: 100 reams of paper at 3.50, VAT 21 %."""
    data = commitments.CommitmentInput.model_validate(
        {
            "number": number,
            "kind": "order",
            "supplier": {"endpoint": documents.SELLER_ENDPOINT},
            "currency": "EUR",
            "receipt_required": receipt_required,
            "tolerances": {"price_percent": price_percent} if price_percent else None,
            "lines": [
                {
                    "id": "1",
                    "description": "Printer paper A4",
                    "quantity": quantity,
                    "unit_code": "C62",
                    "unit_price": "3.50",
                    "vat_category": "S",
                    "vat_rate": "21",
                }
            ],
        }
    )
    return commitments.register(uow_factory(), data, institution_id=institution.id).commitment


def matched_invoice(
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    *,
    number: str = "INV-1",
    reference: str = "PO-1",
    line: InvoiceLine = PAPER,
    issue_date: date = date(2026, 11, 1),
) -> str:
    """Submit an invoice naming ``reference`` (BT-10) and take it through validation and matching."""
    raw = invoice_xml(
        number=number,
        issue_date=issue_date,
        seller_endpoint=documents.SELLER_ENDPOINT,
        seller_vat=documents.SELLER_VAT,
        seller_legal_id=documents.SELLER_LEGAL_ID,
        buyer_endpoint=documents.BUYER_ENDPOINT,
        buyer_reference=reference,
        lines=[line],
        country="NO",
    )
    document_id = submit_document(
        uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings()
    ).document.id
    process.validate_document(
        uow_factory, document_id, validator=FakeValidator(Report("valid")), parser=documents.PARSER, chain=True
    )
    return document_id


def figures(uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, number: str = "PO-1") -> Commitment:
    with uow_factory() as uow:
        found = uow.commitments.get(institution.id, number)
    assert found is not None
    return found


def codes(uow_factory: Callable[[], UnitOfWork], document_id: str) -> list[str]:
    result = queries.get_document(uow_factory(), document_id).match_result or {}
    return [r["code"] for r in result.get("reasons", [])]


def test_a_match_reserves_its_total_and_quantities_in_the_write_that_approves_it(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution)
    doc = matched_invoice(uow_factory, supplier)
    view = queries.get_document(uow_factory(), doc)
    assert view.status == S.APPROVED
    assert view.match_result is not None
    assert view.match_result["outcome"] == "matched"
    assert view.match_result["commitment"] == "PO-1"
    assert view.match_result["reserved"] == "42.35"  # 10 x 3.50 + 21 % VAT
    assert view.match_result["lines"] == [
        {"line": "1", "commitment_line": "1", "by": "description", "outcome": "matched"}
    ]
    po = figures(uow_factory, institution)
    assert (po.reserved, po.remaining, po.lines[0].invoiced) == (Decimal("42.35"), Decimal("381.15"), Decimal(10))
    assert held(view.match_result) is not None
    assert [t.to_status for t in view.history][-3:] == [S.MATCHING, S.MATCHED, S.APPROVED]


def test_matching_in_validation_s_finish_takes_the_parsed_document_as_parsed_not_rebuilt_from_its_row(
    uow_factory: Callable[[], UnitOfWork],
    institution: InstitutionView,
    supplier: SupplierView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order(uow_factory, institution)

    def rebuilt(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("the parsed form rebuilt from its row")

    monkeypatch.setattr(matching, "invoice_from_dict", rebuilt)
    doc = matched_invoice(uow_factory, supplier)
    assert queries.get_document(uow_factory(), doc).status == S.APPROVED


def test_an_exception_lists_its_reasons_and_holds_nothing(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, price_percent="2")
    dear = InvoiceLine("Printer paper A4", Decimal(10), Decimal("3.80"), "S", Decimal(21))
    doc = matched_invoice(uow_factory, supplier, line=dear)
    view = queries.get_document(uow_factory(), doc)
    assert view.status == S.EXCEPTION
    assert codes(uow_factory, doc) == ["PRICE_VARIANCE"]
    assert view.match_result is not None
    assert view.match_result["reserved"] == "0.00"
    assert held(view.match_result) is None
    assert figures(uow_factory, institution).reserved == 0


def test_an_invoice_naming_no_commitment_waits_in_exception(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    doc = matched_invoice(uow_factory, supplier, reference="PO-404")
    assert queries.get_document(uow_factory(), doc).status == S.EXCEPTION
    assert codes(uow_factory, doc) == ["NO_COMMITMENT"]


def test_a_second_invoice_beyond_the_ordered_quantity_is_an_exception(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, quantity="15")
    first = matched_invoice(uow_factory, supplier, number="INV-1")
    more = InvoiceLine("Printer paper A4", Decimal(6), Decimal("3.50"), "S", Decimal(21))
    second = matched_invoice(uow_factory, supplier, number="INV-2", line=more)
    assert queries.get_document(uow_factory(), first).status == S.APPROVED
    assert codes(uow_factory, second) == ["QUANTITY_EXCEEDS_ORDERED", "AMOUNT_EXCEEDS_REMAINING"]
    assert figures(uow_factory, institution).lines[0].invoiced == 10  # only the first holds


def test_three_way_takes_only_what_arrived(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, receipt_required=True)
    early = matched_invoice(uow_factory, supplier, number="INV-1")
    assert codes(uow_factory, early) == ["QUANTITY_EXCEEDS_RECEIVED"]
    receipt = commitments.ReceiptInput.model_validate(
        {"reference": "GRN-1", "received_on": "2026-11-02", "lines": [{"line": "1", "quantity": "10"}]}
    )
    commitments.record_receipt(uow_factory(), receipt, institution_id=institution.id, number="PO-1")
    assert match_late_documents(uow_factory, institution_id=institution.id, number="PO-1") == {early: S.APPROVED}


def test_a_late_commitment_sends_the_waiting_invoice_through_matching_again(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    doc = matched_invoice(uow_factory, supplier)
    assert codes(uow_factory, doc) == ["NO_COMMITMENT"]
    order(uow_factory, institution)
    assert match_late_documents(uow_factory, institution_id=institution.id, number="PO-1") == {doc: S.APPROVED}
    view = queries.get_document(uow_factory(), doc)
    assert view.match_result is not None
    assert view.match_result["commitment"] == "PO-1"
    assert [(t.to_status, t.actor) for t in view.history][-3:] == [
        (S.MATCHING, "commitment:PO-1"),
        (S.MATCHED, "commitment:PO-1"),
        (S.APPROVED, "commitment:PO-1"),
    ]
    assert figures(uow_factory, institution).reserved == Decimal("42.35")
    assert match_late_documents(uow_factory, institution_id=institution.id, number="PO-1") == {}  # none waits now


def test_beyond_the_first_few_the_documents_a_late_commitment_names_are_matched_again_by_the_workers(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    # issued 8 days apart (one total within 7 days would be a suspected duplicate); the third
    # orders more than the order will have left
    waiting = [
        matched_invoice(uow_factory, supplier, number=f"LATE-{n}", issue_date=date(2026, 10, 1 + 8 * n))
        for n in range(3)
    ]
    too_many = matched_invoice(
        uow_factory, supplier, number="LATE-3", issue_date=date(2026, 11, 2), line=replace(PAPER, quantity=Decimal(90))
    )
    with uow_factory() as uow:  # the messages of the first matching, delivered
        uow.outbox.take_pending(now=datetime.now(UTC))
        uow.commit()
    order(uow_factory, institution)

    statuses = match_late_documents(uow_factory, institution_id=institution.id, number="PO-1", in_request=1)
    # the oldest in the request; the others back to validated, each with a message for the stage
    assert statuses == {waiting[0]: S.APPROVED, waiting[1]: S.VALIDATED, waiting[2]: S.VALIDATED, too_many: S.VALIDATED}
    with uow_factory() as uow:
        messages = uow.outbox.take_pending(now=datetime.now(UTC))
        uow.commit()
    assert sorted((action, document_id) for _, action, document_id in messages) == sorted(
        ("match", d) for d in (*waiting[1:], too_many)
    )
    history = queries.get_document(uow_factory(), waiting[1]).history
    assert (history[-1].from_status, history[-1].to_status, history[-1].actor) == (
        S.EXCEPTION,
        S.VALIDATED,
        "commitment:PO-1",
    )

    # the workers: the MATCH stage for each message
    for _, action, document_id in messages:
        process.run_stage(action, uow_factory, document_id, parser=documents.PARSER)
    assert [queries.get_document(uow_factory(), d).status for d in waiting] == [S.APPROVED] * 3
    assert codes(uow_factory, too_many) == ["QUANTITY_EXCEEDS_ORDERED", "AMOUNT_EXCEEDS_REMAINING"]
    assert figures(uow_factory, institution).reserved == Decimal("127.05")  # 3 x 42.35, the fourth holds nothing
    # the supplier hears as from a match in the request (the codes follow the ones it had)
    assert [r.code for r in responses_of(uow_factory, waiting[2])] == ["AB", "IP", "AP"]
    assert [r.code for r in responses_of(uow_factory, too_many)] == ["AB", "IP", "IP"]


def test_rematch_releases_and_matches_against_the_named_commitment_only(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-1")
    order(uow_factory, institution, number="PO-2")
    doc = matched_invoice(uow_factory, supplier)  # names PO-1
    assert rematch(uow_factory, doc, "PO-2", actor="user:anna") == S.APPROVED
    assert figures(uow_factory, institution, "PO-1").reserved == 0  # released
    assert figures(uow_factory, institution, "PO-2").reserved == Decimal("42.35")
    view = queries.get_document(uow_factory(), doc)
    assert view.match_result is not None
    assert view.match_result["commitment"] == "PO-2"
    assert {t.actor for t in view.history[-3:]} == {"user:anna"}


def test_rematch_of_an_exception_to_a_commitment_that_fits_approves_it_and_says_so_to_the_supplier(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-2")
    doc = matched_invoice(uow_factory, supplier)  # names PO-1, not registered: IP
    assert rematch(uow_factory, doc, "PO-2", actor="user:anna") == S.APPROVED
    assert [r.code for r in responses_of(uow_factory, doc)] == ["AB", "IP", "AP"]


def responses_of(uow_factory: Callable[[], UnitOfWork], document_id: str) -> list[object]:
    with uow_factory() as uow:
        return list(uow.documents.responses(document_id))


def test_rematch_of_an_exception_to_a_commitment_it_does_not_fit_stays_in_exception(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-2", quantity="5")
    doc = matched_invoice(uow_factory, supplier)  # names PO-1, not registered
    assert rematch(uow_factory, doc, "PO-2", actor="user:anna") == S.EXCEPTION
    assert codes(uow_factory, doc) == ["QUANTITY_EXCEEDS_ORDERED", "AMOUNT_EXCEEDS_REMAINING"]
    assert figures(uow_factory, institution, "PO-2").reserved == 0


def test_rematch_refuses_unknown_documents_and_commitments_and_states_that_do_not_allow_it(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution)
    doc = matched_invoice(uow_factory, supplier)
    with pytest.raises(NotFoundError):
        rematch(uow_factory, "nope", "PO-1", actor="user:anna")
    with pytest.raises(NotFoundError):
        rematch(uow_factory, doc, "PO-404", actor="user:anna")
    received = documents.invoice("INV-9")
    waiting = submit_document(uow_factory, supplier=supplier, raw=received, idempotency_key=None, settings=Settings())
    with pytest.raises(ConflictError):
        rematch(uow_factory, waiting.document.id, "PO-1", actor="user:anna")  # still received


def test_a_commitment_of_another_supplier_is_not_found_for_rematch(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    from einvoice.services import accounts

    accounts.add_supplier(uow_factory(), name="Other", endpoint="0192:999999999")
    documents.register_contract(uow_factory, institution.id, number="K-OTHER", supplier_endpoint="0192:999999999")
    doc = matched_invoice(uow_factory, supplier)
    with pytest.raises(NotFoundError):
        rematch(uow_factory, doc, "K-OTHER", actor="user:anna")


def test_release_gives_back_and_consume_makes_it_consumed(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution)
    first = matched_invoice(uow_factory, supplier, number="INV-1")
    five = InvoiceLine("Printer paper A4", Decimal(5), Decimal("3.50"), "S", Decimal(21))
    second = matched_invoice(uow_factory, supplier, number="INV-2", line=five)
    with uow_factory() as uow:
        consume_held(uow, first)
        row = uow.documents.get(second)
        released = release_held(uow, row)
        uow.commit()
    assert released is not None
    assert json.loads(released)["reserved"] == "0.00"
    po = figures(uow_factory, institution)
    assert (po.reserved, po.consumed, po.lines[0].invoiced) == (Decimal(0), Decimal("42.35"), Decimal(10))


def test_posting_consumes_in_the_write_that_records_posted_and_names_the_commitment(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution)
    doc = matched_invoice(uow_factory, supplier)
    seen: list[str | None] = []

    def poster(document: object) -> str:
        with uow_factory() as uow:
            view = queries.get_document(uow, doc)
            invoice = uow.documents.parsed(doc)
            assert invoice is not None
            found = matched_commitment(uow, view, invoice)
        seen.append(found.number if found else None)
        return "JE-1"

    assert process.post_document(uow_factory, doc, poster=poster).status == S.POSTED
    assert seen == ["PO-1"]
    po = figures(uow_factory, institution)
    assert (po.reserved, po.consumed) == (Decimal(0), Decimal("42.35"))


def test_a_match_above_the_institutions_limit_waits_for_a_person_and_below_it_is_approved(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    from einvoice.services import responses, users

    order(uow_factory, institution)
    users.set_approval_rule(uow_factory(), documents.BUYER_ENDPOINT, person_above="42.34", two_people_above=None)
    above = matched_invoice(uow_factory, supplier)  # due 42.35: one cent above the limit
    view = queries.get_document(uow_factory(), above)
    assert view.status == S.MATCHED
    assert view.history[-1].detail == (
        "matched to commitment PO-1, 42.35 reserved; waits for a person: "
        "amount due above 42.34, the limit for approval without a person"
    )
    assert [r.code for r in responses.list_responses(uow_factory(), above)] == ["AB", "IP"]
    assert figures(uow_factory, institution).reserved == Decimal("42.35")  # held while it waits

    users.set_approval_rule(uow_factory(), documents.BUYER_ENDPOINT, person_above="42.35", two_people_above=None)
    below = matched_invoice(uow_factory, supplier, number="INV-2", line=dataclasses.replace(PAPER, quantity=Decimal(9)))
    view = queries.get_document(uow_factory(), below)
    assert (view.status, view.payable_amount) == (S.APPROVED, Decimal("38.12"))  # 9 x 3.50 + 21 % VAT
