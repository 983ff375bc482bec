"""Stages on PostgreSQL only: a claim and a finish are one statement each, in one round trip."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import DocumentView, SupplierView, process
from einvoice.store import UnitOfWork
from tests.integration.databases import fresh_postgres_database, record_round_trips
from tests.unit.services import documents
from tests.unit.services.test_process import THROUGH_TO_APPROVED, WARNING, Report, submitted, view

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """PostgreSQL only, in this module."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(autouse=True)
def _registered(contract: object) -> None:
    """The buyer, the seller and their contract (``conftest.py``): valid documents are approved."""


def test_a_valid_document_is_claimed_and_finished_in_one_round_trip_each(
    uow_factory: Callable[[], UnitOfWork],
    supplier: SupplierView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = submitted(uow_factory, supplier)
    seen: list[dict[str, object]] = []

    def validator(raw: bytes, **context: object) -> Report:
        seen.append(context)
        return Report("valid", (WARNING,))

    sent = record_round_trips(monkeypatch)
    result = process.validate_document(
        uow_factory, doc, validator=validator, token="msg-1", chain=True, parser=documents.PARSER
    )
    monkeypatch.undo()
    assert (result.stage, result.status) == ("match", S.APPROVED)
    # The claim: one statement, committed as it runs. Then the finish, one transaction, matching's
    # statements on the driver: it reads the supplier's history, and with it, read ahead, the
    # institution's approval limits (a primary key lookup, for the approval policy); locks the
    # commitment the invoice names (FOR UPDATE) and, in a statement begun once the lock is held,
    # reads it with its lines, the two in one round trip; reserves on it (its figures written over
    # those read under the lock, nothing read back; the contract has no lines to write); and
    # validation's and matching's outcome is one statement, committed with the rest.
    assert sent == [
        ("WITH", True),
        ("SELECT", True),  # the institution's approval limits, read ahead, in the history's round trip
        ("b'BEGIN'", True),  # (the transaction begun with the first statement)
        ("WITH", True),  # the history's plan for any values, made once per connection ...
        ("SELECT", True),  # ... the supplier's earlier documents ...
        ("SELECT", True),  # ... and the planner's settings as they were
        ("SELECT", True),  # the commitment, FOR UPDATE ...
        ("SELECT", True),  # ... then it with its lines, in the same round trip
        ("UPDATE", True),  # reserved, guarded by the figures read
        ("WITH", True),  # the document: states, transitions, findings, parsed form, response, message
        ("b'COMMIT'", False),
    ]
    final = view(uow_factory, doc)
    assert [(t.from_status, t.to_status, t.actor) for t in final.history] == THROUGH_TO_APPROVED
    # The document as the claim read it back: what the column types give (UTC, Decimal).
    assert seen == [{"institution": final.buyer_endpoint, "at": final.received_at}]
    received_at = seen[0]["at"]
    assert isinstance(received_at, datetime)
    assert received_at.utcoffset() == timedelta(0)
    assert isinstance(result.document, DocumentView)
    assert isinstance(result.document.payable_amount, Decimal)
    assert replace(result.document, history=(), findings=()) == replace(
        final,
        status=S.VALIDATING,
        status_changed_at=final.history[1].at,
        match_result=None,
        ruleset=None,
        history=(),
        findings=(),
    )
    assert final.ruleset == {"rules": "peppol-bis3", "rules_version": "2026.5"}  # stored by the finish
