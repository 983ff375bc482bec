"""Posting by pull at once, on SQLite and PostgreSQL: with the pull connector an approved document is
posted in the finish that approves it (validation's, with matching), its journal entry kept and
the document held in ``posting`` in one write, with no message for the post stage; the entry is
the one the post stage's own message builds, and the ERP's acknowledgement posts it. With the push
or the folder connector, and for a document sent on later (its institution's profile set),
posting still goes through the post stage's own message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.posting.files import FileExport
from einvoice.posting.push import PushSender
from einvoice.services import DocumentView, SupplierView, erp, posting, process, queries
from einvoice.services.intake import submit_document
from einvoice.services.stages import Runner
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.integration.posting_support import CHART, PROFILE, valid
from tests.unit.services import documents

BUYER = documents.BUYER_ENDPOINT
PULL_WAITING = "waiting: journal entry je_{} offered to the ERP's pull feed; waiting for its acknowledgement"


def runner(
    uow_factory: Callable[[], UnitOfWork], connector: posting.Connector | FileExport, *, chain: bool = True
) -> Runner[process.Ports]:
    ports = process.Ports(valid, posting.EntryPoster(uow_factory, connector), parser=parse_for_pipeline)
    return process.runner(uow_factory, ports, chain=chain)


def submitted(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, number: str, **kw: str) -> str:
    raw = documents.invoice(number, **kw)
    return submit_document(
        uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings()
    ).document.id


def pending(uow_factory: Callable[[], UnitOfWork]) -> list[tuple[str, str]]:
    with uow_factory() as uow:
        return [(r.action, r.document_id) for r in uow.outbox.claim_pending()]


def kept_entry(uow_factory: Callable[[], UnitOfWork], document_id: str) -> dict[str, Any] | None:
    return posting.entry_of(uow_factory(), document_id)


def view(uow_factory: Callable[[], UnitOfWork], document_id: str) -> DocumentView:
    return queries.get_document(uow_factory(), document_id)


def books(uow_factory: Callable[[], UnitOfWork], *, profile: bool = True) -> None:
    posting.import_accounts(uow_factory(), endpoint=BUYER, text=CHART, effective_from=date(2026, 1, 1))
    if profile:
        posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=PROFILE)


def lines(entry: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(x["role"], x["account"], x["debit"], x["credit"]) for x in entry["lines"]]


@pytest.fixture(autouse=True)
def _registered(contract: object) -> None:
    """The contract the test invoices name (BT-10 ``REF-1``): they are matched and approved."""


def test_by_pull_an_approved_document_is_posted_in_validations_finish(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    books(uow_factory)
    doc = submitted(uow_factory, supplier, "AT-1", amount="100.00")
    result = runner(uow_factory, posting.PullConnector()).run("validate", doc)

    assert (result.stage, result.status) == ("post", S.POSTING)
    held = view(uow_factory, doc)
    assert (held.status, held.journal_ref, held.failure_reason) == (S.POSTING, f"je_{doc}", PULL_WAITING.format(doc))
    finish = [t for t in held.history if t.at == held.history[-1].at]
    assert [(t.from_status, t.to_status, t.actor) for t in finish] == [
        ("validating", "validated", "worker:validate"),
        ("validated", "matching", "worker:match"),
        ("matching", "matched", "worker:match"),
        ("matched", "approved", "worker:match"),
        ("approved", "posting", "worker:post"),
        ("posting", "posting", "worker:post"),
    ]  # one finish, one write
    assert ("post", doc) not in pending(uow_factory)  # no message for the post stage: it is done
    entry = kept_entry(uow_factory, doc)
    assert entry is not None
    assert (entry["id"], entry["institution"], entry["commitment"]) == (f"je_{doc}", BUYER, "REF-1")
    assert lines(entry) == [
        ("expense", "2239", "100.00", "0.00"),
        ("payable", "5310", "0.00", "100.00"),
    ]
    feed = erp.ErpView("erp-1", "Treasury ERP", (held.institution_id or "",), (BUYER,))
    assert [e["id"] for e in erp.pull(uow_factory(), feed)["entries"]] == [f"je_{doc}"]  # offered

    # The post stage's own message (chain off: a worker between every two stages) builds the same.
    other = submitted(uow_factory, supplier, "AT-2", amount="100.00", issue_date="2026-11-20")
    step_by_step = runner(uow_factory, posting.PullConnector(), chain=False)
    step_by_step.run("validate", other)
    assert step_by_step.run("match", other).status == S.APPROVED
    assert ("post", other) in pending(uow_factory)
    assert step_by_step.run("post", other).status == S.POSTING
    by_message = kept_entry(uow_factory, other)
    assert by_message is not None
    assert (lines(by_message), by_message["commitment"]) == (lines(entry), entry["commitment"])

    # The ERP's acknowledgement posts it, consuming what it held on the contract.
    confirmed = erp.confirm_entry(uow_factory, f"je_{doc}", by="erp:Treasury ERP")
    assert confirmed.status == S.POSTED
    with uow_factory() as uow:
        contract = uow.commitments.get(held.institution_id or "", "REF-1")
    assert contract is not None
    assert (contract.consumed, contract.reserved) == (Decimal("100.00"), Decimal("100.00"))  # the other still held


@pytest.mark.parametrize("kind", ["push", "folder"])
def test_with_the_push_or_folder_connector_posting_goes_through_its_own_message(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, tmp_path: Path, kind: str
) -> None:
    books(uow_factory)
    pushed: list[bytes] = []

    def erp_answers(request: httpx.Request) -> httpx.Response:
        pushed.append(request.content)
        return httpx.Response(200)

    connector: posting.Connector | FileExport
    if kind == "push":
        sender = PushSender("http://erp.invalid/entries", secret=b"s", transport=httpx.MockTransport(erp_answers))
        connector = posting.PushConnector(sender)
    else:
        connector = FileExport(tmp_path / "erp-outbox")
    run = runner(uow_factory, connector)
    doc = submitted(uow_factory, supplier, "AT-3")

    assert run.run("validate", doc).status == S.APPROVED
    assert ("post", doc) in pending(uow_factory)
    assert kept_entry(uow_factory, doc) is None
    assert pushed == []

    posted = run.run("post", doc)
    history = [(t.from_status, t.to_status) for t in view(uow_factory, doc).history]
    if kind == "push":
        assert posted.status == S.POSTED
        assert len(pushed) == 1
        assert history[-2:] == [("approved", "posting"), ("posting", "posted")]
    else:
        assert posted.status == S.POSTING
        assert [p.name for p in (tmp_path / "erp-outbox").iterdir()] == [f"je_{doc}.jsonl"]
        assert history[-2:] == [("approved", "posting"), ("posting", "posting")]
    assert kept_entry(uow_factory, doc) is not None


def test_by_pull_a_document_waiting_for_its_books_is_sent_on_through_the_post_message(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    books(uow_factory, profile=False)
    run = runner(uow_factory, posting.PullConnector())
    doc = submitted(uow_factory, supplier, "AT-4")

    assert run.run("validate", doc).status == S.APPROVED
    held = view(uow_factory, doc)
    assert held.failure_reason == f"waiting: institution {BUYER} has no posting profile"
    assert [(t.from_status, t.to_status) for t in held.history][-2:] == [
        ("approved", "posting"),
        ("posting", "approved"),
    ]
    assert ("post", doc) not in pending(uow_factory)  # held, in the same finish
    assert kept_entry(uow_factory, doc) is None

    _, sent_on = posting.set_posting_profile(uow_factory(), endpoint=BUYER, data=PROFILE)
    assert sent_on == [doc]
    assert ("post", doc) in pending(uow_factory)
    assert run.run("post", doc).status == S.POSTING
    final = view(uow_factory, doc)
    assert (final.journal_ref, final.failure_reason) == (f"je_{doc}", PULL_WAITING.format(doc))
    assert kept_entry(uow_factory, doc) is not None
