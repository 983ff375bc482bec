"""A person's re-match from the document page (``services.review.rematch``): recorded as a decision
in matching's own write, refused to a role that may not, and nothing written when the document
moved on between the page's read and matching's. On SQLite and PostgreSQL: the decisions are
kept by the database's store only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from einvoice.domain.review import Role
from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import DecisionConflictError, DecisionRefusedError
from einvoice.services import InstitutionView, SupplierView, queries, review
from einvoice.services.matching import rematch as match_again
from einvoice.services.users import SignedIn
from einvoice.store import UnitOfWork
from tests.unit.services.test_matching import figures, matched_invoice, order


def person(institution: InstitutionView, role: Role = Role.ACCOUNTANT) -> SignedIn:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return SignedIn("u-1", "anna", role, frozenset({institution.id}), "csrf", expires)


def test_a_rematch_is_recorded_as_the_persons_decision(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-2")
    document_id = matched_invoice(uow_factory, supplier)  # names PO-1, not registered: exception
    made = review.rematch(uow_factory, person(institution), document_id, commitment=" PO-2 ", reason="ref")
    assert (made.from_status, made.to_status, made.reason, made.comment) == (
        S.EXCEPTION,
        S.APPROVED,
        "REF",
        "to commitment PO-2",
    )
    decisions = review.decisions_of(uow_factory(), document_id)
    assert [(d.action, d.username, d.from_status, d.to_status) for d in decisions] == [
        ("rematch", "anna", S.EXCEPTION, S.APPROVED)
    ]
    assert figures(uow_factory, institution, "PO-2").reserved == Decimal("42.35")


def test_an_administrator_may_not_rematch(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-2")
    document_id = matched_invoice(uow_factory, supplier)
    with pytest.raises(DecisionRefusedError, match="accountants and approvers"):
        review.rematch(uow_factory, person(institution, Role.ADMINISTRATOR), document_id, commitment="PO-2")
    assert queries.get_document(uow_factory(), document_id).status == S.EXCEPTION


def test_a_document_that_moved_on_before_matchings_write_is_left_as_it_is(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView, supplier: SupplierView
) -> None:
    order(uow_factory, institution, number="PO-2")
    order(uow_factory, institution, number="PO-3")
    document_id = matched_invoice(uow_factory, supplier)
    opened = 0

    def racing() -> UnitOfWork:
        """The second unit of work (matching's) opens after someone else matched it to PO-2."""
        nonlocal opened
        opened += 1
        if opened == 2:
            assert match_again(uow_factory, document_id, "PO-2", actor="user:bea") == S.APPROVED
        return uow_factory()

    with pytest.raises(DecisionConflictError, match="approved: it cannot be matched again"):
        review.rematch(racing, person(institution), document_id, commitment="PO-3")
    view = queries.get_document(uow_factory(), document_id)
    assert view.status == S.APPROVED
    assert view.match_result is not None
    assert view.match_result["commitment"] == "PO-2"
    assert figures(uow_factory, institution, "PO-2").reserved == Decimal("42.35")
    assert figures(uow_factory, institution, "PO-3").reserved == 0  # nothing reserved by the refused re-match
    assert review.decisions_of(uow_factory(), document_id) == []
