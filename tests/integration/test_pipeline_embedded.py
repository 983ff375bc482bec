"""Embedded mode end to end through the service layer: a SQLite file, the in-process broker and
worker threads started by ``Runtime.start_background``, the real validators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from einvoice import bootstrap
from einvoice.domain.findings import Severity
from einvoice.domain.states import DocumentStatus as S
from einvoice.services import SupplierView, accounts, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from tests.integration.pipeline_support import (
    BUYER_ENDPOINT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    assert_processed_once,
    corpus_invoice,
    register_contract,
    wait_for,
)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[bootstrap.Runtime]:
    runtime = bootstrap.build(
        Settings(mode="embedded", data_dir=tmp_path / "var", broker_url=None, database_url=None, workers_in_process=2)
    )
    runtime.start_background()
    yield runtime
    runtime.stop()


@pytest.fixture
def supplier(runtime: bootstrap.Runtime) -> SupplierView:
    # the corpus sample's made-up identifiers
    buyer = accounts.add_institution(runtime.uow_factory(), name="Ministère", endpoint=BUYER_ENDPOINT, unchecked=True)
    supplier, _ = accounts.add_supplier(
        runtime.uow_factory(), name="Seller", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contract(runtime.uow_factory, buyer.id)
    return supplier


def submit(runtime: bootstrap.Runtime, supplier: SupplierView, raw: bytes) -> str:
    outcome = submit_document(
        runtime.uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=runtime.settings
    )
    runtime.wake_relay()
    return outcome.document.id


def test_embedded_database_is_a_file_under_the_data_directory(runtime: bootstrap.Runtime, tmp_path: Path) -> None:
    assert (tmp_path / "var" / "einvoice.db").is_file()
    assert runtime.check_ready()["database"] == "ok"


def test_documents_reach_their_final_states(runtime: bootstrap.Runtime, supplier: SupplierView) -> None:
    good = submit(runtime, supplier, corpus_invoice("E-1"))
    bad = submit(runtime, supplier, corpus_invoice("E-2", payable="1.00"))
    views = wait_for(runtime.uow_factory, [good, bad], timeout=180)
    dup = submit(runtime, supplier, corpus_invoice("E-1") + b"\n")  # other bytes, same number
    views |= wait_for(runtime.uow_factory, [dup], timeout=60)

    assert views[good].status == S.APPROVED, views[good].findings
    assert [t.to_status for t in views[good].history] == [
        "received",
        "validating",
        "validated",
        "matching",
        "matched",
        "approved",
    ]
    assert not any(f.severity is Severity.FATAL for f in views[good].findings)

    assert views[bad].status == S.REJECTED
    assert any(f.severity is Severity.FATAL for f in views[bad].findings)

    assert views[dup].suspected_duplicate_of == good
    assert views[dup].status in (S.EXCEPTION, S.REJECTED)
    for view in views.values():
        assert_processed_once(view)

    again = submit_document(
        runtime.uow_factory,
        supplier=supplier,
        raw=corpus_invoice("E-1"),
        idempotency_key=None,
        settings=runtime.settings,
    )
    assert again.document.id == good
    assert not again.created
    snapshot = queries.metrics(runtime.uow_factory())
    assert snapshot.outbox_pending == 0
    assert sum(snapshot.documents_by_status.values()) == 3
    assert "validating" in snapshot.stage_latency_seconds
