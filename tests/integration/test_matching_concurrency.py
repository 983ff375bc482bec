"""Money never overspent: several worker processes (not threads: each its own connection, as
production's workers) match invoices against one commitment at the same moment on PostgreSQL.
They never reserve more than its amount plus tolerance, and its figures equal the sum of what its
documents hold."""

from __future__ import annotations

import json
import multiprocessing
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import create_engine

from einvoice import store
from einvoice.domain.states import DocumentStatus as S
from einvoice.services import accounts, commitments, process, queries
from einvoice.services.intake import submit_document
from einvoice.services.matching import held
from einvoice.settings import Settings
from tests.integration.databases import fresh_postgres_database
from tests.unit.services import documents
from tests.unit.services.test_process import FakeValidator, Report

pytestmark = pytest.mark.postgres

WORKERS = 4
INVOICES = 24
AMOUNT = Decimal("1000.00")
TOLERANCE = Decimal("5.00")  # amount_amount: what may be reserved beyond the amount


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url) as url:
        yield url


def _match_all(url: str, ids: list[str], start: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """One worker process: wait for the others, then send every document through matching, as a
    worker does with the messages it takes (the others take the same ones: the guard lets one win)."""
    engine = create_engine(url, pool_size=1)
    uow_factory = store.uow_factory_for(engine)
    start.wait(30)
    for document_id in ids:
        process.match_document(uow_factory, document_id)
    engine.dispose()


def test_workers_matching_against_one_commitment_never_take_more_than_it_allows(database_url: str) -> None:
    engine = create_engine(database_url)
    store.migrate(engine)
    uow_factory = store.uow_factory_for(engine)
    institution = accounts.add_institution(uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT)
    supplier = documents.register_seller(uow_factory, unchecked=False)
    data = commitments.CommitmentInput.model_validate(
        {
            "number": "REF-1",
            "kind": "contract",
            "supplier": {"endpoint": documents.SELLER_ENDPOINT},
            "currency": "EUR",
            "amount": str(AMOUNT),
            "tolerances": {"amount_amount": str(TOLERANCE)},
        }
    )
    commitments.register(uow_factory(), data, institution_id=institution.id)
    ids = []
    for n in range(INVOICES):
        # distinct totals: the same total within 7 days would be a suspected duplicate
        raw = documents.invoice(f"INV-{n}", amount=f"{Decimal('100.00') + n * Decimal('0.37')}")
        doc = submit_document(uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings())
        ids.append(doc.document.id)
        process.validate_document(
            uow_factory, ids[-1], validator=FakeValidator(Report("valid")), parser=documents.PARSER
        )

    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_match_all, args=(database_url, random.Random(n).sample(ids, len(ids)), start))
        for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0

    views = [queries.get_document(uow_factory(), i) for i in ids]
    with uow_factory() as uow:
        contract = uow.commitments.get(institution.id, "REF-1")
    assert contract is not None
    holding = [v for v in views if v.status == S.APPROVED]
    refused = [v for v in views if v.status == S.EXCEPTION]
    assert len(holding) + len(refused) == INVOICES
    assert contract.reserved <= AMOUNT + TOLERANCE
    reservations = [held(v.match_result) for v in holding]
    assert contract.reserved == sum((r.amount for r in reservations if r is not None), Decimal(0))
    assert all(r is not None for r in reservations)
    # The budget is used up: what is left cannot take the smallest of the invoices refused.
    assert holding
    assert refused
    smallest = min(Decimal(str(v.payable_amount)) for v in refused)
    assert contract.remaining + TOLERANCE < smallest
    for v in refused:
        assert v.match_result is not None
        assert [r["code"] for r in v.match_result["reasons"]] == ["AMOUNT_EXCEEDS_REMAINING"]
        assert json.dumps(v.match_result)  # stored as JSON the API shows
    engine.dispose()
